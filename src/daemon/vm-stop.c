/* vm-stop.c: a VM's stop (guest agent, ACPI, kill; waiting for its exit)
 * and the other one-call operations on a running VM: pause, resume and
 * reboot (part of the VM service, vms.c): their tasks and entry points. */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/vm-internal.h"

#include <string.h>

/* Waits (vm->lock held) until the VM has exited or the deadline passes. */
bool vo_vm_wait_exit(VoVm *vm, int timeout_ms)
{
    int64_t deadline = vo_now_ms() + timeout_ms;
    while (vm->watching || vm->hv) {
        int64_t left = deadline - vo_now_ms();
        if (left <= 0)
            return false;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (left % 1000) * 1000000;
        ts.tv_sec += left / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&vm->changed, &vm->lock, &ts);
    }
    /* The exit's state, saved by a thread (vm-save-later.c), is in the
     * store before the task that waited for it goes on or ends. */
    (void)vo_vm_save_flush(vm);
    return true;
}

/* Caller holds the job lock. Ends the VM: the guest agent's shutdown, then
 * ACPI, unless force, then kill; *ret_how says which did it. */
static int stop_locked(VoTask *t, VoVm *vm, bool force, int timeout_s, const char **ret_how)
{
    VoHvDriver *drv = vm->d->driver;
    pthread_mutex_lock(&vm->lock);
    if (!vo_vm_state_active(vm->state) || !vm->hv) {
        pthread_mutex_unlock(&vm->lock);
        return vo_task_fail(t, -EBUSY, "VM '%s' is not running", vm->spec->name);
    }
    vm->stop_requested = true;
    bool paused = vm->state == VO_VM_PAUSED;
    vo_vm_set_state(vm, VO_VM_STOPPING);
    VoHvInstance *hv = vm->hv;
    pthread_mutex_unlock(&vm->lock);

    bool exited = false;
    const char *how = "forced off";
    if (!force) {
        if (paused)
            (void)drv->resume(hv);
        int64_t deadline = vo_now_ms() + (int64_t)timeout_s * 1000;
        /* The guest agent first: it gets half the time to power the guest
         * off (a guest without one answers at once, or within seconds). */
        vo_task_progress(t, 10, "asking the guest agent to shut the guest down");
        _cleanup_free_ char *why = NULL;
        bool agent_asked = timeout_s > 0 && vo_vm_agent_shutdown(vm, hv, &why);
        if (agent_asked) {
            int64_t half = (deadline - vo_now_ms()) / 2;
            pthread_mutex_lock(&vm->lock);
            exited = vo_vm_wait_exit(vm, half > 0 ? (int)half : 0);
            pthread_mutex_unlock(&vm->lock);
            if (exited)
                how = "shut down by the guest agent";
            else
                log_warn("vm %s: the guest agent's shutdown did not power it off; ACPI next",
                         vm->spec->name);
        } else if (why)
            log_info("vm %s: %s; ACPI next", vm->spec->name, why);
        if (!exited)
            vo_task_progress(t, 20, "asking the guest to power off (ACPI)");
        /* A guest still booting may not listen to the button yet: press it
         * again every second until it powers off or the timeout passes. */
        while (!exited && vo_now_ms() < deadline) {
            bool pressed = drv->powerdown(hv) >= 0;
            /* A button QEMU refuses: it may be exiting (the guest powered
             * off just now: QEMU closes its monitor, then flushes and
             * ends, which under load takes more than a second): its exit
             * is waited for until the deadline, as for a press, before
             * forcing (a fixed moment made a clean power-off "forced off"). */
            int64_t left = deadline - vo_now_ms();
            pthread_mutex_lock(&vm->lock);
            exited = vo_vm_wait_exit(vm, !pressed || left < 1000 ? (int)left : 1000);
            pthread_mutex_unlock(&vm->lock);
            if (exited)
                how = "powered off by ACPI";
            if (!pressed)
                break;
        }
        if (!exited)
            log_warn("vm %s: no power-off after %d s; forcing", vm->spec->name, timeout_s);
    }
    if (!exited) {
        vo_task_progress(t, 80, "forcing the VM off");
        pthread_mutex_lock(&vm->lock);
        if (vm->hv)
            (void)drv->kill(vm->hv);
        exited = vo_vm_wait_exit(vm, VO_VM_STOP_EXIT_WAIT_MS);
        pthread_mutex_unlock(&vm->lock);
    }
    if (!exited)
        return vo_task_fail(t, -ETIMEDOUT, "VM '%s' did not stop", vm->spec->name);
    *ret_how = how;
    return 0;
}

int vo_vm_stop_locked(VoTask *t, VoVm *vm, bool force, int timeout_s)
{
    const char *how;
    return stop_locked(t, vm, force, timeout_s, &how);
}

static int task_stop(VoTask *t, void *userdata)
{
    VoVmOpArgs *a = userdata;
    pthread_mutex_lock(&a->vm->job);
    pthread_mutex_lock(&a->vm->lock);
    if (vo_vm_check_if_match(t, a->vm) < 0)
        return -VO_EIFMATCH;
    pthread_mutex_unlock(&a->vm->lock);
    const char *how = NULL;
    int r = stop_locked(t, a->vm, a->force, a->timeout_s, &how);
    pthread_mutex_unlock(&a->vm->job);
    if (r >= 0) {
        /* Which way worked: the agent, ACPI or force. */
        vo_task_progress(t, 100, how);
        vo_task_set_result(t, json_pack("{s:s}", "stopped", how));
    }
    return r;
}

/* pause/resume/reboot: one driver call on a VM in the required state (and,
 * when reason is given, paused for that reason: checked under the job
 * lock, so a user's resume and pause queued before it are seen). A
 * resume then asks QEMU whether it runs (a write retried by cont may fail
 * at once and stop it again), and any task reads the state again when
 * STOP/RESUME came while it held the VM (vo_vm_job_end). */
static int simple_op(VoTask *t, VoVm *vm, VoVmState required, const char *reason,
                     int (*op)(VoHvInstance *), VoVmState after, const char *verb)
{
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    if (vo_vm_check_if_match(t, vm) < 0)
        return -VO_EIFMATCH;
    if (vm->state != required || !vm->hv) {
        VoVmState s = vm->state;
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -EBUSY, "cannot %s VM '%s': it is %s (must be %s)", verb, name,
                            vo_vm_state_names[s], vo_vm_state_names[required]);
    }
    if (reason && (!vm->state_reason || strcmp(vm->state_reason, reason))) {
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        _cleanup_free_ char *now = vo_strdup(vm->state_reason ? vm->state_reason : "unknown");
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -EBUSY, "VM '%s' not resumed: paused for '%s' now, not '%s'",
                            name, now, reason);
    }
    VoHvInstance *hv = vm->hv;
    unsigned io_errors = vm->io_errors;
    pthread_mutex_unlock(&vm->lock);
    int r = op(hv);
    if (r >= 0) {
        pthread_mutex_lock(&vm->lock);
        /* An I/O error the resumed guest hit again (retried on resume) has
         * paused it anew: it stays paused (vm-events.c). */
        bool paused_again = after == VO_VM_RUNNING && vm->io_errors != io_errors;
        if (vm->state == required && !paused_again) {
            vm->info.paused = after == VO_VM_PAUSED;
            vo_vm_set_state_reason(vm, after, VO_VM_REASON_USER);
        }
        pthread_mutex_unlock(&vm->lock);
        if (after == VO_VM_RUNNING)
            vo_vm_refresh_live(vm, hv);
    }
    vo_vm_job_end(vm, r >= 0 && required == VO_VM_PAUSED && after == VO_VM_RUNNING);
    if (r < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, r, "cannot %s VM '%s': %s", verb, name, strerror(-r));
    }
    return 0;
}

static int task_pause(VoTask *t, void *userdata)
{
    VoVm *vm = ((VoVmOpArgs *)userdata)->vm;
    return simple_op(t, vm, VO_VM_RUNNING, NULL, vm->d->driver->pause, VO_VM_PAUSED, "pause");
}

static int task_resume(VoTask *t, void *userdata)
{
    VoVmOpArgs *a = userdata;
    return simple_op(t, a->vm, VO_VM_PAUSED, a->paused_reason, a->vm->d->driver->resume,
                     VO_VM_RUNNING, "resume");
}

static int task_reboot(VoTask *t, void *userdata)
{
    VoVm *vm = ((VoVmOpArgs *)userdata)->vm;
    return simple_op(t, vm, VO_VM_RUNNING, NULL, vm->d->driver->reset, VO_VM_RUNNING, "reboot");
}

int vo_vm_stop(VoDaemon *d, VoVm *vm, bool force, int timeout_s, json_t **ret_task,
               char **ret_error)
{
    int r = vo_vm_precheck(vm, IN(VO_VM_RUNNING) | IN(VO_VM_PAUSED), "stop", ret_error);
    if (r < 0)
        return r;
    VoVmOpArgs *a = vo_vm_op_args(vm);
    a->force = force;
    a->timeout_s = timeout_s;
    return vo_vm_submit(d, vm, "stop", task_stop, a, vo_vm_op_args_free, ret_task, ret_error);
}

int vo_vm_reboot(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error)
{
    int r = vo_vm_precheck(vm, IN(VO_VM_RUNNING), "reboot", ret_error);
    return r < 0 ? r
                 : vo_vm_submit(d, vm, "reboot", task_reboot, vo_vm_op_args(vm), vo_vm_op_args_free,
                                ret_task, ret_error);
}

int vo_vm_pause(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error)
{
    int r = vo_vm_precheck(vm, IN(VO_VM_RUNNING), "pause", ret_error);
    return r < 0 ? r
                 : vo_vm_submit(d, vm, "pause", task_pause, vo_vm_op_args(vm), vo_vm_op_args_free,
                                ret_task, ret_error);
}

int vo_vm_resume(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error)
{
    return vo_vm_resume_if(d, vm, NULL, ret_task, ret_error);
}

int vo_vm_resume_if(VoDaemon *d, VoVm *vm, const char *paused_reason, json_t **ret_task,
                    char **ret_error)
{
    int r = vo_vm_precheck(vm, IN(VO_VM_PAUSED), "resume", ret_error);
    if (r < 0)
        return r;
    VoVmOpArgs *a = vo_vm_op_args(vm);
    a->paused_reason = paused_reason;
    return vo_vm_submit(d, vm, "resume", task_resume, a, vo_vm_op_args_free, ret_task, ret_error);
}
