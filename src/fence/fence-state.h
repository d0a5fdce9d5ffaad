/* fence-state.h: the files the host's fence process (vireo-fence) and vireod
 * share in the run dir, and the fence's pure decisions (docs/ha.md,
 * docs/internals.md "Fencing"):
 *
 *   RUN/fence.pid          the fence's pid (checked against /proc/PID/cmdline)
 *   RUN/fence.state        {"lease": ID, "confirmed_until": MONOTONIC_MS},
 *                          rewritten (temp + rename) after each counted renewal
 *                          of an armed lease; at a fencing, its deadline is
 *                          set to the fencing's time
 *   RUN/fence/ha/<vm-id>   the QEMU pid of a running HA VM (vireod writes it)
 *   RUN/fence/post-copy/<vm-id>
 *                          {"to": HOST-ID, "pid": PID}: this host's QEMU of
 *                          the VM (PID) is the source of a post-copy
 *                          migration to HOST-ID and is
 *                          kept (it holds guest pages the destination lacks):
 *                          neither the fence nor vireod's reconciles end it
 *                          (docs/ha.md, "Post-copy sources")
 *   RUN/fenced             {"at_monotonic_ms","at","why","lease","vms":[...]}:
 *                          the fence killed the HA QEMUs; vireod removes it
 *                          once it reconciled on a new lease
 *
 * CLOCK_MONOTONIC is system-wide, so both processes compare its times. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define VO_FENCE_PID_FILE "fence.pid"
#define VO_FENCE_STATE_FILE "fence.state"
#define VO_FENCE_HA_DIR "fence/ha"
#define VO_FENCE_POST_COPY_DIR "fence/post-copy"
#define VO_FENCE_FENCED_FILE "fenced"
#define VO_FENCE_EXE "vireo-fence"

/* The lease's timing: TTL 6 s, a renewal each second, trusted for the TTL
 * minus a 2 s margin from the moment the keepalive was sent. */
#define VO_FENCE_TTL_MS 6000
#define VO_FENCE_RENEW_MS 1000
#define VO_FENCE_RETRY_MS 200 /* after a renewal that failed */
#define VO_FENCE_MARGIN_MS 2000

/* Until when a renewal whose keepalive was sent at t0 (monotonic ms) and
 * was confirmed may be counted on. */
int64_t vo_fence_confirmed_until(int64_t t0_ms, int ttl_ms, int margin_ms);
/* Whether a host that counted on its lease until confirmed_until must
 * fence itself at now: it held one (confirmed_until > 0) and time is up. */
bool vo_fence_expired(int64_t now_ms, int64_t confirmed_until);

/* The fence's lease. Held but not armed (confirmed_until 0) while no
 * confirmation has yet left time for the next one: vireod sees no
 * confirmed lease (RUN/fence.state is not written), so no HA QEMU runs
 * under it and nothing is fenced when it is lost. Armed (confirmed_until >
 * 0, published in RUN/fence.state) it is fenced at its deadline. */
typedef struct {
    int64_t lease;           /* 0: none held */
    int64_t confirmed_until; /* 0: not armed, nothing to fence */
} VoFenceLease;

/* A keepalive or grant of `lease` sent at t0 and confirmed (its read made
 * after it succeeded) at now. An armed lease's deadline moves on. One not
 * armed yet arms only when the deadline leaves the next renewal at least
 * as long as this one took (on a busy machine the first grant, or the
 * first after a fencing, may take seconds: armed with nothing left, the
 * next renewal could not be in time, and the host would fence itself over
 * a lease that was never in danger and under which nothing ran). True
 * when armed now: RUN/fence.state is to be written. */
bool vo_fence_confirmed(VoFenceLease *s, int64_t lease, int64_t t0_ms, int64_t now_ms);
/* The store says the lease is gone. True when it was armed (fence now);
 * one not armed is only dropped (a new one is granted). */
bool vo_fence_lost(VoFenceLease *s);

/* Whether a confirmed_until read at start can be this boot's: no renewal
 * reaches further ahead than the TTL (a run dir that survived a reboot
 * holds a time of the earlier boot's monotonic clock). */
bool vo_fence_state_plausible(int64_t now_ms, int64_t confirmed_until, int ttl_ms);

/* RUN/fence.state. write: atomic (temp + rename; no fsync, as the file
 * does not outlive a boot and a renewal must not wait on the disk). read: -ENOENT
 * without a file, -EINVAL when it is not such a document. */
int vo_fence_state_write(const char *path, int64_t lease, int64_t confirmed_until);
int vo_fence_state_read(const char *path, int64_t *ret_lease, int64_t *ret_confirmed_until);
/* The lease RUN/fence.state (path) names while it is confirmed at now_ms
 * (vireod's view): 0 and *ret_lease; -ENOENT without a file, past its
 * deadline, or with a deadline of an earlier boot (the fence removes such
 * a file at its start, but vireod may read it first). */
int vo_fence_state_confirmed(const char *path, int64_t now_ms, int64_t *ret_lease);

/* Whether /proc/PID/cmdline has an argument equal to arg (exact) or, with
 * substring, containing it. Zombies and gone processes: false. */
bool vo_fence_cmdline_has(pid_t pid, const char *arg, bool substring);
/* Whether process pid runs program exe (argv[0]'s base name). */
bool vo_fence_cmdline_is(pid_t pid, const char *exe);

/* Reads a pid file and checks the process is alive, runs exe and has
 * `arg` among its arguments (NULL: any). 0 and *ret_pid; -ENOENT (no file),
 * -EINVAL (not a pid), -ESRCH (no such live process). */
int vo_fence_pid_check(const char *pidfile, const char *exe, const char *arg, pid_t *ret_pid);
int vo_fence_pid_write(const char *pidfile, pid_t pid);

/* RUN/fence/ha/<vm_id>: written when an HA VM's QEMU runs, removed when it
 * stops. 0 or -errno (remove: missing is 0). */
int vo_fence_ha_write(const char *run_dir, const char *vm_id, pid_t pid);
int vo_fence_ha_remove(const char *run_dir, const char *vm_id);

/* RUN/fence/post-copy/<vm_id>, the "post-copy source kept" mark: written
 * (fsync'd, it must outlive a vireod crash) once the VM is the destination
 * host's (to) and this host's QEMU of it (pid) is the source of a
 * post-copy; removed once that QEMU ended. marked: 1 and *ret_to (may be
 * NULL) when there, readable and naming pid (pid < 0: any QEMU, for a VM
 * whose QEMU vireod has not attached); 0 when not, or unreadable, or an
 * earlier QEMU's. 0 or -errno (remove: missing is 0). */
int vo_fence_post_copy_mark(const char *run_dir, const char *vm_id, const char *to, pid_t pid);
int vo_fence_post_copy_unmark(const char *run_dir, const char *vm_id);
int vo_fence_post_copy_marked(const char *run_dir, const char *vm_id, pid_t pid, char **ret_to);

/* SIGKILL to every QEMU RUN/fence/ha/ lists whose cmdline still names its
 * VM id (pids get reused), but a post-copy source kept (its mark, above,
 * naming the listed pid):
 * paused, its disks no longer written, and its VM another host's, it
 * breaks no HA rule, and killed it would lose the pages the destination's
 * guest still lacks. Returns an array of {"vm","pid","killed"} (a kept one
 * also "kept": "post-copy source"). */
json_t *vo_fence_kill_ha(const char *run_dir);
/* A fencing while RUN/fenced is still there (fenced again before vireod
 * reconciled): the VMs the earlier one killed (in previous, RUN/fenced's
 * text, may be NULL) are appended to vms when it does not name them, so
 * vireod still starts them again. */
void vo_fence_merge_killed(json_t *vms, const char *previous);
/* RUN/fenced (path) removed when it names the lost lease `lost`; one that
 * names another (the fence fenced again meanwhile) stays. True when
 * removed. */
bool vo_fence_fenced_clear(const char *path, int64_t lost);
/* The VM ids RUN/fenced (path) says were killed: NULL-terminated,
 * malloc'd; empty without the file. */
char **vo_fence_fenced_killed(const char *path);
