/* drs-settings.c: the cluster's DRS documents and the API's uses of them
 * (drs-settings.h): settings, status, recommendations, applying one, the
 * move under way and each VM's last move. */
#include "daemon/drs-settings.h"

#include <stdatomic.h>
#include <string.h>

#include "daemon/cluster-follow.h"
#include "daemon/cluster-view.h"
#include "daemon/drs.h"
#include "daemon/migrate.h"
#include "daemon/vm-internal.h"
#include "util/util.h"

static int need_cluster(VoDaemon *d, char **ret_error)
{
    if (!d->cluster || !d->cluster_store)
        return vo_error_set(ret_error, -ENOTCONN,
                            "this host is not in a cluster: DRS balances the hosts of a "
                            "cluster (see: vireo cluster init)");
    return 0;
}

static json_t *read_doc(VoDaemon *d, const char *key, int *ret_err)
{
    _cleanup_free_ char *text = NULL;
    int r = vo_store_get(d->cluster_store, key, &text, NULL);
    *ret_err = r == -ENOENT ? 0 : r;
    if (r < 0)
        return NULL;
    json_t *doc = json_loads(text, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int vo_drs_settings_get(VoDaemon *d, VoDrsSettings *ret)
{
    *ret = (VoDrsSettings){ .mode = VO_DRS_OFF, .level = VO_DRS_LEVEL_DEFAULT };
    if (!d->cluster_store)
        return -ENOTCONN;
    int r = 0;
    json_t *doc = read_doc(d, VO_DRS_SETTINGS_KEY, &r);
    const char *mode = json_string_value(json_object_get(doc, "mode"));
    json_t *level = json_object_get(doc, "level");
    if (mode)
        (void)vo_drs_mode_from_string(mode, &ret->mode);
    if (json_is_integer(level) && json_integer_value(level) >= VO_DRS_LEVEL_MIN &&
        json_integer_value(level) <= VO_DRS_LEVEL_MAX)
        ret->level = (int)json_integer_value(level);
    json_decref(doc);
    return r;
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

static json_t *settings_json(const VoDrsSettings *s)
{
    return json_pack("{s:s, s:i, s:f}", "mode", vo_drs_mode_to_string(s->mode), "level",
                     s->level, "threshold", vo_drs_threshold(s->level));
}

int vo_drs_settings_set(VoDaemon *d, json_t *body, json_t **ret, char **ret_error)
{
    int r = need_cluster(d, ret_error);
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
    VoDrsSettings s;
    r = vo_drs_settings_get(d, &s);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the DRS settings: %s", strerror(-r));
    if (mode && (!json_is_string(mode) ||
                 vo_drs_mode_from_string(json_string_value(mode), &s.mode) < 0))
        return vo_error_set(ret_error, -EINVAL, "mode: must be off, manual (recommend moves) "
                            "or auto (make them)");
    if (level && (!json_is_integer(level) || json_integer_value(level) < VO_DRS_LEVEL_MIN ||
                  json_integer_value(level) > VO_DRS_LEVEL_MAX))
        return vo_error_set(ret_error, -EINVAL, "level: must be an integer from %d "
                            "(conservative: only large imbalances) to %d (aggressive)",
                            VO_DRS_LEVEL_MIN, VO_DRS_LEVEL_MAX);
    if (level)
        s.level = (int)json_integer_value(level);
    json_t *doc = json_pack("{s:s, s:i}", "mode", vo_drs_mode_to_string(s.mode), "level",
                            s.level);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    r = vo_store_put(d->cluster_store, VO_DRS_SETTINGS_KEY, text, VO_REV_ANY, NULL);
    atomic_store(&set_here, true);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot save the DRS settings: %s", strerror(-r));
    atomic_store(&d->drs_sampling, s.mode != VO_DRS_OFF);
    *ret = settings_json(&s);
    return 0;
}

int vo_drs_show(VoDaemon *d, json_t **ret, char **ret_error)
{
    int r = need_cluster(d, ret_error);
    if (r < 0)
        return r;
    VoDrsSettings s;
    r = vo_drs_settings_get(d, &s);
    json_t *status = r >= 0 ? read_doc(d, VO_DRS_STATUS_KEY, &r) : NULL;
    json_t *moving = r >= 0 ? read_doc(d, VO_DRS_MOVING_KEY, &r) : NULL;
    if (r < 0) {
        json_decref(status);
        json_decref(moving);
        return vo_error_set(ret_error, r, "cannot read the DRS state: %s", strerror(-r));
    }
    json_t *o = settings_json(&s);
    json_object_set_new(o, "status", status ? status : json_null());
    json_object_set_new(o, "moving", moving ? moving : json_null());
    *ret = o;
    return 0;
}

int vo_drs_recommendations(VoDaemon *d, json_t **ret, char **ret_error)
{
    json_t *all = NULL;
    int r = vo_drs_show(d, &all, ret_error);
    if (r < 0)
        return r;
    json_t *recs = json_object_get(json_object_get(all, "status"), "recommendations");
    *ret = json_pack("{s:O, s:o}", "mode", json_object_get(all, "mode"), "recommendations",
                     json_is_array(recs) ? json_incref(recs) : json_array());
    json_decref(all);
    return 0;
}

int vo_drs_apply(VoDaemon *d, const char *id, json_t **ret_task, char **ret_error)
{
    json_t *all = NULL;
    int r = vo_drs_show(d, &all, ret_error);
    if (r < 0)
        return r;
    json_t *found = NULL, *rec;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(all, "status"), "recommendations"), i,
                       rec) {
        const char *rid = json_string_value(json_object_get(rec, "id"));
        if (rid && !strcmp(rid, id))
            found = rec;
    }
    if (!found) {
        json_decref(all);
        return vo_error_set(ret_error, -ENOENT, "recommendation '%s' does not exist (or is "
                            "no longer recommended; see: vireo cluster recommendations)", id);
    }
    const char *vm_id = json_string_value(json_object_get(found, "vm_id"));
    const char *from = json_string_value(json_object_get(found, "from_id"));
    const char *to = json_string_value(json_object_get(found, "to_id"));
    if (!vm_id || !from || !to) {
        json_decref(all);
        return vo_error_set(ret_error, -EIO, "recommendation '%s' is damaged", id);
    }
    _cleanup_free_ char *paused = vo_drs_paused_reason(d);
    if (paused) {
        json_decref(all);
        return vo_error_set(ret_error, -EBUSY, "cannot apply recommendation '%s' now: %s "
                            "(balancing waits until every host is online and out of "
                            "maintenance)", id, paused);
    }
    json_t *info = json_deep_copy(found);
    json_object_set_new(info, "by", json_string("apply"));
    json_object_set_new(info, "recommendation", json_string(id));
    r = vo_drs_start_move(d, vm_id, from, to, info, ret_task, ret_error);
    json_decref(info);
    json_decref(all);
    return r;
}

/* The VM's live migration on its host from_id: the task. */
static int migrate_on(VoDaemon *d, const char *vm_id, const char *from_id, const char *to_id,
                      json_t **ret_task, char **ret_error)
{
    if (!strcmp(from_id, d->host_id)) {
        _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
        if (!vm)
            return vo_error_set(ret_error, -EBUSY, "VM %s is no longer on this host", vm_id);
        VoMigrateArgs args = { .to = to_id };
        return vo_vm_migrate(d, vm, &args, ret_task, ret_error);
    }
    VoClusterHost h = { 0 };
    int r = vo_cluster_host_get(d, from_id, &h);
    if (r < 0 || !h.online || !h.url) {
        vo_cluster_host_clear(&h);
        return vo_error_set(ret_error, -EBUSY, "host %s (the VM's) is offline or unknown",
                            from_id);
    }
    _cleanup_free_ char *path = vo_asprintf("/v1/vms/%s/migrate", vm_id);
    json_t *body = json_pack("{s:s}", "to", to_id), *answer = NULL;
    r = vo_migrate_peer_call(d, h.url, "POST", path, body, &answer, ret_error);
    json_decref(body);
    vo_cluster_host_clear(&h);
    if (r >= 0) {
        json_t *task = json_object_get(answer, "task");
        if (json_is_object(task))
            *ret_task = json_incref(task);
        else
            r = vo_error_set(ret_error, -EIO, "host %s started no migration task", from_id);
    }
    json_decref(answer);
    return r;
}

int vo_drs_start_move(VoDaemon *d, const char *vm_id, const char *from_id, const char *to_id,
                      json_t *info, json_t **ret_task, char **ret_error)
{
    int r = need_cluster(d, ret_error);
    if (r < 0)
        return r;
    json_t *doc = info ? json_deep_copy(info) : json_object();
    json_object_set_new(doc, "vm_id", json_string(vm_id));
    json_object_set_new(doc, "from_id", json_string(from_id));
    json_object_set_new(doc, "to_id", json_string(to_id));
    json_object_set_new(doc, "at", json_integer(vo_wall_ms()));
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    int64_t rev = 0;
    /* One at a time: created only when none is there. */
    r = vo_store_put(d->cluster_store, VO_DRS_MOVING_KEY, text, VO_REV_NEW, &rev);
    if (r == -EEXIST) {
        json_decref(doc);
        int e = 0;
        json_t *now = read_doc(d, VO_DRS_MOVING_KEY, &e);
        const char *vm = json_string_value(json_object_get(now, "vm"));
        r = vo_error_set(ret_error, -EBUSY, "a DRS move is under way (VM %s); one at a time",
                         vm ? vm : "?");
        json_decref(now);
        return r;
    }
    if (r < 0) {
        json_decref(doc);
        return vo_error_set(ret_error, r, "cannot record the DRS move: %s", strerror(-r));
    }
    json_t *task = NULL;
    r = migrate_on(d, vm_id, from_id, to_id, &task, ret_error);
    if (r < 0) {
        (void)vo_store_delete(d->cluster_store, VO_DRS_MOVING_KEY, rev);
        json_decref(doc);
        return r;
    }
    json_object_set(doc, "task", json_object_get(task, "id"));
    free(text);
    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    int w = vo_store_put(d->cluster_store, VO_DRS_MOVING_KEY, text, rev, NULL);
    if (w < 0) /* the manager's next round sees a move without a task: it waits for the VM */
        log_warn("drs: cannot record the task of the move of VM %s: %s", vm_id, strerror(-w));
    *ret_task = task;
    return 0;
}

void vo_drs_note_moved(VoDaemon *d, const char *vm_id, const char *to_id)
{
    if (!d->cluster_store)
        return;
    _cleanup_free_ char *key = vo_asprintf(VO_DRS_MOVED_PREFIX "%s", vm_id);
    json_t *doc = json_pack("{s:I, s:s}", "at", (json_int_t)vo_wall_ms(), "to", to_id);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    int r = vo_store_put(d->cluster_store, key, text, VO_REV_ANY, NULL);
    if (r < 0)
        log_warn("drs: cannot record when VM %s moved: %s", vm_id, strerror(-r));
}

int64_t vo_drs_note_failed(VoDaemon *d, const char *vm_id)
{
    if (!d->cluster_store)
        return 0;
    _cleanup_free_ char *key = vo_asprintf(VO_DRS_MOVED_PREFIX "%s", vm_id);
    int e = 0;
    json_t *doc = read_doc(d, key, &e);
    if (!json_is_object(doc)) {
        json_decref(doc);
        doc = json_object();
    }
    json_int_t failures = json_integer_value(json_object_get(doc, "failures")) + 1;
    int64_t backoff = vo_drs_backoff_ms(failures);
    json_object_set_new(doc, "failures", json_integer(failures));
    json_object_set_new(doc, "retry_after", json_integer(vo_wall_ms() + backoff));
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    int r = vo_store_put(d->cluster_store, key, text, VO_REV_ANY, NULL);
    if (r < 0)
        log_warn("drs: cannot record the failed move of VM %s: %s", vm_id, strerror(-r));
    return backoff;
}
