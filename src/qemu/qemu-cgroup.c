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

/* The thread ids of the VM's vCPUs (query-cpus-fast). Caller holds qmp_lock. */
static int vcpu_threads(VoHvInstance *vm, pid_t **ret, size_t *ret_n, char **ret_error)
{
    json_t *cpus = NULL;
    int r = vo_qemu_command(vm, "query-cpus-fast", NULL, &cpus, ret_error);
    if (r < 0)
        return r;
    size_t n = json_array_size(cpus), i;
    pid_t *tids = vo_malloc0((n ? n : 1) * sizeof(*tids));
    size_t k = 0;
    json_t *cpu;
    json_array_foreach(cpus, i, cpu) {
        json_int_t tid = json_integer_value(json_object_get(cpu, "thread-id"));
        if (tid > 0)
            tids[k++] = (pid_t)tid;
    }
    json_decref(cpus);
    *ret = tids;
    *ret_n = k;
    return 0;
}

int vo_qemu_cgroup_place_vcpus(VoHvInstance *vm, const VoVmSpec *spec, char **ret_error)
{
    const VoCgroupHost *host = vm->driver->cgroups;
    if (!host || !vm->cgroup)
        return 0;
    _cleanup_free_ pid_t *tids = NULL;
    size_t n = 0;
    int r = vcpu_threads(vm, &tids, &n, ret_error);
    if (r < 0)
        return r;
    VoCgroupLimits limits;
    if (spec)
        vo_qemu_cgroup_limits(spec, vm->accel, &limits);
    return vo_cgroup_place_vcpus(host, vm->cgroup, spec ? &limits : NULL, tids, n, ret_error);
}

void vo_qemu_cgroup_place_vcpus_or_warn(VoHvInstance *vm, const VoVmSpec *spec)
{
    if (!vm->driver->cgroups || !vm->cgroup)
        return;
    _cleanup_free_ char *error = NULL;
    if (vo_qemu_cgroup_place_vcpus(vm, spec, &error) < 0)
        log_warn("QEMU %d: its vCPU threads stay in its cgroup %s, whose CPU limit caps all "
                 "its threads: %s", (int)vm->pid, vm->cgroup, error);
}

int vo_qemu_cgroup_update(VoHvInstance *vm, const VoVmSpec *spec, char **ret_error)
{
    const VoCgroupHost *host = vm->driver->cgroups;
    if (!host || !vm->cgroup)
        return vo_error_set(ret_error, -ENODEV, "its QEMU has no cgroup (%s)",
                            host ? "started without one" : "the host offers none");
    /* A QEMU started before vCPU threads had a child (an older vireod, or a
     * failed placement): they move there now, with the limits. */
    if (!vo_cgroup_vcpus_split(host, vm->cgroup)) {
        pthread_mutex_lock(&vm->qmp_lock);
        vo_qemu_cgroup_place_vcpus_or_warn(vm, spec);
        pthread_mutex_unlock(&vm->qmp_lock);
    }
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
