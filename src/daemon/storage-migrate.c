/* storage-migrate.c: volumes in live migration of local disks (migrate.c,
 * migrate-incoming.c): the destination's volumes made and kept or dropped.
 * Shares storage-internal.h with the other storage files. */
#include "daemon/storage-internal.h"

#include <string.h>

#include "daemon/sweep.h"
#include "state/owner-state.h"
#include "storage/volume-path.h"

int vo_volume_incoming_reserve(VoDaemon *d, const char *pool, const char *name,
                               const char *format, char **ret_path, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    bool shared = vo_storage_pool_is_shared(d, pool);
    pthread_mutex_unlock(&d->storage_lock);
    if (shared)
        return vo_error_set(ret_error, -EINVAL, "pool '%s' is a shared pool: a migrated "
                            "local disk goes to a pool of the host's own", pool);
    int r = vo_storage_reserve_volume(d, pool, name, format, ret_path, ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    if (v)
        v->ready = true; /* its path resolves for the incoming VM; still busy */
    pthread_mutex_unlock(&d->storage_lock);
    return 0;
}

int vo_volume_incoming_keep(VoDaemon *d, const char *pool, const char *name)
{
    _cleanup_free_ char *key = vo_storage_volume_doc_key(false, pool, name), *text = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, key, &text, &rev);
    VoVolume *doc = r >= 0 ? vo_storage_volume_from_doc(text, rev) : NULL;
    if (r >= 0 && !doc)
        r = -EIO;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    if (v && doc) {
        free(v->backing);
        free(v->image);
        v->backing = TAKE_PTR(doc->backing);
        v->image = TAKE_PTR(doc->image);
        v->shareable = doc->shareable;
        v->created_at = doc->created_at;
        v->rev = rev;
        v->busy = false;
        v->ready = true;
    }
    if (v)
        vo_storage_end_volume_intent(d, pool, name);
    pthread_mutex_unlock(&d->storage_lock);
    if (doc)
        vo_storage_volume_free(doc);
    return v ? r : -ENOENT;
}

void vo_volume_incoming_drop(VoDaemon *d, const char *pool, const char *name)
{
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    VoPool *p = vo_storage_pool_find(d, pool);
    if (v && v->busy && !v->rev) {
        _cleanup_free_ char *path = p ? vo_volume_path(p->path, v->name, v->format) : NULL;
        if (path)
            (void)unlink(path);
        vo_storage_registry_remove_volume(d, v);
        vo_storage_end_volume_intent(d, pool, name);
    }
    pthread_mutex_unlock(&d->storage_lock);
}

/* The intent of a volume moving away: owned by its document here, which the
 * ownership transaction deletes, so a crash after that transaction leaves
 * its file to the sweep, and one before leaves it as it was. */
static char *moving_intent_id(const char *pool, const char *name)
{
    return vo_asprintf("migrating-volumes/%s/%s", pool, name);
}

int vo_volume_moving_begin(VoDaemon *d, const char *key, char **ret_error)
{
    _cleanup_free_ char *pool = NULL, *name = NULL, *path = NULL, *format = NULL;
    int r = vo_volume_lookup(d, key, &path, &format, NULL, ret_error);
    if (r < 0)
        return r;
    (void)vo_volume_key_split(key, &pool, &name);
    _cleanup_free_ char *id = moving_intent_id(pool, name);
    _cleanup_free_ char *owner = vo_storage_volume_doc_key(false, pool, name);
    const char *paths[] = { path };
    r = vo_intent_begin(d, id, owner, paths, 1);
    if (r < 0)
        return vo_error_set(ret_error, r, "volume '%s': cannot record the move: %s", key,
                            strerror(-r));
    return 0;
}

void vo_volume_moving_end(VoDaemon *d, const char *key, bool moved)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return;
    if (moved) {
        pthread_mutex_lock(&d->storage_lock);
        VoVolume *v = vo_storage_volume_find(d, pool, name);
        VoPool *p = vo_storage_pool_find(d, pool);
        _cleanup_free_ char *path = v && p ? vo_volume_path(p->path, v->name, v->format) : NULL;
        if (path && unlink(path) < 0 && errno != ENOENT)
            log_warn("volume %s moved away: cannot remove its file %s: %m", key, path);
        if (v)
            vo_storage_registry_remove_volume(d, v);
        pthread_mutex_unlock(&d->storage_lock);
    }
    _cleanup_free_ char *id = moving_intent_id(pool, name);
    vo_intent_end(d, id);
}

void vo_volume_moving_settle(VoDaemon *d, const char *key)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return;
    _cleanup_free_ char *id = moving_intent_id(pool, name);
    _cleanup_free_ char *intent = vo_asprintf("intents/%s", id);
    if (vo_store_get(d->store, intent, NULL, NULL) < 0)
        return; /* no move of it recorded (a shared pool's volume, or ended already) */
    _cleanup_free_ char *owner = vo_storage_volume_doc_key(false, pool, name);
    int err = 0;
    VoOwnerState st = vo_store_owner_state(d->store, owner, &err);
    if (st == VO_OWNER_UNKNOWN) {
        log_warn("volume %s: the store cannot say whether it moved away (%s): its file and "
                 "intent stay for the next start's sweep", key, strerror(-err));
        return;
    }
    if (st == VO_OWNER_GONE)
        log_info("volume %s moved away with its VM: its file here goes", key);
    vo_volume_moving_end(d, key, st == VO_OWNER_GONE);
}
