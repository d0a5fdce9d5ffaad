/* migrate-target.h: where a VM goes when `vireo vm migrate` (or a host's
 * maintenance) names no target: the manager decides, with placement's rules
 * (cluster/placement.h) over the hosts as they are now, the VM's own host
 * excluded and its group respected (spread: a host without another member
 * while one fits; together: only where the other members live, so a VM
 * whose group lives on its own host has no target). A vireod that is not
 * the manager asks the manager over the peer API (POST
 * /v1/vms/{vm}/migrate-target with X-Vireo-Place). Only the choice: the
 * compatibility checks of the chosen host are cluster/migrate-compat.h's.
 * docs/internals.md, Migration checks. */
#pragma once

#include <jansson.h>

#include "conf/vm-spec.h"
#include "daemon/daemon.h"

/* The pools a move of the VM of spec needs on its target
 * (vo_place_pools_needed): each shared pool of a disk, the NVRAM, the ISO
 * and a direct-boot kernel or initrd must be reached there; a volume of a
 * host's own pool is copied into the target's pool `pool` (the move's
 * --pool; NULL: default), which the target must have when anything is
 * copied (else default is asked for, as without --pool). A migration
 * target's, an HA restart's and DRS's rule. */
char **vo_migrate_pools_needed(VoDaemon *d, const VoVmSpec *spec, const char *pool);

/* The target for VM vm_id (an id) of host source_host_id, whose volumes
 * of this host's own pools go to the target's pool `pool` (a migration's
 * or move's --pool; NULL: default; a manager of an older vireod, which
 * cannot be asked for a pool, picks for default): 0 and *ret_host_id;
 * -EBUSY when no host fits (*ret_error: each host's reason, as a create's
 * 409); -ENOENT: no such VM on that host; -EAGAIN: no manager now; other
 * -errno: the store or the manager. */
int vo_migrate_pick_target(VoDaemon *d, const char *vm_id, const char *source_host_id,
                           const char *pool, char **ret_host_id, char **ret_error);

/* The same with the whole answer: {"host": {"id","name"} or null, "hosts":
 * [{"id","name","fits": bool, "reason"?: words}] (every host, in name
 * order)}. On -EBUSY *ret is set too (host null). -ENOTSUP: pool named
 * and the manager runs an older vireod (it refuses the field). */
int vo_migrate_target_json(VoDaemon *d, const char *vm_id, const char *source_host_id,
                           const char *pool, json_t **ret, char **ret_error);

/* The manager's own computation (no asking): what vo_migrate_target_json
 * does on the manager, and what the peer API serves to the others. */
int vo_migrate_target_place(VoDaemon *d, const char *vm_id, const char *source_host_id,
                            const char *pool, json_t **ret, char **ret_error);
/* The same with group (when not NULL) as the placement group whose policy
 * holds instead of the VM's own (HA recovery: the VM's ha_group). */
int vo_migrate_target_place_group(VoDaemon *d, const char *vm_id, const char *source_host_id,
                                  const char *group, json_t **ret, char **ret_error);
