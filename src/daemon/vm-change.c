/* vm-change.c: the rule every change of a VM's disks or NICs follows: take
 * the VM's job lock, then either edit the definition of a stopped VM or
 * hot-plug into a running one; the new definition replaces the old (and is
 * saved) only once the change took effect, but for a disk added to a
 * running VM: saved before QEMU plugs it, and saved again without it when
 * the plug fails (vm-disks.c, task_disk_add). */
#include "daemon/vm-internal.h"
#include "util/util.h"
#include "vireo/errors.h"

int vo_vm_check_if_match(VoTask *t, VoVm *vm)
{
    int64_t want = vo_task_if_match(t);
    vo_vm_save_settle_first(vm); /* vm->rev as a save under way leaves it */
    if (want <= 0 || want == vm->rev)
        return 0;
    int64_t rev = vm->rev;
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    pthread_mutex_unlock(&vm->job);
    return vo_task_fail(t, -VO_EIFMATCH, "VM '%s' changed: it is at revision %lld, not %lld "
                        "(If-Match); nothing was done: read it again", name, (long long)rev,
                        (long long)want);
}

int vo_vm_lock_for_change(VoTask *t, VoVm *vm, const char *verb, VoHvInstance **ret_hv,
                          VoVmSpec **ret_next)
{
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    if (vo_vm_check_if_match(t, vm) < 0)
        return -VO_EIFMATCH;
    VoVmState s = vm->state;
    bool running = s == VO_VM_RUNNING && vm->hv;
    if (vo_vm_state_active(s) && !running) {
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -EBUSY, "cannot %s VM '%s' while it is %s: %s", verb, name,
                            vo_vm_state_to_string(s),
                            s == VO_VM_PAUSED ? "resume it first" : "wait until it runs or stops");
    }
    *ret_hv = running ? vm->hv : NULL;
    *ret_next = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

int vo_vm_commit_spec(VoVm *vm, VoVmSpec *next)
{
    return vo_vm_commit_spec_claimed(vm, next, NULL);
}

int vo_vm_commit_spec_claimed(VoVm *vm, VoVmSpec *next, const VoMacClaims *mac_claims)
{
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *old = vm->spec;
    vm->spec = next;
    vm->mac_claims = mac_claims;
    int r = vo_vm_save(vm);
    vm->mac_claims = NULL;
    if (r < 0) {
        vm->spec = old;
        vo_vm_spec_free(next);
    } else {
        vo_vm_spec_free(old);
    }
    pthread_mutex_unlock(&vm->lock);
    return r;
}
