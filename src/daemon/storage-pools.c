/* storage-pools.c: pools: a dir or rbd pool's create, any pool's delete and
 * the checks that keep a delete from dropping what a VM, an image or a kept
 * intent still names.
 * Shares storage-internal.h with the other storage files. */
#include "daemon/storage-internal.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/names.h"
#include "daemon/pool-kept.h"
#include "daemon/storage-iscsi.h"
#include "daemon/storage-rbd-shared.h"
#include "daemon/sweep-kept.h"
#include "util/test-hold.h"

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
int vo_storage_rbd_pool_of(VoDaemon *d, const char *pool, VoRbdPool *ret, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, pool);
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
int vo_storage_rbd_pool_of_locked(VoPool *p, VoRbdPool *ret, char **ret_error)
{
    if (!p || !p->rbd)
        return 0;
    int r = vo_storage_rbd_load(p->path, p->rbd, ret, ret_error);
    return r < 0 ? r : 1;
}

bool vo_pool_is_rbd(VoDaemon *d, const char *pool)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, pool);
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
    int r = vo_storage_rbd_pool_of(d, pool, ret, ret_error);
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
        r = vo_storage_rbd_pool_of(d, *name, &rp, &error);
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
    bool taken = vo_storage_pool_find(d, spec->name) != NULL;
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
    r = vo_storage_pool_find(d, spec->name)
            ? vo_error_set(ret_error, -EEXIST, "a pool named '%s' already exists", spec->name)
            : vo_storage_save_pool_as(d, p, VO_REV_NEW, shared ? &claim : NULL, ret_error);
    if (r < 0) {
        vo_storage_pool_free(p);
        vo_storage_rbd_discard(dir);
    } else {
        vo_storage_registry_add_pool(d, p);
        *ret = vo_storage_pool_to_json(d, p);
    }
    pthread_mutex_unlock(&d->storage_lock);
    vo_pool_name_claim_end(d, &claim);
    if (r < 0 && shared)
        vo_storage_pool_key_unpublish(d, uuid);
    if (r >= 0)
        vo_storage_rbd_usage_fill(*ret);
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
    bool taken = vo_storage_pool_find(d, name) != NULL;
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
    if (vo_storage_pool_find(d, name)) {
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
        r = vo_storage_save_pool_as(d, p, VO_REV_NEW, shared ? &claim : NULL, ret_error);
        if (r < 0) {
            if (shared)
                vo_pool_marker_remove(real, uuid);
            vo_storage_pool_free(p);
        } else {
            vo_storage_registry_add_pool(d, p);
            *ret = vo_storage_pool_to_json(d, p);
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
int vo_storage_rev_is(int64_t expected, int64_t rev, const char *what, const char *name,
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
    int ri = vo_storage_iscsi_pool_drop_luns(d, name, expected, ret_error);
    if (ri < 0)
        return ri;
    pthread_mutex_lock(&d->storage_lock);
    bool shared = vo_storage_pool_is_shared(d, name);
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
    bool rbd = vo_storage_rbd_pool_of(d, name, &rp, &rbd_error) > 0;
    /* RBD images a crash left that would not go yet: the pool's delete
     * would drop their records, and the images would stay in Ceph unseen. */
    _cleanup_free_ char *kept_intents = force ? NULL : kept_intents_text(d, name);
    _cleanup_free_ char *unpublish = NULL; /* the id of a cluster's rbd or iSCSI pool deleted */
    pthread_mutex_lock(&d->storage_lock);
    int r = 0;
    VoPool *p = vo_storage_pool_find(d, name);
    size_t n = 0;
    for (size_t i = 0; p && i < d->n_volumes; i++)
        if (!strcmp(d->volumes[i]->pool, name))
            n++;
    if (!p) {
        *ret_error = vo_asprintf("pool '%s' does not exist", name);
        r = -ENOENT;
    } else if ((r = vo_storage_rev_is(expected, p->rev, "pool", name, ret_error)) < 0) {
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
        _cleanup_free_ char *key = vo_storage_pool_doc_key(p->shared, name);
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
            if (p->shared && !vo_storage_pool_is_networked(p)) /* a directory's marker */
                vo_pool_marker_remove(p->path, p->id);
            if (p->shared && vo_storage_pool_is_networked(p))
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
            vo_storage_pool_free(p);
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
