/* vm-watch.c: the loop thread's watch of running VMs (part of the VM
 * service, vms.c): a VM's exit (a crash, or the end of a stop), its console,
 * and the release of a gone VM's driver instance once no task uses it. */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/rbd-dead-clients.h"
#include "daemon/vm-internal.h"

#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "daemon/console.h"
#include "daemon/vm-pause-mark.h"
#include "state/keys.h"
#include "util/threads.h"
#include "util/unix-socket.h"

static void release_console(VoVm *vm)
{
    vo_console_free(vm->console);
    vm->console = NULL;
}

typedef struct {
    VoVm *vm;
    VoHvInstance *hv;
} HvRelease;

/* Release threads not done yet; vireod's teardown waits for them before it
 * frees the driver. */
VoThreadCount vo_vm_releases;

static void *release_when_idle(void *userdata)
{
    HvRelease *rel = userdata;
    pthread_mutex_lock(&rel->vm->job);
    rel->vm->d->driver->release(rel->hv);
    pthread_mutex_unlock(&rel->vm->job);
    vo_vm_unref(rel->vm);
    free(rel);
    vo_thread_done(&vo_vm_releases);
    return NULL;
}

/* Frees the driver instance of a VM that is gone once no task uses it.
 * Tasks hold the VM's job lock while they use the instance they read from
 * vm->hv (a backup, snapshot or hot-plug the guest's power-off cuts short),
 * and the loop thread must not wait for that lock: a thread of its own
 * does. */
static void release_hv_later(VoVm *vm, VoHvInstance *hv)
{
    HvRelease *rel = vo_malloc0(sizeof(*rel));
    *rel = (HvRelease){ .vm = vo_vm_ref(vm), .hv = hv };
    int r = vo_thread_spawn_counted(&vo_vm_releases, release_when_idle, rel);
    if (r < 0) { /* no thread: release at once, as before */
        log_warn("vm %s: cannot start a thread (%s); releasing its QEMU handle now",
                 vm->spec->name, strerror(-r));
        vm->d->driver->release(hv);
        vo_vm_unref(vm);
        free(rel);
    }
}

static void on_vm_exit(int fd, uint32_t events, void *userdata)
{
    VoVm *vm = userdata;
    VoHvDriver *drv = vm->d->driver;
    vo_loop_remove_fd(vm->d->loop, fd, vm);
    vo_vm_events_unwatch(vm);
    release_console(vm);

    pthread_mutex_lock(&vm->lock);
    bool clean = false;
    _cleanup_free_ char *reason = NULL;
    drv->reap(vm->hv, &clean, &reason);
    _cleanup_free_ char *run_dir = vo_vm_run_dir(vm->d, vm->spec->id);
    /* Reaped: its Ceph clients are dead ones, before a stop waiting for
     * this exit answers (a delete may follow at once). */
    vo_rbd_clients_exited(run_dir);
    release_hv_later(vm, TAKE_PTR(vm->hv));
    vm->live_known = false;
    vm->watching = false;
    free(vm->exit_reason);
    vm->exit_reason = vm->stop_requested && !clean ? vo_asprintf("forced off by vireo (%s)", reason)
                                                   : TAKE_PTR(reason);
    bool stopped = vm->stop_requested || clean || vm->migrated_away;
    if (vm->migrated_away) { /* it runs on the destination now: not "stopped" */
        log_info("vm %s: the source QEMU ended: the VM was migrated to %s%s", vm->spec->name,
                 vm->migration_to ? "host " : "its new host", vm->migration_to ?: "");
        pthread_cond_broadcast(&vm->changed);
    } else if (!stopped)
        log_warn("vm %s crashed: %s", vm->spec->name, vm->exit_reason);
    if (!vm->migrated_away) /* saved by a thread: the loop never waits for the store */
        vo_vm_set_state_later(vm, stopped ? VO_VM_STOPPED : VO_VM_CRASHED, NULL);
    /* A snapshot's marker belongs to this QEMU: never to undo a later one's pause. */
    vo_snapshot_unmark(vm->d, vm->spec->id);
    pthread_mutex_unlock(&vm->lock);

    const char *transient[] = { "qmp.sock", "qmp-events.sock", "console.sock", "qemu.pid",
                                "fake.state", "fake-events" };
    for (size_t i = 0; i < ELEMENTSOF(transient); i++) {
        _cleanup_free_ char *p = vo_asprintf("%s/%s", run_dir, transient[i]);
        (void)unlink(p);
    }
    vo_vm_unref(vm); /* the watch's reference */
}

typedef struct {
    VoVm *vm;
    int console_fd;
} WatchArgs;

static void watch_on_loop(void *userdata)
{
    WatchArgs *w = userdata;
    VoVm *vm = w->vm;
    if (w->console_fd >= 0) {
        _cleanup_free_ char *log_path = vo_vm_console_log_path(vm->d, vm);
        release_console(vm);
        vm->console = vo_console_new(w->console_fd, log_path);
    }
    pthread_mutex_lock(&vm->lock);
    int fd = vm->hv ? vm->d->driver->exit_fd(vm->hv) : -1;
    pthread_mutex_unlock(&vm->lock);
    if (fd < 0 || vo_loop_add_fd(vm->d->loop, fd, EPOLLIN, on_vm_exit, vm) < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        log_error("vm %s: cannot watch its process", name);
        vo_vm_unref(vm);
    } else {
        vo_vm_events_watch(vm);
    }
    free(w);
}

/* Connects the console now (so no output is lost) and hands it and the exit
 * fd to the loop. Caller holds the job lock; vm->hv is set. */
void vo_vm_watch(VoVm *vm)
{
    WatchArgs *w = vo_malloc0(sizeof(*w));
    w->vm = vo_vm_ref(vm);
    w->console_fd = -1;
    const char *sock = vm->d->driver->console_socket(vm->hv);
    if (sock) {
        w->console_fd = vo_unix_connect(sock, 0);
        if (w->console_fd < 0)
            log_warn("vm %s: console unavailable: %s", vm->spec->name, strerror(-w->console_fd));
    }
    vm->watching = true;
    vo_loop_call(vm->d->loop, watch_on_loop, w);
}

typedef struct {
    VoVm *vm;
    int fd;
    char *initial;
    size_t initial_len;
    VoVmConsoleClosed on_closed;
    void *userdata;
} AttachArgs;

static void attach_on_loop(void *userdata)
{
    AttachArgs *a = userdata;
    if (a->vm->console)
        vo_console_add_client(a->vm->console, a->fd, TAKE_PTR(a->initial), a->initial_len,
                              a->on_closed, a->userdata);
    else
        a->on_closed(a->userdata);
    vo_vm_unref(a->vm);
    free(a->initial);
    free(a);
}

void vo_vm_console_attach(VoDaemon *d, VoVm *vm, int fd, char *initial, size_t initial_len,
                          VoVmConsoleClosed on_closed, void *userdata)
{
    AttachArgs *a = vo_malloc0(sizeof(*a));
    *a = (AttachArgs){ .vm = vo_vm_ref(vm), .fd = fd, .initial = initial,
                       .initial_len = initial_len, .on_closed = on_closed,
                       .userdata = userdata };
    vo_loop_call(d->loop, attach_on_loop, a);
}
