/* spawn.h: running helper programs (qemu-img) to completion with a deadline and
 * captured output, and starting long-lived detached children (QEMU).
 *
 * Helpers die with vireod: every child started by vo_spawn_wait,
 * vo_spawn_wait_split and vo_spawn_helper (and qemu-img's progress runner)
 * gets PR_SET_PDEATHSIG(SIGKILL), so a kill -9 of vireod never leaves a
 * qemu-img or qemu-storage-daemon writing a file no record owns. The kernel
 * sends it when the *thread* that forked exits; each of these calls waits for
 * (reaps) its child before it returns, on the thread that forked it, so the
 * thread always outlives the child whatever thread it is. QEMU and dnsmasq
 * (vo_spawn_detached) do not get it: they outlive vireod by design. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Runs argv, waits at most timeout_ms (then SIGKILL), captures stdout+stderr
 * (last 64 KiB) into *ret_output (may be NULL). Returns 0 when the program
 * exited 0, -EIO when it failed (output says why), -ETIMEDOUT, or -errno. */
int vo_spawn_wait(char *const argv[], int timeout_ms, char **ret_output);
/* The same with stdout and stderr captured apart (e.g. for JSON on stdout
 * and warnings on stderr); each may be NULL. */
int vo_spawn_wait_split(char *const argv[], int timeout_ms, char **ret_stdout, char **ret_stderr);

/* Starts argv detached from us (own session, stdin /dev/null, stdout and
 * stderr appended to log_path). It inherits no fds but pass_fds[0..n_pass),
 * which it gets as fds 3, 4, ... in that order (argv must name them so).
 * Returns 0 with the pid and a pidfd for it. */
int vo_spawn_detached(char *const argv[], const char *log_path, const int *pass_fds,
                      size_t n_pass, pid_t *ret_pid, int *ret_pidfd);
#define VO_SPAWN_FIRST_PASSED_FD 3
/* The same, the child first joining the cgroups whose cgroup.procs files
 * cgroup_procs lists (cgroup.h; NULL: none), so that all it ever allocates
 * is charged there. */
int vo_spawn_detached_in(char *const argv[], const char *log_path, const int *pass_fds,
                         size_t n_pass, char *const *cgroup_procs, pid_t *ret_pid,
                         int *ret_pidfd);

/* The nice value of the processes a host's lease depends on (its etcd
 * member, its fence process): busy guests must not starve them, or a
 * loaded host misses renewals and fences itself (docs/ha.md). */
#define VO_SPAWN_LEASE_HOLDER_NICE (-10)
/* Like vo_spawn_detached without passed fds, at that nice value (set in the
 * child before exec, so every thread it makes inherits it). */
int vo_spawn_detached_favoured(char *const argv[], const char *log_path, pid_t *ret_pid,
                               int *ret_pidfd);

/* Like vo_spawn_detached without passed fds, for a helper that must not
 * outlive vireod (qemu-storage-daemon): SIGKILL when vireod dies. The caller
 * must wait for it (pidfd) before the calling thread can end. */
int vo_spawn_helper(char *const argv[], const char *log_path, pid_t *ret_pid, int *ret_pidfd);

int vo_pidfd_open(pid_t pid);
/* A pidfd for a pid read from a file, only when is_it(pid, userdata) says
 * the process is the one meant (its /proc/PID/cmdline, say): pids are
 * reused within minutes, so a stored one is never signalled unchecked.
 * The pidfd is taken before the check and the process is confirmed still
 * running after it (no window for a reuse in between); signal through it
 * (pidfd_send_signal). -ESRCH when it is not (or no longer) that process. */
int vo_pidfd_open_if(pid_t pid, bool (*is_it)(pid_t pid, void *userdata), void *userdata);

/* In a child after fork: SIGKILL when the thread that forked it (in process
 * parent, the pid before fork) ends; exits at once if parent is gone already. */
void vo_spawn_child_die_with(pid_t parent);

/* In a child after fork, before exec: default signal handling, an empty
 * signal mask, and no fds inherited beyond 0-2. */
void vo_spawn_child_reset(void);
/* The same, keeping fds below first_closed_fd. */
void vo_spawn_child_reset_from(int first_closed_fd);
