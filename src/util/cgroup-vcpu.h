/* cgroup-vcpu.h: a VM's CPU limit on its vCPU threads alone, as libvirt
 * does: its QEMU's cgroup gets a child (VO_CGROUP_VCPU_CHILD) holding the
 * vCPU threads and the CPU quota, while QEMU's other threads (main loop,
 * migration, I/O) stay in the parent, which keeps the CPU weight and the
 * memory limit. So a CPU-limited VM still migrates at full speed.
 *
 * The plan (which directory is made, which file gets which value, in order)
 * is pure, for v1 (the cpu hierarchy: `tasks`, cpu.cfs_quota_us) and v2 (the
 * child made threaded: `cgroup.threads`, cpu.max); vo_cgroup_plan_run
 * carries it out. cgroup.c builds the requests from its host's hierarchies. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/cgroup.h"

#define VO_CGROUP_VCPU_CHILD "vcpus"
#define VO_CGROUP_CPU_PERIOD_US 100000

typedef struct {
    char *path;  /* a directory to make (value NULL: an existing one is fine) */
    char *value; /* ...or the text written to the file path */
    bool may_be_refused; /* the kernel's EINVAL is no failure (the step is moot then) */
} VoCgroupStep;

typedef struct {
    VoCgroupStep *steps;
    size_t n;
} VoCgroupPlan;

typedef struct {
    bool v2;
    const char *dir;              /* the VM's cgroup in the cpu hierarchy (v2: the one) */
    bool split;                   /* the vCPU child is (or is being) made: the quota goes
                                   * there and the parent has none; else on the parent */
    const VoCgroupLimits *limits; /* its CPU weight and quota written; NULL: left */
    const pid_t *tids;            /* vCPU threads moved into the child (split only) */
    size_t n_tids;
} VoCgroupCpuRequest;

/* The steps of req in order: with threads, the child made (v2: threaded, the
 * cpu controller on in the parent) and each thread moved; then the weight on
 * the parent and the quota on the child or on the parent alone. With a
 * child, its quota is set before the parent's is lifted, so the vCPU
 * threads are capped at every step (v1 refuses a child's quota above its
 * parent's: the parent first gets the new one). */
void vo_cgroup_cpu_plan(const VoCgroupCpuRequest *req, VoCgroupPlan *ret);
void vo_cgroup_plan_clear(VoCgroupPlan *plan);
/* Carries the plan out, stopping at the first failure: -errno, *ret_path
 * (may be NULL) the path that failed. A thread gone meanwhile (ESRCH: a
 * vCPU unplugged) is no failure, nor a step's refusal it may meet. */
int vo_cgroup_plan_run(const VoCgroupPlan *plan, char **ret_path);
/* One write of value to a cgroup file (the kernel takes it whole or not). */
int vo_cgroup_write_file(const char *path, const char *value);
