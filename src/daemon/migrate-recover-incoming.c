/* migrate-recover-incoming.c: the destination's side of settling a live
 * migration an earlier vireod left (migrate-recover.h): the VM the store
 * gives this host at load is claimed as the commit claims it, only when
 * its incoming QEMU holds the guest, then continued; one taken back by its
 * source leaves the table; one whose QEMU holds no guest waits for its
 * source, or is recorded crashed when neither side holds it
 * (migrate-orphan.h). */
#include "daemon/migrate-recover.h"

#include <poll.h>
#include <string.h>

#include "daemon/migrate-internal.h"
#include "daemon/migrate-orphan.h"
#include "daemon/migrate-resettle.h"
#include "daemon/vm-internal.h"
#include "state/vm-claim-mark.h"
#include "state/vm-move-settle.h"
#include "util/util.h"

#define CLAIM_TRIES 3
#define COMPLETE_WAIT_MS 30000

/* Destination: the VM is claimed as the commit claims it
 * (migrate-incoming.c): its document rewritten at the revision a
 * linearizable read gave, marked with the migration's claim
 * (vm-claim-mark.h), so a source still retrying its commit can no longer
 * take it back (its take-back compares the switch's revision), nor one
 * whose QEMU runs the guest again (it takes back no marked document).
 * Until this write the VM being in the table proves nothing: it was loaded
 * before, and the source may have taken it back since. 0: ours (vm->rev
 * follows); -ENOENT: not this host's (taken back); -EAGAIN: the store
 * cannot say now. */
static int claim_incoming(VoDaemon *d, VoVm *vm, const char *vm_id, const char *migration)
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
        /* Marked (vm-claim-mark.h): its source never takes it back now. */
        _cleanup_free_ char *marked = vo_vm_doc_claim_mark(value, migration);
        if (!marked)
            return -EAGAIN;
        r = vo_store_put(d->store, key, marked, rev, &new_rev);
        if (r >= 0) {
            pthread_mutex_lock(&vm->lock);
            vm->rev = new_rev;
            free(vm->claimed_in);
            vm->claimed_in = vo_strdup(migration);
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
                ? claim_incoming(d, vm, i->vm, i->migration)
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
bool vo_migration_continue_incoming(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i)
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
    int c = claim_incoming(d, vm, i->vm, i->migration);
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
