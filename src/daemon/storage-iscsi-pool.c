/* storage-iscsi-pool.c: iSCSI pools in the registry (docs/storage-san.md):
 * create, the LUNs listed as volumes and refreshed, their JSON, what vireo
 * refuses to do to a LUN; the target side is storage-iscsi.c. Shares
 * storage-internal.h with the other storage files. */
#include "daemon/storage-internal.h"

#include <string.h>

#include "conf/names.h"
#include "daemon/cluster-view.h"
#include "daemon/migrate-safe.h"
#include "daemon/storage-iscsi-shared.h"
#include "daemon/storage-iscsi.h"
#include "daemon/storage-rbd-shared.h"
#include "storage/qcow2-fit.h"
#include "storage/qemu-img.h"
#include "storage/volume-path.h"
#include "util/spawn.h"

/* An iSCSI pool's path is its iscsi:// string (storage/iscsi-url.h): with
 * the CHAP secret's file and this host's initiator name, so that a LUN's
 * volume path (vo_volume_path adds "/LUN") is all QEMU needs. Its volumes
 * are the target's disk LUNs, named lunN, listed at create and on refresh;
 * vireo neither creates nor deletes them. */

int vo_storage_iscsi_refuse(const char *pool, const char *what, char **ret_error)
{
    return vo_error_set(ret_error, -EINVAL, "pool '%s' is an iSCSI pool: its volumes are the "
                        "target's LUNs and vireo cannot %s it (add or remove LUNs on the "
                        "target, then run vireo pool refresh %s)", pool, what, pool);
}

int vo_storage_iscsi_check(VoDaemon *d, const char *pool, const char *what, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, pool);
    bool iscsi = p && !strcmp(p->type, VO_ISCSI_POOL_TYPE);
    pthread_mutex_unlock(&d->storage_lock);
    return iscsi ? vo_storage_iscsi_refuse(pool, what, ret_error) : 0;
}

void vo_storage_iscsi_pool_json(VoDaemon *d, const VoPool *p, json_t *o)
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
 * target no longer has, claimed for their drop: iscsi_claim_gone) are
 * dropped. */
static int iscsi_apply_luns(VoDaemon *d, VoPool *p, const VoIscsiLun *luns, size_t n,
                            char *const *gone, char **ret_error)
{
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *name = vo_asprintf("lun%d", luns[i].lun);
        VoVolume *v = vo_storage_volume_find(d, p->name, name);
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
        int r = vo_storage_save_volume(d, v);
        if (v->shared && (r == -EEXIST || r == -ESTALE)) {
            /* Another host's refresh wrote it first: the same target's
             * answer, which its watch brings here. */
            if (fresh)
                vo_storage_volume_free(v);
            continue;
        }
        if (r < 0) {
            if (fresh)
                vo_storage_volume_free(v);
            return vo_error_set(ret_error, r, "cannot save volume '%s/%s': %s", p->name, name,
                                strerror(-r));
        }
        if (fresh)
            vo_storage_registry_add_volume(d, v);
    }
    for (size_t i = 0; gone && gone[i]; i++) {
        VoVolume *v = vo_storage_volume_find(d, p->name, gone[i]);
        if (!v || lun_listed(luns, n, gone[i]))
            continue;
        if (vo_storage_delete_volume_doc(d, v) == 0) {
            vo_storage_forget_project(d, p->name, gone[i], v->shared); /* a LUN in a project */
            vo_storage_registry_remove_volume(d, v);
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
        _cleanup_free_ char *user = vo_storage_volume_user_name(d, key);
        if (!user)
            vo_strv_pushf(&gone, "%s", names[i]);
        else
            log_info("pool %s: LUN volume %s is gone from the target but attached to VM '%s': "
                     "kept", name, names[i], user);
    }
    vo_strv_free(names);
    return gone;
}

/* Shared LUN volume pool/name, known at revision rev, whose attach lock
 * this host's refresh could not take: a change of its document another
 * host made while this host had it claimed (busy) was left by this host's
 * watch (apply_volume_change), so the document is read again here: newer,
 * it is taken as the watch takes it; gone, the volume goes (unless the
 * registry has a newer one of that name: the LUN back meanwhile). */
static void iscsi_catch_up(VoDaemon *d, const char *pool, const char *name, int64_t rev)
{
    _cleanup_free_ char *key = vo_storage_volume_doc_key(true, pool, name), *text = NULL;
    int64_t now_rev = 0;
    int r = vo_store_get(d->store, key, &text, &now_rev);
    if (r >= 0) {
        vo_storage_apply_change(d, key, text, now_rev); /* left when not newer */
        return;
    }
    if (r != -ENOENT)
        return;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    if (v && v->shared && v->rev == rev && !v->busy && !v->attaching) {
        log_info("pool %s: LUN volume %s was dropped by another host", pool, name);
        vo_storage_registry_remove_volume(d, v);
    }
    pthread_mutex_unlock(&d->storage_lock);
}

/* The volumes of iSCSI pool name not in luns, each claimed for its drop as
 * a volume's delete claims it: marked busy (no attach of this host starts
 * meanwhile) and, of a shared pool, with its attach lock held (nor one of
 * another host: in *ret_holds, one per name returned), before its users on
 * every host are looked at. Those a VM uses, that another operation or
 * host holds, or that a restore marked, are kept (logged). A strv;
 * iscsi_unclaim once done. */
static char **iscsi_claim_gone(VoDaemon *d, const char *name, const VoIscsiLun *luns, size_t n,
                               VoLeaseKeeper ***ret_holds)
{
    _cleanup_strv_ char **names = NULL;
    char **gone = NULL;
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_volumes; i++) {
        const VoVolume *v = d->volumes[i];
        if (strcmp(v->pool, name) || lun_listed(luns, n, v->name))
            continue;
        if (v->restore) /* its mark would go with it, and not come back with the LUN */
            log_info("pool %s: LUN volume %s is gone from the target but kept: a restore did "
                     "not finish writing it (clear its mark to let it go: vireo volume set "
                     "%s/%s --clear-restore-incomplete)", name, v->name, name, v->name);
        else
            vo_strv_pushf(&names, "%s", v->name);
    }
    pthread_mutex_unlock(&d->storage_lock);
    size_t n_names = vo_strv_len(names), n_gone = 0;
    VoLeaseKeeper **holds = vo_malloc0(sizeof(VoLeaseKeeper *) * (n_names + 1));
    for (size_t i = 0; i < n_names; i++) {
        _cleanup_free_ char *key = vo_asprintf("%s/%s", name, names[i]);
        _cleanup_free_ char *error = NULL, *path = NULL, *user = NULL;
        if (vo_storage_claim_volume(d, name, names[i], &path, NULL, &error) < 0) {
            log_info("pool %s: LUN volume %s is gone from the target: kept for now (%s)", name,
                     names[i], error);
            continue;
        }
        VoLeaseKeeper *hold = NULL;
        bool shared = vo_storage_key_is_shared(d, key);
        pthread_mutex_lock(&d->storage_lock);
        VoVolume *claimed = vo_storage_volume_find(d, name, names[i]);
        int64_t rev = claimed ? claimed->rev : 0;
        pthread_mutex_unlock(&d->storage_lock);
        const char *doing = "dropped by a refresh of its pool"; /* its LUN is gone */
        int r = shared ? vo_storage_attach_lock(d, name, names[i], doing, &error) : 0;
        if (r == 0 && shared) {
            pthread_mutex_lock(&d->storage_lock);
            VoVolume *v = vo_storage_volume_find(d, name, names[i]);
            hold = v ? TAKE_PTR(v->attach_keeper) : NULL;
            pthread_mutex_unlock(&d->storage_lock);
        }
        if (r == 0 && (user = vo_storage_volume_user_name(d, key)))
            error = vo_asprintf("attached to VM '%s'", user);
        if (r < 0 || user) {
            log_info("pool %s: LUN volume %s is gone from the target but kept: %s", name,
                     names[i], error);
            vo_storage_lease_keeper_stopp(&hold);
            vo_storage_release_volume(d, name, names[i]);
            if (r < 0 && shared)
                iscsi_catch_up(d, name, names[i], rev);
            continue;
        }
        vo_strv_pushf(&gone, "%s", names[i]);
        holds[n_gone++] = hold;
    }
    *ret_holds = holds;
    return gone;
}

/* The claims of iscsi_claim_gone let go (of the volumes still there). */
static void iscsi_unclaim(VoDaemon *d, const char *name, char *const *gone,
                          VoLeaseKeeper **holds)
{
    for (size_t i = 0; gone && gone[i]; i++) {
        vo_storage_release_volume(d, name, gone[i]);
        vo_storage_lease_keeper_stopp(&holds[i]);
    }
    free(holds);
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
        if (vo_storage_pool_find(d, a->name))
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
        if (vo_storage_pool_find(d, a->name))
            r = vo_error_set(ret_error, -EEXIST, "a pool named '%s' already exists", a->name);
        else /* a host's own off the shared names (pool-names.h), a shared one's claimed */
            r = vo_storage_save_pool_as(d, p, VO_REV_NEW, shared ? &claim : NULL, ret_error);
        if (r < 0) {
            vo_storage_pool_free(p);
        } else {
            vo_storage_registry_add_pool(d, p);
            _cleanup_free_ char *lun_error = NULL;
            if (iscsi_apply_luns(d, p, luns, n, NULL, &lun_error) < 0)
                log_error("pool %s: %s (run vireo pool refresh %s)", a->name, lun_error,
                          a->name);
            *ret = vo_storage_pool_to_json(d, p);
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
    VoPool *p = vo_storage_pool_find(d, name);
    bool iscsi = p && !strcmp(p->type, VO_ISCSI_POOL_TYPE);
    _cleanup_free_ char *path = p ? vo_strdup(p->path) : NULL;
    if (p && !iscsi)
        /* a dir pool's volumes are vireo's own: nothing to list */
        *ret = vo_storage_pool_to_json(d, p);
    pthread_mutex_unlock(&d->storage_lock);
    if (!p)
        return vo_error_set(ret_error, -ENOENT, "pool '%s' does not exist", name);
    if (!iscsi) {
        vo_storage_rbd_usage_fill(*ret);
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
    VoLeaseKeeper **holds = NULL;
    _cleanup_strv_ char **gone = r == 0 ? iscsi_claim_gone(d, name, luns, n, &holds) : NULL;
    if (gone && vo_migrate_fault("iscsi-refresh-pause")) /* test: an attach meanwhile */
        vo_migrate_fault_wait("iscsi-refresh-go", 60000);
    if (r == 0) {
        pthread_mutex_lock(&d->storage_lock);
        p = vo_storage_pool_find(d, name);
        if (!p)
            r = vo_error_set(ret_error, -ENOENT, "pool '%s' does not exist", name);
        else if ((r = iscsi_apply_luns(d, p, luns, n, gone, ret_error)) == 0)
            *ret = vo_storage_pool_to_json(d, p);
        pthread_mutex_unlock(&d->storage_lock);
    }
    iscsi_unclaim(d, name, gone, holds);
    free(luns);
    return r;
}

static int iscsi_drop_lun_docs(VoDaemon *d, const char *name, char **ret_error);

/* Before an iSCSI pool's delete: its LUN volumes' documents go (refused
 * while one is attached to a VM or busy). 0 for other pools. */
int vo_storage_iscsi_pool_drop_luns(VoDaemon *d, const char *name, int64_t expected,
                                    char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, name);
    bool iscsi = p && !strcmp(p->type, VO_ISCSI_POOL_TYPE);
    int r = iscsi ? vo_storage_rev_is(expected, p->rev, "pool", name, ret_error) : 0;
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
        r = vo_storage_attach_lock(d, name, shared_luns[i], "deleted with its pool", &error);
        if (r < 0) {
            *ret_error = vo_asprintf("cannot delete pool '%s': %s", name, error);
            break;
        }
        pthread_mutex_lock(&d->storage_lock);
        VoVolume *v = vo_storage_volume_find(d, name, shared_luns[i]);
        holds[i] = v ? TAKE_PTR(v->attach_keeper) : NULL;
        pthread_mutex_unlock(&d->storage_lock);
    }
    if (r == 0)
        r = iscsi_drop_lun_docs(d, name, ret_error);
    for (size_t i = 0; i < n_holds; i++)
        vo_storage_lease_keeper_stopp(&holds[i]);
    free(holds);
    return r;
}

/* vo_storage_iscsi_pool_drop_luns's work once the locks are held. */
static int iscsi_drop_lun_docs(VoDaemon *d, const char *name, char **ret_error)
{
    int r = 0;
    _cleanup_strv_ char **gone = iscsi_gone(d, name, NULL, 0);
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; r == 0 && i < d->n_volumes; i++) {
        VoVolume *v = d->volumes[i];
        if (strcmp(v->pool, name))
            continue;
        if (!vo_storage_strv_contains(gone, v->name) || v->busy || v->attaching)
            r = vo_error_set(ret_error, -EBUSY, "pool '%s': volume '%s' is in use by a VM; "
                             "detach it first", name, v->name);
    }
    for (size_t i = 0; r == 0 && i < d->n_volumes;) {
        VoVolume *v = d->volumes[i];
        if (strcmp(v->pool, name)) {
            i++;
            continue;
        }
        if ((r = vo_storage_delete_volume_doc(d, v)) < 0) {
            r = vo_error_set(ret_error, r, "cannot delete volume '%s/%s': %s", name, v->name,
                             strerror(-r));
        } else {
            /* A LUN in a project: its documents go too (its pool is going,
             * so no heal at start could tell it is gone). */
            vo_storage_forget_project(d, name, v->name, v->shared);
            vo_storage_registry_remove_volume(d, v); /* moves the last one to i */
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
    _cleanup_free_ char *user = NULL, *lun_path = NULL;
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, pool);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
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
        else
            v->busy = true;
        lun_path = TAKE_PTR(path);
    }
    uint64_t size = v ? v->size_bytes : 0;
    pthread_mutex_unlock(&d->storage_lock);
    if (r == 0 && (user = vo_storage_volume_user_name(d, key))) {
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is attached to VM '%s': formatting "
                         "it would destroy the VM's data; detach it first", key, user);
        pthread_mutex_lock(&d->storage_lock);
        if ((v = vo_storage_volume_find(d, pool, name)))
            v->busy = false;
        pthread_mutex_unlock(&d->storage_lock);
    }
    if (r < 0) {
        vo_iscsi_url_clear(&u);
        return r;
    }
    _cleanup_free_ char *url = vo_iscsi_url_plain(&u);
    vo_iscsi_url_clear(&u);
    /* The layer's virtual size leaves room for its metadata and bitmaps:
     * one of the LUN's size fails the guest's writes as the disk fills. */
    uint64_t vsize = 0;
    _cleanup_free_ char *why = NULL;
    r = vo_qcow2_fit(size, &vsize, &why);
    /* qemu-img create cannot name a LUN's initiator or CHAP secret: the
     * empty qcow2 image of that size is made in a file, and its few
     * clusters written over the LUN's start through QEMU's iscsi driver
     * (vo_img_open_args: this host's initiator, the secret's file). */
    /* '.' is in no name (conf/names.c): "a-b"/"c" and "a"/"b-c" differ. */
    _cleanup_free_ char *header = vo_asprintf("%s/format-%s.%s.qcow2", d->run_dir, pool, name);
    (void)unlink(header); /* left by a crash: this LUN is ours (busy) */
    if (r >= 0)
        r = vo_img_create(header, format, vsize, NULL, NULL, &why);
    if (r >= 0)
        r = vo_img_convert_onto(header, "raw", lun_path, "raw", &why);
    (void)unlink(header);
    if (r < 0)
        r = vo_error_set(ret_error, -EIO, "cannot put a %s layer on %s: %s", format, url,
                         why ? why : strerror(-r));
    pthread_mutex_lock(&d->storage_lock);
    v = vo_storage_volume_find(d, pool, name);
    if (v) {
        v->busy = false;
        if (r == 0) {
            char *old = v->format;
            uint64_t old_vsize = v->virtual_bytes;
            v->format = vo_strdup(format);
            v->virtual_bytes = vsize;
            if ((r = vo_storage_save_volume(d, v)) < 0) {
                free(v->format);
                v->format = old;
                v->virtual_bytes = old_vsize;
                r = vo_error_set(ret_error, r, "cannot save volume '%s': %s", key, strerror(-r));
            } else {
                free(old);
            }
        }
    }
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}
