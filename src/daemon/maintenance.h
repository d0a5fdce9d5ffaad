/* maintenance.h: a host's maintenance mode and evacuation (docs/cluster.md,
 * "Maintenance"). Maintenance is a flag of the host's member document
 * (hosts.h: it survives restarts and the host being offline; its live
 * record's "state" says "maintenance", so placement refuses it for creates
 * and as a migration target). Entering it, or `evacuate`, runs one task on
 * the host itself that moves every VM away: running ones by live migration
 * (migrate.h; the manager picks each target, at most
 * VO_EVACUATE_PARALLEL at a time, local disks mirrored along), stopped
 * ones whose disks are all on shared pools by the ownership transaction
 * alone (state/vm-move.h), stopped ones with local disks by a cold move
 * (move.h: disks copied; counted among the VO_EVACUATE_PARALLEL), and
 * reports per VM where it went or why it could not move (and, for a live
 * migration asked to verify_memory, whether the RAM matched). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"

#define VO_EVACUATE_PARALLEL 2

/* What an evacuation asks of each move (POST /v1/hosts/{host}/maintenance
 * and /evacuate: "pool", "verify_memory"). */
typedef struct {
    const char *pool;   /* the pool on each target that local disks go to (a
                         * valid name, checked by the caller); NULL: the
                         * target's default pool */
    bool verify_memory; /* each live migration compares the guest RAM of both
                         * sides before its switch (VoMigrateArgs) */
} VoEvacuateArgs;

/* Sets this host's maintenance flag (when enter) and queues the
 * evacuation task (one at a time: a second request answers the running
 * task). 0 with *ret_task, or -errno with *ret_error. */
int vo_host_evacuate(VoDaemon *d, bool enter, const VoEvacuateArgs *args, json_t **ret_task,
                     char **ret_error);

/* Peer side of a stopped VM's move: registers the VM whose documents the
 * source's transaction just moved here. */
int vo_host_adopt_moved(VoDaemon *d, json_t *body, char **ret_error);
