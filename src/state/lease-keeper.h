/* lease-keeper.h: keeps one store lease alive from a thread of its own while
 * slow work runs under a lock bound to it (a volume's attach lock), and
 * says whether it still holds right before the work is recorded. */
#pragma once

#include <stdint.h>

#include "state/store.h"

typedef struct VoLeaseKeeper VoLeaseKeeper;

/* Renews lease (granted with ttl_ms) every third of its TTL until stopped. */
VoLeaseKeeper *vo_lease_keeper_start(VoStore *s, int64_t lease, int ttl_ms);

/* Renews the lease now, so that it lasts a full TTL from here: 0, -ENOENT
 * when it is gone (expired or revoked: the lock is lost), or the store's
 * error when it cannot tell (-EAGAIN). */
int vo_lease_keeper_confirm(VoLeaseKeeper *k);

int64_t vo_lease_keeper_lease(const VoLeaseKeeper *k);

/* Stops renewing, revokes the lease (its keys go now) and frees k. NULL is
 * fine. Returns the revoke's result (-ENOENT: it had expired already). */
int vo_lease_keeper_stop(VoLeaseKeeper *k);
