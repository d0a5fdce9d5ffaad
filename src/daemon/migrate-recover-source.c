/* migrate-recover-source.c: the source's side of settling a live migration
 * that vireod or its task left unsettled (migrate-recover.h): the rest of a
 * post-copy handed over before the source QEMU ends, a QEMU that runs the
 * guest again after the switch told apart (vo_migrate_source_runs_guest),
 * the source resumed while the VM is still this host's, or ended (in the
 * table, or with no VM of the table holding it) once the VM is the
 * destination's. A QEMU running the guest again goes to the take-back
 * (migrate-take-back.c). */
#include "daemon/migrate-recover.h"

#include <poll.h>
#include <string.h>

#include "cluster/migrate-converge.h"
#include "daemon/ha-retry.h"
#include "daemon/migrate-internal.h"
#include "daemon/migrate-safe.h"
#include "daemon/post-copy-kept.h"
#include "daemon/vm-internal.h"
#include "util/util.h"

#define CANCEL_WAIT_MS 30000
#define PEER_ABORT_MS 5000
#define RESTART_WAIT_MS 10000

/* Source, the VM the destination's now: a post-copy migration's QEMU may
 * still hold what the destination lacks, its device state (stopped before
 * the switch-over: the dead vireod never let it go on) or the rest of its
 * RAM (post-copy under way). Both are sent before this QEMU ends, else the
 * guest the destination continues has no devices or misses pages; a
 * post-copy whose link broke is recovered first (bounded, migrate-resume.c).
 * A pre-copy that completed, or any other state, returns at once. False:
 * post-copy broke and could not be recovered, so this QEMU must stay (it
 * holds memory the destination lacks) and the intent too: the next start
 * (or vireo vm migrate --resume) tries again; *ret_error (may be NULL)
 * says why. later: the background's try (migrate-resettle.h), which makes
 * one recovery attempt (bounded: it tries again after its backoff), not
 * vireod's start or --resume (all the attempts). */
static bool hand_over_post_copy(VoDaemon *d, VoHvInstance *hv, const VoMigrateIntent *i,
                                bool later, char **ret_error)
{
    VoHvMigrationProgress p = { 0 };
    int r = d->driver->migrate_query(hv, &p);
    free(p.error);
    if (r < 0 || p.status != VO_HV_MIGRATION_ACTIVE || (!p.at_switchover && !p.post_copy) ||
        !d->driver->migrate_continue)
        return true;
    if (!vo_post_copy_source_needed(d, i->vm, i->peer)) {
        log_warn("vm %s: its source QEMU is %s, but the VM is no longer at host %s (restarted "
                 "elsewhere or deleted): nothing needs its pages, it ends", i->name,
                 p.at_switchover ? "stopped before the switch-over" : "in post-copy", i->peer);
        return true;
    }
    log_warn("vm %s: its source QEMU is %s: the rest of the VM goes to the destination "
             "before it ends", i->name, p.at_switchover ? "stopped before the switch-over"
                                                        : "in post-copy");
    _cleanup_free_ char *error = NULL;
    bool post_copy = p.post_copy;
    if (p.at_switchover)
        r = vo_migrate_continue_switchover(d, hv, &post_copy, &error);
    int tries = later ? 1 : vo_migrate_resume_tries();
    while (r >= 0 && post_copy) {
        VoHvMigrationProgress fin = { 0 };
        r = vo_migrate_finish_post_copy(NULL, d, hv, vo_now_ms(), &fin, &error);
        bool broke = r < 0 && vo_migrate_post_copy_recoverable(&fin);
        free(fin.error);
        if (!broke)
            break;
        free(error);
        error = NULL;
        r = vo_migrate_resume_post_copy(d, hv, i->peer_url, i->migration, i->vm, i->name,
                                        &tries, &error);
        if (r == -EIDRM) {
            vo_post_copy_kept_gone(d, i->vm, i->name, i->peer, error);
            return true;
        }
        if (r < 0) {
            log_error("vm %s: post-copy to host %s broke and could not be recovered: %s; its "
                      "QEMU here is kept (the guest's memory is split between the hosts); "
                      "%s, or vireo vm migrate %s --resume", i->name, i->peer, error,
                      later ? "the background tries again after its backoff"
                            : "vireod's next start tries again",
                      i->name);
            if (ret_error)
                *ret_error = TAKE_PTR(error);
            return false;
        }
    }
    if (r < 0)
        log_error("vm %s: handing the rest of the VM over failed (the guest at the "
                  "destination must be restarted): %s", i->name, error);
    return true;
}

bool vo_migrate_source_runs_guest(VoDaemon *d, VoHvInstance *hv)
{
    /* Test hook source-runs-again: as QEMU with post-copy-ram on whose
     * return path broke after the destination loaded everything: the
     * migration failed here and QEMU runs the guest again, while the
     * destination holds it too (docs/internals.md, "The claim mark"). */
    if (vo_migrate_fault("source-runs-again")) {
        log_warn("test fault: the source QEMU counts as running the guest again");
        return true;
    }
    for (int64_t until = vo_now_ms() + RESTART_WAIT_MS;;) {
        VoHvInfo info = { 0 };
        if (d->driver->info(hv, &info) >= 0 && !info.paused)
            return true;
        VoHvMigrationProgress p = { 0 };
        int r = d->driver->migrate_query(hv, &p);
        free(p.error);
        /* failing, cancelling: still ending (QEMU restarts the guest as
         * its clean-up begins). */
        if (r < 0 || !vo_hv_migration_ended_or_ending(p.status) || vo_now_ms() > until)
            return false;
        (void)poll(NULL, 0, 100);
    }
}

/* The VM's QEMU that no VM of the table holds, attached with the spec the
 * intent kept; NULL when it is gone (or cannot be found). */
VoHvInstance *vo_migration_attach_unowned(VoDaemon *d, const VoMigrateIntent *i)
{
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, i->vm), *error = NULL;
    VoVmSpec *spec = NULL;
    VoHvInstance *hv = NULL;
    if (!i->spec || vo_vm_spec_from_json(i->spec, &spec, &error) < 0)
        log_warn("vm %s: the migration intent has no readable spec (%s): its QEMU cannot be "
                 "found", i->name, error ? error : "none");
    else if (d->driver->attach(d->driver, spec, run_dir, &hv) < 0)
        hv = NULL; /* gone already */
    vo_vm_spec_free(spec);
    return hv;
}

/* Ends a QEMU of the VM no VM of the table holds (its documents are gone
 * from here): attached with the spec the intent kept, ended (source: quit,
 * destination: SIGKILL), its run and state dirs removed. False: a source
 * QEMU kept (hand_over_post_copy), its dirs too. */
bool vo_migration_end_unowned(VoDaemon *d, const VoMigrateIntent *i, VoHvMigrationSide side,
                              bool later, char **ret_error)
{
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, i->vm);
    _cleanup_free_ char *state_dir = vo_vm_state_dir(d, i->vm);
    _cleanup_free_ char *error = NULL;
    VoHvInstance *hv = vo_migration_attach_unowned(d, i);
    if (hv) {
        if (side == VO_HV_MIGRATION_SOURCE && !hand_over_post_copy(d, hv, i, later, ret_error)) {
            d->driver->release(hv);
            return false;
        }
        int a = side == VO_HV_MIGRATION_SOURCE && vo_migrate_source_runs_guest(d, hv)
                    ? vo_migration_adopt_running_source(d, i, hv, later, ret_error)
                    : -ENOENT;
        if (a == 1)
            return true; /* the VM's again, its QEMU and dirs too */
        if (a == 0) {
            d->driver->release(hv);
            return false;
        }
        if (d->driver->migrate_finish(hv, side, side == VO_HV_MIGRATION_SOURCE, false,
                                      &error) < 0)
            log_warn("vm %s: ending its QEMU: %s", i->name, error);
        int fd = d->driver->exit_fd(hv);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (fd >= 0)
            (void)poll(&p, 1, 10000);
        bool clean;
        _cleanup_free_ char *reason = NULL;
        d->driver->reap(hv, &clean, &reason);
        d->driver->release(hv);
    }
    (void)vo_rm_rf(run_dir);
    (void)vo_rm_rf(state_dir);
    vo_post_copy_kept_unmark(d, i->vm); /* its QEMU ended */
    return true;
}

/* Source, the VM still this host's: a stream in flight is cancelled, the
 * source QEMU continued when the VM ran before, the destination told to
 * abort (its watcher would, a minute later). */
void vo_migration_resume_source(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i, bool later)
{
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    VoHvInstance *hv = vm->hv;
    pthread_mutex_unlock(&vm->lock);
    bool crashed = false;
    if (hv) {
        VoHvMigrationProgress p = { 0 };
        int r = d->driver->migrate_query(hv, &p);
        free(p.error);
        if (r >= 0 && (p.status == VO_HV_MIGRATION_SETUP || p.status == VO_HV_MIGRATION_ACTIVE ||
                       vo_hv_migration_ending(p.status))) {
            _cleanup_free_ char *error = NULL;
            if (d->driver->migrate_cancel(hv, &error) < 0)
                log_warn("vm %s: cancelling the migration left running: %s", i->name, error);
            int64_t deadline = vo_now_ms() + CANCEL_WAIT_MS;
            do {
                (void)poll(NULL, 0, 100);
                p = (VoHvMigrationProgress){ 0 };
                r = d->driver->migrate_query(hv, &p);
                free(p.error);
            } while (r >= 0 && vo_now_ms() < deadline &&
                     (p.status == VO_HV_MIGRATION_SETUP || p.status == VO_HV_MIGRATION_ACTIVE ||
                      vo_hv_migration_ending(p.status)));
        }
        /* The disk mirrors the dead vireod began (local disks) end too:
         * left, their jobs and NBD nodes would fail every later migration
         * of the VM (the driver finds them by name on a re-attached QEMU). */
        _cleanup_free_ char *ferror = NULL;
        if (d->driver->migrate_finish(hv, VO_HV_MIGRATION_SOURCE, false, false, &ferror) < 0)
            log_warn("vm %s: ending the cut-short migration's disk mirrors: %s", i->name,
                     ferror);
        VoHvInfo info = { 0 };
        bool paused = d->driver->info(hv, &info) >= 0 && info.paused;
        if (i->resume && paused) {
            if (d->driver->resume(hv) < 0) {
                log_error("vm %s: cannot continue the source QEMU after the migration was "
                          "cut short", i->name);
            } else {
                pthread_mutex_lock(&vm->lock);
                vm->info.paused = false;
                vo_vm_set_state_reason(vm, VO_VM_RUNNING, NULL);
                pthread_mutex_unlock(&vm->lock);
            }
        }
        vo_vm_refresh_live(vm, hv);
    } else {
        /* Its QEMU ended while the VM was migrated away (a fencing killed
         * it while the switch's outcome was unknown, say): its exit was not
         * recorded then. It is now, the VM this host's again: crashed (an
         * HA VM is restarted, below), not left "running" with no QEMU. */
        pthread_mutex_lock(&vm->lock);
        crashed = vo_vm_state_active(vm->state);
        if (crashed) {
            free(vm->exit_reason);
            vm->exit_reason = vo_strdup("its QEMU ended while the migration's outcome was "
                                        "unknown");
            vo_vm_set_state(vm, VO_VM_CRASHED);
            log_warn("vm %s: %s", i->name, vm->exit_reason);
        }
        pthread_mutex_unlock(&vm->lock);
    }
    pthread_mutex_unlock(&vm->job);
    if (crashed) /* at vireod's start: once the fence and the HA retrier run */
        vo_ha_retry_restart_crashed(d, vm, "lost its QEMU while its migration's outcome was "
                                    "unknown", "its QEMU lost while a migration's outcome "
                                    "was unknown");
    log_warn("vm %s: its migration to host %s was %s (phase %s); the VM runs on here",
             i->name, i->peer, vo_migration_cut_short(later), i->phase);
    if (i->peer_url && d->cluster) {
        _cleanup_free_ char *path = vo_asprintf("/v1/migrations/incoming/%s", i->migration);
        _cleanup_free_ char *error = NULL;
        /* Short: at start, vireod does not serve until the recovery is over. */
        if (vo_migrate_peer_call_timeout(d, i->peer_url, "DELETE", path, NULL, PEER_ABORT_MS,
                                         NULL, &error) < 0 &&
            !strstr(error ? error : "", "HTTP 404"))
            log_info("vm %s: aborting the destination's incoming VM: %s (its watcher ends it)",
                     i->name, error);
    }
}

/* Source, the VM moved while it was in the table (settled after it was
 * loaded): its QEMU quits, the VM leaves the table. False: its QEMU kept
 * (hand_over_post_copy), the VM in the table, moved away. */
bool vo_migration_quit_source(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i, bool later,
                              char **ret_error)
{
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    VoHvInstance *hv = vm->hv;
    pid_t pid = vm->info.pid;
    vm->migrated_away = true;
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *error = NULL;
    if (hv) /* until it ended, it may hold what the destination lacks */
        vo_post_copy_kept_mark(d, i->vm, i->name, i->peer, pid);
    if (hv && !hand_over_post_copy(d, hv, i, later, ret_error)) {
        pthread_mutex_unlock(&vm->job);
        return false;
    }
    if (hv && vo_migrate_source_runs_guest(d, hv)) {
        pthread_mutex_unlock(&vm->job);
        int t = vo_migration_take_back_running(d, vm, i, later, ret_error);
        if (t >= 0)
            return t == 1;
        pthread_mutex_lock(&vm->job); /* gone from the peer: ended as below */
    }
    if (hv && d->driver->migrate_finish(hv, VO_HV_MIGRATION_SOURCE, true, false, &error) < 0)
        log_warn("vm %s: ending the source QEMU: %s", i->name, error);
    pthread_mutex_unlock(&vm->job);
    vo_vm_forget_migrated(vm);
    return true;
}
