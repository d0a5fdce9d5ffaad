/* storage-move.c: volumes in a cold move (move.c, move-incoming.c): the
 * destination's volume made, the source's dropped. Shares storage-internal.h
 * with the other storage files. */
#include "daemon/storage-internal.h"

#include <string.h>

#include "conf/names.h"
#include "daemon/host-id.h"
#include "storage/volume-path.h"

int vo_volume_move_in_paths(VoDaemon *d, const char *pool, const char *name, const char *format,
                            char **ret_tmp, char **ret_final, char **ret_error)
{
    _cleanup_free_ char *host = vo_host_id(d);
    if (!host)
        return vo_error_set(ret_error, -EIO, "cannot read this host's id");
    if (!vo_name_valid(name))
        return vo_error_set(ret_error, -EINVAL, "volume name: '%s' is invalid", name);
    pthread_mutex_lock(&d->storage_lock);
    int r = 0;
    VoPool *p = vo_storage_pool_for_new_volume(d, pool, name, &r, ret_error);
    if (p && p->shared)
        r = vo_error_set(ret_error, -EINVAL, "pool '%s' is shared: a moved volume goes to a "
                         "pool of the host's own", pool);
    else if (p) {
        /* Named like an upload: the start-up sweep takes one a crash left. */
        *ret_tmp = vo_asprintf("%s/.upload-%s-%s-XXXXXX", p->path, host, name);
        *ret_final = vo_volume_path(p->path, name, format);
    }
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

int vo_volume_sync_moved(VoDaemon *d, const char *pool, const char *name, bool remove_file,
                         char **ret_error)
{
    _cleanup_free_ char *key = vo_storage_volume_doc_key(false, pool, name), *text = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, key, &text, &rev);
    if (r < 0 && r != -ENOENT)
        return vo_error_set(ret_error, r, "cannot read %s: %s", key, strerror(-r));
    _cleanup_free_ char *path = NULL;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    VoPool *p = vo_storage_pool_find(d, pool);
    if (r >= 0 && !v) { /* moved here */
        VoVolume *nv = vo_storage_volume_from_doc(text, rev);
        if (nv)
            vo_storage_registry_add_volume(d, nv);
        else
            r = vo_error_set(ret_error, -EINVAL, "%s is unreadable", key);
    } else if (r == -ENOENT && v && !v->shared) { /* moved away */
        if (p)
            path = vo_volume_path(p->path, v->name, v->format);
        vo_storage_registry_remove_volume(d, v);
        r = 0;
    } else if (r == -ENOENT) {
        r = 0;
    }
    pthread_mutex_unlock(&d->storage_lock);
    if (r >= 0 && path && remove_file && unlink(path) < 0 && errno != ENOENT)
        r = vo_error_set(ret_error, -errno, "cannot remove %s: %s", path, strerror(errno));
    return r;
}

int vo_volume_move_info(VoDaemon *d, const char *key, json_t **ret, char **ret_error)
{
    size_t plen = strcspn(key, "/");
    _cleanup_free_ char *pool = strndup(key, plen);
    if (!pool)
        abort();
    const char *name = key[plen] ? key + plen + 1 : "";
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    VoPool *p = vo_storage_pool_find(d, pool);
    int r = 0;
    if (!v || !p || !v->ready) {
        r = vo_error_set(ret_error, -ENOENT, "volume '%s' does not exist", key);
    } else {
        _cleanup_free_ char *path = vo_volume_path(p->path, v->name, v->format);
        *ret = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s*, s:s*, s:s}", "key", key, "pool",
                         pool, "name", name, "format", v->format, "shared", v->shared,
                         "image", v->image, "backing", v->backing, "path", path);
    }
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}
