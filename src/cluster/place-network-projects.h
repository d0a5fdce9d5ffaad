/* place-network-projects.h: which hosts' networks a VM of a project may
 * use, for placement (a new VM, docs/cluster.md "Placement and groups")
 * and the DRS planner. A host's own network of the name a NIC asks for
 * that belongs to another project than the VM's is not the VM's: the
 * chosen host refuses the create, and the migration check the move
 * (cluster/migrate-compat.h); so placement and DRS take the host as
 * without it. Pure: the owners come in as read from the store
 * (state/project-objects.h, cluster/object-projects/network/). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "cluster/placement.h"

/* owners: the documents of the networks' projects, as the placement cache
 * keeps those under VO_PLACE_CACHE_NETWORK_OWNERS (place-cache.h):
 * {"SCOPE/NAME": {"doc": {"project": P, ...}, "rev": n}} (SCOPE a host id,
 * or "cluster" for a cluster network: the same network on every host,
 * whose project the create's own check reads); NULL: none known. */

/* The project of host host_id's own network name (NULL: none, or not
 * known). */
const char *vo_place_network_owner(const json_t *owners, const char *host_id, const char *name);

/* Whether a VM of project (NULL: "default") may use each network of want
 * (sorted; NULL: none) on host host_id as far as projects go: none of them
 * is the host's own network of another project. (Whether the host has them
 * is vo_place_networks_ok.) */
bool vo_place_networks_project_ok(const json_t *owners, const char *host_id, char *const *want,
                                  const char *project);

/* Leaves out of each host's networks those of want that belong to
 * another project there (as vo_place_networks_project_ok), so vo_place
 * filters the host and says "has no networks ... (or they are in error or
 * of another project there)". */
void vo_place_drop_foreign_networks(VoPlaceSnapshot *snap, char *const *want,
                                    const json_t *owners, const char *project);

/* A network of want that no host has (after vo_place_drop_foreign_networks:
 * none the VM's project may use), when each host lists its networks; else
 * NULL (an offline host, whose record is gone, or a host of an older vireod
 * does not say: it may have it, and the 409 names each host's reason).
 * Borrowed from want. */
const char *vo_place_network_nowhere(const VoPlaceSnapshot *snap, char *const *want);
