/* mac-ghosts.c: entries of the cluster's MAC index whose VM is gone
 * (mac-claims.h, "ghosts"): a held entry {"vm", "vm_id"} left by an older
 * host's delete (it does not know the index) or lost in a crash would refuse
 * its MAC forever. A VM exists while its document is on a member host
 * (h/<host-id>/vms/<id>; standalone vms/<id>) or while its name's claim
 * (cluster/names/vms/<name>) names it: a VM's first write makes that claim
 * with its document, and a joiner's VMs (no member's until its start) have
 * it from the join's copy, before their MAC entries (cluster-copy.c). A
 * ghost is taken over (a claim that finds one, vo_mac_claims_add) or
 * removed (the manager's sweep, a bounded number of entries a round) in one
 * transaction comparing the entry at the revision read, the VM's documents
 * absent and its name's claim as read, so a VM that comes back (or a
 * rename, a migration) meanwhile fails it. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/hosts.h"
#include "daemon/mac-claims.h"
#include "daemon/mac-index-copy.h"
#include "state/keys.h"
#include "util/periodic.h"
#include "util/test-hold.h"
#include "util/util.h"

/* The compares that hold "entry key at rev, its VM gone" (keys owned). */
typedef struct {
    VoStore *s;            /* the raw handle in a cluster (its hosts' keys) */
    VoStoreCompare *cmps;
    size_t n;
    char *vm, *vm_id;      /* the entry's, for the log */
} Ghost;

static void ghost_clear(Ghost *g)
{
    for (size_t i = 0; i < g->n; i++)
        free((char *)g->cmps[i].key);
    free(g->cmps);
    free(g->vm);
    free(g->vm_id);
    *g = (Ghost){ 0 };
}

static void ghost_compare(Ghost *g, char *key, int64_t rev)
{
    g->cmps = realloc(g->cmps, sizeof(*g->cmps) * (g->n + 1));
    if (!g->cmps)
        abort();
    g->cmps[g->n++] = (VoStoreCompare){ .key = key, .expected_rev = rev };
}

static int collect_member_id(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)value;
    (void)rev;
    vo_strv_pushf(userdata, "%s", strrchr(key, '/') + 1);
    return 0;
}

/* Whether the held entry key (text at rev) is a ghost: 1 with g's compares,
 * 0 when its VM exists (or it is a claim in progress, which its lease
 * ends), or the store's -errno. */
static int ghost_check(VoDaemon *d, const char *key, const char *text, int64_t rev, Ghost *g)
{
    *g = (Ghost){ .s = d->cluster_store ? d->cluster_store : d->store };
    json_t *doc = json_loads(text, 0, NULL);
    g->vm = vo_strdup(json_string_value(json_object_get(doc, "vm")));
    g->vm_id = vo_strdup(json_string_value(json_object_get(doc, "vm_id")));
    json_decref(doc);
    if (!g->vm || !g->vm_id || strchr(g->vm_id, '/'))
        return 0;
    ghost_compare(g, vo_strdup(key), rev);
    /* Its name's claim: a joiner's VM (no member's yet) has only that. */
    char *name_key = vo_key_vm_name(g->vm);
    _cleanup_free_ char *claim = NULL;
    int64_t claim_rev = 0;
    int r = vo_store_get(g->s, name_key, &claim, &claim_rev);
    if (r < 0 && r != -ENOENT) {
        free(name_key);
        return r;
    }
    json_t *c = r >= 0 ? json_loads(claim, 0, NULL) : NULL;
    bool named = !strcmp(json_string_value(json_object_get(c, "vm")) ?: "", g->vm_id);
    json_decref(c);
    ghost_compare(g, name_key, r >= 0 ? claim_rev : VO_REV_NEW);
    if (named)
        return 0;
    /* Its document, on any member host (standalone: this one's). */
    _cleanup_strv_ char **hosts = NULL;
    if (d->cluster_store &&
        (r = vo_store_list(d->cluster_store, "cluster/members/", collect_member_id, &hosts)) < 0)
        return r;
    for (size_t i = 0; d->cluster_store ? hosts && hosts[i] : i < 1; i++) {
        char *vm_key = d->cluster_store ? vo_asprintf("h/%s/vms/%s", hosts[i], g->vm_id)
                                        : vo_key_vm(g->vm_id);
        _cleanup_free_ char *vm_doc = NULL;
        r = vo_store_get(g->s, vm_key, &vm_doc, NULL);
        ghost_compare(g, vm_key, VO_REV_NEW);
        if (r != -ENOENT)
            return r < 0 ? r : 0;
    }
    return 1;
}

/* The transaction on a ghost: op (its take-over or delete) when g's
 * compares still hold. 1 when made, 0 when they no longer hold. */
static int ghost_txn(Ghost *g, const VoStoreOp *op, int64_t *ret_rev)
{
    int r = vo_store_txn(g->s, g->cmps, g->n, op, 1, ret_rev, NULL);
    if (r == -ESTALE || r == -EEXIST || r == -ENOENT)
        return 0;
    return r < 0 ? r : 1;
}

int vo_mac_ghost_take_over(VoDaemon *d, const char *key, const char *text, int64_t lease,
                           int64_t *ret_rev)
{
    _cleanup_free_ char *held = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, key, &held, &rev);
    if (r < 0)
        return r == -ENOENT ? 0 : r; /* gone meanwhile (swept): as another's, this once */
    Ghost g;
    r = ghost_check(d, key, held, rev, &g);
    if (r > 0) {
        VoStoreOp op = { .kind = VO_STORE_PUT, .key = key, .value = text, .lease = lease };
        r = ghost_txn(&g, &op, ret_rev);
        if (r > 0)
            log_info("MAC %s: its index entry named VM '%s' (%s), which no longer exists: "
                     "taken over", key + strlen(VO_KEY_MAC_CLAIMS_PREFIX), g.vm, g.vm_id);
    }
    ghost_clear(&g);
    return r;
}

/* The sweep: the entries after the last one checked, at most
 * VO_MAC_SWEEP_BATCH a round, then from the start again; read from the
 * sweep's copy of the index, which each round brings up to date with the
 * changes since the last (mac-index-copy.h). */
static VoPeriodic runner = VO_PERIODIC_INIT;
static char *sweep_after; /* the last key checked (only the round's thread) */
static VoMacIndexCopy *copy; /* only the round's thread; NULL while not the manager */

typedef struct {
    char **keys, **texts;
    int64_t *revs;
    size_t n;
} Batch;

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    Batch *b = userdata;
    vo_strv_pushf(&b->keys, "%s", key);
    vo_strv_pushf(&b->texts, "%s", value);
    b->revs = realloc(b->revs, sizeof(*b->revs) * (b->n + 1));
    if (!b->revs)
        abort();
    b->revs[b->n++] = rev;
    return 0;
}

/* The held entry key (text at rev) deleted when it is a ghost's: 1 when
 * deleted, 0 when not a ghost's (or changed since), or the store's -errno. */
static int remove_if_ghost(VoDaemon *d, const char *key, const char *text, int64_t rev)
{
    Ghost g;
    int r = ghost_check(d, key, text, rev, &g);
    VoStoreOp op = { .kind = VO_STORE_DELETE, .key = key };
    if (r > 0 && (r = ghost_txn(&g, &op, NULL)) > 0)
        log_info("MAC %s: its index entry named VM '%s' (%s), which no longer exists: removed",
                 key + strlen(VO_KEY_MAC_CLAIMS_PREFIX), g.vm, g.vm_id);
    ghost_clear(&g);
    return r;
}

int vo_mac_ghost_remove(VoDaemon *d, const char *key)
{
    _cleanup_free_ char *held = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, key, &held, &rev);
    if (r < 0)
        return r == -ENOENT ? 1 : r; /* gone already */
    return remove_if_ghost(d, key, held, rev);
}

int vo_mac_ghosts_sweep(VoDaemon *d)
{
    Batch b = { 0 };
    if (!copy)
        copy = vo_mac_index_copy_new(d->store, VO_KEY_MAC_CLAIMS_PREFIX);
    int r = vo_mac_index_copy_update(copy, NULL);
    if (r >= 0)
        vo_mac_index_copy_after(copy, sweep_after, VO_MAC_SWEEP_BATCH, collect, &b);
    size_t removed = 0;
    for (size_t i = 0; r >= 0 && i < b.n && !vo_periodic_stopping(&runner); i++) {
        int c = remove_if_ghost(d, b.keys[i], b.texts[i], b.revs[i]);
        removed += c > 0;
        if (c < 0)
            r = c;
        else {
            free(sweep_after);
            sweep_after = vo_strdup(b.keys[i]);
        }
    }
    if (r >= 0 && b.n < VO_MAC_SWEEP_BATCH) { /* the end reached: from the start next */
        free(sweep_after);
        sweep_after = NULL;
    }
    vo_strv_free(b.keys);
    vo_strv_free(b.texts);
    free(b.revs);
    return r < 0 ? r : (int)removed;
}

static void sweep_round(void *userdata)
{
    VoDaemon *d = userdata;
    if (!vo_hosts_is_manager(d)) { /* no watch kept by a host that does not sweep */
        vo_mac_index_copy_free(copy);
        copy = NULL;
        return;
    }
    vo_test_hold("mac_ghosts_sweep"); /* tests: a ghost left to a join's admission */
    int r = vo_mac_ghosts_sweep(d);
    if (r < 0)
        log_warn("store: cannot sweep the MAC index for entries of VMs gone: %s",
                 strerror(-r));
}

int vo_mac_ghosts_start(VoDaemon *d)
{
    if (!d->cluster || !d->cluster_store || vo_periodic_started(&runner))
        return 0;
    /* Tests: a shorter period. */
    const char *ms = getenv("VIREO_TEST_MAC_SWEEP_MS");
    int period = ms && atoi(ms) > 0 ? atoi(ms) : VO_MAC_SWEEP_MS;
    return vo_periodic_start(&runner, sweep_round, d, period);
}

void vo_mac_ghosts_stop(void)
{
    if (vo_periodic_stop(&runner)) {
        free(sweep_after);
        sweep_after = NULL;
        vo_mac_index_copy_free(copy);
        copy = NULL;
    }
}
