/* vm-start.c: a VM's start (part of the VM service, vms.c): the start task
 * (resolve the spec, HA lease, taps, the driver's start, watch it) and the
 * entry points that queue it (vo_vm_start, vo_vm_start_once, vo_vm_start_ha;
 * vireod's own starts, unbounded). */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/rbd-dead-clients.h"
#include "daemon/vm-internal.h"
#include "daemon/vm-rbd-restore-undo.h"
#include "daemon/vm-start-unknown.h"
#include "daemon/ha-retry.h"

#include <string.h>

#include "daemon/fence.h"
#include "state/keys.h"
#include "util/test-hold.h"

/* How long an HA VM's start waits for the fence's confirmed lease. */
#define HA_LEASE_WAIT_MS 10000

static int task_start(VoTask *t, void *userdata)
{
    VoVm *vm = ((VoVmOpArgs *)userdata)->vm;
    VoDaemon *d = vm->d;
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    if (vo_vm_check_if_match(t, vm) < 0)
        return -VO_EIFMATCH;
    VoVmState before = vm->state;
    if (vo_vm_state_active(before)) {
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -EBUSY, "VM '%s' is already %s", name, vo_vm_state_names[before]);
    }
    if (vm->problem) {
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        _cleanup_free_ char *problem = vo_strdup(vm->problem);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -EBUSY, "cannot start VM '%s': %s", name, problem);
    }
    _cleanup_free_ char *fenced = NULL;
    if (vo_fence_check_start(d, &fenced) < 0) { /* fenced since it was queued */
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -VO_EFENCED, "%s", fenced);
    }
    vm->stop_requested = false;
    bool ha_start_failed = vm->ha_start_failed;
    vm->ha_start_failed = false;
    /* The start is committed in the store before QEMU runs (the ownership
     * rule, docs/ha.md): a VM whose "starting" the cluster never saw is
     * not started. The failed save wrote nothing: it stays as it was. */
    int saved = vo_vm_set_state(vm, VO_VM_STARTING);
    if (saved < 0) {
        vm->state = before;
        vm->ha_start_failed = (((VoVmOpArgs *)userdata)->ha_start || ha_start_failed) &&
                              vm->spec->ha;
        /* No answer: it may have landed. Then the document said
         * "starting" for a VM nothing started: put back (best effort). */
        if (saved == VO_STORE_EUNKNOWN)
            vo_vm_unsaved_start_undo(vm);
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, saved, "cannot start VM '%s': its starting state cannot be "
                            "saved to the store (%s); nothing was started", name,
                            strerror(-saved));
    }
    VoVmSpec *stored = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);

    vo_task_progress(t, 10, "launching QEMU");
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, stored->id);
    _cleanup_free_ char *error = NULL;
    VoHvInstance *hv = NULL;
    int *taps = NULL;
    /* An HA VM runs only under the fence's confirmed lease (checked again
     * once its QEMU is on the kill list, below). */
    int64_t ha_lease = 0;
    int r = d->cluster && stored->ha ? vo_fence_ha_lease_wait(d, stored->name, HA_LEASE_WAIT_MS,
                                                              &ha_lease, &error)
                                     : 0;
    /* A restore over its RBD disks that a crash cut short: rolled back first. */
    if (r >= 0)
        r = vo_vm_rbd_undo_cut_short(vm, stored, &error);
    if (r >= 0) /* its disks whole: the marks such a restore left go */
        vo_vm_spec_settle_restores(d, stored);
    if (r >= 0) /* after "starting" is saved: a restore marks, then looks (vm-disks.c) */
        r = vo_vm_start_check_restores(d, stored, &error);
    /* The driver gets the spec with this host's paths filled in. */
    VoVmSpec *spec = NULL;
    if (r >= 0)
        r = vo_vm_resolve(d, stored, &spec, &error);
    if (r >= 0 && ((VoVmOpArgs *)userdata)->boot_once) {
        /* This run only: the device first, then the VM's own order. */
        VoBootDev order[_VO_BOOT_MAX], once = ((VoVmOpArgs *)userdata)->once_dev;
        size_t n = vo_vm_spec_boot_order(spec, order);
        spec->boot[0] = once;
        spec->n_boot = 1;
        for (size_t i = 0; i < n; i++)
            if (order[i] != once)
                spec->boot[spec->n_boot++] = order[i];
    }
    if (r >= 0)
        r = vo_vm_open_taps(d, spec, &taps, &error);
    /* Its RBD disks' watchers before and after the launch: the new ones
     * are its QEMU's Ceph clients (rbd-dead-clients.h). */
    _cleanup_strv_ char **watchers = r >= 0 ? vo_rbd_clients_watching(d, stored) : NULL;
    if (r >= 0)
        r = d->driver->start(d->driver, spec, run_dir, taps, &hv, &error);
    if (r >= 0)
        vo_rbd_clients_record(d, stored, watchers, run_dir);
    vo_vm_close_taps(taps, stored->n_nics); /* QEMU holds its own copies now */
    vo_vm_spec_free(spec);
    vo_vm_spec_free(stored);
    if (r < 0) {
        pthread_mutex_lock(&vm->lock);
        free(vm->exit_reason);
        vm->exit_reason = vo_asprintf("start failed: %s", error ? error : strerror(-r));
        vm->ha_start_failed = ((VoVmOpArgs *)userdata)->ha_start && vm->spec->ha;
        vo_vm_set_state(vm, before == VO_VM_DEFINED ? VO_VM_DEFINED : VO_VM_STOPPED);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, r, "cannot start VM '%s': %s", name, error ? error : strerror(-r));
    }

    vo_task_progress(t, 70, "attaching console");
    VoHvInfo info = { 0 };
    (void)d->driver->info(hv, &info); /* QEMU is asked: not under vm->lock */
    pthread_mutex_lock(&vm->lock);
    vm->hv = hv;
    vm->info = info;
    vm->started_at = vo_wall_ms();
    free(vm->exit_reason);
    vm->exit_reason = NULL;
    vm->resets = 0;
    vm->reset_group_us = 0;
    vm->last_reset_at = 0;
    vo_fence_vm_sync(vm); /* before its vCPUs run */
    /* The fence may have fenced while QEMU was launched, before it was on
     * the kill list: then it must not run (the lease it ran under is gone,
     * and the VM may be restarted elsewhere). */
    bool covered = vo_fence_ha_covered(vm, ha_lease);
    if (!covered)
        vm->stop_requested = true;
    pthread_mutex_unlock(&vm->lock);
    vo_vm_watch(vm);
    if (!covered) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        log_warn("vm %s: this host lost its lease while QEMU was launched: killed before its "
                 "vCPUs ran", name);
        pthread_mutex_lock(&vm->lock);
        if (vm->hv)
            (void)d->driver->kill(vm->hv);
        (void)vo_vm_wait_exit(vm, VO_VM_STOP_EXIT_WAIT_MS);
        pthread_mutex_unlock(&vm->lock);
        vo_vm_job_end(vm, false);
        return vo_task_fail(t, -VO_EFENCED, "cannot start VM '%s': host %s lost its lease "
                            "while QEMU was launched (it starts HA VMs only under a confirmed "
                            "lease, docs/ha.md)", name, d->host_name);
    }

    /* What it has plugged is read while its vCPUs are still stopped: the
     * QMP round trips would otherwise delay the task's end (and the CLI
     * waiting for it) after the VM is already running. */
    vo_vm_refresh_live(vm, hv);
    vo_task_progress(t, 90, "starting vCPUs");
    r = d->driver->resume(hv);
    pthread_mutex_lock(&vm->lock);
    if (r >= 0 && vm->state == VO_VM_STARTING) {
        vm->info.paused = false;
        vo_vm_set_state(vm, VO_VM_RUNNING);
    }
    pthread_mutex_unlock(&vm->lock);
    /* An I/O error that stopped it while it was still starting (or any
     * STOP seen meanwhile) is read back from QEMU here. */
    vo_vm_job_end(vm, false);
    if (r < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, r, "VM '%s' launched but did not start running: %s", name,
                            strerror(-r));
    }
    return 0;
}

/* unbounded: vireod's own starts (autostart, HA), which the queue's bound
 * never refuses. ha: an HA restart (a fenced host's own, a retry). The
 * first start of a VM HA recovery moved here is one too: a failure of its
 * task is retried (ha-retry.h). */
int vo_vm_start_request(VoDaemon *d, VoVm *vm, bool unbounded, bool ha, json_t **ret_task,
             char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    bool landed = vm->ha_landed;
    _cleanup_free_ char *id = vo_strdup(vm->spec->id), *name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    int r = vo_fence_check_start(d, ret_error);
    if (r >= 0)
        r = vo_vm_precheck(vm, INACTIVE_STATES, "start", ret_error);
    if (r >= 0)
        r = vo_vm_check_restores(vm, ret_error);
    if (r >= 0 && (ha || landed)) { /* tests refuse an HA start here, before its task */
        _cleanup_free_ char *point = vo_asprintf("ha_start_refused@%s", name);
        r = vo_test_fault(point);
        if (r < 0)
            *ret_error = vo_asprintf("test fault: HA start of VM '%s' refused before its task "
                                     "(%s)", name, strerror(-r));
    }
    if (r >= 0) {
        VoVmOpArgs *a = vo_vm_op_args(vm);
        a->ha_start = ha || landed;
        r = vo_vm_submit_op(d, vm, "start", NULL, unbounded, task_start, a, vo_vm_op_args_free,
                            ret_task, ret_error);
    }
    /* An HA start refused before its task is marked in the VM's document
     * like one whose task failed, so the retries take it up (the first
     * start of a VM HA recovery moved here is followed from here). */
    if (r < 0 && (ha || landed))
        vo_ha_retry_refused(d, vm, landed && !ha, *ret_error ? *ret_error : strerror(-r));
    pthread_mutex_lock(&vm->lock);
    landed = r >= 0 && landed;
    vm->ha_landed = vm->ha_landed && !landed;
    pthread_mutex_unlock(&vm->lock);
    if (landed)
        vo_ha_retry_follow(d, id, name, json_string_value(json_object_get(*ret_task, "id")));
    return r;
}

int vo_vm_start_ha(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error)
{
    return vo_vm_start_request(d, vm, true, true, ret_task, ret_error);
}

int vo_vm_start_once(VoDaemon *d, VoVm *vm, VoBootDev dev, json_t **ret_task,
                     char **ret_error)
{
    int r = vo_vm_precheck(vm, INACTIVE_STATES, "start", ret_error);
    if (r >= 0)
        r = vo_vm_check_restores(vm, ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    bool drive = vm->spec->has_cdrom, kernel = vo_boot_file_set(&vm->spec->kernel_from);
    pthread_mutex_unlock(&vm->lock);
    if (dev == VO_BOOT_CDROM && !drive)
        return vo_error_set(ret_error, -EINVAL, "boot_once: cdrom, but the VM has no CD-ROM "
                            "drive (vireo vm cdrom insert VM POOL/ISO gives it one)");
    if (kernel)
        return vo_error_set(ret_error, -EINVAL, "boot_once: the VM boots a kernel directly; "
                            "its firmware boot order does not apply");
    VoVmOpArgs *a = vo_vm_op_args(vm);
    a->boot_once = true;
    a->once_dev = dev;
    return vo_vm_submit_op(d, vm, "start", NULL, false, task_start, a, vo_vm_op_args_free, ret_task,
                     ret_error);
}

int vo_vm_start(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error)
{
    return vo_vm_start_request(d, vm, false, false, ret_task, ret_error);
}
