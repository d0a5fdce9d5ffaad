/* migrate-incoming.c: the destination side of a live migration
 * (migrate.h; docs/internals.md, "Live migration"), driven by the source
 * host through peer routes (/v1/migrations/incoming/...). prepare starts a
 * paused incoming QEMU from the source's VM document and hardware layout,
 * on taps of the same networks, listening on this host's cluster address;
 * digest hashes its RAM; commit (after the source's ownership transaction)
 * adopts it into the VM table and continues it; abort kills it and removes
 * what prepare made. Nothing runs here before a claim: the store must give
 * the VM to this host (a linearizable read) and the VM's document is
 * rewritten at a new revision, so the source can no longer take it back.
 * An incoming VM that hears nothing for VO_MIGRATION_INCOMING_IDLE_MS (its
 * stream idle, no call) is looked at by its watcher thread: continued here
 * if the store says it is this host's (the switch happened, its source
 * went silent), else aborted: a source that vanished leaves nothing. */
#include "daemon/migrate.h"
#include "daemon/migrate-orphan.h"
#include "daemon/post-copy-kept.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/migrate-converge.h"
#include "conf/names.h"
#include "daemon/fence.h"
#include "daemon/images.h"
#include "daemon/migrate-safe.h"
#include "daemon/networks.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "state/vm-claim-mark.h"
#include "state/vm-move-settle.h"
#include "storage/qemu-img.h"
#include "util/util.h"

#define COMPLETE_WAIT_MS 60000
#define WATCH_EVERY_MS 1000
#define ASK_SOURCE_EVERY_MS 10000

typedef struct Incoming Incoming;
struct Incoming {
    Incoming *next;
    char *id, *vm_id, *vm_name;
    char *source_host;  /* the source's host id */
    VoVmSpec *spec;  /* as stored (names, no paths) */
    json_t *status;
    VoHvInstance *hv;
    int64_t touched_ms; /* last sign of the source */
    bool busy;          /* a call is using it (the watcher leaves it be) */
    char **vol_pools, **vol_names; /* local disks coming: reserved here (strv) */
    bool resume;        /* the VM ran at the source (continued here, else left paused) */
    bool paused_noted;  /* its post-copy's broken stream logged by the watcher */
    bool empty_noted;   /* its QEMU holding no guest on its source's silence logged */
    bool held_guest;    /* its QEMU was seen holding the guest (see holds_guest) */
    int64_t source_asked_ms; /* when its source was last asked for a QEMU of the VM */
    /* Why its last claim or adoption here failed: the watcher tries again
     * (an orphan's each time its source is asked), logging once and again
     * only when the reason changes. */
    char *not_adopted;
    char *claimed_doc; /* the VM's document as its claim here wrote it */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    Incoming *list;
    bool watcher;
    bool stopping;   /* vireod shuts down: the watcher ends */
    bool joinable;   /* thread is a watcher not joined yet */
    pthread_t thread;
} in = { .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER };

/* Migrations committed here (by the source's commit or by the watcher), the
 * newest DONE_KEEP: a commit retried after one that was applied answers
 * success again. Under in.lock. */
#define DONE_KEEP 64
static char done_ids[DONE_KEEP][37];
static unsigned done_next;

static void done_add_locked(const char *id)
{
    snprintf(done_ids[done_next++ % DONE_KEEP], sizeof(done_ids[0]), "%s", id);
}

static bool done_has(const char *id)
{
    if (!id || !*id)
        return false;
    pthread_mutex_lock(&in.lock);
    bool found = false;
    for (unsigned i = 0; i < DONE_KEEP && !found; i++)
        found = !strcmp(done_ids[i], id);
    pthread_mutex_unlock(&in.lock);
    return found;
}

/* Caller holds in.lock. */
static Incoming *find_locked(const char *id)
{
    for (Incoming *x = in.list; x; x = x->next)
        if (!strcmp(x->id, id) || !strcmp(x->vm_id, id) || !strcmp(x->vm_name, id))
            return x;
    return NULL;
}

static void unlink_locked(Incoming *x)
{
    for (Incoming **p = &in.list; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            return;
        }
}

static void incoming_free(Incoming *x)
{
    free(x->id);
    free(x->vm_id);
    free(x->vm_name);
    free(x->source_host);
    free(x->not_adopted);
    free(x->claimed_doc);
    vo_vm_spec_free(x->spec);
    json_decref(x->status);
    vo_strv_free(x->vol_pools);
    vo_strv_free(x->vol_names);
    free(x);
}

/* Takes the record id for a call: waits while another call has it. NULL
 * with -ENOENT when there is none. */
static Incoming *take(const char *id)
{
    pthread_mutex_lock(&in.lock);
    Incoming *x;
    while ((x = find_locked(id)) && x->busy)
        pthread_cond_wait(&in.changed, &in.lock);
    if (x) {
        x->busy = true;
        x->touched_ms = vo_now_ms();
    }
    pthread_mutex_unlock(&in.lock);
    return x;
}

static void give_back(Incoming *x, bool done)
{
    pthread_mutex_lock(&in.lock);
    x->busy = false;
    x->touched_ms = vo_now_ms();
    if (done)
        unlink_locked(x);
    pthread_cond_broadcast(&in.changed);
    pthread_mutex_unlock(&in.lock);
    if (done)
        incoming_free(x);
}

/* Kills the incoming QEMU and removes its run and state dirs. */
static void destroy(VoDaemon *d, Incoming *x)
{
    _cleanup_free_ char *error = NULL;
    if (x->hv) {
        if (d->driver->migrate_finish(x->hv, VO_HV_MIGRATION_DESTINATION, false, false,
                                      &error) < 0)
            log_warn("incoming VM %s: %s", x->vm_name, error);
        /* The process is gone (SIGKILL) once its exit fd turns readable. */
        int fd = d->driver->exit_fd(x->hv);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (fd >= 0)
            (void)poll(&p, 1, 10000);
        bool clean;
        _cleanup_free_ char *reason = NULL;
        d->driver->reap(x->hv, &clean, &reason);
        d->driver->release(x->hv);
        x->hv = NULL;
    }
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, x->vm_id);
    _cleanup_free_ char *state_dir = vo_vm_state_dir(d, x->vm_id);
    (void)vo_rm_rf(run_dir);
    (void)vo_rm_rf(state_dir);
    for (size_t i = 0; x->vol_names && x->vol_names[i]; i++)
        vo_volume_incoming_drop(d, x->vol_pools[i], x->vol_names[i]);
    vo_migration_intent_drop(d, x->vm_id);
}

/* ---- local disks ------------------------------------------------------------ */

/* The files of the local disks the source mirrors here ("disks": [{slot,
 * name, pool, format, size, image}]; slot VO_HV_NVRAM_SLOT: the UEFI
 * NVRAM): each reserved as pool/name (the target pool), an empty file of
 * the same virtual size, or for a linked clone of image an overlay on this
 * host's copy of it (copied here first when missing); spec's disks (and
 * nvram) then name the new keys. Appends to x's lists as it goes (destroy
 * drops them). */
static int make_disks(VoDaemon *d, Incoming *x, json_t *disks, VoVmSpec *spec,
                      VoHvMirrorDisk **ret_plan, char **ret_error)
{
    size_t n = json_array_size(disks);
    VoHvMirrorDisk *plan = vo_malloc0(sizeof(*plan) * (n ? n : 1));
    *ret_plan = plan;
    x->vol_pools = vo_malloc0(sizeof(char *));
    x->vol_names = vo_malloc0(sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(disks, i);
        const char *name = NULL, *pool = NULL, *format = NULL, *image = NULL;
        json_int_t slot = -1, size = 0;
        json_error_t jerr;
        if (json_unpack_ex(o, &jerr, 0, "{s:I, s:s, s:s, s:s, s:I, s?s}", "slot", &slot,
                           "name", &name, "pool", &pool, "format", &format, "size", &size,
                           "image", &image) < 0 || slot < 0 || size <= 0)
            return vo_error_set(ret_error, -EINVAL, "bad disk %zu: %s", i,
                                slot < 0 || size <= 0 ? "slot or size" : jerr.text);
        /* The volume key the new file replaces: a disk's, or the NVRAM's. */
        char **key = NULL;
        for (size_t k = 0; k < spec->n_disks; k++)
            if (spec->disks[k].slot == (unsigned)slot)
                key = &spec->disks[k].volume;
        if (slot == VO_HV_NVRAM_SLOT && spec->firmware == VO_FIRMWARE_UEFI)
            key = &spec->nvram;
        if (!key)
            return vo_error_set(ret_error, -EINVAL, "disk slot %lld is not the VM's",
                                (long long)slot);
        _cleanup_free_ char *path = NULL;
        VoImage *img = NULL;
        if (image) {
            int r = vo_image_ensure_local(d, image, NULL, ret_error);
            if (r >= 0)
                r = vo_image_get(d, image, &img, NULL);
            if (r < 0) {
                _cleanup_free_ char *why = ret_error ? TAKE_PTR(*ret_error) : NULL;
                return vo_error_set(ret_error, r, "disk %s: its base image '%s' cannot be "
                                    "had here: %s", name, image, why ? why : strerror(-r));
            }
        }
        int r = vo_volume_incoming_reserve(d, pool, name, image ? "qcow2" : format, &path,
                                           ret_error);
        if (r == -EEXIST) {
            _cleanup_free_ char *why = ret_error ? TAKE_PTR(*ret_error) : NULL;
            r = vo_error_set(ret_error, -EBUSY, "a volume named '%s' is in pool '%s' on this "
                             "host already: %s (move it or pick another pool with --pool)",
                             name, pool, why ? why : "");
        }
        if (r >= 0) {
            vo_strv_push(&x->vol_pools, vo_strdup(pool));
            vo_strv_push(&x->vol_names, vo_strdup(name));
            r = img ? vo_img_create(path, "qcow2", (uint64_t)size, img->disk, img->format,
                                    ret_error)
                    : vo_img_create(path, format, (uint64_t)size, NULL, NULL, ret_error);
        }
        vo_image_free(img);
        if (r < 0)
            return r;
        free(*key);
        *key = vo_asprintf("%s/%s", pool, name);
        plan[i] = (VoHvMirrorDisk){ .slot = (unsigned)slot, .top_only = image != NULL };
    }
    return 0;
}

/* Claims the VM for this host before a QEMU of it runs here: the store
 * must give it to this host (a linearizable read of vms/<id> in its own
 * namespace), at revision expect_rev when > 0, and it is rewritten,
 * marked with the migration's claim (vm-claim-mark.h), at a new revision
 * (*ret_rev; the text written: x->claimed_doc): a source that would take
 * it back (compared at the move's revision, or at any revision when its
 * QEMU runs the guest again) can no longer. -EAGAIN: the store cannot say
 * now; -ENOENT: not this host's; -ESTALE: another revision. */
static int claim(VoDaemon *d, Incoming *x, int64_t expect_rev, int64_t *ret_rev,
                 char **ret_error)
{
    _cleanup_free_ char *key = vo_asprintf("vms/%s", x->vm_id), *value = NULL;
    int64_t rev = 0;
    vo_store_stale_reset();
    int r = vo_store_get(d->store, key, &value, &rev);
    bool stale = vo_store_stale_read() != 0;
    vo_store_stale_reset();
    if (stale || (r < 0 && r != -ENOENT))
        return vo_error_set(ret_error, -EAGAIN, "the store cannot say whether VM %s is this "
                            "host's now: %s", x->vm_name, stale ? "no quorum" : strerror(-r));
    if (r == -ENOENT)
        return vo_error_set(ret_error, -ENOENT, "the store does not give VM %s to this host",
                            x->vm_name);
    if (expect_rev > 0 && rev != expect_rev)
        return vo_error_set(ret_error, -ESTALE, "the store has VM %s here at revision %lld, "
                            "not %lld", x->vm_name, (long long)rev, (long long)expect_rev);
    /* Marked (vm-claim-mark.h): a source whose QEMU runs the guest again
     * never takes a claimed VM back. */
    _cleanup_free_ char *marked = vo_vm_doc_claim_mark(value, x->id);
    if (!marked)
        return vo_error_set(ret_error, -EINVAL, "VM %s's document here is no JSON object",
                            x->vm_name);
    r = vo_store_put(d->store, key, marked, rev, ret_rev);
    if (r == VO_STORE_EUNKNOWN || r == -EAGAIN)
        return vo_error_set(ret_error, -EAGAIN, "claiming VM %s got no answer", x->vm_name);
    if (r < 0)
        return vo_error_set(ret_error, r == -ENOENT ? -ENOENT : -ESTALE, "VM %s changed while "
                            "it was claimed: %s", x->vm_name, strerror(-r));
    free(x->claimed_doc);
    x->claimed_doc = TAKE_PTR(marked);
    return 0;
}

/* Test hook adopted-exit-first: the adopted VM's QEMU (killed, or dead
 * already) seen ended and its handle released before the continue below
 * takes the VM's job, as a loaded host's loop thread may do it. */
static void wait_released(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool ended = vo_vm_wait_exit(vm, 30000);
    pthread_mutex_unlock(&vm->lock);
    log_warn("test fault: the adopted VM's QEMU %s before its continue", ended ? "ended"
                                                                               : "still runs");
    (void)poll(NULL, 0, 500); /* the release thread takes the job meanwhile */
}

/* Whether why differs from the reason x's last claim or adoption failed
 * for: then it is noted as that reason (logged by the caller). */
static bool not_adopted_anew(Incoming *x, const char *why)
{
    if (x->not_adopted && !strcmp(x->not_adopted, why ? why : ""))
        return false;
    free(x->not_adopted);
    x->not_adopted = vo_strdup(why ? why : "");
    return true;
}

/* Registers the claimed incoming VM (x, taken) and continues it when it ran
 * at the source. Gives x back (done when adopted, else kept). */
static int adopt_continue(VoDaemon *d, Incoming *x, int64_t rev, bool resume, char **ret_error)
{
    /* The ownership transaction moved the local volumes' documents here. */
    for (size_t i = 0; x->vol_names && x->vol_names[i]; i++)
        if (vo_volume_incoming_keep(d, x->vol_pools[i], x->vol_names[i]) < 0)
            log_warn("incoming VM %s: volume %s/%s has no document here", x->vm_name,
                     x->vol_pools[i], x->vol_names[i]);
    vo_strv_free(TAKE_PTR(x->vol_pools));
    vo_strv_free(TAKE_PTR(x->vol_names));
    VoVm *vm = NULL;
    VoHvInstance *hv = x->hv;
    /* The lease an HA VM's QEMU is put on the fence's kill list under
     * (vo_vm_adopt_incoming lists it): checked again before it continues. */
    int64_t lease = 0;
    if (d->cluster)
        (void)vo_fence_lease(d, &lease);
    int r = vo_migrate_fault_held("orphan-adopt-fails") /* test: refused while it exists */
                ? vo_error_set(ret_error, -EEXIST, "test fault: the adoption is refused")
                : vo_vm_adopt_incoming(d, vo_vm_spec_copy(x->spec), x->status, rev, x->id,
                                       x->claimed_doc, hv, &vm, ret_error);
    if (r < 0) {
        (void)not_adopted_anew(x, *ret_error); /* noted while x is still held */
        give_back(x, false);
        return r;
    }
    x->hv = NULL; /* the VM's now */
    _cleanup_free_ char *vm_id = vo_strdup(x->vm_id);
    _cleanup_free_ char *name = vo_strdup(x->vm_name);
    pthread_mutex_lock(&in.lock);
    done_add_locked(x->id);
    pthread_mutex_unlock(&in.lock);
    give_back(x, true);
    if (vo_migrate_fault("dest-exit-adopted")) /* test: it dies, the VM adopted, paused */
        _exit(70);
    if (vo_migrate_fault("adopted-exit-first")) /* test: its QEMU's end handled first */
        wait_released(vm);
    pthread_mutex_lock(&vm->job);
    _cleanup_free_ char *error = NULL;
    pthread_mutex_lock(&vm->lock);
    /* Watched since the adoption: a QEMU that ended meanwhile (dead
     * already, or killed: orphaned) left vm->hv, and the exit released hv
     * once no job held the VM. Under the job now, hv stays while it is the
     * VM's. */
    bool alive = vm->hv == hv;
    bool covered = alive && vo_fence_ha_covered(vm, lease);
    pthread_mutex_unlock(&vm->lock);
    if (!alive) {
        error = vo_strdup("its QEMU ended before it continued");
        r = -ESRCH;
    } else if (covered)
        r = d->driver->migrate_finish(hv, VO_HV_MIGRATION_DESTINATION, true, resume, &error);
    else {
        /* This host lost its lease before the QEMU was on the fence's kill
         * list: an HA VM must not continue here (docs/ha.md). */
        (void)d->driver->kill(hv);
        error = vo_asprintf("host %s lost its lease while the HA VM came in: its QEMU was "
                            "killed before it continued", d->host_name);
        r = -VO_EFENCED;
    }
    /* Only now: a vireod that dies before the continue finds the intent
     * at its next start and continues the guest (else it stays paused). */
    vo_migration_intent_drop(d, vm_id);
    pthread_mutex_lock(&vm->lock);
    if (r >= 0) {
        vm->info.paused = !resume;
        vo_vm_set_state_reason(vm, resume ? VO_VM_RUNNING : VO_VM_PAUSED,
                               resume ? NULL : VO_VM_REASON_USER);
    } else {
        log_error("vm %s: migrated here but cannot continue: %s", name, error);
    }
    pthread_mutex_unlock(&vm->lock);
    if (alive)
        vo_vm_refresh_live(vm, hv);
    vo_vm_job_end(vm, true);
    vo_vm_unref(vm);
    vo_networks_refresh_hosts(d);
    log_info("vm %s: migrated here (%s)", name, r < 0 ? "not continued"
                                                : resume ? "running" : "paused");
    if (r < 0)
        return vo_error_set(ret_error, r, "the VM is here but did not continue: %s", error);
    return 0;
}

/* Whether a migration status shows the guest here: its stream completed,
 * or post-copy runs or ran (the device state is here, and pages the source
 * no longer has). */
static bool shows_guest(const VoHvMigrationProgress *p)
{
    return p->status == VO_HV_MIGRATION_COMPLETED || p->post_copy || p->post_copy_paused;
}

/* Whether x's incoming QEMU holds the guest, which may then be claimed
 * here: it shows it now, or was seen showing it once (a QEMU that ran the
 * guest in post-copy and died since: the source's copy is stale, so the VM
 * is this host's, crashed). Not when the QEMU never got that far (gone,
 * its stream failed or still loading: the source then still has the
 * guest, and QEMU runs it again there when the device state cannot be
 * sent). */
static bool holds_guest(VoDaemon *d, Incoming *x)
{
    VoHvMigrationProgress p = { 0 };
    bool asked = x->hv && d->driver->migrate_query(x->hv, &p) >= 0;
    free(p.error);
    if (asked && shows_guest(&p))
        x->held_guest = true;
    return x->held_guest;
}

/* The VM is this host's (the store says so) and x's QEMU never held its
 * guest: whether its source has no QEMU of it either (asked every
 * ASK_SOURCE_EVERY_MS; an offline or silent source counts as holding one:
 * its guest may run there). */
static bool source_gone(VoDaemon *d, Incoming *x)
{
    int64_t now = vo_now_ms();
    if (x->source_asked_ms && now - x->source_asked_ms < ASK_SOURCE_EVERY_MS)
        return false;
    x->source_asked_ms = now;
    _cleanup_free_ char *error = NULL;
    int r = vo_migration_source_gone(d, x->source_host, x->vm_id, &error);
    if (r < 0)
        log_debug("incoming VM %s (migration %s): its source cannot say whether it holds a "
                  "QEMU of it: %s", x->vm_name, x->id, error);
    return r == 1;
}

/* adopt_continue for the watcher, which tries again each round while the
 * adoption fails (x then kept): that failure is logged only when its reason
 * is new. True: adopted (continued, or not: adopt_continue logged why). */
static bool adopt_watched(VoDaemon *d, Incoming *x, int64_t rev, bool resume)
{
    _cleanup_free_ char *vm_id = vo_strdup(x->vm_id), *id = vo_strdup(x->id);
    _cleanup_free_ char *name = vo_strdup(x->vm_name), *error = NULL;
    /* adopt_continue notes the reason while it still holds x */
    _cleanup_free_ char *before = vo_strdup(x->not_adopted);
    if (adopt_continue(d, x, rev, resume, &error) >= 0)
        return true;
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    if (vm)
        return true;
    if (!before || strcmp(before, error ? error : ""))
        log_error("incoming VM %s (migration %s): claimed, but cannot be adopted: %s (tried "
                  "again; logged again when that changes)", name, id, error);
    return false;
}

/* Neither side holds the guest of x's VM, which the store gives this host:
 * claimed (a take-back can no longer apply), adopted with its QEMU (dead,
 * or ended now: it never held the guest) and recorded crashed, naming the
 * migration (migrate-orphan.h). */
static void orphaned(VoDaemon *d, Incoming *x)
{
    _cleanup_free_ char *error = NULL;
    int64_t rev = 0;
    log_debug("incoming VM %s (migration %s): claiming and adopting it as an orphan",
              x->vm_name, x->id);
    int r = claim(d, x, 0, &rev, &error);
    if (r < 0) { /* looked at again next round: the store decides then */
        if (not_adopted_anew(x, error))
            log_warn("incoming VM %s (migration %s): no QEMU holds its guest, but %s (tried "
                     "again; logged again when that changes)", x->vm_name, x->id, error);
        give_back(x, false);
        return;
    }
    if (x->hv)
        (void)d->driver->kill(x->hv);
    _cleanup_free_ char *vm_id = vo_strdup(x->vm_id), *id = vo_strdup(x->id);
    _cleanup_free_ char *source = vo_strdup(x->source_host), *name = vo_strdup(x->vm_name);
    /* Not adopted: x kept, tried again next round. */
    if (!adopt_watched(d, x, rev, false)) /* its QEMU is dead: not continued */
        return;
    log_warn("incoming VM %s (migration %s): neither its QEMU here nor its source holds the "
             "guest; the VM is this host's: recorded crashed", name, id);
    vo_migration_orphan_crashed(d, vm_id, id, source);
}

/* An incoming VM its source forgot (no call, no stream for the idle
 * limit). The switch is the point of no return: if the store gives the VM
 * to this host, it is claimed, adopted and continued here; if the store
 * says it is not ours, it is aborted; if the store cannot say, it waits. */
static void forgotten(VoDaemon *d, Incoming *x)
{
    _cleanup_free_ char *error = NULL;
    int64_t rev = 0;
    if (vo_migrate_fault("incoming-claim-pause")) /* test: a late claim */
        vo_migrate_fault_wait("incoming-claim-go", 300000);
    if (!holds_guest(d, x)) {
        /* Nothing here to continue: a claim would only keep the source,
         * whose QEMU runs the guest again once its device state could not
         * be sent, from taking the VM back. Waited on until the store says
         * it is not this host's (the source took it back and tells this
         * host to abort). */
        _cleanup_free_ char *key = vo_asprintf("vms/%s", x->vm_id);
        int g = vo_store_get_linear(d->store, key, NULL);
        if (g == -ENOENT) {
            log_warn("incoming VM %s (migration %s): its QEMU holds no guest and the store "
                     "does not give it here: aborted", x->vm_name, x->id);
            destroy(d, x);
            give_back(x, true);
            return;
        }
        if (!x->empty_noted)
            log_warn("incoming VM %s (migration %s): its source is silent but its QEMU holds "
                     "no guest (gone, or its stream did not complete): not claimed; it waits "
                     "for its source to take the VM back", x->vm_name, x->id);
        x->empty_noted = true;
        if (g == 0 && source_gone(d, x)) {
            orphaned(d, x);
            return;
        }
        give_back(x, false);
        return;
    }
    log_debug("incoming VM %s (migration %s): its source is silent: claiming it", x->vm_name,
              x->id);
    int r = claim(d, x, 0, &rev, &error);
    if (r >= 0) {
        if (!x->not_adopted)
            log_warn("incoming VM %s (migration %s): its source went silent after the "
                     "switch; continuing it here", x->vm_name, x->id);
        (void)adopt_watched(d, x, rev, x->resume); /* not adopted: tried again next round */
        return;
    }
    if (r != -ENOENT) {
        log_warn("incoming VM %s (migration %s): its source is silent and %s; kept paused",
                 x->vm_name, x->id, error);
        give_back(x, false);
        return;
    }
    log_warn("incoming VM %s (migration %s): nothing from its source for %d s: aborted",
             x->vm_name, x->id, vo_migrate_idle_ms() / 1000);
    destroy(d, x);
    give_back(x, true);
}

/* Watches incoming VMs: one thread while any exists. Each round takes the
 * idle ones (busy, so no call frees them) and asks QEMU outside in.lock. */
static void *watcher_main(void *userdata)
{
    VoDaemon *d = userdata;
    pthread_mutex_lock(&in.lock);
    while (in.list && !in.stopping) {
        size_t n = 0;
        for (Incoming *x = in.list; x; x = x->next)
            n++;
        Incoming **mine = vo_malloc0(sizeof(*mine) * (n + 1));
        size_t k = 0;
        for (Incoming *x = in.list; x; x = x->next)
            if (!x->busy) {
                x->busy = true;
                mine[k++] = x;
            }
        pthread_mutex_unlock(&in.lock);
        for (size_t i = 0; i < k; i++) {
            Incoming *x = mine[i];
            VoHvMigrationProgress p = { 0 };
            bool asked = x->hv && d->driver->migrate_query(x->hv, &p) >= 0;
            bool flows = asked && vo_migrate_stream_flows(&p);
            /* A post-copy whose stream broke is no progress, but it is not
             * forgotten either: this QEMU holds the device state and pages
             * the source no longer has, and continued now it would hang on
             * the first page it lacks. It waits paused for the source's
             * recovery (migrate-resume.c), whatever the idle limit. */
            bool broken = asked && p.post_copy_paused;
            bool held = asked && shows_guest(&p);
            free(p.error);
            if (broken && !x->paused_noted)
                log_warn("incoming VM %s (migration %s): its post-copy stream broke; kept "
                         "paused for its source's recovery", x->vm_name, x->id);
            x->paused_noted = broken;
            pthread_mutex_lock(&in.lock);
            if (held)
                x->held_guest = true;
            int64_t now = vo_now_ms();
            if (flows)
                x->touched_ms = now; /* the stream flows */
            bool stale = !broken && now - x->touched_ms > vo_migrate_idle_ms();
            if (!stale) {
                x->busy = false;
                pthread_cond_broadcast(&in.changed);
            }
            pthread_mutex_unlock(&in.lock);
            if (stale)
                forgotten(d, x);
        }
        free(mine);
        pthread_mutex_lock(&in.lock);
        if (!in.list || in.stopping)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += WATCH_EVERY_MS / 1000;
        pthread_cond_timedwait(&in.changed, &in.lock, &ts);
    }
    in.watcher = false;
    pthread_mutex_unlock(&in.lock);
    return NULL;
}

/* A TCP port free on address now: bound to port 0, read back, closed.
 * QEMU binds it a moment later (a race with another program taking it in
 * between: then migrate-incoming fails and the migration is refused). */
static int free_port(const char *address, int *ret_port, char **ret_error)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    if (inet_pton(AF_INET, address, &sa.sin_addr) != 1)
        return vo_error_set(ret_error, -EINVAL, "cluster address '%s' is not IPv4", address);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return vo_error_set(ret_error, -e, "no free port on %s: %s", address, strerror(e));
    }
    close(fd);
    *ret_port = ntohs(sa.sin_port);
    return 0;
}

int vo_migration_prepare(VoDaemon *d, json_t *body, json_t **ret, char **ret_error)
{
    const char *id = NULL, *layout = NULL, *source = NULL;
    json_t *doc = NULL, *disks = NULL;
    int resume = 1, post_copy = 0;
    json_error_t jerr;
    if (!body || json_unpack_ex(body, &jerr, 0, "{s:s, s:o, s:s, s:s, s?b, s?o, s?b}", "id",
                                &id, "vm", &doc, "layout", &layout, "source_host", &source,
                                "resume", &resume, "disks", &disks, "post_copy",
                                &post_copy) < 0)
        return vo_error_set(ret_error, -EINVAL, "bad incoming migration: %s", jerr.text);
    if (!vo_uuid_valid(id))
        return vo_error_set(ret_error, -EINVAL, "id: not a UUID");
    if (!d->host_address)
        return vo_error_set(ret_error, -EBUSY, "this host has no cluster address");
    VoVmSpec *spec = NULL;
    int r = vo_vm_spec_from_json(json_object_get(doc, "spec"), &spec, ret_error);
    if (r < 0)
        return r;
    /* What adopting checks after the switch is checked now (id and name):
     * a refusal then would leave no runnable copy. An incoming record
     * reserves both until it ends. */
    _cleanup_vm_ VoVm *here = vo_vms_find(d, spec->id);
    if (!here)
        here = vo_vms_find(d, spec->name);
    pthread_mutex_lock(&in.lock);
    bool twice = find_locked(spec->id) || find_locked(spec->name) || find_locked(id);
    pthread_mutex_unlock(&in.lock);
    if (here || twice) {
        r = vo_error_set(ret_error, -EEXIST, "VM '%s' (%s), or one of its name, is on this "
                         "host already%s",
                         spec->name, spec->id, twice ? " (an incoming migration)" : "");
        vo_vm_spec_free(spec);
        return r;
    }
    Incoming *x = vo_malloc0(sizeof(*x));
    *x = (Incoming){ .id = vo_strdup(id), .vm_id = vo_strdup(spec->id),
                     .vm_name = vo_strdup(spec->name), .source_host = vo_strdup(source),
                     .spec = spec,
                     .status = json_incref(json_object_get(doc, "status")),
                     .touched_ms = vo_now_ms(), .resume = resume };
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, spec->id);
    _cleanup_free_ char *state_dir = vo_vm_state_dir(d, spec->id);
    _cleanup_free_ char *uri = NULL, *nbd_uri = NULL;
    _cleanup_free_ VoHvMirrorDisk *plan = NULL;
    size_t n_disks = json_array_size(disks);
    VoVmSpec *resolved = NULL;
    int *taps = NULL, port = 0;
    int64_t t_start = vo_now_ms(), t_intent = 0, t_resolved = 0, t_qemu = 0;
    r = vo_mkdir_p(run_dir, 0700);
    if (r >= 0)
        r = vo_mkdir_p(state_dir, 0700);
    if (r < 0)
        vo_error_set(ret_error, r, "cannot make the VM's directories: %s", strerror(-r));
    if (r >= 0) { /* a vireod that dies from here: its next start ends what this made */
        VoMigrateIntent intent = { .role = VO_MIGRATE_ROLE_DESTINATION, .vm = spec->id,
                                   .name = spec->name, .migration = id, .peer = source,
                                   .phase = "prepare", .resume = resume,
                                   .spec = json_object_get(doc, "spec") };
        r = vo_migration_intent_save(d, &intent);
        if (r < 0)
            vo_error_set(ret_error, r, "cannot record the incoming migration: %s",
                         strerror(-r));
    }
    t_intent = vo_now_ms();
    if (r >= 0 && n_disks)
        r = make_disks(d, x, disks, spec, &plan, ret_error);
    if (r >= 0)
        r = vo_vm_resolve(d, spec, &resolved, ret_error);
    if (r >= 0)
        r = vo_vm_open_taps(d, resolved, &taps, ret_error);
    if (r >= 0)
        r = free_port(d->host_address, &port, ret_error);
    t_resolved = vo_now_ms();
    if (r >= 0) {
        uri = vo_asprintf("tcp:%s:%d", d->host_address, port);
        VoHvMigrationTls tls; /* between hosts: mutual TLS */
        r = d->driver->migrate_prepare(d->driver, resolved, layout, run_dir, taps, uri,
                                       post_copy, vo_migration_tls(d, &tls), &x->hv,
                                       ret_error);
    }
    t_qemu = vo_now_ms();
    if (r >= 0 && n_disks) { /* the disks' NBD server, on a port chosen the same way */
        r = free_port(d->host_address, &port, ret_error);
        if (r >= 0) {
            nbd_uri = vo_asprintf("tcp:%s:%d", d->host_address, port);
            VoHvMigrationTls tls; /* between hosts: mutual TLS, as the memory stream */
            VoHvMirrorPlan p = { .uri = nbd_uri, .disks = plan, .n_disks = n_disks,
                                 .tls = vo_migration_tls(d, &tls) };
            r = d->driver->mirror_export(x->hv, &p, ret_error);
        }
    }
    if (taps)
        vo_vm_close_taps(taps, resolved->n_nics); /* QEMU holds its own copies */
    vo_vm_spec_free(resolved);
    if (r < 0) {
        destroy(d, x);
        incoming_free(x);
        return r;
    }
    pthread_mutex_lock(&in.lock);
    x->next = in.list;
    in.list = x;
    bool start_watcher = !in.watcher && !in.stopping;
    if (start_watcher)
        in.watcher = true;
    bool join_old = start_watcher && in.joinable; /* a watcher that ended */
    pthread_t old = in.thread;
    in.joinable = in.joinable && !join_old;
    pthread_mutex_unlock(&in.lock);
    if (join_old)
        pthread_join(old, NULL);
    if (start_watcher) {
        pthread_t th;
        int e = pthread_create(&th, NULL, watcher_main, d);
        pthread_mutex_lock(&in.lock);
        if (e == 0) {
            in.thread = th;
            in.joinable = true;
        } else
            in.watcher = false;
        pthread_mutex_unlock(&in.lock);
    }
    log_info("incoming VM %s from host %s: waiting on %s (migration %s)", x->vm_name, source,
             uri, id);
    log_debug("incoming VM %s: prepare: intent %lld ms, disks and taps %lld ms, QEMU %lld ms, "
              "the rest %lld ms", x->vm_name, (long long)(t_intent - t_start),
              (long long)(t_resolved - t_intent), (long long)(t_qemu - t_resolved),
              (long long)(vo_now_ms() - t_qemu));
    *ret = json_pack("{s:s, s:s}", "id", id, "uri", uri);
    if (nbd_uri)
        json_object_set_new(*ret, "nbd_uri", json_string(nbd_uri));
    return 0;
}

/* Waits (bounded) until the incoming stream is complete, or in post-copy
 * (the device state here or on its way: a continue then starts the guest
 * once it is loaded, and pages it lacks are fetched as it reads them). */
static int wait_complete(VoDaemon *d, Incoming *x, char **ret_error)
{
    int64_t deadline = vo_now_ms() + COMPLETE_WAIT_MS;
    for (;;) {
        VoHvMigrationProgress p = { 0 };
        int r = d->driver->migrate_query(x->hv, &p);
        _cleanup_free_ char *why = p.error;
        if (r < 0)
            return vo_error_set(ret_error, r, "the incoming VM does not answer: %s",
                                why ? why : strerror(-r));
        if (p.status == VO_HV_MIGRATION_COMPLETED || (p.post_copy && !p.post_copy_paused &&
                                                       !p.post_copy_recovering))
            return 0;
        if (p.status == VO_HV_MIGRATION_FAILED || p.status == VO_HV_MIGRATION_CANCELLED ||
            p.post_copy_paused)
            return vo_error_set(ret_error, -EIO, "the incoming migration %s: %s",
                                vo_hv_migration_status_to_string(p.status),
                                why ? why : "no reason given");
        if (vo_now_ms() > deadline)
            return vo_error_set(ret_error, -ETIMEDOUT, "the incoming migration is not "
                                "complete after %d s", COMPLETE_WAIT_MS / 1000);
        (void)poll(NULL, 0, 10); /* the guest waits paused: asked often */
    }
}

int vo_migration_digest(VoDaemon *d, const char *id, json_t **ret, char **ret_error)
{
    Incoming *x = take(id);
    if (!x)
        return vo_error_set(ret_error, -ENOENT, "no incoming migration %s", id);
    char digest[65] = "";
    int r = wait_complete(d, x, ret_error);
    if (r >= 0 && vo_migrate_fault("dest-exit-complete")) /* test: it dies, QEMU paused */
        _exit(70);
    if (r >= 0)
        r = d->driver->memory_digest
                ? d->driver->memory_digest(x->hv, digest, ret_error)
                : vo_error_set(ret_error, -EOPNOTSUPP, "the driver cannot digest memory");
    give_back(x, false);
    if (r >= 0)
        *ret = json_pack("{s:s}", "digest", digest);
    return r;
}

/* The console log the source had, so it continues here. Written while
 * the guest waits paused (before the continue: the console's reader opens
 * it at the adoption), so not fsynced: a power cut may cost the log, which
 * nothing the VM needs is in. */
static void write_console_log(VoDaemon *d, const char *vm_id, const char *b64)
{
    size_t n = strlen(b64);
    unsigned char *buf = vo_malloc0(n + 1);
    int len = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n);
    while (len > 0 && n > 0 && b64[n - 1] == '=') { /* DecodeBlock counts the padding */
        len--;
        n--;
    }
    _cleanup_free_ char *path = vo_asprintf("%s/vms/%s/console.log", d->state_dir, vm_id);
    if (len > 0 && vo_write_run_file_atomic(path, (const char *)buf, (size_t)len) < 0)
        log_warn("incoming VM %s: cannot write its console log", vm_id);
    free(buf);
}

int vo_migration_commit(VoDaemon *d, const char *id, json_t *body, char **ret_error)
{
    json_int_t rev = 0;
    int resume = 1;
    const char *console = NULL;
    json_error_t jerr;
    if (!body || json_unpack_ex(body, &jerr, 0, "{s:I, s?b, s?s}", "rev", &rev, "resume",
                                &resume, "console_log_b64", &console) < 0)
        return vo_error_set(ret_error, -EINVAL, "bad commit: %s", jerr.text);
    Incoming *x = take(id);
    if (!x && done_has(id))
        return 0; /* committed already: a retry of a commit that was applied */
    if (!x)
        return vo_error_set(ret_error, -ENOENT, "no incoming migration %s", id);
    int64_t t0 = vo_now_ms();
    int r = wait_complete(d, x, ret_error);
    int64_t t_complete = vo_now_ms();
    /* The source's word is not enough: the store must give the VM to this
     * host at the switch's revision (claimed before anything runs). */
    int64_t claimed = 0;
    if (r >= 0)
        r = claim(d, x, rev, &claimed, ret_error);
    if (r >= 0) /* where a commit's time goes (the guest waits paused): bench/migrate */
        log_debug("migration %s: commit: complete after %lld ms, claimed after %lld ms", id,
                  (long long)(t_complete - t0), (long long)(vo_now_ms() - t_complete));
    if (r == -ENOENT || r == -ESTALE)
        r = -EBUSY; /* 409: not this host's (at that revision) */
    if (r < 0) {
        give_back(x, false);
        return r;
    }
    if (console)
        write_console_log(d, x->vm_id, console);
    return adopt_continue(d, x, claimed, resume, ret_error);
}

/* Ports a recovery tries: QEMU binds the one free_port found a moment
 * later, and another program may take it in between. */
#define RECOVER_PORT_TRIES 3
#define BLOCKED_RECOVER_EVERY_MS 1000

int vo_migration_recover(VoDaemon *d, const char *id, json_t *body, json_t **ret,
                         char **ret_error)
{
    const char *vm_id = NULL;
    json_error_t jerr;
    if (!body || json_unpack_ex(body, &jerr, 0, "{s:s}", "vm", &vm_id) < 0)
        return vo_error_set(ret_error, -EINVAL, "bad recover: %s",
                            body ? jerr.text : "no JSON body");
    if (!d->driver->migrate_recover)
        return vo_error_set(ret_error, -EOPNOTSUPP, "this host cannot recover a post-copy "
                            "migration");
    if (!d->host_address)
        return vo_error_set(ret_error, -EBUSY, "this host has no cluster address");
    /* Its QEMU: still incoming (the commit not through), or the VM's. */
    Incoming *x = take(id);
    _cleanup_vm_ VoVm *vm = x ? NULL : vo_vms_find(d, vm_id);
    VoHvInstance *hv = x ? x->hv : NULL;
    if (vm) {
        pthread_mutex_lock(&vm->job);
        pthread_mutex_lock(&vm->lock);
        hv = vm->hv;
        pthread_mutex_unlock(&vm->lock);
    }
    int r = !hv ? vo_error_set(ret_error, -ENOENT, "no post-copy migration %s of VM %s here",
                               id, vm_id)
                : vo_migrate_wait_post_copy_paused(d, hv, true, ret_error);
    /* Not in post-copy (-EIO): a VM of the table whose QEMU took no
     * migration in (started afresh) answers 410. Asked only then: a
     * destination whose main loop waits on a page answers no query-migrate
     * (the wait above pauses it out of band at its first timeout), and
     * asking it first cost every such recovery a second timeout. */
    if (r == -EIO && vm) {
        _cleanup_free_ char *gone = NULL;
        if (vo_post_copy_incoming_gone(d, hv, vm_id, id, &gone) < 0) {
            r = -EIDRM;
            if (ret_error) {
                free(*ret_error);
                *ret_error = TAKE_PTR(gone);
            }
        }
    }
    if (r == 1)
        r = vo_error_set(ret_error, -EBUSY, "the migration completed here");
    /* Its main loop blocked on a missing page: paused out of band, which
     * may take QEMU a moment; migrate-recover (out of band) refuses until. */
    bool blocked = r == 2;
    /* A QEMU listening already (an earlier try the source's resume never
     * reached) listens again on the new port: migrate-recover releases the
     * old listener first. */
    _cleanup_free_ char *uri = NULL;
    for (int k = 0; r >= 0 && k < RECOVER_PORT_TRIES; k++) {
        int port = 0;
        free(uri);
        uri = NULL;
        r = free_port(d->host_address, &port, ret_error);
        if (r < 0)
            break;
        uri = vo_asprintf("tcp:%s:%d", d->host_address, port);
        _cleanup_free_ char *qerr = NULL;
        r = d->driver->migrate_recover(hv, uri, &qerr);
        if (r >= 0)
            break;
        log_warn("VM %s (migration %s): listening on %s for the recovery failed: %s", vm_id,
                 id, uri, qerr);
        if (k + 1 == RECOVER_PORT_TRIES) {
            r = vo_error_set(ret_error, r, "%s", qerr);
        } else {
            r = 0; /* another port */
            if (blocked)
                (void)poll(NULL, 0, BLOCKED_RECOVER_EVERY_MS);
        }
    }
    if (vm)
        pthread_mutex_unlock(&vm->job);
    if (x)
        give_back(x, false);
    if (r < 0)
        return r;
    log_warn("VM %s (migration %s): post-copy's stream broke; listening for its source "
             "again on %s", vm_id, id, uri);
    *ret = json_pack("{s:s}", "uri", uri);
    return 0;
}

int vo_migration_abort(VoDaemon *d, const char *id, char **ret_error)
{
    Incoming *x = take(id);
    if (!x)
        return vo_error_set(ret_error, -ENOENT, "no incoming migration %s", id);
    log_info("incoming VM %s (migration %s): aborted by its source", x->vm_name, x->id);
    destroy(d, x);
    give_back(x, true);
    return 0;
}

int vo_migration_alive(VoDaemon *d, const char *id, char **ret_error)
{
    (void)d;
    Incoming *x = take(id);
    if (!x)
        return vo_error_set(ret_error, -ENOENT, "no incoming migration %s", id);
    give_back(x, false); /* both touch it */
    return 0;
}

void vo_migration_shutdown(void)
{
    pthread_mutex_lock(&in.lock);
    in.stopping = true;
    bool join = in.joinable;
    pthread_t th = in.thread;
    in.joinable = false;
    pthread_cond_broadcast(&in.changed);
    pthread_mutex_unlock(&in.lock);
    if (join)
        pthread_join(th, NULL);
}
