/* qemu-driver.c: the real hypervisor driver: launches QEMU detached (own
 * session, pidfile, QMP and console sockets in the VM's run dir), drives it
 * over QMP, notices its exit through a pidfd, and re-attaches after a vireod
 * restart. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hypervisor/driver.h"
#include "qemu/qemu-agent.h"
#include "qemu/qemu-argv.h"
#include "qemu/qemu-cgroup.h"
#include "qemu/qemu-confine.h"
#include "qemu/qemu-display.h"
#include "qemu/qemu-hotplug.h"
#include "qemu/qemu-instance.h"
#include "qemu/qemu-digest.h"
#include "qemu/qemu-load.h"
#include "qemu/qemu-stats.h"
#include "qemu/qemu-migrate.h"
#include "qemu/qemu-uffd.h"
#include "qemu/qemu-uids.h"
#include "qemu/qemu-tls.h"
#include "qemu/qemu-resources.h"
#include "qmp/qmp.h"
#include "util/spawn.h"
#include "util/unix-socket.h"
#include "util/util.h"

/* How long a starting QEMU may take to answer on its monitor: bounded (a
 * stuck QEMU must not hold a start), but loose: on a host busy enough (load
 * 40 on 2 cores, a VM's cgroup sharing the CPU with everything else) a QEMU
 * took over 30 s to get there. */
#define QEMU_START_TIMEOUT_MS 60000
/* A guest agent session idle this long is synchronised again before use. */
#define AGENT_IDLE_MS 1000


static VoHvInstance *instance_new(VoHvDriver *d, const char *run_dir)
{
    VoHvInstance *vm = vo_malloc0(sizeof(*vm));
    vm->driver = d;
    vm->pidfd = -1;
    vm->uid_lock = -1;
    pthread_mutex_init(&vm->qmp_lock, NULL);
    vm->run_dir = vo_strdup(run_dir);
    vm->own_dir = vo_strdup(run_dir);
    vm->uid = d->qemu_uid;
    vm->qmp_path = vo_asprintf("%s/qmp.sock", run_dir);
    vm->events_path = vo_asprintf("%s/qmp-events.sock", run_dir);
    vm->console_path = vo_asprintf("%s/console.sock", run_dir);
    vm->agent_path = vo_asprintf("%s/%s", run_dir, VO_QEMU_AGENT_SOCKET);
    vm->vnc_path = vo_asprintf("%s/%s", run_dir, VO_QEMU_VNC_SOCKET);
    vm->vnc_ticket_path = vo_asprintf("%s/%s", run_dir, VO_QEMU_VNC_TICKET_SOCKET);
    pthread_mutex_init(&vm->agent_lock, NULL);
    vm->log_path = vo_asprintf("%s/qemu.log", run_dir);
    vm->layout_path = vo_asprintf("%s/%s", run_dir, VO_QEMU_LAYOUT_FILE);
    return vm;
}

static void qemu_release(VoHvInstance *vm)
{
    if (!vm)
        return;
    vo_qemu_cgroup_release(vm); /* nothing while its QEMU runs */
    free(vm->cgroup);
    vo_qmp_close(vm->qmp);
    vo_qmp_close(vm->events);
    if (vm->pidfd >= 0)
        close(vm->pidfd);
    if (vm->uid_lock >= 0)
        close(vm->uid_lock);
    pthread_mutex_destroy(&vm->qmp_lock);
    vo_qemu_agent_close(vm->agent);
    pthread_mutex_destroy(&vm->agent_lock);
    free(vm->agent_path);
    free(vm->vnc_path);
    free(vm->vnc_ticket_path);
    vo_qemu_layout_free(vm->layout);
    vo_qemu_mirror_free(vm->mirror);
    free(vm->run_dir);
    free(vm->own_dir);
    free(vm->qmp_path);
    free(vm->events_path);
    free(vm->console_path);
    free(vm->log_path);
    free(vm->layout_path);
    vo_thread_waits_clear(&vm->waits);
    free(vm);
}

char *vo_qemu_log_tail(const char *log_path)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (vo_read_file(log_path, 16 << 20, &text, &len) < 0 || len == 0)
        return vo_strdup("no output");
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = 0;
    char *line = strrchr(text, '\n');
    return vo_strdup(line ? line + 1 : text);
}

static bool process_exited(int pidfd)
{
    struct pollfd p = { .fd = pidfd, .events = POLLIN };
    return poll(&p, 1, 0) > 0;
}

static int qmp_call(VoHvInstance *vm, const char *cmd)
{
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vm->qmp ? vo_qmp_execute(vm->qmp, cmd, NULL, QMP_TIMEOUT_MS, NULL, NULL) : -ENOTCONN;
    pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}

/* Connects QMP, giving up early when QEMU dies first. Only the connect is
 * retried (QEMU may not listen yet); once connected, the greeting and
 * capabilities get the rest of the deadline, since QEMU answers them only
 * when its main loop runs, which a loaded host delays. */
static int connect_qmp(VoHvInstance *vm, int timeout_ms)
{
    int64_t deadline = vo_now_ms() + timeout_ms;
    for (;;) {
        /* Non-blocking (EAGAIN: backlog full, retried until the deadline). */
        int fd = vo_unix_connect(vm->qmp_path, SOCK_NONBLOCK);
        if (fd >= 0) {
            int64_t left = deadline - vo_now_ms();
            return vo_qmp_open_fd(fd, left > 1 ? (int)left : 1, &vm->qmp);
        }
        if (vm->pidfd >= 0 && process_exited(vm->pidfd))
            return -ECHILD;
        if (vo_now_ms() > deadline)
            return fd;
        poll(NULL, 0, 10);
    }
}

/* Connects the event monitor (QEMU listens on it from the start, like on the
 * command monitor): capabilities are negotiated here, on the calling worker
 * thread, so the loop only ever reads it. */
static int connect_events(VoHvInstance *vm, int timeout_ms)
{
    /* Bounded: a QEMU that does not accept (stopped, stuck; its backlog
     * full) must not hold a start or vireod's start-up reconcile. */
    int64_t deadline = vo_now_ms() + timeout_ms;
    int fd = vo_unix_connect_wait(vm->events_path, timeout_ms);
    if (fd < 0)
        return fd;
    int64_t left = deadline - vo_now_ms();
    return vo_qmp_open_fd(fd, left > 1 ? (int)left : 1, &vm->events);
}

/* A start that failed: the VM's own dir goes with the instance (its uid is
 * free again). */
static void launch_fail(VoHvInstance *vm)
{
    if (strcmp(vm->own_dir, vm->run_dir))
        vo_qemu_own_dir_remove(vm->run_dir);
    qemu_release(vm);
}

/* Starts QEMU for spec with its vCPUs stopped. layout: the hardware layout
 * to reproduce (a migration destination, with incoming) or NULL for what a
 * plain start of spec makes; either way it is recorded in the run dir. */
static int launch(VoHvDriver *d, const VoVmSpec *spec, const VoQemuLayout *layout, bool incoming,
                  const char *run_dir, const int *tap_fds, VoHvInstance **ret, char **ret_error)
{
    int r = vo_mkdir_p(run_dir, 0750);
    /* A confined QEMU makes files in its run dir after it dropped to its
     * user: screendumps, memory dumps, incoming sockets. */
    if (r >= 0)
        r = vo_qemu_share_dir(d, run_dir);
    if (r < 0) {
        *ret_error = vo_asprintf("cannot create %s: %s", run_dir, strerror(-r));
        return r;
    }
    VoHvInstance *vm = instance_new(d, run_dir);
    _cleanup_free_ char *pidfile = vo_asprintf("%s/qemu.pid", run_dir);
    (void)unlink(vm->qmp_path);
    (void)unlink(vm->console_path);
    (void)unlink(vm->agent_path);
    (void)unlink(vm->vnc_path);
    (void)unlink(vm->vnc_ticket_path);
    (void)unlink(pidfile);
    (void)unlink(vm->log_path);

    /* A uid of its own (qemu-uids.h), its lock passed to QEMU, which holds
     * it while it lives. */
    _cleanup_close_ int uid_lock = -1;
    _cleanup_free_ char *run_as = NULL;
    if (d->qemu_user && d->qemu_uid_first) {
        free(vm->own_dir);
        vm->own_dir = NULL;
        r = vo_qemu_uid_claim(VO_QEMU_UID_LOCK_DIR, d->qemu_uid_first, d->qemu_uid_last,
                              &vm->uid, &uid_lock, ret_error);
        if (r >= 0)
            r = vo_qemu_own_dir_make(d, run_dir, vm->uid, &vm->own_dir, ret_error);
        if (r < 0) {
            qemu_release(vm);
            return r;
        }
        /* QEMU 10's -run-with user=UID:GID: setgid(GID), setgroups to GID
         * alone, setuid(UID); no passwd entry needed. */
        run_as = vo_asprintf("%u:%u", (unsigned)vm->uid, (unsigned)d->qemu_gid);
    }
    const char *binary = getenv("VIREO_QEMU");
    VoQemuCaps caps = { .binary = binary ? binary : "qemu-system-x86_64",
                        .kvm_usable = d->kvm_usable, .run_as = run_as ? run_as : d->qemu_user };
    vm->confined = d->qemu_user != NULL;
    /* The taps QEMU inherits become its fds 3, 4, ... in NIC order. */
    int pass[VO_VM_MAX_NICS + 1], child_fd[VO_VM_MAX_NICS];
    size_t n_pass = 0;
    for (size_t i = 0; i < spec->n_nics && i < VO_VM_MAX_NICS; i++) {
        child_fd[i] = -1;
        if (tap_fds && tap_fds[i] >= 0) {
            child_fd[i] = VO_SPAWN_FIRST_PASSED_FD + (int)n_pass;
            pass[n_pass++] = tap_fds[i];
        }
    }
    (void)unlink(vm->events_path);
    VoQemuPaths paths = { .qmp_socket = vm->qmp_path, .events_socket = vm->events_path,
                          .console_socket = vm->console_path,
                          .agent_socket = vm->agent_path,
                          .vnc_socket = vm->vnc_path,
                          .vnc_ticket_socket = vm->vnc_ticket_path,
                          .pidfile = pidfile, .tap_fds = child_fd };
    _cleanup_strv_ char **argv = NULL;
    if (layout) {
        vm->accel = layout->accel;
        vm->layout = vo_qemu_layout_copy(layout);
        r = 0;
    } else {
        r = vo_qemu_resolve_accel(spec, &caps, &vm->accel, ret_error);
        if (r >= 0)
            vm->layout = vo_qemu_layout_from_spec(spec, vm->accel);
    }
    if (r >= 0)
        r = vo_qemu_build_argv_layout(spec, &caps, &paths, vm->layout, incoming, &argv, ret_error);
    if (r < 0) {
        launch_fail(vm);
        return r;
    }
    /* What QEMU decides itself (the machine version behind an alias, device
     * addresses) is asked from it when the layout is next needed: a
     * hot-plug or a migration (qemu-layout-probe.c), not on the start path. */
    (void)unlink(vm->layout_path);
    r = vo_qemu_layout_save(vm->layout, run_dir);
    if (r < 0) {
        *ret_error = vo_asprintf("cannot record the VM's layout in %s: %s", run_dir, strerror(-r));
        launch_fail(vm);
        return r;
    }
    /* Kept for operators and the start-latency benchmark. */
    _cleanup_free_ char *argv_path = vo_asprintf("%s/qemu.argv", run_dir);
    _cleanup_free_ char *argv_text = vo_strdup("");
    for (char **a = argv; *a; a++) {
        char *next = vo_asprintf("%s%s\n", argv_text, *a);
        free(argv_text);
        argv_text = next;
    }
    (void)vo_write_file_atomic(argv_path, argv_text, strlen(argv_text));

    _cleanup_strv_ char **cgroup_procs = NULL;
    r = vo_qemu_cgroup_prepare(vm, spec, &cgroup_procs, ret_error);
    if (r < 0) {
        launch_fail(vm);
        return r;
    }
    if (uid_lock >= 0) /* after the taps: their numbers stay those argv names */
        pass[n_pass++] = uid_lock;
    r = vo_spawn_detached_in(argv, vm->log_path, pass, n_pass, cgroup_procs, &vm->pid,
                             &vm->pidfd);
    if (r < 0) {
        *ret_error = vo_asprintf("cannot start %s: %s", argv[0], strerror(-r));
        launch_fail(vm);
        return r;
    }
    vm->is_child = true;
    vm->uid_lock = TAKE_FD(uid_lock); /* the uid stays taken till its dir is gone */
    r = connect_qmp(vm, QEMU_START_TIMEOUT_MS);
    if (r < 0) {
        _cleanup_free_ char *tail = vo_qemu_log_tail(vm->log_path);
        *ret_error = r == -ECHILD ? vo_asprintf("QEMU exited at start: %s", tail)
                                  : vo_asprintf("QEMU did not answer on QMP: %s", strerror(-r));
        syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
        siginfo_t si;
        waitid(P_PIDFD, (id_t)vm->pidfd, &si, WEXITED);
        launch_fail(vm);
        return r == -ECHILD ? -EIO : r;
    }
    /* Its CPU limit on the vCPU threads alone (qemu-cgroup.h). */
    pthread_mutex_lock(&vm->qmp_lock);
    vo_qemu_cgroup_place_vcpus_or_warn(vm, spec);
    pthread_mutex_unlock(&vm->qmp_lock);
    /* QEMU answered on the first monitor, so the second one listens too. */
    r = connect_events(vm, QEMU_START_TIMEOUT_MS);
    if (r < 0)
        log_warn("QEMU event monitor %s: %s; the VM's events go unseen until it exits",
                 vm->events_path, strerror(-r));
    *ret = vm;
    return 0;
}

static int qemu_start(VoHvDriver *d, const VoVmSpec *spec, const char *run_dir,
                      const int *tap_fds, VoHvInstance **ret, char **ret_error)
{
    return launch(d, spec, NULL, false, run_dir, tap_fds, ret, ret_error);
}

/* After a destination failed to come up (its QEMU gone): what its start put
 * in run_dir goes, and run_dir too when the start made it. */
static void clear_run_dir(const char *run_dir, bool made)
{
    static const char *const files[] = { VO_QEMU_LAYOUT_FILE, "qemu.argv", "qemu.pid",
                                         "qmp.sock", "console.sock", VO_QEMU_AGENT_SOCKET,
                                         VO_QEMU_VNC_SOCKET, VO_QEMU_VNC_TICKET_SOCKET,
                                         "qemu.log" };
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        _cleanup_free_ char *path = vo_asprintf("%s/%s", run_dir, files[i]);
        (void)unlink(path);
    }
    vo_qemu_tls_dir_remove(run_dir);
    vo_qemu_own_dir_remove(run_dir);
    if (made)
        (void)rmdir(run_dir);
}

/* Destination of a live migration: the source's twin, paused, listening. */
static int qemu_migrate_prepare(VoHvDriver *d, const VoVmSpec *spec, const char *layout_text,
                                const char *run_dir, const int *tap_fds, const char *uri,
                                bool post_copy, const VoHvMigrationTls *tls, VoHvInstance **ret,
                                char **ret_error)
{
    _cleanup_layout_ VoQemuLayout *layout = NULL;
    int r = vo_qemu_migration_uri_check(uri, ret_error);
    if (r >= 0)
        r = vo_qemu_tls_check(tls, uri, false, ret_error);
    if (r >= 0)
        r = vo_qemu_layout_from_text(layout_text, &layout, ret_error);
    if (r < 0)
        return r;
    if (layout->assumed)
        return vo_error_set(ret_error, -EINVAL,
                            "the source's hardware layout is assumed, not recorded (its QEMU "
                            "was started by a vireod that did not record layouts): its boot "
                            "memory, vCPUs and root ports may differ, so a destination cannot "
                            "be made identical; stop and start the VM once, then migrate it");
    /* A TCG source with virtio-mem and no boot-memory padding (started by
     * a vireod before it): QEMU loses the guest's writes during its copy,
     * or aborts when the boot memory is larger than the hot-plug range
     * (qemu-argv.c, "TCG and a second RAM block"). */
    if (layout->accel == VO_ACCEL_TCG && layout->max_memory_mib > layout->boot_memory_mib &&
        !layout->boot_pad_kib)
        return vo_error_set(ret_error, -EINVAL,
                            "the source runs with TCG and memory hot-plug and was started by a "
                            "vireod without TCG's boot-memory padding: its QEMU would lose the "
                            "guest's writes during the copy (or abort); stop and start the VM "
                            "once, then migrate it");
    bool made = access(run_dir, F_OK) < 0;
    VoHvInstance *vm = NULL;
    r = launch(d, spec, layout, true, run_dir, tap_fds, &vm, ret_error);
    if (r < 0) {
        clear_run_dir(run_dir, made);
        return r;
    }
    /* Over TLS: the credentials, named before QEMU listens (qemu-tls.c). */
    pthread_mutex_lock(&vm->qmp_lock);
    r = vo_qemu_tls_incoming(vm, tls, ret_error);
    pthread_mutex_unlock(&vm->qmp_lock);
    /* Post-copy: a confined QEMU opens /dev/userfaultfd while its
     * capability is set, and only then (qemu-uffd.h). */
    VoQemuUffdGrant uffd = { .fd = -1 };
    if (r >= 0 && post_copy)
        r = vo_qemu_uffd_grant(d, &uffd, ret_error);
    if (r >= 0)
        r = vo_qemu_migrate_incoming(vm, uri, post_copy, ret_error);
    vo_qemu_uffd_revoke(&uffd);
    if (r < 0) {
        syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
        siginfo_t si;
        waitid(P_PIDFD, (id_t)vm->pidfd, &si, WEXITED);
        qemu_release(vm);
        clear_run_dir(run_dir, made);
        return r;
    }
    *ret = vm;
    return 0;
}

static int qemu_layout(VoHvInstance *vm, char **ret_layout, char **ret_error)
{
    return vo_qemu_layout_text(vm, ret_layout, ret_error);
}

/* True when /proc/PID/cmdline is a QEMU started for this VM id (guards
 * against a recycled pid). */
static bool pid_is_vm(pid_t pid, const char *id)
{
    _cleanup_free_ char *path = vo_asprintf("/proc/%d/cmdline", (int)pid);
    _cleanup_free_ char *cmdline = NULL;
    size_t len = 0;
    if (vo_read_file(path, 1 << 20, &cmdline, &len) < 0)
        return false;
    for (size_t off = 0; off < len; off += strlen(cmdline + off) + 1)
        if (!strcmp(cmdline + off, "-uuid") && off + 6 < len && !strcmp(cmdline + off + 6, id))
            return true;
    return false;
}

static int qemu_attach(VoHvDriver *d, const VoVmSpec *spec, const char *run_dir,
                       VoHvInstance **ret)
{
    _cleanup_free_ char *pidfile = vo_asprintf("%s/qemu.pid", run_dir);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(pidfile, 64, &text, NULL) < 0)
        return -ESRCH;
    pid_t pid = (pid_t)atoi(text);
    if (pid <= 0 || !pid_is_vm(pid, spec->id)) {
        vo_qemu_own_dir_remove(run_dir); /* its QEMU is gone */
        return -ESRCH;
    }
    VoHvInstance *vm = instance_new(d, run_dir);
    vm->pid = pid;
    vm->pidfd = vo_pidfd_open(pid);
    vm->mirror_unknown = true; /* an earlier vireod may have left disk mirrors */
    if (vm->pidfd < 0 || connect_qmp(vm, 5000) < 0) {
        qemu_release(vm);
        return -ESRCH;
    }
    /* A QEMU started by an older vireod has no event monitor. */
    int r = connect_events(vm, 5000);
    if (r < 0)
        log_info("QEMU pid %d has no event monitor (%s); its events go unseen until it exits",
                 (int)pid, strerror(-r));
    /* The accelerator is on QEMU's command line. */
    _cleanup_free_ char *argv_path = vo_asprintf("%s/qemu.argv", run_dir);
    _cleanup_free_ char *argv_text = NULL;
    vm->accel = VO_ACCEL_TCG;
    if (vo_read_file(argv_path, 1 << 20, &argv_text, NULL) >= 0 && strstr(argv_text, "\n-accel\nkvm\n"))
        vm->accel = VO_ACCEL_KVM;
    /* Confined or not, and its cgroup, as it was started. */
    vm->confined = argv_text && strstr(argv_text, "\n-run-with\nuser=");
    /* Its own uid (per-VM uids) is on its command line too; its own dir
     * stays its. */
    if (vm->confined && vo_qemu_uid_from_argv(argv_text, &vm->uid)) {
        free(vm->own_dir);
        vm->own_dir = vo_asprintf("%s/" VO_QEMU_OWN_DIR, run_dir);
        /* Held again, as by the vireod that started it: the uid stays
         * taken after QEMU's exit until its dir is gone (qemu_reap). */
        _cleanup_free_ char *hold_error = NULL;
        vm->uid_lock = vo_qemu_uid_hold(VO_QEMU_UID_LOCK_DIR, vm->uid, &hold_error);
        if (vm->uid_lock < 0)
            log_warn("QEMU pid %d: %s", (int)pid, hold_error);
    }
    vo_qemu_cgroup_refind(vm, spec);
    /* The layout it was started with and has now. A VM started by a vireod
     * before layouts were recorded gets what its spec would make, marked
     * assumed: its root ports and boot sizes may differ from that (the spec
     * holds the live vCPUs and memory after hot-plugs), so it is never
     * migrated from it (migrate_prepare refuses it). */
    _cleanup_free_ char *error = NULL;
    if (vo_qemu_layout_load(run_dir, &vm->layout, &error) < 0) {
        log_warn("VM %s: no usable hardware layout in %s (%s): assuming its spec's (it cannot "
                 "be migrated until it is stopped and started again)", spec->name, run_dir,
                 error);
        vm->layout = vo_qemu_layout_from_spec(spec, vm->accel);
        vm->layout->assumed = true;
    }
    *ret = vm;
    return 0;
}

static int qemu_info(VoHvInstance *vm, VoHvInfo *ret)
{
    int running = 0;
    _cleanup_free_ char *status = NULL;
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vm->qmp ? vo_qmp_query_status(vm->qmp, QMP_TIMEOUT_MS, &status, &running) : -ENOTCONN;
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r < 0)
        return r;
    *ret = (VoHvInfo){ .pid = vm->pid, .uid = vm->confined ? vm->uid : geteuid(),
                       .has_uid = true, .accel = vm->accel, .paused = !running,
                       .io_error = !running && !strcmp(status, "io-error") };
    return 0;
}

static int qemu_pause(VoHvInstance *vm) { return qmp_call(vm, "stop"); }
static int qemu_resume(VoHvInstance *vm) { return qmp_call(vm, "cont"); }
static int qemu_powerdown(VoHvInstance *vm) { return qmp_call(vm, "system_powerdown"); }
static int qemu_reset(VoHvInstance *vm) { return qmp_call(vm, "system_reset"); }

static int qemu_kill(VoHvInstance *vm)
{
    if (syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
        return -errno;
    return 0;
}

static int qemu_resize_disk(VoHvInstance *vm, unsigned slot, uint64_t size)
{
    char node[32];
    vo_qemu_disk_node(slot, node);
    json_t *args = json_pack("{s:s, s:I}", "node-name", node, "size", (json_int_t)size);
    _cleanup_free_ char *error = NULL;
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vm->qmp ? vo_qmp_execute(vm->qmp, "block_resize", args, QMP_TIMEOUT_MS, NULL, &error)
                    : -ENOTCONN;
    pthread_mutex_unlock(&vm->qmp_lock);
    json_decref(args);
    if (r < 0 && error)
        log_warn("block_resize %s: %s", node, error);
    return r;
}

/* A command's outcome r (error: QEMU's words) in the caller's words. */
static int command_outcome(const char *cmd, int r, const char *error, char **ret_error)
{
    /* A timeout in its own words: the API puts the store's words for an
     * unknown outcome in place of strerror(ETIMEDOUT) ("cluster has no
     * quorum ..."), which would blame etcd for a slow QEMU. */
    if (r == -ETIMEDOUT && !error)
        return vo_error_set(ret_error, r, "QEMU did not answer %s in time", cmd);
    if (r < 0)
        return vo_error_set(ret_error, r, "QEMU refused %s: %s", cmd, error ? error : strerror(-r));
    return 0;
}

int vo_qemu_command(VoHvInstance *vm, const char *cmd, json_t *args, json_t **ret,
                    char **ret_error)
{
    if (!vm->qmp)
        return vo_error_set(ret_error, -ENOTCONN, "QEMU's monitor is not connected");
    _cleanup_free_ char *error = NULL;
    int r = vo_qemu_confine_execute(vm, cmd, args, ret, &error);
    return command_outcome(cmd, r, error, ret_error);
}

int vo_qemu_command_oob(VoHvInstance *vm, const char *cmd, json_t *args, json_t **ret,
                        char **ret_error)
{
    if (!vm->qmp)
        return vo_error_set(ret_error, -ENOTCONN, "QEMU's monitor is not connected");
    _cleanup_free_ char *error = NULL;
    int r = vo_qmp_execute_oob(vm->qmp, cmd, args, QMP_TIMEOUT_MS, ret, &error);
    return command_outcome(cmd, r, error, ret_error);
}

int vo_qemu_run_job(VoHvInstance *vm, const char *cmd, json_t *args, int timeout_ms,
                   char **ret_error)
{
    const char *job_id = json_string_value(json_object_get(args, "job-id"));
    int r = vo_qmp_execute(vm->qmp, cmd, args, QMP_TIMEOUT_MS, NULL, ret_error);
    if (r < 0)
        return r;
    int64_t deadline = vo_now_ms() + timeout_ms;
    for (;;) {
        json_t *jobs = NULL;
        r = vo_qmp_execute(vm->qmp, "query-jobs", NULL, QMP_TIMEOUT_MS, &jobs, ret_error);
        if (r < 0)
            return r;
        const char *status = NULL, *error = NULL;
        size_t i;
        json_t *job;
        json_array_foreach(jobs, i, job)
            if (!strcmp(json_string_value(json_object_get(job, "id")) ?: "", job_id)) {
                status = json_string_value(json_object_get(job, "status"));
                error = json_string_value(json_object_get(job, "error"));
            }
        bool done = status && !strcmp(status, "concluded");
        if (done && error) {
            *ret_error = vo_strdup(error);
            r = -EIO;
        }
        json_decref(jobs);
        if (done || !status)
            break;
        if (vo_now_ms() > deadline) {
            *ret_error = vo_asprintf("%s did not finish in %d s", cmd, timeout_ms / 1000);
            return -ETIMEDOUT;
        }
        /* QEMU announces each status change of the job (JOB_STATUS_CHANGE):
         * look again as soon as it says anything, at the latest in 50 ms. */
        struct pollfd p = { .fd = vo_qmp_fd(vm->qmp), .events = POLLIN };
        if (poll(&p, 1, 50) > 0)
            (void)vo_qmp_pump(vm->qmp);
    }
    json_t *dismiss = json_pack("{s:s}", "id", job_id);
    (void)vo_qmp_execute(vm->qmp, "job-dismiss", dismiss, QMP_TIMEOUT_MS, NULL, NULL);
    json_decref(dismiss);
    return r;
}

static int qemu_snapshot(VoHvInstance *vm, const char *op, const char *tag,
                         const VoVmSpec *spec, char **ret_error)
{
    json_t *devices = json_array();
    char node[32];
    for (size_t i = 0; i < spec->n_disks; i++) {
        vo_qemu_disk_node(spec->disks[i].slot, node);
        json_array_append_new(devices, json_string(node));
    }
    /* UEFI: the NVRAM (qcow2) is saved, reverted and deleted with the disks. */
    if (spec->firmware == VO_FIRMWARE_UEFI && spec->nvram)
        json_array_append_new(devices, json_string(VO_QEMU_FW_VARS_NODE));
    json_t *args = json_pack("{s:s, s:s, s:o}", "job-id", "vireo-snapshot", "tag", tag,
                             "devices", devices);
    if (strcmp(op, "delete") && spec->n_disks > 0) {
        vo_qemu_disk_node(spec->disks[0].slot, node);
        json_object_set_new(args, "vmstate", json_string(node));
    }
    _cleanup_free_ char *cmd = vo_asprintf("snapshot-%s", op);
    int r = strcmp(op, "load") ? 0 : vo_qemu_backup_bitmaps_drop(vm, spec, ret_error);
    if (r < 0) {
        json_decref(args);
        return r;
    }
    pthread_mutex_lock(&vm->qmp_lock);
    r = vm->qmp ? vo_qemu_run_job(vm, cmd, args, 600000, ret_error) : -ENOTCONN;
    pthread_mutex_unlock(&vm->qmp_lock);
    json_decref(args);
    return r;
}

static int qemu_exit_fd(VoHvInstance *vm) { return vm->pidfd; }

static int qemu_events_fd(VoHvInstance *vm) { return vm->events ? vo_qmp_fd(vm->events) : -1; }

/* Loop thread only; the command monitor and its lock are not touched. */
static int qemu_events_read(VoHvInstance *vm, VoHvEventFn fn, void *userdata)
{
    if (!vm->events)
        return -ECONNRESET;
    return vo_qemu_events_read(vm->events, &vm->event_state, vm, fn, userdata);
}
static const char *qemu_console_socket(VoHvInstance *vm) { return vm->console_path; }

static void ignore_event(VoHvInstance *vm, const VoHvEvent *ev, void *userdata) {}

/* Whether QMP reported a guest-initiated shutdown (its "guest" true: not
 * QEMU ending on a signal or a quit) before the socket closed.
 * The event monitor says so without a lock (reap runs on the loop after
 * the last events were read there); only a QEMU without one (started by
 * an older vireod) is asked on the command monitor, under its lock. */
static bool saw_guest_shutdown(VoHvInstance *vm)
{
    if (vm->events) {
        (void)vo_qemu_events_read(vm->events, &vm->event_state, vm, ignore_event, NULL);
        return vm->event_state.shutdown_seen;
    }
    bool seen = false;
    pthread_mutex_lock(&vm->qmp_lock);
    if (vm->qmp) {
        (void)vo_qmp_pump(vm->qmp);
        json_t *ev;
        while ((ev = vo_qmp_next_event(vm->qmp))) {
            const char *name = json_string_value(json_object_get(ev, "event"));
            if (name && !strcmp(name, "SHUTDOWN") &&
                json_is_true(json_object_get(json_object_get(ev, "data"), "guest")))
                seen = true;
            json_decref(ev);
        }
    }
    pthread_mutex_unlock(&vm->qmp_lock);
    return seen;
}

static void qemu_reap(VoHvInstance *vm, bool *ret_clean, char **ret_reason)
{
    bool guest_shutdown = saw_guest_shutdown(vm);
    /* Its QEMU gone and its dir with it, its uid is free again (not
     * before: a QEMU given it could read what this one left there). */
    if (strcmp(vm->own_dir, vm->run_dir))
        vo_qemu_own_dir_remove(vm->run_dir);
    if (vm->uid_lock >= 0)
        close(vm->uid_lock);
    vm->uid_lock = -1;
    siginfo_t si = { 0 };
    if (vm->is_child && waitid(P_PIDFD, (id_t)vm->pidfd, &si, WEXITED | WNOHANG) == 0 &&
        si.si_pid != 0) {
        /* QEMU's log says what it saw last: an assertion before an abort,
         * "terminating on signal 15 from pid N (cmd)" before a clean exit
         * nobody here asked for. */
        _cleanup_free_ char *tail = vo_qemu_log_tail(vm->log_path);
        if (si.si_code == CLD_EXITED && si.si_status == 0) {
            *ret_clean = true;
            *ret_reason = guest_shutdown ? vo_strdup("guest powered off")
                                         : vo_asprintf("QEMU exited: %s", tail);
        } else if (si.si_code == CLD_EXITED) {
            *ret_clean = false;
            *ret_reason = vo_asprintf("QEMU exited with status %d: %s", si.si_status, tail);
        } else {
            *ret_clean = false;
            *ret_reason = vo_asprintf("QEMU was killed by signal %d (%s): %s", si.si_status,
                                      strsignal(si.si_status), tail);
        }
        return;
    }
    /* Not our child (re-attached after a restart): QMP is all we know. */
    *ret_clean = guest_shutdown;
    *ret_reason = vo_strdup(guest_shutdown ? "guest powered off"
                                           : "QEMU exited unexpectedly (status unknown)");
}

/* Whether something in the guest has the agent's port open, as QEMU sees it
 * (query-chardev's frontend-open of the channel): 0 when it has, -ENOTCONN
 * with a message when not, 1 when QEMU could not tell in time (the agent
 * is then asked anyway). Costs no wait on the guest. */
static int agent_port_open(VoHvInstance *vm, int timeout_ms, char **ret_error)
{
    struct timespec until = vo_deadline_ms(CLOCK_REALTIME, timeout_ms);
    if (pthread_mutex_timedlock(&vm->qmp_lock, &until) != 0)
        return 1;
    json_t *list = NULL;
    int r = vm->qmp ? vo_qmp_execute(vm->qmp, "query-chardev", NULL, timeout_ms, &list, NULL)
                    : -ENOTCONN;
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r == -ETIMEDOUT) /* QEMU serves the channel too: it would not answer either */
        return vo_error_set(ret_error, -ENOTCONN, "the guest agent does not answer: QEMU does "
                            "not answer its monitor");
    int open = r < 0 ? 1 : -1;
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c) {
        if (strcmp(json_string_value(json_object_get(c, "label")) ?: "", "charagent0"))
            continue;
        open = json_is_true(json_object_get(c, "frontend-open")) ? 0 : -ENOTCONN;
    }
    json_decref(list);
    if (open == -1) /* a QEMU started without the channel */
        return vo_error_set(ret_error, -ENOTCONN, "the guest agent does not answer: the VM has "
                            "no guest agent channel (it was started by an older vireod; stop "
                            "and start it)");
    if (open < 0)
        return vo_error_set(ret_error, -ENOTCONN, "the guest agent does not answer: nothing in "
                            "the guest has opened its channel %s (is qemu-guest-agent "
                            "installed and running?)", VO_QEMU_AGENT_PORT);
    return open;
}

/* One guest agent command (driver.h): the session is opened (and brought in
 * step) when there is none, kept while it stays in step. A guest whose port
 * is closed is answered at once (and its session dropped). */
static int qemu_agent_command(VoHvInstance *vm, const char *cmd, json_t *args, unsigned flags,
                              int timeout_ms, json_t **ret, char **ret_error)
{
    int64_t deadline = vo_now_ms() + timeout_ms;
    struct timespec until = vo_deadline_ms(CLOCK_REALTIME, timeout_ms);
    if (pthread_mutex_timedlock(&vm->agent_lock, &until) != 0)
        return vo_error_set(ret_error, -ENOTCONN, "the guest agent does not answer (it is busy "
                            "with another command for longer than %d ms)", timeout_ms);
    int r = agent_port_open(vm, timeout_ms < 1000 ? timeout_ms : 1000, ret_error);
    if (r < 0 && vm->agent) {
        vo_qemu_agent_close(vm->agent);
        vm->agent = NULL;
    }
    if (r > 0)
        r = 0;
    /* A session idle for a while is brought in step again: the guest may
     * have rebooted (a new agent) since, its port closed and opened again
     * between two commands. Commands in a burst (vm show's, exec's polls)
     * share one sync. */
    if (r >= 0 && vm->agent && (!vo_qemu_agent_usable(vm->agent) ||
                                vo_now_ms() - vm->agent_used_ms > AGENT_IDLE_MS)) {
        vo_qemu_agent_close(vm->agent);
        vm->agent = NULL;
    }
    if (r >= 0 && !vm->agent)
        r = vo_qemu_agent_open(vm->agent_path, deadline, &vm->agent, ret_error);
    if (r >= 0) {
        int agent_flags = flags & VO_HV_AGENT_NO_REPLY ? VO_QEMU_AGENT_NO_REPLY : 0;
        r = vo_qemu_agent_call(vm->agent, cmd, args, agent_flags, deadline, ret, ret_error);
        vm->agent_used_ms = vo_now_ms();
    }
    if (vm->agent && !vo_qemu_agent_usable(vm->agent)) {
        vo_qemu_agent_close(vm->agent);
        vm->agent = NULL;
    }
    pthread_mutex_unlock(&vm->agent_lock);
    /* Not answering, in any way: one errno for the callers. */
    if (r < 0 && r != -EIO)
        r = -ENOTCONN;
    return r;
}

static char *qemu_version(VoHvDriver *d)
{
    (void)d;
    const char *binary = getenv("VIREO_QEMU");
    return vo_qemu_version_probe(binary ? binary : "qemu-system-x86_64");
}

static char **qemu_machines(VoHvDriver *d)
{
    (void)d;
    const char *binary = getenv("VIREO_QEMU");
    return vo_qemu_machines_probe(binary ? binary : "qemu-system-x86_64");
}

/* UEFI boots from OVMF's files (Debian's ovmf package): both must be there. */
static int qemu_firmware_check(VoHvDriver *d, VoFirmware firmware, bool secure_boot,
                               char **ret_error)
{
    (void)d;
    if (firmware != VO_FIRMWARE_UEFI)
        return 0;
    const char *files[] = { secure_boot ? VO_OVMF_CODE_SECBOOT : VO_OVMF_CODE,
                            secure_boot ? VO_OVMF_VARS_MS : VO_OVMF_VARS };
    for (size_t i = 0; i < ELEMENTSOF(files); i++)
        if (access(files[i], R_OK) < 0)
            return vo_error_set(ret_error, -EINVAL, "firmware uefi: OVMF is not installed on "
                                "this host (%s: %s; apt-get install ovmf)", files[i],
                                strerror(errno));
    return 0;
}

int vo_qemu_driver_new(VoHvDriver **ret)
{
    VoHvDriver *d = vo_malloc0(sizeof(*d));
    *d = (VoHvDriver){
        .name = "qemu",
        .start = qemu_start,
        .attach = qemu_attach,
        .info = qemu_info,
        .pause = qemu_pause,
        .resume = qemu_resume,
        .powerdown = qemu_powerdown,
        .reset = qemu_reset,
        .kill = qemu_kill,
        .resize_disk = qemu_resize_disk,
        .snapshot = qemu_snapshot,
        .backup = vo_qemu_backup,
        .disk_attach = vo_qemu_disk_attach,
        .disk_detach = vo_qemu_disk_detach,
        .cdrom_change = vo_qemu_cdrom_change,
        .seed_change = vo_qemu_seed_change,
        .screendump = vo_qemu_screendump,
        .send_keys = vo_qemu_send_keys,
        .vnc_socket = vo_qemu_vnc_socket,
        .vnc_ticket = vo_qemu_vnc_ticket,
        .nic_attach = vo_qemu_nic_attach,
        .nic_detach = vo_qemu_nic_detach,
        .query_resources = vo_qemu_query_resources,
        .load = vo_qemu_load,
        .set_vcpus = vo_qemu_set_vcpus,
        .set_memory = vo_qemu_set_memory,
        .events_fd = qemu_events_fd,
        .events_read = qemu_events_read,
        .exit_fd = qemu_exit_fd,
        .reap = qemu_reap,
        .agent_command = qemu_agent_command,
        .console_socket = qemu_console_socket,
        .release = qemu_release,
        .layout = qemu_layout,
        .migrate_prepare = qemu_migrate_prepare,
        .migrate_start = vo_qemu_migrate_start,
        .migrate_query = vo_qemu_migrate_query,
        .migrate_wait = vo_qemu_migrate_wait,
        .migrate_start_post_copy = vo_qemu_migrate_start_post_copy,
        .migrate_continue = vo_qemu_migrate_continue,
        .migrate_recover = vo_qemu_migrate_recover,
        .migrate_resume = vo_qemu_migrate_resume,
        .migrate_pause = vo_qemu_migrate_pause,
        .migrate_cancel = vo_qemu_migrate_cancel,
        .migrate_finish = vo_qemu_migrate_finish,
        .memory_digest = vo_qemu_memory_digest,
        .mirror_export = vo_qemu_mirror_export,
        .mirror_start = vo_qemu_mirror_start,
        .mirror_query = vo_qemu_mirror_query,
        .machines = qemu_machines,
        .version = qemu_version,
        .firmware_check = qemu_firmware_check,
        .stats = vo_qemu_stats,
        .cgroup_update = vo_qemu_cgroup_update,
    };
    const char *dev = getenv("VIREO_KVM_DEVICE");
    d->kvm_usable = vo_qemu_kvm_usable(dev ? dev : "/dev/kvm", "/proc/cpuinfo", &d->kvm_reason);
    *ret = d;
    return 0;
}
