/* storage-reach.c: shared pools: whether this host reaches each (its marker,
 * an rbd pool's monitors, an iSCSI target) and the cluster's changes to them
 * (cluster/pools/, cluster/volumes/) followed. Shares storage-internal.h with
 * the other storage files. */
#include "daemon/storage-internal.h"

#include <dirent.h>
#include <string.h>

#include "conf/names.h"
#include "daemon/check-workers.h"
#include "daemon/storage-iscsi-shared.h"
#include "daemon/storage-iscsi.h"
#include "daemon/storage-rbd-shared.h"
#include "daemon/sweep-kept.h"
#include "storage/volume-path.h"

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
        _cleanup_free_ char *holder = vo_storage_creating_holder(path);
        if (holder && !strcmp(holder, d->host_id))
            vo_strv_pushf(&found, "%s", path);
    }
    closedir(dp);
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; found && found[i]; i++)
        if (!vo_storage_creating_is_live(d, pool, found[i]) && unlink(found[i]) == 0)
            log_info("storage: removed %s, left by this host (a crash)", found[i]);
    pthread_mutex_unlock(&d->storage_lock);
}

/* Caller holds storage_lock. Shared iSCSI pool name was deleted (p: the
 * pool of that name now, or NULL) while its check wrote this host's copy
 * of its secret: the copy its delete removed would stay. It goes, also
 * when the name is now a pool of another type (which has no copy); a
 * shared iSCSI pool made again under the name (another id) gets its own
 * at its next check, made due now. */
static void iscsi_secret_of_gone_pool(VoDaemon *d, const char *name, VoPool *p)
{
    if (p && !strcmp(p->type, VO_ISCSI_POOL_TYPE)) {
        if (p->shared)
            p->rbd_next_check_ms = 0;
        return;
    }
    _cleanup_free_ char *secret = vo_iscsi_secret_path(d->state_dir, name);
    (void)unlink(secret);
}

/* Which shared pools one check looks at. Each kind has its own caller:
 * vireod's start and the pool watch check the directory pools (a marker
 * file each), and the rbd pools (whose monitors are asked, up to
 * VO_RBD_TIMEOUT_S each when they do not answer) and the iSCSI pools (whose
 * target is logged in to, up to 10 s each: storage-iscsi-shared.h) have a
 * thread each (pool-watch.c), so that a Ceph or a target that does not
 * answer holds neither the start, nor the watch of the cluster's changes,
 * nor the other kind's checks; the iSCSI pools' thread starts each pool's
 * check on a worker of its own (ISCSI_CHECKS_MAX), so one target that does
 * not answer holds no other pool's check either. */
typedef enum { CHECK_MARKERS, CHECK_RBD, CHECK_ISCSI } CheckKind;

static CheckKind check_kind_of(const VoPool *p)
{
    if (!vo_storage_pool_is_networked(p))
        return CHECK_MARKERS;
    return p->rbd ? CHECK_RBD : CHECK_ISCSI;
}

/* One pool's check (its marker read, its monitors or target asked: without
 * the lock, so a hung mount or target stops no storage call), then its
 * verdict stored; props: an rbd pool's settings, else NULL. Whether its
 * reach changed. */
static bool check_one(VoDaemon *d, CheckKind kind, const char *name, const char *path,
                      const char *id, json_t *props)
{
    bool networked = kind != CHECK_MARKERS, changed = false, sweep = false;
    char *reason = NULL;
    VoPoolReach reach;
    if (props)
        reach = vo_storage_rbd_reach(d, name, id, props, path, &reason);
    else if (kind == CHECK_ISCSI)
        reach = vo_storage_iscsi_reach(d, name, id, path, &reason);
    else
        reach = vo_pool_marker_check(path, id, &reason);
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, name);
    bool same = p && p->shared && p->id && !strcmp(p->id, id);
    if (props && !same)
        /* Deleted while its key was being written here: the key goes
         * (under the lock, so a newer pool's directory is told apart). */
        vo_storage_rbd_discard_of(path, id);
    if (kind == CHECK_ISCSI && !same)
        iscsi_secret_of_gone_pool(d, name, p);
    if (same && p->reach != reach) {
        if (reach == VO_POOL_REACHABLE) {
            log_info("shared pool '%s' is reachable on this host", p->name);
            sweep = !networked;
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
        if (networked)
            p->rbd_next_check_ms = vo_now_ms() + VO_POOL_RBD_CHECK_MS;
    }
    pthread_mutex_unlock(&d->storage_lock);
    free(reason);
    if (sweep)
        sweep_own_creating(d, name, path);
    return changed;
}

/* iSCSI pools are checked side by side, at most this many logins at once
 * (check-workers.h): a target that does not answer holds only its own
 * pool's next check, not the others'. */
#define ISCSI_CHECKS_MAX 4

typedef struct {
    VoDaemon *d;
    char *name, *path, *id;
} IscsiCheck;

static void iscsi_check_free(IscsiCheck *c)
{
    free(c->name);
    free(c->path);
    free(c->id);
    free(c);
}

static void iscsi_check_run(void *arg)
{
    IscsiCheck *c = arg;
    if (check_one(c->d, CHECK_ISCSI, c->name, c->path, c->id, NULL))
        vo_storage_notify_pools_changed(c->d);
    iscsi_check_free(c);
}

static bool check_pools(VoDaemon *d, CheckKind kind)
{
    bool networked = kind != CHECK_MARKERS;
    _cleanup_strv_ char **names = NULL, **paths = NULL, **ids = NULL;
    json_t *rbd = json_object(); /* name -> settings, of the rbd pools */
    int64_t now = vo_now_ms();
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_pools; i++)
        if (d->pools[i]->shared && check_kind_of(d->pools[i]) == kind &&
            !(networked && d->pools[i]->reach == VO_POOL_REACHABLE &&
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
        if (kind == CHECK_ISCSI) { /* its worker tells of a change */
            IscsiCheck *c = vo_malloc0(sizeof(*c));
            *c = (IscsiCheck){ .d = d, .name = vo_strdup(names[i]), .path = vo_strdup(paths[i]),
                               .id = vo_strdup(ids[i]) };
            if (!vo_check_workers_start(VO_CHECKS_ISCSI_REACH, names[i], ISCSI_CHECKS_MAX,
                                        iscsi_check_run, c))
                iscsi_check_free(c); /* still under way, or enough are: the next round */
            continue;
        }
        changed = check_one(d, kind, names[i], paths[i], ids[i],
                            json_object_get(rbd, names[i])) || changed;
    }
    json_decref(rbd);
    return changed;
}

bool vo_storage_check_pools(VoDaemon *d)
{
    return check_pools(d, CHECK_MARKERS);
}

bool vo_storage_check_rbd_pools(VoDaemon *d)
{
    return check_pools(d, CHECK_RBD);
}

bool vo_storage_check_iscsi_pools(VoDaemon *d)
{
    return check_pools(d, CHECK_ISCSI);
}

/* Caller holds storage_lock. */
static void registry_remove_pool(VoDaemon *d, VoPool *p)
{
    for (size_t i = 0; i < d->n_pools; i++)
        if (d->pools[i] == p) {
            d->pools[i] = d->pools[--d->n_pools];
            vo_storage_pool_free(p);
            return;
        }
}

/* Caller holds storage_lock. A change of cluster/pools/NAME (value NULL: a
 * delete) another host (or this one) made; true when the registry changed. */
static bool apply_pool_change(VoDaemon *d, const char *name, const char *value, int64_t rev)
{
    VoPool *p = vo_storage_pool_find(d, name);
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
    VoPool *n = vo_storage_pool_from_doc(value, rev);
    if (!n || !n->shared) {
        if (n)
            vo_storage_pool_free(n);
        return false;
    }
    vo_storage_pool_path_here(d, n);
    if (p) { /* a newer document of it: keep what this host saw */
        n->reach = p->reach;
        free(n->reason);
        n->reason = vo_strdup(p->reason);
        registry_remove_pool(d, p);
    } else
        log_info("shared pool '%s' (%s) was created", n->name, n->path);
    vo_storage_registry_add_pool(d, n);
    return true;
}

/* Caller holds storage_lock. A change of cluster/volumes/POOL/NAME. */
static void apply_volume_change(VoDaemon *d, const char *pool, const char *name,
                                const char *value, int64_t rev)
{
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    if (!value) {
        /* Ours in progress (busy: this host deletes it) or older: left. */
        if (v && v->shared && !v->busy && v->rev < rev)
            vo_storage_registry_remove_volume(d, v);
        return;
    }
    if (v && (v->busy || v->rev >= rev))
        return; /* this host works on it and wrote the newest */
    VoVolume *n = vo_storage_volume_from_doc(value, rev);
    if (!n)
        return;
    n->shared = true;
    if (v) {
        n->attaching = v->attaching;
        n->attach_keeper = TAKE_PTR(v->attach_keeper);
        vo_storage_registry_remove_volume(d, v);
    }
    vo_storage_registry_add_volume(d, n);
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

bool vo_storage_strv_contains(char *const *v, const char *s)
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
        _cleanup_free_ char *key = vo_storage_volume_doc_key(true, v->pool, v->name);
        if (v->shared && !v->busy && v->rev && !vo_storage_strv_contains(l.seen, key))
            vo_storage_registry_remove_volume(d, v);
    }
    for (size_t i = d->n_pools; i-- > 0;) {
        VoPool *p = d->pools[i];
        _cleanup_free_ char *key = vo_storage_pool_doc_key(true, p->name);
        if (p->shared && p->rev && !vo_storage_strv_contains(l.seen, key)) {
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
