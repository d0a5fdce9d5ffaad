/* pool-kept.h: the kept rbd intents of a shared pool (sweep-kept.h),
 * published for the whole cluster: one document per pool per host,
 * cluster/pool-kept/<pool>/<host-id> = {"host", "host_name", "intents":
 * [{"intent","failure","error"}]}, written when an intent becomes kept
 * (or its failure changes) and deleted when the host's last one of the
 * pool finishes; each write also puts cluster/pool-kept-gen/<pool>, whose
 * revision so changes with every one. A pool's delete on any host reads
 * that generation, then the documents, and compares them (the generation
 * and each document at the revision read) in the transaction that
 * deletes the pool: a delete and a newly kept intent never both win,
 * with two compares and one per document, whatever the cluster's size. A standalone host's pools are not shared: nothing is
 * published and its own kept intents alone count, as before. */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"

#define VO_POOL_KEPT_PREFIX "cluster/pool-kept/"

/* Writes (or deletes, when it has none) this host's document of the kept
 * intents of pool `pool`, when the pool is shared (cluster/pools/<pool>
 * exists; compared in the write, so a deleted pool gets none). 0, or the
 * store's error: logged once, and the pool is owed a publish until one
 * succeeds (vo_pool_kept_publish_owed). */
int vo_pool_kept_publish(VoDaemon *d, const char *pool);
/* Publishes again every pool whose last publish failed (a store that was
 * slow or without a quorum): called at each check of the rbd pools'
 * thread, with the kept intents' retries. */
void vo_pool_kept_publish_owed(VoDaemon *d);

/* The kept intents of pool `pool` every other host published, each as
 * vo_sweep_kept_json's entries plus "host" (its name); appended to list.
 * 0, or a store error. */
int vo_pool_kept_others(VoDaemon *d, const char *pool, json_t *list);

/* Deletes shared pool document pool_key (at revision rev) of pool `pool`
 * in one transaction with a compare of its kept intents' generation and
 * every host's kept-intent document of it, each at the revision read.
 * Unless force, any kept intent of another host refuses it: -EBUSY with
 * *ret_kept "KEY (ERROR) on host H; ..." (the caller words the error).
 * With force their documents go in the same transaction. Else what
 * vo_store_txn answers (-ESTALE: the pool or a kept document changed
 * meanwhile, -ENOENT: the pool is gone). */
int vo_pool_kept_delete_pool(VoDaemon *d, const char *pool_key, int64_t rev, const char *pool,
                             bool force, char **ret_kept);
