/* spawn.c: child processes: run-to-completion helpers and detached daemons. */
#include "util/spawn.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "util/cancel.h"
#include "util/cgroup.h"
#include "util/util.h"

int vo_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int vo_pidfd_open_if(pid_t pid, bool (*is_it)(pid_t pid, void *userdata), void *userdata)
{
    if (pid <= 0)
        return -ESRCH;
    int pidfd = vo_pidfd_open(pid);
    if (pidfd < 0)
        return -errno;
    /* Looked at after the pidfd is taken, and the process still runs after
     * the look: what /proc showed was the pidfd's process, not a successor
     * that got its pid in between. */
    struct pollfd p = { .fd = pidfd, .events = POLLIN };
    if (!is_it(pid, userdata) || poll(&p, 1, 0) != 0) {
        close(pidfd);
        return -ESRCH;
    }
    return pidfd;
}

/* In the child after fork: a clean signal state and no inherited fds. */
void vo_spawn_child_reset(void)
{
    vo_spawn_child_reset_from(3);
}

void vo_spawn_child_reset_from(int first_closed_fd)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    syscall(SYS_close_range, (unsigned)first_closed_fd, ~0U, 0);
}

void vo_spawn_child_die_with(pid_t parent)
{
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* The parent may have died before the prctl: then nobody kills us. */
    if (getppid() != parent)
        _exit(126);
}

/* Up to cap bytes of what a child wrote on one pipe; the tail is kept
 * (errors come last). */
typedef struct {
    int fd;
    char *buf;
    size_t len;
} Capture;

#define CAPTURE_CAP 65536

static void capture_add(Capture *c, const char *data, size_t k)
{
    if (k > CAPTURE_CAP) {
        data += k - CAPTURE_CAP;
        k = CAPTURE_CAP;
    }
    if (c->len + k > CAPTURE_CAP) {
        size_t drop = c->len + k - CAPTURE_CAP;
        memmove(c->buf, c->buf + drop, c->len - drop);
        c->len -= drop;
    }
    memcpy(c->buf + c->len, data, k);
    c->len += k;
}

/* Runs argv with stdout on one pipe and stderr on the same one (split
 * false) or on a second one (split true). */
static int spawn_wait(char *const argv[], int timeout_ms, bool split, char **ret_out,
                      char **ret_err)
{
    int pipes[2][2] = { { -1, -1 }, { -1, -1 } };
    size_t n_pipes = split ? 2 : 1;
    for (size_t i = 0; i < n_pipes; i++)
        if (pipe2(pipes[i], O_CLOEXEC) < 0) {
            int r = -errno;
            for (size_t k = 0; k < i; k++) {
                close(pipes[k][0]);
                close(pipes[k][1]);
            }
            return r;
        }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        for (size_t i = 0; i < n_pipes; i++) {
            close(pipes[i][0]);
            close(pipes[i][1]);
        }
        return r;
    }
    if (pid == 0) {
        vo_spawn_child_die_with(parent);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(pipes[0][1], 1);
        dup2(pipes[split ? 1 : 0][1], 2);
        vo_spawn_child_reset();
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    Capture cap[2] = { { .fd = pipes[0][0] }, { .fd = split ? pipes[1][0] : -1 } };
    for (size_t i = 0; i < n_pipes; i++) {
        close(pipes[i][1]);
        cap[i].buf = vo_malloc0(CAPTURE_CAP + 1);
    }
    int64_t deadline = vo_now_ms() + timeout_ms;
    bool timed_out = false, cancelled = false;
    while (cap[0].fd >= 0 || cap[1].fd >= 0) {
        int64_t left = deadline - vo_now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        /* The work this runs for was cancelled (util/cancel.h): the child goes. */
        struct pollfd p[3] = { { .fd = cap[0].fd, .events = POLLIN },
                               { .fd = cap[1].fd, .events = POLLIN },
                               { .fd = vo_cancel_fd(), .events = POLLIN } };
        int n = poll(p, 3, (int)left);
        if (vo_cancelled()) {
            cancelled = true;
            break;
        }
        if (n <= 0)
            continue;
        for (size_t i = 0; i < 2; i++) {
            if (cap[i].fd < 0 || !p[i].revents)
                continue;
            char buf[4096];
            ssize_t k = read(cap[i].fd, buf, sizeof(buf));
            if (k < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (k <= 0) {
                close(cap[i].fd);
                cap[i].fd = -1;
                continue;
            }
            capture_add(&cap[i], buf, (size_t)k);
        }
    }
    for (size_t i = 0; i < 2; i++)
        if (cap[i].fd >= 0)
            close(cap[i].fd);
    if (timed_out || cancelled)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    for (size_t i = 0; i < n_pipes; i++)
        cap[i].buf[cap[i].len] = 0;
    if (ret_out)
        *ret_out = TAKE_PTR(cap[0].buf);
    if (ret_err && split)
        *ret_err = TAKE_PTR(cap[1].buf);
    free(cap[0].buf);
    free(cap[1].buf);
    if (timed_out)
        return -ETIMEDOUT;
    if (cancelled)
        return -ECANCELED;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

int vo_spawn_wait(char *const argv[], int timeout_ms, char **ret_output)
{
    return spawn_wait(argv, timeout_ms, false, ret_output, NULL);
}

int vo_spawn_wait_split(char *const argv[], int timeout_ms, char **ret_stdout, char **ret_stderr)
{
    return spawn_wait(argv, timeout_ms, true, ret_stdout, ret_stderr);
}

/* In the child: pass_fds become 3, 4, ...; first moved above every target
 * so that no dup2 overwrites a source still to be moved. */
static int place_passed_fds(const int *pass_fds, size_t n)
{
    int moved[64];
    if (n > ELEMENTSOF(moved))
        return -E2BIG;
    for (size_t i = 0; i < n; i++) {
        moved[i] = fcntl(pass_fds[i], F_DUPFD, (int)(VO_SPAWN_FIRST_PASSED_FD + n + 64));
        if (moved[i] < 0)
            return -errno;
    }
    for (size_t i = 0; i < n; i++)
        if (dup2(moved[i], VO_SPAWN_FIRST_PASSED_FD + (int)i) < 0)
            return -errno;
    return 0;
}

static int spawn_detached(char *const argv[], const char *log_path, const int *pass_fds,
                          size_t n_pass, char *const *cgroup_procs, bool tied, int nice_value,
                          pid_t *ret_pid, int *ret_pidfd)
{
    _cleanup_close_ int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (log_fd < 0)
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        if (tied)
            vo_spawn_child_die_with(parent);
        if (vo_cgroup_join(cgroup_procs) < 0) {
            dprintf(log_fd, "cannot join its cgroup: %s\n", strerror(errno));
            _exit(126);
        }
        setsid();
        if (nice_value && setpriority(PRIO_PROCESS, 0, nice_value) < 0)
            dprintf(log_fd, "cannot set its nice value to %d: %s\n", nice_value, strerror(errno));
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        if (place_passed_fds(pass_fds, n_pass) < 0)
            _exit(126);
        vo_spawn_child_reset_from(VO_SPAWN_FIRST_PASSED_FD + (int)n_pass);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int pidfd = vo_pidfd_open(pid);
    if (pidfd < 0) {
        int r = -errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return r;
    }
    *ret_pid = pid;
    *ret_pidfd = pidfd;
    return 0;
}

int vo_spawn_detached(char *const argv[], const char *log_path, const int *pass_fds,
                      size_t n_pass, pid_t *ret_pid, int *ret_pidfd)
{
    return spawn_detached(argv, log_path, pass_fds, n_pass, NULL, false, 0, ret_pid, ret_pidfd);
}

int vo_spawn_detached_favoured(char *const argv[], const char *log_path, pid_t *ret_pid,
                               int *ret_pidfd)
{
    return spawn_detached(argv, log_path, NULL, 0, NULL, false, VO_SPAWN_LEASE_HOLDER_NICE,
                          ret_pid, ret_pidfd);
}

int vo_spawn_detached_in(char *const argv[], const char *log_path, const int *pass_fds,
                         size_t n_pass, char *const *cgroup_procs, pid_t *ret_pid, int *ret_pidfd)
{
    return spawn_detached(argv, log_path, pass_fds, n_pass, cgroup_procs, false, 0, ret_pid,
                          ret_pidfd);
}

int vo_spawn_helper(char *const argv[], const char *log_path, pid_t *ret_pid, int *ret_pidfd)
{
    return spawn_detached(argv, log_path, NULL, 0, NULL, true, 0, ret_pid, ret_pidfd);
}
