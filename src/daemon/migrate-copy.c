/* migrate-copy.c: the copy steps of a live migration's source side
 * (migrate-run.h): the local disks mirrored into the destination's NBD
 * export until all are in sync, then the memory streamed (the throttle,
 * post-copy's switch after the first pass, a copy that does not converge
 * aborted) until QEMU completed it or stopped before the switch-over. */
#include "daemon/migrate-run.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "cluster/migrate-converge.h"
#include "daemon/migrate-safe.h"
#include "daemon/vm-internal.h"
#include "util/util.h"

#define ALIVE_EVERY_MS 10000 /* the disk phase tells the destination it goes on */

static uint64_t dirty_rate_bytes(const VoHvMigrationProgress *p)
{
    return p->dirty_pages_rate * (p->page_size ? p->page_size : 4096);
}

json_t *vo_migrate_progress_json(const char *phase, const VoHvMigrationProgress *p, int64_t start)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "phase", phase, "bytes_sent",
                     (json_int_t)p->transferred, "bytes_total", (json_int_t)p->total,
                     "bytes_remaining", (json_int_t)p->remaining, "dirty_rate_bytes",
                     (json_int_t)dirty_rate_bytes(p),
                     "expected_downtime_ms", (json_int_t)p->expected_downtime_ms,
                     "elapsed_ms", (json_int_t)(vo_now_ms() - start), "cpu_throttle_percent",
                     (int)p->throttle_pct);
}

/* The disk phase's task details. */
static json_t *disk_details(const VoHvMirrorProgress *q, int64_t start)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "phase", "disks", "bytes_sent",
                     (json_int_t)q->transferred, "bytes_total", (json_int_t)q->total, "disks",
                     (json_int_t)q->n_disks, "disks_ready", (json_int_t)q->n_ready,
                     "elapsed_ms", (json_int_t)(vo_now_ms() - start));
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
    /* Asked again after 10 ms, then twice as long each time up to POLL_MS:
     * small disks come in sync within milliseconds (a fixed 200 ms wait cost
     * ~220 ms per migration with local disks in bench/migrate), large ones
     * are not asked more than before. */
    int wait_ms = DISK_POLL_FIRST_MS;
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
            vo_task_set_details(t, 50, "disks in sync", disk_details(&q, start));
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
            vo_task_set_details(t, pct, "copying disks", disk_details(&q, start));
        }
        if (vo_now_ms() - pinged >= ALIVE_EVERY_MS) {
            pinged = vo_now_ms();
            _cleanup_free_ char *perr = NULL;
            int k = vo_migrate_peer_call(d, m->to_url, "POST", alive_path, NULL, NULL, &perr);
            if (k == -ENOENT)
                return vo_error_set(ret_error, -EIO, "the destination dropped the incoming "
                                    "VM: %s", perr);
        }
        (void)poll(NULL, 0, wait_ms);
        wait_ms = wait_ms * 2 < POLL_MS ? wait_ms * 2 : POLL_MS;
    }
}

int vo_migrate_run_disks(MigrateRun *x)
{
    MigrateTask *m = x->m;
    if (!m->n_disks)
        return 0;
    _cleanup_free_ char *error = NULL;
    vo_task_set_details(x->t, 5, "copying disks",
                        json_pack("{s:s, s:I, s:I}", "phase", "disks", "bytes_sent",
                                  (json_int_t)0, "bytes_total", (json_int_t)0));
    log_info("vm %s: copying %zu local disk(s) to host %s (%s)", x->name, m->n_disks,
             m->to_name, x->nbd_uri);
    vo_migrate_intent_phase(m, "disks", 0);
    int r = copy_disks(x->t, m, x->hv, x->nbd_uri, x->alive_path, x->start, &error);
    if (r >= 0)
        return 0;
    _cleanup_free_ char *cerr = NULL;
    if (x->d->driver->migrate_cancel(x->hv, &cerr) < 0) /* the mirrors */
        log_warn("vm %s: migrate_cancel: %s", x->name, cerr);
    vo_migrate_run_back_here(x);
    if (r == -ECANCELED) {
        log_info("vm %s: migration to %s cancelled while copying disks; the VM runs on here",
                 x->name, m->to_name);
        return vo_task_fail(x->t, -ECANCELED, "cancelled: VM '%s' runs on here", x->name);
    }
    log_warn("vm %s: migration to %s failed: %s", x->name, m->to_name, error);
    return vo_task_fail(x->t, r, "migration of VM '%s' to host '%s' failed (the VM runs on "
                        "here): %s", x->name, m->to_name, error);
}

/* The memory loop's wait between two questions to QEMU: until its
 * migration changes status (then at once: the guest is paused from the
 * completion until the switch), or with passes until a pass over memory
 * ends too (post-copy's switch waits for the second), at most
 * MEMORY_WAIT_MS. So QEMU is asked a few times a second rather than every
 * MEMORY_POLL_MS: each query-migrate takes its big lock, which under TCG
 * the vCPUs and the migration thread want too. MEMORY_POLL_MS when fast,
 * or when the driver cannot wait for a change. A cancel not acted on yet
 * (cancellable) ends it too: the loop cancels QEMU's migration at once. */
static void memory_wait(VoDaemon *d, VoHvInstance *hv, bool fast, bool cancellable, bool passes)
{
    int r = fast || !d->driver->migrate_wait
                ? -EOPNOTSUPP
                : d->driver->migrate_wait(hv, MEMORY_WAIT_MS, cancellable, passes);
    if (r < 0 && r != -ETIMEDOUT && r != -ECANCELED)
        (void)poll(NULL, 0, MEMORY_POLL_MS);
}

int vo_migrate_run_memory(MigrateRun *x)
{
    MigrateTask *m = x->m;
    VoTask *t = x->t;
    VoVm *vm = x->vm;
    VoDaemon *d = x->d;
    VoHvInstance *hv = x->hv;
    const char *name = x->name;
    int64_t start = x->start;
    _cleanup_free_ char *error = NULL;
    int r;
    x->at_disks = vo_now_ms();
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
    if (m->n_disks && vo_migrate_fault("disks-synced-hold")) /* test: a cancel lands here */
        vo_migrate_fault_wait("disks-synced-go", 300000);
    if (vo_task_cancelled(t)) { /* cancelled while the destination prepared */
        _cleanup_free_ char *aerror = NULL, *cerr = NULL;
        /* Or as the disks came in sync: their mirrors end too (left, every
         * later migration of the VM would find them). */
        if (m->n_disks && d->driver->migrate_cancel(hv, &cerr) < 0)
            log_warn("vm %s: migrate_cancel: %s", name, cerr);
        (void)vo_migrate_peer_call(d, m->to_url, "DELETE", x->base_path, NULL, NULL, &aerror);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, false);
        return vo_task_fail(t, -ECANCELED, "cancelled: VM '%s' runs on here", name);
    }
    log_info("vm %s: migrating to host %s (%s)", name, m->to_name, x->uri);
    vo_migrate_intent_phase(m, "memory", 0);
    r = d->driver->migrate_start(hv, x->uri, &opts, &error);
    if (r < 0) {
        vo_migrate_run_back_here(x);
        return vo_task_fail(t, r, "cannot start migrating VM '%s': %s", name, error);
    }
    x->at_migrate = vo_now_ms();
    VoHvMigrationProgress p = { 0 };
    int64_t shown = 0, cancel_at = 0, memory_start = vo_now_ms(), switch_start = 0;
    bool cancelled = false, unconfirmed = false, post_copy_asked = false, post_copy_on = false;
    _cleanup_free_ char *stuck = NULL; /* did not converge in time: why */
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
        if (p.throttle_pct > x->max_throttle)
            x->max_throttle = p.throttle_pct;
        if (!p.switching)
            switch_start = 0;
        else if (!switch_start)
            switch_start = vo_now_ms();
        VoConvergeView converge = { .progress = &p, .elapsed_ms = vo_now_ms() - memory_start,
                                    .switching_ms = switch_start ? vo_now_ms() - switch_start : 0,
                                    .limit_s = converge_s, .max_throttle = x->max_throttle,
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
            json_t *det = vo_migrate_progress_json("memory", &p, start);
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
        /* Post-copy's switch waits for the second pass, which no status
         * change announces: QEMU's event at each pass's end wakes it. */
        memory_wait(d, hv, vo_migrate_fault_held("exit-in-memory"), !cancelled,
                    m->opts.post_copy && !post_copy_asked);
    }
    /* A cancel that raced the completion is still honoured: the switch has
     * not happened. */
    bool at_switch = x->at_switch = r >= 0 && p.status == VO_HV_MIGRATION_ACTIVE && p.at_switchover;
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
            (void)vo_migrate_peer_call(d, m->to_url, "DELETE", x->base_path, NULL, NULL, &aerror);
            vo_migrate_clear_mark(vm);
            vo_vm_job_end(vm, true);
            return vo_task_fail(t, -ETIMEDOUT, "%s%scancelled, but QEMU did not confirm the "
                                "cancel within %d s: VM '%s' stays here as QEMU has it (see "
                                "vireo vm show; vireo vm resume if it is paused)",
                                stuck ? stuck : "", stuck ? "; " : "", CANCEL_WAIT_MS / 1000,
                                name);
        }
        vo_migrate_run_back_here(x);
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
    x->at_completed = vo_now_ms();
    /* Not written to the store now: the guest is paused until the
     * destination continues it (the switch's own transaction is enough). */
    vo_task_set_details_unwritten(t, 92, "switching over",
                                  vo_migrate_progress_json("switchover", &p, start));
    return 0;
}
