/* vm-events.c: what vireod does with the events a running VM reports (QMP
 * events under QEMU; see VoHvEvent in hypervisor/driver.h). The loop thread
 * watches each running VM's event source beside its exit fd and dispatches
 * every event through the table below. Handlers run on the loop: they take
 * vm->lock briefly and never wait for the VM's job lock (at most a trylock),
 * the store (a change is saved by a thread: vm-save-later.c) or the
 * hypervisor. See docs/internals.md, "QMP events". */
#include "daemon/vm-internal.h"
#include "daemon/vm-job.h"
#include "daemon/vm-reset-group.h"

#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "util/util.h"

/* Caller holds vm->lock. A paused VM's reason changes without a state change.
 * A VM still starting is left to its start task, which reads QEMU's run
 * state when it ends (vo_vm_job_end: the event was noted as missed). */
static void set_paused(VoVm *vm, const char *reason)
{
    if (vm->state == VO_VM_RUNNING) {
        vm->info.paused = true;
        vo_vm_set_state_later(vm, VO_VM_PAUSED, reason);
    } else if (vm->state == VO_VM_PAUSED &&
               (!vm->state_reason || strcmp(vm->state_reason, reason))) {
        vo_vm_set_state_later(vm, VO_VM_PAUSED, reason);
    }
}

/* Takes vm->lock, and the job lock too when no task holds it (a trylock:
 * the job lock comes first). A task that ends releases the job lock while
 * holding vm->lock after a last look at run_state_missed (vo_vm_job_end),
 * so a second try under vm->lock that fails means a task that will still
 * look. An event that changes the run state while a task holds the job is
 * noted there: the task re-reads the state from the hypervisor at its end.
 * Returns whether the job lock was taken (the caller releases both). */
static bool lock_for_run_state(VoVm *vm)
{
    bool job = vo_vm_job_try_brief(vm); /* a brief holder: vm-job.h */
    pthread_mutex_lock(&vm->lock);
    if (!job)
        job = vo_vm_job_try_brief(vm);
    vm->run_state_missed = !job;
    return job;
}

static void unlock_for_run_state(VoVm *vm, bool job)
{
    pthread_mutex_unlock(&vm->lock);
    if (job)
        vo_vm_job_release_brief(vm);
}

/* The guest's disk I/O failed and QEMU paused it (werror=enospc: the host
 * is out of space). Shown whatever task runs. A new error (a
 * BLOCK_IO_ERROR, not the STOP after it, while the vCPUs ran) moves
 * io_errors: a resume that raced with it leaves the VM paused (see
 * simple_op). */
static void paused_by_io_error(VoVm *vm, bool new_error)
{
    bool job = lock_for_run_state(vm);
    if (new_error)
        vm->io_errors++;
    set_paused(vm, VO_VM_REASON_IO_ERROR);
    unlock_for_run_state(vm, job);
}

static void on_shutdown(VoVm *vm, const VoHvEvent *ev)
{
    /* The exit itself comes through the exit fd (reap), as before. */
    _cleanup_free_ char *name = vo_vm_name(vm);
    log_info("vm %s: shutting down (%s, %s)", name, ev->reason ? ev->reason : "no reason",
             ev->guest ? "asked by the guest" : "asked by the host");
}

/* At most one save of the reset count per this many ms. */
#define RESET_SAVE_MS 250

/* Caller holds vm->lock. */
static void save_resets(VoVm *vm)
{
    vm->reset_save_pending = false;
    vm->reset_saved_ms = vo_now_ms();
    vo_vm_save_later(vm); /* the change shows in the store's change stream */
}

static void on_reset_timer(int fd, uint32_t events, void *userdata)
{
    VoVm *vm = userdata;
    uint64_t expirations;
    (void)!read(fd, &expirations, sizeof(expirations));
    pthread_mutex_lock(&vm->lock);
    if (vm->reset_save_pending)
        save_resets(vm);
    pthread_mutex_unlock(&vm->lock);
}

/* Arms the VM's reset timer (made on first use) to fire in ms. */
static bool arm_reset_timer(VoVm *vm, int64_t ms)
{
    if (vm->reset_timer_fd < 0) {
        int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (fd < 0)
            return false;
        if (vo_loop_add_fd(vm->d->loop, fd, EPOLLIN, on_reset_timer, vm) < 0) {
            close(fd);
            return false;
        }
        vm->reset_timer_fd = fd;
    }
    struct itimerspec its = { .it_value = { .tv_sec = ms / 1000,
                                            .tv_nsec = (ms % 1000) * 1000000 + 1 } };
    return timerfd_settime(vm->reset_timer_fd, 0, &its, NULL) == 0;
}

/* Saves a reset count still due and stops the timer (the watch ends). */
static void flush_resets(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->reset_save_pending)
        save_resets(vm);
    pthread_mutex_unlock(&vm->lock);
    if (vm->reset_timer_fd >= 0) {
        vo_loop_remove_fd(vm->d->loop, vm->reset_timer_fd, vm);
        close(vm->reset_timer_fd);
        vm->reset_timer_fd = -1;
    }
}

/* A reboot's resets (SeaBIOS resets again after a warm reset, ~40 ms
 * later) count once: those within a second of the first of a group are
 * logged, not counted (vm-reset-group.h), so nothing changes to save. */
static void on_reset(VoVm *vm, const VoHvEvent *ev)
{
    pthread_mutex_lock(&vm->lock);
    int64_t at_us = ev->timestamp_us > 0 ? ev->timestamp_us : vo_wall_ms() * 1000;
    bool counts = vo_reset_counts(&vm->reset_group_us, at_us);
    log_info("vm %s: reset (%s, %s%s)", vm->spec->name, ev->reason ? ev->reason : "no reason",
             ev->guest ? "by the guest" : "by the host",
             counts ? "" : "; the same reboot as the last one counted");
    if (!counts) {
        pthread_mutex_unlock(&vm->lock);
        return;
    }
    vm->resets++;
    vm->last_reset_at = vo_wall_ms();
    /* Saved at once unless one was saved in the last RESET_SAVE_MS; then
     * the timer saves the count as it is then (one write for a burst). */
    int64_t wait = vm->reset_saved_ms + RESET_SAVE_MS - vo_now_ms();
    if (vm->reset_save_pending)
        ; /* the timer is set */
    else if (wait <= 0 || vm->reset_saved_ms == 0 || !arm_reset_timer(vm, wait))
        save_resets(vm);
    else
        vm->reset_save_pending = true;
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
    bool job = lock_for_run_state(vm);
    bool io_error_pause = vm->state == VO_VM_PAUSED && vm->state_reason &&
                          !strcmp(vm->state_reason, VO_VM_REASON_IO_ERROR);
    if (running && vm->state == VO_VM_PAUSED && (job || io_error_pause)) {
        vm->info.paused = false;
        vo_vm_set_state_later(vm, VO_VM_RUNNING, NULL);
    } else if (!running && vm->state == VO_VM_RUNNING && job) {
        set_paused(vm, reason);
    }
    unlock_for_run_state(vm, job);
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
    /* One from before the last RESUME (QEMU held it back) pauses nothing.
     * One that comes while the vCPUs are stopped already (per the events)
     * is why they are: QEMU throttles these, so after a resume whose
     * retried write failed at once the order is RESUME, STOP, then this up
     * to a second later. It sets the reason (a STOP nobody asked for showed
     * "unknown"; a STOP a task hid left the VM shown running), but is not
     * a new error for a resume under way (io_errors). */
    if (!strcmp(ev->action, "stop") && !ev->late)
        paused_by_io_error(vm, !vm->hv_stopped);
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
        vo_loop_remove_fd(vm->d->loop, vm->events_fd, vm);
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
    if (vm->events_fd >= 0)
        read_events(vm); /* the last ones, e.g. a SHUTDOWN, before the exit is handled */
    if (vm->events_fd >= 0)
        vo_loop_remove_fd(vm->d->loop, vm->events_fd, vm);
    vm->events_fd = -1;
    flush_resets(vm);
}
