/* storage-flatten.c: a linked clone in an rbd pool made whole (`vireo volume
 * flatten POOL/NAME`, POST /v1/pools/{pool}/volumes/{volume}/flatten): the
 * parent's data the clone still reads is copied into its RBD image by
 * librbd (storage/rbd-flatten.h), as a task with progress in bytes; then
 * its volume is no clone any more (no backing volume, no image), so the
 * volume it was cloned from may be deleted, and a VM clone's snapshot of
 * that volume's image is removed (an image's base stays with the image).
 * Online when a VM runs on it: librbd hands the flatten to that VM's QEMU,
 * which holds the image's exclusive lock, and the guest writes on; the task
 * queues behind the VM's other tasks, and a migration asked while it is
 * queued or runs is refused naming it (migrate.c). A cancel stops a flatten
 * vireod does itself (a stopped VM's volume): the volume stays a clone; one
 * the VM's QEMU does cannot be stopped (storage/rbd-flatten.h): a cancel is
 * refused (409) once it runs there; one asked just before finds it
 * finishing, which says so. Which volumes qualify: storage/rbd-flatten-plan.h. */
#include "daemon/storage-internal.h"

#include <string.h>

#include "state/keys.h"
#include "storage/rbd-flatten-plan.h"
#include "storage/rbd-flatten.h"

typedef struct {
    VoDaemon *d;
    char *pool, *name;
} FlattenOp;

static void flatten_op_free(void *p)
{
    FlattenOp *op = p;
    free(op->pool);
    free(op->name);
    free(op);
}

/* Cancelled while queued: the volume its request claimed is free again. */
static void flatten_undo(void *p)
{
    FlattenOp *op = p;
    vo_storage_release_volume(op->d, op->pool, op->name);
}

static void show_bytes(uint64_t done, uint64_t total, void *task)
{
    vo_storage_show_bytes(task, "flattening", done, total);
}

/* Its VM's QEMU does the flatten: a cancel could not stop it (409). */
static void handed_over(void *task)
{
    vo_task_refuse_cancel(task, "the flatten is done by the QEMU of the VM running on the "
                          "volume (it holds the image's lock), and librbd cannot stop it "
                          "there: it runs to the end (a stopped VM's flatten can be "
                          "cancelled)");
}

/* The volume, flattened: no clone of anything any more. What it was, or
 * NULL. A save that fails keeps the record as it was, here as in the store,
 * so that the flatten asked again finds the clone its record names. */
static char *forget_parent(VoDaemon *d, const char *pool, const char *name, int *ret)
{
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    char *was = NULL;
    if (v && (v->backing || v->image)) {
        was = v->backing ? vo_strdup(v->backing) : vo_asprintf("image:%s", v->image);
        char *backing = TAKE_PTR(v->backing), *image = TAKE_PTR(v->image);
        *ret = vo_storage_save_volume(d, v);
        if (*ret < 0) {
            v->backing = backing;
            v->image = image;
        } else {
            free(backing);
            free(image);
        }
    }
    if (v)
        v->busy = false;
    pthread_mutex_unlock(&d->storage_lock);
    return was;
}

static int task_volume_flatten(VoTask *t, void *userdata)
{
    FlattenOp *op = userdata;
    _cleanup_free_ char *key = vo_asprintf("%s/%s", op->pool, op->name);
    _cleanup_free_ char *error = NULL;
    vo_task_progress(t, 1, "flattening");
    VoRbdPool rp;
    VoRbdFlattened f = { 0 };
    int r = vo_storage_rbd_pool_of(op->d, op->pool, &rp, &error);
    if (r == 0)
        r = vo_error_set(&error, -ENOENT, "pool '%s' is no rbd pool any more", op->pool);
    if (r > 0) {
        VoRbdConf c = vo_rbd_pool_conf(&rp);
        r = vo_rbd_image_flatten(&c, op->name, show_bytes, handed_over, t, &f, &error);
        vo_rbd_pool_clear(&rp);
    }
    if (r < 0) {
        vo_storage_release_volume(op->d, op->pool, op->name);
        return vo_task_fail(t, r, "cannot flatten volume '%s': %s", key,
                            error ? error : strerror(-r));
    }
    int saved = 0;
    _cleanup_free_ char *was = forget_parent(op->d, op->pool, op->name, &saved);
    if (saved < 0) { /* its image is whole; only the record still says clone */
        vo_rbd_flattened_clear(&f);
        return vo_task_fail(t, saved, "volume '%s' is flattened, but its document cannot be "
                            "saved (%s): flatten it again", key, strerror(-saved));
    }
    if (f.cancel_too_late) /* the task succeeds: say why the cancel did nothing */
        vo_task_progress(t, 100, "flattened: the cancel came too late (its VM's QEMU was "
                         "flattening it, which cannot be stopped, or its last objects were "
                         "under way)");
    log_info("storage: flattened %s (was a clone of %s; parent snapshot %s%s%s)", key,
             was ? was : f.parent ? f.parent : "nothing",
             f.snap_removed ? "removed" : f.parent ? "kept" : "none",
             f.snap_kept ? ": " : "", f.snap_kept ? f.snap_kept : "");
    vo_task_set_result(t, json_pack("{s:s, s:o, s:o, s:b, s:o, s:b}", "volume", key,
                                    "was_clone_of", was ? json_string(was) : json_null(),
                                    "parent_snapshot",
                                    f.parent ? json_string(f.parent) : json_null(),
                                    "snapshot_removed", f.snap_removed, "snapshot_kept",
                                    f.snap_kept ? json_string(f.snap_kept) : json_null(),
                                    "cancel_too_late", f.cancel_too_late));
    vo_rbd_flattened_clear(&f);
    return 0;
}

/* What the plan needs to know of pool/name (a 404 when it does not exist). */
static int read_facts(VoDaemon *d, const char *pool, const char *name, VoFlattenVolume *f,
                      char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, pool);
    VoVolume *v = p ? vo_storage_volume_find(d, pool, name) : NULL;
    if (v) {
        f->pool_type = vo_strdup(p->type);
        f->content = vo_strdup(v->content);
        f->backing = vo_strdup(v->backing);
        f->image = vo_strdup(v->image);
    }
    pthread_mutex_unlock(&d->storage_lock);
    if (!v)
        return vo_error_set(ret_error, -ENOENT, "volume '%s/%s' does not exist", pool, name);
    return 0;
}

static void facts_clear(VoFlattenVolume *f)
{
    free((char *)f->pool_type);
    free((char *)f->content);
    free((char *)f->backing);
    free((char *)f->image);
}

/* Claims pool/name if it may be flattened now: its VM's task key (NULL:
 * none) in *ret_vm_key. */
static int claim(VoDaemon *d, const char *pool, const char *name, int64_t expected,
                 char **ret_vm_key, char **ret_error)
{
    _cleanup_free_ char *path = NULL, *key = vo_asprintf("%s/%s", pool, name);
    int r = vo_storage_claim_volume(d, pool, name, &path, NULL, ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    r = v ? vo_storage_rev_is(expected, v->rev, "volume", key, ret_error) : 0;
    if (r >= 0 && v && v->restore)
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is marked by a restore that did not "
                         "finish (task %s): restore again or clear the mark first", key,
                         json_string_value(json_object_get(v->restore, "task")));
    pthread_mutex_unlock(&d->storage_lock);
    VoRelationUser u;
    if (r >= 0 && vo_storage_volume_user(d, key, &u)) {
        /* Queued behind its VM's tasks here, so its VM must be here. */
        if (!vo_storage_vm_is_here(d, u.vm_id) && vo_storage_key_is_shared(d, key))
            r = vo_error_set(ret_error, -EBUSY, "volume '%s' is attached to VM '%s' of "
                             "another host: flatten it from that VM's host", key, u.name);
        else
            *ret_vm_key = vo_key_vm_task(u.vm_id);
        vo_relation_user_clear(&u);
    }
    if (r < 0)
        vo_storage_release_volume(d, pool, name);
    return r;
}

int vo_volume_flatten(VoDaemon *d, const char *pool, const char *name, int64_t expected,
                      json_t **ret_task, char **ret_error)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    VoFlattenVolume f = { .key = key };
    int r = read_facts(d, pool, name, &f, ret_error);
    if (r >= 0 && f.pool_type && !strcmp(f.pool_type, "rbd")) {
        /* Ceph says whether it is a clone (also one no record names) and
         * whether its snapshots would stay bound to the parent (409). */
        VoRbdPool rp;
        if ((r = vo_storage_rbd_pool_of(d, pool, &rp, ret_error)) > 0) {
            VoRbdConf c = vo_rbd_pool_conf(&rp);
            r = vo_rbd_flatten_check(&c, name, &f.has_parent, ret_error);
            vo_rbd_pool_clear(&rp);
        }
    }
    if (r >= 0)
        r = vo_flatten_check(&f, ret_error);
    facts_clear(&f);
    if (r >= 0)
        r = vo_pool_check_reachable(d, pool, ret_error);
    _cleanup_free_ char *vm_key = NULL;
    if (r >= 0)
        r = claim(d, pool, name, expected, &vm_key, ret_error);
    if (r < 0)
        return r;
    FlattenOp *op = vo_malloc0(sizeof(*op));
    *op = (FlattenOp){ .d = d, .pool = vo_strdup(pool), .name = vo_strdup(name) };
    r = vo_tasks_submit(d->tasks,
                        &(VoTaskDesc){ .kind = "volume-flatten", .target = name,
                                       .target_id = key, .keys = { vm_key },
                                       .cancellable = true, .undo = flatten_undo },
                        task_volume_flatten, op, flatten_op_free, ret_task, ret_error);
    if (r < 0) {
        vo_storage_release_volume(d, pool, name);
        flatten_op_free(op);
    }
    return r < 0 ? r : 0;
}
