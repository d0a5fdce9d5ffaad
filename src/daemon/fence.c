/* fence.c: vireod's side of the fence process (fence.h): start or adopt
 * vireo-fence, restart it when it dies, the HA QEMU list it kills from, and
 * what the fence's files say (its lease, the fenced state). */
#include "daemon/fence.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/vm-internal.h"
#include "fence/fence-state.h"
#include "util/spawn.h"
#include "util/util.h"

/* How often the supervisor looks at the fence (a dead one runs again
 * within about this). */
#define SUPERVISE_MS 200

static struct {
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    pid_t pid;   /* the fence's */
    bool child;  /* started by this vireod: reaped with waitpid */
    char *exe;
    char **argv;
    const char *watchdog; /* --fence-watchdog */
} S = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static char *run_path(VoDaemon *d, const char *name)
{
    return vo_asprintf("%s/%s", d->run_dir, name);
}

/* vireo-fence: $VIREO_FENCE, else next to vireod (installed), else the
 * build tree's src/fence/ next to src/daemon/. */
static char *fence_exe(void)
{
    const char *env = getenv("VIREO_FENCE");
    if (env && *env)
        return vo_strdup(env);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return vo_strdup(VO_FENCE_EXE);
    self[n] = 0;
    char *dir = dirname(self);
    char *beside = vo_asprintf("%s/" VO_FENCE_EXE, dir);
    if (access(beside, X_OK) == 0)
        return beside;
    free(beside);
    return vo_asprintf("%s/../fence/" VO_FENCE_EXE, dir);
}

/* fork + setsid + exec: the fence is in a session of its own, so it
 * outlives vireod (and a signal to vireod's group). Only async-signal-safe
 * calls between fork and exec. */
static pid_t spawn_fence(VoDaemon *d)
{
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        (void)setpriority(PRIO_PROCESS, 0, VO_SPAWN_LEASE_HOLDER_NICE);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        syscall(SYS_close_range, 3u, ~0u, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(S.exe, S.argv);
        _exit(127);
    }
    if (devnull >= 0)
        close(devnull);
    if (pid < 0) {
        log_error("cannot start the fence process %s: %s", S.exe, strerror(errno));
        return -1;
    }
    _cleanup_free_ char *pidfile = run_path(d, VO_FENCE_PID_FILE);
    int r = vo_fence_pid_write(pidfile, pid);
    if (r < 0)
        log_warn("cannot write %s: %s", pidfile, strerror(-r));
    log_info("started the fence process %s (pid %d)", S.exe, (int)pid);
    return pid;
}

/* The fence of this run dir, when one runs. */
static pid_t running_fence(VoDaemon *d)
{
    _cleanup_free_ char *pidfile = run_path(d, VO_FENCE_PID_FILE);
    pid_t pid = 0;
    return vo_fence_pid_check(pidfile, VO_FENCE_EXE, d->run_dir, &pid) == 0 ? pid : 0;
}

static bool is_our_fence(pid_t pid, void *userdata)
{
    VoDaemon *d = userdata;
    return vo_fence_cmdline_is(pid, VO_FENCE_EXE) && vo_fence_cmdline_has(pid, d->run_dir, false);
}

static bool fence_alive(VoDaemon *d)
{
    /* Ours also when adopted after a re-exec (same process): reaped here. */
    if (!S.child && S.pid > 0 && waitpid(S.pid, NULL, WNOHANG) == S.pid) {
        log_warn("the fence process (pid %d) ended; starting it again", (int)S.pid);
        return false;
    }
    if (S.child) {
        int status;
        pid_t w = waitpid(S.pid, &status, WNOHANG);
        if (w == S.pid) {
            log_warn("the fence process (pid %d) %s %d; starting it again", (int)S.pid,
                     WIFSIGNALED(status) ? "was killed by signal" : "exited with",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            return false;
        }
        if (w == 0)
            return true;
        /* Not our child any more (ECHILD): look at /proc. */
    }
    if (running_fence(d) == S.pid)
        return true;
    log_warn("the fence process (pid %d) is gone; starting it again", (int)S.pid);
    return false;
}

static void *supervise_thread(void *userdata)
{
    VoDaemon *d = userdata;
    pthread_mutex_lock(&S.lock);
    while (!S.stop) {
        pthread_mutex_unlock(&S.lock);
        if (!fence_alive(d)) {
            pid_t pid = spawn_fence(d);
            S.pid = pid > 0 ? pid : 0;
            S.child = pid > 0;
        }
        pthread_mutex_lock(&S.lock);
        if (!S.stop) {
            /* S.wake is PTHREAD_COND_INITIALIZER: it times on CLOCK_REALTIME
             * (a monotonic deadline would be long past: a busy loop). */
            struct timespec until = vo_deadline_ms(CLOCK_REALTIME, SUPERVISE_MS);
            pthread_cond_timedwait(&S.wake, &S.lock, &until);
        }
    }
    pthread_mutex_unlock(&S.lock);
    return NULL;
}

/* RUN/fence/ha files of QEMUs that are gone go (their VM's file comes back
 * when vireod re-attaches a running HA VM). */
static void drop_stale_ha_files(VoDaemon *d)
{
    _cleanup_free_ char *dir = run_path(d, VO_FENCE_HA_DIR);
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (e->d_name[0] == '.')
            continue;
        _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, e->d_name);
        _cleanup_free_ char *text = NULL;
        int pid = 0;
        if (vo_read_file(path, 64, &text, NULL) == 0)
            pid = atoi(text);
        if (pid <= 0 || !vo_fence_cmdline_has(pid, e->d_name, true))
            (void)unlink(path);
    }
    closedir(dh);
}

/* Standalone: a fence of a cluster this host left stops (SIGTERM). */
static void stop_leftover(VoDaemon *d)
{
    pid_t pid = running_fence(d);
    /* Checked and signalled through one pidfd: a pid reused meanwhile is
     * left alone. */
    int pidfd = pid > 0 ? vo_pidfd_open_if(pid, is_our_fence, d) : -ESRCH;
    if (pidfd >= 0) {
        log_info("not in a cluster: stopping the fence process (pid %d)", (int)pid);
        (void)syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0);
        close(pidfd);
        /* Our child still after a re-exec (cluster leave): reaped. */
        for (int i = 0; i < 40 && waitpid(pid, NULL, WNOHANG) == 0; i++)
            usleep(50000);
    }
    static const char *const files[] = { VO_FENCE_PID_FILE, VO_FENCE_STATE_FILE,
                                         VO_FENCE_FENCED_FILE };
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        _cleanup_free_ char *path = run_path(d, files[i]);
        (void)unlink(path);
    }
}

void vo_fence_set_watchdog(const char *device)
{
    S.watchdog = device;
}

int vo_fence_start(VoDaemon *d)
{
    if (!d->cluster) {
        stop_leftover(d);
        return 0;
    }
    drop_stale_ha_files(d);
    S.exe = fence_exe();
    S.argv = vo_malloc0(sizeof(char *) * 8);
    S.argv[0] = vo_strdup(S.exe);
    S.argv[1] = vo_strdup("--state-dir");
    S.argv[2] = vo_strdup(d->state_dir);
    S.argv[3] = vo_strdup("--run-dir");
    S.argv[4] = vo_strdup(d->run_dir);
    if (S.watchdog) { /* docs/ha.md: real hosts only */
        S.argv[5] = vo_strdup("--watchdog");
        S.argv[6] = vo_strdup(S.watchdog);
    }
    S.pid = running_fence(d);
    S.child = false;
    if (S.pid > 0)
        log_info("adopted the running fence process (pid %d)", (int)S.pid);
    else {
        pid_t pid = spawn_fence(d);
        S.pid = pid > 0 ? pid : 0;
        S.child = pid > 0;
    }
    S.stop = false;
    int r = -pthread_create(&S.thread, NULL, supervise_thread, d);
    S.running = r == 0;
    return r;
}

void vo_fence_stop(VoDaemon *d)
{
    if (S.running) {
        pthread_mutex_lock(&S.lock);
        S.stop = true;
        pthread_cond_signal(&S.wake);
        pthread_mutex_unlock(&S.lock);
        pthread_join(S.thread, NULL);
        S.running = false;
    }
    vo_strv_free(S.argv);
    S.argv = NULL;
    free(S.exe);
    S.exe = NULL;
}

int vo_fence_lease(VoDaemon *d, int64_t *ret_lease)
{
    _cleanup_free_ char *path = run_path(d, VO_FENCE_STATE_FILE);
    return vo_fence_state_confirmed(path, vo_now_ms(), ret_lease);
}

bool vo_fence_is_fenced(VoDaemon *d, char **ret_why, int64_t *ret_lease)
{
    if (!d->cluster)
        return false;
    _cleanup_free_ char *path = run_path(d, VO_FENCE_FENCED_FILE);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(path, 1 << 20, &text, NULL) < 0)
        return false;
    json_t *doc = json_loads(text, 0, NULL);
    if (ret_why) {
        const char *why = json_string_value(json_object_get(doc, "why"));
        json_int_t at = json_integer_value(json_object_get(doc, "at"));
        *ret_why = vo_asprintf("%s, %lld s ago", why ? why : "lost its lease",
                               (long long)(vo_wall_ms() / 1000 - at));
    }
    if (ret_lease)
        *ret_lease = json_integer_value(json_object_get(doc, "lease"));
    json_decref(doc);
    return true;
}

int vo_fence_check_start(VoDaemon *d, char **ret_error)
{
    _cleanup_free_ char *why = NULL;
    if (!vo_fence_is_fenced(d, &why, NULL))
        return 0;
    return vo_error_set(ret_error, -VO_EFENCED,
                        "host %s fenced itself (%s): it starts no VM until it holds a new "
                        "lease and has reconciled (docs/ha.md)", d->host_name, why);
}

void vo_fence_clear(VoDaemon *d, int64_t lost)
{
    _cleanup_free_ char *path = run_path(d, VO_FENCE_FENCED_FILE);
    if (vo_fence_fenced_clear(path, lost))
        log_info("this host is no longer fenced: it holds a new lease and has reconciled");
}

char **vo_fence_killed_vms(VoDaemon *d)
{
    _cleanup_free_ char *path = run_path(d, VO_FENCE_FENCED_FILE);
    return vo_fence_fenced_killed(path);
}

int vo_fence_ha_lease_wait(VoDaemon *d, const char *vm_name, int timeout_ms, int64_t *ret_lease,
                           char **ret_error)
{
    int64_t until = vo_now_ms() + timeout_ms;
    for (;;) {
        int r = vo_fence_check_start(d, ret_error);
        if (r < 0)
            return r;
        if (vo_fence_lease(d, ret_lease) == 0)
            return 0;
        if (vo_now_ms() >= until)
            break;
        usleep(100 * 1000);
    }
    return vo_error_set(ret_error, -VO_EFENCED,
                        "host %s holds no confirmed lease (its fence process has not renewed "
                        "it in time): HA VM '%s' starts only under one, so that a fencing "
                        "can stop it (docs/ha.md)", d->host_name, vm_name);
}

bool vo_fence_ha_covered(VoVm *vm, int64_t lease)
{
    VoDaemon *d = vm->d;
    if (!d->cluster || !vm->spec->ha)
        return true;
    int64_t now_lease = 0;
    if (vo_fence_is_fenced(d, NULL, NULL) || vo_fence_lease(d, &now_lease) < 0 ||
        now_lease != lease)
        return false;
    /* On the kill list with this very pid (a failed write leaves it off).
     * A driver without processes (the fake one: pid 0) has nothing to list. */
    if (vm->info.pid <= 0)
        return true;
    _cleanup_free_ char *path = vo_asprintf("%s/" VO_FENCE_HA_DIR "/%s", d->run_dir,
                                            vm->spec->id);
    _cleanup_free_ char *text = NULL;
    return vo_read_file(path, 64, &text, NULL) == 0 && atoi(text) == (int)vm->info.pid;
}

void vo_fence_vm_sync(VoVm *vm)
{
    VoDaemon *d = vm->d;
    if (!d->cluster || !vm->spec)
        return;
    bool live = (vm->state == VO_VM_STARTING || vm->state == VO_VM_RUNNING ||
                 vm->state == VO_VM_PAUSED || vm->state == VO_VM_STOPPING) &&
                vm->hv && vm->info.pid > 0 && !vm->migrated_away;
    int r = live && vm->spec->ha ? vo_fence_ha_write(d->run_dir, vm->spec->id, vm->info.pid)
                                 : vo_fence_ha_remove(d->run_dir, vm->spec->id);
    if (r < 0)
        log_warn("vm %s: cannot update the fence's HA list: %s", vm->spec->name, strerror(-r));
}
