/* qemu-cgroup.h: each QEMU in its own cgroup under the driver's (util/cgroup.h):
 * the VM's CPU weight and limit, and a memory limit of its guest memory plus
 * QEMU's overhead, so a runaway QEMU cannot take the host's memory
 * (docs/security.md). Its vCPU threads are in a child of it, which holds
 * the CPU limit (util/cgroup-vcpu.h). */
#pragma once

#include "conf/vm-spec.h"
#include "qemu/qemu-instance.h"
#include "util/cgroup.h"

/* QEMU's memory beyond the guest's: 256 MiB, 1/16 of the guest's memory, and
 * under TCG the 1 GiB its translated-code cache may grow to (QEMU 10's
 * default tb-size). */
#define VO_QEMU_OVERHEAD_MIB 256
#define VO_QEMU_OVERHEAD_DIVISOR 16
#define VO_QEMU_TCG_CACHE_MIB 1024

/* The limits of a VM's cgroup: its spec's CPU weight and limit, and
 * max_memory_mib (what hot-plug may reach) + the overhead. Pure. */
void vo_qemu_cgroup_limits(const VoVmSpec *spec, VoAccel accel, VoCgroupLimits *ret);

/* Before QEMU starts: its cgroup (named after the VM's id) made with its
 * limits; *ret_procs for the child to join (NULL when the driver has no
 * cgroups). 0, or -errno with *ret_error. */
int vo_qemu_cgroup_prepare(VoHvInstance *vm, const VoVmSpec *spec, char ***ret_procs,
                           char **ret_error);
/* A re-attached QEMU's cgroup, found again (vm->cgroup set when it exists). */
void vo_qemu_cgroup_refind(VoHvInstance *vm, const VoVmSpec *spec);
/* After QEMU started (or a vCPU was hot-plugged): its vCPU threads (from
 * query-cpus-fast) moved into their child cgroup, which takes the CPU limit
 * from spec (NULL: limits left), so QEMU's other threads are not capped
 * (util/cgroup-vcpu.h). Nothing without a cgroup. Caller holds qmp_lock. */
int vo_qemu_cgroup_place_vcpus(VoHvInstance *vm, const VoVmSpec *spec, char **ret_error);
/* The same, a failure logged: the CPU limit then stays on the whole QEMU. */
void vo_qemu_cgroup_place_vcpus_or_warn(VoHvInstance *vm, const VoVmSpec *spec);
/* The driver's op: a running VM's limits set from spec again (cpu_weight,
 * cpu_limit changed live); a QEMU whose vCPU threads share its cgroup (one
 * started before they had their own) has them moved first. -ENODEV when it
 * has no cgroup. */
int vo_qemu_cgroup_update(VoHvInstance *vm, const VoVmSpec *spec, char **ret_error);
/* After QEMU exited: its cgroup goes (nothing while it still has a process). */
void vo_qemu_cgroup_release(VoHvInstance *vm);
