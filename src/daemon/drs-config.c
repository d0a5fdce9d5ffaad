/* drs-config.c: the cluster's DRS settings document (cluster/drs: mode
 * and level; drs-settings.h): read, the balancing loop's followed copy,
 * and PUT /v1/cluster/drs, which keeps a field another host set meanwhile
 * (settings-put.h). */
#include "daemon/drs-settings.h"

#include <stdatomic.h>
#include <string.h>

#include "daemon/cluster-follow.h"
#include "daemon/settings-put.h"
#include "util/util.h"

int vo_drs_need_cluster(VoDaemon *d, char **ret_error)
{
    if (!d->cluster || !d->cluster_store)
        return vo_error_set(ret_error, -ENOTCONN,
                            "this host is not in a cluster: DRS balances the hosts of a "
                            "cluster (see: vireo cluster init)");
    return 0;
}

/* vo_drs_settings_get, and the document's revision into *ret_rev
 * (VO_REV_NEW: none stored). */
static int settings_read(VoDaemon *d, VoDrsSettings *ret, int64_t *ret_rev)
{
    *ret = (VoDrsSettings){ .mode = VO_DRS_OFF, .level = VO_DRS_LEVEL_DEFAULT };
    *ret_rev = VO_REV_NEW;
    if (!d->cluster_store)
        return -ENOTCONN;
    _cleanup_free_ char *text = NULL;
    int r = vo_store_get(d->cluster_store, VO_DRS_SETTINGS_KEY, &text, ret_rev);
    if (r < 0) {
        *ret_rev = VO_REV_NEW;
        return r == -ENOENT ? 0 : r;
    }
    json_t *doc = json_loads(text, 0, NULL);
    const char *mode = json_string_value(json_object_get(doc, "mode"));
    json_t *level = json_object_get(doc, "level");
    if (mode)
        (void)vo_drs_mode_from_string(mode, &ret->mode);
    if (json_is_integer(level) && json_integer_value(level) >= VO_DRS_LEVEL_MIN &&
        json_integer_value(level) <= VO_DRS_LEVEL_MAX)
        ret->level = (int)json_integer_value(level);
    json_decref(doc);
    return 0;
}

int vo_drs_settings_get(VoDaemon *d, VoDrsSettings *ret)
{
    int64_t rev;
    return settings_read(d, ret, &rev);
}

/* The balancing loop's copy of the settings: read again when the host's
 * cluster/ watch saw cluster/drs change (cluster-follow.h), after a set on
 * this host, or every VO_CLUSTER_FOLLOW_RECHECK_MS; else kept. */
static bool is_settings_key(const char *key)
{
    return !strcmp(key, VO_DRS_SETTINGS_KEY);
}

static VoClusterFollower follower = { .wants = is_settings_key };
static atomic_bool set_here; /* a set on this host since the last read */
static struct {
    VoDrsSettings s;
    uint64_t mark;
    int64_t at; /* vo_now_ms() of the read; 0: none kept */
} kept;

int vo_drs_settings_followed(VoDaemon *d, VoDrsSettings *ret)
{
    vo_cluster_follow_add(&follower);
    bool set = atomic_exchange(&set_here, false);
    if (!set && vo_cluster_follow_keep(&follower, kept.mark, kept.at)) {
        *ret = kept.s;
        return 0;
    }
    uint64_t mark = vo_cluster_follow_mark(&follower);
    int r = vo_drs_settings_get(d, ret);
    kept.at = r >= 0 ? vo_now_ms() : 0;
    kept.s = *ret;
    kept.mark = mark;
    return r;
}

json_t *vo_drs_settings_json(const VoDrsSettings *s)
{
    return json_pack("{s:s, s:i, s:f}", "mode", vo_drs_mode_to_string(s->mode), "level",
                     s->level, "threshold", vo_drs_threshold(s->level));
}

/* A set's fields (has_*: given; else the stored one kept) and the
 * settings they make (merge_fields). */
typedef struct {
    VoDaemon *d;
    bool has_mode, has_level;
    VoDrsMode mode;
    int level;
    VoDrsSettings now;
} DrsFields;

/* VoSettingsMerge: the stored settings with the set's fields. */
static int merge_fields(void *fields, int64_t *ret_rev, json_t **ret_doc)
{
    DrsFields *f = fields;
    int r = settings_read(f->d, &f->now, ret_rev);
    if (r < 0)
        return r;
    if (f->has_mode)
        f->now.mode = f->mode;
    if (f->has_level)
        f->now.level = f->level;
    *ret_doc = json_pack("{s:s, s:i}", "mode", vo_drs_mode_to_string(f->now.mode), "level",
                         f->now.level);
    return 0;
}

int vo_drs_settings_set(VoDaemon *d, json_t *body, json_t **ret, char **ret_error)
{
    int r = vo_drs_need_cluster(d, ret_error);
    if (r < 0)
        return r;
    if (!json_is_object(body))
        return vo_error_set(ret_error, -EINVAL, "the body must be a JSON object "
                            "{\"mode\": \"off|manual|auto\", \"level\": %d..%d}",
                            VO_DRS_LEVEL_MIN, VO_DRS_LEVEL_MAX);
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
        if (strcmp(key, "mode") && strcmp(key, "level"))
            return vo_error_set(ret_error, -EINVAL, "%s: unknown field (DRS settings are "
                                "\"mode\" and \"level\")", key);
    json_t *mode = json_object_get(body, "mode"), *level = json_object_get(body, "level");
    if (!mode && !level)
        return vo_error_set(ret_error, -EINVAL, "mode or level: give at least one");
    DrsFields f = { .d = d, .has_mode = mode, .has_level = level };
    if (mode && (!json_is_string(mode) ||
                 vo_drs_mode_from_string(json_string_value(mode), &f.mode) < 0))
        return vo_error_set(ret_error, -EINVAL, "mode: must be off, manual (recommend moves) "
                            "or auto (make them)");
    if (level && (!json_is_integer(level) || json_integer_value(level) < VO_DRS_LEVEL_MIN ||
                  json_integer_value(level) > VO_DRS_LEVEL_MAX))
        return vo_error_set(ret_error, -EINVAL, "level: must be an integer from %d "
                            "(conservative: only large imbalances) to %d (aggressive)",
                            VO_DRS_LEVEL_MIN, VO_DRS_LEVEL_MAX);
    if (level)
        f.level = (int)json_integer_value(level);
    /* The field not given is the stored one: put only over the document
     * read, else a set of the other field on another host meanwhile would
     * be undone (settings-put.h). */
    r = vo_settings_put(d->cluster_store, VO_DRS_SETTINGS_KEY, "drs-settings-put",
                        "the DRS settings", merge_fields, &f, ret_error);
    atomic_store(&set_here, true);
    if (r < 0)
        return r;
    atomic_store(&d->drs_sampling, f.now.mode != VO_DRS_OFF);
    *ret = vo_drs_settings_json(&f.now);
    return 0;
}
