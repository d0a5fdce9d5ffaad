/* storage-restore-mark.c: the mark a restore over a VM puts on each volume
 * it writes over (storage.h, docs/backups-api.md "Restore over the VM"), kept
 * in the volume's document as "restore_incomplete" {"task", "host",
 * "host_name", "since", "in_place"} so every host sees it (a shared pool's
 * volume) and it outlasts a vireod that dies mid-write. A VM's start reads it
 * from the store (not this host's copy, which another host's mark reaches
 * only through the watch): the start saves "starting" first and the restore
 * marks first, each then checking the other, so one of two racing always
 * sees the other. An RBD image's mark also names its VM ("undo_vm",
 * "vm_name"): a crash leaves the image to that VM's rollback, so the mark
 * stays until its next start (vo_volume_restore_settle). */
#include "daemon/storage-internal.h"

#include <string.h>

#include "daemon/cluster-view.h"
#include "jobs/tasks.h"
#include "state/keys.h"
#include "storage/volume-path.h"
#include "util/time-format.h"

static const char *mark_str(json_t *mark, const char *field)
{
    return json_string_value(json_object_get(mark, field));
}

/* Another host's task's document, while that host is online (a host whose
 * vireod died ends none of its tasks); NULL when it has none or is offline.
 * *ret_unknown: the store could not say. */
static json_t *other_host_task(VoDaemon *d, const char *host, const char *task,
                               bool *ret_unknown)
{
    *ret_unknown = false;
    if (!d->cluster_store)
        return NULL;
    VoClusterHost h;
    int r = vo_cluster_host_get(d, host, &h);
    bool online = r >= 0 && h.online;
    vo_cluster_host_clear(&h);
    _cleanup_free_ char *key = vo_asprintf("h/%s/operations/%s", host, task), *text = NULL;
    if (online)
        r = vo_store_get(d->cluster_store, key, &text, NULL);
    *ret_unknown = r < 0 && r != -ENOENT;
    return online && r >= 0 ? json_loads(text, 0, NULL) : NULL;
}

/* Whether mark's task is queued or running: one of this host's, or of
 * another host that is online (so a start there is not told that the
 * restore did not finish, nor its mark cleared, while it writes). A store
 * that cannot say counts as live. */
static bool mark_task_live(VoDaemon *d, json_t *mark)
{
    const char *task = mark_str(mark, "task"), *host = mark_str(mark, "host");
    if (!task || !host || !d->host_id)
        return false;
    bool unknown = false;
    json_t *doc = !strcmp(host, d->host_id) ? vo_tasks_get_json(d->tasks, task)
                                            : other_host_task(d, host, task, &unknown);
    if (unknown)
        return true;
    const char *state = mark_str(doc, "state");
    bool live = state && (!strcmp(state, "queued") || !strcmp(state, "running"));
    json_decref(doc);
    return live;
}

/* Sets (mark, stolen) or clears (NULL) the mark of volume key and saves its
 * document; only_task: only a mark of that task is replaced (else nothing);
 * expect (when given): only the mark *expect (NULL: none), as read before
 * (else -EAGAIN); *ret_previous (when given, on success): the mark
 * replaced, or NULL. */
static int put_mark(VoDaemon *d, const char *key, json_t *mark, const char *only_task,
                    json_t *const *expect, json_t **ret_previous, char **ret_error)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0) {
        json_decref(mark);
        return vo_error_set(ret_error, -EINVAL, "'%s' is not POOL/NAME", key);
    }
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    int r = 0;
    if (!v || !v->ready)
        r = vo_error_set(ret_error, -ENOENT, "volume '%s' does not exist", key);
    else if (only_task && (!v->restore || !mark_str(v->restore, "task") ||
                           strcmp(mark_str(v->restore, "task"), only_task)))
        r = 0; /* another restore's since (or none): left */
    else if (expect && v->restore != *expect)
        r = vo_error_set(ret_error, -EAGAIN, "volume '%s': its restore mark changed "
                         "meanwhile; try again", key);
    else if (mark || v->restore) {
        json_t *old = v->restore;
        v->restore = json_incref(mark);
        r = vo_storage_save_volume(d, v);
        if (r < 0) {
            json_decref(v->restore);
            v->restore = old;
            r = vo_error_set(ret_error, r, "cannot save volume '%s': %s", key, strerror(-r));
        } else if (ret_previous)
            *ret_previous = old;
        else
            json_decref(old);
    }
    pthread_mutex_unlock(&d->storage_lock);
    json_decref(mark);
    return r;
}

/* The VM an rbd restore's mark waits for (its next start or restore rolls
 * the volume back): its id, or NULL for a mark of another kind. */
static const char *mark_undo_vm(json_t *mark)
{
    return mark_str(mark, "undo_vm");
}

/* The refusal of a mark an rbd restore cut short left (the volume may be
 * half the backup's until VM undo_vm's start or restore rolls it back). */
static int undo_pending_error(json_t *mark, const char *key, const char *what,
                              char **ret_error)
{
    const char *task = mark_str(mark, "task"), *host = mark_str(mark, "host_name");
    const char *vm = mark_str(mark, "vm_name");
    return vo_error_set(ret_error, -EBUSY, "a restore over VM '%s' (task %s on host '%s') "
                        "was cut short: volume '%s' may be partly the backup's until that "
                        "VM's next start (or restore) rolls it back: start VM '%s' first, "
                        "then %s", vm ? vm : "?", task ? task : "?", host ? host : "?", key,
                        vm ? vm : "?", what);
}

int vo_volume_restore_mark(VoDaemon *d, const char *key, const char *task_id,
                           const char *undo_vm, const char *undo_vm_name,
                           json_t **ret_previous, char **ret_error)
{
    *ret_previous = NULL;
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return vo_error_set(ret_error, -EINVAL, "'%s' is not POOL/NAME", key);
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, pool);
    bool in_place = p && !strcmp(p->type, VO_ISCSI_POOL_TYPE); /* no file to swap */
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    json_t *found = v ? json_incref(v->restore) : NULL;
    pthread_mutex_unlock(&d->storage_lock);
    /* Not over a restore that runs (over another VM with the shareable
     * volume): both would write it. */
    const char *task = mark_str(found, "task"), *host = mark_str(found, "host_name");
    int r = 0;
    bool live = found && (!task || strcmp(task, task_id)) && mark_task_live(d, found);
    if (live)
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is being restored (task %s on host "
                         "'%s'): restore once that restore has ended", key, task ? task : "?",
                         host ? host : "?");
    /* Another VM's rbd restore cut short: its rollback would undo this one. */
    else if (mark_undo_vm(found) && (!undo_vm || strcmp(mark_undo_vm(found), undo_vm)))
        r = undo_pending_error(found, key, "restore", ret_error);
    if (r >= 0) {
        json_t *mark = json_pack("{s:s, s:s?, s:s?, s:o, s:b}", "task", task_id, "host",
                                 d->host_id, "host_name", d->host_name, "since",
                                 vo_time_json(vo_wall_ms()), "in_place", in_place);
        if (undo_vm) {
            json_object_set_new(mark, "undo_vm", json_string(undo_vm));
            json_object_set_new(mark, "vm_name", json_string(undo_vm_name));
        }
        r = put_mark(d, key, mark, NULL, &found, ret_previous, ret_error);
    }
    json_decref(found);
    return r;
}

/* Whether VM id is a VM of this host (its document in this host's store)
 * or of another (a store that cannot say: it is). Read from the store, not
 * the VM service's registry: the volume service does not use the VM
 * service (docs/internals.md, Layers). */
static bool vm_exists(VoDaemon *d, const char *id)
{
    _cleanup_free_ char *key = vo_key_vm(id), *host = NULL, *doc = NULL;
    if (vo_store_get(d->store, key, NULL, NULL) != -ENOENT)
        return true;
    return vo_cluster_locate_vm(d, id, &host, &doc) != 0;
}

void vo_volume_restore_unmark(VoDaemon *d, const char *key, const char *task_id,
                              json_t *put_back)
{
    _cleanup_free_ char *error = NULL;
    if (put_mark(d, key, json_incref(put_back), task_id, NULL, NULL, &error) < 0)
        log_warn("restore: volume %s keeps its restore mark: %s", key, error);
}

int vo_volume_check_restore(VoDaemon *d, const char *key, const char *vm_id,
                            char **ret_error)
{
    _cleanup_free_ char *pool = NULL, *name = NULL, *text = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return 0; /* not a volume: nothing restores over it */
    _cleanup_free_ char *doc_key = vo_volume_doc_key(d, pool, name);
    int r = vo_store_get(d->store, doc_key, &text, NULL);
    if (r == -ENOENT)
        return 0;
    if (r < 0) /* a rule is never broken for want of the store */
        return vo_error_set(ret_error, r, "cannot read volume '%s' from the store (%s): "
                            "whether a restore writes over it is unknown", key, strerror(-r));
    json_t *doc = json_loads(text, 0, NULL);
    json_t *mark = json_object_get(doc, "restore_incomplete");
    if (json_is_object(mark)) {
        const char *task = mark_str(mark, "task"), *host = mark_str(mark, "host_name");
        if (mark_task_live(d, mark))
            r = vo_error_set(ret_error, -EBUSY, "volume '%s' is being restored (task %s on "
                             "host '%s'): start the VM once that restore has ended", key,
                             task ? task : "?", host ? host : "?");
        else if (mark_undo_vm(mark) && vm_id && !strcmp(mark_undo_vm(mark), vm_id))
            r = 0; /* its own start rolls it back first (vo_volume_restore_settle) */
        else if (mark_undo_vm(mark))
            r = undo_pending_error(mark, key, "this one", ret_error);
        else
            r = vo_error_set(ret_error, -EBUSY, "a restore of volume '%s' did not finish "
                             "(task %s on host '%s'): its data may be partly the backup's; "
                             "restore the backup again, or accept the volume as it is with "
                             "'vireo volume set %s --clear-restore-incomplete'", key,
                             task ? task : "?", host ? host : "?", key);
    }
    json_decref(doc);
    return r;
}

int vo_volume_check_not_attaching(VoDaemon *d, const char *key, char **ret_error)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return 0;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    bool attaching = v && v->attaching > 0;
    pthread_mutex_unlock(&d->storage_lock);
    return attaching ? vo_error_set(ret_error, -EBUSY, "volume '%s' is being attached to a VM "
                                    "on this host: restore once that is done", key)
                     : 0;
}

int vo_volume_restore_clear(VoDaemon *d, const char *pool, const char *name, char **ret_error)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    json_t *mark = v && v->restore ? json_incref(v->restore) : NULL;
    pthread_mutex_unlock(&d->storage_lock);
    int r = 0;
    const char *host = mark ? mark_str(mark, "host_name") : NULL;
    bool waits = mark && mark_undo_vm(mark) && vm_exists(d, mark_undo_vm(mark));
    if (mark && mark_task_live(d, mark))
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is being restored (task %s on host "
                         "'%s'): its mark goes when that restore ends well", key,
                         mark_str(mark, "task"), host ? host : "?");
    else if (waits) /* cleared, its VM's start would roll it back under another VM */
        r = undo_pending_error(mark, key, "its mark goes", ret_error);
    else if (mark)
        r = put_mark(d, key, NULL, mark_str(mark, "task"), NULL, NULL, ret_error);
    json_decref(mark);
    return r;
}

void vo_volume_restore_marks_sweep(VoDaemon *d)
{
    _cleanup_strv_ char **keys = NULL, **tasks = NULL;
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_volumes; i++) {
        json_t *mark = d->volumes[i]->restore;
        const char *host = mark_str(mark, "host"), *task = mark_str(mark, "task");
        /* A file volume's restore swapped all or nothing: whole either way.
         * An rbd restore's waits for its VM's rollback (vo_volume_restore_settle). */
        if (mark && task && host && d->host_id && !strcmp(host, d->host_id) &&
            !json_is_true(json_object_get(mark, "in_place")) && !mark_undo_vm(mark)) {
            vo_strv_pushf(&keys, "%s/%s", d->volumes[i]->pool, d->volumes[i]->name);
            vo_strv_pushf(&tasks, "%s", task);
        }
    }
    pthread_mutex_unlock(&d->storage_lock);
    for (size_t i = 0; keys && keys[i]; i++)
        vo_volume_restore_unmark(d, keys[i], tasks[i], NULL);
}

void vo_volume_restore_settle(VoDaemon *d, const char *key, const char *vm_id)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    json_t *mark = v && v->restore ? json_incref(v->restore) : NULL;
    pthread_mutex_unlock(&d->storage_lock);
    if (mark && mark_undo_vm(mark) && !strcmp(mark_undo_vm(mark), vm_id) &&
        !mark_task_live(d, mark))
        vo_volume_restore_unmark(d, key, mark_str(mark, "task"), NULL);
    json_decref(mark);
}
