/* qemu-backup.c: backups of a VM's disks through QMP (see qemu-backup.h).
 * Per disk: a new qcow2 target (for an incremental backup its backing file is
 * the previous backup's file of that disk), opened in QEMU without its chain,
 * and a blockdev-backup job; all jobs start in one transaction (one instant
 * for every disk) and complete as a group. Each qcow2 disk carries the VM's
 * persistent dirty bitmap (plan->bitmap); a job synchronises it only when
 * the whole group succeeds, so a backup whose jobs failed loses no change.
 * Jobs cut short (timeout, a failing monitor) are cancelled and waited for,
 * boundedly, before their nodes are closed; the caller is told whether they
 * certainly failed (VoHvBackupResult.jobs_failed). A bandwidth limit
 * (plan->speed) is shared evenly by the jobs as their "speed". */
#include "qemu/qemu-backup.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "qemu/qemu-argv.h"
#include "qemu/qemu-confine.h"
#include "qemu/qemu-devices.h"
#include "qemu/qemu-instance.h"
#include "storage/iscsi-url.h"
#include "storage/qemu-img.h"
#include "util/cancel.h"
#include "util/spawn.h"
#include "util/unix-socket.h"
#include "util/util.h"

#define BACKUP_JOBS_TIMEOUT_MS (6 * 3600 * 1000)
#define QSD_START_TIMEOUT_MS 30000
#define QSD_QUIT_TIMEOUT_MS 30000
#define JOBS_CANCEL_TIMEOUT_MS 30000

typedef struct {
    VoQmp *qmp;
    pthread_mutex_t *lock;
    VoHvInstance *vm; /* the VM's QEMU (its files handed over when confined); NULL: a qsd */
} Monitor;

static int mon_exec(Monitor *m, const char *cmd, json_t *args, json_t **ret, char **ret_error)
{
    if (m->lock)
        pthread_mutex_lock(m->lock);
    int r = m->vm    ? vo_qemu_confine_execute(m->vm, cmd, args, ret, ret_error)
            : m->qmp ? vo_qmp_execute(m->qmp, cmd, args, QMP_TIMEOUT_MS, ret, ret_error)
                     : -ENOTCONN;
    if (m->lock)
        pthread_mutex_unlock(m->lock);
    return r;
}

/* The same, for a command whose failure is only worth a log line. */
static void mon_try(Monitor *m, const char *cmd, json_t *args)
{
    _cleanup_free_ char *error = NULL;
    if (mon_exec(m, cmd, args, NULL, &error) < 0)
        log_warn("backup: %s: %s", cmd, error ? error : "failed");
    json_decref(args);
}

static void job_id(unsigned slot, char ret[32]) { snprintf(ret, 32, "vireo-backup%u", slot); }
static void target_node(unsigned slot, char ret[32]) { snprintf(ret, 32, "vireo-target%u", slot); }

typedef enum { BITMAP_MISSING, BITMAP_OK, BITMAP_INCONSISTENT, BITMAP_BUSY } BitmapState;

/* Whether a disk keeps the persistent bitmap: qcow2 opened read-write. */
static bool has_bitmap(const VoHvBackupDisk *disk)
{
    return disk->format == VO_DISK_QCOW2 && !disk->readonly;
}

/* What QEMU says about each disk's bitmap. */
static int bitmap_states(Monitor *m, const VoHvBackupPlan *plan, BitmapState *states,
                         char **ret_error)
{
    json_t *nodes = NULL;
    json_t *args = json_pack("{s:b}", "flat", 1);
    int r = mon_exec(m, "query-named-block-nodes", args, &nodes, ret_error);
    json_decref(args);
    if (r < 0)
        return r;
    for (size_t i = 0; i < plan->n_disks && r == 0; i++) {
        char node[32];
        vo_qemu_disk_node(plan->disks[i].slot, node);
        json_t *found = NULL, *n;
        size_t k;
        json_array_foreach(nodes, k, n)
            if (!strcmp(json_string_value(json_object_get(n, "node-name")) ?: "", node))
                found = n;
        if (!found) {
            r = vo_error_set(ret_error, -ENODEV, "QEMU has no block node '%s'", node);
            break;
        }
        states[i] = BITMAP_MISSING;
        json_t *b;
        json_array_foreach(json_object_get(found, "dirty-bitmaps"), k, b) {
            if (strcmp(json_string_value(json_object_get(b, "name")) ?: "", plan->bitmap))
                continue;
            states[i] = json_is_true(json_object_get(b, "inconsistent")) ? BITMAP_INCONSISTENT
                        : json_is_true(json_object_get(b, "busy"))       ? BITMAP_BUSY
                                                                          : BITMAP_OK;
        }
    }
    json_decref(nodes);
    return r;
}

/* Why the plan's incremental backup cannot be done, or NULL when it can. */
static char *why_not_incremental(const VoHvBackupPlan *plan, const BitmapState *states)
{
    for (size_t i = 0; i < plan->n_disks; i++) {
        unsigned slot = plan->disks[i].slot;
        if (plan->disks[i].format != VO_DISK_QCOW2)
            return vo_asprintf("the disk in slot %u is raw and cannot hold a dirty bitmap", slot);
        if (plan->disks[i].readonly)
            return vo_asprintf("the disk in slot %u is read-only and cannot keep a dirty bitmap",
                               slot);
        if (!plan->disks[i].parent_path)
            return vo_asprintf("the disk in slot %u is not in the previous backup", slot);
        if (states[i] == BITMAP_MISSING)
            return vo_asprintf("the disk in slot %u has no dirty bitmap", slot);
        if (states[i] == BITMAP_INCONSISTENT)
            return vo_asprintf("the dirty bitmap of the disk in slot %u is inconsistent (its "
                               "QEMU did not close it cleanly)", slot);
    }
    return NULL;
}

/* Before a full backup: every qcow2 disk gets a usable bitmap (an
 * inconsistent one is replaced). A bitmap added a moment before the jobs start
 * holds a few changes the full backup also copies: harmless. */
static int prepare_bitmaps(Monitor *m, const VoHvBackupPlan *plan, const BitmapState *states,
                           char **ret_error)
{
    for (size_t i = 0; i < plan->n_disks; i++) {
        if (!has_bitmap(&plan->disks[i]) || states[i] == BITMAP_OK)
            continue;
        char node[32];
        vo_qemu_disk_node(plan->disks[i].slot, node);
        json_t *args = json_pack("{s:s, s:s}", "node", node, "name", plan->bitmap);
        int r = 0;
        if (states[i] == BITMAP_INCONSISTENT)
            r = mon_exec(m, "block-dirty-bitmap-remove", args, NULL, ret_error);
        if (r >= 0) {
            json_object_set_new(args, "persistent", json_true());
            r = mon_exec(m, "block-dirty-bitmap-add", args, NULL, ret_error);
        }
        json_decref(args);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Each job's share of the plan's bandwidth limit (QEMU's job "speed",
 * bytes/s, for the job's reads and writes alike): an even share, at least 1. */
static uint64_t job_speed(const VoHvBackupPlan *plan)
{
    uint64_t share = plan->speed / plan->n_disks;
    return share ? share : 1;
}

/* One transaction: every disk's job starts at the same instant; grouped, so
 * one failure cancels them all and no bitmap is synchronised. */
static int start_jobs(Monitor *m, const VoHvBackupPlan *plan, bool incremental, char **ret_error)
{
    json_t *actions = json_array();
    for (size_t i = 0; i < plan->n_disks; i++) {
        char node[32], target[32], job[32];
        vo_qemu_disk_node(plan->disks[i].slot, node);
        target_node(plan->disks[i].slot, target);
        job_id(plan->disks[i].slot, job);
        json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:b}", "job-id", job, "device", node,
                                 "target", target, "sync", incremental ? "incremental" : "full",
                                 "auto-dismiss", 0);
        if (plan->speed) /* a bandwidth limit (bytes/s), shared by the jobs */
            json_object_set_new(data, "speed", json_integer((json_int_t)job_speed(plan)));
        if (has_bitmap(&plan->disks[i])) {
            json_object_set_new(data, "bitmap", json_string(plan->bitmap));
            json_object_set_new(data, "bitmap-mode", json_string("on-success"));
        }
        json_array_append_new(actions,
                              json_pack("{s:s, s:o}", "type", "blockdev-backup", "data", data));
    }
    json_t *args = json_pack("{s:o, s:{s:s}}", "actions", actions, "properties",
                             "completion-mode", "grouped");
    int r = mon_exec(m, "transaction", args, NULL, ret_error);
    json_decref(args);
    return r;
}

static bool is_ours(const VoHvBackupPlan *plan, const char *id)
{
    char job[32];
    for (size_t i = 0; id && i < plan->n_disks; i++) {
        job_id(plan->disks[i].slot, job);
        if (!strcmp(job, id))
            return true;
    }
    return false;
}

/* Sleeps until QEMU says something (each job announces its status changes
 * with JOB_STATUS_CHANGE), at most timeout_ms; what it said is queued. */
static void wait_for_news(Monitor *m, int timeout_ms)
{
    struct pollfd p = { .fd = m->qmp ? vo_qmp_fd(m->qmp) : -1, .events = POLLIN };
    if (p.fd < 0 || poll(&p, 1, timeout_ms) <= 0)
        return;
    if (m->lock)
        pthread_mutex_lock(m->lock);
    (void)vo_qmp_pump(m->qmp);
    if (m->lock)
        pthread_mutex_unlock(m->lock);
}

typedef enum { JOBS_RUNNING, JOBS_SUCCEEDED, JOBS_FAILED, JOBS_VANISHED } JobsState;

/* Where our jobs stand (one query-jobs), their combined progress, and for
 * JOBS_FAILED the error of the job that failed first (the others say they
 * were cancelled); negative when query-jobs fails. */
static int jobs_state(Monitor *m, const VoHvBackupPlan *plan, int *ret_percent,
                      char **ret_failure, char **ret_error)
{
    json_t *jobs = NULL;
    int r = mon_exec(m, "query-jobs", NULL, &jobs, ret_error);
    if (r < 0)
        return r;
    size_t seen = 0, concluded = 0;
    uint64_t current = 0, total = 0;
    char *error = NULL;
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job) {
        if (!is_ours(plan, json_string_value(json_object_get(job, "id"))))
            continue;
        seen++;
        current += (uint64_t)json_integer_value(json_object_get(job, "current-progress"));
        total += (uint64_t)json_integer_value(json_object_get(job, "total-progress"));
        if (strcmp(json_string_value(json_object_get(job, "status")) ?: "", "concluded"))
            continue;
        concluded++;
        const char *e = json_string_value(json_object_get(job, "error"));
        if (e && (!error || strstr(error, "cancel")))
            free(error), error = vo_strdup(e);
    }
    json_decref(jobs);
    if (ret_percent)
        *ret_percent = total ? (int)(current * 100 / total) : 0;
    JobsState s = seen < plan->n_disks ? JOBS_VANISHED
                  : concluded < seen   ? JOBS_RUNNING
                  : error              ? JOBS_FAILED
                                       : JOBS_SUCCEEDED;
    if (s == JOBS_FAILED)
        *ret_failure = TAKE_PTR(error);
    free(error);
    return (int)s;
}

/* After a timeout or a failing query-jobs: cancels the jobs (which is
 * asynchronous) and waits, at most JOBS_CANCEL_TIMEOUT_MS, for them to
 * conclude; whether they did, and whether they certainly failed. */
static void cancel_jobs(Monitor *m, const VoHvBackupPlan *plan, bool *ret_concluded,
                        bool *ret_failed)
{
    for (size_t k = 0; k < plan->n_disks; k++) {
        char id[32];
        job_id(plan->disks[k].slot, id);
        mon_try(m, "job-cancel", json_pack("{s:s}", "id", id));
    }
    int64_t deadline = vo_now_ms() + JOBS_CANCEL_TIMEOUT_MS;
    for (;;) {
        _cleanup_free_ char *failure = NULL, *error = NULL;
        int s = jobs_state(m, plan, NULL, &failure, &error);
        if (s == JOBS_SUCCEEDED || s == JOBS_FAILED) {
            *ret_concluded = true;
            *ret_failed = s == JOBS_FAILED;
            return;
        }
        if (s == JOBS_VANISHED || vo_now_ms() > deadline) {
            log_warn("backup: the cancelled jobs did not conclude in %d s; their nodes stay "
                     "open until the next backup", JOBS_CANCEL_TIMEOUT_MS / 1000);
            return;
        }
        if (s < 0)
            poll(NULL, 0, 100);
        else
            wait_for_news(m, 100);
    }
}

/* Waits for every job to conclude, reporting their combined progress; the
 * error of the job that failed first. Says whether the jobs concluded (only
 * then may they be dismissed and their nodes closed) and whether they
 * certainly failed (then no bitmap was synchronised). */
static int wait_jobs(Monitor *m, const VoHvBackupPlan *plan, bool *ret_concluded,
                     bool *ret_failed, char **ret_error)
{
    int64_t deadline = vo_now_ms() + BACKUP_JOBS_TIMEOUT_MS;
    int last_percent = -1;
    for (;;) {
        int percent = 0;
        _cleanup_free_ char *failure = NULL;
        int s = jobs_state(m, plan, &percent, &failure, ret_error);
        if (s == JOBS_SUCCEEDED) {
            *ret_concluded = true;
            return 0;
        }
        if (s == JOBS_FAILED) {
            *ret_concluded = *ret_failed = true;
            return vo_error_set(ret_error, strstr(failure, "No space left") ? -ENOSPC : -EIO,
                                "%s", failure);
        }
        if (s == JOBS_VANISHED)
            return vo_error_set(ret_error, -EIO, "a backup job vanished");
        if (s >= 0 && vo_cancelled()) {
            /* The task was cancelled: the jobs go (bitmap-mode on-success:
             * cancelled jobs synchronise no bitmap, so the base stands). */
            cancel_jobs(m, plan, ret_concluded, ret_failed);
            return vo_error_set(ret_error, -ECANCELED, "cancelled (the backup jobs were "
                                "cancelled in QEMU)");
        }
        if (s < 0 || vo_now_ms() > deadline) {
            int r = s < 0 ? s
                          : vo_error_set(ret_error, -ETIMEDOUT, "the backup did not finish in %d s",
                                         BACKUP_JOBS_TIMEOUT_MS / 1000);
            cancel_jobs(m, plan, ret_concluded, ret_failed);
            return r;
        }
        if (plan->progress && percent != last_percent)
            plan->progress(percent, plan->userdata);
        last_percent = percent;
        wait_for_news(m, 100);
    }
}

/* What a backup cut short by a vireod crash left in this QEMU: its concluded
 * jobs are dismissed and its target nodes closed; one still running is an
 * error (it finishes on its own; try again then). */
static int clear_leftovers(Monitor *m, const VoHvBackupPlan *plan, char **ret_error)
{
    json_t *jobs = NULL;
    int r = mon_exec(m, "query-jobs", NULL, &jobs, ret_error);
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job) {
        const char *id = json_string_value(json_object_get(job, "id"));
        if (!is_ours(plan, id) || r < 0)
            continue;
        if (strcmp(json_string_value(json_object_get(job, "status")) ?: "", "concluded"))
            r = vo_error_set(ret_error, -EBUSY, "an earlier backup job (%s) still runs in "
                             "QEMU; try again when it has finished", id);
        else
            mon_try(m, "job-dismiss", json_pack("{s:s}", "id", id));
    }
    json_decref(jobs);
    if (r < 0)
        return r;
    json_t *nodes = NULL;
    json_t *args = json_pack("{s:b}", "flat", 1);
    r = mon_exec(m, "query-named-block-nodes", args, &nodes, ret_error);
    json_decref(args);
    json_t *n;
    json_array_foreach(nodes, i, n) {
        const char *name = json_string_value(json_object_get(n, "node-name"));
        for (size_t k = 0; name && k < plan->n_disks; k++) {
            char target[32];
            target_node(plan->disks[k].slot, target);
            if (!strcmp(name, target))
                mon_try(m, "blockdev-del", json_pack("{s:s}", "node-name", target));
        }
    }
    json_decref(nodes);
    return r;
}

/* A failed job's target error (a full backup pool) also failed the guest
 * writes its copy-before-write filter could not copy first (QEMU 10.0 has no
 * on-cbw-error for blockdev-backup), and the disk's werror=enospc stopped the
 * VM. The jobs are gone now and the filter with them: a VM stopped by an I/O
 * error is resumed and its writes are retried (a write that fails again
 * stops it again, as any I/O error does). */
static void resume_after_target_error(Monitor *m)
{
    json_t *status = NULL;
    if (mon_exec(m, "query-status", NULL, &status, NULL) < 0)
        return;
    const char *state = json_string_value(json_object_get(status, "status"));
    if (state && !strcmp(state, "io-error")) {
        log_warn("backup: the guest was stopped by an I/O error of the failed backup's "
                 "copy-before-write; resuming it");
        mon_try(m, "cont", NULL);
    }
    json_decref(status);
}

static int backup_over(Monitor m, const VoHvBackupPlan *plan, VoHvBackupResult *ret,
                       char **ret_error);

int vo_qemu_backup_over_qmp(VoQmp *qmp, pthread_mutex_t *lock, const VoHvBackupPlan *plan,
                            VoHvBackupResult *ret, char **ret_error)
{
    return backup_over((Monitor){ .qmp = qmp, .lock = lock }, plan, ret, ret_error);
}

static int backup_over(Monitor m, const VoHvBackupPlan *plan, VoHvBackupResult *ret,
                       char **ret_error)
{
    ret->jobs_failed = true; /* until jobs may have started */
    if (plan->n_disks == 0)
        return vo_error_set(ret_error, -EINVAL, "the VM has no disk to back up");
    _cleanup_free_ BitmapState *states = vo_malloc0(sizeof(BitmapState) * plan->n_disks);
    int r = clear_leftovers(&m, plan, ret_error);
    if (r >= 0)
        r = bitmap_states(&m, plan, states, ret_error);
    for (size_t i = 0; r >= 0 && i < plan->n_disks; i++)
        if (states[i] == BITMAP_BUSY)
            r = vo_error_set(ret_error, -EBUSY, "the dirty bitmap of the disk in slot %u is in "
                             "use by another job", plan->disks[i].slot);
    if (r < 0)
        return r;
    _cleanup_free_ char *why = plan->incremental ? why_not_incremental(plan, states) : NULL;
    bool incremental = plan->incremental && !why;
    /* Told even when it fails: the caller keeps its base only after a failed
     * incremental whose jobs certainly did not succeed (bitmaps untouched). */
    ret->incremental = incremental;
    if (!incremental)
        r = prepare_bitmaps(&m, plan, states, ret_error);

    size_t opened = 0;
    for (size_t i = 0; r >= 0 && i < plan->n_disks; i++) {
        const VoHvBackupDisk *disk = &plan->disks[i];
        r = vo_img_create(disk->target_path, "qcow2", disk->virtual_size,
                          incremental ? disk->parent_path : NULL, "qcow2", ret_error);
        if (r < 0)
            break;
        char target[32];
        target_node(disk->slot, target);
        /* Opened without its backing chain: the job only writes. */
        json_t *args = json_pack("{s:s, s:s, s:{s:s, s:s}, s:n}", "driver", "qcow2", "node-name",
                                 target, "file", "driver", "file", "filename", disk->target_path,
                                 "backing");
        r = mon_exec(&m, "blockdev-add", args, NULL, ret_error);
        json_decref(args);
        if (r >= 0)
            opened++;
    }
    bool started = false, concluded = true;
    if (r >= 0) {
        if (plan->progress)
            plan->progress(0, plan->userdata);
        if (plan->quiesce)
            plan->quiesce(true, plan->userdata);
        r = start_jobs(&m, plan, incremental, ret_error);
        if (plan->quiesce) /* the instant is past once the jobs started */
            plan->quiesce(false, plan->userdata);
        started = r >= 0;
        /* QEMU refused the transaction (-EIO): no job started. Without an
         * answer it may have started them. */
        ret->jobs_failed = r == -EIO;
    }
    if (started) {
        bool failed = false;
        concluded = false;
        r = wait_jobs(&m, plan, &concluded, &failed, ret_error);
        ret->jobs_failed = failed;
    }
    if (!concluded) {
        /* Still running: closing their nodes would fail; the next backup
         * clears them (clear_leftovers). */
        log_warn("backup: jobs left running in QEMU");
        return r;
    }
    for (size_t i = 0; started && i < plan->n_disks; i++) {
        char id[32];
        job_id(plan->disks[i].slot, id);
        json_t *args = json_pack("{s:s}", "id", id);
        (void)mon_exec(&m, "job-dismiss", args, NULL, NULL);
        json_decref(args);
    }
    for (size_t i = 0; i < opened; i++) {
        char target[32];
        target_node(plan->disks[i].slot, target);
        mon_try(&m, "blockdev-del", json_pack("{s:s}", "node-name", target));
    }
    if (r < 0 && started && m.lock)
        resume_after_target_error(&m);
    if (r < 0)
        return r;
    ret->reason = TAKE_PTR(why);
    return 0;
}

int vo_qemu_backup_bitmaps_drop(VoHvInstance *vm, const VoVmSpec *spec, char **ret_error)
{
    Monitor m = { .qmp = vm->qmp, .lock = &vm->qmp_lock, .vm = vm };
    json_t *nodes = NULL;
    json_t *args = json_pack("{s:b}", "flat", 1);
    int r = mon_exec(&m, "query-named-block-nodes", args, &nodes, ret_error);
    json_decref(args);
    for (size_t i = 0; r >= 0 && i < spec->n_disks; i++) {
        char node[32];
        vo_qemu_disk_node(spec->disks[i].slot, node);
        size_t k, j;
        json_t *n, *b;
        json_array_foreach(nodes, k, n) {
            if (strcmp(json_string_value(json_object_get(n, "node-name")) ?: "", node))
                continue;
            json_array_foreach(json_object_get(n, "dirty-bitmaps"), j, b) {
                const char *name = json_string_value(json_object_get(b, "name"));
                if (!name || strncmp(name, VO_BACKUP_BITMAP_PREFIX,
                                     strlen(VO_BACKUP_BITMAP_PREFIX)))
                    continue;
                json_t *remove = json_pack("{s:s, s:s}", "node", node, "name", name);
                r = mon_exec(&m, "block-dirty-bitmap-remove", remove, NULL, ret_error);
                json_decref(remove);
                if (r < 0)
                    break;
            }
        }
    }
    json_decref(nodes);
    return r < 0 ? r : 0;
}

int vo_qemu_backup(VoHvInstance *vm, const VoHvBackupPlan *plan, VoHvBackupResult *ret,
                   char **ret_error)
{
    return backup_over((Monitor){ .qmp = vm->qmp, .lock = &vm->qmp_lock, .vm = vm }, plan, ret,
                       ret_error);
}

/* ---- a stopped VM: qemu-storage-daemon ------------------------------------ */

static char **storage_daemon_argv(const VoHvBackupPlan *plan, const char *socket_path,
                                  const char *pidfile)
{
    const char *binary = getenv("VIREO_QEMU_STORAGE_DAEMON");
    char **argv = NULL;
    vo_strv_pushf(&argv, "%s", binary ? binary : "qemu-storage-daemon");
    for (size_t i = 0; i < plan->n_disks; i++) {
        const VoHvBackupDisk *disk = &plan->disks[i];
        char file_node[32], fmt_node[32];
        snprintf(file_node, sizeof(file_node), "file-disk%u", disk->slot);
        vo_qemu_disk_node(disk->slot, fmt_node);
        json_t *file = NULL;
        if (vo_iscsi_url_is(disk->path)) { /* a LUN: QEMU's initiator, as the VM opens it */
            VoDiskSpec lun = { .slot = disk->slot, .path = (char *)disk->path,
                               .format = disk->format, .readonly = disk->readonly };
            json_t *secret = vo_qemu_disk_secret_props(&lun);
            if (secret) {
                vo_strv_pushf(&argv, "--object");
                vo_strv_push(&argv, json_dumps(secret, JSON_COMPACT));
                json_decref(secret);
            }
            file = vo_qemu_disk_file_props(&lun);
        } else {
            file = json_pack("{s:s, s:s, s:s, s:b}", "driver", "file", "filename", disk->path,
                             "node-name", file_node, "read-only", disk->readonly);
        }
        json_t *fmt = json_pack("{s:s, s:s, s:s, s:b}", "driver",
                                vo_disk_format_to_string(disk->format), "node-name", fmt_node,
                                "file", file_node, "read-only", disk->readonly);
        vo_qemu_lun_no_backing(fmt, disk->path, disk->format);
        char *file_text = json_dumps(file, JSON_COMPACT), *fmt_text = json_dumps(fmt, JSON_COMPACT);
        vo_strv_pushf(&argv, "--blockdev");
        vo_strv_push(&argv, file_text);
        vo_strv_pushf(&argv, "--blockdev");
        vo_strv_push(&argv, fmt_text);
        json_decref(file);
        json_decref(fmt);
    }
    _cleanup_free_ char *escaped = vo_qemu_escape_commas(socket_path);
    vo_strv_pushf(&argv, "--chardev");
    vo_strv_pushf(&argv, "socket,id=vireo-qmp,path=%s,server=on,wait=off", escaped);
    vo_strv_pushf(&argv, "--monitor");
    vo_strv_pushf(&argv, "chardev=vireo-qmp");
    vo_strv_pushf(&argv, "--pidfile");
    vo_strv_pushf(&argv, "%s", pidfile);
    return argv;
}

static bool exited_within(int pidfd, int timeout_ms)
{
    struct pollfd p = { .fd = pidfd, .events = POLLIN };
    return poll(&p, 1, timeout_ms) > 0;
}

/* Connects to the daemon's monitor, giving up early when it dies. */
static int connect_monitor(const char *socket_path, int pidfd, VoQmp **ret)
{
    int64_t deadline = vo_now_ms() + QSD_START_TIMEOUT_MS;
    for (;;) {
        int fd = vo_unix_connect(socket_path, 0);
        if (fd >= 0)
            return vo_qmp_open_fd(fd, (int)(deadline - vo_now_ms()), ret);
        if (exited_within(pidfd, 0))
            return -ECHILD;
        if (vo_now_ms() > deadline)
            return -ETIMEDOUT;
        poll(NULL, 0, 20);
    }
}

/* How the reaped daemon ended, for a message: "exited with status 1", "was
 * killed by signal 9 (Killed)". */
static char *how_it_ended(const siginfo_t *si)
{
    /* It quits cleanly, unasked by us, on SIGTERM, SIGINT or SIGHUP. */
    if (si->si_code == CLD_EXITED && si->si_status == 0)
        return vo_strdup("exited with status 0 (as it does on a SIGTERM, SIGINT or SIGHUP)");
    if (si->si_code == CLD_EXITED)
        return vo_asprintf("exited with status %d", si->si_status);
    if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED)
        return vo_asprintf("was killed by signal %d (%s)", si->si_status,
                           strsignal(si->si_status));
    return vo_strdup("ended");
}

/* The monitor broke in the middle of the backup: the error says how the
 * daemon ended and what its log says last (an assertion, an I/O error), so
 * that a failure tells why. Asked to terminate by a signal it exits with
 * status 0 and logs nothing; a SIGKILL leaves no line either. */
static int storage_daemon_broke(int r, const siginfo_t *si, const char *log_path,
                                char **ret_error)
{
    _cleanup_free_ char *how = how_it_ended(si);
    _cleanup_free_ char *tail = vo_qemu_log_tail(log_path);
    _cleanup_free_ char *was = ret_error && *ret_error ? TAKE_PTR(*ret_error) : NULL;
    log_warn("backup: qemu-storage-daemon %s in the middle of the backup (%s); its log ends: %s",
             how, was ? was : strerror(-r), tail);
    return vo_error_set(ret_error, r,
                        "qemu-storage-daemon %s in the middle of the backup (%s); its log "
                        "ends: %s", how, was ? was : strerror(-r), tail);
}

int vo_qemu_backup_offline(const VoHvBackupPlan *plan, VoHvBackupResult *ret, char **ret_error)
{
    ret->jobs_failed = true; /* until jobs may have started */
    int r = vo_mkdir_p(plan->work_dir, 0750);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot create %s: %s", plan->work_dir, strerror(-r));
    _cleanup_free_ char *socket_path = vo_asprintf("%s/backup-qsd.sock", plan->work_dir);
    _cleanup_free_ char *log_path = vo_asprintf("%s/backup-qsd.log", plan->work_dir);
    _cleanup_free_ char *pidfile = vo_asprintf("%s/%s", plan->work_dir, VO_BACKUP_QSD_PIDFILE);
    (void)unlink(socket_path);
    (void)unlink(log_path);
    _cleanup_strv_ char **argv = storage_daemon_argv(plan, socket_path, pidfile);
    pid_t pid = 0;
    _cleanup_close_ int pidfd = -1;
    r = vo_spawn_helper(argv, log_path, &pid, &pidfd); /* dies with vireod */
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot start %s: %s", argv[0], strerror(-r));
    VoQmp *qmp = NULL;
    r = connect_monitor(socket_path, pidfd, &qmp);
    if (r < 0) {
        _cleanup_free_ char *tail = vo_qemu_log_tail(log_path);
        (void)vo_error_set(ret_error, r, "qemu-storage-daemon %s: %s",
                           r == -ECHILD ? "exited at start" : "did not answer", tail);
        r = r == -ECHILD ? -EIO : r;
    } else
        r = vo_qemu_backup_over_qmp(qmp, NULL, plan, ret, ret_error);
    /* The daemon ended (or closed its monitor) before we told it to quit. */
    bool broke = qmp && (r == -ECONNRESET || exited_within(pidfd, 0));
    /* A clean quit writes the persistent bitmaps into the disks. */
    if (qmp && !broke)
        (void)vo_qmp_execute(qmp, "quit", NULL, QMP_TIMEOUT_MS, NULL, NULL);
    vo_qmp_close(qmp);
    bool killed = false;
    if (!exited_within(pidfd, QSD_QUIT_TIMEOUT_MS)) {
        log_warn("backup: qemu-storage-daemon (pid %d) did not quit; killing it", (int)pid);
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        killed = true;
    }
    siginfo_t si = { 0 };
    (void)waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED);
    if (broke && !killed && r < 0)
        r = storage_daemon_broke(r, &si, log_path, ret_error);
    (void)unlink(socket_path);
    (void)unlink(pidfile);
    if (r >= 0 && !(si.si_code == CLD_EXITED && si.si_status == 0))
        log_warn("backup: qemu-storage-daemon ended badly; the next backup will be full");
    return r;
}

/* A storage daemon started with this pidfile (the pid may be reused). */
static bool is_our_storage_daemon(pid_t pid, void *userdata)
{
    const char *pidfile = userdata;
    _cleanup_free_ char *cmdline_path = vo_asprintf("/proc/%d/cmdline", (int)pid);
    _cleanup_free_ char *cmdline = NULL;
    size_t len = 0;
    if (vo_read_file(cmdline_path, 1 << 20, &cmdline, &len) < 0 || len == 0 ||
        !strstr(cmdline, "qemu-storage-daemon"))
        return false;
    for (size_t off = 0; off < len; off += strlen(cmdline + off) + 1)
        if (!strcmp(cmdline + off, pidfile))
            return true;
    return false;
}

void vo_qemu_backup_kill_leftover(const char *work_dir)
{
    _cleanup_free_ char *pidfile = vo_asprintf("%s/%s", work_dir, VO_BACKUP_QSD_PIDFILE);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(pidfile, 64, &text, NULL) < 0)
        return;
    pid_t pid = (pid_t)atoi(text);
    int pidfd = vo_pidfd_open_if(pid, is_our_storage_daemon, pidfile);
    if (pidfd >= 0) {
        log_warn("backup: killing qemu-storage-daemon %d left by an interrupted backup", (int)pid);
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        (void)exited_within(pidfd, 5000);
        close(pidfd);
    }
    (void)unlink(pidfile);
}
