/* drs-settings.c: the cluster's DRS documents and the API's uses of them
 * (drs-settings.h): status, recommendations, applying one, the move under
 * way and each VM's last move. The settings document is drs-config.c's. */
#include "daemon/drs-settings.h"

#include <string.h>

#include "daemon/cluster-view.h"
#include "daemon/drs.h"
#include "daemon/migrate.h"
#include "daemon/vm-internal.h"
#include "util/util.h"

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

int vo_drs_show(VoDaemon *d, json_t **ret, char **ret_error)
{
    int r = vo_drs_need_cluster(d, ret_error);
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
    json_t *o = vo_drs_settings_json(&s);
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
    int r = vo_drs_need_cluster(d, ret_error);
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
