/* migrate.c: the source side of a live migration (migrate.h; the protocol
 * and its failure cases: docs/internals.md, "Live migration"). The task
 * holds the VM's job lock from start to end: the destination prepares a
 * paused incoming QEMU (peer call), the driver streams memory there, both
 * sides end paused (QEMU's postmigrate here, -S there), their RAM is
 * compared when asked, then one transaction moves the VM's documents to
 * the destination's namespace (state/vm-move.h); only then does the
 * destination continue the VM and this QEMU quit. Any failure before that
 * transaction leaves the VM running here as before and nothing there.
 * This file is the task and its submission, the task's run as named
 * steps (migrate-run.h: check, prepare, verify, switch, switch-over,
 * commit, post-copy, result); the copy steps (disks, memory) are
 * migrate-copy.c's, the switch's outcomes migrate-switch.c's, the checks
 * before it migrate-checks.c's, the peer calls migrate-peer.c's
 * (migrate-internal.h). */
#include "daemon/migrate.h"
#include "daemon/migrate-internal.h"
#include "daemon/migrate-run.h"
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
#define COMMIT_TRIES 5
/* Post-copy: how long the device state may take to reach the destination
 * once the switch-over goes on, and how long the rest of RAM may make no
 * progress at all before the post-copy phase counts as broken. */
#define POST_COPY_SWITCH_WAIT_MS 120000
#define POST_COPY_STALL_MS (5 * 60 * 1000)
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
                                     vo_hv_migration_ending(p.status));) {
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

void vo_migrate_intent_phase(MigrateTask *m, const char *phase, int64_t rev)
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
                                vo_migrate_progress_json("post-copy", fin, start));
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

void vo_migrate_run_back_here(MigrateRun *x)
{
    undo(x->d, x->m, x->hv, x->base_path);
    vo_migrate_clear_mark(x->vm);
    vo_vm_job_end(x->vm, true);
}

/* 0. Under the VM's job: still running here, no CD-ROM of this host's own
 * inserted meanwhile (a CD-ROM insert queued before the migration ran
 * first). Takes the job (kept on 0). */
static int run_check(MigrateRun *x)
{
    VoVm *vm = x->vm;
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    x->name = vo_strdup(vm->spec->name);
    x->vm_id = vo_strdup(vm->spec->id);
    VoVmState state = vm->state;
    x->hv = vm->hv;
    bool gone = vm->migrated_away;
    /* Why it ended, when it did since the request was taken (its QEMU
     * exited or was killed): the refusal says so. */
    _cleanup_free_ char *ended = !gone && vm->exit_reason ? vo_strdup(vm->exit_reason) : NULL;
    x->doc = gone ? NULL : vo_vm_document_locked(vm);
    VoVmSpec *now = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *cd_error = NULL;
    int cd = vo_migrate_check_cdrom(x->d, now, "vm migrate", &cd_error);
    vo_vm_spec_free(now);
    if (cd < 0 && !gone) {
        vo_migrate_clear_mark(vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(x->t, cd, "%s", cd_error);
    }
    if (gone || !x->hv || (state != VO_VM_RUNNING && state != VO_VM_PAUSED)) {
        vo_migrate_clear_mark(vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(x->t, -EBUSY, "VM '%s' is not running here (it is %s%s%s)",
                            x->name, gone ? "migrated away" : vo_vm_state_to_string(state),
                            ended ? ": " : "", ended ? ended : "");
    }
    x->resume = state == VO_VM_RUNNING;
    (void)vo_uuid_generate(x->mig_id);
    x->base_path = vo_asprintf("/v1/migrations/incoming/%s", x->mig_id);
    x->digest_path = vo_asprintf("%s/digest", x->base_path);
    x->commit_path = vo_asprintf("%s/commit", x->base_path);
    x->alive_path = vo_asprintf("%s/alive", x->base_path);
    return 0;
}

/* 1. The destination: a paused incoming QEMU on the same hardware (and
 * the exports of the local disks); the intent file from here on. */
static int run_prepare(MigrateRun *x)
{
    MigrateTask *m = x->m;
    VoDaemon *d = x->d;
    _cleanup_free_ char *error = NULL, *layout = NULL;
    json_t *answer = NULL;
    vo_task_set_details(x->t, 2, "preparing the destination",
                        json_pack("{s:s, s:s}", "phase", "prepare", "to", m->to_name));
    int64_t t_details = vo_now_ms();
    int r = d->driver->layout(x->hv, &layout, &error);
    int64_t t_layout = vo_now_ms();
    if (r < 0) {
        vo_migrate_clear_mark(x->vm);
        vo_vm_job_end(x->vm, false);
        return vo_task_fail(x->t, r, "cannot read VM '%s''s hardware layout: %s", x->name,
                            error);
    }
    json_t *doc = TAKE_PTR(x->doc);
    m->spec = json_incref(json_object_get(doc, "spec"));
    m->intent_vm = vo_strdup(x->vm_id);
    m->intent_name = vo_strdup(x->name);
    m->intent_mig = vo_strdup(x->mig_id);
    m->intent = (VoMigrateIntent){ .role = VO_MIGRATE_ROLE_SOURCE, .vm = m->intent_vm,
                                   .name = m->intent_name, .migration = m->intent_mig,
                                   .peer = m->to_id, .peer_url = m->to_url, .resume = x->resume,
                                   .spec = m->spec };
    vo_migrate_intent_phase(m, "prepare", 0);
    int64_t t_intent = vo_now_ms();
    json_t *req = json_pack("{s:s, s:o, s:s, s:s, s:b}", "id", x->mig_id, "vm", doc, "layout",
                            layout, "source_host", d->host_id, "resume", x->resume);
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
        (void)vo_migrate_peer_call(d, m->to_url, "DELETE", x->base_path, NULL, NULL, &aerror);
    }
    if (r < 0) {
        json_decref(answer);
        /* No answer (a timeout, a 5xx): it may have prepared all the same. */
        if (r != -EINVAL && r != -EBUSY && r != -ENOENT && r != -EEXIST) {
            _cleanup_free_ char *aerror = NULL;
            (void)vo_migrate_peer_call(d, m->to_url, "DELETE", x->base_path, NULL, NULL,
                                       &aerror);
        }
        vo_migrate_clear_mark(x->vm);
        vo_vm_job_end(x->vm, false);
        return vo_task_fail(x->t, r, "host '%s' cannot take VM '%s': %s", m->to_name, x->name,
                            error);
    }
    x->uri = vo_strdup(uri);
    x->nbd_uri = vo_strdup(nbd_uri);
    x->at_prepared = vo_now_ms();
    /* Where the prepare's time goes (bench/migrate compares it with plain
     * QEMU's launch): the checks and the task's write, the layout read
     * from QEMU, the intent file, the destination's answer. */
    log_debug("vm %s: prepare: checks and details %lld ms, layout %lld ms, intent %lld ms, "
              "destination %lld ms", x->name, (long long)(t_details - x->start),
              (long long)(t_layout - t_details), (long long)(t_intent - t_layout),
              (long long)(x->at_prepared - t_intent));
    json_decref(answer);
    return 0;
}

/* 3. Both sides paused: RAM compared when asked (post-copy: after the
 * switch-over, run_switchover, when the destination has the device state
 * and fetches what it lacks as it is read). */
static int run_verify(MigrateRun *x)
{
    if (x->m->opts.verify_memory && !x->at_switch) {
        _cleanup_free_ char *error = NULL;
        int r = verify_memory(x->d, x->m, x->hv, x->digest_path, &error);
        if (r < 0) {
            vo_migrate_run_back_here(x);
            return vo_task_fail(x->t, r, "memory check of VM '%s' failed (the VM runs on "
                                "here): %s", x->name, error);
        }
        x->verified = true;
    }
    x->at_verified = vo_now_ms();
    return 0;
}

/* 4. The ownership switch, before the destination runs: one transaction
 * moves the VM's documents (and its local volumes') to the destination.
 * The last moment a cancel is honoured. */
static int run_switch(MigrateRun *x)
{
    MigrateTask *m = x->m;
    VoTask *t = x->t;
    VoVm *vm = x->vm;
    VoDaemon *d = x->d;
    const char *name = x->name, *vm_id = x->vm_id;
    _cleanup_free_ char *error = NULL;
    if (vo_task_cancelled(t)) {
        vo_migrate_run_back_here(x);
        log_info("vm %s: migration to %s cancelled; the VM runs on here", name, m->to_name);
        return vo_task_fail(t, -ECANCELED, "cancelled: VM '%s' runs on here", name);
    }
    if (vo_migrate_fault("commit-early")) { /* test: the destination must not believe us */
        pthread_mutex_lock(&vm->lock);
        json_t *early = json_pack("{s:I, s:b}", "rev", (json_int_t)vm->rev, "resume", x->resume);
        pthread_mutex_unlock(&vm->lock);
        _cleanup_free_ char *eerr = NULL;
        int e = vo_migrate_peer_call(d, m->to_url, "POST", x->commit_path, early, NULL, &eerr);
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
    vo_migrate_intent_phase(m, "switch", rev);
    VoVolumeMove *vols = vo_migrate_volume_moves(m, false);
    int r = 0;
    for (size_t i = 0; i < m->n_disks; i++)
        if (r >= 0)
            r = vo_volume_moving_begin(d, vols[i].from, &error);
    if (r < 0) {
        /* an intent could not be recorded: no switch */
    } else if (vo_migrate_fault("txn-lost")) { /* test: the txn never reached etcd */
        r = vo_error_set(&error, VO_STORE_EUNKNOWN, "test fault: no answer to the transaction");
    } else {
        r = vo_vm_move_volumes_txn(d->cluster_store, vm_id, d->host_id, m->to_id, rev, vols,
                                   m->n_disks, &x->new_rev, &error);
        if (r >= 0 && vo_migrate_fault("txn-unknown")) /* test: applied, answer lost */
            r = vo_error_set(&error, VO_STORE_EUNKNOWN, "test fault: the answer was lost");
    }
    vo_migrate_volume_moves_free(vols, m->n_disks);
    if (r < 0 && vo_migrate_switch_outcome_unknown(r)) {
        r = vo_migrate_settle_switch(t, d, m, vm, name, vm_id, rev, &x->new_rev, &error);
        if (r == -ETIMEDOUT || r == -EIO) {
            /* Whether the VM is the destination's is unknown: neither side
             * runs it (the destination's watcher continues it if the store
             * says it is its own). The moving volumes' intents stay: the
             * start-up sweep removes their files if their documents left. */
            log_error("vm %s: %s; the source stays paused", name, error);
            m->keep_intent = true; /* settled from it (migrate-resettle.h) */
            vo_migrate_clear_mark(vm);
            pthread_mutex_unlock(&vm->job);
            vo_migrate_resettle_later(d, vm_id, name, x->mig_id);
            return vo_task_fail(t, r, "the switch of VM '%s' to host '%s' has an unknown "
                                "outcome: %s; the source QEMU stays paused (never resumed "
                                "while the VM may be the destination's) until the store "
                                "answers: vireod asks it again in the background", name,
                                m->to_name, error);
        }
    }
    if (r >= 0)
        vo_migrate_intent_phase(m, "switched", rev);
    /* Post-copy: from here this QEMU holds what the destination lacks (the
     * device state, then the pages it has not fetched): nothing but the
     * migration may end it, not even a fencing (post-copy-kept.h). */
    if (r >= 0 && x->at_switch) {
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
        vo_migrate_run_back_here(x);
        return vo_task_fail(t, r, "the switch of VM '%s' to host '%s' failed (the VM runs on "
                            "here): %s", name, m->to_name, error);
    }
    return 0;
}

/* 4b. Post-copy: the switch-over goes on now that the store gives the VM
 * to the destination; a stream that broke already is mended; RAM is
 * compared once the device state is there. Its outcome (x->outcome,
 * x->error) is the commit's to act on. */
static int run_switchover(MigrateRun *x)
{
    MigrateTask *m = x->m;
    VoDaemon *d = x->d;
    VoHvInstance *hv = x->hv;
    const char *name = x->name;
    x->resume_tries = vo_migrate_resume_tries();
    if (!x->at_switch)
        return 0;
    if (vo_migrate_fault("switch-over-pause")) /* test: the destination dies meanwhile */
        vo_migrate_fault_wait("switch-over-go", 300000);
    int r = vo_migrate_continue_switchover(d, hv, &x->in_post_copy, &x->error);
    if (r >= 0 && x->in_post_copy && vo_migrate_fault("post-copy-hold")) {
        /* test: held here, in post-copy, until released (its link broken
         * meanwhile), and until QEMU saw it break */
        vo_migrate_fault_wait("post-copy-release", 300000);
        _cleanup_free_ char *ignored = NULL;
        (void)vo_migrate_wait_post_copy_paused(d, hv, false, &ignored);
    }
    /* A stream that broke already is mended before the RAM compare (the
     * destination's hash would wait for its pages) and the commit. */
    VoHvMigrationProgress mid = { 0 };
    if (r >= 0 && x->in_post_copy && d->driver->migrate_query(hv, &mid) >= 0 &&
        (mid.post_copy_paused || mid.post_copy_recovering)) {
        log_warn("vm %s: post-copy to host %s broke before its commit: recovering", name,
                 m->to_name);
        _cleanup_free_ char *error = NULL;
        if (vo_migrate_resume_post_copy(d, hv, m->to_url, x->mig_id, x->vm_id, name,
                                        &x->resume_tries, &error) < 0) {
            free(mid.error);
            return vo_migrate_keep_both(x->t, d, m, x->vm, hv, name, x->vm_id, error);
        }
    }
    free(mid.error);
    if (r >= 0 && m->opts.verify_memory) {
        x->verified = verify_memory(d, m, hv, x->digest_path, &x->verify_error) >= 0;
        if (!x->verified)
            log_error("vm %s: memory check after the switch-over failed: %s", name,
                      x->verify_error);
    }
    if (r >= 0)
        log_info("vm %s: switched over to host %s%s", name, m->to_name,
                 x->in_post_copy ? " (post-copy: the rest of memory follows)" : "");
    x->outcome = r;
    return 0;
}

/* The switch-over failed and QEMU runs the guest here again (its device
 * state never left: the only copy), but the take-back (vo_migrate_take_back)
 * said the VM is the destination's (1: a take-back whose outcome was
 * unknown, settled by rewriting the destination's document; or that
 * document changed) or could not say (negative). Ending this QEMU, or
 * leaving it, would lose the guest or leave it unowned: the VM is taken
 * back at the revision a quorum read gives at the destination (as the
 * background does, vo_migration_take_back_here; the destination claims no
 * VM its QEMU does not hold). 0: back here (vm->rev follows); 1 when the
 * destination claimed it in this migration (its QEMU runs the guest: the
 * claim mark) or the VM is at neither host (restarted elsewhere or
 * deleted): this copy ends, also when the take-back could not say (one
 * compared at the switch's revision can no longer apply; before, this
 * QEMU ran on beside the destination's until the background settled it);
 * else negative (the background tries again). */
static int take_back_guest_here(MigrateRun *x)
{
    int64_t rev = 0;
    _cleanup_free_ char *error = NULL;
    log_warn("vm %s: its switch-over failed and its QEMU here runs the guest again: the VM "
             "is taken back from host %s", x->name, x->m->to_name);
    int r = vo_migration_take_back_here(x->d, &x->m->intent, &rev, &error);
    if (r == -ENOENT)
        return 1; /* this copy ends, whatever the take-back said: see above */
    if (r < 0) {
        free(x->error);
        x->error = TAKE_PTR(error);
        return r;
    }
    pthread_mutex_lock(&x->vm->lock);
    x->vm->rev = rev;
    x->vm->migrated_away = false;
    pthread_mutex_unlock(&x->vm->lock);
    return 0;
}

/* 5. The destination continues the VM; this QEMU ends. Never resumed here
 * again: the documents say the VM is the destination's. Unanswered, the VM
 * is taken back (the source runs on), or claimed there meanwhile. */
static int run_commit(MigrateRun *x)
{
    MigrateTask *m = x->m;
    VoTask *t = x->t;
    VoVm *vm = x->vm;
    VoDaemon *d = x->d;
    const char *name = x->name;
    int r = x->outcome;
    x->at_switched = vo_now_ms();
    _cleanup_free_ char *console = console_tail_b64(d, vm);
    json_t *commit = json_pack("{s:I, s:b}", "rev", (json_int_t)x->new_rev, "resume", x->resume);
    if (console)
        json_object_set_new(commit, "console_log_b64", json_string(console));
    for (int i = 0; r >= 0 && i < COMMIT_TRIES; i++) {
        free(x->error);
        x->error = NULL;
        /* A commit is idempotent: a retry of one that was applied answers 200. */
        if (vo_migrate_fault("commit-lost")) { /* test: the destination never answers */
            r = vo_error_set(&x->error, -EIO, "test fault: the commit got no answer");
            break;
        }
        r = vo_migrate_peer_call(d, m->to_url, "POST", x->commit_path, commit, NULL, &x->error);
        if (r >= 0 && vo_migrate_fault("commit-answer-lost")) { /* test: applied, unanswered */
            r = vo_error_set(&x->error, -EIO, "test fault: the commit's answer was lost");
            break;
        }
        if (r >= 0 || r == -EINVAL)
            break; /* done, or a request it cannot read */
        (void)poll(NULL, 0, 1000);
    }
    json_decref(commit);
    if (r < 0 && x->in_post_copy) {
        /* The source cannot take it back (QEMU will not cancel post-copy),
         * and the store gives it to the destination, whose watcher claims
         * and continues it; the rest of RAM still goes from here. */
        log_error("vm %s: host %s did not answer the commit in post-copy (%s): its own "
                  "watcher continues the VM", name, m->to_name, x->error);
        x->commit_unanswered = true;
        r = 0;
    }
    if (r < 0) {
        int b = vo_migrate_take_back(d, m, vm, name, x->vm_id, x->new_rev, &x->error);
        bool runs = b != 0 && vo_migrate_source_runs_guest(d, x->hv);
        if (runs)
            b = take_back_guest_here(x);
        if (b == 0) { /* the documents are here again: the source runs on */
            vo_post_copy_kept_unmark(d, x->vm_id);
            vo_migrate_moving_end(d, m, false); /* the volumes' files stay here */
            vo_migrate_run_back_here(x);
            return vo_task_fail(t, -EIO, "host '%s' did not take VM '%s' over (%s); the VM "
                                "was given back and runs on here", m->to_name, name, x->error);
        }
        if (b < 0) {
            const char *source = runs ? "QEMU runs the guest on (its switch-over failed, so "
                                        "it is the only copy)"
                                      : "QEMU stays paused (never resumed: two copies must "
                                        "not run)";
            log_error("vm %s: the destination did not commit and the VM could not be taken "
                      "back: %s; the source %s", name, x->error, source);
            m->keep_intent = true; /* settled from it (migrate-resettle.h) */
            vo_migrate_clear_mark(vm);
            pthread_mutex_unlock(&vm->job);
            vo_migrate_resettle_later(d, x->vm_id, name, x->mig_id);
            return vo_task_fail(t, b, "VM '%s' now belongs to host '%s' but its destination "
                                "did not take it over: %s; the source %s until the store "
                                "says where the VM is: vireod asks it again in the "
                                "background", name, m->to_name, x->error, source);
        }
        /* b == 1: the destination claimed it (its watcher continues it). */
        log_info("vm %s: host %s claimed the VM itself", name, m->to_name);
    }
    x->at_committed = vo_now_ms();
    return 0;
}

/* 6. Post-copy: the rest of memory, a stream that breaks recovered
 * (bounded: the guest's memory is split between the hosts, so neither
 * QEMU may end while it is); then this QEMU ends. */
static int run_post_copy(MigrateRun *x)
{
    MigrateTask *m = x->m;
    VoDaemon *d = x->d;
    VoHvInstance *hv = x->hv;
    const char *name = x->name;
    while (x->in_post_copy && vo_migrate_finish_post_copy(x->t, d, hv, x->start, &x->fin,
                                                          &x->post_copy_broke) < 0) {
        log_error("vm %s: post-copy to host %s broke: %s", name, m->to_name, x->post_copy_broke);
        if (!vo_migrate_post_copy_recoverable(&x->fin))
            break; /* failed outright: nothing to recover */
        free(x->post_copy_broke);
        x->post_copy_broke = NULL;
        if (vo_migrate_resume_post_copy(d, hv, m->to_url, x->mig_id, x->vm_id, name,
                                        &x->resume_tries, &x->post_copy_broke) < 0) {
            free(x->fin.error);
            x->fin.error = NULL;
            return vo_migrate_keep_both(x->t, d, m, x->vm, hv, name, x->vm_id,
                                        x->post_copy_broke);
        }
    }
    if (!x->in_post_copy)
        (void)d->driver->migrate_query(hv, &x->fin);
    free(x->fin.error);
    x->fin.error = NULL;
    x->at_post_copied = vo_now_ms();
    vo_migrate_end_source(d, m, x->vm, hv, name);
    vo_drs_note_moved(d, x->vm_id, m->to_id); /* DRS's cooldown counts from here */
    if (x->verify_error)
        return vo_task_fail(x->t, -EIO, "memory check of VM '%s' after the switch-over failed "
                            "(the VM runs on host '%s'): %s", name, m->to_name, x->verify_error);
    if (x->post_copy_broke)
        return vo_task_fail(x->t, -EIO, "post-copy of VM '%s' to host '%s' broke after the VM "
                            "moved there (%s): it runs there with memory pages that never "
                            "arrived, and must be restarted (vireo vm stop --force, then vireo "
                            "vm start)", name, m->to_name, x->post_copy_broke);
    return 0;
}

/* 7. The result: the times, the bytes, what each option did. */
static int run_result(MigrateRun *x)
{
    MigrateTask *m = x->m;
    const VoHvMigrationProgress *fin = &x->fin;
    int64_t total = vo_now_ms() - x->start;
    json_t *result = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "vm", x->vm_id, "to",
                               m->to_name, "total_time_ms", (json_int_t)total,
                               "migration_time_ms", (json_int_t)fin->total_time_ms,
                               "downtime_ms", (json_int_t)fin->downtime_ms, "bytes",
                               (json_int_t)fin->transferred, "memory_verified", x->verified);
    /* The disks' part (the local disks mirrored): 0 when every disk is on
     * a shared pool (dir or rbd), which the destination opens itself. */
    json_object_set_new(result, "disk_bytes", json_integer((json_int_t)m->disk_bytes));
    json_object_set_new(result, "disks_copied", json_integer((json_int_t)m->n_disks));
    /* Post-copy: whether the phase ran (a pre-copy may converge first) and
     * how long the rest of RAM took after the destination continued. */
    if (m->opts.post_copy)
        json_object_set_new(result, "post_copy",
                            json_pack("{s:b, s:I, s:b}", "ran", x->in_post_copy,
                                      "after_switch_ms",
                                      (json_int_t)(x->at_post_copied - x->at_committed),
                                      "commit_unanswered", x->commit_unanswered));
    /* Where the time went (ms), in order: each phase from the end of the
     * one before; the guest is paused from the end of "memory" (QEMU's own
     * downtime before that) to the end of "commit" (the destination runs). */
    json_object_set_new(result, "phases_ms",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "prepare",
                                  (json_int_t)(x->at_prepared - x->start), "disks",
                                  (json_int_t)(x->at_disks - x->at_prepared), "memory_setup",
                                  (json_int_t)(x->at_migrate - x->at_disks), "memory",
                                  (json_int_t)(x->at_completed - x->at_migrate), "verify",
                                  (json_int_t)(x->at_verified - x->at_completed), "switch",
                                  (json_int_t)(x->at_switched - x->at_verified), "commit",
                                  (json_int_t)(x->at_committed - x->at_switched), "finish",
                                  (json_int_t)(x->start + total - x->at_committed)));
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
                                      "max_throttle_percent", (int)x->max_throttle));
    if (vo_task_cancelled(x->t)) /* too late: the VM had switched hosts already */
        json_object_set_new(result, "cancel", json_string("too late: the VM had switched "
                                                          "hosts when the cancel came"));
    vo_task_set_result(x->t, result);
    vo_task_set_details(x->t, 100, "done", vo_migrate_progress_json("done", fin, x->start));
    log_info("vm %s: migrated to host %s in %lld ms (downtime %llu ms)", x->name, m->to_name,
             (long long)total, (unsigned long long)fin->downtime_ms);
    return 0;
}

static int task_migrate_run(VoTask *t, void *userdata)
{
    MigrateTask *m = userdata;
    MigrateRun x = { .t = t, .m = m, .vm = m->vm, .d = m->vm->d, .start = vo_now_ms() };
    int r = run_check(&x);
    if (r >= 0)
        r = run_prepare(&x);
    if (r >= 0)
        r = vo_migrate_run_disks(&x);
    if (r >= 0)
        r = vo_migrate_run_memory(&x);
    if (r >= 0)
        r = run_verify(&x);
    if (r >= 0)
        r = run_switch(&x);
    if (r >= 0)
        r = run_switchover(&x);
    if (r >= 0)
        r = run_commit(&x);
    if (r >= 0)
        r = run_post_copy(&x);
    if (r >= 0)
        r = run_result(&x);
    json_decref(x.doc);
    free(x.name);
    free(x.vm_id);
    free(x.base_path);
    free(x.digest_path);
    free(x.commit_path);
    free(x.alive_path);
    free(x.uri);
    free(x.nbd_uri);
    free(x.verify_error);
    free(x.error);
    free(x.post_copy_broke);
    free(x.fin.error);
    return r;
}

/* A flatten of one of vm's volumes, queued or running, holds up its tasks
 * for as long as the image takes (and one its QEMU does cannot be
 * cancelled): a migration is refused (409) naming it rather than waiting. */
static int refuse_while_flattening(VoDaemon *d, VoVm *vm, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    _cleanup_free_ char *key = vo_key_vm_task(vm->spec->id);
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *id = NULL, *volume = NULL;
    if (!vo_tasks_pending_of_kind(d->tasks, key, "volume-flatten", &id, &volume))
        return 0;
    return vo_error_set(ret_error, -EBUSY, "cannot migrate VM '%s' while its volume '%s' is "
                        "being flattened (task %s): migrate it once that is done (vireo task "
                        "show %s)", name, volume ? volume : "?", id, id);
}

int vo_vm_migrate(VoDaemon *d, VoVm *vm, const VoMigrateArgs *args, json_t **ret_task,
                  char **ret_error)
{
    int r = refuse_while_flattening(d, vm, ret_error);
    if (r < 0)
        return r;
    /* A UEFI VM's NVRAM goes along: on a shared pool the destination opens
     * the same volume; on a local one it is mirrored with the local disks
     * (vo_migrate_check_local_disks). One without an NVRAM would start there with a fresh
     * one: refused. */
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *now = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    r = vo_migrate_check_nvram(d, now, "vm migrate", ret_error);
    vo_vm_spec_free(now);
    if (r < 0)
        return r;
    VoClusterHost h = { 0 };
    r = vo_migrate_find_target(d, vm, args->to, args->pool, &h, ret_error);
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

