/* pool-watch.h: keeps this host's view of the shared pools (storage.h) in
 * step with the store: a thread watches cluster/pools/ and cluster/volumes/
 * (pools and volumes another host created, changed or deleted) and checks
 * the shared pools' markers every VO_POOL_CHECK_MS, telling the hosts
 * service when reachability changed (the host record lists only the pools
 * this host reaches). A second thread asks the rbd pools' monitors (each
 * up to VO_RBD_TIMEOUT_S when they do not answer) and a third logs in to
 * the iSCSI pools' targets (each up to 10 s), so an unreachable Ceph never
 * holds the watch, and a target that does not answer neither the watch nor
 * the rbd pools' checks. */
#pragma once

#include "daemon/daemon.h"

#define VO_POOL_CHECK_MS 2000

/* 0 or -errno. Call after vo_storage_load. */
int vo_pool_watch_start(VoDaemon *d);
void vo_pool_watch_stop(void);
