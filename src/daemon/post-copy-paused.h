/* post-copy-paused.h: what the API says of a post-copy migration whose
 * recovery failed, both QEMUs kept (docs/cluster.md, "Post-copy"): the
 * source host's live record lists the VMs whose source QEMU it keeps and
 * whose migration task is over ("post_copy_paused": what `vireo vm migrate
 * VM --resume` retries), and a VM's view names the host that keeps it. */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"

/* This host's kept post-copy sources a --resume may retry now:
 * [{"vm": id, "name", "to": the destination's host id}] (new reference;
 * empty when none). Read from the run dir: for the live record. */
json_t *vo_post_copy_paused_json(VoDaemon *d);

/* Each VM of vms (an array of VMs as the API shows them, with "id") that a
 * host's live record lists as paused gets "post_copy_paused":
 * {"source_host": its name, "source_host_id"}. Nothing standalone, or when
 * the records cannot be read. records: the hosts' live records as read
 * already ({host id: record}, vo_cluster_add_vms), or NULL: read here (one
 * read of them for the whole array). */
void vo_post_copy_paused_add(VoDaemon *d, json_t *vms, json_t *records);
