/* migrate.c: the source side of a live migration (migrate.h; the protocol
 * and its failure cases: docs/internals.md, "Live migration"). The task
 * holds the VM's job lock from start to end: the destination prepares a
 * paused incoming QEMU (peer call), the driver streams memory there, both
 * sides end paused (QEMU's postmigrate here, -S there), their RAM is
 * compared when asked, then one transaction moves the VM's documents to
 * the destination's namespace (state/vm-move.h); only then does the
 * destination continue the VM and this QEMU quit. Any failure before that
 * transaction leaves the VM running here as before and nothing there.
 * This file is the task and its submission; the switch and its outcomes
 * are migrate-switch.c's, the checks before it migrate-checks.c's, the
 * peer calls migrate-peer.c's (migrate-internal.h). */
#include "daemon/migrate.h"
#include "daemon/migrate-internal.h"
#include "daemon/drs-settings.h"
#include "daemon/vm-job.h"

#include <openssl/evp.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/peer-client.h"
#include "conf/names.h"
#include "cluster/migrate-compat.h"
#include "cluster/migrate-converge.h"
#include "daemon/cluster-view.h"
#include "daemon/migrate-resettle.h"
#include "daemon/migrate-safe.h"
#include "daemon/post-copy-kept.h"
#include "daemon/migrate-target.h"
#include "daemon/object-projects.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "state/keys.h"
#include "state/vm-move.h"
#include "state/vm-move-settle.h"
#include "storage/volume-path.h"
#include "util/util.h"

/* A prepare with local disks may copy a linked clone's base image first. */
#define PREPARE_DISKS_TIMEOUT_MS (20 * 60 * 1000)
#define ALIVE_EVERY_MS 10000 /* the disk phase tells the destination it goes on */
#define POLL_MS 200
/* The memory phase is asked more often: the guest is paused from QEMU's
 * completion (or its pre-switchover stop, local disks) until this loop sees
 * it and the destination continues, so each poll's wait is downtime. */
#define MEMORY_POLL_MS 10
#define PROGRESS_EVERY_MS 1000
#define COMMIT_TRIES 5
#define CANCEL_WAIT_MS 30000
/* Post-copy: how long the device state may take to reach the destination
 * once the switch-over goes on, and how long the rest of RAM may make no
 * progress at all before the post-copy phase counts as broken. */
#define POST_COPY_SWITCH_WAIT_MS 120000
#define POST_COPY_STALL_MS (5 * 60 * 1000)
#define QUERY_TRIES 5 /* migrate_query errors in a row before the migration counts as failed */
#define PENDING "(being queued)" /* vm->migration_task until the task has an id */
#define CONSOLE_LOG_SENT (256 * 1024) /* the tail of the console log sent along */

/* ---- the task ------------------------------------------------------------- */

static void migrate_task_free(void *p)
{
    MigrateTask *m = p;
    for (size_t i = 0; i < m->n_disks; i++) {
        free(m->disks[i].pool);
        free(m->disks[i].name);
        free(m->disks[i].format);
        free(m->disks[i].image);
    }
    free(m->disks);
    free(m->pool);
    json_decref(m->spec);
    free(m->intent_vm);
    free(m->intent_name);
    free(m->intent_mig);
    vo_vm_unref(m->vm);
    free(m->to_id);
    free(m->to_name);
    free(m->to_url);
    free(m);
}

/* The tail of the VM's console log as base64 (malloc'd), or NULL. */
static char *console_tail_b64(VoDaemon *d, VoVm *vm)
{
    _cleanup_free_ char *path = vo_vm_console_log_path(d, vm);
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0) {
        fclose(f);
        return NULL;
    }
    long from = size > CONSOLE_LOG_SENT ? size - CONSOLE_LOG_SENT : 0;
    (void)fseek(f, from, SEEK_SET);
    unsigned char *buf = vo_malloc0((size_t)(size - from) + 1);
    size_t n = fread(buf, 1, (size_t)(size - from), f);
    fclose(f);
    char *out = vo_malloc0(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, buf, (int)n);
    free(buf);
    return out;
}

static uint64_t dirty_rate_bytes(const VoHvMigrationProgress *p)
{
    return p->dirty_pages_rate * (p->page_size ? p->page_size : 4096);
}

static json_t *progress_json(const char *phase, const VoHvMigrationProgress *p, int64_t start)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "phase", phase, "bytes_sent",
                     (json_int_t)p->transferred, "bytes_total", (json_int_t)p->total,
                     "bytes_remaining", (json_int_t)p->remaining, "dirty_rate_bytes",
                     (json_int_t)dirty_rate_bytes(p),
                     "expected_downtime_ms", (json_int_t)p->expected_downtime_ms,
                     "elapsed_ms", (json_int_t)(vo_now_ms() - start), "cpu_throttle_percent",
                     (int)p->throttle_pct);
}

/* Ends the migration attempt with the VM still here: the destination's
 * incoming VM is aborted (best effort: a destination that died holds
 * nothing), this QEMU resumed when it ran before. */
static void undo(VoDaemon *d, MigrateTask *m, VoHvInstance *hv, const char *abort_path)
{
    _cleanup_free_ char *error = NULL, *aerror = NULL;
    /* Post-copy's stop before the switch-over: cancelled first (QEMU then
     * resumes the source itself), and waited for (bounded). */
    VoHvMigrationProgress p = { 0 };
    if (m->opts.post_copy && d->driver->migrate_query(hv, &p) >= 0 && p.at_switchover) {
        if (d->driver->migrate_cancel(hv, &error) < 0)
            log_warn("migration to %s: cancelling at the switch-over: %s", m->to_name, error);
        for (int64_t until = vo_now_ms() + CANCEL_WAIT_MS;
             vo_now_ms() < until && (p.status == VO_HV_MIGRATION_ACTIVE ||
                                     p.status == VO_HV_MIGRATION_CANCELLING);) {
            (void)poll(NULL, 0, POLL_MS);
            free(p.error);
            p = (VoHvMigrationProgress){ 0 };
            if (d->driver->migrate_query(hv, &p) < 0)
                break;
        }
    }
    free(p.error);
    free(error);
    error = NULL;
    if (abort_path && vo_migrate_peer_call(d, m->to_url, "DELETE", abort_path, NULL, NULL, &aerror) < 0)
        log_warn("migration to %s: aborting the destination failed: %s", m->to_name, aerror);
    if (d->driver->migrate_finish(hv, VO_HV_MIGRATION_SOURCE, false, false, &error) < 0)
        log_warn("migration to %s: resuming the source failed: %s", m->to_name, error);
}

void vo_migrate_clear_mark(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    free(vm->migration_task);
    vm->migration_task = NULL;
    free(vm->migration_to);
    vm->migration_to = NULL;
    pthread_mutex_unlock(&vm->lock);
}

/* The intent file's phase (migrate-recover.c): written before the step. */
static void intent_phase(MigrateTask *m, const char *phase, int64_t rev)
{
    if (!m->intent.vm)
        return;
    m->intent.phase = phase;
    m->intent.rev = rev;
    (void)vo_migration_intent_save(m->vm->d, &m->intent);
}

/* The prepare request's "disks" (migrate-incoming.c, make_disks). */
static json_t *disks_json(const MigrateTask *m)
{
    json_t *a = json_array();
    for (size_t i = 0; i < m->n_disks; i++) {
        const LocalDisk *x = &m->disks[i];
        json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:I}", "slot", (json_int_t)x->slot, "name",
                              x->name, "pool", m->pool, "format", x->format, "size",
                              (json_int_t)x->size);
        if (x->image && !x->flatten)
            json_object_set_new(o, "image", json_string(x->image));
        json_array_append_new(a, o);
    }
    return a;
}

/* The disk phase: every local disk mirrored into the destination's export
 * until all are in sync (then writes go to both sides until the switch).
 * 0; -ECANCELED when the task was cancelled; else -errno with *ret_error.
 * On any failure the caller's undo cancels the mirrors (migrate_finish). */
static int copy_disks(VoTask *t, MigrateTask *m, VoHvInstance *hv, const char *nbd_uri,
                      const char *alive_path, int64_t start, char **ret_error)
{
    VoDaemon *d = m->vm->d;
    VoHvMirrorDisk *plan = vo_malloc0(sizeof(*plan) * m->n_disks);
    for (size_t i = 0; i < m->n_disks; i++)
        plan[i] = (VoHvMirrorDisk){ .slot = m->disks[i].slot,
                                    .top_only = m->disks[i].image && !m->disks[i].flatten };
    VoHvMigrationTls tls; /* between hosts: mutual TLS, as the memory stream */
    VoHvMirrorPlan p = { .uri = nbd_uri, .disks = plan, .n_disks = m->n_disks,
                         .speed = m->opts.bandwidth, .tls = vo_migration_tls(d, &tls) };
    int r = d->driver->mirror_start(hv, &p, ret_error);
    free(plan);
    if (r < 0)
        return r;
    int64_t shown = 0, pinged = vo_now_ms();
    for (;;) {
        VoHvMirrorProgress q = { 0 };
        r = d->driver->mirror_query(hv, &q);
        if (r < 0 || q.error) {
            r = vo_error_set(ret_error, r < 0 ? r : -EIO, "copying the disks failed: %s",
                             q.error ? q.error : strerror(-r));
            free(q.error);
            return r;
        }
        if (q.ready) {
            m->disk_bytes = q.transferred;
            vo_task_set_details(t, 50, "disks in sync",
                                json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "phase", "disks",
                                          "bytes_sent", (json_int_t)q.transferred,
                                          "bytes_total", (json_int_t)q.total, "disks",
                                          (json_int_t)q.n_disks, "disks_ready",
                                          (json_int_t)q.n_ready, "elapsed_ms",
                                          (json_int_t)(vo_now_ms() - start)));
            return 0;
        }
        if (vo_task_cancelled(t))
            return -ECANCELED;
        if (vo_now_ms() - shown >= PROGRESS_EVERY_MS) {
            shown = vo_now_ms();
            int pct = q.total ? (int)(5 + 45 * (q.transferred > q.total ? q.total
                                                                          : q.transferred) /
                                              q.total)
                              : 5;
            vo_task_set_details(t, pct, "copying disks",
                                json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "phase", "disks",
                                          "bytes_sent", (json_int_t)q.transferred,
                                          "bytes_total", (json_int_t)q.total, "disks",
                                          (json_int_t)q.n_disks, "disks_ready",
                                          (json_int_t)q.n_ready, "elapsed_ms",
                                          (json_int_t)(vo_now_ms() - start)));
        }
        if (vo_now_ms() - pinged >= ALIVE_EVERY_MS) {
            pinged = vo_now_ms();
            _cleanup_free_ char *perr = NULL;
            int k = vo_migrate_peer_call(d, m->to_url, "POST", alive_path, NULL, NULL, &perr);
            if (k == -ENOENT)
                return vo_error_set(ret_error, -EIO, "the destination dropped the incoming "
                                    "VM: %s", perr);
        }
        (void)poll(NULL, 0, POLL_MS);
    }
}

/* Guest RAM compared on both sides (both paused: the source stopped, the
 * destination not yet continued). 0, or -errno with *error. */
static int verify_memory(VoDaemon *d, MigrateTask *m, VoHvInstance *hv, const char *digest_path,
                         char **error)
{
    char here[65] = "";
    json_t *answer = NULL;
    int r = d->driver->memory_digest ? d->driver->memory_digest(hv, here, error)
                                     : vo_error_set(error, -EOPNOTSUPP, "driver has no digest");
    if (r >= 0)
        r = vo_migrate_peer_call(d, m->to_url, "POST", digest_path, NULL, &answer, error);
    const char *there = json_string_value(json_object_get(answer, "digest"));
    if (r >= 0 && (!there || strcmp(there, here)))
        r = vo_error_set(error, -EIO, "guest RAM differs between source (sha256 %s) and "
                         "destination (sha256 %s)", here, there ? there : "none");
    json_decref(answer);
    return r;
}

int vo_migrate_continue_switchover(VoDaemon *d, VoHvInstance *hv, bool *ret_post_copy,
                                   char **error)
{
    *ret_post_copy = false;
    int r = d->driver->migrate_continue(hv, error);
    int64_t deadline = vo_now_ms() + POST_COPY_SWITCH_WAIT_MS;
    while (r >= 0) {
        VoHvMigrationProgress p = { 0 };
        r = d->driver->migrate_query(hv, &p);
        _cleanup_free_ char *why = p.error;
        if (r < 0)
            return vo_error_set(error, r, "%s", why ? why : strerror(-r));
        if (p.status == VO_HV_MIGRATION_COMPLETED)
            return 0;
        if (p.post_copy && !p.post_copy_paused && !p.post_copy_recovering) {
            *ret_post_copy = true;
            return 0;
        }
        if (p.status != VO_HV_MIGRATION_ACTIVE || p.post_copy_paused)
            return vo_error_set(error, -EIO, "the switch-over failed (%s): %s",
                                p.post_copy_paused ? "post-copy paused"
                                                   : vo_hv_migration_status_to_string(p.status),
                                why ? why : "no reason given");
        if (vo_now_ms() > deadline)
            return vo_error_set(error, -ETIMEDOUT, "the device state did not reach the "
                                "destination within %d s", POST_COPY_SWITCH_WAIT_MS / 1000);
        (void)poll(NULL, 0, MEMORY_POLL_MS);
    }
    return r;
}

int vo_migrate_finish_post_copy(VoTask *t, VoDaemon *d, VoHvInstance *hv, int64_t start,
                                VoHvMigrationProgress *fin, char **error)
{
    uint64_t last = 0;
    int64_t moved_at = vo_now_ms(), shown = 0;
    int errors = 0, stall_ms = vo_migrate_post_copy_stall_ms(POST_COPY_STALL_MS);
    for (;;) {
        free(fin->error);
        *fin = (VoHvMigrationProgress){ 0 };
        int r = d->driver->migrate_query(hv, fin);
        if (r < 0 && ++errors >= QUERY_TRIES)
            return vo_error_set(error, r, "QEMU does not answer: %s",
                                fin->error ? fin->error : strerror(-r));
        if (r >= 0) {
            errors = 0;
            if (fin->status == VO_HV_MIGRATION_COMPLETED)
                return 0;
            if (fin->status != VO_HV_MIGRATION_ACTIVE || fin->post_copy_paused)
                return vo_error_set(error, -EIO, "%s: %s",
                                    fin->post_copy_paused
                                        ? "post-copy paused"
                                        : vo_hv_migration_status_to_string(fin->status),
                                    fin->error ? fin->error : "no reason given");
            if (fin->transferred != last) {
                last = fin->transferred;
                moved_at = vo_now_ms();
            }
        }
        if (vo_now_ms() - moved_at > stall_ms)
            return vo_error_set(error, -ETIMEDOUT, "no page sent for %d s", stall_ms / 1000);
        if (t && vo_now_ms() - shown >= PROGRESS_EVERY_MS) {
            shown = vo_now_ms();
            vo_task_set_details(t, 96, "post-copy: the rest of memory",
                                progress_json("post-copy", fin, start));
        }
        (void)poll(NULL, 0, POLL_MS);
    }
}

static int task_migrate_run(VoTask *t, void *userdata);

/* The task; its intent file goes at its end, whatever the outcome (a
 * vireod that dies keeps it for the next start). */
static int task_migrate(VoTask *t, void *userdata)
{
    MigrateTask *m = userdata;
    int r = task_migrate_run(t, userdata);
    if (m->intent.vm && !m->keep_intent)
        vo_migration_intent_drop(m->vm->d, m->intent.vm);
    return r;
}

static int task_migrate_run(VoTask *t, void *userdata)
{
    MigrateTask *m = userdata;
    VoVm *vm = m->vm;
    VoDaemon *d = vm->d;
    int64_t start = vo_now_ms();
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    _cleanup_free_ char *vm_id = vo_strdup(vm->spec->id);
    VoVmState state = vm->state;
    VoHvInstance *hv = vm->hv;
    bool gone = vm->migrated_away;
    /* Why it ended, when it did since the request was taken (its QEMU
     * exited or was killed): the refusal says so. */
    _cleanup_free_ char *ended = !gone && vm->exit_reason ? vo_strdup(vm->exit_reason) : NULL;
    json_t *doc = gone ? NULL : vo_vm_document_locked(vm);
    VoVmSpec *now = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    /* Again under the job: a CD-ROM insert queued before the migration ran
     * first. */
    _cleanup_free_ char *cd_error = NULL;
    int cd = vo_migrate_check_cdrom(d, now, "vm migrate", &cd_error);
    vo_vm_spec_free(now);
    if (cd < 0 && !gone) {
        json_decref(doc);
        vo_migrate_clear_mark(vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, cd, "%s", cd_error);
    }
    if (gone || !hv || (state != VO_VM_RUNNING && state != VO_VM_PAUSED)) {
        json_decref(doc);
        vo_migrate_clear_mark(vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -EBUSY, "VM '%s' is not running here (it is %s%s%s)", name,
                            gone ? "migrated away" : vo_vm_state_to_string(state),
                            ended ? ": " : "", ended ? ended : "");
    }
    bool resume = state == VO_VM_RUNNING;
    char mig_id[37];
    (void)vo_uuid_generate(mig_id);
    _cleanup_free_ char *base_path = vo_asprintf("/v1/migrations/incoming/%s", mig_id);
    _cleanup_free_ char *digest_path = vo_asprintf("%s/digest", base_path);
    _cleanup_free_ char *commit_path = vo_asprintf("%s/commit", base_path);
    _cleanup_free_ char *alive_path = vo_asprintf("%s/alive", base_path);
    _cleanup_free_ char *error = NULL, *layout = NULL;
    json_t *answer = NULL;
    int r;

    /* 1. The destination: a paused incoming QEMU on the same hardware. */
    vo_task_set_details(t, 2, "preparing the destination",
                        json_pack("{s:s, s:s}", "phase", "prepare", "to", m->to_name));
    r = d->driver->layout(hv, &layout, &error);
    if (r < 0) {
        json_decref(doc);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, false);
        return vo_task_fail(t, r, "cannot read VM '%s''s hardware layout: %s", name, error);
    }
    m->spec = json_incref(json_object_get(doc, "spec"));
    m->intent_vm = vo_strdup(vm_id);
    m->intent_name = vo_strdup(name);
    m->intent_mig = vo_strdup(mig_id);
    m->intent = (VoMigrateIntent){ .role = VO_MIGRATE_ROLE_SOURCE, .vm = m->intent_vm,
                                   .name = m->intent_name, .migration = m->intent_mig,
                                   .peer = m->to_id, .peer_url = m->to_url, .resume = resume,
                                   .spec = m->spec };
    intent_phase(m, "prepare", 0);
    json_t *req = json_pack("{s:s, s:o, s:s, s:s, s:b}", "id", mig_id, "vm", doc, "layout",
                            layout, "source_host", d->host_id, "resume", resume);
    if (m->n_disks)
        json_object_set_new(req, "disks", disks_json(m));
    if (m->opts.post_copy)
        json_object_set_new(req, "post_copy", json_true());
    r = vo_migrate_peer_call_timeout(d, m->to_url, "POST", "/v1/migrations/incoming", req,
                                     m->n_disks ? PREPARE_DISKS_TIMEOUT_MS : PEER_TIMEOUT_MS,
                                     &answer, &error);
    json_decref(req);
    const char *uri = json_string_value(json_object_get(answer, "uri"));
    const char *nbd_uri = json_string_value(json_object_get(answer, "nbd_uri"));
    if (r >= 0 && !uri)
        r = vo_error_set(&error, -EPROTO, "the destination answered no URI");
    if (r >= 0 && m->n_disks && !nbd_uri) {
        r = vo_error_set(&error, -EPROTO, "the destination answered no disk export");
        _cleanup_free_ char *aerror = NULL;
        (void)vo_migrate_peer_call(d, m->to_url, "DELETE", base_path, NULL, NULL, &aerror);
    }
    if (r < 0) {
        json_decref(answer);
        /* No answer (a timeout, a 5xx): it may have prepared all the same. */
        if (r != -EINVAL && r != -EBUSY && r != -ENOENT && r != -EEXIST) {
            _cleanup_free_ char *aerror = NULL;
            (void)vo_migrate_peer_call(d, m->to_url, "DELETE", base_path, NULL, NULL, &aerror);
        }
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, false);
        return vo_task_fail(t, r, "host '%s' cannot take VM '%s': %s", m->to_name, name, error);
    }
    _cleanup_free_ char *uri_copy = vo_strdup(uri);
    _cleanup_free_ char *nbd_copy = vo_strdup(nbd_uri);
    int64_t at_prepared = vo_now_ms(); /* the phases' ends, for the result's phases_ms */
    json_decref(answer);
    answer = NULL;

    /* 1b. Local disks: mirrored there until in sync, in the same task. */
    if (m->n_disks) {
        vo_task_set_details(t, 5, "copying disks",
                            json_pack("{s:s, s:I, s:I}", "phase", "disks", "bytes_sent",
                                      (json_int_t)0, "bytes_total", (json_int_t)0));
        log_info("vm %s: copying %zu local disk(s) to host %s (%s)", name, m->n_disks,
                 m->to_name, nbd_copy);
        intent_phase(m, "disks", 0);
        r = copy_disks(t, m, hv, nbd_copy, alive_path, start, &error);
        if (r < 0) {
            _cleanup_free_ char *cerr = NULL;
            if (d->driver->migrate_cancel(hv, &cerr) < 0) /* the mirrors */
                log_warn("vm %s: migrate_cancel: %s", name, cerr);
            undo(d, m, hv, base_path);
            vo_migrate_clear_mark(vm);
            vo_vm_job_end(vm, true);
            if (r == -ECANCELED) {
                log_info("vm %s: migration to %s cancelled while copying disks; the VM runs "
                         "on here", name, m->to_name);
                return vo_task_fail(t, -ECANCELED, "cancelled: VM '%s' runs on here", name);
            }
            log_warn("vm %s: migration to %s failed: %s", name, m->to_name, error);
            return vo_task_fail(t, r, "migration of VM '%s' to host '%s' failed (the VM "
                                "runs on here): %s", name, m->to_name, error);
        }
    }

    /* 2. Memory. */
    int64_t at_disks = vo_now_ms();
    VoHvMigrationOptions opts = {
        .max_bandwidth = m->opts.bandwidth ? m->opts.bandwidth : VO_MIGRATE_UNLIMITED_BANDWIDTH,
        .downtime_limit_ms = m->opts.max_downtime_ms ? m->opts.max_downtime_ms
                                                     : VO_MIGRATE_DEFAULT_DOWNTIME_MS,
        .auto_converge = true,
        .force_converge = m->opts.force_converge,
        .post_copy = m->opts.post_copy,
        .post_copy_bandwidth = vo_migrate_test_post_copy_bandwidth(),
    };
    unsigned converge_s = m->opts.converge_timeout_s ? m->opts.converge_timeout_s
                                                     : VO_MIGRATE_DEFAULT_CONVERGE_TIMEOUT_S;
    VoHvMigrationTls tls;
    opts.tls = vo_migration_tls(d, &tls); /* between hosts: mutual TLS */
    if (vo_task_cancelled(t)) { /* cancelled while the destination prepared */
        _cleanup_free_ char *aerror = NULL;
        (void)vo_migrate_peer_call(d, m->to_url, "DELETE", base_path, NULL, NULL, &aerror);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, false);
        return vo_task_fail(t, -ECANCELED, "cancelled: VM '%s' runs on here", name);
    }
    log_info("vm %s: migrating to host %s (%s)", name, m->to_name, uri_copy);
    intent_phase(m, "memory", 0);
    r = d->driver->migrate_start(hv, uri_copy, &opts, &error);
    if (r < 0) {
        undo(d, m, hv, base_path);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, true);
        return vo_task_fail(t, r, "cannot start migrating VM '%s': %s", name, error);
    }
    int64_t at_migrate = vo_now_ms();
    VoHvMigrationProgress p = { 0 };
    int64_t shown = 0, cancel_at = 0, memory_start = vo_now_ms(), switch_start = 0;
    bool cancelled = false, unconfirmed = false, post_copy_asked = false, post_copy_on = false;
    _cleanup_free_ char *stuck = NULL; /* did not converge in time: why */
    unsigned max_throttle = 0;
    int query_errors = 0;
    for (;;) {
        free(p.error);
        p.error = NULL;
        r = d->driver->migrate_query(hv, &p);
        if (r < 0 && ++query_errors < QUERY_TRIES) { /* it may have completed all the same */
            (void)poll(NULL, 0, POLL_MS);
            continue;
        }
        if (r < 0)
            break;
        query_errors = 0;
        if (p.status == VO_HV_MIGRATION_COMPLETED || p.status == VO_HV_MIGRATION_FAILED ||
            p.status == VO_HV_MIGRATION_CANCELLED)
            break;
        if (p.at_switchover && !cancelled && !stuck)
            break; /* post-copy: both paused before the switch-over (below) */
        if (!cancelled && vo_task_cancelled(t)) {
            cancelled = true;
            cancel_at = vo_now_ms();
            _cleanup_free_ char *cerr = NULL;
            if (d->driver->migrate_cancel(hv, &cerr) < 0)
                log_warn("vm %s: migrate_cancel: %s", name, cerr);
        }
        if (p.throttle_pct > max_throttle)
            max_throttle = p.throttle_pct;
        if (!p.switching)
            switch_start = 0;
        else if (!switch_start)
            switch_start = vo_now_ms();
        VoConvergeView converge = { .progress = &p, .elapsed_ms = vo_now_ms() - memory_start,
                                    .switching_ms = switch_start ? vo_now_ms() - switch_start : 0,
                                    .limit_s = converge_s, .max_throttle = max_throttle,
                                    .force = m->opts.force_converge };
        /* Post-copy: once the first full pass is sent (QEMU's second dirty
         * sync), the rest follows after the switch-over instead. */
        if (m->opts.post_copy && !post_copy_asked && !cancelled && !stuck &&
            p.status == VO_HV_MIGRATION_ACTIVE && !p.switching && p.passes >= 2) {
            post_copy_asked = true;
            _cleanup_free_ char *perr = NULL;
            post_copy_on = d->driver->migrate_start_post_copy(hv, &perr) >= 0;
            if (!post_copy_on) /* asked once: the converge limit still holds */
                log_warn("vm %s: the switch to post-copy was refused (pre-copy goes on): %s",
                         name, perr);
            else
                log_info("vm %s: switching to post-copy after %llu MiB", name,
                         (unsigned long long)(p.transferred >> 20));
        }
        if (!cancelled && !stuck && !post_copy_on && vo_migrate_not_converging(&converge)) {
            /* Not converged within the limit: aborted as a cancel is. */
            stuck = vo_migrate_not_converged_why(&converge);
            log_warn("vm %s: migration to %s %s", name, m->to_name, stuck);
            cancel_at = vo_now_ms();
            _cleanup_free_ char *cerr = NULL;
            if (d->driver->migrate_cancel(hv, &cerr) < 0)
                log_warn("vm %s: migrate_cancel: %s", name, cerr);
        }
        if (p.status == VO_HV_MIGRATION_ACTIVE && p.transferred > 0 &&
            vo_migrate_fault("exit-in-memory")) /* test: the source dies mid-copy */
            _exit(70);
        if ((cancelled || stuck) && vo_now_ms() - cancel_at > CANCEL_WAIT_MS) {
            unconfirmed = true; /* no final status: not resumed over a cancel under way */
            break;
        }
        if (vo_now_ms() - shown >= PROGRESS_EVERY_MS) {
            shown = vo_now_ms();
            int pct = p.total ? (int)(5 + 85 * (p.transferred > p.total ? p.total
                                                                          : p.transferred) /
                                              p.total)
                              : 5;
            json_t *det = progress_json("memory", &p, start);
            json_object_set_new(det, "converge_timeout_s", json_integer(converge_s));
            /* The throttle in the words too: the CLI's progress line shows them. */
            _cleanup_free_ char *copying =
                p.throttle_pct ? vo_asprintf("copying memory (vCPUs throttled %u%%%s)",
                                             p.throttle_pct,
                                             m->opts.force_converge ? ", --force-converge" : "")
                               : vo_strdup("copying memory");
            vo_task_set_details(t, pct, cancelled ? "cancelling"
                                        : stuck   ? "aborting: not converging"
                                                  : copying, det);
        }
        (void)poll(NULL, 0, MEMORY_POLL_MS);
    }
    /* A cancel that raced the completion is still honoured: the switch has
     * not happened. */
    bool at_switch = r >= 0 && p.status == VO_HV_MIGRATION_ACTIVE && p.at_switchover;
    if (r >= 0 && (p.status == VO_HV_MIGRATION_COMPLETED || at_switch) && vo_task_cancelled(t))
        cancelled = true;
    if (r < 0 || (p.status != VO_HV_MIGRATION_COMPLETED && !at_switch) || cancelled) {
        _cleanup_free_ char *why = p.error ? vo_strdup(p.error)
                                   : r < 0 ? vo_strdup(strerror(-r))
                                           : vo_asprintf("the migration ended %s",
                                                         vo_hv_migration_status_to_string(p.status));
        free(p.error);
        if (unconfirmed) {
            _cleanup_free_ char *aerror = NULL;
            (void)vo_migrate_peer_call(d, m->to_url, "DELETE", base_path, NULL, NULL, &aerror);
            vo_migrate_clear_mark(vm);
            vo_vm_job_end(vm, true);
            return vo_task_fail(t, -ETIMEDOUT, "%s%scancelled, but QEMU did not confirm the "
                                "cancel within %d s: VM '%s' stays here as QEMU has it (see "
                                "vireo vm show; vireo vm resume if it is paused)",
                                stuck ? stuck : "", stuck ? "; " : "", CANCEL_WAIT_MS / 1000,
                                name);
        }
        undo(d, m, hv, base_path);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, true);
        if (cancelled) {
            log_info("vm %s: migration to %s cancelled; the VM runs on here", name, m->to_name);
            return vo_task_fail(t, -ECANCELED, "cancelled: VM '%s' runs on here", name);
        }
        if (stuck)
            return vo_task_fail(t, -ETIMEDOUT, "migration of VM '%s' to host '%s' failed (the "
                                "VM runs on here): %s", name, m->to_name, stuck);
        log_warn("vm %s: migration to %s failed: %s", name, m->to_name, why);
        return vo_task_fail(t, r < 0 ? r : -EIO, "migration of VM '%s' to host '%s' failed "
                            "(the VM runs on here): %s", name, m->to_name, why);
    }
    free(p.error);
    p.error = NULL;
    int64_t at_completed = vo_now_ms();
    /* Not written to the store now: the guest is paused until the
     * destination continues it (the switch's own transaction is enough). */
    vo_task_set_details_unwritten(t, 92, "switching over",
                                  progress_json("switchover", &p, start));

    /* 3. Both sides paused: RAM compared when asked (post-copy: after the
     * switch-over, below, when the destination has the device state and
     * fetches what it lacks as it is read). */
    bool verified = false;
    if (m->opts.verify_memory && !at_switch) {
        r = verify_memory(d, m, hv, digest_path, &error);
        if (r < 0) {
            undo(d, m, hv, base_path);
            vo_migrate_clear_mark(vm);
            vo_vm_job_end(vm, true);
            return vo_task_fail(t, r, "memory check of VM '%s' failed (the VM runs on here): %s",
                                name, error);
        }
        verified = true;
    }

    /* 4. The ownership switch, before the destination runs. The last
     * moment a cancel is honoured. */
    int64_t at_verified = vo_now_ms();
    if (vo_task_cancelled(t)) {
        undo(d, m, hv, base_path);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, true);
        log_info("vm %s: migration to %s cancelled; the VM runs on here", name, m->to_name);
        return vo_task_fail(t, -ECANCELED, "cancelled: VM '%s' runs on here", name);
    }
    if (vo_migrate_fault("commit-early")) { /* test: the destination must not believe us */
        pthread_mutex_lock(&vm->lock);
        json_t *early = json_pack("{s:I, s:b}", "rev", (json_int_t)vm->rev, "resume", resume);
        pthread_mutex_unlock(&vm->lock);
        _cleanup_free_ char *eerr = NULL;
        int e = vo_migrate_peer_call(d, m->to_url, "POST", commit_path, early, NULL, &eerr);
        json_decref(early);
        if (e >= 0) {
            vo_migrate_clear_mark(vm);
            pthread_mutex_unlock(&vm->job);
            return vo_task_fail(t, -EIO, "test fault: the destination took a commit before "
                                "the switch");
        }
        log_info("vm %s: test fault: an early commit was refused: %s", name, eerr);
    }
    pthread_mutex_lock(&vm->lock);
    (void)vo_vm_save_flush(vm); /* a save due (vm-save-later.c) before the switch */
    int64_t rev = vm->rev;
    vm->migrated_away = true; /* no write of its documents from here on */
    pthread_mutex_unlock(&vm->lock);
    intent_phase(m, "switch", rev);
    int64_t new_rev = 0;
    VoVolumeMove *vols = vo_migrate_volume_moves(m, false);
    r = 0;
    for (size_t i = 0; i < m->n_disks; i++)
        if (r >= 0)
            r = vo_volume_moving_begin(d, vols[i].from, &error);
    if (r < 0) {
        /* an intent could not be recorded: no switch */
    } else if (vo_migrate_fault("txn-lost")) { /* test: the txn never reached etcd */
        r = vo_error_set(&error, VO_STORE_EUNKNOWN, "test fault: no answer to the transaction");
    } else {
        r = vo_vm_move_volumes_txn(d->cluster_store, vm_id, d->host_id, m->to_id, rev, vols,
                                   m->n_disks, &new_rev, &error);
        if (r >= 0 && vo_migrate_fault("txn-unknown")) /* test: applied, answer lost */
            r = vo_error_set(&error, VO_STORE_EUNKNOWN, "test fault: the answer was lost");
    }
    vo_migrate_volume_moves_free(vols, m->n_disks);
    if (r < 0 && vo_migrate_switch_outcome_unknown(r)) {
        r = vo_migrate_settle_switch(t, d, m, vm, name, vm_id, rev, &new_rev, &error);
        if (r == -ETIMEDOUT || r == -EIO) {
            /* Whether the VM is the destination's is unknown: neither side
             * runs it (the destination's watcher continues it if the store
             * says it is its own). The moving volumes' intents stay: the
             * start-up sweep removes their files if their documents left. */
            log_error("vm %s: %s; the source stays paused", name, error);
            m->keep_intent = true; /* settled from it (migrate-resettle.h) */
            vo_migrate_clear_mark(vm);
            pthread_mutex_unlock(&vm->job);
            vo_migrate_resettle_later(d, vm_id, name, mig_id);
            return vo_task_fail(t, r, "the switch of VM '%s' to host '%s' has an unknown "
                                "outcome: %s; the source QEMU stays paused (never resumed "
                                "while the VM may be the destination's) until the store "
                                "answers: vireod asks it again in the background", name,
                                m->to_name, error);
        }
    }
    if (r >= 0)
        intent_phase(m, "switched", rev);
    /* Post-copy: from here this QEMU holds what the destination lacks (the
     * device state, then the pages it has not fetched): nothing but the
     * migration may end it, not even a fencing (post-copy-kept.h). */
    if (r >= 0 && at_switch) {
        pthread_mutex_lock(&vm->lock);
        pid_t pid = vm->info.pid;
        pthread_mutex_unlock(&vm->lock);
        vo_post_copy_kept_mark(d, vm_id, name, m->to_id, pid);
    }
    if (r >= 0 && vo_migrate_fault("exit-after-txn")) /* test: the source dies here */
        _exit(70);
    if (r < 0)
        vo_migrate_moving_end(d, m, false);
    if (r < 0) {
        pthread_mutex_lock(&vm->lock);
        vm->migrated_away = false;
        pthread_mutex_unlock(&vm->lock);
        undo(d, m, hv, base_path);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, true);
        return vo_task_fail(t, r, "the switch of VM '%s' to host '%s' failed (the VM runs on "
                            "here): %s", name, m->to_name, error);
    }

    /* 4b. Post-copy: the switch-over goes on now that the store gives the
     * VM to the destination; RAM is compared once the device state is there. */
    bool in_post_copy = false;
    _cleanup_free_ char *verify_error = NULL; /* too late to undo: the task fails at its end */
    int resume_tries = vo_migrate_resume_tries(); /* post-copy recoveries, the whole budget */
    if (at_switch) {
        r = vo_migrate_continue_switchover(d, hv, &in_post_copy, &error);
        if (r >= 0 && in_post_copy && vo_migrate_fault("post-copy-hold")) {
            /* test: held here, in post-copy, until released (its link
             * broken meanwhile), and until QEMU saw it break */
            vo_migrate_fault_wait("post-copy-release", 300000);
            _cleanup_free_ char *ignored = NULL;
            (void)vo_migrate_wait_post_copy_paused(d, hv, false, &ignored);
        }
        /* A stream that broke already is mended before the RAM compare
         * (the destination's hash would wait for its pages) and the
         * commit. */
        VoHvMigrationProgress mid = { 0 };
        if (r >= 0 && in_post_copy && d->driver->migrate_query(hv, &mid) >= 0 &&
            (mid.post_copy_paused || mid.post_copy_recovering)) {
            log_warn("vm %s: post-copy to host %s broke before its commit: recovering", name,
                     m->to_name);
            if (vo_migrate_resume_post_copy(d, hv, m->to_url, mig_id, vm_id, name,
                                            &resume_tries, &error) < 0) {
                free(mid.error);
                return vo_migrate_keep_both(t, d, m, vm, hv, name, vm_id, error);
            }
        }
        free(mid.error);
        if (r >= 0 && m->opts.verify_memory) {
            verified = verify_memory(d, m, hv, digest_path, &verify_error) >= 0;
            if (!verified)
                log_error("vm %s: memory check after the switch-over failed: %s", name,
                          verify_error);
        }
        if (r >= 0)
            log_info("vm %s: switched over to host %s%s", name, m->to_name,
                     in_post_copy ? " (post-copy: the rest of memory follows)" : "");
    }

    /* 5. The destination continues the VM; this QEMU ends. Never resumed
     * here again: the documents say the VM is the destination's. */
    int64_t at_switched = vo_now_ms();
    bool commit_unanswered = false;
    _cleanup_free_ char *console = console_tail_b64(d, vm);
    json_t *commit = json_pack("{s:I, s:b}", "rev", (json_int_t)new_rev, "resume", resume);
    if (console)
        json_object_set_new(commit, "console_log_b64", json_string(console));
    for (int i = 0; r >= 0 && i < COMMIT_TRIES; i++) {
        free(error);
        error = NULL;
        /* A commit is idempotent: a retry of one that was applied answers 200. */
        if (vo_migrate_fault("commit-lost")) { /* test: the destination never answers */
            r = vo_error_set(&error, -EIO, "test fault: the commit got no answer");
            break;
        }
        r = vo_migrate_peer_call(d, m->to_url, "POST", commit_path, commit, NULL, &error);
        if (r >= 0 || r == -EINVAL)
            break; /* done, or a request it cannot read */
        (void)poll(NULL, 0, 1000);
    }
    json_decref(commit);
    if (r < 0 && in_post_copy) {
        /* The source cannot take it back (QEMU will not cancel post-copy),
         * and the store gives it to the destination, whose watcher claims
         * and continues it; the rest of RAM still goes from here. */
        log_error("vm %s: host %s did not answer the commit in post-copy (%s): its own "
                  "watcher continues the VM", name, m->to_name, error);
        commit_unanswered = true;
        r = 0;
    }
    if (r < 0) {
        int b = vo_migrate_take_back(d, m, vm, name, vm_id, new_rev, &error);
        if (b == 0) { /* the documents are here again: the source runs on */
            vo_post_copy_kept_unmark(d, vm_id);
            vo_migrate_moving_end(d, m, false); /* the volumes' files stay here */
            undo(d, m, hv, base_path);
            vo_migrate_clear_mark(vm);
            vo_vm_job_end(vm, true);
            return vo_task_fail(t, -EIO, "host '%s' did not take VM '%s' over (%s); the VM "
                                "was given back and runs on here", m->to_name, name, error);
        }
        if (b < 0) {
            log_error("vm %s: the destination did not commit and the VM could not be taken "
                      "back: %s; the source stays paused", name, error);
            m->keep_intent = true; /* settled from it (migrate-resettle.h) */
            vo_migrate_clear_mark(vm);
            pthread_mutex_unlock(&vm->job);
            vo_migrate_resettle_later(d, vm_id, name, mig_id);
            return vo_task_fail(t, b, "VM '%s' now belongs to host '%s' but its destination "
                                "did not take it over: %s; the source QEMU stays paused "
                                "(never resumed: two copies must not run) until the store "
                                "says where the VM is: vireod asks it again in the "
                                "background", name, m->to_name, error);
        }
        /* b == 1: the destination claimed it (its watcher continues it). */
        log_info("vm %s: host %s claimed the VM itself", name, m->to_name);
    }
    int64_t at_committed = vo_now_ms();
    VoHvMigrationProgress fin = { 0 };
    _cleanup_free_ char *post_copy_broke = NULL;
    /* A stream that breaks is recovered (bounded): the guest's memory is
     * split between the hosts, so neither QEMU may end while it is. */
    while (in_post_copy &&
           vo_migrate_finish_post_copy(t, d, hv, start, &fin, &post_copy_broke) < 0) {
        log_error("vm %s: post-copy to host %s broke: %s", name, m->to_name, post_copy_broke);
        if (!vo_migrate_post_copy_recoverable(&fin))
            break; /* failed outright: nothing to recover */
        free(post_copy_broke);
        post_copy_broke = NULL;
        if (vo_migrate_resume_post_copy(d, hv, m->to_url, mig_id, vm_id, name, &resume_tries,
                                        &post_copy_broke) < 0) {
            free(fin.error);
            return vo_migrate_keep_both(t, d, m, vm, hv, name, vm_id, post_copy_broke);
        }
    }
    if (!in_post_copy)
        (void)d->driver->migrate_query(hv, &fin);
    free(fin.error);
    int64_t at_post_copied = vo_now_ms();
    vo_migrate_end_source(d, m, vm, hv, name);
    vo_drs_note_moved(d, vm_id, m->to_id); /* DRS's cooldown counts from here */
    if (verify_error)
        return vo_task_fail(t, -EIO, "memory check of VM '%s' after the switch-over failed "
                            "(the VM runs on host '%s'): %s", name, m->to_name, verify_error);
    if (post_copy_broke)
        return vo_task_fail(t, -EIO, "post-copy of VM '%s' to host '%s' broke after the VM "
                            "moved there (%s): it runs there with memory pages that never "
                            "arrived, and must be restarted (vireo vm stop --force, then vireo "
                            "vm start)", name, m->to_name, post_copy_broke);
    int64_t total = vo_now_ms() - start;
    json_t *result = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "vm", vm_id, "to",
                               m->to_name, "total_time_ms", (json_int_t)total,
                               "migration_time_ms", (json_int_t)fin.total_time_ms,
                               "downtime_ms", (json_int_t)fin.downtime_ms, "bytes",
                               (json_int_t)fin.transferred, "memory_verified", verified);
    /* The disks' part (the local disks mirrored): 0 when every disk is on
     * a shared pool (dir or rbd), which the destination opens itself. */
    json_object_set_new(result, "disk_bytes", json_integer((json_int_t)m->disk_bytes));
    json_object_set_new(result, "disks_copied", json_integer((json_int_t)m->n_disks));
    /* Post-copy: whether the phase ran (a pre-copy may converge first) and
     * how long the rest of RAM took after the destination continued. */
    if (m->opts.post_copy)
        json_object_set_new(result, "post_copy",
                            json_pack("{s:b, s:I, s:b}", "ran", in_post_copy, "after_switch_ms",
                                      (json_int_t)(at_post_copied - at_committed),
                                      "commit_unanswered", commit_unanswered));
    /* Where the time went (ms), in order: each phase from the end of the
     * one before; the guest is paused from the end of "memory" (QEMU's own
     * downtime before that) to the end of "commit" (the destination runs). */
    json_object_set_new(result, "phases_ms",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "prepare",
                                  (json_int_t)(at_prepared - start), "disks",
                                  (json_int_t)(at_disks - at_prepared), "memory_setup",
                                  (json_int_t)(at_migrate - at_disks), "memory",
                                  (json_int_t)(at_completed - at_migrate), "verify",
                                  (json_int_t)(at_verified - at_completed), "switch",
                                  (json_int_t)(at_switched - at_verified), "commit",
                                  (json_int_t)(at_committed - at_switched), "finish",
                                  (json_int_t)(start + total - at_committed)));
    if (m->n_disks) {
        json_t *moved = json_array();
        for (size_t i = 0; i < m->n_disks; i++)
            json_array_append_new(moved, json_sprintf("%s/%s", m->pool, m->disks[i].name));
        json_object_set_new(result, "volumes", moved);
    }
    if (m->opts.force_converge) /* what the forced convergence did */
        json_object_set_new(result, "force_converge",
                            json_pack("{s:i, s:i, s:b, s:i}", "cpu_throttle_initial",
                                      VO_HV_FORCE_THROTTLE_INITIAL, "cpu_throttle_increment",
                                      VO_HV_FORCE_THROTTLE_INCREMENT, "tailslow", 1,
                                      "max_throttle_percent", (int)max_throttle));
    if (vo_task_cancelled(t)) /* too late: the VM had switched hosts already */
        json_object_set_new(result, "cancel", json_string("too late: the VM had switched "
                                                          "hosts when the cancel came"));
    vo_task_set_result(t, result);
    vo_task_set_details(t, 100, "done", progress_json("done", &fin, start));
    log_info("vm %s: migrated to host %s in %lld ms (downtime %llu ms)", name, m->to_name,
             (long long)total, (unsigned long long)fin.downtime_ms);
    return 0;
}

int vo_vm_migrate(VoDaemon *d, VoVm *vm, const VoMigrateArgs *args, json_t **ret_task,
                  char **ret_error)
{
    /* A UEFI VM's NVRAM goes along: on a shared pool the destination opens
     * the same volume; on a local one it is mirrored with the local disks
     * (vo_migrate_check_local_disks). One without an NVRAM would start there with a fresh
     * one: refused. */
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *now = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    int r = vo_migrate_check_nvram(d, now, "vm migrate", ret_error);
    vo_vm_spec_free(now);
    if (r < 0)
        return r;
    VoClusterHost h = { 0 };
    r = vo_migrate_find_target(d, vm, args->to, &h, ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    VoVmState s = vm->state;
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    _cleanup_free_ char *busy = vo_strdup(vm->migration_task);
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    if (!busy) { /* held from here: a second migrate is refused */
        vm->migration_task = vo_strdup(PENDING);
        vm->migration_to = vo_strdup(h.name);
    }
    pthread_mutex_unlock(&vm->lock);
    const char *pool = args->pool ? args->pool : VO_DEFAULT_POOL;
    LocalDisk *disks = NULL;
    size_t n_disks = 0;
    if (busy)
        r = vo_error_set(ret_error, -EBUSY, "VM '%s' is migrating already (task %s)", name,
                         busy);
    else if (s != VO_VM_RUNNING && s != VO_VM_PAUSED)
        r = vo_error_set(ret_error, -EBUSY, "VM '%s' is %s, not running: use vireo vm move "
                         "for a stopped VM", name, vo_vm_state_to_string(s));
    else
        r = vo_migrate_check_local_disks(d, spec, h.id, h.name, pool, &disks, &n_disks, ret_error);
    if (r >= 0 && args->post_copy &&
        (!d->driver->migrate_start_post_copy || !d->driver->migrate_continue))
        r = vo_error_set(ret_error, -EOPNOTSUPP, "the %s driver has no post-copy",
                         d->driver->name);
    if (r >= 0)
        r = vo_migrate_check_compat(d, vm, spec, h.id, h.name, "migrate", ret_error);
    vo_vm_spec_free(spec);
    if (r < 0) {
        vo_migrate_local_disks_free(disks, n_disks);
        if (!busy)
            vo_migrate_clear_mark(vm);
        vo_cluster_host_clear(&h);
        return r;
    }
    MigrateTask *m = vo_malloc0(sizeof(*m));
    *m = (MigrateTask){ .vm = vo_vm_ref(vm), .opts = *args, .to_id = TAKE_PTR(h.id),
                        .to_name = TAKE_PTR(h.name), .to_url = TAKE_PTR(h.url),
                        .pool = vo_strdup(pool), .disks = disks, .n_disks = n_disks };
    m->opts.to = NULL;
    m->opts.pool = NULL;
    vo_cluster_host_clear(&h);
    r = vo_vm_submit(d, vm, "migrate", task_migrate, m, migrate_task_free, ret_task, ret_error);
    if (r < 0) {
        vo_migrate_clear_mark(vm);
        return r;
    }
    pthread_mutex_lock(&vm->lock);
    if (vm->migration_task && !strcmp(vm->migration_task, PENDING)) { /* not over already */
        free(vm->migration_task);
        vm->migration_task = vo_strdup(json_string_value(json_object_get(*ret_task, "id")));
    }
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

