/* migrate-take-back.c: a source QEMU that runs the guest again after the
 * switch takes the VM back (migrate-recover.h): its documents moved back
 * from the destination (vo_migration_take_back_here, the task's own path
 * too), the VM run on in the table or adopted with its QEMU when no VM of
 * the table holds it, and a take-back whose outcome its task never learnt
 * settled before anything else is read (one that applied after vireod
 * loaded its VMs: settle_unloaded_take_back). */
#include "daemon/migrate-recover.h"

#include <string.h>

#include "daemon/ha-retry.h"
#include "daemon/migrate-internal.h"
#include "daemon/migrate-resettle.h"
#include "daemon/post-copy-kept.h"
#include "daemon/vm-internal.h"
#include "state/keys.h"
#include "state/vm-move-settle.h"
#include "util/util.h"

int vo_migration_take_back_here(VoDaemon *d, const VoMigrateIntent *i, int64_t *ret_rev,
                                char **ret_error)
{
    /* -ENOENT: the VM is at the peer no more (deleted, or restarted
     * elsewhere after the peer died), or the peer claimed it (its QEMU
     * held the guest: QEMU can run it here again after the destination
     * loaded everything, when the return path broke): its guest runs
     * there, this copy must end (the caller ends it). */
    _cleanup_vm_spec_ VoVmSpec *spec = NULL;
    _cleanup_free_ char *error = NULL;
    int r = !d->cluster_store ? vo_error_set(&error, -ENOTCONN, "not in a cluster")
            : vo_vm_spec_from_json(i->spec, &spec, &error) < 0 ? -EINVAL
            : vo_migrate_check_disks(d, spec, &error) < 0
                ? -EBUSY
                : vo_migrate_take_back_running(d, i->vm, i->peer, i->migration,
                                               VO_MIGRATION_SETTLE_GIVE_UP_MS, ret_rev, &error);
    if (r == -EEXIST) {
        log_warn("vm %s: its source QEMU runs the guest again, but host %s claimed the VM (its "
                 "QEMU holds the guest and runs it): this copy ends", i->name, i->peer);
        return -ENOENT;
    }
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
        vo_migration_note_settled(d, i, false, "this host's again: its device state never "
                                  "reached the destination, so the source QEMU ran the guest "
                                  "on and the VM was taken back");
    return r;
}

/* Source, the VM in the table (moved away), its QEMU running the guest
 * again: taken back (take_back_here), it runs on here (resume_source): 1.
 * 0: kept as it is; -ENOENT: to be ended (take_back_here). */
int vo_migration_take_back_running(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i, bool later,
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
    vo_migration_resume_source(d, vm, i, later);
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
        r = vo_vm_adopt_incoming(d, spec, json_object_get(doc, "status"), rev, NULL, text, hv,
                                 &vm, &error); /* spec taken */
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
    vo_migration_resume_source(d, vm, i, later);
    vo_vm_unref(vm);
    return 1;
}

int vo_migration_adopt_running_source(VoDaemon *d, const VoMigrateIntent *i, VoHvInstance *hv,
                                      bool later, char **ret_error)
{
    int64_t rev = 0;
    int t = take_back_here(d, i, &rev, ret_error);
    if (t < 0)
        return t == -ENOENT ? t : 0;
    return adopt_source(d, i, hv, later, ret_error);
}

/* A source's settling that found the VM's document neither at the peer nor
 * here at the revision it switched from (vo_vm_move_settle's -EIO): its
 * switch was applied (phase switched), so only its task's take-back, whose
 * answer was lost, moved it back here. The document here (a quorum's read)
 * is that take-back applied: 0 with its revision, the VM this host's (the
 * destination's claim compares the document it moved, so that host never
 * ran the guest). Else err, still unknown. */
int vo_migration_taken_back(VoDaemon *d, const VoMigrateIntent *i, int64_t *ret_rev, int err)
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
 * left paused and the VM in no host's table until the next start), or,
 * that QEMU gone, the VM loaded and recorded crashed (before, in no
 * table until the next start). Negative: the intent kept: undecided (the
 * QEMU left paused; asked again in the background), or applied but the
 * QEMU not adoptable, or the VM not loadable (the next start loads the VM
 * and settles it). */
int vo_migration_settle_unloaded_take_back(VoDaemon *d, const VoMigrateIntent *i, bool later)
{
    _cleanup_free_ char *error = NULL;
    int64_t here_rev = 0;
    int b = vo_migrate_settle_take_back(d, i->vm, i->peer, i->back_rev,
                                        VO_MIGRATION_SETTLE_GIVE_UP_MS, &here_rev, &error);
    if (b == 1 || b == -EIO) /* -EIO: neither there nor here */
        return 1;
    if (b < 0) {
        log_error("vm %s: its take-back from host %s is undecided (%s): its QEMU is left "
                  "paused, the intent kept; asked again in the background", i->name, i->peer,
                  error);
        vo_migrate_resettle_later(d, i->vm, i->name, i->migration);
        return b;
    }
    VoHvInstance *hv = vo_migration_attach_unowned(d, i);
    log_warn("vm %s: its take-back from host %s, whose outcome was unknown, applied after the "
             "VMs were loaded: %s", i->name, i->peer,
             hv ? "its source QEMU here is adopted" : "its source QEMU here is gone");
    if (!hv) {
        /* This host's, with no QEMU: in the table, crashed (before, in no
         * host's table until the next start: no event, HA blind). */
        if (vo_vm_adopt_crashed(d, i->vm, "its QEMU ended while its migration's take-back "
                                "was undecided", &error) < 0) {
            log_error("vm %s: taken back, but its QEMU is gone and the VM cannot be loaded "
                      "(%s): vireod's next start loads it", i->name, error);
            return -ESRCH;
        }
        vo_migration_note_settled(d, i, false, "this host's again: the take-back its task "
                                  "sent applied late, but its source QEMU was gone: the VM is "
                                  "recorded crashed here");
        /* An HA VM is started again here, once the fence and the HA
         * retrier run (at vireod's start this runs before them). */
        _cleanup_vm_ VoVm *vm = vo_vms_find(d, i->vm);
        if (vm)
            vo_ha_retry_restart_crashed(d, vm, "lost its QEMU before its migration's late "
                                        "take-back applied", "its QEMU lost before a "
                                        "migration's late take-back applied");
        return 0;
    }
    if (adopt_source(d, i, hv, later, NULL) != 1) {
        d->driver->release(hv);
        return -EIO;
    }
    vo_post_copy_kept_unmark(d, i->vm); /* back here: it holds nothing the peer needs */
    vo_migration_note_settled(d, i, false, "this host's again: the take-back its task sent "
                              "applied late; the source runs on (when it ran) and the "
                              "destination's incoming QEMU ends");
    return 0;
}
