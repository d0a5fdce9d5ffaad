/* cluster-place.h: where a new VM goes, as the manager decides it: the
 * snapshot from the store (member documents, live records, the group's
 * member documents, the cluster's policy) plus this manager's reservations
 * (creates it sent that the target's record does not show yet), then
 * vo_place. docs/internals.md, Placement (The manager path).
 *
 * The cluster's placement policy: cluster/settings/placement {"policy":
 * "spread"|"pack"} (absent: spread). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "cluster/placement.h"
#include "daemon/daemon.h"

#define VO_PLACEMENT_SETTINGS_KEY "cluster/settings/placement"

typedef struct {
    unsigned vcpus;
    uint64_t memory_mib;
    VoAccel accel;
    const char *group; /* or NULL */
    const char *host;  /* pinned host (name or id), or NULL */
    const char *firmware; /* vo_place_firmware_needed: the host must list it; NULL: any */
    char *const *networks; /* vo_place_networks_needed of the NICs asked for; NULL: none */
    char *const *pools;    /* vo_place_pools_needed of the volumes and pools the create
                            * names; NULL: the default pool alone */
    const char *const *volumes; /* the volumes it names ("POOL/NAME"; NULL entries
                                 * skipped): one of a host's own pool pins an
                                 * unpinned placement to its host
                                 * (vo_cluster_own_volumes_host) */
    size_t n_volumes;
    const char *project;   /* the VM's (NULL: "default"): a host's own network of another
                            * project is not one of its (cluster/place-network-projects.h) */
} VoPlaceAsk;

typedef struct {
    char *host_id;
    char *host_name;
    char *url;          /* its API ("https://ADDRESS:PORT"); NULL for this host */
    bool local;         /* it is this host */
    uint64_t reservation;
    bool cached;        /* placed from the manager's cache (not the store) */
    unsigned principal_members; /* what it understands of X-Vireo-Principal, as
                                 * the record placement read says (api/access.h) */
    /* Timings of the placement, for the debug log's place-trace lines:
     * reading what placement needs, the snapshot and vo_place. */
    int64_t read_us, place_us;
} VoPlaceChoice;

/* Picks the host for ask and reserves its room there until the create is
 * done (vo_cluster_place_done). 0 with *ret; -ENOENT: the pinned host is no
 * member; -EBUSY: no host fits (or the pinned one does not), *ret_error
 * naming each host's reason; -EINVAL: a bad group, or a network asked for
 * that no host has (for the VM's project); other -errno: the store. */
int vo_cluster_place(VoDaemon *d, const VoPlaceAsk *ask, VoPlaceChoice *ret, char **ret_error);
/* The create placed by c was answered: created, or not (its room is
 * given back). record_rev: the revision at which the chosen host rewrote
 * its record before answering (> 0), or 0 when unknown (then the room
 * stays reserved until the reservation expires). */
void vo_cluster_place_done(VoDaemon *d, const VoPlaceChoice *c, bool created,
                           int64_t record_rev);
void vo_place_choice_clear(VoPlaceChoice *c);

/* The members and live host records ({host id: {"doc": ..., "rev": its
 * revision}} each, new references): from the manager's snapshot in memory
 * when it has one, else read from the store. 0 or the store's -errno. */
int vo_cluster_hosts_read(VoDaemon *d, json_t **ret_members, json_t **ret_records);
/* The live host records alone, as vo_cluster_hosts_read gives them: one
 * range read of the store (a non-manager), for a reader that needs no
 * member document (a VM list's post_copy_paused). */
int vo_cluster_records_read(VoDaemon *d, json_t **ret_records);
/* Likewise the networks' projects (a new reference, in the form
 * cluster/place-network-projects.h reads). 0 or the store's -errno. */
int vo_cluster_network_owners_read(VoDaemon *d, json_t **ret);

/* In a cluster: starts the thread that keeps the placement snapshot in
 * memory while this host is the manager (listed when it becomes manager,
 * then watched; dropped when it loses the role). 0 or -errno. */
int vo_cluster_place_start(VoDaemon *d);
void vo_cluster_place_stop(VoDaemon *d);

/* The manager: its host id and API URL (from cluster/manager and its member
 * document). -ENOENT when no host holds the role now. */
int vo_cluster_manager(VoDaemon *d, char **ret_id, char **ret_url, char **ret_error);

/* The cluster's policy (spread when unset). */
int vo_placement_policy_get(VoDaemon *d, VoPlacePolicy *ret);
int vo_placement_policy_set(VoDaemon *d, const char *policy, char **ret_error);
