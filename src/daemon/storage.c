/* storage.c: pool and volume registry and operations (see storage.h).
 * Locking: d->storage_lock guards the in-memory lists and is held only while
 * they are read or changed, never across qemu-img; a volume being worked on
 * is marked busy so no second operation starts on it, and one a disk add is
 * attaching is marked attaching until the VM's definition names it (see the
 * claims in daemon.h). Which VM uses a volume or an image is read from the
 * relation documents the VM service writes with each VM (state/relations.h):
 * this file never calls the VM code (it sits below it, see docs/internals.md
 * Layers). */
#include "daemon/storage.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/names.h"
#include "daemon/cluster-view.h"
#include "daemon/host-id.h"
#include "daemon/pool-names.h"
#include "daemon/storage-iscsi.h"
#include "daemon/storage-iscsi-shared.h"
#include "daemon/pool-kept.h"
#include "daemon/sweep-kept.h"
#include "daemon/sweep.h"
#include "state/keys.h"
#include "state/lease-keeper.h"
#include "state/relations.h"
#include "vireo/errors.h"
#include "storage/image-header.h"
#include "storage/iscsi-url.h"
#include "storage/iso.h"
#include "storage/pool-marker.h"
#include "storage/qemu-img.h"
#include "daemon/migrate-safe.h"
#include "daemon/rbd-dead-clients.h"
#include "daemon/storage-rbd.h"
#include "daemon/storage-rbd-shared.h"
#include "storage/rbd-clone.h"
#include "storage/volume-path.h"
#include "state/project-objects.h"
#include "util/spawn.h"
#include "util/time-format.h"
#include "util/test-hold.h"
#include "util/util.h"

struct VoPool {
    char *name, *type, *path;
    int64_t created_at;
    int64_t rev; /* of its document; 0 until saved */
    /* A shared pool (pool-marker.h): its document is cluster/pools/NAME and
     * its volumes' cluster/volumes/NAME/VOLUME; id is the marker's. reach
     * and reason: what this host saw when it last checked the marker. */
    bool shared;
    char *id;
    VoPoolReach reach;
    char *reason;
    json_t *rbd; /* an rbd pool's {"monitors","pool","user"} (storage-rbd.h), or NULL */
    int64_t rbd_next_check_ms; /* an rbd pool reached: not asked again before (vo_now_ms) */
};

struct VoVolume {
    char *pool, *name, *format;
    char *backing; /* key "pool/name" of the volume it is a linked clone of, or NULL */
    char *image;   /* image it is a linked clone of, or NULL */
    char *content; /* "iso": an ISO 9660 image (raw, attached as a CD-ROM); NULL: a disk */
    bool shareable;
    bool shared;   /* of a shared pool: a cluster document */
    bool busy;     /* an operation (create, resize, clone, delete) runs on it */
    unsigned attaching; /* disk adds between their check and their commit */
    /* Of a shared volume: keeps the lease of this host's attach lock alive
     * until the attach is recorded or failed (lease-keeper.h). */
    VoLeaseKeeper *attach_keeper;
    bool ready;    /* created; false while its create task runs */
    int64_t created_at;
    int64_t rev;   /* of its document; 0 until saved */
    uint64_t size_bytes; /* an iSCSI LUN's size (as last listed); 0 for others */
};

/* ---- who uses a volume ---------------------------------------------------- */

static VoPool *pool_find(VoDaemon *d, const char *name);
static bool pool_is_shared(VoDaemon *d, const char *name);
static int rbd_pool_of_locked(VoPool *p, VoRbdPool *ret, char **ret_error);

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

static int collect_member(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    char ***lists = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *name = json_string_value(json_object_get(doc, "name"));
    const char *id = strrchr(key, '/');
    if (id && id[1]) {
        vo_strv_pushf(&lists[0], "%s", id + 1);
        vo_strv_pushf(&lists[1], "%s", name ? name : id + 1);
    }
    json_decref(doc);
    return 0;
}

/* The cluster's hosts (cluster/members/): ids and names, as strvs. */
static int member_hosts(VoDaemon *d, char ***ret_ids, char ***ret_names)
{
    char **lists[2] = { NULL, NULL };
    int r = vo_store_list(d->store, "cluster/members/", collect_member, lists);
    *ret_ids = lists[0];
    *ret_names = lists[1];
    return r;
}

/* Whether this host's relations name VM vm_id (a VM of this host). */
static bool vm_is_here(VoDaemon *d, const char *vm_id)
{
    _cleanup_free_ char *key = vo_asprintf("vms/%s", vm_id), *doc = NULL;
    return vo_store_get(d->store, key, &doc, NULL) == 0;
}

/* A VM of any host using volume key (a shared pool's volume: every host's
 * relations), with its host's name in *ret_host (malloc'd; NULL for this
 * host). 1 with *ret filled, 0 when none, or the store's error. */
static int any_host_volume_user(VoDaemon *d, const char *key, VoRelationUser *ret,
                                char **ret_host)
{
    *ret_host = NULL;
    int r = vo_relations_volume_user(d->store, key, ret);
    if (r != 0 || !d->cluster_store)
        return r;
    /* The other hosts' relation documents, through the raw handle
     * (h/<host-id>/uses/volumes/<pool>/<volume>/<vm-id>). */
    _cleanup_strv_ char **ids = NULL, **names = NULL;
    r = member_hosts(d, &ids, &names);
    for (size_t i = 0; r >= 0 && ids && ids[i]; i++) {
        if (!strcmp(ids[i], d->host_id))
            continue;
        _cleanup_free_ char *prefix = vo_asprintf("h/%s/uses/volumes/%s/", ids[i], key);
        *ret = (VoRelationUser){ 0 };
        r = vo_store_list(d->cluster_store, prefix, vo_relation_first_user, ret);
        if (r >= 0 && ret->vm_id) {
            *ret_host = vo_strdup(names[i]);
            return 1;
        }
        vo_relation_user_clear(ret);
    }
    return r < 0 ? r : 0;
}

static bool key_is_shared(VoDaemon *d, const char *key)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return false;
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, pool);
    bool shared = p && p->shared;
    pthread_mutex_unlock(&d->storage_lock);
    return shared;
}

/* The VM volume key is attached to (*ret filled), or false; *ret_host: its
 * host's name when another host's (malloc'd), else NULL. A store that
 * cannot be read counts as in use: a rule is never broken for want of it.
 * For a shared pool's volume, VMs of every host count. */
static bool volume_user_at(VoDaemon *d, const char *key, VoRelationUser *ret, char **ret_host)
{
    *ret_host = NULL;
    int r = key_is_shared(d, key) ? any_host_volume_user(d, key, ret, ret_host)
                                  : vo_relations_volume_user(d->store, key, ret);
    if (r < 0) {
        log_error("store: cannot read the users of volume %s: %s", key, strerror(-r));
        *ret = (VoRelationUser){ .vm_id = vo_strdup("?"), .name = vo_strdup("(unknown)"),
                                 .active = true };
        return true;
    }
    return r > 0;
}

/* The same for messages ("VM '%s'"): a VM of another host is named with
 * its host ("db' on host 'h2"). */
static bool volume_user(VoDaemon *d, const char *key, VoRelationUser *ret)
{
    _cleanup_free_ char *host = NULL;
    bool used = volume_user_at(d, key, ret, &host);
    if (used && host) {
        char *named = vo_asprintf("%s' on host '%s", ret->name, host);
        free(ret->name);
        ret->name = named;
    }
    return used;
}

/* The name of the VM key is attached to (malloc'd), or NULL. */
static char *volume_user_name(VoDaemon *d, const char *key)
{
    VoRelationUser u;
    if (!volume_user(d, key, &u))
        return NULL;
    char *name = TAKE_PTR(u.name);
    vo_relation_user_clear(&u);
    return name;
}

/* ---- registry ------------------------------------------------------------ */

static void pool_free(VoPool *p)
{
    free(p->id);
    free(p->reason);
    free(p->name);
    free(p->type);
    free(p->path);
    json_decref(p->rbd);
    free(p);
}

static void volume_free(VoVolume *v)
{
    (void)vo_lease_keeper_stop(v->attach_keeper);
    free(v->pool);
    free(v->name);
    free(v->format);
    free(v->backing);
    free(v->image);
    free(v->content);
    free(v);
}

/* Caller holds storage_lock. */
static VoPool *pool_find(VoDaemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_pools; i++)
        if (!strcmp(d->pools[i]->name, name))
            return d->pools[i];
    return NULL;
}

/* Caller holds storage_lock. */
static VoVolume *volume_find(VoDaemon *d, const char *pool, const char *name)
{
    for (size_t i = 0; i < d->n_volumes; i++)
        if (!strcmp(d->volumes[i]->pool, pool) && !strcmp(d->volumes[i]->name, name))
            return d->volumes[i];
    return NULL;
}

/* Caller holds storage_lock: 0, or -EBUSY (409) when p is a shared pool
 * this host does not reach (its files cannot be used from here). */
static int pool_unreachable(const VoPool *p, char **ret_error)
{
    if (!p->shared || p->reach == VO_POOL_REACHABLE)
        return 0;
    return vo_error_set(ret_error, -EBUSY, "pool '%s' is not reachable on this host: %s",
                        p->name, p->reason ? p->reason : "unknown");
}

int vo_pool_check_reachable(VoDaemon *d, const char *name, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, name);
    int r = p ? pool_unreachable(p, ret_error) : 0;
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

static int iscsi_refuse(const char *pool, const char *what, char **ret_error);
static int iscsi_check(VoDaemon *d, const char *pool, const char *what, char **ret_error);

/* Caller holds storage_lock: the pool a new volume pool/name may go into, or
 * NULL with *ret (-ENOENT, -EEXIST, -EINVAL) and *ret_error saying why. */
static VoPool *pool_for_new_volume(VoDaemon *d, const char *pool, const char *name, int *ret,
                                   char **ret_error)
{
    VoPool *p = pool_find(d, pool);
    if (!p) {
        *ret = vo_error_set(ret_error, -ENOENT, "pool '%s' does not exist", pool);
    } else if (volume_find(d, pool, name)) {
        *ret = vo_error_set(ret_error, -EEXIST, "volume '%s/%s' already exists", pool, name);
    } else if (!strcmp(p->type, VO_BACKUP_POOL_TYPE)) {
        *ret = vo_error_set(ret_error, -EINVAL,
                            "pool '%s' is a backup pool: volumes go to a dir pool", pool);
    } else if (!strcmp(p->type, VO_ISCSI_POOL_TYPE)) {
        *ret = iscsi_refuse(pool, "create volumes in", ret_error);
    } else if (p->reach != VO_POOL_REACHABLE) {
        *ret = vo_error_set(ret_error, -EBUSY, "pool '%s' is not reachable on this host: "
                            "%s", pool, p->reason ? p->reason : "unknown");
    } else {
        return p;
    }
    return NULL;
}

/* Caller holds storage_lock: the volumes that are linked clones of key. */
static size_t volume_dependents(VoDaemon *d, const char *key)
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
    int r = member_hosts(d, &ids, &names), n = 0;
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
        _cleanup_free_ char *user = volume_user_name(d, *key);
        if (!user)
            n++;
    }
    return n;
}

/* The documents' keys: a host's own pools/ and volumes/, or the cluster's
 * for a shared pool and its volumes. */
static char *pool_doc_key(bool shared, const char *name)
{
    return vo_asprintf("%s/%s", shared ? VO_SHARED_POOLS_PREFIX_NS : "pools", name);
}

static char *volume_doc_key(bool shared, const char *pool, const char *name)
{
    return vo_asprintf("%s/%s/%s", shared ? VO_SHARED_VOLUMES_PREFIX_NS : "volumes", pool, name);
}

char *vo_pool_key(VoDaemon *d, const char *name)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, name);
    char *key = pool_doc_key(p && p->shared, name);
    pthread_mutex_unlock(&d->storage_lock);
    return key;
}

char *vo_volume_doc_key(VoDaemon *d, const char *pool, const char *name)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, pool);
    char *key = volume_doc_key(p && p->shared, pool, name);
    pthread_mutex_unlock(&d->storage_lock);
    return key;
}

/* Caller holds storage_lock (all writers of pools/ and volumes/ do, so the
 * revisions below are the documents' current ones). A new pool's document
 * keeps to the cluster's rule on names (pool-names.h): a shared one's with
 * its name's claim (claim), a host's own off the shared names; *ret_error
 * (may be NULL) says why not. */
static int save_pool_as(VoDaemon *d, VoPool *p, int64_t expected, const VoPoolNameClaim *claim,
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
    _cleanup_free_ char *key = pool_doc_key(p->shared, p->name);
    if (expected == VO_REV_NEW)
        return vo_pool_name_create_doc(d->store, p->name, key, text, claim, &p->rev, ret_error);
    return vo_store_put(d->store, key, text, expected, &p->rev);
}

static int save_pool(VoDaemon *d, VoPool *p, int64_t expected)
{
    return save_pool_as(d, p, expected, NULL, NULL);
}

static int save_volume(VoDaemon *d, VoVolume *v)
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
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *key = volume_doc_key(v->shared, v->pool, v->name);
    return vo_store_put(d->store, key, text, v->rev ? v->rev : VO_REV_NEW, &v->rev);
}

/* A volume gone (deleted, or its create failed): its project's documents
 * go too (state/project-objects.h; the scopes are object-projects.c's). */
static void forget_project(VoDaemon *d, const char *pool, const char *name, bool shared)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    VoProjectObject o = { .kind = "volume", .scope = shared ? "shared" : d->host_id, .id = key };
    int r = vo_project_object_forget(d->store, &o);
    if (r < 0)
        log_warn("storage: volume %s is gone but its project still counts it: %s", key,
                 strerror(-r));
}

static int delete_volume_doc(VoDaemon *d, const VoVolume *v)
{
    if (!v->rev)
        return 0; /* never saved */
    _cleanup_free_ char *key = volume_doc_key(v->shared, v->pool, v->name);
    int r = vo_store_delete(d->store, key, v->rev);
    return r == -ENOENT ? 0 : r;
}

/* Caller holds storage_lock. */
static void registry_remove_volume(VoDaemon *d, VoVolume *v)
{
    for (size_t i = 0; i < d->n_volumes; i++)
        if (d->volumes[i] == v) {
            d->volumes[i] = d->volumes[--d->n_volumes];
            volume_free(v);
            return;
        }
}

static void registry_add_volume(VoDaemon *d, VoVolume *v)
{
    d->volumes = realloc(d->volumes, sizeof(VoVolume *) * (d->n_volumes + 1));
    if (!d->volumes)
        abort();
    d->volumes[d->n_volumes++] = v;
}

static void registry_add_pool(VoDaemon *d, VoPool *p)
{
    d->pools = realloc(d->pools, sizeof(VoPool *) * (d->n_pools + 1));
    if (!d->pools)
        abort();
    d->pools[d->n_pools++] = p;
}

/* ---- loading ------------------------------------------------------------- */

/* A pool document (NULL when unreadable). */
static VoPool *pool_from_doc(const char *value, int64_t rev)
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

static VoVolume *volume_from_doc(const char *value, int64_t rev)
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
    json_decref(doc);
    return v;
}

/* A pool's path as this host uses it: an rbd pool's directory is
 * STATE/rbd/NAME on every host, and a shared iSCSI pool's string carries
 * this host's initiator and secret file (storage-iscsi-shared.h); a shared
 * one's document names the creating host's. */
static void pool_path_here(VoDaemon *d, VoPool *p)
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
 * target): those are checked on a thread of their own (check_pools). */
static bool pool_is_networked(const VoPool *p)
{
    return p->rbd || !strcmp(p->type, VO_ISCSI_POOL_TYPE);
}

/* Removes rbd pool directory dir when it is pool id's (its pool-id file). */
static void rbd_discard_of(const char *dir, const char *id)
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
        VoPool *p = id ? pool_find(d, e->d_name) : NULL;
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
    VoPool *p = pool_from_doc(value, rev);
    pool_path_here(d, p);
    if (!p)
        log_error("store: skipping unreadable %s", key);
    else if (pool_find(d, p->name)) { /* a local pool and a shared one of one name */
        log_error("store: skipping %s: a pool named '%s' is loaded already", key, p->name);
        pool_free(p);
    } else
        registry_add_pool(d, p);
    return 0;
}

static int load_volume(const char *key, const char *value, int64_t rev, void *userdata)
{
    VoDaemon *d = userdata;
    VoVolume *v = volume_from_doc(value, rev);
    if (!v) {
        log_error("store: skipping unreadable %s", key);
        return 0;
    }
    v->shared = !strncmp(key, VO_SHARED_VOLUMES_PREFIX, strlen(VO_SHARED_VOLUMES_PREFIX));
    registry_add_volume(d, v);
    return 0;
}

static bool check_pools(VoDaemon *d, bool rbd_pools);

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
    if (r >= 0 && !pool_find(d, VO_DEFAULT_POOL)) {
        VoPool *p = vo_malloc0(sizeof(*p));
        *p = (VoPool){ .name = vo_strdup(VO_DEFAULT_POOL), .type = vo_strdup("dir"),
                       .path = vo_asprintf("%s/pools/%s", d->state_dir, VO_DEFAULT_POOL),
                       .created_at = vo_wall_ms() };
        r = vo_mkdir_p(p->path, 0750);
        if (r >= 0)
            r = save_pool(d, p, VO_REV_NEW);
        if (r < 0)
            pool_free(p);
        else
            registry_add_pool(d, p);
    }
    if (r >= 0) /* every pool is listed: a key left of another is garbage */
        rbd_sweep_gone(d);
    pthread_mutex_unlock(&d->storage_lock);
    if (r >= 0)
        check_pools(d, false);
    return r;
}

/* ---- shared pools: reachability and the cluster's changes ------------------ */

static VoStoragePoolsChangedFn pools_changed;

void vo_storage_set_pools_changed(VoStoragePoolsChangedFn fn)
{
    pools_changed = fn;
}

void vo_storage_notify_pools_changed(VoDaemon *d)
{
    if (pools_changed)
        pools_changed(d);
}

static char *creating_lock(const char *path);
static bool creating_is_live(VoDaemon *d, const char *pool, const char *lock);
static char *creating_holder(const char *path);

/* This host's own .creating locks in shared pool dir that no create of this
 * host holds now: left by a crash; removed when the pool becomes reachable
 * (at start too), whatever the intents say. */
static void sweep_own_creating(VoDaemon *d, const char *pool, const char *dir)
{
    if (!d->host_id)
        return;
    _cleanup_strv_ char **found = NULL;
    DIR *dp = opendir(dir);
    if (!dp)
        return;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t n = strlen(e->d_name), k = strlen(".creating");
        if (n <= k || strcmp(e->d_name + n - k, ".creating"))
            continue;
        _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, e->d_name);
        _cleanup_free_ char *holder = creating_holder(path);
        if (holder && !strcmp(holder, d->host_id))
            vo_strv_pushf(&found, "%s", path);
    }
    closedir(dp);
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; found && found[i]; i++)
        if (!creating_is_live(d, pool, found[i]) && unlink(found[i]) == 0)
            log_info("storage: removed %s, left by this host (a crash)", found[i]);
    pthread_mutex_unlock(&d->storage_lock);
}

/* Caller holds storage_lock. Shared iSCSI pool name was deleted (p: the
 * pool of that name now, or NULL) while its check wrote this host's copy
 * of its secret: the copy its delete removed would stay. It goes; a pool
 * made again under the name (another id) gets its own at its next check,
 * made due now. */
static void iscsi_secret_of_gone_pool(VoDaemon *d, const char *name, VoPool *p)
{
    if (p && p->shared && !strcmp(p->type, VO_ISCSI_POOL_TYPE)) {
        p->rbd_next_check_ms = 0;
    } else if (!p) {
        _cleanup_free_ char *secret = vo_iscsi_secret_path(d->state_dir, name);
        (void)unlink(secret);
    }
}

/* rbd_pools false: the shared directory pools (a marker file each);
 * true: the rbd pools, whose monitors are asked (up to VO_RBD_TIMEOUT_S
 * each when they do not answer), and the shared iSCSI pools, whose target
 * is logged in to (storage-iscsi-shared.h). The two are never checked in one call:
 * vireod's start and the pool watch check the directory pools, and the rbd
 * pools have a thread of their own (pool-watch.c), so a Ceph that does not
 * answer holds neither the start nor the watch of the cluster's changes. */
static bool check_pools(VoDaemon *d, bool rbd_pools)
{
    /* The marker is read (an rbd pool's monitors asked) without the lock (a
     * hung mount must not stop every storage call), then the verdicts are
     * stored. */
    _cleanup_strv_ char **names = NULL, **paths = NULL, **ids = NULL;
    json_t *rbd = json_object(); /* name -> settings, of the rbd pools */
    int64_t now = vo_now_ms();
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_pools; i++)
        if (d->pools[i]->shared && rbd_pools == pool_is_networked(d->pools[i]) &&
            !(rbd_pools && d->pools[i]->reach == VO_POOL_REACHABLE &&
              now < d->pools[i]->rbd_next_check_ms)) {
            vo_strv_pushf(&names, "%s", d->pools[i]->name);
            vo_strv_pushf(&paths, "%s", d->pools[i]->path);
            vo_strv_pushf(&ids, "%s", d->pools[i]->id);
            if (d->pools[i]->rbd)
                json_object_set(rbd, d->pools[i]->name, d->pools[i]->rbd);
        }
    pthread_mutex_unlock(&d->storage_lock);
    bool changed = false;
    for (size_t i = 0; names && names[i]; i++) {
        char *reason = NULL;
        bool sweep = false;
        json_t *props = json_object_get(rbd, names[i]);
        VoPoolReach reach =
            props               ? vo_storage_rbd_reach(d, names[i], ids[i], props, paths[i], &reason)
            : rbd_pools         ? vo_storage_iscsi_reach(d, names[i], ids[i], paths[i], &reason)
                                : vo_pool_marker_check(paths[i], ids[i], &reason);
        pthread_mutex_lock(&d->storage_lock);
        VoPool *p = pool_find(d, names[i]);
        bool same = p && p->shared && p->id && !strcmp(p->id, ids[i]);
        if (props && !same)
            /* Deleted while its key was being written here: the key goes
             * (under the lock, so a newer pool's directory is told apart). */
            rbd_discard_of(paths[i], ids[i]);
        if (rbd_pools && !props && !same)
            iscsi_secret_of_gone_pool(d, names[i], p);
        if (same && p->reach != reach) {
            if (reach == VO_POOL_REACHABLE) {
                log_info("shared pool '%s' is reachable on this host", p->name);
                sweep = !rbd_pools;
            }
            else
                log_warn("shared pool '%s' is not reachable on this host: %s", p->name, reason);
            changed = true;
        }
        if (same) {
            p->reach = reach;
            free(p->reason);
            p->reason = TAKE_PTR(reason);
            /* Asking Ceph is a connection to its monitors each time (an
             * iSCSI target's, a login): a pool reached is asked again
             * after VO_POOL_RBD_CHECK_MS, one not reached at every check
             * (back as soon as it answers). */
            if (rbd_pools)
                p->rbd_next_check_ms = vo_now_ms() + VO_POOL_RBD_CHECK_MS;
        }
        pthread_mutex_unlock(&d->storage_lock);
        free(reason);
        if (sweep)
            sweep_own_creating(d, names[i], paths[i]);
    }
    json_decref(rbd);
    return changed;
}

bool vo_storage_check_pools(VoDaemon *d)
{
    return check_pools(d, false);
}

bool vo_storage_check_rbd_pools(VoDaemon *d)
{
    return check_pools(d, true);
}

/* Caller holds storage_lock. */
static void registry_remove_pool(VoDaemon *d, VoPool *p)
{
    for (size_t i = 0; i < d->n_pools; i++)
        if (d->pools[i] == p) {
            d->pools[i] = d->pools[--d->n_pools];
            pool_free(p);
            return;
        }
}

/* Caller holds storage_lock. A change of cluster/pools/NAME (value NULL: a
 * delete) another host (or this one) made; true when the registry changed. */
static bool apply_pool_change(VoDaemon *d, const char *name, const char *value, int64_t rev)
{
    VoPool *p = pool_find(d, name);
    if (!value) {
        if (!p || !p->shared || p->rev >= rev)
            return false;
        log_info("shared pool '%s' was deleted", name);
        if (p->rbd) /* this host's copy of its key (its kept intents: the caller) */
            vo_storage_rbd_discard(p->path);
        if (!strcmp(p->type, VO_ISCSI_POOL_TYPE)) { /* this host's copy of its secret */
            _cleanup_free_ char *secret = vo_iscsi_secret_path(d->state_dir, name);
            (void)unlink(secret);
        }
        registry_remove_pool(d, p);
        return true;
    }
    if (p && (!p->shared || p->rev >= rev))
        return false; /* ours already, or a local pool of that name (refused at create) */
    VoPool *n = pool_from_doc(value, rev);
    if (!n || !n->shared) {
        if (n)
            pool_free(n);
        return false;
    }
    pool_path_here(d, n);
    if (p) { /* a newer document of it: keep what this host saw */
        n->reach = p->reach;
        free(n->reason);
        n->reason = vo_strdup(p->reason);
        registry_remove_pool(d, p);
    } else
        log_info("shared pool '%s' (%s) was created", n->name, n->path);
    registry_add_pool(d, n);
    return true;
}

/* Caller holds storage_lock. A change of cluster/volumes/POOL/NAME. */
static void apply_volume_change(VoDaemon *d, const char *pool, const char *name,
                                const char *value, int64_t rev)
{
    VoVolume *v = volume_find(d, pool, name);
    if (!value) {
        /* Ours in progress (busy: this host deletes it) or older: left. */
        if (v && v->shared && !v->busy && v->rev < rev)
            registry_remove_volume(d, v);
        return;
    }
    if (v && (v->busy || v->rev >= rev))
        return; /* this host works on it and wrote the newest */
    VoVolume *n = volume_from_doc(value, rev);
    if (!n)
        return;
    n->shared = true;
    if (v) {
        n->attaching = v->attaching;
        n->attach_keeper = TAKE_PTR(v->attach_keeper);
        registry_remove_volume(d, v);
    }
    registry_add_volume(d, n);
}

void vo_storage_apply_change(VoDaemon *d, const char *key, const char *value, int64_t rev)
{
    bool changed = false;
    const char *deleted_pool = NULL;
    pthread_mutex_lock(&d->storage_lock);
    if (!strncmp(key, VO_SHARED_POOLS_PREFIX, strlen(VO_SHARED_POOLS_PREFIX))) {
        const char *name = key + strlen(VO_SHARED_POOLS_PREFIX);
        if (vo_name_valid(name))
            changed = apply_pool_change(d, name, value, rev);
        deleted_pool = changed && !value ? name : NULL;
    } else if (!strncmp(key, VO_SHARED_VOLUMES_PREFIX, strlen(VO_SHARED_VOLUMES_PREFIX))) {
        _cleanup_free_ char *pool = NULL, *name = NULL;
        if (vo_volume_key_split(key + strlen(VO_SHARED_VOLUMES_PREFIX), &pool, &name) >= 0)
            apply_volume_change(d, pool, name, value, rev);
    }
    pthread_mutex_unlock(&d->storage_lock);
    /* Deleted by another host: this host's kept intents of it cannot be
     * tried without its key (the images stay in Ceph: logged). */
    if (deleted_pool)
        vo_sweep_kept_forget_pool(d, deleted_pool);
    if (changed) {
        vo_storage_check_pools(d);
        if (pools_changed)
            pools_changed(d);
    }
}

static bool strv_contains(char *const *v, const char *s)
{
    for (; v && *v; v++)
        if (!strcmp(*v, s))
            return true;
    return false;
}

typedef struct {
    VoDaemon *d;
    char **seen; /* keys listed */
} Relist;

static int relist_one(const char *key, const char *value, int64_t rev, void *userdata)
{
    Relist *l = userdata;
    vo_strv_pushf(&l->seen, "%s", key);
    vo_storage_apply_change(l->d, key, value, rev);
    return 0;
}

int vo_storage_relist_shared(VoDaemon *d)
{
    Relist l = { .d = d };
    int r = vo_store_list(d->store, VO_SHARED_POOLS_PREFIX, relist_one, &l);
    if (r >= 0)
        r = vo_store_list(d->store, VO_SHARED_VOLUMES_PREFIX, relist_one, &l);
    if (r < 0) {
        vo_strv_free(l.seen);
        return r;
    }
    /* What is gone from the store goes from the registry (not what this
     * host is making right now). */
    bool changed = false;
    _cleanup_strv_ char **gone_rbd = NULL; /* rbd pools deleted meanwhile */
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = d->n_volumes; i-- > 0;) {
        VoVolume *v = d->volumes[i];
        _cleanup_free_ char *key = volume_doc_key(true, v->pool, v->name);
        if (v->shared && !v->busy && v->rev && !strv_contains(l.seen, key))
            registry_remove_volume(d, v);
    }
    for (size_t i = d->n_pools; i-- > 0;) {
        VoPool *p = d->pools[i];
        _cleanup_free_ char *key = pool_doc_key(true, p->name);
        if (p->shared && p->rev && !strv_contains(l.seen, key)) {
            if (p->rbd) {
                vo_storage_rbd_discard(p->path);
                vo_strv_push(&gone_rbd, vo_strdup(p->name));
            }
            registry_remove_pool(d, p);
            changed = true;
        }
    }
    pthread_mutex_unlock(&d->storage_lock);
    /* As a deleted pool's change does (vo_storage_apply_change). */
    for (size_t i = 0; gone_rbd && gone_rbd[i]; i++)
        vo_sweep_kept_forget_pool(d, gone_rbd[i]);
    vo_strv_free(l.seen);
    if (changed && pools_changed)
        pools_changed(d);
    return 0;
}

/* ---- JSON ------------------------------------------------------------------ */

/* Caller holds storage_lock. */
static void iscsi_pool_json(VoDaemon *d, const VoPool *p, json_t *o);

/* An rbd pool's sizes in o (what pool_to_json made) from the cluster: its
 * raw capacity and free bytes, the pool's bytes; else reason says why.
 * Asks the cluster (up to VO_RBD_TIMEOUT_S): call without storage_lock. */
static void rbd_usage_fill(json_t *o)
{
    json_t *props = json_object_get(o, "rbd");
    const char *dir = json_string_value(json_object_get(o, "path"));
    if (!props || !dir)
        return;
    VoRbdPool rp;
    _cleanup_free_ char *rbd_error = NULL;
    uint64_t cap = 0, avail = 0, used = 0;
    if (vo_storage_rbd_load(dir, props, &rp, &rbd_error) >= 0) {
        VoRbdConf c = vo_rbd_pool_conf(&rp);
        if (vo_rbd_pool_usage(&c, &cap, &avail, &used, &rbd_error) < 0)
            cap = avail = used = 0;
        vo_rbd_pool_clear(&rp);
    }
    json_object_set_new(o, "capacity_bytes", json_integer((json_int_t)cap));
    json_object_set_new(o, "allocation_bytes", json_integer((json_int_t)used));
    json_object_set_new(o, "available_bytes", json_integer((json_int_t)avail));
    if (rbd_error && json_is_null(json_object_get(o, "reason")))
        json_object_set_new(o, "reason", json_string(rbd_error));
}

/* Caller holds storage_lock. An rbd pool's sizes are 0 here: the caller adds
 * them after it lets go of the lock (rbd_usage_fill). */
static json_t *pool_to_json(VoDaemon *d, const VoPool *p)
{
    unsigned long long cap = 0, avail = 0, used = 0;
    if (!p->rbd)
        (void)vo_fs_usage(p->path, &cap, &avail, &used);
    size_t n = 0;
    for (size_t i = 0; i < d->n_volumes; i++)
        if (!strcmp(d->volumes[i]->pool, p->name))
            n++;
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "name", p->name, "type",
                          p->type, "path", p->path, "capacity_bytes", (json_int_t)cap,
                          "allocation_bytes", (json_int_t)used, "available_bytes",
                          (json_int_t)avail, "volumes", (json_int_t)n, "created_at",
                          vo_time_json(p->created_at));
    /* A local pool is its host's; a shared one every host's that reaches it
     * (reachable and reason: on this host; the API adds every host's). */
    json_object_set_new(o, "shared", json_boolean(p->shared));
    json_object_set_new(o, "id", p->shared ? json_string(p->id) : json_null());
    json_object_set_new(o, "host", !p->shared && d->host_name ? json_string(d->host_name)
                                                              : json_null());
    json_object_set_new(o, "reachable", json_boolean(p->reach == VO_POOL_REACHABLE));
    json_object_set_new(o, "reason", p->reason && p->reach != VO_POOL_REACHABLE
                                         ? json_string(p->reason) : json_null());
    iscsi_pool_json(d, p, o);
    if (p->rbd) {
        json_object_set_new(o, "rbd", json_deep_copy(p->rbd));
        /* Images a crash left that would not go yet, and why (sweep-kept.h):
         * this host's; a shared pool's GET adds every other host's
         * (kept_intents_fill). */
        json_t *kept_list = vo_sweep_kept_json(p->name);
        size_t i;
        json_t *k;
        json_array_foreach(kept_list, i, k)
            json_object_set_new(k, "host", d->host_name ? json_string(d->host_name)
                                                        : json_null());
        json_object_set_new(o, "kept_intents", kept_list);
    }
    return o;
}

static int cmp_name(const void *a, const void *b)
{
    const char *na = json_string_value(json_object_get(*(json_t *const *)a, "key"));
    const char *nb = json_string_value(json_object_get(*(json_t *const *)b, "key"));
    if (!na)
        na = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    if (!nb)
        nb = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(na, nb);
}

static json_t *sorted_array(json_t **items, size_t n)
{
    if (n)
        qsort(items, n, sizeof(json_t *), cmp_name);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, items[i]);
    free(items);
    return arr;
}

static json_t *pools_list(VoDaemon *d, bool rbd_sizes)
{
    pthread_mutex_lock(&d->storage_lock);
    json_t **items = vo_malloc0(sizeof(json_t *) * (d->n_pools + 1));
    size_t n = d->n_pools;
    for (size_t i = 0; i < n; i++)
        items[i] = pool_to_json(d, d->pools[i]);
    pthread_mutex_unlock(&d->storage_lock);
    for (size_t i = 0; rbd_sizes && i < n; i++)
        rbd_usage_fill(items[i]);
    return sorted_array(items, n);
}

json_t *vo_pools_list_json(VoDaemon *d)
{
    return pools_list(d, true);
}

json_t *vo_pools_list_json_quick(VoDaemon *d)
{
    return pools_list(d, false);
}

/* A shared rbd pool's kept intents of the other hosts (pool-kept.h) added
 * to o's. Reads the store: call without storage_lock. */
static void kept_intents_fill(VoDaemon *d, json_t *o)
{
    json_t *list = json_object_get(o, "kept_intents");
    if (!list || !json_is_true(json_object_get(o, "shared")))
        return;
    int r = vo_pool_kept_others(d, json_string_value(json_object_get(o, "name")), list);
    if (r < 0)
        log_warn("storage: cannot read the other hosts' kept intents of pool '%s': %s",
                 json_string_value(json_object_get(o, "name")), strerror(-r));
}

int vo_pool_get_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, name);
    if (p)
        *ret = pool_to_json(d, p);
    pthread_mutex_unlock(&d->storage_lock);
    if (!p) {
        *ret_error = vo_asprintf("pool '%s' does not exist", name);
        return -ENOENT;
    }
    rbd_usage_fill(*ret);
    kept_intents_fill(d, *ret);
    return 0;
}

/* A volume's description; the sizes and chain come from qemu-img (outside the lock). */
typedef struct {
    char *pool, *name, *format, *path, *backing, *image, *content;
    bool shareable, ready;
    int64_t created_at;
    uint64_t size_bytes; /* an iSCSI LUN's */
    char *rbd_dir; /* an rbd pool's volume: its pool's directory and settings (copies) */
    json_t *rbd;
} VolumeView;

static void view_clear(VolumeView *v)
{
    free(v->pool);
    free(v->name);
    free(v->format);
    free(v->path);
    free(v->backing);
    free(v->image);
    free(v->content);
    free(v->rbd_dir);
    json_decref(v->rbd);
}

/* Caller holds storage_lock. */
static void view_of(VoDaemon *d, const VoVolume *v, VolumeView *ret)
{
    VoPool *p = pool_find(d, v->pool);
    *ret = (VolumeView){ .pool = vo_strdup(v->pool), .name = vo_strdup(v->name),
                         .format = vo_strdup(v->format),
                         .path = p ? vo_volume_path(p->path, v->name, v->format) : NULL,
                         .backing = vo_strdup(v->backing), .image = vo_strdup(v->image),
                         .content = vo_strdup(v->content), .shareable = v->shareable, .ready = v->ready,
                         .created_at = v->created_at, .size_bytes = v->size_bytes,
                         /* Copied here: view_to_json runs without the lock. */
                         .rbd_dir = p && p->rbd ? vo_strdup(p->path) : NULL,
                         .rbd = p && p->rbd ? json_deep_copy(p->rbd) : NULL };
}

/* Where backing files may be: every pool and every image directory (linked
 * clones of images; an image directory may be a symlink the operator made),
 * resolved once here for a whole listing. Caller holds storage_lock. */
static char **trusted_roots(VoDaemon *d)
{
    char **roots = NULL;
    char resolved[PATH_MAX];
    for (size_t i = 0; i < d->n_pools; i++)
        if (realpath(d->pools[i]->path, resolved))
            vo_strv_pushf(&roots, "%s", resolved);
    _cleanup_free_ char *images = vo_asprintf("%s/images", d->state_dir);
    DIR *dir = opendir(images);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        _cleanup_free_ char *image = vo_asprintf("%s/%s", images, e->d_name);
        if (vo_name_valid(e->d_name) && realpath(image, resolved))
            vo_strv_pushf(&roots, "%s", resolved);
    }
    if (dir)
        closedir(dir);
    return roots;
}

static json_t *view_to_json(VoDaemon *d, const VolumeView *v, char *const *roots)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", v->pool, v->name);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o}", "pool", v->pool, "name",
                          v->name, "key", key, "path", v->path ? v->path : "", "format",
                          v->format, "shareable", v->shareable, "created_at",
                          vo_time_json(v->created_at));
    VoImgInfo info = { 0 };
    json_t *chain = json_array();
    uint64_t vsize = 0, alloc = 0;
    /* Read from the headers, not qemu-img: listing 1000 volumes stays cheap.
     * Only as the recorded format, and backing files only inside roots. */
    VoRbdPool rp;
    _cleanup_free_ char *rbd_error = NULL;
    if (v->ready && v->rbd && vo_storage_rbd_load(v->rbd_dir, v->rbd, &rp, &rbd_error) >= 0) {
        VoRbdConf c = vo_rbd_pool_conf(&rp);
        (void)vo_rbd_image_usage(&c, v->name, &vsize, &alloc, &rbd_error);
        json_object_set_new(o, "rbd_image", json_sprintf("%s/%s", rp.pool, v->name));
        /* A linked clone's parent: its image's base snapshot. */
        char *parent = v->image ? vo_rbd_image_parent(&c, v->name) : NULL;
        json_object_set_new(o, "rbd_parent", parent ? json_string(parent) : json_null());
        free(parent);
        vo_rbd_pool_clear(&rp);
    } else if (v->ready && v->path &&
               vo_img_header_chain(v->path, v->format, roots, &info) >= 0 && info.n_layers > 0) {
        vsize = info.layers[0].virtual_size;
        alloc = info.layers[0].actual_size;
        for (size_t i = 1; i < info.n_layers; i++)
            json_array_append_new(chain, json_pack("{s:s, s:s}", "path", info.layers[i].path,
                                                   "format", info.layers[i].format));
    }
    vo_img_info_clear(&info);
    VoIscsiUrl lun;
    if (v->path && vo_iscsi_url_parse(v->path, &lun) == 0) { /* a LUN: no file to read */
        vsize = alloc = v->size_bytes;
        json_object_set_new(o, "lun", json_integer(lun.lun));
        vo_iscsi_url_clear(&lun);
    }
    json_object_set_new(o, "virtual_size_bytes", json_integer((json_int_t)vsize));
    json_object_set_new(o, "allocation_bytes", json_integer((json_int_t)alloc));
    json_object_set_new(o, "backing", chain);
    json_object_set_new(o, "backing_volume", v->backing ? json_string(v->backing) : json_null());
    json_object_set_new(o, "image", v->image ? json_string(v->image) : json_null());
    json_object_set_new(o, "content", json_string(v->content ? v->content : "disk"));
    VoRelationUser u;
    _cleanup_free_ char *host = NULL;
    bool attached = volume_user_at(d, key, &u, &host);
    json_object_set_new(o, "attached_to", attached ? json_string(u.name) : json_null());
    /* The VM's host (a shared pool's volume may be another host's VM's). */
    json_object_set_new(o, "attached_host",
                        !attached ? json_null()
                        : host    ? json_string(host)
                                  : d->host_name ? json_string(d->host_name) : json_null());
    if (attached)
        vo_relation_user_clear(&u);
    json_object_set_new(o, "state", json_string(v->ready ? "ready" : "creating"));
    return o;
}

json_t *vo_volumes_list_json(VoDaemon *d, const char *pool)
{
    pthread_mutex_lock(&d->storage_lock);
    VolumeView *views = vo_malloc0(sizeof(VolumeView) * (d->n_volumes + 1));
    size_t n = 0;
    for (size_t i = 0; i < d->n_volumes; i++)
        if (!pool || !strcmp(d->volumes[i]->pool, pool))
            view_of(d, d->volumes[i], &views[n++]);
    _cleanup_strv_ char **roots = trusted_roots(d);
    pthread_mutex_unlock(&d->storage_lock);
    json_t **items = vo_malloc0(sizeof(json_t *) * (n + 1));
    for (size_t i = 0; i < n; i++) {
        items[i] = view_to_json(d, &views[i], roots);
        view_clear(&views[i]);
    }
    free(views);
    return sorted_array(items, n);
}

int vo_volume_get_json(VoDaemon *d, const char *pool, const char *name, json_t **ret,
                       char **ret_error)
{
    VolumeView view;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
    if (v)
        view_of(d, v, &view);
    _cleanup_strv_ char **roots = trusted_roots(d);
    pthread_mutex_unlock(&d->storage_lock);
    if (!v) {
        *ret_error = vo_asprintf("volume '%s/%s' does not exist", pool, name);
        return -ENOENT;
    }
    *ret = view_to_json(d, &view, roots);
    view_clear(&view);
    return 0;
}

/* ---- pools ------------------------------------------------------------------ */

/* Whether resolved path a is b or lies below it (b resolved first). */
static bool is_under(const char *a, const char *b)
{
    char rb[PATH_MAX];
    if (!realpath(b, rb))
        snprintf(rb, sizeof(rb), "%s", b);
    size_t len = strlen(rb);
    if (len == 1)
        return true;
    return !strncmp(a, rb, len) && (a[len] == '/' || a[len] == 0);
}

/* Whether a and b (a resolved) are one inside the other. */
static bool path_nested(const char *a, const char *b)
{
    char rb[PATH_MAX];
    if (!realpath(b, rb))
        snprintf(rb, sizeof(rb), "%s", b);
    return is_under(a, rb) || is_under(rb, a);
}

/* 1 and *ret filled when pool is an rbd pool, 0 when it is another kind or
 * unknown, -errno (with *ret_error) when its settings cannot be read.
 * Takes storage_lock: call without it. */
static int rbd_pool_of(VoDaemon *d, const char *pool, VoRbdPool *ret, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, pool);
    _cleanup_free_ char *dir = p && p->rbd ? vo_strdup(p->path) : NULL;
    json_t *props = p && p->rbd ? json_incref(p->rbd) : NULL;
    pthread_mutex_unlock(&d->storage_lock);
    if (!dir)
        return 0;
    int r = vo_storage_rbd_load(dir, props, ret, ret_error);
    json_decref(props);
    return r < 0 ? r : 1;
}

/* The same, for a caller that holds storage_lock (reads a local file only). */
static int rbd_pool_of_locked(VoPool *p, VoRbdPool *ret, char **ret_error)
{
    if (!p || !p->rbd)
        return 0;
    int r = vo_storage_rbd_load(p->path, p->rbd, ret, ret_error);
    return r < 0 ? r : 1;
}

bool vo_pool_is_rbd(VoDaemon *d, const char *pool)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, pool);
    bool rbd = p && p->rbd;
    pthread_mutex_unlock(&d->storage_lock);
    return rbd;
}

int vo_volume_rbd_image(VoDaemon *d, const char *key, VoRbdPool *ret, char **ret_image,
                        char **ret_error)
{
    const char *slash = key ? strchr(key, '/') : NULL;
    if (!slash)
        return 0;
    _cleanup_free_ char *pool = vo_asprintf("%.*s", (int)(slash - key), key);
    int r = rbd_pool_of(d, pool, ret, ret_error);
    if (r > 0)
        *ret_image = vo_strdup(slash + 1); /* a volume's RBD image has its name */
    return r;
}

int vo_rbd_pools_forget_image(VoDaemon *d, const char *image, char **ret_error)
{
    _cleanup_strv_ char **names = NULL;
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_pools; i++)
        if (d->pools[i]->rbd)
            vo_strv_pushf(&names, "%s", d->pools[i]->name);
    pthread_mutex_unlock(&d->storage_lock);
    int r = 0;
    for (char **name = names; r >= 0 && name && *name; name++) {
        VoRbdPool rp;
        _cleanup_free_ char *error = NULL;
        r = rbd_pool_of(d, *name, &rp, &error);
        if (r > 0) {
            r = vo_storage_rbd_forget_image(&rp, image, &error);
            vo_rbd_pool_clear(&rp);
        }
        if (r < 0)
            r = vo_error_set(ret_error, r, "cannot remove the base of image '%s' in rbd pool "
                             "'%s': %s", image, *name, error ? error : strerror(-r));
    }
    return r < 0 ? r : 0;
}

char *vo_image_clone_names(VoDaemon *d, const char *image)
{
    char *list = NULL;
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_volumes; i++) {
        VoVolume *v = d->volumes[i];
        if (v->image && !strcmp(v->image, image)) {
            char *more = vo_asprintf("%s%s%s/%s", list ? list : "", list ? ", " : "", v->pool,
                                     v->name);
            free(list);
            list = more;
        }
    }
    pthread_mutex_unlock(&d->storage_lock);
    return list;
}

int vo_pool_create_rbd(VoDaemon *d, const VoPoolSpec *spec, json_t **ret, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    bool taken = pool_find(d, spec->name) != NULL;
    pthread_mutex_unlock(&d->storage_lock);
    if (taken)
        return vo_error_set(ret_error, -EEXIST, "a pool named '%s' already exists", spec->name);
    /* The cluster is asked without the lock (bounded: VO_RBD_TIMEOUT_S). */
    _cleanup_free_ char *dir = NULL;
    json_t *props = NULL;
    int r = vo_storage_rbd_prepare(d, spec, &dir, &props, ret_error);
    if (r < 0)
        return r;
    /* In a cluster the pool is the cluster's (storage-rbd-shared.h): every
     * host that reaches the monitors uses it. Its key is published first,
     * then the document is made new (the name is the cluster's). */
    bool shared = d->cluster != NULL;
    char uuid[37] = "";
    VoPoolNameClaim claim = { 0 };
    if (shared)
        r = vo_pool_name_claim_shared(d, spec->name, &claim, ret_error);
    if (r >= 0 && shared && vo_uuid_generate(uuid) < 0)
        r = vo_error_set(ret_error, -EIO, "cannot make an id for pool '%s'", spec->name);
    if (r >= 0 && shared)
        r = vo_storage_rbd_publish_key(d, spec->name, uuid, dir, ret_error);
    if (r >= 0 && shared && (r = vo_storage_rbd_write_id(dir, uuid)) < 0) {
        vo_storage_pool_key_unpublish(d, uuid);
        r = vo_error_set(ret_error, r, "cannot write the id of pool '%s' in %s: %s",
                         spec->name, dir, strerror(-r));
    }
    if (r < 0) {
        vo_pool_name_claim_end(d, &claim);
        vo_storage_rbd_discard(dir);
        json_decref(props);
        return r;
    }
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_malloc0(sizeof(*p));
    *p = (VoPool){ .name = vo_strdup(spec->name), .type = vo_strdup(VO_RBD_POOL_TYPE),
                   .path = vo_strdup(dir), .created_at = vo_wall_ms(), .rbd = props,
                   .shared = shared, .id = shared ? vo_strdup(uuid) : NULL,
                   /* it answered right now (prepare checked it) */
                   .reach = VO_POOL_REACHABLE };
    r = pool_find(d, spec->name)
            ? vo_error_set(ret_error, -EEXIST, "a pool named '%s' already exists", spec->name)
            : save_pool_as(d, p, VO_REV_NEW, shared ? &claim : NULL, ret_error);
    if (r < 0) {
        pool_free(p);
        vo_storage_rbd_discard(dir);
    } else {
        registry_add_pool(d, p);
        *ret = pool_to_json(d, p);
    }
    pthread_mutex_unlock(&d->storage_lock);
    vo_pool_name_claim_end(d, &claim);
    if (r < 0 && shared)
        vo_storage_pool_key_unpublish(d, uuid);
    if (r >= 0)
        rbd_usage_fill(*ret);
    return r;
}

int vo_pool_create(VoDaemon *d, const char *name, const char *type, const char *path,
                   bool shared, json_t **ret, char **ret_error)
{
    if (shared && strcmp(type, "dir")) {
        *ret_error = vo_asprintf("shared: a %s pool cannot be shared (only dir pools)", type);
        return -EINVAL;
    }
    if (!vo_name_valid(name)) {
        *ret_error = vo_asprintf("name: '%s' is invalid: use 1-63 characters of a-z, 0-9 and "
                                 "'-', not starting with '-'", name);
        return -EINVAL;
    }
    if (strcmp(type, "dir") && strcmp(type, VO_BACKUP_POOL_TYPE)) {
        *ret_error = vo_asprintf("type: '%s' is not supported (dir or backup)", type);
        return -EINVAL;
    }
    struct stat st;
    if (!path || path[0] != '/' || stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        *ret_error = vo_asprintf("path: '%s' is not an existing directory (absolute path)",
                                 path ? path : "");
        return -EINVAL;
    }
    _cleanup_free_ char *real = realpath(path, NULL);
    if (!real) {
        *ret_error = vo_asprintf("path: cannot resolve '%s': %s", path, strerror(errno));
        return -EINVAL;
    }
    pthread_mutex_lock(&d->storage_lock);
    bool taken = pool_find(d, name) != NULL;
    pthread_mutex_unlock(&d->storage_lock);
    if (taken)
        return vo_error_set(ret_error, -EEXIST, "a pool named '%s' already exists", name);
    /* A shared pool's name is the cluster's: claimed first, free on every
     * host (pool-names.h); asked without the lock. */
    VoPoolNameClaim claim = { 0 };
    int r = shared ? vo_pool_name_claim_shared(d, name, &claim, ret_error) : 0;
    if (r < 0)
        return r;
    pthread_mutex_lock(&d->storage_lock);
    if (pool_find(d, name)) {
        *ret_error = vo_asprintf("a pool named '%s' already exists", name);
        r = -EEXIST;
    }
    for (size_t i = 0; r == 0 && i < d->n_pools; i++)
        if (!strcmp(d->pools[i]->path, real)) {
            *ret_error = vo_asprintf("path: '%s' is already pool '%s'", real, d->pools[i]->name);
            r = -EEXIST;
        }
    /* vireo deletes whole directories in its state and run directories
     * (images, VMs), and a pool's files are its volumes: no two may nest. */
    const char *owned[] = { d->state_dir, d->run_dir };
    const char *owned_what[] = { "vireo's state directory", "vireo's run directory" };
    for (size_t i = 0; r == 0 && i < ELEMENTSOF(owned); i++)
        if (path_nested(real, owned[i])) {
            *ret_error = vo_asprintf("path: '%s' overlaps %s %s: choose a directory outside it",
                                     real, owned_what[i], owned[i]);
            r = -EINVAL;
        }
    for (size_t i = 0; r == 0 && i < d->n_pools; i++)
        if (path_nested(real, d->pools[i]->path)) {
            *ret_error = vo_asprintf("path: '%s' %s pool '%s' (%s): pools may not nest", real,
                                     is_under(real, d->pools[i]->path) ? "is inside"
                                                                       : "contains",
                                     d->pools[i]->name, d->pools[i]->path);
            r = -EINVAL;
        }
    char uuid[37] = "";
    if (r == 0 && shared && vo_uuid_generate(uuid) < 0)
        r = vo_error_set(ret_error, -EIO, "cannot make an id for pool '%s'", name);
    /* The marker first (exclusively: a directory another pool marked is
     * refused here, naming it), then the document; a refused document takes
     * the marker back. */
    if (r == 0 && shared)
        r = vo_pool_marker_write(real, uuid, name, ret_error);
    if (r == 0) {
        VoPool *p = vo_malloc0(sizeof(*p));
        *p = (VoPool){ .name = vo_strdup(name), .type = vo_strdup(type), .path = vo_strdup(real),
                       .created_at = vo_wall_ms(), .shared = shared,
                       .id = shared ? vo_strdup(uuid) : NULL };
        /* The create fails on a name another host took in the meantime:
         * a shared pool's anywhere, a host's own pool's as a shared one. */
        if (!shared)
            vo_test_hold("pool_own_checked");
        r = save_pool_as(d, p, VO_REV_NEW, shared ? &claim : NULL, ret_error);
        if (r < 0) {
            if (shared)
                vo_pool_marker_remove(real, uuid);
            pool_free(p);
        } else {
            registry_add_pool(d, p);
            *ret = pool_to_json(d, p);
        }
    }
    pthread_mutex_unlock(&d->storage_lock);
    vo_pool_name_claim_end(d, &claim);
    return r;
}

/* Whether dir holds anything but hidden entries. */
static bool dir_has_entries(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(dir)))
        found = e->d_name[0] != '.';
    closedir(dir);
    return found;
}

/* If-Match: 0 when expected is 0 or rev, else -VO_EIFMATCH naming what. */
static int rev_is(int64_t expected, int64_t rev, const char *what, const char *name,
                  char **ret_error)
{
    if (expected <= 0 || expected == rev)
        return 0;
    _cleanup_free_ char *named = vo_asprintf("%s '%s'", what, name);
    return vo_if_match_check(expected, rev, named, ret_error);
}

/* images.h's VO_SHARED_IMAGES_PREFIX (this file sits below the images). */
#define SHARED_IMAGES_PREFIX "cluster/images/"

typedef struct {
    const char *pool;
    size_t n;
} PoolDocs;

static int count_pool_doc(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)key;
    (void)rev;
    PoolDocs *c = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *pool = json_string_value(json_object_get(doc, "pool"));
    if (pool && !strcmp(pool, c->pool))
        c->n++;
    json_decref(doc);
    return 0;
}

/* The documents of the whole cluster that name shared pool name: its
 * volumes (every host's, not only those this host has listed) and the
 * images kept in it. */
static int shared_pool_docs(VoDaemon *d, const char *name, size_t *ret_volumes,
                            size_t *ret_images)
{
    _cleanup_free_ char *prefix = vo_asprintf(VO_SHARED_VOLUMES_PREFIX "%s/", name);
    PoolDocs vols = { .pool = name }, imgs = { .pool = name };
    int r = vo_store_list(d->store, prefix, count_pool_doc, &vols);
    if (r >= 0)
        r = vo_store_list(d->store, SHARED_IMAGES_PREFIX, count_pool_doc, &imgs);
    *ret_volumes = vols.n;
    *ret_images = imgs.n;
    return r;
}

static int iscsi_pool_drop_luns(VoDaemon *d, const char *name, int64_t expected,
                                char **ret_error);

/* "KEY (ERROR) on host H" for each kept intent of this host's of rbd pool
 * name, "; "-joined, or NULL when it has none (sweep-kept.h). */
static char *kept_intents_text(VoDaemon *d, const char *name)
{
    json_t *list = vo_sweep_kept_json(name);
    char *text = NULL;
    size_t i;
    json_t *k;
    json_array_foreach(list, i, k) {
        char *more = vo_asprintf("%s%s%s (%s) on host %s", text ? text : "", text ? "; " : "",
                                 json_string_value(json_object_get(k, "intent")),
                                 json_string_value(json_object_get(k, "error")),
                                 d->host_name ? d->host_name : "?");
        free(text);
        text = more;
    }
    json_decref(list);
    return text;
}

/* The refusal of pool name's delete while intents are kept (text:
 * kept_intents_text's, or pool-kept.h's for other hosts). */
static char *kept_intents_refusal(const char *name, const char *text)
{
    return vo_asprintf("pool '%s' keeps RBD images a crash left that could not be removed "
                       "yet: %s; delete with force to drop them (the images stay in Ceph)",
                       name, text);
}

int vo_pool_delete(VoDaemon *d, const char *name, int64_t expected, bool force,
                   char **ret_error)
{
    int ri = iscsi_pool_drop_luns(d, name, expected, ret_error);
    if (ri < 0)
        return ri;
    pthread_mutex_lock(&d->storage_lock);
    bool shared = pool_is_shared(d, name);
    pthread_mutex_unlock(&d->storage_lock);
    size_t cluster_volumes = 0, cluster_images = 0;
    if (shared) {
        int k = shared_pool_docs(d, name, &cluster_volumes, &cluster_images);
        if (k < 0)
            return vo_error_set(ret_error, k, "cannot delete pool '%s': cannot read the "
                                "cluster's documents: %s", name, strerror(-k));
    }
    VoRbdPool rp = { 0 };
    _cleanup_free_ char *rbd_error = NULL;
    bool rbd = rbd_pool_of(d, name, &rp, &rbd_error) > 0;
    /* RBD images a crash left that would not go yet: the pool's delete
     * would drop their records, and the images would stay in Ceph unseen. */
    _cleanup_free_ char *kept_intents = force ? NULL : kept_intents_text(d, name);
    _cleanup_free_ char *unpublish = NULL; /* the id of a cluster's rbd or iSCSI pool deleted */
    pthread_mutex_lock(&d->storage_lock);
    int r = 0;
    VoPool *p = pool_find(d, name);
    size_t n = 0;
    for (size_t i = 0; p && i < d->n_volumes; i++)
        if (!strcmp(d->volumes[i]->pool, name))
            n++;
    if (!p) {
        *ret_error = vo_asprintf("pool '%s' does not exist", name);
        r = -ENOENT;
    } else if ((r = rev_is(expected, p->rev, "pool", name, ret_error)) < 0) {
        /* nothing changes (a precondition comes before the method's checks) */
    } else if (!strcmp(name, VO_DEFAULT_POOL)) {
        *ret_error = vo_strdup("the default pool cannot be deleted");
        r = -EBUSY;
    } else if (kept_intents) {
        *ret_error = kept_intents_refusal(name, kept_intents);
        r = -EBUSY;
    } else if (n > 0 || cluster_volumes > 0) {
        *ret_error = vo_asprintf("pool '%s' still holds %zu volume(s); delete them first", name,
                                 n > cluster_volumes ? n : cluster_volumes);
        r = -EBUSY;
    } else if (cluster_images > 0) {
        *ret_error = vo_asprintf("pool '%s' still holds %zu image(s); delete them first", name,
                                 cluster_images);
        r = -EBUSY;
    } else if (!strcmp(p->type, VO_BACKUP_POOL_TYPE) && dir_has_entries(p->path)) {
        *ret_error = vo_asprintf("pool '%s' still holds backups; delete them first", name);
        r = -EBUSY;
    } else {
        _cleanup_free_ char *key = pool_doc_key(p->shared, name);
        _cleanup_free_ char *others_kept = NULL;
        /* A shared rbd pool: every host's kept intents of it are compared
         * in the delete's transaction (pool-kept.h). */
        if (p->shared && p->rbd)
            r = vo_pool_kept_delete_pool(d, key, p->rev, name, force, &others_kept);
        else
            r = vo_store_delete(d->store, key, p->rev);
        if (r == -EBUSY && others_kept)
            *ret_error = kept_intents_refusal(name, others_kept);
        else if (r == -ESTALE && p->shared)
            *ret_error = vo_asprintf("pool '%s' changed on another host: try again", name);
        else if (r < 0 && r != -ENOENT)
            *ret_error = vo_asprintf("cannot delete pool '%s': %s", name, strerror(-r));
        else {
            r = 0;
            if (p->shared && !pool_is_networked(p)) /* a directory's marker */
                vo_pool_marker_remove(p->path, p->id);
            if (p->shared && pool_is_networked(p))
                unpublish = vo_strdup(p->id);
            if (!strcmp(p->type, VO_ISCSI_POOL_TYPE)) {
                _cleanup_free_ char *secret = vo_iscsi_secret_path(d->state_dir, name);
                (void)unlink(secret);
            }
            if (p->rbd)
                vo_storage_rbd_discard(p->path);
            for (size_t i = 0; i < d->n_pools; i++)
                if (d->pools[i] == p) {
                    d->pools[i] = d->pools[--d->n_pools];
                    break;
                }
            pool_free(p);
        }
    }
    pthread_mutex_unlock(&d->storage_lock);
    if (r >= 0) /* forced (else refused above): the records go, the images stay */
        vo_sweep_kept_forget_pool(d, name);
    if (unpublish) /* one place for both: the rbd key's or the CHAP secret's */
        vo_storage_pool_key_unpublish(d, unpublish);
    if (r >= 0 && rbd) /* its image bases that no other pool's clones use */
        vo_storage_rbd_forget_bases(&rp);
    if (rbd)
        vo_rbd_pool_clear(&rp);
    return r;
}

/* ---- volume reservations -------------------------------------------------------- */

/* The new volume's file is half-made until its document is saved: recorded
 * so that a crash meanwhile leaves nothing that blocks the name (sweep.h). */
static int begin_volume_intent(VoDaemon *d, const char *pool, const char *name, const char *path,
                               bool shared, const char *lock)
{
    _cleanup_free_ char *key = vo_asprintf("volumes/%s/%s", pool, name);
    /* The owner is the volume's document: the cluster's for a shared one. */
    _cleanup_free_ char *owner = volume_doc_key(shared, pool, name);
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
static bool creating_is_live(VoDaemon *d, const char *pool, const char *lock)
{
    VoPool *p = pool_find(d, pool);
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

static void end_volume_intent(VoDaemon *d, const char *pool, const char *name)
{
    _cleanup_free_ char *key = vo_asprintf("volumes/%s/%s", pool, name);
    vo_intent_end(d, key);
}

/* Caller holds storage_lock. */
static bool pool_is_shared(VoDaemon *d, const char *name)
{
    VoPool *p = pool_find(d, name);
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
static char *creating_holder(const char *path)
{
    char *text = NULL;
    if (vo_read_file(path, 256, &text, NULL) < 0)
        return NULL;
    text[strcspn(text, "\n")] = '\0';
    return text;
}

/* Caller holds storage_lock, and pool_for_new_volume found no volume of
 * this name in the registry. A .creating lock left by a crash: this host's
 * own (no create of this host runs on the name), or, in a cluster, one of a
 * host that has no live record (cluster/hosts/<id> gone: it is down). Such
 * a lock is moved aside (atomically, so of two hosts breaking it only one
 * gets it) and removed; true when it was broken. */
static bool break_stale_creating(VoDaemon *d, const char *lock)
{
    _cleanup_free_ char *holder = creating_holder(lock);
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
    _cleanup_free_ char *moved = creating_holder(aside);
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
static int reserve_volume(VoDaemon *d, const char *pool, const char *name, const char *format,
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
    VoPool *p = pool_for_new_volume(d, pool, name, &r, ret_error);
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
    } else if ((r = begin_volume_intent(d, pool, name, path, p->shared, lock)) < 0) {
        *ret_error = vo_asprintf("volume '%s/%s': cannot record the operation: %s", pool, name,
                                 strerror(-r));
    } else {
        VoVolume *v = vo_malloc0(sizeof(*v));
        *v = (VoVolume){ .pool = vo_strdup(pool), .name = vo_strdup(name),
                         .format = vo_strdup(format), .busy = true, .shared = p->shared,
                         .created_at = vo_wall_ms() };
        registry_add_volume(d, v);
        *ret_path = TAKE_PTR(path);
    }
    if (r < 0 && lock)
        (void)unlink(lock);
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

/* Ends a reservation: keep it (persisted, ready) or drop it and its file. */
static int finish_volume(VoDaemon *d, const char *pool, const char *name, const char *path,
                         bool ok, const char *backing, const char *image)
{
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
    bool shared = pool_is_shared(d, pool);
    int r = 0;
    if (v && ok) {
        v->backing = vo_strdup(backing);
        v->image = vo_strdup(image);
        r = save_volume(d, v);
        if (r >= 0) {
            v->busy = false;
            v->ready = true;
        }
    }
    if (v && (!ok || r < 0)) {
        (void)unlink(path);
        registry_remove_volume(d, v);
        forget_project(d, pool, name, shared);
    }
    if (shared) {
        _cleanup_free_ char *lock = creating_lock(path);
        (void)unlink(lock);
    }
    end_volume_intent(d, pool, name);
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

/* Marks an existing, ready volume busy for an operation; returns its path. */
static int claim_volume(VoDaemon *d, const char *pool, const char *name, char **ret_path,
                        char **ret_format, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
    VoPool *p = pool_find(d, pool);
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

static void release_volume(VoDaemon *d, const char *pool, const char *name)
{
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
    if (v)
        v->busy = false;
    pthread_mutex_unlock(&d->storage_lock);
}

int vo_volume_claim(VoDaemon *d, const char *pool, const char *name, char **ret_error)
{
    _cleanup_free_ char *path = NULL;
    return claim_volume(d, pool, name, &path, NULL, ret_error);
}

void vo_volume_unclaim(VoDaemon *d, const char *pool, const char *name)
{
    release_volume(d, pool, name);
}

/* ---- tasks ------------------------------------------------------------------------ */

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
    finish_volume(op->d, op->pool, op->name, op->path, false, NULL, NULL);
    if (op->backing) {
        _cleanup_free_ char *src_pool = NULL, *src_name = NULL;
        if (vo_volume_key_split(op->backing, &src_pool, &src_name) >= 0)
            release_volume(op->d, src_pool, src_name);
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

static void report_progress(int percent, void *userdata)
{
    if (userdata) /* NULL: a copy outside a task (a VM's UEFI NVRAM) */
        vo_task_progress(userdata, percent, "copying data");
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

static int rbd_volume_finish(VoDaemon *d, const char *pool, const char *name, const char *path,
                             const VoRbdPool *rp, int r, const char *image, char **ret_error);

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
        int k = rbd_pool_of(op->d, op->pool, &rp, &error);
        rbd = k > 0;
        r = k < 0 ? k : vo_img_probe_import(op->src_path, &src_format, &error);
        /* An ISO is copied as it is (probing could take an ISO with a
         * partition table for something else). */
        if (r >= 0 && k > 0) /* into a new RBD image, through QEMU's rbd driver */
            r = vo_storage_rbd_import(&rp, op->name, op->src_path, src_format, 0, &error);
        else if (r >= 0 && vo_iso_probe(op->src_path) > 0)
            r = vo_img_convert(op->src_path, "raw", op->path, "raw", report_progress, t, &error);
        else if (r >= 0)
            r = vo_img_convert(op->src_path, src_format, op->path, op->format, report_progress,
                               t, &error);
        if (op->src_owned) { /* an upload: its temp file has served */
            (void)unlink(op->src_path);
            op->src_owned = false;
        }
    } else {
        vo_task_progress(t, 10, "creating");
        r = rbd_pool_of(op->d, op->pool, &rp, &error);
        rbd = r > 0;
        if (rbd) { /* an RBD image (thin), not a file */
            VoRbdConf c = vo_rbd_pool_conf(&rp);
            r = vo_rbd_image_create(&c, op->name, op->size, &error);
        } else if (r == 0)
            r = vo_img_create(op->path, op->format, op->size, NULL, NULL, &error);
    }
    if (rbd)
        r = rbd_volume_finish(op->d, op->pool, op->name, op->path, &rp, r, NULL, &error);
    else {
        int k = finish_volume(op->d, op->pool, op->name, op->path, r >= 0, NULL, NULL);
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
    bool shared = pool_is_shared(d, pool);
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
    int k = rbd_pool_of(d, args->pool, &rp, ret_error);
    if (k < 0)
        return k;
    if (k > 0) {
        vo_rbd_pool_clear(&rp);
        if (iso) /* a CD-ROM's medium is a file: QEMU's rbd CD-ROMs are not wired */
            return vo_error_set(ret_error, -EINVAL, "import_path: '%s' is an ISO image: import "
                                "it into a dir pool (rbd pool '%s' holds disks)",
                                args->import_path, args->pool);
        format = "raw"; /* an RBD image is raw: its thinness is Ceph's */
    }
    VolumeOp *op = volume_op(d, args->pool, args->name);
    op->format = vo_strdup(format);
    op->size = args->size_bytes;
    op->src_path = vo_strdup(args->import_path);
    op->src_owned = args->import_owned;
    int r = reserve_volume(d, args->pool, args->name, format, &op->path, ret_error);
    if (r < 0) {
        op->src_owned = false; /* the caller still owns it on refusal */
        volume_op_free(op);
        return r;
    }
    if (iso) {
        pthread_mutex_lock(&d->storage_lock);
        VoVolume *v = volume_find(d, args->pool, args->name);
        if (v)
            v->content = vo_strdup("iso");
        pthread_mutex_unlock(&d->storage_lock);
    }
    int64_t bytes = !args->project ? 0 : args->import_path ? file_virtual_size(args->import_path,
                                                                               NULL)
                                                          : (int64_t)args->size_bytes;
    if ((r = claim_project(d, args->pool, args->name, args->project, bytes, ret_error)) < 0) {
        finish_volume(d, args->pool, args->name, op->path, false, NULL, NULL);
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
        finish_volume(d, args->pool, args->name, op->path, false, NULL, NULL);
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
        finish_volume(d, args->pool, args->name, op->path, false, NULL, NULL);
        op->src_owned = false;
        volume_op_free(op);
        json_decref(*ret_volume);
        *ret_volume = NULL;
    }
    return r;
}

static int remove_volume(VoDaemon *d, const char *key, int64_t expected, char **ret_error);
static int attach_lock(VoDaemon *d, const char *pool, const char *name, char **ret_error);

/* An attach lock held for the length of a scope. */
static void lease_keeper_stopp(VoLeaseKeeper **k)
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
    _cleanup_free_ char *user = volume_user_name(d, key);
    if (user)
        return vo_asprintf("volume '%s' is attached to VM '%s'", key, user);
    pthread_mutex_lock(&d->storage_lock);
    size_t deps = volume_dependents(d, key);
    pthread_mutex_unlock(&d->storage_lock);
    if (deps)
        return vo_asprintf("volume '%s' backs %zu linked clone(s); delete them first", key, deps);
    return NULL;
}

int vo_volume_delete(VoDaemon *d, const char *pool, const char *name, int64_t expected,
                     json_t **ret_task, char **ret_error)
{
    int ri = iscsi_check(d, pool, "delete volumes of", ret_error);
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
    r = claim_volume(d, pool, name, &path, NULL, ret_error);
    if (r < 0)
        return r;
    /* A shared volume: the attach lock too, so that no host attaches it
     * between the check below and the delete (it is dropped with its
     * lease when this returns). */
    _cleanup_(lease_keeper_stopp) VoLeaseKeeper *hold = NULL;
    if (key_is_shared(d, key) && (r = attach_lock(d, pool, name, ret_error)) < 0) {
        release_volume(d, pool, name);
        return r;
    }
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *held = volume_find(d, pool, name);
    if (held)
        hold = TAKE_PTR(held->attach_keeper);
    pthread_mutex_unlock(&d->storage_lock);
    char *why = volume_in_use(d, pool, name);
    if (why) {
        release_volume(d, pool, name);
        *ret_error = why;
        return -EBUSY;
    }
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
    r = rev_is(expected, v->rev, "volume", key, ret_error);
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
    r = begin_volume_intent(d, pool, name, path, v->shared, NULL);
    VoRbdPool rp;
    _cleanup_free_ char *rbd_error = NULL;
    /* An RBD image goes before its document: a refusal (open by a client)
     * keeps both. */
    int k = r >= 0 ? rbd_pool_of_locked(pool_find(d, pool), &rp, &rbd_error) : 0;
    if (k > 0) {
        /* The cluster is asked without the lock (the volume stays claimed:
         * busy, so nothing else takes or removes it meanwhile). */
        pthread_mutex_unlock(&d->storage_lock);
        VoRbdConf c = vo_rbd_pool_conf(&rp);
        k = vo_rbd_remove_past_dead(&c, name, &rbd_error);
        vo_rbd_pool_clear(&rp);
        pthread_mutex_lock(&d->storage_lock);
        v = volume_find(d, pool, name);
    }
    if (k < 0 || !v) {
        if (!v) { /* dropped from the registry meanwhile */
            end_volume_intent(d, pool, name);
            *ret_error = vo_asprintf("volume '%s' does not exist", key);
            pthread_mutex_unlock(&d->storage_lock);
            return -ENOENT;
        }
        end_volume_intent(d, pool, name);
        v->busy = false;
        *ret_error = vo_asprintf("cannot delete volume '%s': %s", key, rbd_error);
        pthread_mutex_unlock(&d->storage_lock);
        return k;
    }
    if (r >= 0)
        r = delete_volume_doc(d, v);
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
        forget_project(d, pool, name, v->shared);
        registry_remove_volume(d, v);
    }
    if (!file_left)
        end_volume_intent(d, pool, name);
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
        r = rbd_pool_of(op->d, op->pool, &rp, &error);
        if (r > 0) {
            VoRbdConf c = vo_rbd_pool_conf(&rp);
            r = vo_rbd_image_resize(&c, op->name, op->size, &error);
            vo_rbd_pool_clear(&rp);
        } else if (r == 0)
            r = vo_img_resize(op->path, op->format, op->size, op->allow_shrink, &error);
    }
    release_volume(op->d, op->pool, op->name);
    _cleanup_free_ char *ignored = NULL;
    if (r < 0 && op->grown && disk_grow) /* not grown: its VM's project counts it back */
        (void)disk_grow(op->d, key, -op->grown, &ignored);
    return r < 0 ? fail_volume_task(t, r, "resize", op, error) : 0;
}

int vo_volume_resize(VoDaemon *d, const char *pool, const char *name, uint64_t size,
                     bool allow_shrink, int64_t expected, json_t **ret_task, char **ret_error)
{
    int ri = iscsi_check(d, pool, "resize volumes of", ret_error);
    if (ri < 0)
        return ri;
    if (size == 0 || size > (64ULL << 40)) {
        *ret_error = vo_strdup("size_bytes: out of range (1 byte to 64 TiB)");
        return -EINVAL;
    }
    VolumeOp *op = volume_op(d, pool, name);
    op->size = size;
    op->allow_shrink = allow_shrink;
    int r = claim_volume(d, pool, name, &op->path, &op->format, ret_error);
    if (r < 0) {
        volume_op_free(op);
        return r;
    }
    /* If-Match while claimed: no other change of the volume runs now. */
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *claimed = volume_find(d, pool, name);
    _cleanup_free_ char *shown = vo_asprintf("%s/%s", pool, name);
    r = claimed ? rev_is(expected, claimed->rev, "volume", shown, ret_error) : 0;
    pthread_mutex_unlock(&d->storage_lock);
    if (r < 0) {
        release_volume(d, pool, name);
        volume_op_free(op);
        return r;
    }
    if (!strcmp(op->format, "qcow2") && size % 512) {
        *ret_error = vo_asprintf("size_bytes: %llu is not a multiple of 512; a qcow2 volume's "
                                 "size must be (e.g. %llu)", (unsigned long long)size,
                                 (unsigned long long)(size + 511) / 512 * 512);
        release_volume(d, pool, name);
        volume_op_free(op);
        return -EINVAL;
    }
    VoImgInfo info = { 0 };
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    VoRelationUser u;
    bool attached = volume_user(d, key, &u);
    _cleanup_free_ char *user = attached ? TAKE_PTR(u.name) : NULL;
    if (attached && !vm_is_here(d, u.vm_id) && key_is_shared(d, key)) {
        /* Its VM runs elsewhere: only that host may change the file under it. */
        *ret_error = vo_asprintf("volume '%s' is attached to VM '%s': resize it from that VM's "
                                 "host", key, user);
        vo_relation_user_clear(&u);
        release_volume(d, pool, name);
        volume_op_free(op);
        return -EBUSY;
    }
    /* An attached volume is resized through its VM (online, or under its job
     * lock): queued behind that VM's tasks, never on a worker waiting for it. */
    _cleanup_free_ char *vm_key = attached ? vo_key_vm_task(u.vm_id) : NULL;
    if (attached)
        vo_relation_user_clear(&u);
    if (vo_volume_is_base(d, key)) {
        *ret_error = vo_asprintf("volume '%s' backs linked clones and must stay as it is", key);
        release_volume(d, pool, name);
        volume_op_free(op);
        return -EBUSY;
    }
    uint64_t current = 0, rbd_used = 0;
    VoRbdPool rp;
    int k = rbd_pool_of(d, pool, &rp, ret_error);
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
        release_volume(d, pool, name);
        volume_op_free(op);
        return r;
    }
    int64_t grown = op->grown; /* op is freed when the submit is refused */
    r = vo_tasks_submit(d->tasks,
                        &(VoTaskDesc){ .kind = "volume-resize", .target = name,
                                       .keys = { vm_key } },
                        task_volume_resize, op, volume_op_free, ret_task, ret_error);
    if (r < 0) {
        release_volume(d, pool, name);
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
        r = vo_img_convert(op->src_path, op->src_format, op->path, op->format, report_progress,
                           t, &error);
    }
    /* The clone is recorded (a linked one as a dependent of its base) before
     * the base is free again, so no attach slips in between. */
    int k = finish_volume(op->d, op->pool, op->name, op->path, r >= 0,
                          op->linked ? op->backing : NULL, NULL);
    _cleanup_free_ char *src_pool = NULL, *src_name = NULL;
    (void)vo_volume_key_split(op->backing, &src_pool, &src_name);
    release_volume(op->d, src_pool, src_name);
    if (r >= 0 && k < 0)
        r = k;
    return r < 0 ? fail_volume_task(t, r, "clone into", op, error) : 0;
}

int vo_volume_clone(VoDaemon *d, const char *pool, const char *name, const char *target_key,
                    bool linked, const char *project, json_t **ret_task, json_t **ret_volume,
                    char **ret_error)
{
    int ri = iscsi_check(d, pool, "clone volumes of", ret_error);
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
    int r = claim_volume(d, pool, name, &op->src_path, &op->src_format, ret_error);
    if (r < 0) {
        volume_op_free(op);
        return r;
    }
    VoRelationUser u;
    bool attached = volume_user(d, src_key, &u);
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
        release_volume(d, pool, name);
        volume_op_free(op);
        return r;
    }
    op->format = vo_strdup(linked ? "qcow2" : op->src_format);
    r = reserve_volume(d, dst_pool, dst_name, op->format, &op->path, ret_error);
    if (r < 0) {
        release_volume(d, pool, name);
        volume_op_free(op);
        return r;
    }
    int64_t bytes = project ? file_virtual_size(op->src_path, op->src_format) : 0;
    if ((r = claim_project(d, dst_pool, dst_name, project, bytes, ret_error)) < 0) {
        release_volume(d, pool, name);
        finish_volume(d, dst_pool, dst_name, op->path, false, NULL, NULL);
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
        release_volume(d, pool, name);
        finish_volume(d, dst_pool, dst_name, op->path, false, NULL, NULL);
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
    int r = claim_volume(d, pool, name, &path, NULL, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *user = volume_user_name(d, key);
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
    if (v)
        v->busy = false;
    if (!v) {
        *ret_error = vo_asprintf("volume '%s' does not exist", key);
        r = -ENOENT;
    } else if ((r = rev_is(expected, v->rev, "volume", key, ret_error)) < 0) {
        /* If-Match, under the lock the save below holds: nothing changes */
    } else if (user) {
        *ret_error = vo_asprintf("volume '%s' is attached to VM '%s': detach it first", key, user);
        r = -EBUSY;
    } else {
        bool old = v->shareable;
        v->shareable = shareable;
        r = save_volume(d, v);
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
    int ri = iscsi_check(d, pool, "download volumes of", ret_error);
    if (ri < 0)
        return ri;
    if (vo_pool_is_rbd(d, pool))
        return vo_error_set(ret_error, -EINVAL, "pool '%s' is an rbd pool: its volumes are "
                            "RBD images, not files, and cannot be downloaded yet (use rbd "
                            "export on the Ceph side)", pool);
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
    VoPool *p = pool_find(d, pool);
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
    int ri = iscsi_check(d, pool, "upload volumes to", ret_error);
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
    VoPool *p = pool_for_new_volume(d, pool, name, &r, ret_error);
    if (p)
        *ret_path = vo_asprintf("%s/.upload-%s-%s-XXXXXX", p->path, host, name);
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

/* ---- for VM disks --------------------------------------------------------------- */

/* A new volume pool/name of rbd pool rp: reserved, made (a linked clone of
 * image clone_of's base, or src imported, at least size bytes), recorded;
 * nothing stays when the import or clone fails. */
/* finish_volume for the RBD image of volume pool/name, made (r >= 0) or
 * not: marked as the volume's first (a crash before its document is saved
 * leaves the intent, and the sweep removes the image it names only with
 * the mark: storage-rbd.h); removed when its document cannot be saved, so
 * no image stays that no volume names. r, or the error that came after. */
static int rbd_volume_finish(VoDaemon *d, const char *pool, const char *name, const char *path,
                             const VoRbdPool *rp, int r, const char *image, char **ret_error)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    VoRbdConf c = vo_rbd_pool_conf(rp);
    if (r >= 0 && (r = vo_rbd_image_mark(&c, name, key, ret_error)) < 0)
        (void)vo_rbd_image_remove(&c, name, NULL);
    if (r >= 0 && vo_migrate_fault("rbd-volume-exit-before-save")) /* test: vireod dies */
        _exit(70);
    int k = finish_volume(d, pool, name, path, r >= 0, NULL, image);
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
 * base, src imported, or a backup's chain (layers, top first) imported. */
typedef struct {
    const char *src, *src_format, *clone_of;
    uint64_t size;
    char *const *layers;
    size_t n_layers;
} RbdSource;

static int rbd_volume_make(VoDaemon *d, const char *pool, const char *name, const VoRbdPool *rp,
                           const RbdSource *from, VoTask *task, char **ret_path,
                           char **ret_error)
{
    _cleanup_free_ char *path = NULL;
    int r = reserve_volume(d, pool, name, "raw", &path, ret_error);
    if (r < 0)
        return r;
    if (task)
        vo_task_progress(task, 40, from->clone_of ? "cloning the image's base in RBD"
                                                  : "copying the image into RBD");
    if (from->clone_of)
        r = vo_storage_rbd_clone_image(rp, from->clone_of, from->src, from->src_format, name,
                                       from->size, ret_error);
    else if (from->layers)
        r = vo_storage_rbd_import_chain(rp, name, from->layers, from->n_layers, ret_error);
    else
        r = vo_storage_rbd_import(rp, name, from->src, from->src_format, from->size, ret_error);
    r = rbd_volume_finish(d, pool, name, path, rp, r, from->clone_of, ret_error);
    if (r >= 0)
        *ret_path = TAKE_PTR(path);
    return r;
}

int vo_volume_create_from_base(VoDaemon *d, const char *pool, const char *name,
                               const char *base_path, const char *base_format,
                               const char *base_image, bool full_clone, uint64_t size,
                               VoTask *task, char **ret_path, char **ret_error)
{
    _cleanup_free_ char *path = NULL;
    VoRbdPool rp;
    int r = rbd_pool_of(d, pool, &rp, ret_error);
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
    r = reserve_volume(d, pool, name, "qcow2", &path, ret_error);
    if (r < 0)
        return r;
    if (full_clone) {
        r = vo_img_convert(base_path, base_format, path, "qcow2", report_progress, task,
                           ret_error);
        if (r >= 0 && size)
            r = vo_img_resize(path, "qcow2", size, false, ret_error);
    } else
        r = vo_img_create(path, "qcow2", size, base_path, base_format, ret_error);
    int k = finish_volume(d, pool, name, path, r >= 0, NULL, full_clone ? NULL : base_image);
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
    int r = rbd_pool_of(d, pool, &rp, ret_error);
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
    r = reserve_volume(d, pool, name, "qcow2", &path, ret_error);
    if (r < 0)
        return r;
    r = vo_img_convert_chain(layers, n_layers, path, "qcow2", rate, report_progress, task,
                             ret_error);
    int k = finish_volume(d, pool, name, path, r >= 0, NULL, NULL);
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
    int r = rbd_pool_of(d, pool, &rp, ret_error);
    if (r > 0) {
        vo_rbd_pool_clear(&rp);
        return vo_error_set(ret_error, -EINVAL, "pool '%s' is an rbd pool: an ISO goes into a "
                            "dir pool", pool);
    }
    if (r < 0)
        return r;
    if (vo_iso_probe(iso_path) <= 0)
        return vo_error_set(ret_error, -EINVAL, "'%s' is not an ISO 9660 image", iso_path);
    if ((r = reserve_volume(d, pool, name, "raw", &path, ret_error)) < 0)
        return r;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
    if (v)
        v->content = vo_strdup("iso");
    pthread_mutex_unlock(&d->storage_lock);
    r = vo_img_convert(iso_path, "raw", path, "raw", report_progress, task, ret_error);
    int k = finish_volume(d, pool, name, path, r >= 0, NULL, NULL);
    if (r >= 0 && k < 0)
        r = vo_error_set(ret_error, k, "cannot save volume '%s/%s': %s", pool, name,
                         strerror(-k));
    return r;
}

int vo_volume_create_empty(VoDaemon *d, const char *pool, const char *name, const char *format,
                           uint64_t size, VoTask *task, char **ret_path, char **ret_error)
{
    _cleanup_free_ char *path = NULL;
    int r = reserve_volume(d, pool, name, format, &path, ret_error);
    if (r < 0)
        return r;
    r = vo_img_create(path, format, size, NULL, NULL, ret_error);
    int k = finish_volume(d, pool, name, path, r >= 0, NULL, NULL);
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
        if (!volume_find(d, pool, candidate))
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
    bool base = volume_dependents(d, key) > 0;
    pthread_mutex_unlock(&d->storage_lock);
    return base;
}

int vo_volume_gone_here(VoDaemon *d, const char *key)
{
    _cleanup_free_ char *pool = NULL, *name = NULL, *doc_key = NULL, *text = NULL;
    int64_t rev = 0;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return -EINVAL;
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, pool);
    int r = !p || p->shared ? -EAGAIN : volume_find(d, pool, name) ? 0 : 1;
    pthread_mutex_unlock(&d->storage_lock);
    if (r <= 0)
        return r;
    /* Nor a document the registry skipped (damaged). */
    doc_key = volume_doc_key(false, pool, name);
    r = vo_store_get(d->store, doc_key, &text, &rev);
    return r == -ENOENT ? 1 : r < 0 ? r : 0;
}

bool vo_pool_exists(VoDaemon *d, const char *name)
{
    pthread_mutex_lock(&d->storage_lock);
    bool exists = pool_find(d, name) != NULL;
    pthread_mutex_unlock(&d->storage_lock);
    return exists;
}

int vo_shared_pool_path(VoDaemon *d, const char *name, char **ret_path, bool *ret_reachable,
                        char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, name);
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
    VoVolume *v = volume_find(d, pool, name);
    VoPool *p = pool_find(d, pool);
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
    VoVolume *v = volume_find(d, pool, name);
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
        VoPool *p = pool_find(d, v->pool);
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
 * attach takes; vo_volume_attach_confirm checks it still holds. */
static int attach_lock(VoDaemon *d, const char *pool, const char *name, char **ret_error)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    _cleanup_free_ char *lock = vo_asprintf(VO_VOLUME_ATTACH_PREFIX "%s", key);
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *known = volume_find(d, pool, name);
    int64_t vol_rev = known ? known->rev : 0;
    _cleanup_free_ char *vol_key = known ? volume_doc_key(known->shared, pool, name) : NULL;
    pthread_mutex_unlock(&d->storage_lock);
    if (!vol_rev)
        return vo_error_set(ret_error, -ENOENT, "volume '%s' does not exist", key);
    int64_t lease = 0;
    int r = d->store->ops->lease_grant(d->store, VO_VOLUME_ATTACH_TTL_MS, &lease);
    if (r < 0)
        return vo_error_set(ret_error, r, "volume '%s': cannot take the attach lock: %s", key,
                            strerror(-r));
    json_t *doc = json_pack("{s:s?, s:s?}", "host", d->host_id, "host_name", d->host_name);
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
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is being attached to a VM on host '%s' "
                         "(mark it shareable to share it)", key, who ? who : "?");
        json_decref(h);
    } else if (r < 0) {
        r = vo_error_set(ret_error, r, "volume '%s': cannot take the attach lock: %s", key,
                         strerror(-r));
    } else {
        VoRelationUser u;
        _cleanup_free_ char *host = NULL;
        int k = any_host_volume_user(d, key, &u, &host);
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
    VoVolume *v = volume_find(d, pool, name);
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
    VoVolume *v = volume_find(d, pool, name);
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
    VoVolume *v = volume_find(d, pool, name);
    VoPool *p = pool_find(d, pool);
    size_t deps = v ? volume_dependents(d, key) : 0;
    int r = 0;
    if (!v || !p || !v->ready)
        r = vo_error_set(ret_error, -ENOENT, "volume '%s' does not exist", key);
    else if ((r = pool_unreachable(p, ret_error)) < 0)
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
    if (cluster_claim && (r = attach_lock(d, pool, name, ret_error)) < 0) {
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
    VoVolume *v = volume_find(d, pool, name);
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

/* ---- for backups ------------------------------------------------------------------ */

int vo_backup_pool_path(VoDaemon *d, const char *name, char **ret_path, char **ret_error)
{
    if (!name)
        name = VO_DEFAULT_BACKUP_POOL;
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, name);
    int r = 0;
    if (!p && !strcmp(name, VO_DEFAULT_BACKUP_POOL)) {
        /* Made on first use, like the default pool. */
        p = vo_malloc0(sizeof(*p));
        *p = (VoPool){ .name = vo_strdup(name), .type = vo_strdup(VO_BACKUP_POOL_TYPE),
                       .path = vo_asprintf("%s/pools/%s", d->state_dir, name),
                       .created_at = vo_wall_ms() };
        r = vo_mkdir_p(p->path, 0750);
        if (r < 0)
            *ret_error = vo_asprintf("cannot create backup pool '%s': %s", name, strerror(-r));
        else /* a host's own: off the shared names (pool-names.h), saying so */
            r = save_pool_as(d, p, VO_REV_NEW, NULL, ret_error);
        if (r < 0) {
            pool_free(p);
            p = NULL;
        } else
            registry_add_pool(d, p);
    } else if (!p) {
        *ret_error = vo_asprintf("pool '%s' does not exist (see: vireo pool list)", name);
        r = -ENOENT;
    } else if (strcmp(p->type, VO_BACKUP_POOL_TYPE)) {
        *ret_error = vo_asprintf("pool '%s' is a %s pool: backups go to a backup pool (vireo pool "
                                 "create NAME --type backup --path DIR)", name, p->type);
        r = -EINVAL;
        p = NULL;
    }
    if (p)
        *ret_path = vo_strdup(p->path);
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

char **vo_backup_pool_names(VoDaemon *d)
{
    char **names = NULL;
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_pools; i++)
        if (!strcmp(d->pools[i]->type, VO_BACKUP_POOL_TYPE))
            vo_strv_pushf(&names, "%s", d->pools[i]->name);
    pthread_mutex_unlock(&d->storage_lock);
    return names;
}

/* Every volume is checked and claimed first; each old file is renamed aside
 * until every new one is in place, and put back when one cannot be. */
int vo_volumes_replace_files(VoDaemon *d, char *const *keys, char *const *new_files, size_t n,
                             char **ret_error)
{
    char **pools = vo_malloc0(sizeof(char *) * (n + 1)), **names = vo_malloc0(sizeof(char *) * (n + 1));
    char **paths = vo_malloc0(sizeof(char *) * (n + 1)), **asides = vo_malloc0(sizeof(char *) * (n + 1));
    size_t claimed = 0, swapped = 0;
    int r = 0;
    for (; r >= 0 && claimed < n; claimed++) {
        if (vo_volume_key_split(keys[claimed], &pools[claimed], &names[claimed]) < 0)
            r = vo_error_set(ret_error, -EINVAL, "'%s' is not POOL/NAME", keys[claimed]);
        else
            r = claim_volume(d, pools[claimed], names[claimed], &paths[claimed], NULL, ret_error);
        if (r < 0)
            break;
        /* After the claim: a linked clone of it cannot start any more. */
        if (vo_volume_is_base(d, keys[claimed])) {
            r = vo_error_set(ret_error, -EBUSY, "volume '%s' backs linked clones and must stay "
                             "as it is", keys[claimed]);
            claimed++; /* released with the others below */
            break;
        }
    }
    for (; r >= 0 && swapped < n; swapped++) {
        char *slash = strrchr(paths[swapped], '/');
        asides[swapped] = vo_asprintf("%.*s/.replaced-%s", (int)(slash - paths[swapped]),
                                      paths[swapped], slash + 1);
        if (rename(paths[swapped], asides[swapped]) < 0) {
            r = vo_error_set(ret_error, -errno, "cannot move %s aside: %s", paths[swapped],
                             strerror(errno));
            break;
        }
        if (rename(new_files[swapped], paths[swapped]) < 0) {
            r = vo_error_set(ret_error, -errno, "cannot replace %s: %s", paths[swapped],
                             strerror(errno));
            if (rename(asides[swapped], paths[swapped]) < 0)
                log_error("storage: cannot put %s back: %s", paths[swapped], strerror(errno));
            break;
        }
    }
    /* All or nothing: on failure the old files go back. */
    for (size_t i = 0; i < swapped; i++) {
        if (r < 0 && rename(asides[i], paths[i]) < 0)
            log_error("storage: cannot put %s back: %s", paths[i], strerror(errno));
        else if (r >= 0)
            (void)unlink(asides[i]);
    }
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < claimed; i++) {
        VoVolume *v = volume_find(d, pools[i], names[i]);
        if (v && r >= 0) {
            /* A file of its own now: no longer a linked clone of anything. */
            free(TAKE_PTR(v->backing));
            free(TAKE_PTR(v->image));
            int saved = save_volume(d, v);
            if (saved < 0 && r >= 0)
                r = vo_error_set(ret_error, saved, "cannot save volume '%s': %s", keys[i],
                                 strerror(-saved));
        }
        if (v)
            v->busy = false;
    }
    pthread_mutex_unlock(&d->storage_lock);
    vo_strv_free(pools);
    vo_strv_free(names);
    vo_strv_free(paths);
    vo_strv_free(asides);
    return r;
}

/* ---- live migration of local disks (migrate.c, migrate-incoming.c) ------------------- */

int vo_volume_incoming_reserve(VoDaemon *d, const char *pool, const char *name,
                               const char *format, char **ret_path, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    bool shared = pool_is_shared(d, pool);
    pthread_mutex_unlock(&d->storage_lock);
    if (shared)
        return vo_error_set(ret_error, -EINVAL, "pool '%s' is a shared pool: a migrated "
                            "local disk goes to a pool of the host's own", pool);
    int r = reserve_volume(d, pool, name, format, ret_path, ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
    if (v)
        v->ready = true; /* its path resolves for the incoming VM; still busy */
    pthread_mutex_unlock(&d->storage_lock);
    return 0;
}

int vo_volume_incoming_keep(VoDaemon *d, const char *pool, const char *name)
{
    _cleanup_free_ char *key = volume_doc_key(false, pool, name), *text = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, key, &text, &rev);
    VoVolume *doc = r >= 0 ? volume_from_doc(text, rev) : NULL;
    if (r >= 0 && !doc)
        r = -EIO;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
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
        end_volume_intent(d, pool, name);
    pthread_mutex_unlock(&d->storage_lock);
    if (doc)
        volume_free(doc);
    return v ? r : -ENOENT;
}

void vo_volume_incoming_drop(VoDaemon *d, const char *pool, const char *name)
{
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
    VoPool *p = pool_find(d, pool);
    if (v && v->busy && !v->rev) {
        _cleanup_free_ char *path = p ? vo_volume_path(p->path, v->name, v->format) : NULL;
        if (path)
            (void)unlink(path);
        registry_remove_volume(d, v);
        end_volume_intent(d, pool, name);
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
    _cleanup_free_ char *owner = volume_doc_key(false, pool, name);
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
        VoVolume *v = volume_find(d, pool, name);
        VoPool *p = pool_find(d, pool);
        _cleanup_free_ char *path = v && p ? vo_volume_path(p->path, v->name, v->format) : NULL;
        if (path && unlink(path) < 0 && errno != ENOENT)
            log_warn("volume %s moved away: cannot remove its file %s: %m", key, path);
        if (v)
            registry_remove_volume(d, v);
        pthread_mutex_unlock(&d->storage_lock);
    }
    _cleanup_free_ char *id = moving_intent_id(pool, name);
    vo_intent_end(d, id);
}

/* ---- cold move (daemon/move.c) ---------------------------------------------------- */

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
    VoPool *p = pool_for_new_volume(d, pool, name, &r, ret_error);
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
    _cleanup_free_ char *key = volume_doc_key(false, pool, name), *text = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, key, &text, &rev);
    if (r < 0 && r != -ENOENT)
        return vo_error_set(ret_error, r, "cannot read %s: %s", key, strerror(-r));
    _cleanup_free_ char *path = NULL;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = volume_find(d, pool, name);
    VoPool *p = pool_find(d, pool);
    if (r >= 0 && !v) { /* moved here */
        VoVolume *nv = volume_from_doc(text, rev);
        if (nv)
            registry_add_volume(d, nv);
        else
            r = vo_error_set(ret_error, -EINVAL, "%s is unreadable", key);
    } else if (r == -ENOENT && v && !v->shared) { /* moved away */
        if (p)
            path = vo_volume_path(p->path, v->name, v->format);
        registry_remove_volume(d, v);
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
    VoVolume *v = volume_find(d, pool, name);
    VoPool *p = pool_find(d, pool);
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

/* ---- iSCSI pools (docs/storage-san.md) -------------------------------------- */

/* An iSCSI pool's path is its iscsi:// string (storage/iscsi-url.h): with
 * the CHAP secret's file and this host's initiator name, so that a LUN's
 * volume path (vo_volume_path adds "/LUN") is all QEMU needs. Its volumes
 * are the target's disk LUNs, named lunN, listed at create and on refresh;
 * vireo neither creates nor deletes them. */

static int iscsi_refuse(const char *pool, const char *what, char **ret_error)
{
    return vo_error_set(ret_error, -EINVAL, "pool '%s' is an iSCSI pool: its volumes are the "
                        "target's LUNs and vireo cannot %s it (add or remove LUNs on the "
                        "target, then run vireo pool refresh %s)", pool, what, pool);
}

static int iscsi_check(VoDaemon *d, const char *pool, const char *what, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, pool);
    bool iscsi = p && !strcmp(p->type, VO_ISCSI_POOL_TYPE);
    pthread_mutex_unlock(&d->storage_lock);
    return iscsi ? iscsi_refuse(pool, what, ret_error) : 0;
}

static void iscsi_pool_json(VoDaemon *d, const VoPool *p, json_t *o)
{
    VoIscsiUrl u;
    if (strcmp(p->type, VO_ISCSI_POOL_TYPE) || vo_iscsi_url_parse(p->path, &u) < 0)
        return;
    uint64_t cap = 0;
    for (size_t i = 0; i < d->n_volumes; i++)
        if (!strcmp(d->volumes[i]->pool, p->name))
            cap += d->volumes[i]->size_bytes;
    _cleanup_free_ char *portal = vo_asprintf("%s:%u", u.host, u.port);
    json_object_set_new(o, "portal", json_string(portal));
    json_object_set_new(o, "target", json_string(u.target));
    json_object_set_new(o, "chap_user", u.user ? json_string(u.user) : json_null());
    json_object_set_new(o, "initiator", json_string(u.initiator ? u.initiator : ""));
    json_object_set_new(o, "capacity_bytes", json_integer((json_int_t)cap));
    json_object_set_new(o, "allocation_bytes", json_integer((json_int_t)cap));
    json_object_set_new(o, "available_bytes", json_integer(0));
    vo_iscsi_url_clear(&u);
}

static bool lun_listed(const VoIscsiLun *luns, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        char want[24];
        snprintf(want, sizeof(want), "lun%d", luns[i].lun);
        if (!strcmp(want, name))
            return true;
    }
    return false;
}

/* Caller holds storage_lock: the volumes of pool p follow the LUNs listed
 * (new ones added as raw volumes, sizes updated); those in gone (LUNs the
 * target no longer has, attached to no VM) are dropped. */
static int iscsi_apply_luns(VoDaemon *d, VoPool *p, const VoIscsiLun *luns, size_t n,
                            char *const *gone, char **ret_error)
{
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *name = vo_asprintf("lun%d", luns[i].lun);
        VoVolume *v = volume_find(d, p->name, name);
        if (v && v->size_bytes == luns[i].size_bytes)
            continue;
        bool fresh = !v;
        if (fresh) {
            v = vo_malloc0(sizeof(*v));
            *v = (VoVolume){ .pool = vo_strdup(p->name), .name = vo_strdup(name),
                             .format = vo_strdup("raw"), .ready = true, .shared = p->shared,
                             .created_at = vo_wall_ms() };
        }
        v->size_bytes = luns[i].size_bytes;
        int r = save_volume(d, v);
        if (v->shared && (r == -EEXIST || r == -ESTALE)) {
            /* Another host's refresh wrote it first: the same target's
             * answer, which its watch brings here. */
            if (fresh)
                volume_free(v);
            continue;
        }
        if (r < 0) {
            if (fresh)
                volume_free(v);
            return vo_error_set(ret_error, r, "cannot save volume '%s/%s': %s", p->name, name,
                                strerror(-r));
        }
        if (fresh)
            registry_add_volume(d, v);
    }
    for (size_t i = 0; gone && gone[i]; i++) {
        VoVolume *v = volume_find(d, p->name, gone[i]);
        if (!v || v->busy || v->attaching || lun_listed(luns, n, gone[i]))
            continue;
        if (delete_volume_doc(d, v) == 0) {
            forget_project(d, p->name, gone[i], v->shared); /* a LUN in a project */
            registry_remove_volume(d, v);
        }
    }
    return 0;
}

/* The volumes of iSCSI pool name not in luns and attached to no VM (strv). */
static char **iscsi_gone(VoDaemon *d, const char *name, const VoIscsiLun *luns, size_t n)
{
    char **names = NULL, **gone = NULL;
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_volumes; i++)
        if (!strcmp(d->volumes[i]->pool, name) && !lun_listed(luns, n, d->volumes[i]->name))
            vo_strv_pushf(&names, "%s", d->volumes[i]->name);
    pthread_mutex_unlock(&d->storage_lock);
    for (size_t i = 0; names && names[i]; i++) {
        _cleanup_free_ char *key = vo_asprintf("%s/%s", name, names[i]);
        _cleanup_free_ char *user = volume_user_name(d, key);
        if (!user)
            vo_strv_pushf(&gone, "%s", names[i]);
        else
            log_info("pool %s: LUN volume %s is gone from the target but attached to VM '%s': "
                     "kept", name, names[i], user);
    }
    vo_strv_free(names);
    return gone;
}

/* Whether iSCSI pool path (its iscsi:// string) names portal host:port and
 * target. */
static bool iscsi_same_target(const char *path, const char *host, unsigned port,
                              const char *target)
{
    VoIscsiUrl u;
    if (!path || vo_iscsi_url_parse(path, &u) < 0)
        return false;
    bool same = !strcmp(u.host, host) && u.port == port && !strcmp(u.target, target);
    vo_iscsi_url_clear(&u);
    return same;
}

typedef struct {
    const char *host, *target;
    unsigned port;
    char *taken; /* "pool P of host H", malloc'd */
} TargetLookup;

static int other_hosts_iscsi_pool(const VoClusterHost *h, const char *name, const char *value,
                                  void *userdata)
{
    TargetLookup *l = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *type = json_string_value(json_object_get(doc, "type"));
    if (type && !strcmp(type, VO_ISCSI_POOL_TYPE) && !l->taken &&
        iscsi_same_target(json_string_value(json_object_get(doc, "path")), l->host, l->port,
                          l->target))
        l->taken = vo_asprintf("pool '%s' of host %s", name, h->name);
    json_decref(doc);
    return 0;
}

/* A pool already on target at host:port (this host's, the cluster's, or in
 * a cluster another host's own): two pools of one target would let two
 * VMs write one LUN, each pool's attach rule blind to the other's. NULL, or
 * which pool (malloc'd). */
static char *iscsi_target_taken(VoDaemon *d, const char *host, unsigned port, const char *target)
{
    TargetLookup l = { .host = host, .port = port, .target = target };
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_pools && !l.taken; i++)
        if (!strcmp(d->pools[i]->type, VO_ISCSI_POOL_TYPE) &&
            iscsi_same_target(d->pools[i]->path, host, port, target))
            l.taken = vo_asprintf("pool '%s'", d->pools[i]->name);
    pthread_mutex_unlock(&d->storage_lock);
    if (!l.taken && d->cluster)
        (void)vo_cluster_each_doc(d, "pools", other_hosts_iscsi_pool, &l);
    return l.taken;
}

int vo_pool_create_iscsi(VoDaemon *d, const VoIscsiPoolArgs *a, json_t **ret, char **ret_error)
{
    VoIscsiUrl u = { .lun = -1 };
    int r = vo_iscsi_portal_parse(a->portal, &u.host, &u.port, ret_error);
    if (r == 0 && !vo_iscsi_name_valid(a->target))
        r = vo_error_set(ret_error, -EINVAL, "target: '%s' is not an iSCSI name (iqn.YYYY-MM."
                         "reversed.domain[:name], lower case, or eui. and 16 hex digits)",
                         a->target ? a->target : "");
    if (r == 0 && !vo_name_valid(a->name))
        r = vo_error_set(ret_error, -EINVAL, "name: '%s' is invalid: use 1-63 characters of "
                         "a-z, 0-9 and '-', not starting with '-'", a->name);
    if (r == 0 && !!a->chap_user != !!a->chap_secret)
        r = vo_error_set(ret_error, -EINVAL, "chap_user and chap_secret go together");
    if (r == 0 && a->chap_user && !vo_iscsi_user_valid(a->chap_user))
        r = vo_error_set(ret_error, -EINVAL, "chap_user: '%s' is invalid (1-64 characters of "
                         "A-Z, a-z, 0-9, '.', '_', ':' and '-')", a->chap_user);
    if (r == 0 && a->chap_secret &&
        (!a->chap_secret[0] || strlen(a->chap_secret) > 255 || strpbrk(a->chap_secret, "\r\n")))
        r = vo_error_set(ret_error, -EINVAL, "chap_secret: give 1-255 characters on one line");
    if (r == 0) {
        pthread_mutex_lock(&d->storage_lock);
        if (pool_find(d, a->name))
            r = vo_error_set(ret_error, -EEXIST, "a pool named '%s' already exists", a->name);
        pthread_mutex_unlock(&d->storage_lock);
    }
    _cleanup_free_ char *taken = r == 0 ? iscsi_target_taken(d, u.host, u.port, a->target) : NULL;
    if (taken)
        r = vo_error_set(ret_error, -EEXIST, "target %s at %s:%u is already %s: one pool per "
                         "target (two would let two VMs write one LUN)", a->target, u.host,
                         u.port, taken);
    if (r < 0) {
        vo_iscsi_url_clear(&u);
        return r;
    }
    u.target = vo_strdup(a->target);
    u.user = vo_strdup(a->chap_user);
    u.initiator = vo_iscsi_host_initiator(d);
    if (a->chap_secret) {
        u.secret = vo_iscsi_secret_path(d->state_dir, a->name);
        r = vo_iscsi_secret_write(d->state_dir, a->name, a->chap_secret);
        if (r < 0)
            r = vo_error_set(ret_error, r, "cannot keep the CHAP secret: %s", strerror(-r));
    }
    VoIscsiLun *luns = NULL;
    size_t n = 0;
    _cleanup_free_ char *scan_error = NULL;
    if (r == 0 && vo_iscsi_scan(&u, u.initiator, &luns, &n, &scan_error) < 0)
        r = vo_error_set(ret_error, -EINVAL, "cannot use iSCSI target %s at %s:%u: %s",
                         a->target, u.host, u.port, scan_error);
    _cleanup_free_ char *path = vo_iscsi_url_format(&u);
    /* In a cluster the pool is the cluster's (storage-iscsi-shared.h): its
     * name claimed, its secret published under its id, then its document
     * made new. */
    bool shared = d->cluster != NULL;
    char uuid[37] = "";
    VoPoolNameClaim claim = { 0 };
    if (r == 0 && shared)
        r = vo_pool_name_claim_shared(d, a->name, &claim, ret_error);
    if (r == 0 && shared && vo_uuid_generate(uuid) < 0)
        r = vo_error_set(ret_error, -EIO, "cannot make an id for pool '%s'", a->name);
    bool published = false;
    if (r == 0 && shared && a->chap_secret &&
        (r = vo_storage_iscsi_publish_secret(d, a->name, uuid, a->chap_secret, ret_error)) == 0)
        published = true;
    if (r == 0) {
        pthread_mutex_lock(&d->storage_lock);
        VoPool *p = vo_malloc0(sizeof(*p));
        *p = (VoPool){ .name = vo_strdup(a->name), .type = vo_strdup(VO_ISCSI_POOL_TYPE),
                       .path = vo_strdup(path), .created_at = vo_wall_ms(), .shared = shared,
                       .id = shared ? vo_strdup(uuid) : NULL,
                       /* it answered right now (the scan above) */
                       .reach = VO_POOL_REACHABLE,
                       .rbd_next_check_ms = vo_now_ms() + VO_POOL_RBD_CHECK_MS };
        if (pool_find(d, a->name))
            r = vo_error_set(ret_error, -EEXIST, "a pool named '%s' already exists", a->name);
        else /* a host's own off the shared names (pool-names.h), a shared one's claimed */
            r = save_pool_as(d, p, VO_REV_NEW, shared ? &claim : NULL, ret_error);
        if (r < 0) {
            pool_free(p);
        } else {
            registry_add_pool(d, p);
            _cleanup_free_ char *lun_error = NULL;
            if (iscsi_apply_luns(d, p, luns, n, NULL, &lun_error) < 0)
                log_error("pool %s: %s (run vireo pool refresh %s)", a->name, lun_error,
                          a->name);
            *ret = pool_to_json(d, p);
        }
        pthread_mutex_unlock(&d->storage_lock);
    }
    vo_pool_name_claim_end(d, &claim);
    if (r < 0 && published)
        vo_storage_pool_key_unpublish(d, uuid);
    if (r < 0 && a->chap_secret && r != -EEXIST) {
        _cleanup_free_ char *secret = vo_iscsi_secret_path(d->state_dir, a->name);
        (void)unlink(secret);
    }
    free(luns);
    vo_iscsi_url_clear(&u);
    return r;
}

int vo_pool_refresh(VoDaemon *d, const char *name, json_t **ret, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, name);
    bool iscsi = p && !strcmp(p->type, VO_ISCSI_POOL_TYPE);
    _cleanup_free_ char *path = p ? vo_strdup(p->path) : NULL;
    if (p && !iscsi)
        *ret = pool_to_json(d, p); /* a dir pool's volumes are vireo's own: nothing to list */
    pthread_mutex_unlock(&d->storage_lock);
    if (!p)
        return vo_error_set(ret_error, -ENOENT, "pool '%s' does not exist", name);
    if (!iscsi) {
        rbd_usage_fill(*ret);
        return 0;
    }
    VoIscsiUrl u;
    if (vo_iscsi_url_parse(path, &u) < 0)
        return vo_error_set(ret_error, -EIO, "pool '%s': its target is unreadable", name);
    VoIscsiLun *luns = NULL;
    size_t n = 0;
    _cleanup_free_ char *scan_error = NULL;
    int r = vo_iscsi_scan(&u, u.initiator, &luns, &n, &scan_error);
    if (r < 0)
        r = vo_error_set(ret_error, -EBUSY, "pool '%s': cannot list the LUNs of target %s at "
                         "%s:%u: %s", name, u.target, u.host, u.port, scan_error);
    vo_iscsi_url_clear(&u);
    _cleanup_strv_ char **gone = r == 0 ? iscsi_gone(d, name, luns, n) : NULL;
    if (r == 0) {
        pthread_mutex_lock(&d->storage_lock);
        p = pool_find(d, name);
        if (!p)
            r = vo_error_set(ret_error, -ENOENT, "pool '%s' does not exist", name);
        else if ((r = iscsi_apply_luns(d, p, luns, n, gone, ret_error)) == 0)
            *ret = pool_to_json(d, p);
        pthread_mutex_unlock(&d->storage_lock);
    }
    free(luns);
    return r;
}

static int iscsi_drop_lun_docs(VoDaemon *d, const char *name, char **ret_error);

/* Before an iSCSI pool's delete: its LUN volumes' documents go (refused
 * while one is attached to a VM or busy). 0 for other pools. */
static int iscsi_pool_drop_luns(VoDaemon *d, const char *name, int64_t expected,
                                char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, name);
    bool iscsi = p && !strcmp(p->type, VO_ISCSI_POOL_TYPE);
    int r = iscsi ? rev_is(expected, p->rev, "pool", name, ret_error) : 0;
    _cleanup_strv_ char **shared_luns = NULL;
    for (size_t i = 0; iscsi && p->shared && i < d->n_volumes; i++)
        if (!strcmp(d->volumes[i]->pool, name))
            vo_strv_pushf(&shared_luns, "%s", d->volumes[i]->name);
    pthread_mutex_unlock(&d->storage_lock);
    if (!iscsi || r < 0)
        return r;
    /* A shared pool's LUNs: each one's attach lock held, as a volume's
     * delete holds it, from before the look for users on every host until
     * its document is gone, so that a VM of another host attaching one
     * meanwhile and this delete never both win. */
    size_t n_holds = vo_strv_len(shared_luns);
    VoLeaseKeeper **holds = vo_malloc0(sizeof(VoLeaseKeeper *) * (n_holds + 1));
    for (size_t i = 0; r == 0 && i < n_holds; i++) {
        _cleanup_free_ char *error = NULL;
        r = attach_lock(d, name, shared_luns[i], &error);
        if (r < 0) {
            *ret_error = vo_asprintf("cannot delete pool '%s': %s", name, error);
            break;
        }
        pthread_mutex_lock(&d->storage_lock);
        VoVolume *v = volume_find(d, name, shared_luns[i]);
        holds[i] = v ? TAKE_PTR(v->attach_keeper) : NULL;
        pthread_mutex_unlock(&d->storage_lock);
    }
    if (r == 0)
        r = iscsi_drop_lun_docs(d, name, ret_error);
    for (size_t i = 0; i < n_holds; i++)
        lease_keeper_stopp(&holds[i]);
    free(holds);
    return r;
}

/* iscsi_pool_drop_luns's work once the locks are held. */
static int iscsi_drop_lun_docs(VoDaemon *d, const char *name, char **ret_error)
{
    int r = 0;
    _cleanup_strv_ char **gone = iscsi_gone(d, name, NULL, 0);
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; r == 0 && i < d->n_volumes; i++) {
        VoVolume *v = d->volumes[i];
        if (strcmp(v->pool, name))
            continue;
        if (!strv_contains(gone, v->name) || v->busy || v->attaching)
            r = vo_error_set(ret_error, -EBUSY, "pool '%s': volume '%s' is in use by a VM; "
                             "detach it first", name, v->name);
    }
    for (size_t i = 0; r == 0 && i < d->n_volumes;) {
        VoVolume *v = d->volumes[i];
        if (strcmp(v->pool, name)) {
            i++;
            continue;
        }
        if ((r = delete_volume_doc(d, v)) < 0) {
            r = vo_error_set(ret_error, r, "cannot delete volume '%s/%s': %s", name, v->name,
                             strerror(-r));
        } else {
            /* A LUN in a project: its documents go too (its pool is going,
             * so no heal at start could tell it is gone). */
            forget_project(d, name, v->name, v->shared);
            registry_remove_volume(d, v); /* moves the last one to i */
        }
    }
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

int vo_volume_format(VoDaemon *d, const char *pool, const char *name, const char *format,
                     char **ret_error)
{
    if (!format || strcmp(format, "qcow2"))
        return vo_error_set(ret_error, -EINVAL, "format: '%s' is not supported (qcow2)",
                            format ? format : "");
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    /* Claimed (busy) first, then the VMs asked: an attach that finished
     * before is seen, one that starts now is refused (as for a delete). */
    _cleanup_free_ char *user = NULL;
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = pool_find(d, pool);
    VoVolume *v = volume_find(d, pool, name);
    int r = 0;
    VoIscsiUrl u = { .lun = -1 };
    if (!v || !p)
        r = vo_error_set(ret_error, -ENOENT, "volume '%s' does not exist", key);
    else if (strcmp(p->type, VO_ISCSI_POOL_TYPE))
        r = vo_error_set(ret_error, -EINVAL, "volume '%s' is not an iSCSI LUN: only LUNs get a "
                         "qcow2 layer this way (a dir pool's volumes are qcow2 already)", key);
    else if (v->busy || v->attaching)
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is busy with another operation", key);
    else if (!strcmp(v->format, format))
        r = vo_error_set(ret_error, -EEXIST, "volume '%s' is %s already", key, format);
    else {
        _cleanup_free_ char *path = vo_volume_path(p->path, v->name, v->format);
        if (!path || vo_iscsi_url_parse(path, &u) < 0)
            r = vo_error_set(ret_error, -EIO, "volume '%s': its LUN is unreadable", key);
        else if (u.user)
            r = vo_error_set(ret_error, -EINVAL, "volume '%s': formatting a LUN of a pool with "
                             "CHAP is not supported yet (format it from a pool without CHAP)",
                             key);
        else
            v->busy = true;
    }
    uint64_t size = v ? v->size_bytes : 0;
    pthread_mutex_unlock(&d->storage_lock);
    if (r == 0 && (user = volume_user_name(d, key))) {
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is attached to VM '%s': formatting "
                         "it would destroy the VM's data; detach it first", key, user);
        pthread_mutex_lock(&d->storage_lock);
        if ((v = volume_find(d, pool, name)))
            v->busy = false;
        pthread_mutex_unlock(&d->storage_lock);
    }
    if (r < 0) {
        vo_iscsi_url_clear(&u);
        return r;
    }
    _cleanup_free_ char *url = vo_iscsi_url_plain(&u);
    vo_iscsi_url_clear(&u);
    char size_arg[32];
    snprintf(size_arg, sizeof(size_arg), "%llu", (unsigned long long)size);
    char *argv[] = { "qemu-img", "create", "-q", "-f", (char *)format, url, size_arg, NULL };
    _cleanup_free_ char *out = NULL;
    r = vo_spawn_wait(argv, 120000, &out);
    if (r < 0)
        r = vo_error_set(ret_error, -EIO, "qemu-img create on %s failed: %s", url,
                         out && out[0] ? out : strerror(-r));
    pthread_mutex_lock(&d->storage_lock);
    v = volume_find(d, pool, name);
    if (v) {
        v->busy = false;
        if (r == 0) {
            char *old = v->format;
            v->format = vo_strdup(format);
            if ((r = save_volume(d, v)) < 0) {
                free(v->format);
                v->format = old;
                r = vo_error_set(ret_error, r, "cannot save volume '%s': %s", key, strerror(-r));
            } else {
                free(old);
            }
        }
    }
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}
