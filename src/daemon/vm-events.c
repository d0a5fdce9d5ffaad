/* vm-events.c: what vireod does with the events a running VM reports (QMP
 * events under QEMU; see VoHvEvent in hypervisor/driver.h). The loop thread
 * watches each running VM's event source beside its exit fd and dispatches
 * every event through the table below. Handlers run on the loop: they take
 * vm->lock briefly and never wait for the VM's job lock (at most a trylock)
 * or talk to the hypervisor. See docs/internals.md, "QMP events". */
#include "daemon/vm-internal.h"

#include <string.h>
#include <sys/epoll.h>

#include "util/util.h"

/* Caller holds vm->lock. A paused VM's reason changes without a state change. */
static void set_paused(VoVm *vm, const char *reason)
{
    if (vm->state == VO_VM_RUNNING) {
        vm->info.paused = true;
        vo_vm_set_state_reason(vm, VO_VM_PAUSED, reason);
    } else if (vm->state == VO_VM_PAUSED &&
               (!vm->state_reason || strcmp(vm->state_reason, reason))) {
        vo_vm_set_state_reason(vm, VO_VM_PAUSED, reason);
    }
}

/* The guest's disk I/O failed and QEMU paused it (werror=enospc: the host
 * is out of space). Shown whatever task runs. A new error (a
 * BLOCK_IO_ERROR, not the STOP after it) moves io_errors: a resume that
 * raced with it leaves the VM paused (see simple_op). */
static void paused_by_io_error(VoVm *vm, bool new_error)
{
    pthread_mutex_lock(&vm->lock);
    if (new_error)
        vm->io_errors++;
    set_paused(vm, VO_VM_REASON_IO_ERROR);
    pthread_mutex_unlock(&vm->lock);
}

static void on_shutdown(VoVm *vm, const VoHvEvent *ev)
{
    /* The exit itself comes through the exit fd (reap), as before. */
    _cleanup_free_ char *name = vo_vm_name(vm);
    log_info("vm %s: shutting down (%s, %s)", name, ev->reason ? ev->reason : "no reason",
             ev->guest ? "asked by the guest" : "asked by the host");
}

static void on_reset(VoVm *vm, const VoHvEvent *ev)
{
    pthread_mutex_lock(&vm->lock);
    vm->resets++;
    vm->last_reset_at = vo_wall_ms();
    log_info("vm %s: reset (%s, %s)", vm->spec->name, ev->reason ? ev->reason : "no reason",
             ev->guest ? "by the guest" : "by the host");
    (void)vo_vm_save(vm); /* the change shows in the store's change stream */
    pthread_mutex_unlock(&vm->lock);
}

/* A STOP or RESUME that no vireo operation asked for (one holding the job
 * lock sets the state itself when it is done: a pause, a resume, the brief
 * stop of a snapshot): the VM's state follows QEMU's. A RESUME after an
 * I/O-error pause is followed in any case: events come in order, so QEMU
 * runs again (a resume's cont that met the pause still pending sends a
 * STOP, which shows the pause again, and this RESUME just after it). */
static void follow_run_state(VoVm *vm, bool running, const char *reason)
{
    bool job = pthread_mutex_trylock(&vm->job) == 0; /* the job lock comes first */
    pthread_mutex_lock(&vm->lock);
    bool io_error_pause = vm->state == VO_VM_PAUSED && vm->state_reason &&
                          !strcmp(vm->state_reason, VO_VM_REASON_IO_ERROR);
    if (running && vm->state == VO_VM_PAUSED && (job || io_error_pause)) {
        vm->info.paused = false;
        vo_vm_set_state(vm, VO_VM_RUNNING);
    } else if (!running && vm->state == VO_VM_RUNNING && job) {
        set_paused(vm, reason);
    }
    pthread_mutex_unlock(&vm->lock);
    if (job)
        pthread_mutex_unlock(&vm->job);
}

static void on_stop(VoVm *vm, const VoHvEvent *ev)
{
    vm->hv_stopped = true;
    if (ev->reason && !strcmp(ev->reason, "io-error"))
        paused_by_io_error(vm, false);
    else
        follow_run_state(vm, false, VO_VM_REASON_UNKNOWN);
}

static void on_resume(VoVm *vm, const VoHvEvent *ev)
{
    vm->hv_stopped = false;
    follow_run_state(vm, true, NULL);
}

static void on_block_io_error(VoVm *vm, const VoHvEvent *ev)
{
    _cleanup_free_ char *name = vo_vm_name(vm);
    /* With the hypervisor's time of the error: how late vireod saw it. */
    log_warn("vm %s: %s error on disk %s: %s%s (action: %s; at %lld.%06lld%s)", name,
             ev->operation, ev->device ? ev->device : "?", ev->reason ? ev->reason : "I/O error",
             ev->nospace ? " (host out of space)" : "", ev->action,
             (long long)(ev->timestamp_us / 1000000), (long long)(ev->timestamp_us % 1000000),
             ev->late ? ", before the last resume" : "");
    /* One from before the last RESUME (QEMU held it back), or that comes
     * while the vCPUs are stopped already (another request failing in the
     * same stop), pauses nothing. */
    if (!strcmp(ev->action, "stop") && !ev->late && !vm->hv_stopped)
        paused_by_io_error(vm, true);
}

/* Hot-unplug (qemu-hotplug.c) and block jobs (qemu-backup.c, snapshots)
 * wait for these on the command monitor, which gets every event too; here
 * they are only logged. A waiter that moves to the loop hooks in here. */
static void on_device_deleted(VoVm *vm, const VoHvEvent *ev)
{
    _cleanup_free_ char *name = vo_vm_name(vm);
    log_debug("vm %s: device %s deleted", name, ev->id ? ev->id : "(no id)");
}

static void on_job_status(VoVm *vm, const VoHvEvent *ev)
{
    _cleanup_free_ char *name = vo_vm_name(vm);
    log_debug("vm %s: job %s is %s", name, ev->id, ev->status);
}

static void (*const handlers[_VO_HV_EVENT_MAX])(VoVm *vm, const VoHvEvent *ev) = {
    [VO_HV_EVENT_SHUTDOWN] = on_shutdown,
    [VO_HV_EVENT_RESET] = on_reset,
    [VO_HV_EVENT_STOP] = on_stop,
    [VO_HV_EVENT_RESUME] = on_resume,
    [VO_HV_EVENT_BLOCK_IO_ERROR] = on_block_io_error,
    [VO_HV_EVENT_DEVICE_DELETED] = on_device_deleted,
    [VO_HV_EVENT_JOB_STATUS] = on_job_status,
};

static void dispatch(VoHvInstance *hv, const VoHvEvent *ev, void *userdata)
{
    VoVm *vm = userdata;
    if (ev->type < _VO_HV_EVENT_MAX && handlers[ev->type])
        handlers[ev->type](vm, ev);
}

/* Reads what the VM's event source has; stops watching it once it is gone. */
static void read_events(VoVm *vm)
{
    VoHvInstance *hv = vm->hv; /* set before the watch, taken after unwatch: loop only */
    int r = hv ? vm->d->driver->events_read(hv, dispatch, vm) : -ECONNRESET;
    if (r < 0) {
        vo_loop_remove_fd(vm->d->loop, vm->events_fd);
        vm->events_fd = -1;
    }
}

static void on_events(int fd, uint32_t events, void *userdata)
{
    read_events(userdata);
}

void vo_vm_events_watch(VoVm *vm)
{
    VoHvDriver *drv = vm->d->driver;
    vm->events_fd = -1;
    pthread_mutex_lock(&vm->lock);
    int fd = vm->hv && drv->events_fd ? drv->events_fd(vm->hv) : -1;
    pthread_mutex_unlock(&vm->lock);
    if (fd < 0)
        return;
    /* The exit watch's reference covers this one: on_vm_exit unwatches first. */
    int r = vo_loop_add_fd(vm->d->loop, fd, EPOLLIN, on_events, vm);
    if (r < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        log_warn("vm %s: cannot watch its events: %s", name, strerror(-r));
        return;
    }
    vm->events_fd = fd;
    /* The run state as QEMU had it when it was last asked (at start, before
     * or after the first continue; at attach, after the event monitor was
     * connected): the events buffered since follow from there. */
    pthread_mutex_lock(&vm->lock);
    vm->hv_stopped = vm->info.paused;
    pthread_mutex_unlock(&vm->lock);
    read_events(vm); /* what came before the watch (already buffered) */
}

void vo_vm_events_unwatch(VoVm *vm)
{
    if (vm->events_fd < 0)
        return;
    read_events(vm); /* the last ones, e.g. a SHUTDOWN, before the exit is handled */
    if (vm->events_fd >= 0)
        vo_loop_remove_fd(vm->d->loop, vm->events_fd);
    vm->events_fd = -1;
}
