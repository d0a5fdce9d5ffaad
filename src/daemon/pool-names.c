/* pool-names.c: pool names in a cluster, the cluster's or hosts' own,
 * never both (pool-names.h). */
#include "daemon/pool-names.h"

#include <string.h>

#include "util/test-hold.h"

typedef struct {
    const char *suffix; /* "/pools/<name>" */
    char *host_id;      /* the first host with a pool of that name */
} OwnPoolHunt;

static int find_own_pool(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)value, (void)rev;
    OwnPoolHunt *h = userdata;
    const char *id = key + 2, *slash = strchr(id, '/');
    if (h->host_id || !slash || slash == id || strcmp(slash, h->suffix) != 0)
        return 0;
    h->host_id = strndup(id, (size_t)(slash - id));
    return 0;
}

/* A pool of name that is a host's own: 1 with that host's name and the
 * pool's path in *ret_where (malloc'd), 0 when none, or the store's error.
 * Every host namespace is looked at, not only the members': a joiner
 * copies its pools in before it registers as a member. Read after the
 * claim was made: a host's own create (or a joiner's copy) that this
 * misses compares the claim and fails. */
static int own_pool_anywhere(VoDaemon *d, const char *name, char **ret_where)
{
    _cleanup_free_ char *here_key = vo_asprintf("pools/%s", name), *here = NULL;
    int r = vo_store_get(d->store, here_key, &here, NULL);
    if (r >= 0) {
        *ret_where = vo_asprintf("this host (%s)", d->host_name ? d->host_name : d->host_id);
        return 1;
    }
    if (r != -ENOENT || !d->cluster_store)
        return r == -ENOENT ? 0 : r;
    _cleanup_free_ char *suffix = vo_asprintf("/pools/%s", name);
    OwnPoolHunt h = { .suffix = suffix };
    r = vo_store_list(d->cluster_store, "h/", find_own_pool, &h);
    if (r < 0 || !h.host_id) {
        free(h.host_id);
        return r;
    }
    _cleanup_free_ char *member_key = vo_asprintf("cluster/members/%s", h.host_id), *doc = NULL;
    json_t *member = vo_store_get(d->cluster_store, member_key, &doc, NULL) >= 0
                         ? json_loads(doc, 0, NULL)
                         : NULL;
    const char *host_name = json_string_value(json_object_get(member, "name"));
    *ret_where = host_name ? vo_strdup(host_name)
                           : vo_asprintf("host %s (no member: joining the cluster now, or "
                                         "left by a join that did not finish)", h.host_id);
    json_decref(member);
    free(h.host_id);
    return 1;
}

/* Who holds the claim on name, for a message (malloc'd). */
static char *claim_holder(VoDaemon *d, const char *key)
{
    _cleanup_free_ char *text = NULL;
    char *who = NULL;
    if (vo_store_get(d->store, key, &text, NULL) >= 0) {
        json_t *doc = json_loads(text, 0, NULL);
        const char *name = json_string_value(json_object_get(doc, "host_name"));
        who = name ? vo_strdup(name) : NULL;
        json_decref(doc);
    }
    return who ? who : vo_strdup("another host");
}

int vo_pool_name_claim_shared(VoDaemon *d, const char *name, VoPoolNameClaim *ret,
                              char **ret_error)
{
    *ret = (VoPoolNameClaim){ .key = vo_pool_name_claim_key(name) };
    int r = d->store->ops->lease_grant(d->store, VO_POOL_NAME_CLAIM_MS, &ret->lease);
    if (r >= 0) {
        json_t *doc = json_pack("{s:s?, s:s?}", "host", d->host_id, "host_name", d->host_name);
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(doc);
        r = vo_store_put_lease(d->store, ret->key, text, VO_REV_NEW, ret->lease, &ret->rev);
    }
    if (r == -EEXIST) {
        _cleanup_free_ char *who = claim_holder(d, ret->key);
        r = vo_error_set(ret_error, -EEXIST, "a pool named '%s' is being created by %s now",
                         name, who);
    } else if (r < 0)
        r = vo_error_set(ret_error, r, "cannot claim the pool name '%s': %s", name,
                         r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
    _cleanup_free_ char *where = NULL;
    if (r >= 0 && (r = own_pool_anywhere(d, name, &where)) > 0)
        r = vo_error_set(ret_error, -EEXIST, "pool name '%s' is taken: %s has a pool '%s' of "
                         "its own, and a shared pool's name must be free on every host",
                         name, where, name);
    else if (r < 0 && !*ret_error)
        r = vo_error_set(ret_error, r, "cannot read the hosts' pools: %s",
                         r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
    if (r < 0) {
        vo_pool_name_claim_end(d, ret);
        return r;
    }
    vo_test_hold("pool_name_claimed");
    return 0;
}

void vo_pool_name_claim_end(VoDaemon *d, VoPoolNameClaim *c)
{
    if (c->lease)
        (void)d->store->ops->lease_revoke(d->store, c->lease);
    free(c->key);
    *c = (VoPoolNameClaim){ 0 };
}

int vo_pool_name_create_doc(VoStore *s, const char *name, const char *key, const char *text,
                            const VoPoolNameClaim *claim, int64_t *ret_rev, char **ret_error)
{
    _cleanup_free_ char *shared_key = vo_pool_name_shared_key(name);
    _cleanup_free_ char *claim_key = vo_pool_name_claim_key(name);
    _cleanup_free_ char *own_key = vo_asprintf("pools/%s", name);
    VoStoreOp ops[2] = { { .kind = VO_STORE_PUT, .key = key, .value = text } };
    size_t n_ops = 1, failed = 0;
    VoStoreCompare cmps[3];
    if (claim) {
        /* The shared document new, this host's own absent, the claim ours. */
        cmps[0] = (VoStoreCompare){ key, VO_REV_NEW };
        cmps[1] = (VoStoreCompare){ own_key, VO_REV_NEW };
        cmps[2] = (VoStoreCompare){ claim->key, claim->rev };
        ops[n_ops++] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = claim->key };
    } else {
        cmps[0] = (VoStoreCompare){ key, VO_REV_NEW };
        cmps[1] = (VoStoreCompare){ shared_key, VO_REV_NEW };
        cmps[2] = (VoStoreCompare){ claim_key, VO_REV_NEW };
    }
    int r = vo_store_txn(s, cmps, 3, ops, n_ops, ret_rev, &failed);
    if (r >= 0 || !ret_error)
        return r;
    if (claim && (r == -ENOENT || r == -ESTALE) && failed == 2)
        return vo_error_set(ret_error, -EAGAIN, "the claim on pool name '%s' lapsed before the "
                            "pool was made: try again", name);
    if (r == -EEXIST && !claim && failed == 1)
        return vo_error_set(ret_error, r, "pool name '%s' is taken: the cluster has a shared "
                            "pool '%s', and a name is either the cluster's or hosts' own",
                            name, name);
    if (r == -EEXIST && !claim && failed == 2)
        return vo_error_set(ret_error, r, "pool name '%s' is taken: a shared pool '%s' is being "
                            "created now", name, name);
    if (r == -EEXIST && claim && failed == 1)
        return vo_error_set(ret_error, r, "pool name '%s' is taken: this host has a pool '%s' "
                            "of its own", name, name);
    if (r == -EEXIST)
        return vo_error_set(ret_error, r, "a pool named '%s' already exists", name);
    return vo_error_set(ret_error, r, "cannot save pool '%s': %s", name,
                        r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
}
