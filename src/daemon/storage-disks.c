/* storage-disks.c: volumes for VM disks: made with a VM, attached (the attach
 * rule and a shared volume's attach lock), freed; rbd volumes made from
 * images. Shares storage-internal.h with the other storage files. */
#include "daemon/storage-internal.h"

#include <dirent.h>
#include <string.h>

#include "daemon/migrate-safe.h"
#include "storage/image-header.h"
#include "storage/iso.h"
#include "storage/rbd-vm-clone.h"
#include "storage/volume-path.h"

/* A new volume pool/name of rbd pool rp: reserved, made (a linked clone of
 * image clone_of's base, or src imported, at least size bytes), recorded;
 * nothing stays when the import or clone fails. */
/* vo_storage_finish_volume for the RBD image of volume pool/name, made (r >= 0) or
 * not: marked as the volume's first (a crash before its document is saved
 * leaves the intent, and the sweep removes the image it names only with
 * the mark: storage-rbd.h); removed when its document cannot be saved, so
 * no image stays that no volume names. r, or the error that came after. */
int vo_storage_rbd_volume_finish(VoDaemon *d, const char *pool, const char *name, const char *path,
                                 const VoRbdPool *rp, int r, const char *backing,
                                 const char *image, char **ret_error)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    VoRbdConf c = vo_rbd_pool_conf(rp);
    if (r >= 0 && (r = vo_rbd_image_mark(&c, name, key, ret_error)) < 0)
        (void)vo_rbd_image_remove(&c, name, NULL);
    if (r >= 0 && vo_migrate_fault("rbd-volume-exit-before-save")) /* test: vireod dies */
        _exit(70);
    int k = vo_storage_finish_volume(d, pool, name, path, r >= 0, backing, image);
    if (r >= 0 && k < 0) {
        r = vo_error_set(ret_error, k, "cannot save volume '%s': %s", key, strerror(-k));
        _cleanup_free_ char *ignored = NULL;
        if (vo_rbd_image_remove(&c, name, &ignored) < 0)
            log_warn("storage: kept RBD image %s/%s of volume %s, whose document was not "
                     "saved: %s", rp->pool, name, key, ignored);
    }
    return r;
}

/* What a new rbd volume is made of: a linked clone of image clone_of's
 * base, src imported, a backup's chain (layers, top first) imported, or
 * (a VM clone's disk) a copy of image copy_of of the same Ceph pool, or a
 * linked clone of it (linked_to, its volume key, recorded as the backing). */
typedef struct {
    const char *src, *src_format, *clone_of, *copy_of, *linked_to;
    uint64_t size;
    char *const *layers;
    size_t n_layers;
} RbdSource;

static void show_copy_bytes(uint64_t done, uint64_t total, void *task)
{
    vo_storage_show_bytes(task, "copying the RBD image", done, total);
}

static void show_import_bytes(uint64_t done, uint64_t total, void *task)
{
    vo_storage_show_bytes(task, "copying the image into Ceph", done, total);
}

static int rbd_volume_make(VoDaemon *d, const char *pool, const char *name, const VoRbdPool *rp,
                           const RbdSource *from, VoTask *task, char **ret_path,
                           char **ret_error)
{
    _cleanup_free_ char *path = NULL;
    int r = vo_storage_reserve_volume(d, pool, name, "raw", &path, ret_error);
    if (r < 0)
        return r;
    if (task && !from->copy_of)
        vo_task_progress(task, 40, from->clone_of ? "cloning the image's base in RBD"
                                                  : "copying the image into RBD");
    VoRbdConf c = vo_rbd_pool_conf(rp);
    if (from->clone_of)
        r = vo_storage_rbd_clone_image(rp, from->clone_of, from->src, from->src_format, name,
                                       from->size, ret_error);
    else if (from->copy_of && from->linked_to)
        r = vo_rbd_image_clone_linked(&c, from->copy_of, name, ret_error);
    else if (from->copy_of)
        r = vo_rbd_image_copy(&c, from->copy_of, name, show_copy_bytes, task, ret_error);
    else if (from->layers)
        r = vo_storage_rbd_import_chain(rp, name, from->layers, from->n_layers, ret_error);
    else
        r = vo_storage_rbd_import(rp, name, from->src, from->src_format, from->size,
                                  show_import_bytes, task, ret_error);
    r = vo_storage_rbd_volume_finish(d, pool, name, path, rp, r, from->linked_to,
                                     from->clone_of, ret_error);
    if (r >= 0)
        *ret_path = TAKE_PTR(path);
    return r;
}

int vo_volume_create_rbd_copy(VoDaemon *d, const char *src_key, const char *name, bool linked,
                              VoTask *task, char **ret_path, char **ret_error)
{
    _cleanup_free_ char *pool = NULL, *src = NULL;
    if (vo_volume_key_split(src_key, &pool, &src) < 0)
        return vo_error_set(ret_error, -EINVAL, "'%s' is not POOL/NAME", src_key);
    VoRbdPool rp;
    int r = vo_storage_rbd_pool_of(d, pool, &rp, ret_error);
    if (r == 0)
        return vo_error_set(ret_error, -EINVAL, "pool '%s' is not an rbd pool", pool);
    if (r < 0)
        return r;
    RbdSource from = { .copy_of = src, .linked_to = linked ? src_key : NULL };
    r = rbd_volume_make(d, pool, name, &rp, &from, task, ret_path, ret_error);
    vo_rbd_pool_clear(&rp);
    return r;
}

int vo_volume_create_from_base(VoDaemon *d, const char *pool, const char *name,
                               const char *base_path, const char *base_format,
                               const char *base_image, bool full_clone, uint64_t size,
                               VoTask *task, char **ret_path, char **ret_error)
{
    _cleanup_free_ char *path = NULL;
    VoRbdPool rp;
    int r = vo_storage_rbd_pool_of(d, pool, &rp, ret_error);
    if (r > 0) { /* an rbd pool: an RBD clone of the image's base, or a full copy */
        bool linked = !full_clone && base_image;
        RbdSource from = { .src = base_path, .src_format = base_format, .size = size,
                           .clone_of = linked ? base_image : NULL };
        r = rbd_volume_make(d, pool, name, &rp, &from, task, ret_path, ret_error);
        vo_rbd_pool_clear(&rp);
        return r;
    }
    if (r < 0)
        return r;
    r = vo_storage_reserve_volume(d, pool, name, "qcow2", &path, ret_error);
    if (r < 0)
        return r;
    if (full_clone) {
        r = vo_img_convert(base_path, base_format, path, "qcow2", vo_storage_report_progress, task,
                           ret_error);
        if (r >= 0 && size)
            r = vo_img_resize(path, "qcow2", size, false, ret_error);
    } else
        r = vo_img_create(path, "qcow2", size, base_path, base_format, ret_error);
    int k = vo_storage_finish_volume(d, pool, name, path, r >= 0, NULL,
                                     full_clone ? NULL : base_image);
    if (r >= 0 && k < 0) {
        *ret_error = vo_asprintf("cannot save volume '%s/%s': %s", pool, name, strerror(-k));
        r = k;
    }
    if (r >= 0)
        *ret_path = TAKE_PTR(path);
    return r;
}

int vo_volume_create_from_chain(VoDaemon *d, const char *pool, const char *name,
                                char *const *layers, size_t n_layers, uint64_t rate,
                                VoTask *task, char **ret_path, char **ret_error)
{
    _cleanup_free_ char *path = NULL;
    VoRbdPool rp;
    int r = vo_storage_rbd_pool_of(d, pool, &rp, ret_error);
    if (r > 0) { /* an rbd pool: a new RBD image filled through QEMU's rbd driver; the
                  * caller checked the chain (each layer backed by the next), which is
                  * opened by those names only, as for a dir pool's copy */
        RbdSource from = { .layers = layers, .n_layers = n_layers };
        r = rbd_volume_make(d, pool, name, &rp, &from, task, ret_path, ret_error);
        vo_rbd_pool_clear(&rp);
        return r;
    }
    if (r < 0)
        return r;
    r = vo_storage_reserve_volume(d, pool, name, "qcow2", &path, ret_error);
    if (r < 0)
        return r;
    r = vo_img_convert_chain(layers, n_layers, path, "qcow2", rate, vo_storage_report_progress,
                             task, ret_error);
    int k = vo_storage_finish_volume(d, pool, name, path, r >= 0, NULL, NULL);
    if (r >= 0 && k < 0) {
        *ret_error = vo_asprintf("cannot save volume '%s/%s': %s", pool, name, strerror(-k));
        r = k;
    }
    if (r >= 0)
        *ret_path = TAKE_PTR(path);
    return r;
}

int vo_volume_create_iso(VoDaemon *d, const char *pool, const char *name, const char *iso_path,
                         VoTask *task, char **ret_error)
{
    _cleanup_free_ char *path = NULL;
    VoRbdPool rp;
    int r = vo_storage_rbd_pool_of(d, pool, &rp, ret_error);
    if (r > 0) {
        vo_rbd_pool_clear(&rp);
        return vo_error_set(ret_error, -EINVAL, "pool '%s' is an rbd pool: a VM import copies "
                            "an ISO into a dir pool only (vireo volume import puts one into an "
                            "rbd pool)", pool);
    }
    if (r < 0)
        return r;
    if (vo_iso_probe(iso_path) <= 0)
        return vo_error_set(ret_error, -EINVAL, "'%s' is not an ISO 9660 image", iso_path);
    if ((r = vo_storage_reserve_volume(d, pool, name, "raw", &path, ret_error)) < 0)
        return r;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    if (v)
        v->content = vo_strdup("iso");
    pthread_mutex_unlock(&d->storage_lock);
    r = vo_img_convert(iso_path, "raw", path, "raw", vo_storage_report_progress, task, ret_error);
    int k = vo_storage_finish_volume(d, pool, name, path, r >= 0, NULL, NULL);
    if (r >= 0 && k < 0)
        r = vo_error_set(ret_error, k, "cannot save volume '%s/%s': %s", pool, name,
                         strerror(-k));
    return r;
}

int vo_volume_create_empty(VoDaemon *d, const char *pool, const char *name, const char *format,
                           uint64_t size, VoTask *task, char **ret_path, char **ret_error)
{
    _cleanup_free_ char *path = NULL;
    int r = vo_storage_reserve_volume(d, pool, name, format, &path, ret_error);
    if (r < 0)
        return r;
    r = vo_img_create(path, format, size, NULL, NULL, ret_error);
    int k = vo_storage_finish_volume(d, pool, name, path, r >= 0, NULL, NULL);
    if (r >= 0 && k < 0)
        r = k;
    if (r >= 0)
        *ret_path = TAKE_PTR(path);
    return r;
}

char *vo_volume_free_name(VoDaemon *d, const char *pool, const char *prefix)
{
    return vo_volume_free_name_as(d, pool, prefix, "disk");
}

char *vo_volume_free_name_as(VoDaemon *d, const char *pool, const char *prefix,
                             const char *kind)
{
    pthread_mutex_lock(&d->storage_lock);
    char *name = NULL;
    for (int i = 0; i < 1000 && !name; i++) {
        char *candidate = vo_asprintf("%.50s-%s%d", prefix, kind, i);
        if (!vo_storage_volume_find(d, pool, candidate))
            name = candidate;
        else
            free(candidate);
    }
    pthread_mutex_unlock(&d->storage_lock);
    return name;
}

bool vo_volume_is_base(VoDaemon *d, const char *key)
{
    pthread_mutex_lock(&d->storage_lock);
    bool base = vo_storage_volume_dependents(d, key) > 0;
    pthread_mutex_unlock(&d->storage_lock);
    return base;
}

bool vo_volume_is_live_base(VoDaemon *d, const char *key)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) >= 0 && vo_pool_is_rbd(d, pool))
        return false;
    return vo_volume_is_base(d, key);
}

int vo_volume_gone_here(VoDaemon *d, const char *key)
{
    _cleanup_free_ char *pool = NULL, *name = NULL, *doc_key = NULL, *text = NULL;
    int64_t rev = 0;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return -EINVAL;
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, pool);
    int r = !p || p->shared ? -EAGAIN : vo_storage_volume_find(d, pool, name) ? 0 : 1;
    pthread_mutex_unlock(&d->storage_lock);
    if (r <= 0)
        return r;
    /* Nor a document the registry skipped (damaged). */
    doc_key = vo_storage_volume_doc_key(false, pool, name);
    r = vo_store_get(d->store, doc_key, &text, &rev);
    return r == -ENOENT ? 1 : r < 0 ? r : 0;
}

bool vo_pool_exists(VoDaemon *d, const char *name)
{
    pthread_mutex_lock(&d->storage_lock);
    bool exists = vo_storage_pool_find(d, name) != NULL;
    pthread_mutex_unlock(&d->storage_lock);
    return exists;
}

int vo_shared_pool_path(VoDaemon *d, const char *name, char **ret_path, bool *ret_reachable,
                        char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, name);
    int r = 0;
    if (!p)
        r = vo_error_set(ret_error, -ENOENT, "pool '%s' does not exist", name);
    else if (!p->shared)
        r = vo_error_set(ret_error, -EINVAL, "pool '%s' is not a shared pool: images are kept "
                         "in shared pools (or on the host, without pool)", name);
    else {
        *ret_path = vo_strdup(p->path);
        if (ret_reachable)
            *ret_reachable = p->reach == VO_POOL_REACHABLE;
    }
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

int vo_volume_lookup(VoDaemon *d, const char *key, char **ret_path, char **ret_format,
                     bool *ret_shareable, char **ret_error)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0) {
        *ret_error = vo_asprintf("volume: '%s' is not POOL/NAME", key);
        return -EINVAL;
    }
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    VoPool *p = vo_storage_pool_find(d, pool);
    int r = 0;
    if (!v || !p || !v->ready) {
        *ret_error = vo_asprintf("volume '%s' does not exist", key);
        r = -ENOENT;
    } else {
        *ret_path = vo_volume_path(p->path, v->name, v->format);
        *ret_format = vo_strdup(v->format);
        if (ret_shareable)
            *ret_shareable = v->shareable;
    }
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

int vo_volume_check_iso(VoDaemon *d, const char *key, char **ret_error)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return vo_error_set(ret_error, -EINVAL, "cdrom: '%s' is not POOL/NAME", key);
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    int r = 0;
    if (!v || !v->ready)
        r = vo_error_set(ret_error, -ENOENT, "cdrom: volume '%s' does not exist", key);
    else if (!v->content || strcmp(v->content, "iso"))
        r = vo_error_set(ret_error, -EINVAL, "cdrom: volume '%s' is a disk, not an ISO image "
                         "(import an .iso file with vireo volume import)", key);
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

char *vo_volume_key_of_path(VoDaemon *d, const char *path)
{
    char want[PATH_MAX], real[PATH_MAX];
    bool resolved = realpath(path, want) != NULL;
    char *key = NULL;
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_volumes && !key; i++) {
        VoVolume *v = d->volumes[i];
        VoPool *p = vo_storage_pool_find(d, v->pool);
        _cleanup_free_ char *file = p ? vo_volume_path(p->path, v->name, v->format) : NULL;
        if (file && (!strcmp(file, path) ||
                     (resolved && realpath(file, real) && !strcmp(real, want))))
            key = vo_asprintf("%s/%s", v->pool, v->name);
    }
    pthread_mutex_unlock(&d->storage_lock);
    return key;
}

/* A shared volume that is not shareable is attached by one VM of the whole
 * cluster: the host attaching it holds cluster/volume-attach/POOL/NAME (made
 * new, on a lease, so a host that dies drops it) from before it checks
 * every host's VMs until its VM's relation is recorded (release). Of two
 * hosts attaching at once, one gets the lock; the other, once it is free,
 * sees the first one's VM. The lock is made in one transaction with a
 * compare of the volume's document at the revision this host knows, so a
 * delete (which holds the lock too) and an attach on two hosts cannot both
 * succeed. A keeper renews its lease until release, however long the
 * attach takes; vo_volume_attach_confirm checks it still holds. doing:
 * NULL for an attach, else what the holder does to the volume ("deleted"),
 * recorded in the lock so that an attach refused by it says so (not "being
 * attached", whose advice, to mark it shareable, would pass the lock by). */
int vo_storage_attach_lock(VoDaemon *d, const char *pool, const char *name, const char *doing,
                           char **ret_error)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    _cleanup_free_ char *lock = vo_asprintf(VO_VOLUME_ATTACH_PREFIX "%s", key);
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *known = vo_storage_volume_find(d, pool, name);
    int64_t vol_rev = known ? known->rev : 0;
    _cleanup_free_ char *vol_key =
        known ? vo_storage_volume_doc_key(known->shared, pool, name) : NULL;
    pthread_mutex_unlock(&d->storage_lock);
    if (!vol_rev)
        return vo_error_set(ret_error, -ENOENT, "volume '%s' does not exist", key);
    int64_t lease = 0;
    int r = d->store->ops->lease_grant(d->store, VO_VOLUME_ATTACH_TTL_MS, &lease);
    if (r < 0)
        return vo_error_set(ret_error, r, "volume '%s': cannot take the attach lock: %s", key,
                            strerror(-r));
    json_t *doc = json_pack("{s:s?, s:s?, s:s?}", "host", d->host_id, "host_name", d->host_name,
                            "doing", doing);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    VoStoreCompare cmps[] = { { .key = lock, .expected_rev = VO_REV_NEW },
                              { .key = vol_key, .expected_rev = vol_rev } };
    VoStoreOp ops[] = { { .kind = VO_STORE_PUT, .key = lock, .value = text, .lease = lease } };
    size_t failed = 0;
    r = vo_store_txn(d->store, cmps, 2, ops, 1, NULL, &failed);
    if ((r == -ESTALE || r == -ENOENT) && failed == 1) {
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' was changed or deleted on another host "
                         "meanwhile; look at it again and retry", key);
    } else if (r == -EEXIST) {
        _cleanup_free_ char *holder = NULL;
        json_t *h = vo_store_get(d->store, lock, &holder, NULL) >= 0 ? json_loads(holder, 0, NULL)
                                                                     : NULL;
        const char *who = json_string_value(json_object_get(h, "host_name"));
        const char *what = json_string_value(json_object_get(h, "doing"));
        if (what)
            r = vo_error_set(ret_error, -EBUSY, "volume '%s' is being %s on host '%s'", key, what,
                             who ? who : "?");
        else
            r = vo_error_set(ret_error, -EBUSY, "volume '%s' is being attached to a VM on host "
                             "'%s' (mark it shareable to share it)", key, who ? who : "?");
        json_decref(h);
    } else if (r < 0) {
        r = vo_error_set(ret_error, r, "volume '%s': cannot take the attach lock: %s", key,
                         strerror(-r));
    } else {
        VoRelationUser u;
        _cleanup_free_ char *host = NULL;
        int k = vo_storage_any_host_volume_user(d, key, &u, &host);
        if (k != 0) {
            r = vo_error_set(ret_error, -EBUSY, "volume '%s' is already attached to VM '%s'%s%s%s "
                             "(mark it shareable to share it)", key, k > 0 ? u.name : "?",
                             host ? " on host '" : "", host ? host : "", host ? "'" : "");
            if (k > 0)
                vo_relation_user_clear(&u);
        }
    }
    if (r < 0) {
        (void)d->store->ops->lease_revoke(d->store, lease);
        return r;
    }
    VoLeaseKeeper *keeper = vo_lease_keeper_start(d->store, lease, VO_VOLUME_ATTACH_TTL_MS);
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    if (v) {
        (void)vo_lease_keeper_stop(v->attach_keeper); /* none expected */
        v->attach_keeper = TAKE_PTR(keeper);
    }
    pthread_mutex_unlock(&d->storage_lock);
    (void)vo_lease_keeper_stop(keeper);
    return v ? 0 : vo_error_set(ret_error, -ENOENT, "volume '%s' does not exist", key);
}

int vo_volume_attach_confirm(VoDaemon *d, const char *key, char **ret_error)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return 0;
    /* Under storage_lock so the keeper is not stopped meanwhile; the renewal
     * is one store call, bounded by the store's timeout. */
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    bool locked = v && v->shared && !v->shareable;
    int r = 0;
    if (locked && !v->attach_keeper)
        r = -ENOENT;
    else if (locked)
        r = vo_lease_keeper_confirm(v->attach_keeper);
    pthread_mutex_unlock(&d->storage_lock);
    if (!v)
        return vo_error_set(ret_error, -EBUSY, "volume '%s' was deleted meanwhile", key);
    if (r == -ENOENT)
        return vo_error_set(ret_error, -EBUSY, "volume '%s': this host lost its attach lock "
                            "(cluster/volume-attach/%s expired) before the VM's definition "
                            "named the disk, so another host may attach it; try again", key, key);
    if (r < 0)
        return vo_error_set(ret_error, r, "volume '%s': cannot renew the attach lock: %s", key,
                            strerror(-r));
    return 0;
}

int vo_volume_attach_claim(VoDaemon *d, const char *key, char **ret_path, char **ret_format,
                           bool *ret_shareable, char **ret_error)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return vo_error_set(ret_error, -EINVAL, "volume: '%s' is not POOL/NAME", key);
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    VoPool *p = vo_storage_pool_find(d, pool);
    size_t deps = v ? vo_storage_volume_dependents(d, key) : 0;
    int r = 0;
    if (!v || !p || !v->ready)
        r = vo_error_set(ret_error, -ENOENT, "volume '%s' does not exist", key);
    else if ((r = vo_storage_pool_unreachable(p, ret_error)) < 0)
        ;
    else if (deps)
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' backs linked clones: attaching it "
                         "would let a VM write under them; clone it instead", key);
    else if (v->busy)
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is busy with another operation (a "
                         "clone, resize or delete); try again when it is done", key);
    else if (v->attaching && !v->shareable)
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is being attached to another VM (mark "
                         "it shareable to share it)", key);
    else {
        v->attaching++;
        *ret_path = vo_volume_path(p->path, v->name, v->format);
        *ret_format = vo_strdup(v->format);
        *ret_shareable = v->shareable;
    }
    bool cluster_claim = r == 0 && v->shared && !v->shareable;
    pthread_mutex_unlock(&d->storage_lock);
    if (cluster_claim && (r = vo_storage_attach_lock(d, pool, name, NULL, ret_error)) < 0) {
        vo_volume_attach_release(d, key);
        free(TAKE_PTR(*ret_path));
        free(TAKE_PTR(*ret_format));
    }
    return r;
}

void vo_volume_attach_release(VoDaemon *d, const char *key)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    if (v && v->attaching)
        v->attaching--;
    VoLeaseKeeper *keeper = v && !v->attaching ? TAKE_PTR(v->attach_keeper) : NULL;
    pthread_mutex_unlock(&d->storage_lock);
    /* The attach lock goes with its lease; by now the VM's relation is
     * recorded (or the add failed), so the next host sees it. */
    if (keeper) {
        int r = vo_lease_keeper_stop(keeper);
        if (r < 0 && r != -ENOENT)
            log_warn("storage: cannot drop the attach lock of %s: %s", key, strerror(-r));
    }
}
