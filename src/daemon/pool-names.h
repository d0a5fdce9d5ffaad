/* pool-names.h: one rule for pool names in a cluster (docs/cluster.md,
 * "Pool names"), kept under concurrency. A name is either the cluster's
 * (one shared pool, cluster/pools/<name>, dir or rbd) or hosts' own
 * (pools/<name> of each host that has one: several hosts may each have a
 * pool of one name, as every host has its "default"), never both, as a
 * Proxmox storage id means one thing on every node.
 *
 * A host's own pool is created in a transaction that compares the shared
 * document and the name's claim absent. A shared pool first claims its
 * name (cluster/claims/pools/<name>, created only when absent, on a lease),
 * then looks for a pool of that name in every host's namespace (h/<id>/:
 * the members', and a joiner's, which copies its pools in before it
 * registers as a member), then creates its document in a transaction that
 * compares the claim still its own and deletes it. Of a host's own create
 * and a shared create of one name at once, either the own pool was written
 * before the claim (the look finds it) or after (its compare finds the
 * claim, or the document): one wins. The joiner's pools are checked at
 * admission (cluster-admit.c) and again as they are copied in
 * (cluster-copy.c, the same compares in the transaction writing each). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "util/util.h"

#define VO_POOL_CLAIMS_PREFIX "cluster/claims/pools/"
#define VO_POOL_NAME_CLAIM_MS 30000

typedef struct {
    char *key;
    int64_t rev, lease;
} VoPoolNameClaim;

/* Claims name for a shared pool this host creates: 0 with *ret held, or
 * -EEXIST (another host's claim, or a pool of that name on a member host:
 * named in *ret_error) or the store's error. */
int vo_pool_name_claim_shared(VoDaemon *d, const char *name, VoPoolNameClaim *ret,
                              char **ret_error);
/* Ends a claim (its lease revoked); fine on a zeroed one. */
void vo_pool_name_claim_end(VoDaemon *d, VoPoolNameClaim *c);

/* Creates the document key = text of pool name: a shared one's with its
 * claim (compared, then deleted), a host's own with the name's shared
 * document and claim compared absent. 0 and *ret_rev; -EEXIST (the
 * message in *ret_error), -EAGAIN (the claim lapsed: try again) or the
 * store's error. */
int vo_pool_name_create_doc(VoStore *s, const char *name, const char *key, const char *text,
                            const VoPoolNameClaim *claim, int64_t *ret_rev, char **ret_error);

/* The keys a host's own pool of name compares absent: the cluster's
 * document of that name and its claim (malloc'd). */
static inline char *vo_pool_name_shared_key(const char *name)
{
    return vo_asprintf("cluster/pools/%s", name);
}
static inline char *vo_pool_name_claim_key(const char *name)
{
    return vo_asprintf(VO_POOL_CLAIMS_PREFIX "%s", name);
}
