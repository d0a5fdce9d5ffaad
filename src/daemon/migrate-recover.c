/* migrate-recover.c: a live migration's intent files and what vireod does
 * at start with those an earlier vireod left (conf/migrate-intent.h;
 * docs/internals.md, "Live migration", "A vireod that dies
 * mid-migration"), and the background's tries (migrate-resettle.h). The
 * migration's QEMUs outlive vireod; whatever phase it died in, the guest
 * ends up running in exactly one place and nothing is left half-made: the
 * source resumes its QEMU while the store says the VM is its own, ends it
 * once the VM is the destination's (migrate-recover-source.c), takes the
 * VM back when its QEMU runs the guest again (migrate-take-back.c); the
 * destination continues its incoming QEMU when the store gives it the VM
 * (claimed first, as the commit claims it), else kills it and removes what
 * it made (migrate-recover-incoming.c). This file reads the intents,
 * decides (vo_migrate_recover_decide) and notes the outcome; it also
 * serves vireo vm migrate --resume of a kept post-copy source. */
#include "daemon/migrate-recover.h"

#include <dirent.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "daemon/migrate-internal.h"
#include "daemon/migrate-resettle.h"
#include "daemon/migrate-safe.h"
#include "daemon/post-copy-kept.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "state/vm-move-settle.h"
#include "util/util.h"

static char *intent_dir(VoDaemon *d)
{
    return vo_asprintf("%s/migrations", d->run_dir);
}

static char *intent_path(VoDaemon *d, const char *vm_id)
{
    return vo_asprintf("%s/migrations/%s.json", d->run_dir, vm_id);
}

/* Not fsynced: a vireod crash or restart needs only the rename. A power
 * cut or host crash ends the QEMUs the intent is about, and then the store
 * alone decides where the VM is (a run dir on disk, --run-dir, may keep an
 * empty or older intent: an unreadable one is removed, and a recovery
 * acts on what the store says, with no QEMU left to end or continue). The
 * switch's two saves fall in the guest's downtime, where an fsync behind a
 * busy disk's journal took tens of milliseconds. */
int vo_migration_intent_save(VoDaemon *d, const VoMigrateIntent *i)
{
    _cleanup_free_ char *dir = intent_dir(d), *path = intent_path(d, i->vm);
    int r = vo_mkdir_p(dir, 0700);
    json_t *doc = vo_migrate_intent_to_json(i);
    _cleanup_free_ char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (r >= 0)
        r = text ? vo_write_run_file_atomic(path, text, strlen(text)) : -ENOMEM;
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
const char *vo_migration_cut_short(bool later)
{
    return later ? "left unsettled by its task" : "cut short by a vireod restart";
}

/* A settled switch's outcome, logged and recorded (a task of kind
 * "migrate" that succeeded at once: an event). */
void vo_migration_note_settled(VoDaemon *d, const VoMigrateIntent *i, bool moved, const char *what)
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
        int b = vo_migration_settle_unloaded_take_back(d, i, later);
        if (b == 0)
            intent_done(d, path, i);
        if (b <= 0)
            return;
    }
    VoMigrateRecover act = vo_migrate_recover_decide(i, vm != NULL, at_peer);
    log_info("vm %s: a migration (%s, %s side, phase %s) was %s: %s", i->name, i->migration,
             i->role == VO_MIGRATE_ROLE_SOURCE ? "source" : "destination", i->phase,
             vo_migration_cut_short(later), vo_migrate_recover_to_string(act));
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
                                                  VO_MIGRATION_SETTLE_GIVE_UP_MS, &src_rev, &error)
                    : vo_vm_move_settle(d->cluster_store, i->vm, d->host_id, i->peer,
                                        vo_vm_rev(vm), VO_MIGRATION_SETTLE_GIVE_UP_MS,
                                        &moved_rev, &src_rev, &error);
        if (s == -EIO)
            s = vo_migration_taken_back(d, i, &src_rev, s);
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
            vo_migration_note_settled(d, i, false, "still this host's: the source runs on "
                                      "(when it ran) and the destination's incoming QEMU ends");
            act = VO_MIGRATE_RECOVER_RESUME;
        } else if (s == 1) {
            /* A post-copy source whose switch is known (its handover broke:
             * tried again each round) was noted when that became known. */
            if (strcmp(i->phase, "switched") || !vo_post_copy_kept(d, i->vm, -1, NULL))
                vo_migration_note_settled(d, i, true, "the destination's: the source QEMU ends "
                                          "(post-copy: once it handed the rest over) and the "
                                          "destination continues the guest");
            if (vo_migrate_fault("resettle-quit-pause")) /* test: a late take-back now */
                vo_migrate_fault_wait("resettle-quit-go", 120000);
            if (vo_migration_quit_source(d, vm, i, later, ret_stuck)) {
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
        vo_migration_resume_source(d, vm, i, later);
        break;
    case VO_MIGRATE_RECOVER_QUIT:
        log_warn("vm %s: it moved to host %s before vireod stopped; its source QEMU here "
                 "ends", i->name, i->peer);
        if (!vo_migration_end_unowned(d, i, VO_HV_MIGRATION_SOURCE, later, ret_stuck))
            return; /* the intent stays: the next start tries the recovery again */
        break;
    case VO_MIGRATE_RECOVER_CONTINUE:
        if (!vo_migration_continue_incoming(d, vm, i))
            return; /* the intent stays */
        break;
    case VO_MIGRATE_RECOVER_DESTROY:
        log_warn("vm %s: the store does not give it to this host: its incoming QEMU is "
                 "killed and what it made removed", i->name);
        vo_migration_end_unowned(d, i, VO_HV_MIGRATION_DESTINATION, later, NULL);
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
            if (!vo_migration_end_unowned(d, i, VO_HV_MIGRATION_SOURCE, later, ret_stuck))
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
    bool done = vm ? vo_migration_quit_source(d, vm, &i, false, &error)
                   : vo_migration_end_unowned(d, &i, VO_HV_MIGRATION_SOURCE, false, &error);
    if (done)
        intent_done(d, path, &i);
    r = done ? 0 : vo_error_set(ret_error, -EIO, "%s", error ? error : "not recovered");
    json_decref(doc);
    return r;
}
