/* vm-edit.c: a change of a VM's definition (vo_vm_edit, PATCH
 * /v1/vms/{vm}; part of the VM service, vms.c): rename, CPUs, memory,
 * boot, autostart, HA and the like, checked and saved. */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/vm-internal.h"
#include "daemon/vm-job.h"

#include <string.h>

#include "daemon/fence.h"
#include "daemon/storage.h"
#include "state/keys.h"

int vo_vm_edit(VoDaemon *d, VoVm *vm, const VoVmEdit *edit, char **ret_error)
{
    if (edit->ha == 1) { /* read without the VM's locks: storage's lock comes first */
        pthread_mutex_lock(&vm->lock);
        _cleanup_vm_spec_ VoVmSpec *now = vo_vm_spec_copy(vm->spec);
        pthread_mutex_unlock(&vm->lock);
        int r = vo_vm_ha_check_disks(d, now, ret_error);
        if (r < 0)
            return r;
    }
    /* Switched on while it runs: only under a confirmed lease (checked
     * again once its QEMU is on the kill list, below). */
    if (edit->ha == 1 && d->cluster) {
        int64_t ha_lease = 0;
        pthread_mutex_lock(&vm->lock);
        bool active = vo_vm_state_active(vm->state);
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        int r = active ? vo_fence_ha_lease_wait(d, name, 0, &ha_lease, ret_error) : 0;
        if (r < 0)
            return r;
    }
    /* Firmware: the new NVRAM is made before the locks (storage's lock comes
     * first) and removed again when the edit is refused. */
    VoFirmware firmware = VO_FIRMWARE_BIOS;
    if (edit->firmware && vo_firmware_from_string(edit->firmware, &firmware) < 0)
        return vo_error_set(ret_error, -EINVAL, "firmware: '%s' is not one of bios, uefi",
                            edit->firmware);
    VoDisplay display = VO_DISPLAY_NONE;
    if (edit->display && vo_display_from_string(edit->display, &display) < 0)
        return vo_error_set(ret_error, -EINVAL, "display: '%s' is not one of vga, virtio, none",
                            edit->display);
    _cleanup_free_ char *new_nvram = NULL, *old_nvram = NULL;
    if (edit->firmware || edit->secure_boot_set) {
        pthread_mutex_lock(&vm->lock);
        _cleanup_vm_spec_ VoVmSpec *want = vo_vm_spec_copy(vm->spec);
        bool active = vo_vm_state_active(vm->state) || vm->provisioning;
        pthread_mutex_unlock(&vm->lock);
        if (active)
            return vo_error_set(ret_error, -EBUSY, "VM '%s' is running: stop it before "
                                "changing its firmware", want->name);
        bool was_secure = want->secure_boot;
        if (edit->firmware)
            want->firmware = firmware;
        if (edit->secure_boot_set)
            want->secure_boot = edit->secure_boot;
        else if (want->firmware != VO_FIRMWARE_UEFI)
            want->secure_boot = false;
        free(TAKE_PTR(want->nvram));
        int r = vo_vm_spec_validate(want, &d->limits, ret_error);
        if (r >= 0)
            r = vo_vm_firmware_check(d, want, ret_error);
        /* A new NVRAM when there is none, or for a switch of secure boot
         * (other keys enrolled). */
        pthread_mutex_lock(&vm->lock);
        bool has_nvram = vm->spec->nvram != NULL;
        pthread_mutex_unlock(&vm->lock);
        if (r >= 0 && want->firmware == VO_FIRMWARE_UEFI &&
            (!has_nvram || was_secure != want->secure_boot))
            r = vo_vm_nvram_create(d, want, NULL, &new_nvram, ret_error);
        if (r < 0)
            return r;
    }
    /* The samplers' moment is waited for, a task is not (daemon/vm-job.h). */
    if (vo_vm_job_wait_brief(vm, VO_VM_JOB_BRIEF_WAIT_MS, "change", ret_error) < 0) {
        if (new_nvram) {
            _cleanup_free_ char *ignored = NULL;
            (void)vo_volume_remove_now(d, new_nvram, &ignored);
        }
        return -EBUSY;
    }
    if (edit->ha == 1) {
        /* The CD-ROM again, under the job: an insert (a task holding it)
         * may have ended since the check above, and none runs now. */
        pthread_mutex_lock(&vm->lock);
        _cleanup_free_ char *iso = vo_strdup(vm->spec->cdrom);
        _cleanup_free_ char *vm_name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        int c = vo_vm_ha_check_cdrom(d, vm_name, iso, ret_error);
        if (c < 0) {
            vo_vm_job_end_brief(vm);
            if (new_nvram) {
                _cleanup_free_ char *ignored = NULL;
                (void)vo_volume_remove_now(d, new_nvram, &ignored);
            }
            return c;
        }
    }
    /* A running QEMU's cgroup follows the saved CPU weight/limit, after
     * the locks: it may ask QEMU (its vCPU threads, qemu-cgroup.h), and a
     * stuck one must not stall every reader. The job lock keeps hv. */
    VoHvInstance *cgroup_hv = NULL;
    _cleanup_vm_spec_ VoVmSpec *cgroup_spec = NULL;
    pthread_mutex_lock(&d->vms_lock); /* a rename must not race another */
    pthread_mutex_lock(&vm->lock);
    int r = 0;
    bool offline_change = edit->name || edit->vcpus || edit->memory_mib || edit->max_vcpus ||
                          edit->max_memory_mib || edit->firmware || edit->secure_boot_set ||
                          edit->display;
    /* If-Match, compared under the lock the save below holds: atomic. */
    vo_vm_save_settle_first(vm); /* vm->rev as a save under way leaves it */
    if (edit->if_match > 0 && edit->if_match != vm->rev) {
        *ret_error = vo_asprintf("the VM changed: it is at revision %lld, not %lld (If-Match); "
                                 "read it again", (long long)vm->rev, (long long)edit->if_match);
        r = -VO_EIFMATCH;
        goto out;
    }
    if (vm->problem) {
        *ret_error = vo_asprintf("cannot change VM '%s': %s", vm->spec->name, vm->problem);
        r = -EBUSY;
        goto out;
    }
    if (vm->provisioning || (offline_change && vo_vm_state_active(vm->state))) {
        *ret_error = vo_asprintf("VM '%s' is %s: stop it before changing name, max_vcpus, "
                                 "max_memory or display",
                                 vm->spec->name, vm->provisioning ? "being created"
                                                                   : vo_vm_state_names[vm->state]);
        r = -EBUSY;
        goto out;
    }
    VoVmSpec *next = vo_vm_spec_copy(vm->spec);
    if (edit->name) {
        free(next->name);
        next->name = vo_strdup(edit->name);
    }
    if (edit->vcpus)
        next->vcpus = edit->vcpus;
    if (edit->memory_mib)
        next->memory_mib = edit->memory_mib;
    /* A stopped VM's size has no maximum: the maximum (what it may reach
     * while running) follows a value raised beyond it, unless it is given. */
    if (edit->max_vcpus)
        next->max_vcpus = edit->max_vcpus;
    else if (next->max_vcpus < next->vcpus)
        next->max_vcpus = next->vcpus;
    if (edit->max_memory_mib)
        next->max_memory_mib = edit->max_memory_mib;
    else if (next->max_memory_mib < next->memory_mib)
        next->max_memory_mib = next->memory_mib;
    if (edit->autostart >= 0)
        next->autostart = edit->autostart;
    if (edit->ha >= 0)
        next->ha = edit->ha;
    if (edit->ha_priority_set)
        next->ha_priority = edit->ha_priority;
    if (edit->ha_group) {
        free(next->ha_group);
        next->ha_group = *edit->ha_group ? vo_strdup(edit->ha_group) : NULL;
    }
    if (edit->firmware)
        next->firmware = firmware;
    if (edit->display)
        next->display = display;
    if (edit->project) {
        free(next->project);
        next->project = strcmp(edit->project, "default") ? vo_strdup(edit->project) : NULL;
    }
    if (edit->cpu_weight_set)
        next->cpu_weight = edit->cpu_weight;
    if (edit->cpu_limit_set)
        next->cpu_limit = edit->cpu_limit;
    if (edit->boot_set) { /* a running QEMU keeps its order until it ends */
        memcpy(next->boot, edit->boot, sizeof(VoBootDev) * edit->n_boot);
        next->n_boot = edit->n_boot;
    }
    if (edit->secure_boot_set)
        next->secure_boot = edit->secure_boot;
    else if (next->firmware != VO_FIRMWARE_UEFI)
        next->secure_boot = false;
    if (new_nvram || (next->nvram && next->firmware != VO_FIRMWARE_UEFI)) {
        old_nvram = next->nvram;
        next->nvram = vo_strdup(new_nvram);
    }
    r = vo_vm_spec_validate(next, &d->limits, ret_error);
    if (r >= 0 && edit->name && strcmp(edit->name, vm->spec->name))
        r = vo_vm_check_new_name(edit->name, ret_error);
    if (r >= 0 && edit->name && strcmp(edit->name, vm->spec->name)) {
        pthread_mutex_unlock(&vm->lock);
        VoVm *other = vo_vms_find_locked(d, edit->name);
        pthread_mutex_lock(&vm->lock);
        if (other) {
            *ret_error = vo_vm_name_taken_message(d, edit->name);
            r = -EEXIST;
        }
    }
    if (r < 0) {
        vo_vm_spec_free(next);
        goto out;
    }
    VoVmSpec *old = vm->spec;
    vm->spec = next;
    /* HA off forgets a failed HA start: HA on later must not retry it. */
    bool ha_start_failed = vm->ha_start_failed;
    if (!next->ha)
        vm->ha_start_failed = false;
    vm->check_quota = true;
    r = vo_vm_save(vm);
    vm->check_quota = false;
    if (r < 0)
        vm->ha_start_failed = ha_start_failed;
    char *refused = vo_vm_save_refusal(r);
    if (r == -ENOTUNIQ) { /* the new name is another VM's, on another host */
        vm->spec = old;
        *ret_error = vo_vm_name_taken_message(d, next->name);
        r = -EEXIST;
        vo_vm_spec_free(next);
    } else if (refused) {
        vm->spec = old;
        *ret_error = refused;
        vo_vm_spec_free(next);
    } else if (r < 0) {
        vm->spec = old;
        *ret_error = vo_asprintf("cannot save VM '%s': %s", old->name, strerror(-r));
        vo_vm_spec_free(next);
    } else {
        vo_vm_spec_free(old);
        /* A running QEMU's cgroup follows at once (below); without one
         * (the host has none) the values wait for the next start. */
        if ((edit->cpu_weight_set || edit->cpu_limit_set) && vm->hv &&
            d->driver->cgroup_update) {
            cgroup_hv = vm->hv;
            cgroup_spec = vo_vm_spec_copy(next);
        }
        int64_t lease = 0;
        bool listed = edit->ha == 1 && d->cluster && vm->hv;
        if (listed)
            (void)vo_fence_lease(d, &lease); /* 0 when none: not covered */
        vo_fence_vm_sync(vm); /* ha switched on or off: the fence's kill list follows */
        if (listed && !vo_fence_ha_covered(vm, lease)) {
            /* The lease went before the QEMU was on the kill list: as the
             * fence would have, it ends (the VM may be restarted elsewhere). */
            log_warn("vm %s: made HA while this host lost its lease: its QEMU is killed",
                     vm->spec->name);
            (void)d->driver->kill(vm->hv);
        }
    }
out:
    pthread_mutex_unlock(&vm->lock);
    pthread_mutex_unlock(&d->vms_lock);
    if (cgroup_hv) {
        _cleanup_free_ char *cg_error = NULL;
        if (d->driver->cgroup_update(cgroup_hv, cgroup_spec, &cg_error) < 0)
            log_warn("vm %s: CPU weight/limit saved, not applied now: %s", cgroup_spec->name,
                     cg_error);
    }
    vo_vm_job_end_brief(vm);
    /* The NVRAM the VM does not use (any more) goes. */
    const char *unused = r >= 0 ? old_nvram : new_nvram;
    _cleanup_free_ char *nvram_error = NULL;
    if (unused && vo_volume_remove_now(d, unused, &nvram_error) < 0)
        log_warn("kept the unused NVRAM volume %s: %s", unused, nvram_error);
    return r;
}
