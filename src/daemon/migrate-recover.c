/* migrate-recover.c: a live migration's intent files and what vireod does
 * at start with those an earlier vireod left (conf/migrate-intent.h;
 * docs/internals.md, "Live migration", "A vireod that dies
 * mid-migration"). The migration's QEMUs outlive vireod; whatever phase it
 * died in, the guest ends up running in exactly one place and nothing is
 * left half-made: the source resumes its QEMU while the store says the VM
 * is its own, ends it once the VM is the destination's; the destination
 * continues its incoming QEMU when the store gives it the VM (claimed
 * first, as the commit claims it), else kills it and removes what it
 * made. */
#include "daemon/migrate.h"
#include "daemon/migrate-internal.h"
#include "daemon/migrate-orphan.h"

#include <dirent.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "cluster/migrate-converge.h"
#include "daemon/migrate-resettle.h"
#include "daemon/migrate-safe.h"
#include "daemon/post-copy-kept.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "state/keys.h"
#include "state/vm-move-settle.h"
#include "util/util.h"

#define CANCEL_WAIT_MS 30000
#define SETTLE_GIVE_UP_MS 30000
#define PEER_ABORT_MS 5000
#define CLAIM_TRIES 3
#define COMPLETE_WAIT_MS 30000
#define RESTART_WAIT_MS 10000

static char *intent_dir(VoDaemon *d)
{
    return vo_asprintf("%s/migrations", d->run_dir);
}

static char *intent_path(VoDaemon *d, const char *vm_id)
{
    return vo_asprintf("%s/migrations/%s.json", d->run_dir, vm_id);
}

int vo_migration_intent_save(VoDaemon *d, const VoMigrateIntent *i)
{
    _cleanup_free_ char *dir = intent_dir(d), *path = intent_path(d, i->vm);
    int r = vo_mkdir_p(dir, 0700);
    json_t *doc = vo_migrate_intent_to_json(i);
    _cleanup_free_ char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (r >= 0)
        r = text ? vo_write_file_atomic(path, text, strlen(text)) : -ENOMEM;
    if (r < 0)
        log_warn("vm %s: cannot record the migration's intent in %s: %s", i->name, path,
                 strerror(-r));
    return r;
}

void vo_migration_intent_drop(VoDaemon *d, const char *vm_id)
{
    _cleanup_free_ char *path = intent_path(d, vm_id);
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", path, strerror(errno));
}

/* How a migration settled here was left: by a vireod that stopped (the
 * settling at start), or by its task with its outcome unknown (the
 * background's, later: migrate-resettle.h). */
static const char *cut_short(bool later)
{
    return later ? "left unsettled by its task" : "cut short by a vireod restart";
}

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

/* Source, not in the table (a start), its QEMU hv running the guest again
 * after the switch (vo_migrate_source_runs_guest): the VM taken back
 * (take_back_here) and adopted as this host's with hv, running on: 1. 0:
 * hv not taken (kept running as it is, the intent too); -ENOENT: hv not
 * taken, to be ended (take_back_here). */
static int adopt_running_source(VoDaemon *d, const VoMigrateIntent *i, VoHvInstance *hv,
                                bool later, char **ret_error);

/* The VM's QEMU that no VM of the table holds, attached with the spec the
 * intent kept; NULL when it is gone (or cannot be found). */
static VoHvInstance *attach_unowned(VoDaemon *d, const VoMigrateIntent *i)
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
static bool end_unowned(VoDaemon *d, const VoMigrateIntent *i, VoHvMigrationSide side,
                        bool later, char **ret_error)
{
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, i->vm);
    _cleanup_free_ char *state_dir = vo_vm_state_dir(d, i->vm);
    _cleanup_free_ char *error = NULL;
    VoHvInstance *hv = attach_unowned(d, i);
    if (hv) {
        if (side == VO_HV_MIGRATION_SOURCE && !hand_over_post_copy(d, hv, i, later, ret_error)) {
            d->driver->release(hv);
            return false;
        }
        int a = side == VO_HV_MIGRATION_SOURCE && vo_migrate_source_runs_guest(d, hv)
                    ? adopt_running_source(d, i, hv, later, ret_error)
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
static void resume_source(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i, bool later)
{
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    VoHvInstance *hv = vm->hv;
    pthread_mutex_unlock(&vm->lock);
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
         * HA VM is restarted), not left "running" with no QEMU. */
        pthread_mutex_lock(&vm->lock);
        if (vo_vm_state_active(vm->state)) {
            free(vm->exit_reason);
            vm->exit_reason = vo_strdup("its QEMU ended while the migration's outcome was "
                                        "unknown");
            vo_vm_set_state(vm, VO_VM_CRASHED);
            log_warn("vm %s: %s", i->name, vm->exit_reason);
        }
        pthread_mutex_unlock(&vm->lock);
    }
    pthread_mutex_unlock(&vm->job);
    log_warn("vm %s: its migration to host %s was %s (phase %s); the VM runs on here",
             i->name, i->peer, cut_short(later), i->phase);
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

static void note_settled(VoDaemon *d, const VoMigrateIntent *i, bool moved, const char *what);

int vo_migration_take_back_here(VoDaemon *d, const VoMigrateIntent *i, int64_t *ret_rev,
                                char **ret_error)
{
    /* -ENOENT: the VM is at the peer no more (deleted, or restarted
     * elsewhere after the peer died): its guest runs there, this copy
     * must end (the caller ends it). */
    _cleanup_vm_spec_ VoVmSpec *spec = NULL;
    _cleanup_free_ char *error = NULL;
    int r = !d->cluster_store ? vo_error_set(&error, -ENOTCONN, "not in a cluster")
            : vo_vm_spec_from_json(i->spec, &spec, &error) < 0 ? -EINVAL
            : vo_migrate_check_disks(d, spec, &error) < 0
                ? -EBUSY
                : vo_migrate_take_back_running(d, i->vm, i->peer, SETTLE_GIVE_UP_MS, ret_rev,
                                               &error);
    if (r == -ENOENT) {
        log_warn("vm %s: its source QEMU runs the guest, but the VM is no longer at host %s "
                 "(restarted elsewhere or deleted): it ends", i->name, i->peer);
        return r;
    }
    if (r < 0) {
        log_error("vm %s: its source QEMU runs the guest (its device state never reached "
                  "host %s), but the VM could not be taken back: %s; the QEMU is kept "
                  "running, the intent too", i->name, i->peer, error);
        if (ret_error)
            *ret_error = vo_asprintf("the source QEMU runs the guest, but the VM could not be "
                                     "taken back from host %s: %s", i->peer, error);
        return r;
    }
    vo_post_copy_kept_unmark(d, i->vm); /* it holds nothing the peer lacks */
    return 0;
}

/* vo_migration_take_back_here, noted as the settling of the migration. */
static int take_back_here(VoDaemon *d, const VoMigrateIntent *i, int64_t *ret_rev,
                          char **ret_error)
{
    int r = vo_migration_take_back_here(d, i, ret_rev, ret_error);
    if (r == 0)
        note_settled(d, i, false, "this host's again: its device state never reached the "
                     "destination, so the source QEMU ran the guest on and the VM was taken "
                     "back");
    return r;
}

/* Source, the VM in the table (moved away), its QEMU running the guest
 * again: taken back (take_back_here), it runs on here (resume_source): 1.
 * 0: kept as it is; -ENOENT: to be ended (take_back_here). */
static int take_back_running(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i, bool later,
                             char **ret_error)
{
    int64_t rev = 0;
    int r = take_back_here(d, i, &rev, ret_error);
    if (r < 0)
        return r == -ENOENT ? r : 0;
    pthread_mutex_lock(&vm->lock);
    vm->rev = rev;
    vm->migrated_away = false;
    pthread_mutex_unlock(&vm->lock);
    resume_source(d, vm, i, later);
    return 1;
}

/* Source, the VM's documents this host's again (taken back) while it is
 * in no table: adopted with its QEMU hv (hv taken) and run on as it ran
 * (resume_source): 1. 0: hv not taken (the next start loads the VM),
 * *ret_error (may be NULL) says why. */
static int adopt_source(VoDaemon *d, const VoMigrateIntent *i, VoHvInstance *hv, bool later,
                        char **ret_error)
{
    _cleanup_free_ char *key = vo_key_vm(i->vm), *text = NULL, *error = NULL;
    json_t *doc = NULL;
    VoVmSpec *spec = NULL;
    VoVm *vm = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, key, &text, &rev);
    if (r >= 0 && !(doc = json_loads(text, 0, NULL)))
        r = vo_error_set(&error, -EINVAL, "its document is not JSON");
    if (r >= 0)
        r = vo_vm_spec_from_json(json_object_get(doc, "spec"), &spec, &error);
    if (r >= 0)
        r = vo_vm_adopt_incoming(d, spec, json_object_get(doc, "status"), rev, hv, &vm,
                                 &error); /* spec taken */
    else
        vo_vm_spec_free(spec);
    json_decref(doc);
    if (r < 0) {
        /* The VM is this host's: the next start loads it and runs it on. */
        log_error("vm %s: taken back, but its QEMU cannot be adopted: %s; vireod's next start "
                  "runs it on", i->name, error ? error : strerror(-r));
        if (ret_error)
            *ret_error = vo_asprintf("taken back, but its QEMU cannot be adopted: %s",
                                     error ? error : strerror(-r));
        return 0;
    }
    pthread_mutex_lock(&vm->lock);
    if (!vm->info.paused) /* adopt_incoming read QEMU's state */
        vo_vm_set_state_reason(vm, VO_VM_RUNNING, NULL);
    pthread_mutex_unlock(&vm->lock);
    resume_source(d, vm, i, later);
    vo_vm_unref(vm);
    return 1;
}

static int adopt_running_source(VoDaemon *d, const VoMigrateIntent *i, VoHvInstance *hv,
                                bool later, char **ret_error)
{
    int64_t rev = 0;
    int t = take_back_here(d, i, &rev, ret_error);
    if (t < 0)
        return t == -ENOENT ? t : 0;
    return adopt_source(d, i, hv, later, ret_error);
}

/* Source, the VM moved while it was in the table (settled after it was
 * loaded): its QEMU quits, the VM leaves the table. False: its QEMU kept
 * (hand_over_post_copy), the VM in the table, moved away. */
static bool quit_source(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i, bool later,
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
        int t = take_back_running(d, vm, i, later, ret_error);
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

/* Destination: the VM is claimed as the commit claims it
 * (migrate-incoming.c): its document rewritten at the revision a
 * linearizable read gave, so a source still retrying its commit can no
 * longer take it back (its take-back compares the switch's revision).
 * Until this write the VM being in the table proves nothing: it was loaded
 * before, and the source may have taken it back since. 0: ours (vm->rev
 * follows); -ENOENT: not this host's (taken back); -EAGAIN: the store
 * cannot say now. */
static int claim_incoming(VoDaemon *d, VoVm *vm, const char *vm_id)
{
    _cleanup_free_ char *key = vo_asprintf("vms/%s", vm_id);
    for (int k = 0; k < CLAIM_TRIES; k++) {
        _cleanup_free_ char *value = NULL;
        int64_t rev = 0, new_rev = 0;
        vo_store_stale_reset();
        int r = vo_store_get(d->store, key, &value, &rev);
        bool stale = vo_store_stale_read() != 0;
        vo_store_stale_reset();
        if (stale || (r < 0 && r != -ENOENT))
            return -EAGAIN;
        if (r == -ENOENT)
            return -ENOENT;
        r = vo_store_put(d->store, key, value, rev, &new_rev);
        if (r >= 0) {
            pthread_mutex_lock(&vm->lock);
            vm->rev = new_rev;
            vm->migrated_away = false; /* this host's (incoming_without_guest set it) */
            pthread_mutex_unlock(&vm->lock);
            return 0;
        }
        if (r != -ESTALE && r != -ENOENT)
            return -EAGAIN; /* no answer: it may have been applied; asked again next start */
        /* changed meanwhile (taken back, say): read again */
    }
    return -EAGAIN;
}

/* Destination, the VM taken back by its source after this host loaded it:
 * the incoming QEMU is killed, the VM leaves the table, its dirs go. */
static void drop_taken_back(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i)
{
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    VoHvInstance *hv = vm->hv;
    vm->migrated_away = true; /* its documents are the source's: never written here */
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *error = NULL;
    if (hv && d->driver->migrate_finish(hv, VO_HV_MIGRATION_DESTINATION, false, false,
                                        &error) < 0)
        log_warn("vm %s: killing the incoming QEMU: %s", i->name, error);
    pthread_mutex_unlock(&vm->job);
    vo_vm_forget_migrated(vm);
}

/* Destination at a start, the VM loaded here (the store gave it to this
 * host) but its incoming QEMU holding no guest (what: gone, or its stream
 * failed or never completed before the device state came): not claimed, as
 * the watcher claims no such VM (migrate-incoming.c). Its source, whose
 * QEMU runs the guest again once the device state could not be sent, takes
 * the VM back: it then leaves this table. When the QEMU answered (empty:
 * attached, its status read) and the source says it holds no QEMU of the
 * VM either (both sides gone), it is claimed and recorded crashed
 * (migrate-orphan.h: its QEMU killed). Until it is claimed, no operation
 * takes it here (vm->migrated_away). Not when it could not be attached:
 * one whose main loop waits on a post-copy page does not answer, and could
 * not be killed. Else the intent stays, asked again in the background.
 * True: settled. */
static bool incoming_without_guest(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i,
                                   const char *what, bool empty)
{
    /* Not this host's to run or write meanwhile (a start here would be a
     * second copy once the source took the VM back): until it is claimed. */
    pthread_mutex_lock(&vm->lock);
    vm->migrated_away = true;
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *key = vo_asprintf("vms/%s", i->vm), *error = NULL;
    int g = vo_store_get_linear(d->store, key, NULL);
    int c = g == -ENOENT ? -ENOENT
            : g >= 0 && empty && vo_migration_source_gone(d, i->peer, i->vm, &error) == 1
                ? claim_incoming(d, vm, i->vm)
                : -EAGAIN;
    if (c == -ENOENT) {
        log_warn("vm %s: its incoming QEMU is %s and its source took the VM back: the VM "
                 "leaves this host", i->name, what);
        drop_taken_back(d, vm, i);
        return true;
    }
    if (c == 0) {
        log_warn("vm %s: neither its incoming QEMU here (%s) nor its source holds the guest; "
                 "the VM is this host's: recorded crashed", i->name, what);
        vo_migration_orphan_crashed(d, i->vm, i->migration, i->peer);
        return true;
    }
    log_warn("vm %s: the store gives it to this host, but its incoming QEMU is %s: not "
             "claimed; it waits for its source to take it back (asked again in the "
             "background)", i->name, what);
    vo_migrate_resettle_later(d, i->vm, i->name, i->migration);
    return false;
}

/* Destination, the store gave the VM here at load: its incoming QEMU
 * (loaded and attached as the VM's) is looked at first, and only one that
 * holds the guest is claimed (incoming_without_guest: the others), then
 * continued once its stream is complete. False: the intent stays (the
 * store could not say, or no guest here yet: the VM stays paused until the
 * background or the next start looks again). */
static bool continue_incoming(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i)
{
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    VoHvInstance *hv = vm->hv;
    pthread_mutex_unlock(&vm->lock);
    VoHvMigrationProgress p = { 0 };
    int r;
    /* The source switched once its side completed; this side may still be
     * loading the last of the stream: waited for, bounded. In post-copy it
     * is ready as the commit takes it (migrate-incoming.c, wait_complete):
     * continued, it fetches the pages it lacks from the source. */
    int64_t deadline = vo_now_ms() + COMPLETE_WAIT_MS;
    bool ready = false;
    for (;;) {
        p = (VoHvMigrationProgress){ 0 };
        r = hv ? d->driver->migrate_query(hv, &p) : -ESRCH;
        free(p.error);
        ready = r >= 0 && (p.status == VO_HV_MIGRATION_COMPLETED ||
                           (p.post_copy && !p.post_copy_paused && !p.post_copy_recovering));
        if (r < 0 || ready ||
            (p.status != VO_HV_MIGRATION_SETUP && p.status != VO_HV_MIGRATION_ACTIVE) ||
            vo_now_ms() > deadline)
            break;
        (void)poll(NULL, 0, 50);
    }
    /* The device state is here: completed, or post-copy (paused or
     * recovering too: its source recovers it, continued then). */
    if (r < 0 || (p.status != VO_HV_MIGRATION_COMPLETED && !p.post_copy &&
                  !p.post_copy_paused)) {
        pthread_mutex_unlock(&vm->job);
        const char *what = !hv ? "gone" : r < 0 ? "unreadable"
                                                : vo_hv_migration_status_to_string(p.status);
        return incoming_without_guest(d, vm, i, what, hv && r >= 0);
    }
    int c = claim_incoming(d, vm, i->vm);
    if (c < 0)
        pthread_mutex_unlock(&vm->job);
    if (c == -ENOENT) {
        log_warn("vm %s: its source took it back while vireod was down: the incoming QEMU "
                 "is killed", i->name);
        drop_taken_back(d, vm, i);
        return true;
    }
    if (c < 0) {
        log_error("vm %s: the store cannot say whether it is this host's: left paused; "
                  "vireod looks again at its next start", i->name);
        return false;
    }
    _cleanup_free_ char *error = NULL;
    if (ready) {
        r = d->driver->migrate_finish(hv, VO_HV_MIGRATION_DESTINATION, true, i->resume,
                                      &error);
        pthread_mutex_lock(&vm->lock);
        if (r >= 0) {
            vm->info.paused = !i->resume;
            vo_vm_set_state_reason(vm, i->resume ? VO_VM_RUNNING : VO_VM_PAUSED,
                                   i->resume ? NULL : VO_VM_REASON_USER);
        }
        pthread_mutex_unlock(&vm->lock);
        vo_vm_refresh_live(vm, hv);
        if (r >= 0)
            log_warn("vm %s: migrated here while vireod was down; continued", i->name);
        else
            log_error("vm %s: migrated here but cannot continue: %s", i->name, error);
    } else {
        log_error("vm %s: the store gives it to this host but its incoming stream is %s: "
                  "left paused", i->name, vo_hv_migration_status_to_string(p.status));
    }
    pthread_mutex_unlock(&vm->job);
    return true;
}

/* A settled switch's outcome, logged and recorded (a task of kind
 * "migrate" that succeeded at once: an event). */
static void note_settled(VoDaemon *d, const VoMigrateIntent *i, bool moved, const char *what)
{
    char *message = vo_asprintf("the switch of VM '%s' to host '%s', whose outcome was "
                                "unknown, is settled: the VM is %s", i->name, i->peer, what);
    log_warn("vm %s: %s", i->name, message);
    _cleanup_free_ char *key = vo_asprintf("vm/%s", i->vm);
    VoTaskDesc desc = { .kind = "migrate", .target = i->name, .target_id = i->vm,
                        .keys = { key } };
    vo_tasks_note(d->tasks, &desc, message,
                  json_pack("{s:s, s:s, s:s}", "vm", i->vm, "settled",
                            moved ? "moved" : "not moved",
                            "to", i->peer));
}

void vo_migration_note_stuck(VoDaemon *d, const char *vm_id, const char *name,
                             const char *why, int tries, int64_t next_ms)
{
    char *message = vo_asprintf("the post-copy migration of VM '%s' is still not recovered "
                                "after %d tries in the background (%s); both QEMUs stay "
                                "paused; tried again in %lld s, or at once with vireo vm "
                                "migrate %s --resume", name, tries, why,
                                (long long)(next_ms / 1000), name);
    log_error("vm %s: %s", name, message);
    _cleanup_free_ char *key = vo_asprintf("vm/%s", vm_id);
    VoTaskDesc desc = { .kind = "migrate", .target = name, .target_id = vm_id,
                        .keys = { key } };
    vo_tasks_note(d->tasks, &desc, message,
                  json_pack("{s:s, s:s, s:i, s:I}", "vm", vm_id, "stuck", why, "tries", tries,
                            "next_try_s", (json_int_t)(next_ms / 1000)));
}

/* Whether the intent file at path is of migration: 1 yes, 0 another
 * migration's, -1 none or unreadable. */
static int intent_of(const char *path, const char *migration)
{
    _cleanup_free_ char *text = NULL, *error = NULL;
    json_t *doc = vo_read_file(path, 4 << 20, &text, NULL) >= 0 ? json_loads(text, 0, NULL)
                                                                 : NULL;
    VoMigrateIntent now;
    int r = vo_migrate_intent_from_json(doc, &now, &error) < 0 ? -1
            : !strcmp(now.migration, migration)                ? 1
                                                               : 0;
    json_decref(doc);
    return r;
}

/* The intent file done with, unless it is another migration's now: from
 * the background (migrate-resettle.h) the VM may be migrated again as soon
 * as this settled it (the API serves), and that migration's intent has the
 * same path. Its local volumes' moves end first, as the start-up sweep
 * ends them (their files go where the VM moved): settled in the
 * background, they would otherwise wait for the next start. */
static void intent_done(VoDaemon *d, const char *path, const VoMigrateIntent *i)
{
    if (intent_of(path, i->migration) == 0)
        return;
    _cleanup_vm_spec_ VoVmSpec *spec = NULL;
    _cleanup_free_ char *error = NULL;
    /* Each volume the migration may have mirrored (vo_migrate_volume_at). */
    if (i->role == VO_MIGRATE_ROLE_SOURCE && vo_vm_spec_from_json(i->spec, &spec, &error) >= 0)
        for (size_t k = 0; k < spec->n_disks + 3; k++)
            if (vo_migrate_volume_at(spec, k))
                vo_volume_moving_settle(d, vo_migrate_volume_at(spec, k));
    (void)unlink(path);
}

/* A source's settling that found the VM's document neither at the peer nor
 * here at the revision it switched from (vo_vm_move_settle's -EIO): its
 * switch was applied (phase switched), so only its task's take-back, whose
 * answer was lost, moved it back here. The document here (a quorum's read)
 * is that take-back applied: 0 with its revision, the VM this host's (the
 * destination's claim compares the document it moved, so that host never
 * ran the guest). Else err, still unknown. */
static int taken_back(VoDaemon *d, const VoMigrateIntent *i, int64_t *ret_rev, int err)
{
    if (i->role != VO_MIGRATE_ROLE_SOURCE || strcmp(i->phase, "switched"))
        return err;
    _cleanup_free_ char *key = vo_asprintf("h/%s/vms/%s", d->host_id, i->vm);
    int64_t rev = 0;
    if (vo_store_get_linear(d->cluster_store, key, &rev) < 0)
        return err;
    log_warn("vm %s: its take-back from host %s, whose outcome was unknown, was applied",
             i->name, i->peer);
    *ret_rev = rev;
    return 0;
}

/* Source, the VM in no table (not here when the VMs were loaded), its task
 * having sent a take-back (i->back_rev): until that is decided the VM read
 * at the peer, or not, proves nothing (it may apply at any moment after
 * the load), so it is settled first (vo_migrate_settle_take_back). 1: not
 * back here (the peer's for good, or nowhere): go on as read. 0: it
 * applied: the source QEMU adopted and run on as it ran (before, it was
 * left paused and the VM in no host's table until the next start).
 * Negative: the intent kept: undecided (the QEMU left paused; asked again
 * in the background), or applied but the QEMU gone or not adoptable (the
 * next start loads the VM and settles it). */
static int settle_unloaded_take_back(VoDaemon *d, const VoMigrateIntent *i, bool later)
{
    _cleanup_free_ char *error = NULL;
    int64_t here_rev = 0;
    int b = vo_migrate_settle_take_back(d, i->vm, i->peer, i->back_rev, SETTLE_GIVE_UP_MS,
                                        &here_rev, &error);
    if (b == 1 || b == -EIO) /* -EIO: neither there nor here */
        return 1;
    if (b < 0) {
        log_error("vm %s: its take-back from host %s is undecided (%s): its QEMU is left "
                  "paused, the intent kept; asked again in the background", i->name, i->peer,
                  error);
        vo_migrate_resettle_later(d, i->vm, i->name, i->migration);
        return b;
    }
    log_warn("vm %s: its take-back from host %s, whose outcome was unknown, applied after the "
             "VMs were loaded: its source QEMU here is adopted", i->name, i->peer);
    VoHvInstance *hv = attach_unowned(d, i);
    if (!hv) {
        log_error("vm %s: taken back, but its QEMU is gone: vireod's next start loads the VM",
                  i->name);
        return -ESRCH;
    }
    if (adopt_source(d, i, hv, later, NULL) != 1) {
        d->driver->release(hv);
        return -EIO;
    }
    vo_post_copy_kept_unmark(d, i->vm); /* back here: it holds nothing the peer needs */
    note_settled(d, i, false, "this host's again: the take-back its task sent applied late; "
                 "the source runs on (when it ran) and the destination's incoming QEMU ends");
    return 0;
}

/* One intent: settled as far as the store and QEMU let it be (the intent
 * stays while not). later: the background's try (migrate-resettle.h), not
 * vireod's start; *ret_stuck (may be NULL): why a post-copy source's
 * recovery failed, when it did. */
static void recover_one(VoDaemon *d, const VoMigrateIntent *i, const char *path, bool later,
                        char **ret_stuck)
{
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, i->vm);
    bool at_peer = false;
    int peer_read = 0;
    if (!vm && d->cluster_store) {
        _cleanup_free_ char *key = vo_asprintf("h/%s/vms/%s", i->peer, i->vm);
        peer_read = vo_store_get_linear(d->cluster_store, key, NULL);
        at_peer = peer_read >= 0;
    }
    if (!vm && at_peer && i->back_rev > 0 && vo_migrate_fault("take-back-after-load"))
        vo_migrate_test_take_back(d, i->vm, i->peer, i->back_rev, NULL, 0); /* test: lands now */
    if (!vm && i->role == VO_MIGRATE_ROLE_SOURCE && i->back_rev > 0 && d->cluster_store &&
        peer_read != -EAGAIN) {
        int b = settle_unloaded_take_back(d, i, later);
        if (b == 0)
            intent_done(d, path, i);
        if (b <= 0)
            return;
    }
    VoMigrateRecover act = vo_migrate_recover_decide(i, vm != NULL, at_peer);
    log_info("vm %s: a migration (%s, %s side, phase %s) was %s: %s", i->name, i->migration,
             i->role == VO_MIGRATE_ROLE_SOURCE ? "source" : "destination", i->phase,
             cut_short(later), vo_migrate_recover_to_string(act));
    if (act == VO_MIGRATE_RECOVER_SETTLE) {
        int64_t moved_rev = 0, src_rev = 0;
        _cleanup_free_ char *error = NULL;
        int s = !d->cluster_store ? 0
                : vo_migrate_fault_held("resettle-unknown") /* test: the store still silent */
                    ? vo_error_set(&error, -ETIMEDOUT, "test fault: the store did not say")
                : i->back_rev > 0
                    /* Its task sent a take-back: until that is decided the VM
                     * read at the peer proves nothing (it may apply after the
                     * read: the source ended here, the destination's claim then
                     * fails, the guest lost). Settled as the take-back: 0 back
                     * here, 1 the peer's for good (s's meaning). */
                    ? vo_migrate_settle_take_back(d, i->vm, i->peer, i->back_rev,
                                                  SETTLE_GIVE_UP_MS, &src_rev, &error)
                    : vo_vm_move_settle(d->cluster_store, i->vm, d->host_id, i->peer,
                                        vo_vm_rev(vm), SETTLE_GIVE_UP_MS, &moved_rev, &src_rev,
                                        &error);
        if (s == -EIO)
            s = taken_back(d, i, &src_rev, s);
        else if (s == 0 && i->back_rev > 0 && d->cluster_store)
            log_warn("vm %s: its take-back from host %s, whose outcome was unknown, was "
                     "applied", i->name, i->peer);
        if (s == 0) {
            if (d->cluster_store) {
                pthread_mutex_lock(&vm->lock);
                vm->rev = src_rev;
                vm->migrated_away = false; /* a task's unknown switch had set it */
                pthread_mutex_unlock(&vm->lock);
            }
            note_settled(d, i, false, "still this host's: the source runs on (when it ran) "
                         "and the destination's incoming QEMU ends");
            act = VO_MIGRATE_RECOVER_RESUME;
        } else if (s == 1) {
            /* A post-copy source whose switch is known (its handover broke:
             * tried again each round) was noted when that became known. */
            if (strcmp(i->phase, "switched") || !vo_post_copy_kept(d, i->vm, -1, NULL))
                note_settled(d, i, true, "the destination's: the source QEMU ends (post-copy: "
                             "once it handed the rest over) and the destination continues "
                             "the guest");
            if (vo_migrate_fault("resettle-quit-pause")) /* test: a late take-back now */
                vo_migrate_fault_wait("resettle-quit-go", 120000);
            if (quit_source(d, vm, i, later, ret_stuck)) {
                intent_done(d, path, i);
            } else if (strcmp(i->phase, "switched")) {
                /* Its post-copy kept: the switch known now, the intent
                 * says so, as vireo vm migrate --resume looks for. */
                VoMigrateIntent known = *i;
                known.phase = "switched";
                (void)vo_migration_intent_save(d, &known);
            }
            return;
        } else {
            log_error("vm %s: whether it moved to host %s is unknown (%s): the source stays "
                      "paused; asked again in the background", i->name, i->peer, error);
            vo_migrate_resettle_later(d, i->vm, i->name, i->migration);
            return; /* the intent stays */
        }
    }
    switch (act) {
    case VO_MIGRATE_RECOVER_RESUME:
        resume_source(d, vm, i, later);
        break;
    case VO_MIGRATE_RECOVER_QUIT:
        log_warn("vm %s: it moved to host %s before vireod stopped; its source QEMU here "
                 "ends", i->name, i->peer);
        if (!end_unowned(d, i, VO_HV_MIGRATION_SOURCE, later, ret_stuck))
            return; /* the intent stays: the next start tries the recovery again */
        break;
    case VO_MIGRATE_RECOVER_CONTINUE:
        if (!continue_incoming(d, vm, i))
            return; /* the intent stays */
        break;
    case VO_MIGRATE_RECOVER_DESTROY:
        log_warn("vm %s: the store does not give it to this host: its incoming QEMU is "
                 "killed and what it made removed", i->name);
        end_unowned(d, i, VO_HV_MIGRATION_DESTINATION, later, NULL);
        break;
    default:
        if (peer_read == -EAGAIN) { /* not an answer: asked again at the next start */
            log_warn("vm %s: the store cannot say whether it is at host %s now: its QEMU is "
                     "left as it is, the intent kept", i->name, i->peer);
            return;
        }
        if (i->role == VO_MIGRATE_ROLE_SOURCE && vo_post_copy_kept(d, i->vm, -1, NULL)) {
            /* A post-copy source whose destination's guest is gone (the
             * VM restarted elsewhere, or deleted): hand_over_post_copy
             * sees it and lets it end. */
            log_warn("vm %s: its documents are neither here nor at host %s: its post-copy "
                     "source QEMU here ends", i->name, i->peer);
            if (!end_unowned(d, i, VO_HV_MIGRATION_SOURCE, later, ret_stuck))
                return;
            break;
        }
        log_warn("vm %s: its documents are neither here nor at host %s: its QEMU is left "
                 "as it is", i->name, i->peer);
        break;
    }
    if (act == VO_MIGRATE_RECOVER_RESUME && vo_migrate_fault("resettle-drop-pause"))
        vo_migrate_fault_wait("resettle-drop-go", 120000); /* test: migrated again meanwhile */
    intent_done(d, path, i);
}

/* One intent file: finished or undone (a file that is no intent goes).
 * later, ret_stuck: recover_one's. */
static void recover_file(VoDaemon *d, const char *path, bool later, char **ret_stuck)
{
    _cleanup_free_ char *text = NULL, *error = NULL;
    json_t *doc = vo_read_file(path, 4 << 20, &text, NULL) >= 0 ? json_loads(text, 0, NULL)
                                                                 : NULL;
    VoMigrateIntent i;
    if (vo_migrate_intent_from_json(doc, &i, &error) < 0) {
        log_warn("%s: %s; removed", path, error);
        (void)unlink(path);
    } else {
        recover_one(d, &i, path, later, ret_stuck);
    }
    json_decref(doc);
}

void vo_migrations_recover(VoDaemon *d)
{
    _cleanup_free_ char *dir = intent_dir(d);
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    struct dirent *e;
    while ((e = readdir(dh))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json"))
            continue;
        _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, e->d_name);
        recover_file(d, path, false, NULL);
    }
    closedir(dh);
}

bool vo_migration_resettle(VoDaemon *d, const char *vm_id, const char *migration,
                           char **ret_stuck)
{
    _cleanup_free_ char *path = intent_path(d, vm_id);
    if (intent_of(path, migration) != 1)
        return true; /* settled meanwhile (a vireod start), or another migration's */
    recover_file(d, path, true, ret_stuck);
    return intent_of(path, migration) != 1;
}

/* The intent of vm_id's migration this host is the source of, the VM gone
 * to its peer (phase switched: a post-copy whose QEMU is kept here): 0
 * with *ret (strings in *ret_doc, the caller's to free) and its path;
 * -ENOENT when there is none. */
static int kept_source_intent(VoDaemon *d, const char *vm_id, json_t **ret_doc,
                              VoMigrateIntent *ret, char **ret_path)
{
    _cleanup_free_ char *path = intent_path(d, vm_id), *text = NULL, *error = NULL;
    json_t *doc = vo_read_file(path, 4 << 20, &text, NULL) >= 0 ? json_loads(text, 0, NULL)
                                                                : NULL;
    if (!doc || vo_migrate_intent_from_json(doc, ret, &error) < 0 ||
        ret->role != VO_MIGRATE_ROLE_SOURCE || strcmp(ret->phase, "switched")) {
        json_decref(doc);
        return -ENOENT;
    }
    *ret_doc = doc;
    *ret_path = TAKE_PTR(path);
    return 0;
}

/* -EBUSY when vm_id's migration task still runs (it tries its own
 * recoveries and holds the VM's job until it ends), else 0. */
static int migration_task_over(VoDaemon *d, const char *vm_id, const char *name,
                               char **ret_error)
{
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    if (!vm)
        return 0;
    pthread_mutex_lock(&vm->lock);
    _cleanup_free_ char *task = vo_strdup(vm->migration_task);
    pthread_mutex_unlock(&vm->lock);
    if (!task)
        return 0;
    return vo_error_set(ret_error, -EBUSY, "VM '%s' is migrating (task %s), which recovers "
                        "its post-copy itself; retry --resume if that task fails", name, task);
}

int vo_migration_kept_source(VoDaemon *d, const char *key, char **ret_vm_id, char **ret_name,
                             char **ret_error)
{
    _cleanup_free_ char *dir = intent_dir(d);
    DIR *dh = opendir(dir);
    if (!dh)
        return -ENOENT;
    int r = -ENOENT;
    struct dirent *e;
    while (r < 0 && (e = readdir(dh))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json"))
            continue;
        _cleanup_free_ char *vm_id = strndup(e->d_name, n - 5), *path = NULL;
        json_t *doc = NULL;
        VoMigrateIntent i;
        if (!vm_id)
            abort();
        if (kept_source_intent(d, vm_id, &doc, &i, &path) < 0)
            continue;
        if (!strcmp(i.vm, key) || !strcmp(i.name, key)) {
            r = migration_task_over(d, i.vm, i.name, ret_error);
            if (r == 0) {
                *ret_vm_id = vo_strdup(i.vm);
                *ret_name = vo_strdup(i.name);
            }
        }
        json_decref(doc);
    }
    closedir(dh);
    return r;
}

int vo_migration_resume_kept(VoDaemon *d, const char *vm_id, char **ret_error)
{
    json_t *doc = NULL;
    VoMigrateIntent i;
    _cleanup_free_ char *path = NULL, *error = NULL;
    if (kept_source_intent(d, vm_id, &doc, &i, &path) < 0)
        return vo_error_set(ret_error, -ENOENT, "no post-copy migration of VM %s is kept "
                            "here", vm_id);
    /* Checked again as it runs: queued, it may have waited. */
    int r = migration_task_over(d, i.vm, i.name, ret_error);
    if (r < 0) {
        json_decref(doc);
        return r;
    }
    /* Held by the background (migrate-resettle.h: it hands the post-copy
     * over itself, never alongside this): its next try made at once and
     * followed. */
    int after = vo_migrate_resettle_hurry(i.vm, i.migration);
    if (after >= 0) {
        for (int now = 0; now >= 0 && now < after;
             now = vo_migrate_resettle_tries(i.vm, i.migration))
            (void)poll(NULL, 0, 200);
        r = intent_of(path, i.migration) == 1
                ? vo_error_set(ret_error, -EIO, "tried at once in the background, which "
                               "failed again and tries again later (vireod's log says why)")
                : 0;
        json_decref(doc);
        return r;
    }
    /* The VM still in the table, moved away (its task kept both QEMUs), or
     * gone from it (a start whose recovery failed): as at vireod's start. */
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, i.vm);
    bool done = vm ? quit_source(d, vm, &i, false, &error)
                   : end_unowned(d, &i, VO_HV_MIGRATION_SOURCE, false, &error);
    if (done)
        intent_done(d, path, &i);
    r = done ? 0 : vo_error_set(ret_error, -EIO, "%s", error ? error : "not recovered");
    json_decref(doc);
    return r;
}
