/* storage-load.c: the pools and volumes read from the store at start, the
 * default pool made, and a shared pool's path and rbd keys as this host uses
 * them. Shares storage-internal.h with the other storage files. */
#include "daemon/storage-internal.h"

#include <dirent.h>
#include <string.h>

#include "daemon/storage-iscsi-shared.h"

/* A pool document (NULL when unreadable). */
VoPool *vo_storage_pool_from_doc(const char *value, int64_t rev)
{
    json_t *doc = json_loads(value, 0, NULL);
    const char *name = NULL, *type = NULL, *path = NULL, *id = NULL;
    json_int_t created = 0;
    int shared = 0;
    if (!doc || json_unpack(doc, "{s:s, s:s, s:s, s?I, s?b, s?s}", "name", &name, "type", &type,
                            "path", &path, "created_at", &created, "shared", &shared, "id",
                            &id) < 0 || (shared && !id)) {
        json_decref(doc);
        return NULL;
    }
    VoPool *p = vo_malloc0(sizeof(*p));
    *p = (VoPool){ .name = vo_strdup(name), .type = vo_strdup(type), .path = vo_strdup(path),
                   .created_at = created, .rev = rev, .shared = shared, .id = vo_strdup(id),
                   /* until checked (vo_storage_check_pools) */
                   .reach = shared ? VO_POOL_NO_MARKER : VO_POOL_REACHABLE,
                   .reason = shared ? vo_strdup("not checked yet") : NULL };
    json_t *rbd = json_object_get(doc, "rbd");
    p->rbd = json_is_object(rbd) ? json_incref(rbd) : NULL;
    json_decref(doc);
    return p;
}

VoVolume *vo_storage_volume_from_doc(const char *value, int64_t rev)
{
    json_t *doc = json_loads(value, 0, NULL);
    const char *pool = NULL, *name = NULL, *format = NULL, *backing = NULL, *image = NULL;
    const char *content = NULL;
    int shareable = 0;
    json_int_t created = 0, size = 0;
    if (!doc || json_unpack(doc, "{s:s, s:s, s:s, s?s, s?s, s?b, s?I, s?s, s?I}", "pool", &pool,
                            "name", &name, "format", &format, "backing", &backing, "image",
                            &image, "shareable", &shareable, "created_at", &created, "content",
                            &content, "size_bytes", &size) < 0) {
        json_decref(doc);
        return NULL;
    }
    VoVolume *v = vo_malloc0(sizeof(*v));
    *v = (VoVolume){ .pool = vo_strdup(pool), .name = vo_strdup(name),
                     .format = vo_strdup(format), .backing = vo_strdup(backing),
                     .image = vo_strdup(image), .content = vo_strdup(content),
                     .shareable = shareable, .ready = true,
                     .created_at = created, .rev = rev, .size_bytes = (uint64_t)size };
    json_t *vsize = json_object_get(doc, "virtual_size_bytes"); /* a LUN's qcow2 layer */
    v->virtual_bytes = json_is_integer(vsize) ? (uint64_t)json_integer_value(vsize) : 0;
    json_t *restore = json_object_get(doc, "restore_incomplete");
    v->restore = json_is_object(restore) ? json_incref(restore) : NULL;
    json_decref(doc);
    return v;
}

/* A pool's path as this host uses it: an rbd pool's directory is
 * STATE/rbd/NAME on every host, and a shared iSCSI pool's string carries
 * this host's initiator and secret file (storage-iscsi-shared.h); a shared
 * one's document names the creating host's. */
void vo_storage_pool_path_here(VoDaemon *d, VoPool *p)
{
    if (p && p->rbd) {
        free(p->path);
        p->path = vo_storage_rbd_dir(d, p->name);
    } else if (p && p->shared && !strcmp(p->type, VO_ISCSI_POOL_TYPE)) {
        char *here = vo_iscsi_path_here(d, p->name, p->path);
        if (here) {
            free(p->path);
            p->path = here;
        }
    }
}

/* Whether checking p's reach asks the network (Ceph's monitors, an iSCSI
 * target): those are checked on threads of their own (check_pools). */
bool vo_storage_pool_is_networked(const VoPool *p)
{
    return p->rbd || !strcmp(p->type, VO_ISCSI_POOL_TYPE);
}

/* Removes rbd pool directory dir when it is pool id's (its pool-id file). */
void vo_storage_rbd_discard_of(const char *dir, const char *id)
{
    _cleanup_free_ char *id_here = vo_storage_rbd_dir_id(dir);
    if (id_here && !strcmp(id_here, id)) {
        log_info("rbd: removed %s, the key of a pool deleted meanwhile", dir);
        vo_storage_rbd_discard(dir);
    }
}

/* Caller holds storage_lock. The directories of the cluster's rbd pools
 * (those with a pool-id file) under STATE/rbd whose pool is gone: deleted
 * while this host was down. */
static void rbd_sweep_gone(VoDaemon *d)
{
    _cleanup_free_ char *top = vo_asprintf("%s/rbd", d->state_dir);
    DIR *dp = opendir(top);
    if (!dp)
        return;
    _cleanup_strv_ char **gone = NULL;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        _cleanup_free_ char *dir = vo_asprintf("%s/%s", top, e->d_name);
        _cleanup_free_ char *id = vo_storage_rbd_dir_id(dir);
        VoPool *p = id ? vo_storage_pool_find(d, e->d_name) : NULL;
        if (id && !(p && p->shared && p->id && !strcmp(p->id, id)))
            vo_strv_pushf(&gone, "%s", dir);
    }
    closedir(dp);
    for (size_t i = 0; gone && gone[i]; i++) {
        log_info("rbd: removed %s, the key of a pool deleted while this host was down",
                 gone[i]);
        vo_storage_rbd_discard(gone[i]);
    }
}

static int load_pool(const char *key, const char *value, int64_t rev, void *userdata)
{
    VoDaemon *d = userdata;
    VoPool *p = vo_storage_pool_from_doc(value, rev);
    vo_storage_pool_path_here(d, p);
    if (!p)
        log_error("store: skipping unreadable %s", key);
    else if (vo_storage_pool_find(d, p->name)) { /* a local pool and a shared one of one name */
        log_error("store: skipping %s: a pool named '%s' is loaded already", key, p->name);
        vo_storage_pool_free(p);
    } else
        vo_storage_registry_add_pool(d, p);
    return 0;
}

static int load_volume(const char *key, const char *value, int64_t rev, void *userdata)
{
    VoDaemon *d = userdata;
    VoVolume *v = vo_storage_volume_from_doc(value, rev);
    if (!v) {
        log_error("store: skipping unreadable %s", key);
        return 0;
    }
    v->shared = !strncmp(key, VO_SHARED_VOLUMES_PREFIX, strlen(VO_SHARED_VOLUMES_PREFIX));
    vo_storage_registry_add_volume(d, v);
    return 0;
}

int vo_storage_load(VoDaemon *d)
{
    pthread_mutex_lock(&d->storage_lock);
    int r = vo_store_list(d->store, "pools/", load_pool, d);
    if (r >= 0)
        r = vo_store_list(d->store, "volumes/", load_volume, d);
    if (r >= 0)
        r = vo_store_list(d->store, VO_SHARED_POOLS_PREFIX, load_pool, d);
    if (r >= 0)
        r = vo_store_list(d->store, VO_SHARED_VOLUMES_PREFIX, load_volume, d);
    if (r >= 0 && !vo_storage_pool_find(d, VO_DEFAULT_POOL)) {
        VoPool *p = vo_malloc0(sizeof(*p));
        *p = (VoPool){ .name = vo_strdup(VO_DEFAULT_POOL), .type = vo_strdup("dir"),
                       .path = vo_asprintf("%s/pools/%s", d->state_dir, VO_DEFAULT_POOL),
                       .created_at = vo_wall_ms() };
        r = vo_mkdir_p(p->path, 0750);
        if (r >= 0)
            r = vo_storage_save_pool(d, p, VO_REV_NEW);
        if (r < 0)
            vo_storage_pool_free(p);
        else
            vo_storage_registry_add_pool(d, p);
    }
    if (r >= 0) /* every pool is listed: a key left of another is garbage */
        rbd_sweep_gone(d);
    pthread_mutex_unlock(&d->storage_lock);
    if (r >= 0)
        vo_volume_restore_marks_sweep(d);
    if (r >= 0)
        vo_storage_check_pools(d);
    return r;
}
