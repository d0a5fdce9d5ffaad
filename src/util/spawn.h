/* spawn.h: running helper programs (qemu-img) to completion with a deadline and
 * captured output, and starting long-lived detached children (QEMU). */
#pragma once

#include <sys/types.h>

/* Runs argv, waits at most timeout_ms (then SIGKILL), captures stdout+stderr
 * (last 64 KiB) into *ret_output (may be NULL). Returns 0 when the program
 * exited 0, -EIO when it failed (output says why), -ETIMEDOUT, or -errno. */
int vo_spawn_wait(char *const argv[], int timeout_ms, char **ret_output);

/* Starts argv detached from us (own session, stdin /dev/null, stdout and
 * stderr appended to log_path). It inherits no fds but pass_fds[0..n_pass),
 * which it gets as fds 3, 4, ... in that order (argv must name them so).
 * Returns 0 with the pid and a pidfd for it. */
int vo_spawn_detached(char *const argv[], const char *log_path, const int *pass_fds,
                      size_t n_pass, pid_t *ret_pid, int *ret_pidfd);
#define VO_SPAWN_FIRST_PASSED_FD 3

int vo_pidfd_open(pid_t pid);

/* In a child after fork, before exec: default signal handling, an empty
 * signal mask, and no fds inherited beyond 0-2. */
void vo_spawn_child_reset(void);
/* The same, keeping fds below first_closed_fd. */
void vo_spawn_child_reset_from(int first_closed_fd);
