/* cgroup.h: per-process cgroups for vireod's children (one QEMU each), under
 * one directory of vireo's: cgroup v2 when the host's unified hierarchy
 * offers the cpu and memory controllers, else v1's cpu, cpuacct and memory
 * hierarchies (hybrid hosts). Limits: a CPU weight, an optional CPU limit
 * and a memory limit; stats: CPU time used and memory charged. The vCPU
 * threads' own child, which holds the CPU limit, is cgroup-vcpu.h's. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct VoCgroupHost VoCgroupHost;

/* Finds the hierarchies and makes base (relative to each hierarchy's root,
 * e.g. "vireo") with the controllers on. -ENODEV (-errno) with a reason in
 * *ret_reason when the host offers no usable cgroups. */
int vo_cgroup_host_open(const char *base, VoCgroupHost **ret, char **ret_reason);
VoCgroupHost *vo_cgroup_host_free(VoCgroupHost *h);
/* "v2" or "v1", and the directory of base (v2: the one; v1: the memory one). */
const char *vo_cgroup_host_version(const VoCgroupHost *h);
const char *vo_cgroup_host_dir(const VoCgroupHost *h);

typedef struct {
    unsigned cpu_weight;   /* 1..10000 (v2's scale; 100 is the default), 0: default */
    double cpu_limit;      /* cores (0.01 and up), 0: none */
    uint64_t memory_max;   /* bytes, 0: none */
} VoCgroupLimits;

/* Makes base/name (a name without '/') in every hierarchy and sets limits.
 * *ret_procs: a strv of the cgroup.procs files a child joins (before exec:
 * writes "0" to each). */
int vo_cgroup_make(const VoCgroupHost *h, const char *name, const VoCgroupLimits *limits,
                   char ***ret_procs);
/* Sets the limits of an existing base/name (a running QEMU's): the CPU
 * quota on its vCPU threads' child when it has one (cgroup-vcpu.h), else on
 * the whole. */
int vo_cgroup_set_limits(const VoCgroupHost *h, const char *name, const VoCgroupLimits *limits);
/* Moves the vCPU threads tids of base/name's process into its child for
 * them (made when missing) and, unless limits is NULL, its CPU limits there
 * (cgroup-vcpu.h). Again with the same threads is harmless (a hot-plugged
 * vCPU joins so). On failure a child it made is undone (the threads back in
 * base/name, which has the limits): -errno with *ret_error. */
int vo_cgroup_place_vcpus(const VoCgroupHost *h, const char *name, const VoCgroupLimits *limits,
                          const pid_t *tids, size_t n_tids, char **ret_error);
/* Whether base/name has its vCPU threads' child. */
bool vo_cgroup_vcpus_split(const VoCgroupHost *h, const char *name);
/* Whether base/name exists (vireod re-finds a running VM's after a restart). */
bool vo_cgroup_exists(const VoCgroupHost *h, const char *name);
/* Removes base/name (empty once its process exited); errors ignored. */
void vo_cgroup_remove(const VoCgroupHost *h, const char *name);

typedef struct {
    uint64_t cpu_usec;        /* CPU time used by its processes */
    uint64_t memory_bytes;    /* memory charged to it now */
    uint64_t memory_max;      /* its limit, 0: none */
    unsigned cpu_weight;      /* v2 scale */
    double cpu_limit;         /* cores, 0: none */
} VoCgroupStats;
int vo_cgroup_stats(const VoCgroupHost *h, const char *name, VoCgroupStats *ret);

/* In a forked child before exec: joins the cgroups (procs from
 * vo_cgroup_make). Async-signal-safe. -1 with errno on failure. */
int vo_cgroup_join(char *const *procs);
