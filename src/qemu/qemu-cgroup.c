/* qemu-cgroup.c: a QEMU's own cgroup, its limits from the VM's spec, made
 * before the start, found again after a vireod restart, removed after the
 * exit (see qemu-cgroup.h). */
#include "qemu/qemu-cgroup.h"

#include <string.h>

#include "util/util.h"

void vo_qemu_cgroup_limits(const VoVmSpec *spec, VoAccel accel, VoCgroupLimits *ret)
{
    uint64_t guest = spec->max_memory_mib > spec->memory_mib ? spec->max_memory_mib
                                                             : spec->memory_mib;
    uint64_t mib = guest + VO_QEMU_OVERHEAD_MIB + guest / VO_QEMU_OVERHEAD_DIVISOR +
                   (accel == VO_ACCEL_TCG ? VO_QEMU_TCG_CACHE_MIB : 0);
    *ret = (VoCgroupLimits){ .cpu_weight = spec->cpu_weight, .cpu_limit = spec->cpu_limit,
                             .memory_max = mib << 20 };
}

int vo_qemu_cgroup_prepare(VoHvInstance *vm, const VoVmSpec *spec, char ***ret_procs,
                           char **ret_error)
{
    *ret_procs = NULL;
    const VoCgroupHost *host = vm->driver->cgroups;
    if (!host)
        return 0;
    VoCgroupLimits limits;
    vo_qemu_cgroup_limits(spec, vm->accel, &limits);
    int r = vo_cgroup_make(host, spec->id, &limits, ret_procs);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot make the cgroup %s/%s of its QEMU: %s",
                            vo_cgroup_host_dir(host), spec->id, strerror(-r));
    vm->cgroup = vo_strdup(spec->id);
    return 0;
}

void vo_qemu_cgroup_refind(VoHvInstance *vm, const VoVmSpec *spec)
{
    const VoCgroupHost *host = vm->driver->cgroups;
    if (host && vo_cgroup_exists(host, spec->id))
        vm->cgroup = vo_strdup(spec->id);
}

int vo_qemu_cgroup_update(VoHvInstance *vm, const VoVmSpec *spec, char **ret_error)
{
    const VoCgroupHost *host = vm->driver->cgroups;
    if (!host || !vm->cgroup)
        return vo_error_set(ret_error, -ENODEV, "its QEMU has no cgroup (%s)",
                            host ? "started without one" : "the host offers none");
    VoCgroupLimits limits;
    vo_qemu_cgroup_limits(spec, vm->accel, &limits);
    int r = vo_cgroup_set_limits(host, vm->cgroup, &limits);
    return r < 0 ? vo_error_set(ret_error, r, "cannot set the limits of cgroup %s/%s: %s",
                                vo_cgroup_host_dir(host), vm->cgroup, strerror(-r))
                 : 0;
}

void vo_qemu_cgroup_release(VoHvInstance *vm)
{
    if (vm->driver->cgroups && vm->cgroup)
        vo_cgroup_remove(vm->driver->cgroups, vm->cgroup);
}
