/* pool-kept.c: every host's kept rbd intents of a shared pool, in the
 * store for the whole cluster (pool-kept.h). */
#include "daemon/pool-kept.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/storage.h"
#include "daemon/sweep-kept.h"
#include "state/store.h"
#include "util/util.h"

/* cluster/pool-kept-gen/<pool>: put by every publish of a kept intent, so
 * that its revision changes with each; a pool's delete compares it at the
 * revision it read before the documents (one compare, whatever the number
 * of hosts: a compare of each member's document absent went beyond
 * etcd's 128 per transaction in a cluster of 128 hosts or more). */
#define GEN_PREFIX "cluster/pool-kept-gen/"

/* One publish at a time: a later snapshot of the kept intents is never
 * overwritten by an earlier one. */
static pthread_mutex_t publish_lock = PTHREAD_MUTEX_INITIALIZER;
/* Under publish_lock: the pools whose last publish failed (strv), written
 * again by vo_pool_kept_publish_owed: a kept intent whose failure does not
 * change is not published again otherwise, and a document the cluster
 * never got would let another host's delete drop it unseen. */
static char **owed;

/* Caller holds publish_lock. Notes pool's publish as failed or done; true
 * when that changed (logged once, not at every retry). */
static bool owed_set(const char *pool, bool failed)
{
    size_t n = vo_strv_len(owed);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(owed[i], pool)) {
            if (failed)
                return false;
            free(owed[i]);
            memmove(&owed[i], &owed[i + 1], sizeof(char *) * (n - i));
            return true;
        }
    if (failed)
        vo_strv_push(&owed, vo_strdup(pool));
    return failed;
}

static char *kept_key(const char *pool, const char *host_id)
{
    return vo_asprintf(VO_POOL_KEPT_PREFIX "%s/%s", pool, host_id);
}

/* This host's document of pool `pool`, or NULL when it keeps none. */
static char *own_doc(VoDaemon *d, const char *pool)
{
    json_t *all = vo_sweep_kept_json(pool);
    json_t *intents = json_array();
    size_t i;
    json_t *k;
    json_array_foreach(all, i, k)
        json_array_append_new(intents, json_pack("{s:O, s:O, s:O}", "intent",
                                                 json_object_get(k, "intent"), "failure",
                                                 json_object_get(k, "failure"), "error",
                                                 json_object_get(k, "error")));
    json_decref(all);
    if (!json_array_size(intents)) {
        json_decref(intents);
        return NULL;
    }
    json_t *doc = json_pack("{s:s, s:s?, s:o}", "host", d->host_id, "host_name", d->host_name,
                            "intents", intents);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

int vo_pool_kept_publish(VoDaemon *d, const char *pool)
{
    if (!d->store || !d->host_id)
        return 0;
    _cleanup_free_ char *pool_key = vo_asprintf(VO_SHARED_POOLS_PREFIX "%s", pool);
    _cleanup_free_ char *key = kept_key(pool, d->host_id);
    pthread_mutex_lock(&publish_lock);
    int r = -ESTALE;
    for (int attempt = 0; attempt < 3 && r == -ESTALE; attempt++) {
        _cleanup_free_ char *pool_doc = NULL;
        int64_t pool_rev = 0;
        r = vo_store_get(d->store, pool_key, &pool_doc, &pool_rev);
        _cleanup_free_ char *text = r >= 0 ? own_doc(d, pool) : NULL;
        if (r == -ENOENT || (r >= 0 && !text)) {
            /* Not shared, deleted, or none kept: no document. Only this
             * host writes it (a forced delete of the pool removes it too,
             * in which case it is gone already). */
            r = vo_store_delete(d->store, key, VO_REV_ANY);
            r = r == -ENOENT ? 0 : r;
        } else if (r >= 0) {
            /* Compared on the pool at the revision read: a pool deleted
             * meanwhile gets no document (its delete compared ours). */
            VoStoreCompare cmp = { .key = pool_key, .expected_rev = pool_rev };
            _cleanup_free_ char *gen = vo_asprintf(GEN_PREFIX "%s", pool);
            VoStoreOp ops[] = { { .kind = VO_STORE_PUT, .key = key, .value = text },
                                { .kind = VO_STORE_PUT, .key = gen, .value = "{}" } };
            r = vo_store_txn(d->store, &cmp, 1, ops, 2, NULL, NULL);
            if (r == -ENOENT) /* the pool went meanwhile: its watch drops ours */
                r = 0;
        }
    }
    bool changed = owed_set(pool, r < 0);
    pthread_mutex_unlock(&publish_lock);
    if (r < 0 && changed)
        log_warn("storage: cannot publish the kept intents of pool '%s' to the cluster: %s; "
                 "tried again at each check", pool, strerror(-r));
    else if (changed)
        log_info("storage: the kept intents of pool '%s' are published to the cluster", pool);
    return r;
}

void vo_pool_kept_publish_owed(VoDaemon *d)
{
    _cleanup_strv_ char **pools = NULL;
    pthread_mutex_lock(&publish_lock);
    for (size_t i = 0; owed && owed[i]; i++)
        vo_strv_pushf(&pools, "%s", owed[i]);
    pthread_mutex_unlock(&publish_lock);
    for (size_t i = 0; pools && pools[i]; i++)
        (void)vo_pool_kept_publish(d, pools[i]);
}

typedef struct {
    const char *skip_host; /* this host's id: its own are listed from memory */
    json_t *list;          /* entries with "host" (its name) */
    char **keys;           /* the documents read (strv), and ... */
    int64_t *revs;         /* ... their revisions */
    size_t n;
} Published;

static int published_one(const char *key, const char *value, int64_t rev, void *userdata)
{
    Published *p = userdata;
    const char *host_id = strrchr(key, '/') + 1;
    int64_t *revs = vo_malloc0(sizeof(int64_t) * (p->n + 1));
    if (p->n)
        memcpy(revs, p->revs, sizeof(int64_t) * p->n);
    free(p->revs);
    p->revs = revs;
    p->revs[p->n++] = rev;
    vo_strv_push(&p->keys, vo_strdup(key));
    if (p->skip_host && !strcmp(host_id, p->skip_host))
        return 0; /* read, not listed */
    json_t *doc = json_loads(value, 0, NULL);
    const char *name = json_string_value(json_object_get(doc, "host_name"));
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(doc, "intents"), i, k) {
        json_t *e = json_deep_copy(k);
        json_object_set_new(e, "host", json_string(name ? name : host_id));
        json_array_append_new(p->list, e);
    }
    json_decref(doc);
    return 0;
}

static void published_clear(Published *p)
{
    vo_strv_free(p->keys);
    free(p->revs);
}

static int read_published(VoDaemon *d, const char *pool, Published *p)
{
    _cleanup_free_ char *prefix = vo_asprintf(VO_POOL_KEPT_PREFIX "%s/", pool);
    return vo_store_list(d->store, prefix, published_one, p);
}

int vo_pool_kept_others(VoDaemon *d, const char *pool, json_t *list)
{
    Published p = { .skip_host = d->host_id, .list = list };
    int r = read_published(d, pool, &p);
    published_clear(&p);
    return r;
}

int vo_pool_kept_delete_pool(VoDaemon *d, const char *pool_key, int64_t rev, const char *pool,
                             bool force, char **ret_kept)
{
    /* The generation first, then the documents: a publish after this read
     * changes it, and the transaction below fails. */
    _cleanup_free_ char *gen = vo_asprintf(GEN_PREFIX "%s", pool);
    int64_t gen_rev = 0;
    int r = vo_store_get(d->store, gen, NULL, &gen_rev);
    if (r == -ENOENT) { /* none kept since the pool was made */
        gen_rev = VO_REV_NEW;
        r = 0;
    }
    Published p = { .skip_host = d->host_id, .list = json_array() };
    if (r >= 0)
        r = read_published(d, pool, &p);
    if (r >= 0 && !force && json_array_size(p.list)) {
        _cleanup_strv_ char **named = NULL;
        size_t i;
        json_t *k;
        json_array_foreach(p.list, i, k)
            vo_strv_pushf(&named, "%s (%s) on host %s",
                          json_string_value(json_object_get(k, "intent")),
                          json_string_value(json_object_get(k, "error")),
                          json_string_value(json_object_get(k, "host")));
        *ret_kept = vo_strv_join(named, "; ");
        r = -EBUSY;
    }
    if (r >= 0) {
        /* The pool at its revision, the generation at the one read, and
         * each document read at its own. With force they go; without, the
         * only one there can be is this host's own, whose kept intents in
         * memory the caller checked (none: a stale one). */
        bool has_gen = gen_rev != VO_REV_NEW;
        size_t n_cmps = 2 + p.n, n_ops = 1 + has_gen + p.n;
        VoStoreCompare *cmps = vo_malloc0(sizeof(VoStoreCompare) * n_cmps);
        VoStoreOp *ops = vo_malloc0(sizeof(VoStoreOp) * n_ops);
        cmps[0] = (VoStoreCompare){ .key = pool_key, .expected_rev = rev };
        cmps[1] = (VoStoreCompare){ .key = gen, .expected_rev = gen_rev };
        ops[0] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = pool_key };
        if (has_gen)
            ops[1] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = gen };
        for (size_t i = 0; i < p.n; i++) {
            cmps[2 + i] = (VoStoreCompare){ .key = p.keys[i], .expected_rev = p.revs[i] };
            ops[1 + has_gen + i] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = p.keys[i] };
        }
        size_t failed = 0;
        r = vo_store_txn(d->store, cmps, n_cmps, ops, n_ops, NULL, &failed);
        if (r == -EEXIST || (r == -ENOENT && failed > 0))
            r = -ESTALE; /* a kept document came or went meanwhile: read again */
        free(cmps);
        free(ops);
    }
    json_decref(p.list);
    published_clear(&p);
    return r;
}
