/* storage-tasks.c: the volume tasks: create, import, clone, resize, delete
 * (each a task of jobs/tasks.h on a reserved or claimed volume). Shares
 * storage-internal.h with the other storage files. */
#include "daemon/storage-internal.h"

#include <string.h>

#include "conf/names.h"
#include "daemon/host-id.h"
#include "daemon/rbd-dead-clients.h"
#include "state/keys.h"
#include "state/project-objects.h"
#include "storage/image-header.h"
#include "storage/iso.h"
#include "storage/volume-path.h"
#include "util/test-hold.h"

static VoOnlineResizeFn online_resize;

void vo_storage_set_online_resize(VoOnlineResizeFn fn)
{
    online_resize = fn;
}

static VoDiskGrowFn disk_grow;

void vo_storage_set_disk_grow(VoDiskGrowFn fn)
{
    disk_grow = fn;
}

typedef struct {
    VoDaemon *d;
    char *pool, *name, *format, *path;
    char *src_path, *src_format; /* import / clone source */
    bool src_owned;              /* delete src_path afterwards (uploads) */
    char *backing;               /* linked clone: backing key */
    uint64_t size;
    bool allow_shrink, linked;
    int64_t expected; /* delete: the revision the request named (If-Match), 0: any */
    int64_t grown;    /* resize: bytes its VM's project counts more (disk_grow) */
} VolumeOp;

static void volume_op_free(void *p)
{
    VolumeOp *op = p;
    if (op->src_owned && op->src_path)
        (void)unlink(op->src_path);
    free(op->pool);
    free(op->name);
    free(op->format);
    free(op->path);
    free(op->src_path);
    free(op->src_format);
    free(op->backing);
    free(op);
}

/* A create, import or clone cancelled before it ran: its reservation goes
 * (and a clone's source is free again). */
static void volume_op_undo(void *p)
{
    VolumeOp *op = p;
    vo_storage_finish_volume(op->d, op->pool, op->name, op->path, false, NULL, NULL);
    if (op->backing) {
        _cleanup_free_ char *src_pool = NULL, *src_name = NULL;
        if (vo_volume_key_split(op->backing, &src_pool, &src_name) >= 0)
            vo_storage_release_volume(op->d, src_pool, src_name);
    }
}

static VolumeOp *volume_op(VoDaemon *d, const char *pool, const char *name)
{
    VolumeOp *op = vo_malloc0(sizeof(*op));
    op->d = d;
    op->pool = vo_strdup(pool);
    op->name = vo_strdup(name);
    return op;
}

void vo_storage_report_progress(int percent, void *userdata)
{
    if (userdata) /* NULL: a copy outside a task (a VM's UEFI NVRAM) */
        vo_task_progress(userdata, percent, "copying data");
}

void vo_storage_show_bytes(VoTask *t, const char *message, uint64_t done, uint64_t total)
{
    if (t) /* NULL: work outside a task */
        vo_task_set_details(t, total ? (int)(done * 100 / total) : 0, message,
                            json_pack("{s:I, s:I}", "bytes_done", (json_int_t)done,
                                      "bytes_total", (json_int_t)total));
}

/* Fails a task with the error qemu-img gave, naming the volume. */
static int fail_volume_task(VoTask *t, int r, const char *what, const VolumeOp *op,
                            const char *error)
{
    if (r == -ENOSPC)
        return vo_task_fail(t, r, "cannot %s volume '%s/%s': the pool is full (%s)", what,
                            op->pool, op->name, error ? error : "no space left on device");
    return vo_task_fail(t, r, "cannot %s volume '%s/%s': %s", what, op->pool, op->name,
                        error ? error : strerror(-r));
}

/* qemu-img's progress into an RBD image (-p), as bytes of the image. */
static void show_import_bytes(uint64_t done, uint64_t total, void *task)
{
    vo_storage_show_bytes(task, "copying data", done, total);
}

static int task_volume_create(VoTask *t, void *userdata)
{
    VolumeOp *op = userdata;
    _cleanup_free_ char *error = NULL;
    int r;
    VoRbdPool rp = { 0 };
    bool rbd = false; /* an RBD image made (or tried), not a file */
    if (op->src_path) {
        vo_task_progress(t, 1, "converting");
        _cleanup_free_ char *src_format = NULL;
        int k = vo_storage_rbd_pool_of(op->d, op->pool, &rp, &error);
        rbd = k > 0;
        r = k < 0 ? k : vo_img_probe_import(op->src_path, &src_format, &error);
        /* An ISO is copied as it is (probing could take an ISO with a
         * partition table for something else). */
        bool iso = r >= 0 && vo_iso_probe(op->src_path) > 0;
        if (r >= 0 && k > 0) /* into a new RBD image, through QEMU's rbd driver */
            r = vo_storage_rbd_import(&rp, op->name, op->src_path, iso ? "raw" : src_format, 0,
                                      show_import_bytes, t, &error);
        else if (iso)
            r = vo_img_convert(op->src_path, "raw", op->path, "raw", vo_storage_report_progress, t,
                               &error);
        else if (r >= 0)
            r = vo_img_convert(op->src_path, src_format, op->path, op->format,
                               vo_storage_report_progress, t, &error);
        if (op->src_owned) { /* an upload: its temp file has served */
            (void)unlink(op->src_path);
            op->src_owned = false;
        }
    } else {
        vo_task_progress(t, 10, "creating");
        r = vo_storage_rbd_pool_of(op->d, op->pool, &rp, &error);
        rbd = r > 0;
        if (rbd) { /* an RBD image (thin), not a file */
            VoRbdConf c = vo_rbd_pool_conf(&rp);
            r = vo_rbd_image_create(&c, op->name, op->size, &error);
        } else if (r == 0)
            r = vo_img_create(op->path, op->format, op->size, NULL, NULL, &error);
    }
    if (rbd)
        r = vo_storage_rbd_volume_finish(op->d, op->pool, op->name, op->path, &rp, r, NULL, NULL,
                                         &error);
    else {
        int k = vo_storage_finish_volume(op->d, op->pool, op->name, op->path, r >= 0, NULL, NULL);
        if (r >= 0 && k < 0)
            r = k;
    }
    vo_rbd_pool_clear(&rp);
    return r < 0 ? fail_volume_task(t, r, op->src_path ? "import" : "create", op, error) : 0;
}

/* Volume pool/name, just reserved, counts bytes against project's disk
 * quota from now (state/project-objects.h; nothing without a project):
 * -VO_EQUOTA or -ENOENT (no such project) with words. */
static int claim_project(VoDaemon *d, const char *pool, const char *name, const char *project,
                         int64_t bytes, char **ret_error)
{
    if (!project)
        return 0;
    pthread_mutex_lock(&d->storage_lock);
    bool shared = vo_storage_pool_is_shared(d, pool);
    pthread_mutex_unlock(&d->storage_lock);
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    VoProjectObject o = { .kind = "volume", .scope = shared ? "shared" : d->host_id, .id = key };
    return vo_project_object_set(d->store, &o, project, bytes > 0 ? bytes : 0, d->host_id,
                                 ret_error);
}

/* The virtual size of image file path (its format probed when NULL), or 0
 * when qemu-img cannot tell (the import then fails on it anyway). */
static int64_t file_virtual_size(const char *path, const char *format)
{
    _cleanup_free_ char *probed = NULL, *error = NULL;
    if (!format && vo_img_probe_import(path, &probed, &error) < 0)
        return 0;
    VoImgInfo info = { 0 };
    int64_t size = 0;
    if (vo_img_info(path, format ? format : probed, &info, &error) >= 0 && info.n_layers)
        size = (int64_t)info.layers[0].virtual_size;
    vo_img_info_clear(&info);
    return size;
}

int vo_volume_create(VoDaemon *d, const VoVolumeCreateArgs *args, json_t **ret_task,
                     json_t **ret_volume, char **ret_error)
{
    const char *format = args->format ? args->format : "qcow2";
    if (!args->import_path && args->size_bytes == 0) {
        *ret_error = vo_strdup("size_bytes: give the size of the new volume (or import_path)");
        return -EINVAL;
    }
    if (args->size_bytes > (64ULL << 40)) {
        *ret_error = vo_strdup("size_bytes: out of range (up to 64 TiB)");
        return -EINVAL;
    }
    if (args->import_path && (args->import_path[0] != '/' || access(args->import_path, R_OK) < 0)) {
        *ret_error = vo_asprintf("import_path: '%s' is not a readable file (absolute path)",
                                 args->import_path);
        return -EINVAL;
    }
    /* An ISO 9660 image stays as it is: raw, with content "iso" (a CD-ROM's
     * medium). Detected by its signature, or asked for (then checked). */
    bool iso = false;
    if (args->import_path) {
        int k = vo_iso_probe(args->import_path);
        if (k < 0) {
            *ret_error = vo_asprintf("import_path: cannot read '%s': %s", args->import_path,
                                     strerror(-k));
            return -EINVAL;
        }
        iso = k > 0;
    }
    if (args->content && !iso) {
        *ret_error = vo_asprintf("content iso: '%s' is not an ISO 9660 image (no CD001 "
                                 "signature at byte %d)", args->import_path ? args->import_path
                                 : "", VO_ISO_SIGNATURE_OFFSET);
        return -EINVAL;
    }
    if (iso)
        format = "raw";
    VoRbdPool rp;
    int k = vo_storage_rbd_pool_of(d, args->pool, &rp, ret_error);
    if (k < 0)
        return k;
    if (k > 0) {
        vo_rbd_pool_clear(&rp);
        format = "raw"; /* an RBD image is raw: its thinness is Ceph's (an ISO too) */
    }
    VolumeOp *op = volume_op(d, args->pool, args->name);
    op->format = vo_strdup(format);
    op->size = args->size_bytes;
    op->src_path = vo_strdup(args->import_path);
    op->src_owned = args->import_owned;
    int r = vo_storage_reserve_volume(d, args->pool, args->name, format, &op->path, ret_error);
    if (r < 0) {
        op->src_owned = false; /* the caller still owns it on refusal */
        volume_op_free(op);
        return r;
    }
    if (iso) {
        pthread_mutex_lock(&d->storage_lock);
        VoVolume *v = vo_storage_volume_find(d, args->pool, args->name);
        if (v)
            v->content = vo_strdup("iso");
        pthread_mutex_unlock(&d->storage_lock);
    }
    int64_t bytes = !args->project ? 0 : args->import_path ? file_virtual_size(args->import_path,
                                                                               NULL)
                                                          : (int64_t)args->size_bytes;
    if ((r = claim_project(d, args->pool, args->name, args->project, bytes, ret_error)) < 0) {
        vo_storage_finish_volume(d, args->pool, args->name, op->path, false, NULL, NULL);
        op->src_owned = false;
        volume_op_free(op);
        return r;
    }
    /* A raw volume is fully allocated: refuse at once what cannot fit. */
    unsigned long long cap, avail, used;
    _cleanup_free_ char *dir = vo_strdup(op->path);
    *strrchr(dir, '/') = 0;
    if (!strcmp(format, "raw") && !args->import_path && k == 0 &&
        vo_fs_usage(dir, &cap, &avail, &used) >= 0 && args->size_bytes > avail) {
        *ret_error = vo_asprintf("pool '%s' has %llu bytes free; a raw volume of %llu bytes "
                                 "does not fit", args->pool, avail,
                                 (unsigned long long)args->size_bytes);
        vo_storage_finish_volume(d, args->pool, args->name, op->path, false, NULL, NULL);
        op->src_owned = false;
        volume_op_free(op);
        return -ENOSPC;
    }
    (void)vo_volume_get_json(d, args->pool, args->name, ret_volume, ret_error);
    _cleanup_free_ char *key = vo_asprintf("%s/%s", args->pool, args->name);
    VoTaskDesc desc = { .kind = args->import_path ? "volume-import" : "volume-create",
                        .target = args->name, .target_id = key,
                        .cancellable = args->import_path != NULL, .undo = volume_op_undo };
    r = vo_tasks_submit(d->tasks, &desc, task_volume_create, op, volume_op_free, ret_task,
                        ret_error);
    if (r < 0) { /* refused: the queue is full */
        vo_storage_finish_volume(d, args->pool, args->name, op->path, false, NULL, NULL);
        op->src_owned = false;
        volume_op_free(op);
        json_decref(*ret_volume);
        *ret_volume = NULL;
    }
    return r;
}

static int remove_volume(VoDaemon *d, const char *key, int64_t expected, char **ret_error);

/* An attach lock held for the length of a scope. */
void vo_storage_lease_keeper_stopp(VoLeaseKeeper **k)
{
    (void)vo_lease_keeper_stop(*k);
}

static int task_volume_delete(VoTask *t, void *userdata)
{
    VolumeOp *op = userdata;
    _cleanup_free_ char *key = vo_asprintf("%s/%s", op->pool, op->name);
    _cleanup_free_ char *error = NULL;
    int r = remove_volume(op->d, key, op->expected, &error);
    return r < 0 ? vo_task_fail(t, r, "%s", error) : 0;
}

/* Why a volume cannot go now, or NULL. */
static char *volume_in_use(VoDaemon *d, const char *pool, const char *name)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    _cleanup_free_ char *user = vo_storage_volume_user_name(d, key);
    if (user)
        return vo_asprintf("volume '%s' is attached to VM '%s'", key, user);
    pthread_mutex_lock(&d->storage_lock);
    size_t deps = vo_storage_volume_dependents(d, key);
    pthread_mutex_unlock(&d->storage_lock);
    if (deps)
        return vo_asprintf("volume '%s' backs %zu linked clone(s); delete them first", key, deps);
    return NULL;
}

int vo_volume_delete(VoDaemon *d, const char *pool, const char *name, int64_t expected,
                     json_t **ret_task, char **ret_error)
{
    int ri = vo_storage_iscsi_check(d, pool, "delete volumes of", ret_error);
    if (ri < 0)
        return ri;
    json_t *probe = NULL;
    int r = vo_volume_get_json(d, pool, name, &probe, ret_error);
    json_decref(probe);
    if (r < 0)
        return r;
    r = vo_pool_check_reachable(d, pool, ret_error);
    if (r < 0)
        return r;
    char *why = volume_in_use(d, pool, name);
    if (why) {
        *ret_error = why;
        return -EBUSY;
    }
    VolumeOp *op = volume_op(d, pool, name);
    op->expected = expected; /* compared by the task, where it deletes */
    r = vo_tasks_submit(d->tasks, &(VoTaskDesc){ .kind = "volume-delete", .target = name },
                        task_volume_delete, op, volume_op_free, ret_task, ret_error);
    if (r < 0)
        volume_op_free(op);
    return r;
}

int vo_volume_remove_now(VoDaemon *d, const char *key, char **ret_error)
{
    return remove_volume(d, key, 0, ret_error);
}

static int remove_volume(VoDaemon *d, const char *key, int64_t expected, char **ret_error)
{
    _cleanup_free_ char *pool = NULL, *name = NULL, *path = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0) {
        *ret_error = vo_asprintf("'%s' is not POOL/NAME", key);
        return -EINVAL;
    }
    /* Claimed first, so an attach or a linked clone that starts now is
     * refused, and one that finished before is seen by volume_in_use. */
    int r = vo_pool_check_reachable(d, pool, ret_error);
    if (r < 0)
        return r;
    r = vo_storage_claim_volume(d, pool, name, &path, NULL, ret_error);
    if (r < 0)
        return r;
    /* A shared volume: the attach lock too, so that no host attaches it
     * between the check below and the delete (it is dropped with its
     * lease when this returns). */
    _cleanup_(vo_storage_lease_keeper_stopp) VoLeaseKeeper *hold = NULL;
    if (vo_storage_key_is_shared(d, key) &&
        (r = vo_storage_attach_lock(d, pool, name, "deleted", ret_error)) < 0) {
        vo_storage_release_volume(d, pool, name);
        return r;
    }
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *held = vo_storage_volume_find(d, pool, name);
    if (held)
        hold = TAKE_PTR(held->attach_keeper);
    pthread_mutex_unlock(&d->storage_lock);
    char *why = volume_in_use(d, pool, name);
    if (why) {
        vo_storage_release_volume(d, pool, name);
        *ret_error = why;
        return -EBUSY;
    }
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    r = vo_storage_rev_is(expected, v->rev, "volume", key, ret_error);
    if (r < 0) {
        v->busy = false;
        pthread_mutex_unlock(&d->storage_lock);
        return r;
    }
    /* Once the document is gone the file is no one's: recorded, so that a
     * crash before the unlink leaves no file that blocks the name. */
    /* The file must be removable before its document goes: a pool
     * directory this host cannot write keeps both. */
    _cleanup_free_ char *dir = vo_strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (access(dir, W_OK | X_OK) < 0 && errno != ENOENT) {
        r = -errno;
        v->busy = false;
        *ret_error = vo_asprintf("cannot delete volume '%s': cannot remove its file from %s: %s",
                                 key, dir, strerror(-r));
        pthread_mutex_unlock(&d->storage_lock);
        return r;
    }
    r = vo_storage_begin_volume_intent(d, pool, name, path, v->shared, NULL);
    VoRbdPool rp;
    _cleanup_free_ char *rbd_error = NULL;
    /* An RBD image goes before its document: a refusal (open by a client)
     * keeps both. */
    int k = r >= 0 ? vo_storage_rbd_pool_of_locked(vo_storage_pool_find(d, pool), &rp, &rbd_error)
                   : 0;
    if (k > 0) {
        /* The cluster is asked without the lock (the volume stays claimed:
         * busy, so nothing else takes or removes it meanwhile). */
        pthread_mutex_unlock(&d->storage_lock);
        VoRbdConf c = vo_rbd_pool_conf(&rp);
        k = vo_rbd_remove_past_dead(&c, name, &rbd_error);
        vo_rbd_pool_clear(&rp);
        pthread_mutex_lock(&d->storage_lock);
        v = vo_storage_volume_find(d, pool, name);
    }
    if (k < 0 || !v) {
        if (!v) { /* dropped from the registry meanwhile */
            vo_storage_end_volume_intent(d, pool, name);
            *ret_error = vo_asprintf("volume '%s' does not exist", key);
            pthread_mutex_unlock(&d->storage_lock);
            return -ENOENT;
        }
        vo_storage_end_volume_intent(d, pool, name);
        v->busy = false;
        *ret_error = vo_asprintf("cannot delete volume '%s': %s", key, rbd_error);
        pthread_mutex_unlock(&d->storage_lock);
        return k;
    }
    if (r >= 0)
        r = vo_storage_delete_volume_doc(d, v);
    bool file_left = false;
    if (r >= 0) {
        if (unlink(path) < 0 && errno != ENOENT) {
            /* The intent stays: the sweep removes the file later. */
            log_warn("storage: cannot remove %s of deleted volume %s: %s (the sweep retries)",
                     path, key, strerror(errno));
            file_left = true;
        }
        /* Tests kill vireod here: its project's documents outlive it
         * (daemon/project-heal.h). */
        vo_test_hold("volume_forget_project");
        vo_storage_forget_project(d, pool, name, v->shared);
        vo_storage_registry_remove_volume(d, v);
    }
    if (!file_left)
        vo_storage_end_volume_intent(d, pool, name);
    if (r < 0) {
        v->busy = false;
        *ret_error = vo_asprintf("cannot delete volume '%s': %s", key, strerror(-r));
    }
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

static int task_volume_resize(VoTask *t, void *userdata)
{
    VolumeOp *op = userdata;
    _cleanup_free_ char *key = vo_asprintf("%s/%s", op->pool, op->name);
    _cleanup_free_ char *error = NULL;
    /* Attached to a running VM: QEMU resizes it and the guest sees it at once. */
    int r = online_resize ? online_resize(op->d, key, op->size, &error) : -ENOTCONN;
    if (r == -ENOTCONN) {
        free(TAKE_PTR(error));
        vo_task_progress(t, 20, "resizing");
        VoRbdPool rp;
        r = vo_storage_rbd_pool_of(op->d, op->pool, &rp, &error);
        if (r > 0) {
            VoRbdConf c = vo_rbd_pool_conf(&rp);
            r = vo_rbd_image_resize(&c, op->name, op->size, &error);
            vo_rbd_pool_clear(&rp);
        } else if (r == 0)
            r = vo_img_resize(op->path, op->format, op->size, op->allow_shrink, &error);
    }
    vo_storage_release_volume(op->d, op->pool, op->name);
    _cleanup_free_ char *ignored = NULL;
    if (r < 0 && op->grown && disk_grow) /* not grown: its VM's project counts it back */
        (void)disk_grow(op->d, key, -op->grown, &ignored);
    return r < 0 ? fail_volume_task(t, r, "resize", op, error) : 0;
}

int vo_volume_resize(VoDaemon *d, const char *pool, const char *name, uint64_t size,
                     bool allow_shrink, int64_t expected, json_t **ret_task, char **ret_error)
{
    int ri = vo_storage_iscsi_check(d, pool, "resize volumes of", ret_error);
    if (ri < 0)
        return ri;
    if (size == 0 || size > (64ULL << 40)) {
        *ret_error = vo_strdup("size_bytes: out of range (1 byte to 64 TiB)");
        return -EINVAL;
    }
    VolumeOp *op = volume_op(d, pool, name);
    op->size = size;
    op->allow_shrink = allow_shrink;
    int r = vo_storage_claim_volume(d, pool, name, &op->path, &op->format, ret_error);
    if (r < 0) {
        volume_op_free(op);
        return r;
    }
    /* If-Match while claimed: no other change of the volume runs now. */
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *claimed = vo_storage_volume_find(d, pool, name);
    _cleanup_free_ char *shown = vo_asprintf("%s/%s", pool, name);
    r = claimed ? vo_storage_rev_is(expected, claimed->rev, "volume", shown, ret_error) : 0;
    pthread_mutex_unlock(&d->storage_lock);
    if (r < 0) {
        vo_storage_release_volume(d, pool, name);
        volume_op_free(op);
        return r;
    }
    if (!strcmp(op->format, "qcow2") && size % 512) {
        *ret_error = vo_asprintf("size_bytes: %llu is not a multiple of 512; a qcow2 volume's "
                                 "size must be (e.g. %llu)", (unsigned long long)size,
                                 (unsigned long long)(size + 511) / 512 * 512);
        vo_storage_release_volume(d, pool, name);
        volume_op_free(op);
        return -EINVAL;
    }
    VoImgInfo info = { 0 };
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    VoRelationUser u;
    bool attached = vo_storage_volume_user(d, key, &u);
    _cleanup_free_ char *user = attached ? TAKE_PTR(u.name) : NULL;
    if (attached && !vo_storage_vm_is_here(d, u.vm_id) && vo_storage_key_is_shared(d, key)) {
        /* Its VM runs elsewhere: only that host may change the file under it. */
        *ret_error = vo_asprintf("volume '%s' is attached to VM '%s': resize it from that VM's "
                                 "host", key, user);
        vo_relation_user_clear(&u);
        vo_storage_release_volume(d, pool, name);
        volume_op_free(op);
        return -EBUSY;
    }
    /* An attached volume is resized through its VM (online, or under its job
     * lock): queued behind that VM's tasks, never on a worker waiting for it. */
    _cleanup_free_ char *vm_key = attached ? vo_key_vm_task(u.vm_id) : NULL;
    if (attached)
        vo_relation_user_clear(&u);
    if (vo_volume_is_live_base(d, key)) {
        *ret_error = vo_asprintf("volume '%s' backs linked clones and must stay as it is", key);
        vo_storage_release_volume(d, pool, name);
        volume_op_free(op);
        return -EBUSY;
    }
    uint64_t current = 0, rbd_used = 0;
    VoRbdPool rp;
    int k = vo_storage_rbd_pool_of(d, pool, &rp, ret_error);
    if (k > 0) { /* an RBD image: its size is the cluster's */
        VoRbdConf c = vo_rbd_pool_conf(&rp);
        r = vo_rbd_image_usage(&c, name, &current, &rbd_used, ret_error);
        vo_rbd_pool_clear(&rp);
    } else if (k < 0)
        r = k;
    else if ((r = vo_img_info(op->path, op->format, &info, ret_error)) >= 0)
        current = info.layers[0].virtual_size;
    if (r >= 0 && size < current) {
        if (!allow_shrink) {
            *ret_error = vo_asprintf("volume '%s' is %llu bytes; shrinking to %llu loses data: "
                                     "pass allow_shrink (--allow-shrink) to do it", key,
                                     (unsigned long long)current,
                                     (unsigned long long)size);
            r = -EINVAL;
        } else if (user) {
            *ret_error = vo_asprintf("volume '%s' is attached to VM '%s': detach it before "
                                     "shrinking", key, user);
            r = -EBUSY;
        }
    }
    vo_img_info_clear(&info);
    /* A disk of a VM here, or a volume of a project, that grows: the
     * project's disk quota is checked and the growth counted before the
     * task runs (the VM service's hook: vo_vm_volume_grow). */
    if (r >= 0 && size > current && disk_grow &&
        (r = disk_grow(d, key, (int64_t)(size - current), ret_error)) >= 0)
        op->grown = (int64_t)(size - current);
    if (r < 0) {
        vo_storage_release_volume(d, pool, name);
        volume_op_free(op);
        return r;
    }
    int64_t grown = op->grown; /* op is freed when the submit is refused */
    r = vo_tasks_submit(d->tasks,
                        &(VoTaskDesc){ .kind = "volume-resize", .target = name,
                                       .keys = { vm_key } },
                        task_volume_resize, op, volume_op_free, ret_task, ret_error);
    if (r < 0) {
        vo_storage_release_volume(d, pool, name);
        volume_op_free(op);
        _cleanup_free_ char *ignored = NULL;
        if (grown)
            (void)disk_grow(d, key, -grown, &ignored);
    }
    return r;
}

static int task_volume_clone(VoTask *t, void *userdata)
{
    VolumeOp *op = userdata;
    _cleanup_free_ char *error = NULL;
    int r;
    if (op->linked) {
        vo_task_progress(t, 20, "creating the overlay");
        r = vo_img_create(op->path, "qcow2", 0, op->src_path, op->src_format, &error);
    } else {
        vo_task_progress(t, 1, "copying");
        r = vo_img_convert(op->src_path, op->src_format, op->path, op->format,
                           vo_storage_report_progress, t, &error);
    }
    /* The clone is recorded (a linked one as a dependent of its base) before
     * the base is free again, so no attach slips in between. */
    int k = vo_storage_finish_volume(op->d, op->pool, op->name, op->path, r >= 0,
                                     op->linked ? op->backing : NULL, NULL);
    _cleanup_free_ char *src_pool = NULL, *src_name = NULL;
    (void)vo_volume_key_split(op->backing, &src_pool, &src_name);
    vo_storage_release_volume(op->d, src_pool, src_name);
    if (r >= 0 && k < 0)
        r = k;
    return r < 0 ? fail_volume_task(t, r, "clone into", op, error) : 0;
}

int vo_volume_clone(VoDaemon *d, const char *pool, const char *name, const char *target_key,
                    bool linked, const char *project, json_t **ret_task, json_t **ret_volume,
                    char **ret_error)
{
    int ri = vo_storage_iscsi_check(d, pool, "clone volumes of", ret_error);
    if (ri < 0)
        return ri;
    _cleanup_free_ char *dst_pool = NULL, *dst_name = NULL;
    if (!target_key || vo_volume_key_split(target_key, &dst_pool, &dst_name) < 0) {
        *ret_error = vo_asprintf("target: '%s' is not POOL/NAME", target_key ? target_key : "");
        return -EINVAL;
    }
    /* The copy below is of files: an RBD image is none (docs/storage-ceph.md). */
    if (vo_pool_is_rbd(d, pool) || vo_pool_is_rbd(d, dst_pool))
        return vo_error_set(ret_error, -EINVAL, "pool '%s' is an rbd pool: cloning volumes "
                            "from or into rbd pools is not supported yet (import the image "
                            "into it instead: vireo volume import)",
                            vo_pool_is_rbd(d, pool) ? pool : dst_pool);
    _cleanup_free_ char *src_key = vo_asprintf("%s/%s", pool, name);
    VolumeOp *op = volume_op(d, dst_pool, dst_name);
    op->linked = linked;
    op->backing = vo_strdup(src_key);
    /* The claim first (an attach in progress refuses it, and refuses an
     * attach from now on), then the VMs: one that attached before is seen. */
    int r = vo_storage_claim_volume(d, pool, name, &op->src_path, &op->src_format, ret_error);
    if (r < 0) {
        volume_op_free(op);
        return r;
    }
    VoRelationUser u;
    bool attached = vo_storage_volume_user(d, src_key, &u);
    bool running = attached && u.active;
    _cleanup_free_ char *src_user = attached ? TAKE_PTR(u.name) : NULL;
    if (attached)
        vo_relation_user_clear(&u);
    if (src_user && linked) {
        /* A linked clone's base must never be written again. */
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is attached to VM '%s': a linked "
                         "clone needs a base nobody writes; detach it or make a full clone",
                         src_key, src_user);
    } else if (running && src_user) {
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is in use by running VM '%s': stop "
                         "it first", src_key, src_user);
    }
    if (r < 0) {
        vo_storage_release_volume(d, pool, name);
        volume_op_free(op);
        return r;
    }
    op->format = vo_strdup(linked ? "qcow2" : op->src_format);
    r = vo_storage_reserve_volume(d, dst_pool, dst_name, op->format, &op->path, ret_error);
    if (r < 0) {
        vo_storage_release_volume(d, pool, name);
        volume_op_free(op);
        return r;
    }
    int64_t bytes = project ? file_virtual_size(op->src_path, op->src_format) : 0;
    if ((r = claim_project(d, dst_pool, dst_name, project, bytes, ret_error)) < 0) {
        vo_storage_release_volume(d, pool, name);
        vo_storage_finish_volume(d, dst_pool, dst_name, op->path, false, NULL, NULL);
        volume_op_free(op);
        return r;
    }
    (void)vo_volume_get_json(d, dst_pool, dst_name, ret_volume, ret_error);
    VoTaskDesc desc = { .kind = linked ? "volume-clone-linked" : "volume-clone",
                        .target = dst_name, .target_id = target_key, .cancellable = true,
                        .undo = volume_op_undo };
    r = vo_tasks_submit(d->tasks, &desc, task_volume_clone, op, volume_op_free, ret_task,
                        ret_error);
    if (r < 0) { /* refused: the queue is full */
        vo_storage_release_volume(d, pool, name);
        vo_storage_finish_volume(d, dst_pool, dst_name, op->path, false, NULL, NULL);
        volume_op_free(op);
        json_decref(*ret_volume);
        *ret_volume = NULL;
    }
    return r;
}

int vo_volume_set_shareable(VoDaemon *d, const char *pool, const char *name, bool shareable,
                            int64_t expected, char **ret_error)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    _cleanup_free_ char *path = NULL;
    /* Claimed while the VMs are asked, so no attach runs in between. */
    int r = vo_storage_claim_volume(d, pool, name, &path, NULL, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *user = vo_storage_volume_user_name(d, key);
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    if (v)
        v->busy = false;
    if (!v) {
        *ret_error = vo_asprintf("volume '%s' does not exist", key);
        r = -ENOENT;
    } else if ((r = vo_storage_rev_is(expected, v->rev, "volume", key, ret_error)) < 0) {
        /* If-Match, under the lock the save below holds: nothing changes */
    } else if (user) {
        *ret_error = vo_asprintf("volume '%s' is attached to VM '%s': detach it first", key, user);
        r = -EBUSY;
    } else {
        bool old = v->shareable;
        v->shareable = shareable;
        r = vo_storage_save_volume(d, v);
        if (r < 0) {
            v->shareable = old;
            *ret_error = vo_asprintf("cannot save volume '%s': %s", key, strerror(-r));
        }
    }
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

int vo_volume_file(VoDaemon *d, const char *pool, const char *name, char **ret_path,
                   char **ret_error)
{
    int ri = vo_storage_iscsi_check(d, pool, "download volumes of", ret_error);
    if (ri < 0)
        return ri;
    if (vo_pool_is_rbd(d, pool))
        return vo_error_set(ret_error, -EINVAL, "pool '%s' is an rbd pool: its volumes are "
                            "RBD images, not files, and cannot be downloaded yet (use rbd "
                            "export on the Ceph side)", pool);
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    VoPool *p = vo_storage_pool_find(d, pool);
    int r = 0;
    if (!v || !p || !v->ready) {
        *ret_error = vo_asprintf("volume '%s/%s' does not exist", pool, name);
        r = -ENOENT;
    } else
        *ret_path = vo_volume_path(p->path, v->name, v->format);
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

int vo_volume_upload_path(VoDaemon *d, const char *pool, const char *name, char **ret_path,
                          char **ret_error)
{
    int ri = vo_storage_iscsi_check(d, pool, "upload volumes to", ret_error);
    if (ri < 0)
        return ri;
    if (!vo_name_valid(name)) {
        *ret_error = vo_asprintf("volume name: '%s' is invalid", name);
        return -EINVAL;
    }
    /* Named after this host: a pool may be shared, and each host's start
     * sweeps only its own uploads (sweep.c). */
    _cleanup_free_ char *host = vo_host_id(d);
    if (!host) {
        *ret_error = vo_asprintf("cannot read or make this host's id (%s/host-id)", d->state_dir);
        return -EIO;
    }
    pthread_mutex_lock(&d->storage_lock);
    int r = 0;
    VoPool *p = vo_storage_pool_for_new_volume(d, pool, name, &r, ret_error);
    if (p)
        *ret_path = vo_asprintf("%s/.upload-%s-%s-XXXXXX", p->path, host, name);
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}
