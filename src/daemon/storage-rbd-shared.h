/* storage-rbd-shared.h: rbd pools in a cluster. An rbd pool is shared by
 * nature: made once for the cluster (cluster/pools/NAME, as shared dir
 * pools are), its cephx key published in the store for the other hosts
 * (cluster/pool-keys/ID, ID the pool's id: the store is the cluster's own,
 * reached over mutual TLS; no API answer reads it), and every host writes
 * its own copy of the pool's directory (STATE/rbd/NAME: key 0600,
 * ceph.json, pool-id) from it.
 * A host counts the pool reachable when it reaches the monitors. */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"
#include "storage/pool-marker.h"

#define VO_RBD_POOL_KEYS_PREFIX "cluster/pool-keys/"

/* Publishes the key of rbd pool name of id id (read from dir/key), made
 * new under the id. 0 or -errno with *ret_error. */
int vo_storage_rbd_publish_key(VoDaemon *d, const char *name, const char *id,
                               const char *dir, char **ret_error);
/* Removes the published credential of pool id, an rbd pool's key or an
 * iSCSI pool's CHAP secret (storage-iscsi-shared.h): the pool was deleted,
 * or its create failed. */
void vo_storage_pool_key_unpublish(VoDaemon *d, const char *id);
/* Whether this host reaches shared rbd pool name (its id, settings props,
 * its directory dir here): the directory is written from the published key
 * when it is missing or another pool's (its pool-id file: see
 * vo_storage_rbd_dir_id), then the monitors are asked (bounded:
 * VO_RBD_TIMEOUT_S). VO_POOL_REACHABLE, or VO_POOL_NO_CLUSTER with
 * *ret_reason (malloc'd) naming what failed. */
VoPoolReach vo_storage_rbd_reach(VoDaemon *d, const char *name, const char *id, json_t *props,
                                 const char *dir, char **ret_reason);
