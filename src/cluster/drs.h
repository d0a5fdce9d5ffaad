/* drs.h: the DRS planner (issue 13, balancing): how uneven the hosts' load
 * is, and which single live migration evens it out best, per cost. Pure C:
 * no I/O, no store, no threads, no clock (the caller passes the time). The
 * manager's loop (src/daemon/drs.c) builds the input from the hosts' records
 * and calls vo_drs_round every VO_DRS_ROUND_MS; bench/drs-sim runs it over a
 * simulated day. How it decides: docs/drs.md, "How it decides". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/placement.h" /* VoGroupPolicy */

typedef enum { VO_DRS_OFF, VO_DRS_MANUAL, VO_DRS_AUTO } VoDrsMode;
int vo_drs_mode_from_string(const char *s, VoDrsMode *ret);   /* -EINVAL */
const char *vo_drs_mode_to_string(VoDrsMode m);

#define VO_DRS_LEVEL_MIN 1      /* conservative: only large imbalances */
#define VO_DRS_LEVEL_MAX 5      /* aggressive */
#define VO_DRS_LEVEL_DEFAULT 3
#define VO_DRS_ROUNDS 3         /* consecutive rounds above the threshold */
#define VO_DRS_COOLDOWN_MS (10 * 60 * 1000) /* per VM, after it moved */
#define VO_DRS_ROUND_MS 5000    /* the manager's round */

/* The cost model (vo_drs_move_cost): a migration's fixed work in seconds
 * (setup, switch-over), and the bandwidth its memory copy is assumed to get. */
#define VO_DRS_MOVE_OVERHEAD_S 2.0
#define VO_DRS_BANDWIDTH_MIB_S 1000.0

typedef struct { VoDrsMode mode; int level; } VoDrsSettings;
double vo_drs_threshold(int level); /* the imbalance above which a move is sought */
/* The least a move must take off the hosts' summed squared deviation
 * (threshold^2; docs/drs.md): smaller moves are not worth a migration. */
double vo_drs_min_gain(int level);

typedef struct {
    const char *id, *name;
    double cpus;                /* the host's CPUs (record "cpus") */
    uint64_t memory_mib;        /* record "memory_mib" */
    uint64_t free_memory_mib;   /* room placement allows (ratio x memory - committed) */
    double free_vcpus;          /* likewise for vCPUs */
    bool can_receive;           /* online, not maintenance, not fenced */
    char *const *firmware;      /* what its VMs can boot (record "firmware"); NULL: it does
                                 * not say (vo_place_firmware_ok) */
    char *const *networks;      /* sorted (record "networks"); NULL: it does not say
                                 * (vo_place_networks_ok) */
    char *const *pools;         /* sorted (record "pools"): what it reaches; NULL: it
                                 * does not say (vo_place_pools_ok) */
} VoDrsHost;

/* A VM's cumulative CPU counters as its driver reads them (VoHvLoad): the
 * CPU time its process used and the time its threads were runnable but
 * waited for a CPU. */
typedef struct {
    uint64_t cpu_ns, wait_ns;
} VoDrsCpuCounters;

/* A VM's CPU over a sample between two readings ms apart: *ret_used, the
 * cores it used; *ret_demand, the cores it wanted: (used + waited) / wall,
 * capped at its vcpus and at its cpu_limit (cores) when these are > 0, and
 * never below what it used (docs/drs.md, "What is sampled"). False, both
 * 0, when the readings make no sample: ms <= 0 or a counter went back (a
 * new process: a restart, a migration's destination). */
bool vo_drs_cpu_sample(const VoDrsCpuCounters *before, const VoDrsCpuCounters *now, int64_t ms,
                       unsigned vcpus, double cpu_limit, double *ret_used, double *ret_demand);

typedef struct {
    const char *id, *name;
    size_t host;                /* index into hosts */
    double cpu;                 /* cores it demands (vo_drs_cpu_sample), the last sample */
    uint64_t mem_used_mib;      /* its memory measure, what load (and cost) count: the
                                 * guest's use (balloon statistics) else RSS else the
                                 * configured size (docs/drs.md, "What is sampled") */
    const char *mem_source;     /* where mem_used_mib came from ("guest", "balloon",
                                 * "rss", "configured"; shown, never weighed) */
    uint64_t rss_mib;           /* its QEMU's resident memory, what a move copies
                                 * (cost: the larger of the two); 0 unknown */
    uint64_t memory_mib;        /* configured (fit on the target) */
    unsigned vcpus;             /* configured (fit on the target) */
    double dirty_mib_s;         /* last known dirty rate; 0 unknown */
    const char *firmware;       /* vo_place_firmware_needed: a target must list it; NULL: any */
    char *const *networks;      /* vo_place_networks_needed: a target must have each; NULL: none */
    char *const *pools;         /* vo_place_pools_needed (as a migration asks): a target
                                 * must reach each; NULL: none */
    const char *project;        /* the VM's (NULL: "default"): a target's own network of
                                 * another project is not one of its (network_owners) */
    const char *group;          /* placement group or NULL */
    VoGroupPolicy group_policy; /* cluster/placement.h */
    bool movable;               /* running, live-migratable, not being recovered/moved */
    int64_t last_moved_ms;      /* 0: never (monotonic or wall: same clock as now_ms) */
    int64_t retry_after_ms;     /* 0: none; else a failed move's backoff ends then (same clock) */
} VoDrsVm;

typedef struct {
    size_t n_hosts;
    const VoDrsHost *hosts;
    size_t n_vms;
    const VoDrsVm *vms;
    /* The networks' projects (cluster/place-network-projects.h); NULL: none
     * known (not filtered on). */
    const json_t *network_owners;
} VoDrsInput;
typedef struct {
    size_t vm, from, to;        /* indexes */
    double imbalance_before, imbalance_after;
    double cost;                /* seconds of migration work estimated (memory, dirty rate) */
    double score;               /* improvement per cost */
} VoDrsMove;
/* The planner's memory between rounds. rounds_above counts the rounds in a
 * row above the threshold in which a move off one host, `from` (its id),
 * improves it, counted from the round that host's move was the best (NULL:
 * rounds in which no move improves it): a spike on one host followed by one
 * on another, or a stretch where no move helps, does not count toward a
 * move, and the move made is one off `from`. The host only, not the VM or
 * the target, and not "the best" each round: among like VMs, like hosts,
 * or several loaded hosts the best one changes from round to round. */
typedef struct {
    int rounds_above;
    char *from;            /* malloc'd; vo_drs_state_clear */
    double last_imbalance;
} VoDrsState;
/* Frees from and zeroes *st (a new start: no rounds counted). */
void vo_drs_state_clear(VoDrsState *st);

/* The cluster's imbalance: 0 = even. Host load is the sum of its VMs' cpu
 * divided by its cpus (NOT /proc/stat: test hosts share one machine), and
 * memory used / memory; the imbalance combines both: the root mean square
 * distance of the hosts' (cpu load, memory load) points from their mean
 * point, i.e. sqrt(var(cpu load) + var(memory load)) over the hosts that
 * count (those that can receive or hold a VM). 0 for fewer than 2 hosts
 * that count, and for bad input (vo_drs_round says what is wrong). */
double vo_drs_imbalance(const VoDrsInput *in);

/* One host's loads as vo_drs_imbalance sees them (cores used / cpus, MiB
 * used / memory_mib); 0 and 0 for a host index out of range. */
void vo_drs_host_load(const VoDrsInput *in, size_t host, double *ret_cpu, double *ret_mem);

/* The estimated seconds of migration work for vm: VO_DRS_MOVE_OVERHEAD_S
 * plus the memory a move copies (its RSS or its measure, the larger,
 * capped at memory_mib) at VO_DRS_BANDWIDTH_MIB_S,
 * inflated by the pre-copy rounds its dirty rate costs (1 / (1 - dirty /
 * bandwidth), at most 5x). */
double vo_drs_move_cost(const VoDrsVm *vm);

/* How long a VM whose DRS move failed for the failures-th time in a row
 * waits before the planner proposes it again: VO_DRS_RETRY_FIRST_MS,
 * doubling with each failure, at most VO_DRS_RETRY_MAX_MS. */
#define VO_DRS_RETRY_FIRST_MS (60 * 1000)
#define VO_DRS_RETRY_MAX_MS (30 * 60 * 1000)
int64_t vo_drs_backoff_ms(int64_t failures);

/* One round (the manager calls it every VO_DRS_ROUND_MS): updates st and
 * returns 1 with *ret when a move is recommended (the imbalance stayed above
 * the threshold VO_DRS_ROUNDS rounds in which a move off the same host
 * improved it by a real margin: VoDrsState), 0 when none (*ret_why, may
 * be NULL: malloc'd reason text such as "imbalance 0.08 below threshold
 * 0.15" or "no move improves it"), -errno
 * on bad input. Never a VM in cooldown (after its last move, or backing
 * off after a failed one: retry_after_ms), not movable, or onto a host that
 * cannot receive it, lacks room or cannot boot its firmware (a UEFI VM
 * only where OVMF is: vo_place_firmware_ok, as placement); groups hold (a "together" group's VM is
 * not moved alone; a "spread" group never gets two VMs on one host).
 *
 * Added to the contract: on -EINVAL *ret_why (when not NULL) says what is
 * wrong with the input; when a move is returned st->rounds_above starts
 * again at 0 (the next move needs VO_DRS_ROUNDS rounds of samples taken
 * after this one); with mode off st->rounds_above stays 0. A move also
 * passes the ping-pong rule: the target's (cpu, memory) load point after
 * the move is no farther from the mean point than the source's was before. */
int vo_drs_round(VoDrsState *st, const VoDrsInput *in, const VoDrsSettings *s,
                 int64_t now_ms, VoDrsMove *ret, char **ret_why);
