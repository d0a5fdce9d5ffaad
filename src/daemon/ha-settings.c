/* ha-settings.c: the cluster's restart limit, kept in cluster/ha, and the
 * API's uses of it (ha-settings.h). */
#include "daemon/ha-settings.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "daemon/cluster-follow.h"
#include "daemon/settings-put.h"
#include "util/util.h"

#define MAX_RESTARTS "max_restarts"
#define WINDOW_MINUTES "window_minutes"

/* The cluster's store, or a standalone host's own (SQLite). */
static VoStore *store_of(VoDaemon *d)
{
    return d->cluster_store ? d->cluster_store : d->store;
}

/* doc's integer field key when it lies in [min, max], else fallback. */
static int64_t bounded(json_t *doc, const char *key, int64_t min, int64_t max, int64_t fallback)
{
    json_t *v = json_object_get(doc, key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return fallback;
    return json_integer_value(v);
}

/* vo_ha_limit_get, and the document's revision into *ret_rev (VO_REV_NEW:
 * none stored). */
static int limit_read(VoDaemon *d, VoHaLimit *ret, int64_t *ret_rev)
{
    *ret = VO_HA_LIMIT_DEFAULT;
    *ret_rev = VO_REV_NEW;
    _cleanup_free_ char *text = NULL;
    int r = vo_store_get(store_of(d), VO_HA_SETTINGS_KEY, &text, ret_rev);
    if (r < 0) {
        *ret_rev = VO_REV_NEW;
        return r == -ENOENT ? 0 : r;
    }
    json_t *doc = json_loads(text, 0, NULL);
    ret->max_restarts = (unsigned)bounded(doc, MAX_RESTARTS, VO_HA_MAX_RESTARTS_MIN,
                                          VO_HA_MAX_RESTARTS_MAX, VO_HA_MAX_RESTARTS_DEFAULT);
    ret->window_ms = 60000 * bounded(doc, WINDOW_MINUTES, VO_HA_WINDOW_MINUTES_MIN,
                                     VO_HA_WINDOW_MINUTES_MAX, VO_HA_WINDOW_MINUTES_DEFAULT);
    json_decref(doc);
    return 0;
}

int vo_ha_limit_get(VoDaemon *d, VoHaLimit *ret)
{
    int64_t rev;
    return limit_read(d, ret, &rev);
}

/* The rounds' copy: read again when the host's cluster/ watch saw
 * cluster/ha change (cluster-follow.h), after a set on this host, or every
 * VO_CLUSTER_FOLLOW_RECHECK_MS; else kept. Its callers are the manager's
 * round, the retry runner and task threads: under lock. */
static bool is_settings_key(const char *key)
{
    return !strcmp(key, VO_HA_SETTINGS_KEY);
}

static VoClusterFollower follower = { .wants = is_settings_key };
static atomic_bool set_here; /* a set on this host since the last read */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    VoHaLimit limit;
    bool read; /* limit was read once */
    uint64_t mark;
    int64_t at; /* vo_now_ms() of the read; 0: none kept */
} kept;

VoHaLimit vo_ha_limit_followed(VoDaemon *d)
{
    vo_cluster_follow_add(&follower);
    pthread_mutex_lock(&lock);
    bool set = atomic_exchange(&set_here, false);
    if (set || !vo_cluster_follow_keep(&follower, kept.mark, kept.at)) {
        uint64_t mark = vo_cluster_follow_mark(&follower);
        VoHaLimit now;
        int r = vo_ha_limit_get(d, &now);
        if (r >= 0 || !kept.read) {
            kept.limit = now;
            kept.read = true;
        } else
            log_warn("ha: cannot read the restart limit (%s): the last one read holds",
                     strerror(-r));
        kept.at = r >= 0 ? vo_now_ms() : 0;
        kept.mark = mark;
    }
    VoHaLimit out = kept.limit;
    pthread_mutex_unlock(&lock);
    return out;
}

static json_t *settings_json(const VoHaLimit *l)
{
    return json_pack("{s:i, s:I}", MAX_RESTARTS, (int)l->max_restarts, WINDOW_MINUTES,
                     (json_int_t)(l->window_ms / 60000));
}

int vo_ha_settings_show(VoDaemon *d, json_t **ret, char **ret_error)
{
    VoHaLimit l;
    int r = vo_ha_limit_get(d, &l);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the HA settings: %s", strerror(-r));
    *ret = settings_json(&l);
    return 0;
}

/* A set's fields (-1: not given, the stored one kept) and the limit they
 * make (merge_fields). */
typedef struct {
    VoDaemon *d;
    int64_t max_restarts, minutes;
    VoHaLimit now;
} HaFields;

/* VoSettingsMerge: the stored limit with the set's fields. */
static int merge_fields(void *fields, int64_t *ret_rev, json_t **ret_doc)
{
    HaFields *f = fields;
    int r = limit_read(f->d, &f->now, ret_rev);
    if (r < 0)
        return r;
    if (f->max_restarts >= 0)
        f->now.max_restarts = (unsigned)f->max_restarts;
    if (f->minutes >= 0)
        f->now.window_ms = f->minutes * 60000;
    *ret_doc = settings_json(&f->now);
    return 0;
}

/* body's field key: absent (kept), or an integer in [min, max] into *ret;
 * else -EINVAL naming it (what: what the number is). */
static int take_field(json_t *body, const char *key, int64_t min, int64_t max,
                      const char *what, int64_t *ret, char **ret_error)
{
    json_t *v = json_object_get(body, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return vo_error_set(ret_error, -EINVAL, "%s: must be an integer from %lld to %lld "
                            "(%s)", key, (long long)min, (long long)max, what);
    *ret = json_integer_value(v);
    return 0;
}

int vo_ha_settings_set(VoDaemon *d, json_t *body, json_t **ret, char **ret_error)
{
    if (!json_is_object(body))
        return vo_error_set(ret_error, -EINVAL, "the body must be a JSON object "
                            "{\"" MAX_RESTARTS "\": %d..%d, \"" WINDOW_MINUTES "\": %d..%d}",
                            VO_HA_MAX_RESTARTS_MIN, VO_HA_MAX_RESTARTS_MAX,
                            VO_HA_WINDOW_MINUTES_MIN, VO_HA_WINDOW_MINUTES_MAX);
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
        if (strcmp(key, MAX_RESTARTS) && strcmp(key, WINDOW_MINUTES))
            return vo_error_set(ret_error, -EINVAL, "%s: unknown field (the HA settings are "
                                "\"" MAX_RESTARTS "\" and \"" WINDOW_MINUTES "\")", key);
    if (!json_object_get(body, MAX_RESTARTS) && !json_object_get(body, WINDOW_MINUTES))
        return vo_error_set(ret_error, -EINVAL, MAX_RESTARTS " or " WINDOW_MINUTES
                            ": give at least one");
    int64_t n = -1, minutes = -1; /* -1: not given, the stored one kept */
    int r;
    if ((r = take_field(body, MAX_RESTARTS, VO_HA_MAX_RESTARTS_MIN, VO_HA_MAX_RESTARTS_MAX,
                        "HA restarts of one VM within the window", &n, ret_error)) < 0 ||
        (r = take_field(body, WINDOW_MINUTES, VO_HA_WINDOW_MINUTES_MIN,
                        VO_HA_WINDOW_MINUTES_MAX, "minutes", &minutes, ret_error)) < 0)
        return r;
    /* The field not given is the stored one: put only over the document
     * read, else a set of the other field on another host meanwhile would
     * be undone (settings-put.h). */
    HaFields f = { .d = d, .max_restarts = n, .minutes = minutes };
    r = vo_settings_put(store_of(d), VO_HA_SETTINGS_KEY, "ha-settings-put", "the HA settings",
                        merge_fields, &f, ret_error);
    atomic_store(&set_here, true);
    if (r < 0)
        return r;
    log_info("ha: the restart limit is now %u HA restarts of one VM within %lld minutes",
             f.now.max_restarts, (long long)(f.now.window_ms / 60000));
    *ret = settings_json(&f.now);
    return 0;
}
