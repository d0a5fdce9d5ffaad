/* spawn.c: child processes: run-to-completion helpers and detached daemons. */
#include "util/spawn.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "util/util.h"

int vo_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
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

int vo_spawn_wait(char *const argv[], int timeout_ms, char **ret_output)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(pipefd[0]);
        close(pipefd[1]);
        return r;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        vo_spawn_child_reset();
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pipefd[1]);
    size_t cap = 65536, len = 0;
    _cleanup_free_ char *out = vo_malloc0(cap + 1);
    int64_t deadline = vo_now_ms() + timeout_ms;
    bool timed_out = false;
    for (;;) {
        int64_t left = deadline - vo_now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        char buf[4096];
        ssize_t k = read(pipefd[0], buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        /* Keep the tail: errors come last. */
        if (len + (size_t)k > cap) {
            size_t drop = len + (size_t)k - cap;
            if (drop > len)
                drop = len;
            memmove(out, out + drop, len - drop);
            len -= drop;
        }
        memcpy(out + len, buf, (size_t)k > cap ? cap : (size_t)k);
        len += (size_t)k > cap ? cap : (size_t)k;
    }
    close(pipefd[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    out[len] = 0;
    if (ret_output)
        *ret_output = TAKE_PTR(out);
    if (timed_out)
        return -ETIMEDOUT;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
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

int vo_spawn_detached(char *const argv[], const char *log_path, const int *pass_fds,
                      size_t n_pass, pid_t *ret_pid, int *ret_pidfd)
{
    _cleanup_close_ int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (log_fd < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        setsid();
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
