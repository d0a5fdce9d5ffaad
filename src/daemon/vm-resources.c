/* vm-resources.c: vCPU and memory hot-plug of a running VM (PATCH
 * /v1/vms/{vm} with vcpus or memory_mib while it runs): checks the request
 * against the VM's maximums and what the running VM can reach, runs the
 * change as a task through the driver, and saves the new values in the
 * definition so a restart boots with them. */
#include "daemon/vm-internal.h"
#include "daemon/vm-job.h"

#include <string.h>

#include "util/util.h"

typedef struct {
    VoVm *vm;
    unsigned vcpus;      /* 0: unchanged */
    uint64_t memory_mib; /* 0: unchanged */
    int64_t if_match;    /* the VM's revision the request named; 0: none */
} ResourcesArgs;

static void resources_args_free(void *p)
{
    ResourcesArgs *a = p;
    vo_vm_unref(a->vm);
    free(a);
}

/* Refuses what the definition's maximums (s, a copy of the VM's) or the
 * running VM (hv) cannot give, naming the limit and what to do. Caller holds
 * the job lock, so hv stays; not vm->lock: QEMU is asked and may be slow. */
static int check_request(VoVm *vm, const VoVmSpec *s, VoHvInstance *hv, unsigned vcpus,
                         uint64_t *memory_mib_p, char **ret_error)
{
    uint64_t memory_mib = *memory_mib_p;
    if (vcpus && vcpus > s->max_vcpus)
        return vo_error_set(ret_error, -EINVAL,
                            "vcpus: VM '%s' can have at most %u vCPUs (max_vcpus) while it runs; "
                            "to allow more, stop it and raise max_vcpus (vireo vm edit %s "
                            "--max-vcpus N)",
                            s->name, s->max_vcpus, s->name);
    if (memory_mib && memory_mib > s->max_memory_mib)
        return vo_error_set(ret_error, -EINVAL,
                            "memory: VM '%s' can have at most %llu MiB (max_memory) while it "
                            "runs; to allow more, stop it and raise max_memory (vireo vm edit %s "
                            "--max-memory SIZE)",
                            s->name, (unsigned long long)s->max_memory_mib, s->name);
    VoHvResources res;
    int r = vm->d->driver->query_resources(hv, true, &res);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot query VM '%s': %s", s->name, strerror(-r));
    if (vcpus && vcpus != res.vcpus && res.min_vcpus == res.max_vcpus)
        return vo_error_set(ret_error, -EBUSY,
                            "vcpus: VM '%s' was started without vCPU hot-plug (max_vcpus equal "
                            "to vcpus); stop it and set max_vcpus (vireo vm edit %s --max-vcpus "
                            "N) to change its vCPUs while it runs",
                            s->name, s->name);
    if (vcpus && vcpus < res.min_vcpus)
        return vo_error_set(ret_error, -EINVAL,
                            "vcpus: VM '%s' started with %u boot vCPUs, which cannot be "
                            "unplugged: it keeps at least %u while it runs (stop it to set fewer)",
                            s->name, res.min_vcpus, res.min_vcpus);
    if (vcpus && vcpus > res.max_vcpus)
        return vo_error_set(ret_error, -EINVAL,
                            "vcpus: VM '%s' can have at most %u vCPUs until it restarts",
                            s->name, res.max_vcpus);
    bool memory_fixed = res.min_memory_mib == res.max_memory_mib;
    if (memory_mib == res.memory_mib && memory_fixed)
        memory_mib = *memory_mib_p = 0; /* nothing to do */
    if (memory_mib && memory_mib != res.memory_mib && memory_fixed)
        return vo_error_set(ret_error, -EBUSY,
                            "memory: VM '%s' was started without memory hot-plug (max_memory "
                            "equal to memory); stop it and set max_memory (vireo vm edit %s "
                            "--max-memory SIZE) to change its memory while it runs",
                            s->name, s->name);
    if (memory_mib && (memory_mib < res.min_memory_mib || memory_mib > res.max_memory_mib))
        return vo_error_set(ret_error, -EINVAL,
                            "memory: VM '%s' can have %llu..%llu MiB until it restarts",
                            s->name, (unsigned long long)res.min_memory_mib,
                            (unsigned long long)res.max_memory_mib);
    /* The new values must make a valid definition (e.g. memory blocks). */
    _cleanup_vm_spec_ VoVmSpec *next = vo_vm_spec_copy(s);
    if (vcpus)
        next->vcpus = vcpus;
    if (memory_mib)
        next->memory_mib = memory_mib;
    return vo_vm_spec_validate(next, &vm->d->limits, ret_error);
}

/* Caller holds vm->lock: records what the VM has now in its definition. */
static void save_values(VoVm *vm, unsigned vcpus, uint64_t memory_mib)
{
    VoVmSpec *next = vo_vm_spec_copy(vm->spec);
    if (vcpus)
        next->vcpus = vcpus;
    if (memory_mib)
        next->memory_mib = memory_mib;
    _cleanup_free_ char *error = NULL;
    if (vo_vm_spec_validate(next, &vm->d->limits, &error) < 0) {
        log_warn("vm %s: not saving vcpus %u / memory %llu MiB: %s", vm->spec->name, vcpus,
                 (unsigned long long)memory_mib, error);
        vo_vm_spec_free(next);
        return;
    }
    VoVmSpec *old = vm->spec;
    vm->spec = next;
    if (vo_vm_save(vm) < 0) {
        vm->spec = old;
        vo_vm_spec_free(next);
        return;
    }
    vo_vm_spec_free(old);
}

static int task_set_resources(VoTask *t, void *userdata)
{
    ResourcesArgs *a = userdata;
    VoVm *vm = a->vm;
    VoHvDriver *drv = vm->d->driver;
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    vo_vm_save_settle_first(vm); /* vm->rev as a save under way leaves it */
    if (a->if_match > 0 && a->if_match != vm->rev) {
        int64_t rev = vm->rev;
        _cleanup_free_ char *changed_name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -VO_EIFMATCH, "VM '%s' changed: it is at revision %lld, not %lld "
                            "(If-Match); nothing was done: read it again", changed_name,
                            (long long)rev, (long long)a->if_match);
    }
    if (vm->state != VO_VM_RUNNING || !vm->hv) {
        VoVmState s = vm->state;
        _cleanup_free_ char *stopped_name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -EBUSY, "VM '%s' is %s (must be running)", stopped_name,
                            vo_vm_state_to_string(s));
    }
    VoHvInstance *hv = vm->hv; /* stays while the job lock is held and the VM runs */
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);

    _cleanup_free_ char *error = NULL;
    int r = 0;
    if (a->vcpus) {
        vo_task_progress(t, 10, "setting vCPUs");
        unsigned now = 0;
        r = drv->set_vcpus(hv, a->vcpus, &now, &error);
        /* What the VM has is saved even after a partial change. */
        pthread_mutex_lock(&vm->lock);
        if (now)
            save_values(vm, now, 0);
        pthread_mutex_unlock(&vm->lock);
        if (r < 0) {
            vo_vm_refresh_live(vm, hv);
            pthread_mutex_unlock(&vm->job);
            return vo_task_fail(t, r, "cannot set VM '%s' to %u vCPUs (it has %u): %s", name,
                                a->vcpus, now, error ? error : strerror(-r));
        }
        log_info("vm %s: %u vCPUs", name, now);
    }
    if (a->memory_mib) {
        vo_task_progress(t, 50, "setting memory");
        uint64_t now = 0;
        r = drv->set_memory(hv, a->memory_mib, &now, &error);
        pthread_mutex_lock(&vm->lock);
        if (r >= 0)
            save_values(vm, 0, a->memory_mib);
        pthread_mutex_unlock(&vm->lock);
        if (r < 0) {
            vo_vm_refresh_live(vm, hv);
            pthread_mutex_unlock(&vm->job);
            return vo_task_fail(t, r, "cannot set VM '%s' to %llu MiB (it has %llu MiB): %s",
                                name, (unsigned long long)a->memory_mib,
                                (unsigned long long)now, error ? error : strerror(-r));
        }
        log_info("vm %s: %llu MiB of memory", name, (unsigned long long)now);
    }
    vo_vm_refresh_live(vm, hv);
    pthread_mutex_unlock(&vm->job);
    return 0;
}

/* Caller holds the job lock: sets the VM's autostart (saved); its old value
 * in *ret_old. */
static int set_autostart(VoVm *vm, bool autostart, bool *ret_old, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    *ret_old = vm->spec->autostart;
    vm->spec->autostart = autostart;
    int r = vo_vm_save(vm);
    if (r < 0) {
        vm->spec->autostart = *ret_old;
        vo_error_set(ret_error, r, "cannot save VM '%s': %s", vm->spec->name, strerror(-r));
    }
    pthread_mutex_unlock(&vm->lock);
    return r;
}

int vo_vm_set_resources(VoDaemon *d, VoVm *vm, unsigned vcpus, uint64_t memory_mib,
                        int autostart, int64_t if_match, json_t **ret_task, char **ret_error)
{
    /* The samplers' moment is waited for, a task is not (daemon/vm-job.h). */
    if (vo_vm_job_wait_brief(vm, VO_VM_JOB_BRIEF_WAIT_MS, "change the vCPUs or memory of",
                             ret_error) < 0)
        return -EBUSY;
    pthread_mutex_lock(&vm->lock);
    vo_vm_save_settle_first(vm); /* vm->rev as a save under way leaves it */
    int r = 0;
    if (if_match > 0 && if_match != vm->rev)
        r = vo_error_set(ret_error, -VO_EIFMATCH, "VM '%s' changed: it is at revision %lld, not "
                         "%lld (If-Match); read it again", vm->spec->name, (long long)vm->rev,
                         (long long)if_match);
    else if (vm->problem)
        r = vo_error_set(ret_error, -EBUSY, "cannot change the vCPUs or memory of VM '%s': %s",
                         vm->spec->name, vm->problem);
    else if (vm->provisioning || vm->state != VO_VM_RUNNING || !vm->hv)
        r = vo_error_set(ret_error, -EBUSY,
                         "cannot change the vCPUs or memory of VM '%s' while it is %s: it must be "
                         "running (or stopped)",
                         vm->spec->name, vm->provisioning ? "being created"
                                                          : vo_vm_state_to_string(vm->state));
    else if (!d->driver->query_resources)
        r = vo_error_set(ret_error, -EOPNOTSUPP, "the %s driver cannot hot-plug vCPUs or memory",
                         d->driver->name);
    VoHvInstance *hv = vm->hv;
    _cleanup_vm_spec_ VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    if (r >= 0)
        r = check_request(vm, spec, hv, vcpus, &memory_mib, ret_error);
    /* autostart now, under the job lock the task cannot take before we let
     * go of it (later, a task could hold the VM and it would be dropped);
     * undone when the task is refused. */
    bool old_autostart = false;
    if (r >= 0 && autostart >= 0)
        r = set_autostart(vm, autostart, &old_autostart, ret_error);
    if (r >= 0) {
        ResourcesArgs *a = vo_malloc0(sizeof(*a));
        *a = (ResourcesArgs){ .vm = vo_vm_ref(vm), .vcpus = vcpus, .memory_mib = memory_mib };
        /* The task compares again (autostart's save, under the job lock
         * held since the compare above, moved the revision on). */
        a->if_match = if_match > 0 && autostart >= 0 ? vo_vm_rev(vm) : if_match;
        r = vo_vm_submit(d, vm, "set-resources", task_set_resources, a, resources_args_free,
                         ret_task, ret_error);
        _cleanup_free_ char *ignored = NULL;
        if (r < 0 && autostart >= 0 && old_autostart != autostart)
            (void)set_autostart(vm, old_autostart, &(bool){ false }, &ignored);
    }
    vo_vm_job_end_brief(vm);
    return r;
}

void vo_vm_refresh_live(VoVm *vm, VoHvInstance *hv)
{
    VoHvDriver *drv = vm->d->driver;
    VoHvResources res;
    bool known = hv && drv->query_resources && drv->query_resources(hv, true, &res) >= 0;
    pthread_mutex_lock(&vm->lock);
    if (vm->hv == hv) {
        vm->live_known = known;
        if (known)
            vm->live = res;
    }
    pthread_mutex_unlock(&vm->lock);
}

/* From what the last task saw: never waits on QEMU (a stuck one would stall
 * every reader of the VM). */
void vo_vm_add_live_resources(VoVm *vm, json_t *doc)
{
    pthread_mutex_lock(&vm->lock);
    if ((vm->state == VO_VM_RUNNING || vm->state == VO_VM_PAUSED) && vm->hv && vm->live_known) {
        json_object_set_new(doc, "vcpus_plugged", json_integer(vm->live.vcpus));
        json_object_set_new(doc, "memory_actual_mib",
                            json_integer((json_int_t)vm->live.memory_mib));
    }
    pthread_mutex_unlock(&vm->lock);
}
