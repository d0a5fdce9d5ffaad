/* storage-reserve.c: volume reservations: a name taken before its files are
 * made (an intent the sweep honours, a shared pool's .creating lock), then the
 * volume recorded or dropped; a volume claimed by an operation (busy). Shares
 * storage-internal.h with the other storage files. */
#include "daemon/storage-internal.h"

#include <fcntl.h>
#include <string.h>

#include "conf/names.h"
#include "daemon/sweep-kept.h"
#include "daemon/sweep.h"
#include "storage/volume-path.h"

/* The new volume's file is half-made until its document is saved: recorded
 * so that a crash meanwhile leaves nothing that blocks the name (sweep.h). */
int vo_storage_begin_volume_intent(VoDaemon *d, const char *pool, const char *name,
                                   const char *path, bool shared, const char *lock)
{
    _cleanup_free_ char *key = vo_asprintf("volumes/%s/%s", pool, name);
    /* The owner is the volume's document: the cluster's for a shared one. */
    _cleanup_free_ char *owner = vo_storage_volume_doc_key(shared, pool, name);
    const char *paths[] = { path, lock };
    return vo_intent_begin(d, key, owner, paths, lock ? 2 : 1);
}

/* In a shared pool, the host making volume file path holds path.creating
 * (made exclusively) until the volume is saved or dropped: of two hosts
 * making one name at once, one gets it, and the other never removes a file
 * it did not make. A crash leaves it to the sweep (the intent names it). */
static char *creating_lock(const char *path)
{
    return vo_asprintf("%s.creating", path);
}

/* Caller holds storage_lock. Whether a create of this host holds lock (a
 * volume of pool being made whose .creating it is). */
bool vo_storage_creating_is_live(VoDaemon *d, const char *pool, const char *lock)
{
    VoPool *p = vo_storage_pool_find(d, pool);
    for (size_t i = 0; p && i < d->n_volumes; i++) {
        VoVolume *v = d->volumes[i];
        if (strcmp(v->pool, pool) || v->ready)
            continue;
        _cleanup_free_ char *path = vo_volume_path(p->path, v->name, v->format);
        _cleanup_free_ char *mine = path ? creating_lock(path) : NULL;
        if (mine && !strcmp(mine, lock))
            return true;
    }
    return false;
}

void vo_storage_end_volume_intent(VoDaemon *d, const char *pool, const char *name)
{
    _cleanup_free_ char *key = vo_asprintf("volumes/%s/%s", pool, name);
    vo_intent_end(d, key);
}

/* Caller holds storage_lock. */
bool vo_storage_pool_is_shared(VoDaemon *d, const char *name)
{
    VoPool *p = vo_storage_pool_find(d, name);
    return p && p->shared;
}

/* Creates the .creating lock at path holding this host's id, failing when
 * one is there. */
static bool create_placeholder(VoDaemon *d, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return false;
    const char *id = d->host_id ? d->host_id : "";
    bool ok = write(fd, id, strlen(id)) == (ssize_t)strlen(id);
    close(fd);
    if (!ok)
        (void)unlink(path);
    return ok;
}

/* The host id a .creating lock names ("" for one of an older vireod). */
char *vo_storage_creating_holder(const char *path)
{
    char *text = NULL;
    if (vo_read_file(path, 256, &text, NULL) < 0)
        return NULL;
    text[strcspn(text, "\n")] = '\0';
    return text;
}

/* Caller holds storage_lock, and vo_storage_pool_for_new_volume found no volume of
 * this name in the registry. A .creating lock left by a crash: this host's
 * own (no create of this host runs on the name), or, in a cluster, one of a
 * host that has no live record (cluster/hosts/<id> gone: it is down). Such
 * a lock is moved aside (atomically, so of two hosts breaking it only one
 * gets it) and removed; true when it was broken. */
static bool break_stale_creating(VoDaemon *d, const char *lock)
{
    _cleanup_free_ char *holder = vo_storage_creating_holder(lock);
    size_t hex = holder ? strspn(holder, "0123456789abcdef") : 0;
    if (!holder || hex < 8 || hex > 64 || holder[hex]) /* host-id.c's form */
        return false;
    bool own = d->host_id && !strcmp(holder, d->host_id);
    if (!own) {
        if (!d->cluster)
            return false; /* standalone hosts sharing a directory: cannot tell */
        _cleanup_free_ char *key = vo_asprintf("cluster/hosts/%s", holder);
        if (vo_store_get(d->store, key, NULL, NULL) != -ENOENT)
            return false;
    }
    _cleanup_free_ char *aside = vo_asprintf("%s.stale-%s", lock, d->host_id ? d->host_id : "");
    if (rename(lock, aside) < 0)
        return false;
    _cleanup_free_ char *moved = vo_storage_creating_holder(aside);
    if (!moved || strcmp(moved, holder)) {
        /* A fresh lock made meanwhile: it goes back (unless yet another is there). */
        if (link(aside, lock) < 0)
            log_warn("storage: %s was moved aside while fresh; it is %s", lock, aside);
        (void)unlink(aside);
        return false;
    }
    (void)unlink(aside);
    log_info("storage: removed %s, left by %s", lock,
             own ? "this host (a crash)" : "a host that is down");
    return true;
}

/* Reserves pool/name for a new volume (busy, not ready) and returns its path.
 * The reservation is what makes two creates of one name impossible. */
int vo_storage_reserve_volume(VoDaemon *d, const char *pool, const char *name, const char *format,
                              char **ret_path, char **ret_error)
{
    if (!vo_name_valid(name)) {
        *ret_error = vo_asprintf("volume name: '%s' is invalid: use 1-63 characters of a-z, "
                                 "0-9 and '-', not starting with '-'", name ? name : "");
        return -EINVAL;
    }
    if (strcmp(format, "qcow2") && strcmp(format, "raw")) {
        *ret_error = vo_asprintf("format: '%s' is not qcow2 or raw", format);
        return -EINVAL;
    }
    /* An RBD image of this name a crash left while Ceph did not answer. */
    int r = vo_sweep_kept_finish_volume(d, pool, name, ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_for_new_volume(d, pool, name, &r, ret_error);
    _cleanup_free_ char *path = p ? vo_volume_path(p->path, name, format) : NULL;
    _cleanup_free_ char *lock = NULL;
    if (!p) {
        /* r and *ret_error say why */
    } else if (!path || !vo_path_inside(p->path, path)) {
        *ret_error = vo_asprintf("volume '%s/%s': its file %s is outside the pool", pool, name,
                                 path ? path : "");
        r = -EEXIST;
    } else if (p->shared && !(lock = creating_lock(path), create_placeholder(d, lock)) &&
               !(break_stale_creating(d, lock) && create_placeholder(d, lock))) {
        *ret_error = vo_asprintf("volume '%s/%s' is being made by another host (%s)", pool, name,
                                 lock);
        free(TAKE_PTR(lock));
        r = -EEXIST;
    } else if (access(path, F_OK) == 0) {
        *ret_error = vo_asprintf("volume '%s/%s': its file %s is in the way", pool, name, path);
        r = -EEXIST;
    } else if ((r = vo_storage_begin_volume_intent(d, pool, name, path, p->shared, lock)) < 0) {
        *ret_error = vo_asprintf("volume '%s/%s': cannot record the operation: %s", pool, name,
                                 strerror(-r));
    } else {
        VoVolume *v = vo_malloc0(sizeof(*v));
        *v = (VoVolume){ .pool = vo_strdup(pool), .name = vo_strdup(name),
                         .format = vo_strdup(format), .busy = true, .shared = p->shared,
                         .created_at = vo_wall_ms() };
        vo_storage_registry_add_volume(d, v);
        *ret_path = TAKE_PTR(path);
    }
    if (r < 0 && lock)
        (void)unlink(lock);
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

/* Ends a reservation: keep it (persisted, ready) or drop it and its file. */
int vo_storage_finish_volume(VoDaemon *d, const char *pool, const char *name, const char *path,
                             bool ok, const char *backing, const char *image)
{
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    bool shared = vo_storage_pool_is_shared(d, pool);
    int r = 0;
    if (v && ok) {
        v->backing = vo_strdup(backing);
        v->image = vo_strdup(image);
        r = vo_storage_save_volume(d, v);
        if (r >= 0) {
            v->busy = false;
            v->ready = true;
        }
    }
    if (v && (!ok || r < 0)) {
        (void)unlink(path);
        vo_storage_registry_remove_volume(d, v);
        vo_storage_forget_project(d, pool, name, shared);
    }
    if (shared) {
        _cleanup_free_ char *lock = creating_lock(path);
        (void)unlink(lock);
    }
    vo_storage_end_volume_intent(d, pool, name);
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

/* Marks an existing, ready volume busy for an operation; returns its path. */
int vo_storage_claim_volume(VoDaemon *d, const char *pool, const char *name, char **ret_path,
                            char **ret_format, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    VoPool *p = vo_storage_pool_find(d, pool);
    int r = 0;
    if (!v || !p) {
        *ret_error = vo_asprintf("volume '%s/%s' does not exist", pool, name);
        r = -ENOENT;
    } else if (v->busy || !v->ready) {
        *ret_error = vo_asprintf("volume '%s/%s' is busy with another operation", pool, name);
        r = -EBUSY;
    } else if (v->attaching) {
        *ret_error = vo_asprintf("volume '%s/%s' is being attached to a VM", pool, name);
        r = -EBUSY;
    } else {
        v->busy = true;
        *ret_path = vo_volume_path(p->path, v->name, v->format);
        if (ret_format)
            *ret_format = vo_strdup(v->format);
    }
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

void vo_storage_release_volume(VoDaemon *d, const char *pool, const char *name)
{
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    if (v)
        v->busy = false;
    pthread_mutex_unlock(&d->storage_lock);
}

int vo_volume_claim(VoDaemon *d, const char *pool, const char *name, char **ret_error)
{
    _cleanup_free_ char *path = NULL;
    return vo_storage_claim_volume(d, pool, name, &path, NULL, ret_error);
}

void vo_volume_unclaim(VoDaemon *d, const char *pool, const char *name)
{
    vo_storage_release_volume(d, pool, name);
}
