/* qemu-instance.h: the QEMU driver's view of one running VM, shared by the
 * files that implement its operations (qemu-driver.c and the hot-plug and
 * backup files beside it). Not for use outside src/qemu. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "hypervisor/driver.h"
#include "qemu/qemu-events.h"
#include "qemu/qemu-layout.h"
#include "qemu/qemu-mirror.h"
#include "qemu/qemu-schedstat.h"
#include "qmp/qmp.h"

#define QMP_TIMEOUT_MS 10000

struct VoHvInstance {
    VoHvDriver *driver;
    pid_t pid;
    int pidfd;
    bool is_child; /* started by this vireod, so waitid gives the exit status */
    VoAccel accel;
    pthread_mutex_t qmp_lock; /* held around every use of qmp */
    VoQmp *qmp;
    /* The event monitor (qmp-events.sock): connected by start/attach, then
     * read only by the daemon's event loop (events_read), never under
     * qmp_lock; NULL when QEMU has none (started by an older vireod). */
    VoQmp *events;
    VoQemuEventState event_state;
    char *run_dir, *qmp_path, *events_path, *console_path, *log_path;
    /* The guest agent (qemu-agent.h): its channel's socket, and the
     * session kept open between commands (NULL: none; closed after a
     * timeout), both under agent_lock, which one command holds at a time. */
    char *agent_path;
    char *vnc_path; /* VO_QEMU_VNC_SOCKET: the display's VNC server, when it has one */
    char *vnc_ticket_path; /* VO_QEMU_VNC_TICKET_SOCKET: its twin that asks for a password */
    pthread_mutex_t agent_lock;
    struct VoQemuAgent *agent;
    int64_t agent_used_ms; /* when agent last answered (vo_now_ms) */
    /* Live migration: the hardware layout the VM has (guarded by qmp_lock;
     * NULL when unknown), and whether its vCPUs ran when it began migrating
     * out (so a failed migration resumes it only then). */
    VoQemuLayout *layout;
    char *layout_path;
    bool migration_was_running; /* vCPUs ran when the last migrate started */
    bool migration_post_copy;   /* the last migrate allowed post-copy */
    /* Local disks (qemu-mirror.c, guarded by qmp_lock): the source's
     * mirrors under way (NULL: none); the destination's NBD server runs. */
    VoQemuMirror *mirror;
    bool nbd_serving;
    /* Re-attached (not started by this vireod): mirrors an earlier vireod
     * began may be in QEMU though mirror is NULL (looked for by name before
     * the next mirror starts or when a cancel finds none, then cleared),
     * and an incoming VM's NBD server may run though nbd_serving is false
     * (stopped when it takes over). */
    bool mirror_unknown;
    /* Migration over TLS (qemu-tls.c, guarded by qmp_lock): the
     * tls-creds-x509 object exists, and its endpoint is the server. */
    bool tls_object, tls_server;
    /* QEMU runs as the driver's qemu_user (qemu-confine.h): the files QMP
     * names after its start are handed to it as fds (/dev/fdset/N). */
    bool confined;
    /* The uid it runs as (confined only): the driver's qemu_uid, or with
     * per-VM uids (qemu-uids.h) its own, which also owns own_dir. own_dir:
     * where QEMU writes after its start (screendumps, pmemsave's scratch):
     * RUN/vms/ID/qemu with per-VM uids, else the run dir. */
    uid_t uid;
    char *own_dir;
    /* With per-VM uids: vireod's hold of uid's lock (qemu-uids.h), closed
     * once own_dir is removed after QEMU's exit; -1: none. */
    int uid_lock;
    /* Its cgroup (qemu-cgroup.h), relative to the driver's; NULL: none. */
    char *cgroup;
    /* Its threads' waiting for a CPU, summed by the load op (qemu-load.c,
     * under its lock). */
    VoThreadWaits waits;
    /* The balloon's guest statistics are polled (the load op turned them
     * on), and how often turning them on was refused (set to the most when
     * HMP cannot read them; both under qmp_lock). */
    bool balloon_stats_on;
    int balloon_stats_tries;
};

/* One QMP command with args (borrowed); *ret (may be NULL) gets its
 * answer. Caller holds qmp_lock. A failure's message names the command. */
int vo_qemu_command(VoHvInstance *vm, const char *cmd, json_t *args, json_t **ret,
                    char **ret_error);
/* vo_qemu_command out of band when QEMU's monitor allows it (qmp.h: only
 * migrate-pause, migrate-recover, yank), in band otherwise: answered while
 * QEMU's main loop is blocked (a post-copy destination waiting for a page). */
int vo_qemu_command_oob(VoHvInstance *vm, const char *cmd, json_t *args, json_t **ret,
                        char **ret_error);

/* Runs a QMP job command (args carry its "job-id") and waits, bounded by
 * timeout_ms, for the job to conclude, then dismisses it. Caller holds
 * qmp_lock. */
int vo_qemu_run_job(VoHvInstance *vm, const char *cmd, json_t *args, int timeout_ms,
                    char **ret_error);

/* The last non-empty line a QEMU program wrote to its log (at log_path): the
 * reason it failed; "no output" when there is none. */
char *vo_qemu_log_tail(const char *log_path);

/* The driver's backup op (qemu-backup.c). */
int vo_qemu_backup(VoHvInstance *vm, const VoHvBackupPlan *plan, VoHvBackupResult *ret,
                   char **ret_error);
/* Before a snapshot load: removes vireo's backup bitmaps from the disk nodes
 * of spec (qemu-backup.c). QEMU refuses to load a snapshot into a node with
 * any dirty bitmap; the revert makes them wrong anyway (it drops the backup
 * base, so the next backup is full). Takes qmp_lock per command. */
int vo_qemu_backup_bitmaps_drop(VoHvInstance *vm, const VoVmSpec *spec, char **ret_error);

/* Reads what QEMU placed where (resolved machine version, CPU model, every
 * named device's bus and address, the vCPU devices plugged, the virtio-mem
 * size asked for) into vm->layout and saves it in the run dir
 * (qemu-layout-probe.c). Caller holds qmp_lock; vm->layout is set. */
int vo_qemu_layout_refresh(VoHvInstance *vm, char **ret_error);
/* The same after a hot-plug or unplug: a failure is only logged (the record
 * is refreshed again before a migration). */
void vo_qemu_layout_changed(VoHvInstance *vm);
