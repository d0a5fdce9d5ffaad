/* migrate-switch.c: the source's ownership switch of a live migration
 * and its outcomes (migrate-internal.h): the local volumes' moves that go
 * with the VM's documents, an outcome the store did not answer (settled,
 * else handed to the background: migrate-resettle.h), the take-back when
 * the destination never confirmed, the source's end once the VM is the
 * destination's, and a post-copy that could not be recovered (both QEMUs
 * kept). The task that drives them is migrate.c's. */
#include "daemon/migrate.h"
#include "daemon/migrate-internal.h"

#include <poll.h>
#include <pthread.h>

#include "daemon/migrate-resettle.h"
#include "daemon/migrate-safe.h"
#include "daemon/post-copy-kept.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "state/vm-claim-mark.h"
#include "state/vm-move-settle.h"
#include "util/util.h"

#define SETTLE_GIVE_UP_MS 120000 /* an unknown switch outcome: how long the store is asked */

void vo_migrate_moving_end(VoDaemon *d, MigrateTask *m, bool moved)
{
    for (size_t i = 0; i < m->n_disks; i++) {
        _cleanup_free_ char *key = vo_asprintf("%s/%s", m->disks[i].pool, m->disks[i].name);
        vo_volume_moving_end(d, key, moved);
    }
}

/* The local volumes' moves of the switch: here -> the destination's pool
 * (flattened as copied), or back (a take-back). */
VoVolumeMove *vo_migrate_volume_moves(const MigrateTask *m, bool back)
{
    VoVolumeMove *v = vo_malloc0(sizeof(*v) * (m->n_disks + 1));
    for (size_t i = 0; i < m->n_disks; i++) {
        char *here = vo_asprintf("%s/%s", m->disks[i].pool, m->disks[i].name);
        char *there = vo_asprintf("%s/%s", m->pool, m->disks[i].name);
        v[i] = (VoVolumeMove){ .from = back ? there : here, .to = back ? here : there,
                               .flatten = !back && m->disks[i].flatten };
    }
    return v;
}

void vo_migrate_volume_moves_free(VoVolumeMove *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)v[i].from);
        free((char *)v[i].to);
    }
    free(v);
}

/* An error of the ownership transaction after which it may still have
 * been applied: every one but a refusal (a compare failed, too big, the
 * destination offline) and -EAGAIN (the store was not reached: nothing
 * changed). */
bool vo_migrate_switch_outcome_unknown(int r)
{
    /* -EBUSY: refused on a volume's or network's project move mark. */
    return r != -ESTALE && r != -ENOENT && r != -EEXIST && r != -E2BIG && r != -EHOSTDOWN &&
           r != -EAGAIN && r != -EBUSY;
}

/* The switch's outcome was unknown: settled by the store (vm-move-settle.h).
 * 0 with *new_rev: the VM moved, go on. A negative errno other than
 * -ETIMEDOUT / -EIO: proven not moved (fenced; vm->rev follows the fence),
 * so the source may run on. -ETIMEDOUT / -EIO: still unknown. */
int vo_migrate_settle_switch(VoTask *t, VoDaemon *d, MigrateTask *m, VoVm *vm,
                             const char *name, const char *vm_id, int64_t rev,
                             int64_t *new_rev, char **error)
{
    log_warn("vm %s: the switch to host %s has an unknown outcome (%s): asking the store",
             name, m->to_name, *error);
    vo_task_set_details(t, 93, "settling the ownership switch",
                        json_pack("{s:s, s:s}", "phase", "switchover", "to", m->to_name));
    int64_t src_rev = 0;
    _cleanup_free_ char *serr = NULL;
    if (vo_migrate_fault("settle-unknown")) { /* test: the store says nothing in time */
        free(*error);
        *error = NULL;
        return vo_error_set(error, -ETIMEDOUT, "test fault: the store did not say in time");
    }
    int s = vo_vm_move_settle(d->cluster_store, vm_id, d->host_id, m->to_id, rev,
                              SETTLE_GIVE_UP_MS, new_rev, &src_rev, &serr);
    free(*error);
    *error = NULL;
    if (s == 1) {
        log_info("vm %s: the switch to host %s was applied", name, m->to_name);
        return 0;
    }
    if (s == 0) {
        pthread_mutex_lock(&vm->lock);
        vm->rev = src_rev;
        pthread_mutex_unlock(&vm->lock);
        return vo_error_set(error, -EAGAIN, "the ownership transaction got no answer and was "
                            "not applied");
    }
    *error = TAKE_PTR(serr);
    return s;
}

int vo_migrate_settle_take_back(VoDaemon *d, const char *vm_id, const char *peer,
                                int64_t back_rev, int give_up_ms, int64_t *ret_here_rev,
                                char **ret_error)
{
    int64_t fenced = 0;
    int s = vo_vm_move_settle(d->cluster_store, vm_id, peer, d->host_id, back_rev, give_up_ms,
                              ret_here_rev, &fenced, ret_error);
    if (s == 1)
        return 0; /* the take-back applied: the VM is here */
    if (s == 0)
        return 1; /* fenced at the destination: its document can never come back */
    if (s == -EIO) {
        /* Its document there changed and none is here: the destination
         * claimed it (the claim rewrites it) when it is still there. */
        _cleanup_free_ char *there = vo_asprintf("h/%s/vms/%s", peer, vm_id);
        if (vo_store_get_linear(d->cluster_store, there, NULL) >= 0)
            return 1;
    }
    return s;
}

/* One try of vo_migrate_take_back_running. */
static int take_back_running_once(VoDaemon *d, const char *vm_id, const char *peer,
                                  const char *migration, int give_up_ms, int64_t *ret_here_rev,
                                  char **ret_error)
{
    _cleanup_free_ char *there = vo_asprintf("h/%s/vms/%s", peer, vm_id), *value = NULL;
    int64_t rev = 0;
    int r = vo_store_get_linear_value(d->cluster_store, there, &value, &rev);
    /* The destination's claim marks the document (vm-claim-mark.h): its
     * QEMU held the guest and runs it. Only a document without that mark
     * (the switch's, or this host's settling rewrite of it) is taken back;
     * the transaction below compares the revision read, so a claim after
     * this read makes it fail, and the next try sees the mark. */
    if (r >= 0 && vo_vm_doc_claimed_in(value, migration))
        return vo_error_set(ret_error, -EEXIST, "host %s claimed the VM in migration %s: its "
                            "guest runs there", peer, migration);
    if (r == -ENOENT) {
        /* Back here already (an earlier try's take-back, its answer lost)? */
        _cleanup_free_ char *here = vo_asprintf("h/%s/vms/%s", d->host_id, vm_id);
        int h = vo_store_get_linear(d->cluster_store, here, ret_here_rev);
        if (h >= 0)
            return 0;
        if (h != -ENOENT)
            r = h;
    }
    if (r < 0)
        return vo_error_set(ret_error, r == -ENOENT ? -ENOENT : -EAGAIN, "%s",
                            r == -ENOENT ? "the VM's document is not at the destination"
                                         : "the store cannot say where the VM is now");
    r = vo_vm_move_volumes_txn(d->cluster_store, vm_id, peer, d->host_id, rev, NULL, 0,
                               ret_here_rev, ret_error);
    if (r == -ENOENT)
        r = -ESTALE; /* changed meanwhile: only the read above says it is gone */
    if (r < 0 && vo_migrate_switch_outcome_unknown(r)) {
        free(*ret_error);
        *ret_error = NULL;
        int s = vo_migrate_settle_take_back(d, vm_id, peer, rev, give_up_ms, ret_here_rev,
                                            ret_error);
        r = s == 1 ? vo_error_set(ret_error, -ESTALE, "the VM's document at the destination "
                                  "changed meanwhile")
                   : s;
    }
    return r;
}

int vo_migrate_take_back_running(VoDaemon *d, const char *vm_id, const char *peer,
                                 const char *migration, int give_up_ms, int64_t *ret_here_rev,
                                 char **ret_error)
{
    /* The store not reached, a compare lost to a write meanwhile, or a
     * project move's mark: asked again (bounded) rather than left for the
     * next try, minutes later. */
    int64_t give_up = vo_now_ms() + give_up_ms;
    for (;;) {
        free(*ret_error);
        *ret_error = NULL;
        int r = take_back_running_once(d, vm_id, peer, migration, give_up_ms, ret_here_rev,
                                       ret_error);
        if ((r != -EAGAIN && r != -ESTALE && r != -EBUSY) || vo_now_ms() > give_up)
            return r;
        (void)poll(NULL, 0, 1000);
    }
}

/* Test hook take-back-late: the take-back transaction is held in flight
 * (as one etcd has not decided yet) until the test's take-back-go, then
 * sent as the task would have, its outcome logged; the task meanwhile
 * saw no answer. */
typedef struct {
    VoDaemon *d;
    char *vm_id, *to_id;
    int64_t new_rev;
    VoVolumeMove *back;
    size_t n;
} LateTakeBack;

void vo_migrate_test_take_back(VoDaemon *d, const char *vm_id, const char *peer,
                               int64_t back_rev, const VoVolumeMove *back, size_t n)
{
    _cleanup_free_ char *error = NULL;
    int64_t here_rev = 0;
    int r = vo_vm_move_volumes_txn(d->cluster_store, vm_id, peer, d->host_id, back_rev, back,
                                   n, &here_rev, &error);
    log_warn("test fault: the late take-back of VM %s: %s", vm_id,
             r >= 0 ? "applied" : "refused");
}

static void *late_take_back(void *arg)
{
    LateTakeBack *l = arg;
    vo_migrate_fault_wait("take-back-go", 300000);
    vo_migrate_test_take_back(l->d, l->vm_id, l->to_id, l->new_rev, l->back, l->n);
    vo_migrate_volume_moves_free(l->back, l->n);
    free(l->vm_id);
    free(l->to_id);
    free(l);
    return NULL;
}

static void take_back_late(VoDaemon *d, MigrateTask *m, const char *vm_id, int64_t new_rev)
{
    LateTakeBack *l = vo_malloc0(sizeof(*l));
    *l = (LateTakeBack){ .d = d, .vm_id = vo_strdup(vm_id), .to_id = vo_strdup(m->to_id),
                         .new_rev = new_rev, .back = vo_migrate_volume_moves(m, true),
                         .n = m->n_disks };
    pthread_t t;
    if (pthread_create(&t, NULL, late_take_back, l) != 0)
        abort();
    pthread_detach(t);
}

/* The destination did not confirm its commit: the VM's documents are moved
 * back (compared at new_rev: only while the destination has not claimed
 * them; migrate-incoming.c claims with a write before it continues the
 * guest). 0: back here (vm->rev follows); 1: the destination claimed them,
 * the source must end; negative: unknown, neither side may run it here.
 * The intent records new_rev first: a take-back sent may apply after its
 * sender gave up on it, so whoever settles the migration later settles the
 * take-back (vo_migrate_settle_take_back), not only the switch; when it
 * cannot be recorded, none is sent (negative: settled as a switch). */
int vo_migrate_take_back(VoDaemon *d, MigrateTask *m, VoVm *vm, const char *name,
                         const char *vm_id, int64_t new_rev, char **error)
{
    _cleanup_free_ char *berr = NULL;
    int64_t back_rev = 0;
    if (m->intent.vm) {
        /* Not recorded: not sent (one applied after its sender gave up
         * would be settled by no one: the VM in no host's table). */
        m->intent.back_rev = new_rev;
        int s = vo_migration_intent_save(d, &m->intent);
        if (s < 0) {
            m->intent.back_rev = 0;
            log_warn("vm %s: not taken back from host %s: its intent could not be recorded",
                     name, m->to_name);
            return s;
        }
    }
    if (vo_migrate_fault("take-back-unknown")) { /* test: the store says nothing in time */
        log_warn("vm %s: taking it back from host %s: test fault: no answer", name, m->to_name);
        return -ETIMEDOUT;
    }
    if (vo_migrate_fault("take-back-late")) { /* test: sent, decided after it was given up */
        log_warn("vm %s: taking it back from host %s: test fault: held in flight", name,
                 m->to_name);
        take_back_late(d, m, vm_id, new_rev);
        return -ETIMEDOUT;
    }
    VoVolumeMove *back = vo_migrate_volume_moves(m, true); /* local volumes come back too */
    int64_t give_up = vo_now_ms() + SETTLE_GIVE_UP_MS;
    int r;
    for (;;) {
        free(berr);
        berr = NULL;
        r = vo_migrate_fault("take-back-txn-lost") /* test: never reached the store */
                ? vo_error_set(&berr, VO_STORE_EUNKNOWN, "test fault: no answer to the "
                               "take-back")
                : vo_vm_move_volumes_txn(d->cluster_store, vm_id, m->to_id, d->host_id,
                                         new_rev, back, m->n_disks, &back_rev, &berr);
        /* The store not reached (no quorum: in a small cluster the
         * destination's etcd member may have died with its vireod), or a
         * volume's project move under way (its mark lives at most
         * VO_OBJECT_MOVE_TTL_MS): nothing changed, asked again rather than
         * left paused. */
        if ((r != -EAGAIN && r != -EBUSY) || vo_now_ms() > give_up)
            break;
        (void)poll(NULL, 0, 1000);
    }
    vo_migrate_volume_moves_free(back, m->n_disks);
    if (r >= 0 && vo_migrate_fault("take-back-lost")) { /* test: applied, its answer lost */
        log_warn("vm %s: taking it back from host %s: test fault: answer lost", name,
                 m->to_name);
        return -ETIMEDOUT;
    }
    if (r == -ESTALE || r == -ENOENT)
        return 1;
    if (r < 0 && vo_migrate_switch_outcome_unknown(r)) {
        free(berr);
        berr = NULL;
        r = vo_migrate_settle_take_back(d, vm_id, m->to_id, new_rev, SETTLE_GIVE_UP_MS,
                                        &back_rev, &berr);
        if (r == 1)
            return 1;
    }
    if (r < 0) {
        log_warn("vm %s: taking it back from host %s failed: %s", name, m->to_name, berr);
        return r;
    }
    pthread_mutex_lock(&vm->lock);
    vm->rev = back_rev;
    vm->migrated_away = false;
    pthread_mutex_unlock(&vm->lock);
    (void)error;
    return 0;
}

/* The VM is the destination's: this QEMU quits, the VM leaves the table
 * (its post-copy mark too), the job ends, moved local volumes' files go. */
void vo_migrate_end_source(VoDaemon *d, MigrateTask *m, VoVm *vm, VoHvInstance *hv,
                           const char *name)
{
    _cleanup_free_ char *ferror = NULL;
    if (d->driver->migrate_finish(hv, VO_HV_MIGRATION_SOURCE, true, false, &ferror) < 0)
        log_warn("vm %s: ending the source QEMU: %s", name, ferror);
    vo_migrate_clear_mark(vm);
    vo_vm_forget_migrated(vm);
    pthread_mutex_unlock(&vm->job);
    vo_migrate_moving_end(d, m, true); /* their documents are the destination's: files go */
}

/* Post-copy that broke and could not be recovered: both QEMUs stay, each
 * holding memory the other lacks (the destination's guest waits on the
 * pages it reads); the intent too, from which the background (and a vireod
 * start) tries the recovery again (migrate-resettle.h, migrate-recover.c).
 * The VM stays in the table, moved away, its run dir (QEMU's monitor)
 * kept. Ends the job. */
int vo_migrate_keep_both(VoTask *t, VoDaemon *d, MigrateTask *m, VoVm *vm, VoHvInstance *hv,
                         const char *name, const char *vm_id, const char *error)
{
    if (!vo_post_copy_source_needed(d, vm_id, m->to_id)) {
        /* The destination's guest is gone (the manager restarted the VM
         * elsewhere from its disks after the destination died, or it was
         * deleted): these pages are needed by nobody. */
        log_warn("vm %s: post-copy to host %s could not be recovered (%s) and the VM is no "
                 "longer there (restarted elsewhere or deleted): its source QEMU here ends",
                 name, m->to_name, error);
        vo_migrate_end_source(d, m, vm, hv, name);
        return vo_task_fail(t, -EIO, "post-copy of VM '%s' to host '%s' broke and could not "
                            "be recovered: %s. The VM is no longer at host '%s' (restarted "
                            "elsewhere or deleted), so the source QEMU here ended", name,
                            m->to_name, error, m->to_name);
    }
    log_error("vm %s: post-copy to host %s could not be recovered: %s; both QEMUs are kept",
              name, m->to_name, error);
    m->keep_intent = true;
    vo_migrate_clear_mark(vm);
    pthread_mutex_unlock(&vm->job);
    vo_migrate_resettle_later(d, vm_id, name, m->intent.migration);
    return vo_task_fail(t, -EIO, "post-copy of VM '%s' to host '%s' broke and could not be "
                        "recovered: %s. Both QEMUs are kept paused: the guest's memory is "
                        "split between the hosts, so neither may be stopped. vireod tries "
                        "the recovery again in the background (after 2 s, then less often, "
                        "up to every 15 minutes; each new reason is an event) and ends this "
                        "QEMU once the rest of memory is there, as soon as the link between "
                        "them works again (docs/cluster.md, \"Post-copy\")", name, m->to_name,
                        error);
}
