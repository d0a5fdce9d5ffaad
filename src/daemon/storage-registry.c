/* storage-registry.c: the in-memory registry of pools and volumes (under
 * d->storage_lock) and their documents in the store. Shares storage-internal.h
 * with the other storage files. */
#include "daemon/storage-internal.h"

#include <string.h>

#include "state/project-objects.h"

void vo_storage_pool_free(VoPool *p)
{
    free(p->id);
    free(p->reason);
    free(p->name);
    free(p->type);
    free(p->path);
    json_decref(p->rbd);
    free(p);
}

void vo_storage_volume_free(VoVolume *v)
{
    (void)vo_lease_keeper_stop(v->attach_keeper);
    free(v->pool);
    free(v->name);
    free(v->format);
    free(v->backing);
    free(v->image);
    free(v->content);
    json_decref(v->restore);
    free(v);
}

/* Caller holds storage_lock. */
VoPool *vo_storage_pool_find(VoDaemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_pools; i++)
        if (!strcmp(d->pools[i]->name, name))
            return d->pools[i];
    return NULL;
}

/* Caller holds storage_lock. */
VoVolume *vo_storage_volume_find(VoDaemon *d, const char *pool, const char *name)
{
    for (size_t i = 0; i < d->n_volumes; i++)
        if (!strcmp(d->volumes[i]->pool, pool) && !strcmp(d->volumes[i]->name, name))
            return d->volumes[i];
    return NULL;
}

/* Caller holds storage_lock: 0, or -EBUSY (409) when p is a shared pool
 * this host does not reach (its files cannot be used from here). */
int vo_storage_pool_unreachable(const VoPool *p, char **ret_error)
{
    if (!p->shared || p->reach == VO_POOL_REACHABLE)
        return 0;
    return vo_error_set(ret_error, -EBUSY, "pool '%s' is not reachable on this host: %s",
                        p->name, p->reason ? p->reason : "unknown");
}

int vo_pool_check_reachable(VoDaemon *d, const char *name, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, name);
    int r = p ? vo_storage_pool_unreachable(p, ret_error) : 0;
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

/* Caller holds storage_lock: the pool a new volume pool/name may go into, or
 * NULL with *ret (-ENOENT, -EEXIST, -EINVAL) and *ret_error saying why. */
VoPool *vo_storage_pool_for_new_volume(VoDaemon *d, const char *pool, const char *name, int *ret,
                                       char **ret_error)
{
    VoPool *p = vo_storage_pool_find(d, pool);
    if (!p) {
        *ret = vo_error_set(ret_error, -ENOENT, "pool '%s' does not exist", pool);
    } else if (vo_storage_volume_find(d, pool, name)) {
        *ret = vo_error_set(ret_error, -EEXIST, "volume '%s/%s' already exists", pool, name);
    } else if (!strcmp(p->type, VO_BACKUP_POOL_TYPE)) {
        *ret = vo_error_set(ret_error, -EINVAL,
                            "pool '%s' is a backup pool: volumes go to a dir pool", pool);
    } else if (!strcmp(p->type, VO_ISCSI_POOL_TYPE)) {
        *ret = vo_storage_iscsi_refuse(pool, "create volumes in", ret_error);
    } else if (p->reach != VO_POOL_REACHABLE) {
        *ret = vo_error_set(ret_error, -EBUSY, "pool '%s' is not reachable on this host: "
                            "%s", pool, p->reason ? p->reason : "unknown");
    } else {
        return p;
    }
    return NULL;
}

/* Caller holds storage_lock: the volumes that are linked clones of key. */
size_t vo_storage_volume_dependents(VoDaemon *d, const char *key)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_volumes; i++)
        if (d->volumes[i]->backing && !strcmp(d->volumes[i]->backing, key))
            n++;
    return n;
}

int vo_image_users_elsewhere(VoDaemon *d, const char *image)
{
    if (!d->cluster_store)
        return 0;
    _cleanup_strv_ char **ids = NULL, **names = NULL;
    int r = vo_storage_member_hosts(d, &ids, &names), n = 0;
    for (size_t i = 0; r >= 0 && ids && ids[i]; i++) {
        if (strcmp(ids[i], d->host_id)) {
            _cleanup_free_ char *prefix = vo_asprintf("h/%s/uses/images/%s/", ids[i], image);
            size_t here = 0;
            r = vo_store_count(d->cluster_store, prefix, &here);
            n += (int)here;
        }
    }
    if (r < 0) {
        log_error("store: cannot read the users of image %s: %s", image, strerror(-r));
        return 1; /* in use, as far as anyone can tell */
    }
    return n;
}

int vo_image_users(VoDaemon *d, const char *image)
{
    /* VMs created from it (they may boot its kernel) and linked clones of its
     * disk that no such VM holds. */
    _cleanup_strv_ char **linked = NULL;
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_volumes; i++)
        if (d->volumes[i]->image && !strcmp(d->volumes[i]->image, image))
            vo_strv_pushf(&linked, "%s/%s", d->volumes[i]->pool, d->volumes[i]->name);
    pthread_mutex_unlock(&d->storage_lock);
    int n = vo_relations_image_users(d->store, image);
    if (n < 0) {
        log_error("store: cannot read the users of image %s: %s", image, strerror(-n));
        n = 1; /* in use, as far as anyone can tell */
    }
    for (char **key = linked; key && *key; key++) {
        _cleanup_free_ char *user = vo_storage_volume_user_name(d, *key);
        if (!user)
            n++;
    }
    return n;
}

/* The documents' keys: a host's own pools/ and volumes/, or the cluster's
 * for a shared pool and its volumes. */
char *vo_storage_pool_doc_key(bool shared, const char *name)
{
    return vo_asprintf("%s/%s", shared ? VO_SHARED_POOLS_PREFIX_NS : "pools", name);
}

char *vo_storage_volume_doc_key(bool shared, const char *pool, const char *name)
{
    return vo_asprintf("%s/%s/%s", shared ? VO_SHARED_VOLUMES_PREFIX_NS : "volumes", pool, name);
}

char *vo_pool_key(VoDaemon *d, const char *name)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, name);
    char *key = vo_storage_pool_doc_key(p && p->shared, name);
    pthread_mutex_unlock(&d->storage_lock);
    return key;
}

char *vo_volume_doc_key(VoDaemon *d, const char *pool, const char *name)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, pool);
    char *key = vo_storage_volume_doc_key(p && p->shared, pool, name);
    pthread_mutex_unlock(&d->storage_lock);
    return key;
}

/* Caller holds storage_lock (all writers of pools/ and volumes/ do, so the
 * revisions below are the documents' current ones). A new pool's document
 * keeps to the cluster's rule on names (pool-names.h): a shared one's with
 * its name's claim (claim), a host's own off the shared names; *ret_error
 * (may be NULL) says why not. */
int vo_storage_save_pool_as(VoDaemon *d, VoPool *p, int64_t expected, const VoPoolNameClaim *claim,
                            char **ret_error)
{
    json_t *doc = json_pack("{s:s, s:s, s:s, s:I}", "name", p->name, "type", p->type, "path",
                            p->path, "created_at", (json_int_t)p->created_at);
    if (p->shared) {
        json_object_set_new(doc, "shared", json_true());
        json_object_set_new(doc, "id", json_string(p->id));
    }
    if (p->rbd)
        json_object_set(doc, "rbd", p->rbd);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *key = vo_storage_pool_doc_key(p->shared, p->name);
    if (expected == VO_REV_NEW)
        return vo_pool_name_create_doc(d->store, p->name, key, text, claim, &p->rev, ret_error);
    return vo_store_put(d->store, key, text, expected, &p->rev);
}

int vo_storage_save_pool(VoDaemon *d, VoPool *p, int64_t expected)
{
    return vo_storage_save_pool_as(d, p, expected, NULL, NULL);
}

int vo_storage_save_volume(VoDaemon *d, VoVolume *v)
{
    json_t *doc = json_pack("{s:s, s:s, s:s, s:b, s:I}", "pool", v->pool, "name", v->name,
                            "format", v->format, "shareable", v->shareable, "created_at",
                            (json_int_t)v->created_at);
    if (v->backing)
        json_object_set_new(doc, "backing", json_string(v->backing));
    if (v->image)
        json_object_set_new(doc, "image", json_string(v->image));
    if (v->content)
        json_object_set_new(doc, "content", json_string(v->content));
    if (v->size_bytes)
        json_object_set_new(doc, "size_bytes", json_integer((json_int_t)v->size_bytes));
    if (v->virtual_bytes)
        json_object_set_new(doc, "virtual_size_bytes", json_integer((json_int_t)v->virtual_bytes));
    if (v->restore)
        json_object_set(doc, "restore_incomplete", v->restore);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *key = vo_storage_volume_doc_key(v->shared, v->pool, v->name);
    return vo_store_put(d->store, key, text, v->rev ? v->rev : VO_REV_NEW, &v->rev);
}

/* A volume gone (deleted, or its create failed): its project's documents
 * go too (state/project-objects.h; the scopes are object-projects.c's). */
void vo_storage_forget_project(VoDaemon *d, const char *pool, const char *name, bool shared)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    VoProjectObject o = { .kind = "volume", .scope = shared ? "shared" : d->host_id, .id = key };
    int r = vo_project_object_forget(d->store, &o);
    if (r < 0)
        log_warn("storage: volume %s is gone but its project still counts it: %s", key,
                 strerror(-r));
}

int vo_storage_delete_volume_doc(VoDaemon *d, const VoVolume *v)
{
    if (!v->rev)
        return 0; /* never saved */
    _cleanup_free_ char *key = vo_storage_volume_doc_key(v->shared, v->pool, v->name);
    int r = vo_store_delete(d->store, key, v->rev);
    return r == -ENOENT ? 0 : r;
}

/* Caller holds storage_lock. */
void vo_storage_registry_remove_volume(VoDaemon *d, VoVolume *v)
{
    for (size_t i = 0; i < d->n_volumes; i++)
        if (d->volumes[i] == v) {
            d->volumes[i] = d->volumes[--d->n_volumes];
            vo_storage_volume_free(v);
            return;
        }
}

void vo_storage_registry_add_volume(VoDaemon *d, VoVolume *v)
{
    d->volumes = realloc(d->volumes, sizeof(VoVolume *) * (d->n_volumes + 1));
    if (!d->volumes)
        abort();
    d->volumes[d->n_volumes++] = v;
}

void vo_storage_registry_add_pool(VoDaemon *d, VoPool *p)
{
    d->pools = realloc(d->pools, sizeof(VoPool *) * (d->n_pools + 1));
    if (!d->pools)
        abort();
    d->pools[d->n_pools++] = p;
}
