/* storage-iscsi-shared.h: iSCSI pools in a cluster. An iSCSI pool made on a
 * host of a cluster is the cluster's (cluster/pools/NAME, as rbd pools are):
 * every host logs in to the target with its own initiator name
 * (iqn.2026-12.org.vireo:HOST-ID; the target's ACL must let each in), its
 * LUNs are cluster volumes (cluster/volumes/NAME/lunN) that one VM of any
 * host uses at a time (the store's attach rule), and VMs on them migrate
 * without copying their disks. The CHAP secret is published in the store
 * (cluster/pool-keys/ID, the pool's id; no API answer reads it) and every
 * host keeps its own copy (STATE/secrets/iscsi-NAME.chap). A host counts the
 * pool reachable when it can log in and list the LUNs. */
#pragma once

#include "daemon/daemon.h"
#include "storage/pool-marker.h"

/* This host's initiator name (what the target's ACLs name), malloc'd. */
char *vo_iscsi_host_initiator(VoDaemon *d);
/* The pool's iscsi:// string as this host uses it: path (any host's) with
 * this host's initiator and, when it has a CHAP user, this host's secret
 * file. malloc'd; NULL when path is not an iSCSI pool's. */
char *vo_iscsi_path_here(VoDaemon *d, const char *name, const char *path);

/* Publishes the CHAP secret of pool name of id id (made new under the id).
 * 0 or -errno with *ret_error. */
int vo_storage_iscsi_publish_secret(VoDaemon *d, const char *name, const char *id,
                                    const char *secret, char **ret_error);
/* Its removal: vo_storage_pool_key_unpublish (storage-rbd-shared.h), the
 * same key prefix as the rbd keys'. */
/* Whether this host reaches shared iSCSI pool name (id, path: this host's,
 * vo_iscsi_path_here): its secret file written from the published one when
 * the pool has a CHAP user, then a login and a LUN listing (bounded, 10 s).
 * VO_POOL_REACHABLE, or VO_POOL_NO_CLUSTER with *ret_reason (malloc'd). */
VoPoolReach vo_storage_iscsi_reach(VoDaemon *d, const char *name, const char *id,
                                   const char *path, char **ret_reason);
