/* placement.h: where a new VM goes in a cluster. A pure function over a
 * snapshot of the hosts (no I/O, no clock, no locks): filter the hosts (one
 * reason per host that is left out), then weigh those that fit (spread or
 * pack) and pick one, ties broken by host name. Plus the JSON form of the
 * snapshot and of the request (placement-json.c), so the daemon can build
 * them from the host documents in the store. docs/internals.md, Placement. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/vm-spec.h" /* VoAccel */

typedef enum {
    VO_HOST_ONLINE,
    VO_HOST_OFFLINE,
    VO_HOST_MAINTENANCE,
    VO_HOST_FENCED,
    _VO_HOST_STATE_MAX
} VoHostState;
const char *vo_host_state_to_string(VoHostState s);
int vo_host_state_from_string(const char *s, VoHostState *ret);

typedef enum { VO_PLACE_SPREAD, VO_PLACE_PACK, _VO_PLACE_POLICY_MAX } VoPlacePolicy;
const char *vo_place_policy_to_string(VoPlacePolicy p);
int vo_place_policy_from_string(const char *s, VoPlacePolicy *ret);

typedef enum { VO_GROUP_SPREAD, VO_GROUP_TOGETHER, _VO_GROUP_POLICY_MAX } VoGroupPolicy;
const char *vo_group_policy_to_string(VoGroupPolicy p);
int vo_group_policy_from_string(const char *s, VoGroupPolicy *ret);

/* One host as the snapshot sees it. The strv fields are NULL-terminated,
 * sorted (strcmp) and without duplicates: vo_place_strv_sort makes them so,
 * the JSON parser does it itself. */
typedef struct {
    char *id;       /* the host id (UUID) */
    char *name;
    VoHostState state;
    VoAccel accel;  /* VO_ACCEL_KVM or VO_ACCEL_TCG: what the host runs */
    char *cpu_model; /* e.g. "AMD EPYC 7B13" */
    char **cpu_flags;
    char **pools;    /* pools the host reaches */
    uint64_t memory_mib;
    unsigned cpus;
    double mem_ratio; /* memory overcommit: the host gives out memory_mib * mem_ratio */
    double cpu_ratio; /* vCPU overcommit: cpus * cpu_ratio vCPUs */
    uint64_t committed_memory_mib; /* given to the VMs it holds */
    unsigned committed_vcpus;
    double load;      /* current CPU load, 0..1 */
    /* What its VMs can boot ("bios", "uefi", "uefi-secure-boot": the
     * record's "firmware"); NULL: the host does not say (an older vireod). */
    char **firmware;
    /* The networks its VMs' NICs can use (the record's "networks": every
     * network there not in error); NULL: the host does not say (an older
     * vireod: not filtered on, migrate-compat.h has the last word). */
    char **networks;
} VoPlaceHost;

typedef struct {
    VoPlaceHost *hosts;
    size_t n_hosts;
    VoPlacePolicy policy; /* the cluster's: spread (default) or pack */
} VoPlaceSnapshot;

/* Hosts that already hold members of the VM's group: host id and count. */
typedef struct {
    char *host_id;
    unsigned count;
} VoPlaceGroupHost;

typedef struct {
    unsigned vcpus;       /* >= 1 */
    uint64_t memory_mib;  /* >= 1 */
    VoAccel accel;        /* VO_ACCEL_AUTO: any host; KVM: a kvm host; TCG: any host */
    /* CPU: NULL = any. "host" (passthrough): when cpu_host_model is set (the
     * guest has seen a CPU), the host's model and flag set must be exactly
     * cpu_host_model and cpu_flags; when NULL, any host. Any other name: a
     * named model; the host must have every flag of cpu_flags. */
    char *cpu_model;
    char **cpu_flags;     /* sorted strv, may be NULL */
    char *cpu_host_model;
    char **pools;         /* pools holding the VM's disks: all must be reachable */
    char *group;          /* NULL: no group */
    VoGroupPolicy group_policy;
    VoPlaceGroupHost *group_hosts;
    size_t n_group_hosts;
    char *host;           /* pinned host (id or name), or NULL */
    char **exclude;       /* host ids that may not take the VM (a move's source), or NULL */
    const char *firmware; /* vo_place_firmware_needed: the host must list it; NULL: any */
    char **networks;      /* sorted strv of the VM's NICs' networks ("user" left out): the
                           * host must have each (vo_place_networks_ok); NULL: none */
} VoPlaceRequest;

/* The firmware a host must list (its record's "firmware") for a VM of
 * firmware fw: "uefi" or "uefi-secure-boot"; NULL for BIOS (every host). */
const char *vo_place_firmware_needed(VoFirmware fw, bool secure_boot);
/* Whether a host whose record lists firmware (NULL: the host does not say,
 * an older vireod) can boot a VM that needs needed (vo_place_firmware_needed;
 * NULL: every host can). Placement's filter, and the DRS planner's. */
bool vo_place_firmware_ok(char *const *firmware, const char *needed);

/* Whether a host whose record lists networks (sorted; NULL: it does not
 * say) has every network of want (sorted; NULL: none needed).
 * Placement's filter, and the DRS planner's. */
bool vo_place_networks_ok(char *const *networks, char *const *want);
/* Whether a host whose record lists pools (sorted; NULL: it does not say)
 * reaches every pool of want (vo_place_pools_needed; NULL: none). The DRS
 * planner's filter (placement's own is VO_PLACE_POOLS). */
bool vo_place_pools_ok(char *const *pools, char *const *want);
/* The networks of a VM's NICs a host must have, as a request wants them
 * (sorted, no duplicates, without "user", which every host has); NULL:
 * none. */
char **vo_place_networks_needed(const char *const *nic_networks, size_t n);
/* The pools a host must reach to hold a VM that names the volumes and
 * pools of names (each "POOL/NAME" or a bare "POOL"; NULL entries skipped),
 * as a request wants them (sorted, no duplicates), always with
 * default_pool (where a new disk or NVRAM is made unless a pool is named).
 * Every named pool must be reached, a host's own one too: only the hosts
 * that have a pool of that name fit. copied(pool, userdata), when not
 * NULL, says of a pool whose volumes are copied into the target's
 * default_pool instead (a migration's local disk): not asked for. One
 * rule for every placement of a VM: a create, a migration target, an HA
 * restart. */
char **vo_place_pools_needed(const char *const *names, size_t n, const char *default_pool,
                             bool (*copied)(const char *pool, void *userdata), void *userdata);

/* Why a host cannot take the VM. */
typedef enum {
    VO_PLACE_UNCHECKED, /* not looked at (a pinned VM: every other host) */
    VO_PLACE_FITS,      /* it can (chosen or not) */
    VO_PLACE_OFFLINE,
    VO_PLACE_MAINTENANCE,
    VO_PLACE_FENCED,
    VO_PLACE_NO_KVM,            /* the VM needs kvm, the host has tcg */
    VO_PLACE_CPU_MODEL,         /* cpu host: another model */
    VO_PLACE_CPU_FLAGS_MISSING, /* lacks flags the VM needs */
    VO_PLACE_CPU_FLAGS_EXTRA,   /* cpu host: has flags the VM's CPU did not */
    VO_PLACE_POOLS,             /* cannot reach a pool of the VM's disks */
    VO_PLACE_MEMORY,            /* free: MiB free */
    VO_PLACE_VCPUS,             /* free: vCPUs free */
    VO_PLACE_GROUP_TOGETHER,    /* the group lives on another host */
    VO_PLACE_GROUP_SPREAD,      /* here: members here; least: on a fitting host */
    VO_PLACE_EXCLUDED,          /* the request excludes it (the host a VM moves from) */
    VO_PLACE_FIRMWARE,          /* lacks the VM's firmware (no OVMF), or does not say */
    VO_PLACE_NETWORKS,          /* lacks a network of the VM's NICs (or it is in error, or of
                                 * another project, there) */
} VoPlaceWhy;

typedef struct {
    VoPlaceWhy why;
    uint64_t free;
    unsigned here, least;
} VoPlaceVerdict;

typedef struct {
    ssize_t host;   /* index into the snapshot's hosts, or -1: none fits */
    /* n_hosts entries: the verdict on each host. Only codes and numbers:
     * vo_place allocates no text; vo_place_reason and vo_place_reasons_format
     * put them into words when asked (a 409, a log line). */
    VoPlaceVerdict *verdicts;
    size_t n_verdicts;
    ssize_t pinned; /* the pinned host's index, or -1 */
} VoPlaceResult;

/* Places req on snap. 0 with *ret filled (ret->host >= 0, or -1 and a
 * verdict other than FITS on every host, or on the pinned one), or -ENOENT
 * when req->host names no host of the snapshot (*ret empty). Clear *ret
 * after. */
int vo_place(const VoPlaceSnapshot *snap, const VoPlaceRequest *req, VoPlaceResult *ret);

/* Why host i was left out, in words ("needs 8192 MiB, 2048 MiB free (ratio
 * 1.0)"; malloc'd), or NULL when it fits or was not looked at. snap and req
 * are those res came from. */
char *vo_place_reason(const VoPlaceSnapshot *snap, const VoPlaceRequest *req,
                      const VoPlaceResult *res, size_t i);

/* "no host fits: a: offline; b: needs 8192 MiB, 2048 MiB free (ratio 1.0)"
 * (hosts in snapshot order), or for a pinned VM "host a does not fit: ...".
 * malloc'd; meant for a result with host == -1. */
char *vo_place_reasons_format(const VoPlaceSnapshot *snap, const VoPlaceRequest *req,
                              const VoPlaceResult *res);

/* The rules vo_place applies, one at a time, for a caller that wants
 * every reason rather than the first (cluster/migrate-compat.h): the CPU
 * rule (VO_PLACE_FITS or why not), the memory and vCPUs host h has free with
 * its overcommit ratios, and the words for verdict v on h ("lacks CPU
 * flags a,b"; malloc'd, NULL for FITS). */
VoPlaceWhy vo_place_cpu_check(const VoPlaceHost *h, const VoPlaceRequest *req);
uint64_t vo_place_memory_free(const VoPlaceHost *h);
uint64_t vo_place_vcpus_free(const VoPlaceHost *h);
char *vo_place_verdict_text(const VoPlaceHost *h, const VoPlaceRequest *req,
                            const VoPlaceVerdict *v);
/* Every item of the sorted strv want is in the sorted strv have. */
bool vo_place_strv_has_all(char *const *want, char *const *have);

void vo_place_result_clear(VoPlaceResult *res);
void vo_place_host_clear(VoPlaceHost *h);
void vo_place_snapshot_clear(VoPlaceSnapshot *snap);
void vo_place_request_clear(VoPlaceRequest *req);

/* Sorts v in place (strcmp) and drops duplicates. */
void vo_place_strv_sort(char **v);
/* A JSON array's strings as a sorted strv (other items skipped); NULL when
 * arr is not an array (a record that does not say). Lenient: for records
 * read as they are, not for requests (the strict parsers below). */
char **vo_place_strv_of_json(json_t *arr);

/* JSON (placement-json.c). Every parser is strict: unknown keys, wrong types,
 * out-of-range numbers, duplicate flags, pools, host ids or names are
 * refused with -EINVAL and *ret_error (malloc'd) naming what to fix, and
 * *ret left empty. On success the strv fields are sorted. */

/* A host document as vireod publishes it at cluster/hosts/<id>:
 * {"id","name","state","accel","cpu_model","cpu_flags":[..],"pools":[..],
 *  "memory_mib","cpus","mem_ratio","cpu_ratio","committed_memory_mib",
 *  "committed_vcpus","load"} */
int vo_place_host_from_json(json_t *doc, VoPlaceHost *ret, char **ret_error);
json_t *vo_place_host_to_json(const VoPlaceHost *h);

/* {"policy": "spread"|"pack" (default spread), "hosts": [host documents]} */
int vo_place_snapshot_from_json(json_t *doc, VoPlaceSnapshot *ret, char **ret_error);
json_t *vo_place_snapshot_to_json(const VoPlaceSnapshot *snap);

/* {"vcpus", "memory_mib", "accel": "auto"|"kvm"|"tcg" (default auto),
 *  "cpu_model"?, "cpu_flags"?: [..], "cpu_host_model"?, "pools"?: [..],
 *  "group"?: {"name", "policy": "spread"|"together", "hosts": {"<host id>": count}},
 *  "host"?: pinned host id or name, "exclude"?: [host ids]} */
int vo_place_request_from_json(json_t *doc, VoPlaceRequest *ret, char **ret_error);
json_t *vo_place_request_to_json(const VoPlaceRequest *req);
