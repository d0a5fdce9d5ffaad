/* vms.c: VM registry, state machine and lifecycle operations (see vms.h).
 * Locking: vm->job serialises operations on one VM (held by the task for the
 * whole operation; the loop thread at most tries it, see vm-events.c; the
 * samplers and the API's quick operations hold it briefly, vm-job.h);
 * vm->lock guards the fields and is held only briefly; the loop thread owns
 * exit and event watching and the console.
 * Every state change is written to the store before it is acted upon. */
#include "daemon/vms.h"
#include "daemon/rbd-dead-clients.h"
#include "daemon/vm-internal.h"
#include "daemon/vm-rbd-restore-undo.h"
#include "daemon/vm-start-unknown.h"
#include "daemon/ha-retry.h"
#include "daemon/vm-job.h"

#include <ctype.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/cloud-init.h"
#include "cluster/ha-plan.h"
#include "conf/names.h"
#include "daemon/cluster-view.h"
#include "daemon/fence.h"
#include "daemon/console.h"
#include "daemon/drs-settings.h"
#include "daemon/groups.h"
#include "daemon/images.h"
#include "daemon/migrate-safe.h"
#include "daemon/networks.h"
#include "daemon/post-copy-kept.h"
#include "daemon/object-projects.h"
#include "daemon/projects.h"
#include "daemon/vm-pause-mark.h"
#include "daemon/storage.h"
#include "daemon/sweep.h"
#include "state/keys.h"
#include "state/relations.h"
#include "util/spawn.h"
#include "util/threads.h"
#include "util/unix-socket.h"
#include "util/time-format.h"
#include "util/test-hold.h"
#include "util/util.h"

#define STOP_EXIT_WAIT_MS 10000
/* How long an HA VM's start waits for the fence's confirmed lease. */
#define HA_LEASE_WAIT_MS 10000


static const char *const state_names[] = { "defined", "starting", "running", "paused",
                                           "stopping", "stopped", "crashed" };
_Static_assert(ELEMENTSOF(state_names) == _VO_VM_STATE_MAX, "state_names");

const char *vo_vm_state_to_string(VoVmState s)
{
    return s < _VO_VM_STATE_MAX ? state_names[s] : "unknown";
}

static int state_from_string(const char *s, VoVmState *ret)
{
    for (size_t i = 0; s && i < ELEMENTSOF(state_names); i++)
        if (!strcmp(s, state_names[i])) {
            *ret = (VoVmState)i;
            return 0;
        }
    return -EINVAL;
}

bool vo_vm_state_active(VoVmState s)
{
    return s == VO_VM_STARTING || s == VO_VM_RUNNING || s == VO_VM_PAUSED || s == VO_VM_STOPPING;
}

static VoVm *vm_new(VoDaemon *d)
{
    VoVm *vm = vo_malloc0(sizeof(*vm));
    atomic_init(&vm->refs, 1);
    vm->d = d;
    pthread_mutex_init(&vm->job, NULL);
    pthread_mutex_init(&vm->lock, NULL);
    pthread_cond_init(&vm->changed, NULL);
    pthread_mutex_init(&vm->save_lock, NULL);
    pthread_cond_init(&vm->save_done, NULL);
    vm->uses = json_object();
    vm->events_fd = -1;
    vm->reset_timer_fd = -1;
    return vm;
}

/* A VM just defined (stopped) with spec (taken), made now. */
VoVm *vm_new_defined(VoDaemon *d, VoVmSpec *spec)
{
    VoVm *vm = vm_new(d);
    vm->spec = spec;
    vm->state = VO_VM_DEFINED;
    vm->created_at = vo_wall_ms();
    return vm;
}

VoVm *vo_vm_ref(VoVm *vm)
{
    atomic_fetch_add(&vm->refs, 1);
    return vm;
}

char *vo_vm_name(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    char *name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    return name;
}

void vo_vm_unref(VoVm *vm)
{
    if (atomic_fetch_sub(&vm->refs, 1) != 1)
        return;
    if (vm->hv)
        vm->d->driver->release(vm->hv);
    vo_vm_spec_free(vm->spec);
    free(vm->exit_reason);
    free(vm->state_reason);
    free(vm->problem);
    json_decref(vm->stored_spec);
    json_decref(vm->uses);
    free(vm->claimed_name);
    free(vm->name_conflict);
    free(vm->migration_task);
    free(vm->migration_to);
    free(vm->ha_state);
    json_decref(vm->ha_restarts);
    pthread_mutex_destroy(&vm->job);
    pthread_mutex_destroy(&vm->lock);
    pthread_cond_destroy(&vm->changed);
    pthread_mutex_destroy(&vm->save_lock);
    pthread_cond_destroy(&vm->save_done);
    free(vm);
}

char *vo_vm_state_dir(VoDaemon *d, const char *id)
{
    return vo_asprintf("%s/vms/%s", d->state_dir, id);
}

char *vo_vm_run_dir(VoDaemon *d, const char *id)
{
    return vo_asprintf("%s/vms/%s", d->run_dir, id);
}

char *vo_vm_console_log_path(VoDaemon *d, VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    char *path = vo_asprintf("%s/vms/%s/console.log", d->state_dir, vm->spec->id);
    pthread_mutex_unlock(&vm->lock);
    return path;
}

/* A copy of the VM's id (it never changes, but the spec holding it does). */
static char *vm_id(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    char *id = vo_strdup(vm->spec->id);
    pthread_mutex_unlock(&vm->lock);
    return id;
}

/* ---- persistence ------------------------------------------------------ */

/* Caller holds vm->lock. */
static json_t *vm_document(VoVm *vm)
{
    json_t *status = json_pack("{s:s, s:I}", "state", state_names[vm->state], "created_at",
                               (json_int_t)vm->created_at);
    if (vm->started_at)
        json_object_set_new(status, "started_at", json_integer(vm->started_at));
    if (vm->exit_reason)
        json_object_set_new(status, "exit_reason", json_string(vm->exit_reason));
    if (vm->state_reason)
        json_object_set_new(status, "state_reason", json_string(vm->state_reason));
    if (vm->resets) {
        json_object_set_new(status, "resets", json_integer(vm->resets));
        json_object_set_new(status, "last_reset_at", json_integer(vm->last_reset_at));
    }
    /* No host path in it: the spec names volumes and images (vm->spec is
     * never a resolved copy). A VM whose old definition could not be
     * converted keeps that one as it was. */
    json_t *spec = vm->stored_spec ? json_deep_copy(vm->stored_spec) : vo_vm_spec_to_json(vm->spec);
    json_t *doc = json_pack("{s:o, s:o}", "spec", spec, "status", status);
    /* High availability, at the top for the readers of every host's VMs
     * (the manager's recovery, the fence): docs/ha.md. */
    if (vm->spec->ha) {
        json_object_set_new(doc, "ha", json_true());
        json_object_set_new(doc, "ha_priority", json_integer(vm->spec->ha_priority));
        if (vm->spec->ha_group)
            json_object_set_new(doc, "ha_group", json_string(vm->spec->ha_group));
    }
    if (vm->ha_state)
        json_object_set_new(doc, "ha_state", json_string(vm->ha_state));
    if (json_array_size(vm->ha_restarts))
        json_object_set(doc, VO_HA_RESTARTS_FIELD, vm->ha_restarts);
    if (vm->ha_start_failed)
        json_object_set_new(doc, VO_HA_START_FAILED_FIELD, json_true());
    if (vm->rbd_restore_undo)
        json_object_set_new(doc, VO_VM_RBD_UNDO_FIELD, json_true());
    return doc;
}

/* The document's "ha_restarts" (a new reference), or NULL. */
static json_t *ha_restarts_of_doc(json_t *doc)
{
    json_t *r = json_object_get(doc, VO_HA_RESTARTS_FIELD);
    return json_is_array(r) ? json_deep_copy(r) : NULL;
}

json_t *vo_vm_document_locked(VoVm *vm)
{
    return vm_document(vm);
}

/* The claim document of a VM's name: which VM, on which host. */
static char *name_claim_text(const char *vm_id, const char *host_id)
{
    json_t *doc = json_pack("{s:s, s:s}", "vm", vm_id, "host", host_id);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

/* Whether the VM's usage document in want (its project's; see
 * relations.h) holds more than the one in have: new (a VM made, or moved
 * to another project) or grown. *ret_project, *before and *after then say
 * of what. */
static bool usage_grows(json_t *have, json_t *want, const char **ret_project, VoQuota *before,
                        VoQuota *after)
{
    const char *key;
    json_t *text;
    size_t prefix = strlen(VO_KEY_PROJECT_USAGE_PREFIX);
    json_object_foreach(want, key, text) {
        if (strncmp(key, VO_KEY_PROJECT_USAGE_PREFIX, prefix))
            continue;
        json_t *old = have ? json_object_get(have, key) : NULL;
        vo_project_usage_of_doc(json_string_value(old), before);
        vo_project_usage_of_doc(json_string_value(text), after);
        static _Thread_local char project[VO_NAME_MAX + 1];
        const char *slash = strchr(key + prefix, '/');
        snprintf(project, sizeof(project), "%.*s", slash ? (int)(slash - key - prefix) : 0,
                 key + prefix);
        *ret_project = project;
        for (int k = 0; k < _VO_QUOTA_MAX; k++)
            if (vo_quota_get(after, (VoQuotaKind)k) > vo_quota_get(before, (VoQuotaKind)k))
                return true;
        return false;
    }
    return false;
}

/* What a write of a VM's documents (write_vm_doc) reads of the VM, and
 * what it made: borrowed from the VM under vm->lock (write_vm), or copies
 * of it for a save made outside the lock (vo_vm_save_unlocked). */
typedef struct {
    VoDaemon *d;
    const VoVmSpec *spec;
    bool active; /* its state is an active one (relations.h) */
    int64_t disk_bytes;
    const char *claimed_name, *name_conflict;
    int64_t rev;
    json_t *uses;
    bool check_quota;
    const VoMacClaims *mac_claims; /* compared in the write (a change that claimed MACs) */
    /* Set by a write that succeeded. */
    int64_t new_rev;
    json_t *want; /* the relations now written (a reference) */
    bool claim, release;
} VmWrite;

/* One transaction, compared on the VM's document at the revision last
 * written (w->rev; absent before the first save): text (NULL: the
 * document stays as it is), the relation documents that changed since the
 * last write (none with forget: the VM's relations go), and the claim of
 * its name when it holds none of that name yet (the first write, a
 * rename: the old one released; with forget, released). -ENOTUNIQ:
 * another VM holds the name (in a cluster: maybe on another host); -EIDRM:
 * the group it joins is being deleted or is gone. Reads only w. */
static int write_vm_doc(VmWrite *w, const char *text, bool forget)
{
    const VoVmSpec *spec = w->spec;
    _cleanup_free_ char *key = vo_key_vm(spec->id);
    json_t *want = forget ? json_object() : vo_relations_of_vm(spec, w->active);
    if (!forget) { /* its group's member and project usage go and come with the rest */
        vo_relations_add_group(want, spec, w->d->host_id);
        vo_relations_add_project(want, spec, w->d->host_id, w->disk_bytes > 0 ? w->disk_bytes : 0);
        vo_vm_add_mac_index(want, spec, w->uses, w->mac_claims);
    }
    const char *name = spec->name;
    bool claim = !forget && (!w->claimed_name || strcmp(w->claimed_name, name)) &&
                 (!w->name_conflict || strcmp(w->name_conflict, name));
    bool release = w->claimed_name && (forget || claim);
    _cleanup_free_ char *claim_key = claim ? vo_key_vm_name(name) : NULL;
    _cleanup_free_ char *claim_text = claim ? name_claim_text(spec->id, w->d->host_id) : NULL;
    _cleanup_free_ char *release_key = release ? vo_key_vm_name(w->claimed_name) : NULL;
    VoRelationsTxn txn = { .vm_key = key, .vm_rev = w->rev ? w->rev : VO_REV_NEW,
                           .vm_doc = text, .have = w->uses, .want = want,
                           .claim_key = claim_key, .claim_value = claim_text,
                           .release_key = release_key };
    /* Joining its group (the first write, which adds the member document):
     * compared on the group's document as read, not marked deleting, so a
     * delete of the group (groups.c: mark, list the members, delete) and
     * this join never both succeed. A VM loaded at start (vm->rev set) only
     * rewrites a membership it had. */
    _cleanup_free_ char *group_key = NULL;
    if (!forget && !w->rev && spec->group) {
        _cleanup_free_ char *member = vo_asprintf(VO_GROUP_MEMBERS_PREFIX "%s/%s",
                                                  spec->group, spec->id);
        if (!w->uses || !json_object_get(w->uses, member))
            group_key = vo_asprintf(VO_GROUPS_PREFIX "%s", spec->group);
    }
    int64_t rev = 0;
    int r = 0;
    const char *project = NULL;
    VoQuota before, after;
    vo_project_set_refusal(NULL);
    bool checked = w->check_quota && usage_grows(w->uses, want, &project, &before, &after);
    VoProjectGuard guard = { 0 };
    VoObjectCompares objects = { 0 };
    /* A mark taken back (the delete found members) changes the revision
     * too: read again a few times before refusing. A quota checked is
     * checked again when another change in the project committed first
     * (bounded: each retry follows another's commit); so are the volumes
     * and networks it comes to use, when one changed project (a move on
     * another host) between the check and the commit. */
    for (int attempt = 0, quota_attempts = 0, object_attempts = 0;
         attempt < 3 && quota_attempts < 100 && object_attempts < 10;) {
        /* The volumes and networks it uses: of its project or of none. */
        _cleanup_free_ char *foreign = NULL;
        vo_object_compares_clear(&objects);
        if (!forget && vo_vm_objects_check(w->d, spec->name, vo_vm_spec_project(spec), w->uses,
                                           want, &objects, &foreign) < 0) {
            vo_project_set_refusal(TAKE_PTR(foreign));
            r = -EBUSY;
            break;
        }
        txn.object_cmps = objects.cmps;
        txn.n_object_cmps = objects.n;
        txn.n_claim_cmps = vo_mac_claims_compares(w->mac_claims, &txn.claim_cmps);
        /* Tests hold a save here, its objects checked, to race a move. */
        if (objects.n)
            vo_test_hold("vm_objects_checked");
        if (group_key && (r = vo_group_joinable(w->d, spec->group, &txn.group_rev)) < 0)
            break;
        txn.group_key = group_key;
        if (checked) {
            _cleanup_free_ char *error = NULL;
            vo_project_guard_clear(&guard);
            r = vo_project_check(w->d->store, project, spec->id, &before, &after, &guard, &error);
            if (r < 0) {
                vo_project_set_refusal(TAKE_PTR(error));
                break;
            }
            txn.project_key = guard.key;
            txn.project_doc = guard.doc;
            txn.project_rev = guard.rev;
        }
        r = vo_relations_commit(w->d->store, &txn, &rev);
        if (r == -EXDEV) {
            quota_attempts++;
            continue;
        }
        if (r == VO_RELATIONS_EOBJECT) {
            object_attempts++;
            continue;
        }
        if (r != -EIDRM)
            break;
        attempt++;
    }
    vo_project_guard_clear(&guard);
    vo_object_compares_clear(&objects);
    if (r == -EXDEV || r == VO_RELATIONS_EOBJECT)
        r = -EAGAIN; /* the project (an object's) kept changing: try again */
    if (r < 0) {
        json_decref(want);
        return r;
    }
    w->new_rev = rev;
    w->want = want;
    w->claim = claim;
    w->release = release;
    return 0;
}

/* Caller holds vm->lock: what write_vm_doc reads of the VM, borrowed. */
static VmWrite vm_write_of(VoVm *vm)
{
    return (VmWrite){ .d = vm->d, .spec = vm->spec, .active = vo_vm_state_active(vm->state),
                      .disk_bytes = vm->disk_bytes, .claimed_name = vm->claimed_name,
                      .name_conflict = vm->name_conflict, .rev = vm->rev, .uses = vm->uses,
                      .check_quota = vm->check_quota, .mac_claims = vm->mac_claims };
}

/* Caller holds vm->lock: what a write made (w, its text written or NULL)
 * becomes the VM's: the revision, the relations, the claim of its name. */
static void vm_write_apply(VoVm *vm, VmWrite *w, const char *text)
{
    if (text)
        vm->rev = w->new_rev;
    json_decref(vm->uses);
    vm->uses = TAKE_PTR(w->want);
    if (w->release) {
        free(vm->claimed_name);
        vm->claimed_name = NULL;
    }
    if (w->claim) {
        free(vm->claimed_name);
        vm->claimed_name = vo_strdup(w->spec->name);
        free(vm->name_conflict);
        vm->name_conflict = NULL;
    }
}

/* Caller holds vm->lock. write_vm_doc on the VM as it is now, the lock
 * held throughout (after a save made outside it, vm-save-later.c, is
 * done); its result becomes the VM's. A document written covers a save
 * still due. */
int write_vm(VoVm *vm, const char *text, bool forget)
{
    vo_vm_save_settle(vm);
    VmWrite w = vm_write_of(vm);
    int r = write_vm_doc(&w, text, forget);
    if (r < 0)
        return r;
    vm_write_apply(vm, &w, text);
    if (text)
        vm->save_due = false;
    return 0;
}

char *vo_vm_save_refusal(int r)
{
    const char *words = vo_project_refusal();
    return (r == -VO_EQUOTA || r == -ENOENT || r == -EBUSY) && words ? vo_strdup(words) : NULL;
}

/* A VM without a disk figure (vm->disk_bytes -1: loaded with a usage
 * document from before disk quotas, or none; or defined from a spec): the
 * virtual sizes of its disks now, else -1. Reads the volumes outside vm->lock (their documents ask who
 * uses them). */
static int64_t measure_disks(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool unknown = vm->disk_bytes < 0;
    size_t n = unknown ? vm->spec->n_disks : 0;
    char **keys = vo_malloc0(sizeof(char *) * (n + 1));
    for (size_t k = 0; k < n; k++)
        keys[k] = vo_strdup(vm->spec->disks[k].volume);
    pthread_mutex_unlock(&vm->lock);
    int64_t sum = unknown ? 0 : -1;
    for (size_t k = 0; k < n; k++) {
        if (keys[k])
            sum += vo_vm_volume_virtual_size(vm->d, keys[k]);
        free(keys[k]);
    }
    free(keys);
    return sum;
}

int vo_vm_disk_bytes_change(VoVm *vm, int64_t delta, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    int64_t was = vm->disk_bytes;
    vm->disk_bytes = was + delta > 0 ? was + delta : 0;
    vm->check_quota = delta > 0;
    int r = write_vm(vm, NULL, false);
    vm->check_quota = false;
    if (r < 0) {
        vm->disk_bytes = was;
        char *refused = vo_vm_save_refusal(r);
        *ret_error = refused ? refused : vo_asprintf("cannot save VM '%s': %s", vm->spec->name,
                                                     strerror(-r));
    }
    pthread_mutex_unlock(&vm->lock);
    return r;
}

char *vo_vm_name_taken_message(VoDaemon *d, const char *name)
{
    _cleanup_free_ char *key = vo_key_vm_name(name), *text = NULL;
    _cleanup_free_ char *host = NULL;
    if (vo_store_get(d->store, key, &text, NULL) >= 0) {
        json_t *doc = json_loads(text, 0, NULL);
        const char *id = json_string_value(json_object_get(doc, "host"));
        /* In a cluster, always: the request may have come in through
         * another host (placement forwards a create to the host chosen). */
        if (id && (d->cluster || strcmp(id, d->host_id)))
            host = vo_host_name_of(d, id);
        json_decref(doc);
    }
    if (host)
        return vo_asprintf("a VM named '%s' already exists on host '%s'", name, host);
    return vo_asprintf("a VM named '%s' already exists", name);
}

/* Caller holds vm->lock. Writes the VM's document with compare-and-swap,
 * and its relations (uses/...) with it. */
int vo_vm_save(VoVm *vm)
{
    vo_vm_save_settle(vm); /* a save under way first: its revision is compared */
    if (vm->migrated_away) /* its documents are the destination's now */
        return 0;
    json_t *doc = vm_document(vm);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    int r = write_vm(vm, text, false);
    if (r == -ESTALE && vo_vm_unsaved_start_landed(vm)) /* its own lost "starting" */
        r = write_vm(vm, text, false);
    if (r < 0)
        log_error("vm %s: cannot save its state: %s", vm->spec->name, strerror(-r));
    return r;
}

/* A save written outside vm->lock (vo_vm_save_unlocked): copies of what
 * the write read, and its result, until vo_vm_save_landed_take. */
struct VoVmSaveLanded {
    VmWrite w;
    VoVmSpec *spec;
    char *claimed_name, *name_conflict, *text;
    json_t *uses;
    int r;
};

static void save_landed_free(struct VoVmSaveLanded *l)
{
    json_decref(l->w.want); /* set only by a write that succeeded, and not applied */
    json_decref(l->uses);
    free(l->claimed_name);
    free(l->name_conflict);
    free(l->text);
    vo_vm_spec_free(l->spec);
    free(l);
}

void vo_vm_save_landed_take(VoVm *vm)
{
    pthread_mutex_lock(&vm->save_lock);
    struct VoVmSaveLanded *l = TAKE_PTR(vm->save_landed);
    pthread_mutex_unlock(&vm->save_lock);
    if (!l)
        return;
    if (l->r >= 0)
        vm_write_apply(vm, &l->w, l->text);
    else if (l->r == -ESTALE && vo_vm_unsaved_start_landed(vm))
        vm->save_due = true; /* its own lost "starting": saved again on it, by the save thread */
    else
        log_error("vm %s: cannot save its state: %s", vm->spec->name, strerror(-l->r));
    save_landed_free(l);
}

int vo_vm_save_unlocked(VoVm *vm)
{
    vm->save_due = false; /* a change from now on is due again */
    if (vm->migrated_away || vm->deleted) /* not ours to write any more */
        return 0;
    json_t *doc = vm_document(vm);
    struct VoVmSaveLanded *l = vo_malloc0(sizeof(*l));
    l->text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    /* Copies of what the write reads: the lock is let go during it. No
     * other write of the VM starts meanwhile (vo_vm_save_settle), so the
     * revision, relations and claim copied are still the VM's after it. */
    l->w = vm_write_of(vm);
    l->spec = vo_vm_spec_copy(vm->spec);
    l->claimed_name = vo_strdup(vm->claimed_name);
    l->name_conflict = vo_strdup(vm->name_conflict);
    l->uses = json_incref(vm->uses);
    l->w.spec = l->spec;
    l->w.claimed_name = l->claimed_name;
    l->w.name_conflict = l->name_conflict;
    l->w.uses = l->uses;
    l->w.check_quota = false; /* a state change never grows a usage */
    l->w.mac_claims = NULL;   /* nor claims a MAC (vo_vm_commit_spec_claimed saves locked) */
    pthread_mutex_lock(&vm->save_lock);
    vm->saving = true;
    pthread_mutex_unlock(&vm->save_lock);
    pthread_mutex_unlock(&vm->lock);
    int r = l->r = write_vm_doc(&l->w, l->text, false);
    /* Handed over under save_lock: a writer waiting with vm->lock held
     * (vo_vm_save_settle) takes it up, or this thread once it has the lock. */
    pthread_mutex_lock(&vm->save_lock);
    vm->save_landed = l;
    vm->saving = false;
    pthread_cond_broadcast(&vm->save_done);
    pthread_mutex_unlock(&vm->save_lock);
    pthread_mutex_lock(&vm->lock);
    vo_vm_save_landed_take(vm);
    return r;
}

int64_t vo_vm_rev(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    int64_t rev = vm->rev;
    pthread_mutex_unlock(&vm->lock);
    return rev;
}

char *vo_vm_id(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    char *id = vo_strdup(vm->spec->id);
    pthread_mutex_unlock(&vm->lock);
    return id;
}

/* Caller holds vm->lock. later: the save is handed to a thread. */
static int set_state(VoVm *vm, VoVmState state, const char *reason, bool later)
{
    if (state != VO_VM_PAUSED)
        reason = NULL;
    if (vm->state != state)
        log_info("vm %s: %s -> %s%s%s", vm->spec->name, state_names[vm->state], state_names[state],
                 reason ? ": " : "", reason ? reason : "");
    vm->state = state;
    if (reason != vm->state_reason) {
        char *old = vm->state_reason;
        vm->state_reason = vo_strdup(reason);
        free(old);
    }
    int r = 0;
    if (later)
        vo_vm_save_later(vm);
    else
        r = vo_vm_save(vm);
    vo_fence_vm_sync(vm); /* an HA VM's QEMU is on the fence's kill list while it runs */
    pthread_cond_broadcast(&vm->changed);
    return r;
}

int vo_vm_set_state_reason(VoVm *vm, VoVmState state, const char *reason)
{
    return set_state(vm, state, reason, false);
}

void vo_vm_set_state_later(VoVm *vm, VoVmState state, const char *reason)
{
    (void)set_state(vm, state, reason, true);
}

int vo_vm_set_state(VoVm *vm, VoVmState state)
{
    return vo_vm_set_state_reason(vm, state, NULL);
}

/* ---- registry --------------------------------------------------------- */

/* Caller holds d->vms_lock. */
void registry_add_locked(VoDaemon *d, VoVm *vm)
{
    d->vms = realloc(d->vms, sizeof(VoVm *) * (d->n_vms + 1));
    if (!d->vms)
        abort();
    d->vms[d->n_vms++] = vm;
}

static void registry_add(VoDaemon *d, VoVm *vm)
{
    pthread_mutex_lock(&d->vms_lock);
    registry_add_locked(d, vm);
    pthread_mutex_unlock(&d->vms_lock);
}

/* Told when a VM left the registry (vo_vms_set_gone_hook). */
static void (*vm_gone_hook)(VoDaemon *d);

void vo_vms_set_gone_hook(void (*fn)(VoDaemon *d))
{
    vm_gone_hook = fn;
}

/* Caller holds d->vms_lock; then calls vm_gone_hook without it. */
static void registry_remove_locked(VoDaemon *d, VoVm *vm)
{
    for (size_t i = 0; i < d->n_vms; i++)
        if (d->vms[i] == vm) {
            d->vms[i] = d->vms[--d->n_vms];
            vo_vm_unref(vm);
            break;
        }
}

void registry_remove(VoDaemon *d, VoVm *vm)
{
    pthread_mutex_lock(&d->vms_lock);
    registry_remove_locked(d, vm);
    pthread_mutex_unlock(&d->vms_lock);
    if (vm_gone_hook)
        vm_gone_hook(d);
}

/* Caller holds d->vms_lock. */
VoVm *vo_vms_find_locked(VoDaemon *d, const char *name_or_id)
{
    for (size_t i = 0; i < d->n_vms; i++) {
        VoVm *vm = d->vms[i];
        pthread_mutex_lock(&vm->lock);
        bool match = !strcmp(vm->spec->name, name_or_id) || !strcmp(vm->spec->id, name_or_id);
        pthread_mutex_unlock(&vm->lock);
        if (match)
            return vm;
    }
    return NULL;
}

VoVm *vo_vms_find(VoDaemon *d, const char *name_or_id)
{
    pthread_mutex_lock(&d->vms_lock);
    VoVm *vm = vo_vms_find_locked(d, name_or_id);
    if (vm)
        vo_vm_ref(vm);
    pthread_mutex_unlock(&d->vms_lock);
    return vm;
}

static bool vo_vm_is_provisioning(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool p = vm->provisioning;
    pthread_mutex_unlock(&vm->lock);
    return p;
}

VoVm *vo_vms_find_if(VoDaemon *d, bool (*fn)(VoVm *vm, const void *arg), const void *arg)
{
    VoVm *found = NULL;
    pthread_mutex_lock(&d->vms_lock);
    for (size_t i = 0; i < d->n_vms && !found; i++) {
        VoVm *vm = d->vms[i];
        pthread_mutex_lock(&vm->lock);
        if (fn(vm, arg))
            found = vo_vm_ref(vm);
        pthread_mutex_unlock(&vm->lock);
    }
    pthread_mutex_unlock(&d->vms_lock);
    return found;
}

bool vo_vm_is_active(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool active = vo_vm_state_active(vm->state);
    pthread_mutex_unlock(&vm->lock);
    return active;
}

/* ---- JSON for the API -------------------------------------------------- */

/* The VM as the API shows it, but for its disks' paths. */
static json_t *vm_json_locked_view(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    json_t *o = vo_vm_spec_to_json(vm->spec);
    vo_cloud_init_json_redact(json_object_get(o, "cloud_init"));
    json_object_set_new(o, "state", json_string(state_names[vm->state]));
    json_object_set_new(o, "created_at", vo_time_json(vm->created_at));
    if ((vm->state == VO_VM_RUNNING || vm->state == VO_VM_PAUSED) && vm->hv) {
        json_object_set_new(o, "pid", json_integer(vm->info.pid));
        json_object_set_new(o, "accel_active", json_string(vo_accel_to_string(vm->info.accel)));
        json_object_set_new(o, "started_at", vo_time_json(vm->started_at));
        json_object_set_new(o, "uptime_s", json_integer((vo_wall_ms() - vm->started_at) / 1000));
    }
    if (vm->exit_reason && !vo_vm_state_active(vm->state))
        json_object_set_new(o, "exit_reason", json_string(vm->exit_reason));
    if (vm->state_reason)
        json_object_set_new(o, "state_reason", json_string(vm->state_reason));
    if (vm->resets && vo_vm_state_active(vm->state)) {
        json_object_set_new(o, "resets", json_integer(vm->resets));
        json_object_set_new(o, "last_reset_at", vo_time_json(vm->last_reset_at));
    }
    if (vm->problem)
        json_object_set_new(o, "problem", json_string(vm->problem));
    json_object_set_new(o, "ha", json_boolean(vm->spec->ha));
    json_object_set_new(o, "project", json_string(vo_vm_spec_project(vm->spec)));
    if (vm->ha_state)
        json_object_set_new(o, "ha_state", json_string(vm->ha_state));
    if (json_array_size(vm->ha_restarts)) { /* the restart limit's count */
        json_t *at = json_array(), *t;
        size_t i;
        json_array_foreach(vm->ha_restarts, i, t)
            json_array_append_new(at, vo_time_json(json_integer_value(t)));
        json_object_set_new(o, "ha_restarts", at);
    }
    if (vm->ha_start_failed) /* its HA start failed: the retries follow it */
        json_object_set_new(o, VO_HA_START_FAILED_FIELD, json_true());
    if (vm->migration_task)
        json_object_set_new(o, "migration", json_pack("{s:s, s:s}", "task", vm->migration_task,
                                                      "to", vm->migration_to ?: ""));
    pthread_mutex_unlock(&vm->lock);
    return o;
}

/* Each disk also shows its file on this host (read-only; not in the spec).
 * Looked up with no VM lock held: storage's lock is taken after them. */
json_t *vo_vm_to_json(VoVm *vm)
{
    json_t *o = vm_json_locked_view(vm);
    vo_vm_json_add_disk_paths(vm->d, json_object_get(o, "disks"));
    return o;
}

static int cmp_vm_json_name(const void *a, const void *b)
{
    const char *na = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *nb = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(na, nb);
}

/* The fields a listing shows (GET /v1/vms?view=summary), built straight from
 * the VM rather than cut out of its full document: for a list of thousands
 * of VMs that is most of the daemon's work. */
static json_t *vm_summary_json(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    const VoVmSpec *s = vm->spec;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "state", json_string(state_names[vm->state]));
    json_object_set_new(o, "vcpus", json_integer(s->vcpus));
    json_object_set_new(o, "memory_mib", json_integer((json_int_t)s->memory_mib));
    json_object_set_new(o, "accel", json_string(vo_accel_to_string(s->accel)));
    json_object_set_new(o, "autostart", json_boolean(s->autostart));
    json_object_set_new(o, "ha", json_boolean(s->ha));
    json_object_set_new(o, "project", json_string(vo_vm_spec_project(s)));
    if ((vm->state == VO_VM_RUNNING || vm->state == VO_VM_PAUSED) && vm->hv) {
        json_object_set_new(o, "pid", json_integer(vm->info.pid));
        json_object_set_new(o, "accel_active", json_string(vo_accel_to_string(vm->info.accel)));
        json_object_set_new(o, "uptime_s", json_integer((vo_wall_ms() - vm->started_at) / 1000));
    }
    pthread_mutex_unlock(&vm->lock);
    return o;
}

json_t *vo_vms_list_json(VoDaemon *d, bool summary)
{
    pthread_mutex_lock(&d->vms_lock);
    size_t n = d->n_vms;
    json_t **items = vo_malloc0(sizeof(json_t *) * (n + 1));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        items[k++] = summary ? vm_summary_json(d->vms[i]) : vm_json_locked_view(d->vms[i]);
    pthread_mutex_unlock(&d->vms_lock);
    for (size_t i = 0; !summary && i < k; i++)
        vo_vm_json_add_disk_paths(d, json_object_get(items[i], "disks"));
    qsort(items, k, sizeof(json_t *), cmp_vm_json_name);
    json_t *arr = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(arr, items[i]);
    free(items);
    return arr;
}

char *vo_vm_project(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    char *project = vo_strdup(vo_vm_spec_project(vm->spec));
    pthread_mutex_unlock(&vm->lock);
    return project;
}

void vo_vms_json_by_project(json_t *arr, const char *project)
{
    for (size_t i = 0; i < json_array_size(arr);) {
        json_t *vm = json_array_get(arr, i);
        const char *p = json_string_value(json_object_get(vm, "project"));
        if (!p)
            json_object_set_new(vm, "project", json_string(p = "default"));
        if (project && strcmp(p, project))
            json_array_remove(arr, i);
        else
            i++;
    }
}

/* ---- exit watching and console (loop thread) --------------------------- */

static void release_console(VoVm *vm)
{
    vo_console_free(vm->console);
    vm->console = NULL;
}

typedef struct {
    VoVm *vm;
    VoHvInstance *hv;
} HvRelease;

/* Release threads not done yet; vireod's teardown waits for them before it
 * frees the driver. */
static VoThreadCount releases;

static void *release_when_idle(void *userdata)
{
    HvRelease *rel = userdata;
    pthread_mutex_lock(&rel->vm->job);
    rel->vm->d->driver->release(rel->hv);
    pthread_mutex_unlock(&rel->vm->job);
    vo_vm_unref(rel->vm);
    free(rel);
    vo_thread_done(&releases);
    return NULL;
}

/* Frees the driver instance of a VM that is gone once no task uses it.
 * Tasks hold the VM's job lock while they use the instance they read from
 * vm->hv (a backup, snapshot or hot-plug the guest's power-off cuts short),
 * and the loop thread must not wait for that lock: a thread of its own
 * does. */
static void release_hv_later(VoVm *vm, VoHvInstance *hv)
{
    HvRelease *rel = vo_malloc0(sizeof(*rel));
    *rel = (HvRelease){ .vm = vo_vm_ref(vm), .hv = hv };
    int r = vo_thread_spawn_counted(&releases, release_when_idle, rel);
    if (r < 0) { /* no thread: release at once, as before */
        log_warn("vm %s: cannot start a thread (%s); releasing its QEMU handle now",
                 vm->spec->name, strerror(-r));
        vm->d->driver->release(hv);
        vo_vm_unref(vm);
        free(rel);
    }
}

static void on_vm_exit(int fd, uint32_t events, void *userdata)
{
    VoVm *vm = userdata;
    VoHvDriver *drv = vm->d->driver;
    vo_loop_remove_fd(vm->d->loop, fd, vm);
    vo_vm_events_unwatch(vm);
    release_console(vm);

    pthread_mutex_lock(&vm->lock);
    bool clean = false;
    _cleanup_free_ char *reason = NULL;
    drv->reap(vm->hv, &clean, &reason);
    _cleanup_free_ char *run_dir = vo_vm_run_dir(vm->d, vm->spec->id);
    /* Reaped: its Ceph clients are dead ones, before a stop waiting for
     * this exit answers (a delete may follow at once). */
    vo_rbd_clients_exited(run_dir);
    release_hv_later(vm, TAKE_PTR(vm->hv));
    vm->live_known = false;
    vm->watching = false;
    free(vm->exit_reason);
    vm->exit_reason = vm->stop_requested && !clean ? vo_asprintf("forced off by vireo (%s)", reason)
                                                   : TAKE_PTR(reason);
    bool stopped = vm->stop_requested || clean || vm->migrated_away;
    if (vm->migrated_away) { /* it runs on the destination now: not "stopped" */
        log_info("vm %s: the source QEMU ended: the VM was migrated to %s%s", vm->spec->name,
                 vm->migration_to ? "host " : "its new host", vm->migration_to ?: "");
        pthread_cond_broadcast(&vm->changed);
    } else if (!stopped)
        log_warn("vm %s crashed: %s", vm->spec->name, vm->exit_reason);
    if (!vm->migrated_away) /* saved by a thread: the loop never waits for the store */
        vo_vm_set_state_later(vm, stopped ? VO_VM_STOPPED : VO_VM_CRASHED, NULL);
    /* A snapshot's marker belongs to this QEMU: never to undo a later one's pause. */
    vo_snapshot_unmark(vm->d, vm->spec->id);
    pthread_mutex_unlock(&vm->lock);

    const char *transient[] = { "qmp.sock", "qmp-events.sock", "console.sock", "qemu.pid",
                                "fake.state", "fake-events" };
    for (size_t i = 0; i < ELEMENTSOF(transient); i++) {
        _cleanup_free_ char *p = vo_asprintf("%s/%s", run_dir, transient[i]);
        (void)unlink(p);
    }
    vo_vm_unref(vm); /* the watch's reference */
}

typedef struct {
    VoVm *vm;
    int console_fd;
} WatchArgs;

static void watch_on_loop(void *userdata)
{
    WatchArgs *w = userdata;
    VoVm *vm = w->vm;
    if (w->console_fd >= 0) {
        _cleanup_free_ char *log_path = vo_vm_console_log_path(vm->d, vm);
        release_console(vm);
        vm->console = vo_console_new(w->console_fd, log_path);
    }
    pthread_mutex_lock(&vm->lock);
    int fd = vm->hv ? vm->d->driver->exit_fd(vm->hv) : -1;
    pthread_mutex_unlock(&vm->lock);
    if (fd < 0 || vo_loop_add_fd(vm->d->loop, fd, EPOLLIN, on_vm_exit, vm) < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        log_error("vm %s: cannot watch its process", name);
        vo_vm_unref(vm);
    } else {
        vo_vm_events_watch(vm);
    }
    free(w);
}

/* Connects the console now (so no output is lost) and hands it and the exit
 * fd to the loop. Caller holds the job lock; vm->hv is set. */
static void watch_vm(VoVm *vm)
{
    WatchArgs *w = vo_malloc0(sizeof(*w));
    w->vm = vo_vm_ref(vm);
    w->console_fd = -1;
    const char *sock = vm->d->driver->console_socket(vm->hv);
    if (sock) {
        w->console_fd = vo_unix_connect(sock, 0);
        if (w->console_fd < 0)
            log_warn("vm %s: console unavailable: %s", vm->spec->name, strerror(-w->console_fd));
    }
    vm->watching = true;
    vo_loop_call(vm->d->loop, watch_on_loop, w);
}

typedef struct {
    VoVm *vm;
    int fd;
    char *initial;
    size_t initial_len;
    VoVmConsoleClosed on_closed;
    void *userdata;
} AttachArgs;

static void attach_on_loop(void *userdata)
{
    AttachArgs *a = userdata;
    if (a->vm->console)
        vo_console_add_client(a->vm->console, a->fd, TAKE_PTR(a->initial), a->initial_len,
                              a->on_closed, a->userdata);
    else
        a->on_closed(a->userdata);
    vo_vm_unref(a->vm);
    free(a->initial);
    free(a);
}

void vo_vm_console_attach(VoDaemon *d, VoVm *vm, int fd, char *initial, size_t initial_len,
                          VoVmConsoleClosed on_closed, void *userdata)
{
    AttachArgs *a = vo_malloc0(sizeof(*a));
    *a = (AttachArgs){ .vm = vo_vm_ref(vm), .fd = fd, .initial = initial,
                       .initial_len = initial_len, .on_closed = on_closed,
                       .userdata = userdata };
    vo_loop_call(d->loop, attach_on_loop, a);
}

/* ---- operations ---------------------------------------------------------- */

typedef struct {
    VoVm *vm;
    bool force;
    int timeout_s;
    char *base_disk, *base_format, *base_image;
    char *pool; /* create: the boot disk's pool */
    char *disk_volume; /* create: an existing volume as the boot disk */
    uint64_t disk_size;
    bool full_clone, keep_disks;
    bool boot_once; /* start: boot once_dev first, this run only */
    VoBootDev once_dev;
    bool ha_start; /* start: an HA restart (ha-retry.h), not a user's start */
} OpArgs;

static void op_args_free(void *p)
{
    OpArgs *a = p;
    vo_vm_unref(a->vm);
    free(a->base_disk);
    free(a->base_format);
    free(a->base_image);
    free(a->pool);
    free(a->disk_volume);
    free(a);
}

static OpArgs *op_args(VoVm *vm)
{
    OpArgs *a = vo_malloc0(sizeof(*a));
    a->vm = vo_vm_ref(vm);
    return a;
}

static int task_start(VoTask *t, void *userdata)
{
    VoVm *vm = ((OpArgs *)userdata)->vm;
    VoDaemon *d = vm->d;
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    if (vo_vm_check_if_match(t, vm) < 0)
        return -VO_EIFMATCH;
    VoVmState before = vm->state;
    if (vo_vm_state_active(before)) {
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -EBUSY, "VM '%s' is already %s", name, state_names[before]);
    }
    if (vm->problem) {
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        _cleanup_free_ char *problem = vo_strdup(vm->problem);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -EBUSY, "cannot start VM '%s': %s", name, problem);
    }
    _cleanup_free_ char *fenced = NULL;
    if (vo_fence_check_start(d, &fenced) < 0) { /* fenced since it was queued */
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -VO_EFENCED, "%s", fenced);
    }
    vm->stop_requested = false;
    bool ha_start_failed = vm->ha_start_failed;
    vm->ha_start_failed = false;
    /* The start is committed in the store before QEMU runs (the ownership
     * rule, docs/ha.md): a VM whose "starting" the cluster never saw is
     * not started. The failed save wrote nothing: it stays as it was. */
    int saved = vo_vm_set_state(vm, VO_VM_STARTING);
    if (saved < 0) {
        vm->state = before;
        vm->ha_start_failed = (((OpArgs *)userdata)->ha_start || ha_start_failed) &&
                              vm->spec->ha;
        /* No answer: it may have landed. Then the document said
         * "starting" for a VM nothing started: put back (best effort). */
        if (saved == VO_STORE_EUNKNOWN)
            vo_vm_unsaved_start_undo(vm);
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, saved, "cannot start VM '%s': its starting state cannot be "
                            "saved to the store (%s); nothing was started", name,
                            strerror(-saved));
    }
    VoVmSpec *stored = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);

    vo_task_progress(t, 10, "launching QEMU");
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, stored->id);
    _cleanup_free_ char *error = NULL;
    VoHvInstance *hv = NULL;
    int *taps = NULL;
    /* An HA VM runs only under the fence's confirmed lease (checked again
     * once its QEMU is on the kill list, below). */
    int64_t ha_lease = 0;
    int r = d->cluster && stored->ha ? vo_fence_ha_lease_wait(d, stored->name, HA_LEASE_WAIT_MS,
                                                              &ha_lease, &error)
                                     : 0;
    /* A restore over its RBD disks that a crash cut short: rolled back first. */
    if (r >= 0)
        r = vo_vm_rbd_undo_cut_short(vm, stored, &error);
    /* The driver gets the spec with this host's paths filled in. */
    VoVmSpec *spec = NULL;
    if (r >= 0)
        r = vo_vm_resolve(d, stored, &spec, &error);
    if (r >= 0 && ((OpArgs *)userdata)->boot_once) {
        /* This run only: the device first, then the VM's own order. */
        VoBootDev order[_VO_BOOT_MAX], once = ((OpArgs *)userdata)->once_dev;
        size_t n = vo_vm_spec_boot_order(spec, order);
        spec->boot[0] = once;
        spec->n_boot = 1;
        for (size_t i = 0; i < n; i++)
            if (order[i] != once)
                spec->boot[spec->n_boot++] = order[i];
    }
    if (r >= 0)
        r = vo_vm_open_taps(d, spec, &taps, &error);
    /* Its RBD disks' watchers before and after the launch: the new ones
     * are its QEMU's Ceph clients (rbd-dead-clients.h). */
    _cleanup_strv_ char **watchers = r >= 0 ? vo_rbd_clients_watching(d, stored) : NULL;
    if (r >= 0)
        r = d->driver->start(d->driver, spec, run_dir, taps, &hv, &error);
    if (r >= 0)
        vo_rbd_clients_record(d, stored, watchers, run_dir);
    vo_vm_close_taps(taps, stored->n_nics); /* QEMU holds its own copies now */
    vo_vm_spec_free(spec);
    vo_vm_spec_free(stored);
    if (r < 0) {
        pthread_mutex_lock(&vm->lock);
        free(vm->exit_reason);
        vm->exit_reason = vo_asprintf("start failed: %s", error ? error : strerror(-r));
        vm->ha_start_failed = ((OpArgs *)userdata)->ha_start && vm->spec->ha;
        vo_vm_set_state(vm, before == VO_VM_DEFINED ? VO_VM_DEFINED : VO_VM_STOPPED);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, r, "cannot start VM '%s': %s", name, error ? error : strerror(-r));
    }

    vo_task_progress(t, 70, "attaching console");
    VoHvInfo info = { 0 };
    (void)d->driver->info(hv, &info); /* QEMU is asked: not under vm->lock */
    pthread_mutex_lock(&vm->lock);
    vm->hv = hv;
    vm->info = info;
    vm->started_at = vo_wall_ms();
    free(vm->exit_reason);
    vm->exit_reason = NULL;
    vm->resets = 0;
    vm->last_reset_at = 0;
    vo_fence_vm_sync(vm); /* before its vCPUs run */
    /* The fence may have fenced while QEMU was launched, before it was on
     * the kill list: then it must not run (the lease it ran under is gone,
     * and the VM may be restarted elsewhere). */
    bool covered = vo_fence_ha_covered(vm, ha_lease);
    if (!covered)
        vm->stop_requested = true;
    pthread_mutex_unlock(&vm->lock);
    watch_vm(vm);
    if (!covered) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        log_warn("vm %s: this host lost its lease while QEMU was launched: killed before its "
                 "vCPUs ran", name);
        pthread_mutex_lock(&vm->lock);
        if (vm->hv)
            (void)d->driver->kill(vm->hv);
        (void)vo_vm_wait_exit(vm, STOP_EXIT_WAIT_MS);
        pthread_mutex_unlock(&vm->lock);
        vo_vm_job_end(vm, false);
        return vo_task_fail(t, -VO_EFENCED, "cannot start VM '%s': host %s lost its lease "
                            "while QEMU was launched (it starts HA VMs only under a confirmed "
                            "lease, docs/ha.md)", name, d->host_name);
    }

    /* What it has plugged is read while its vCPUs are still stopped: the
     * QMP round trips would otherwise delay the task's end (and the CLI
     * waiting for it) after the VM is already running. */
    vo_vm_refresh_live(vm, hv);
    vo_task_progress(t, 90, "starting vCPUs");
    r = d->driver->resume(hv);
    pthread_mutex_lock(&vm->lock);
    if (r >= 0 && vm->state == VO_VM_STARTING) {
        vm->info.paused = false;
        vo_vm_set_state(vm, VO_VM_RUNNING);
    }
    pthread_mutex_unlock(&vm->lock);
    /* An I/O error that stopped it while it was still starting (or any
     * STOP seen meanwhile) is read back from QEMU here. */
    vo_vm_job_end(vm, false);
    if (r < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, r, "VM '%s' launched but did not start running: %s", name,
                            strerror(-r));
    }
    return 0;
}

/* Waits (vm->lock held) until the VM has exited or the deadline passes. */
bool vo_vm_wait_exit(VoVm *vm, int timeout_ms)
{
    int64_t deadline = vo_now_ms() + timeout_ms;
    while (vm->watching || vm->hv) {
        int64_t left = deadline - vo_now_ms();
        if (left <= 0)
            return false;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (left % 1000) * 1000000;
        ts.tv_sec += left / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&vm->changed, &vm->lock, &ts);
    }
    /* The exit's state, saved by a thread (vm-save-later.c), is in the
     * store before the task that waited for it goes on or ends. */
    (void)vo_vm_save_flush(vm);
    return true;
}

/* Caller holds the job lock. Ends the VM: the guest agent's shutdown, then
 * ACPI, unless force, then kill; *ret_how says which did it. */
static int stop_locked(VoTask *t, VoVm *vm, bool force, int timeout_s, const char **ret_how)
{
    VoHvDriver *drv = vm->d->driver;
    pthread_mutex_lock(&vm->lock);
    if (!vo_vm_state_active(vm->state) || !vm->hv) {
        pthread_mutex_unlock(&vm->lock);
        return vo_task_fail(t, -EBUSY, "VM '%s' is not running", vm->spec->name);
    }
    vm->stop_requested = true;
    bool paused = vm->state == VO_VM_PAUSED;
    vo_vm_set_state(vm, VO_VM_STOPPING);
    VoHvInstance *hv = vm->hv;
    pthread_mutex_unlock(&vm->lock);

    bool exited = false;
    const char *how = "forced off";
    if (!force) {
        if (paused)
            (void)drv->resume(hv);
        int64_t deadline = vo_now_ms() + (int64_t)timeout_s * 1000;
        /* The guest agent first: it gets half the time to power the guest
         * off (a guest without one answers at once, or within seconds). */
        vo_task_progress(t, 10, "asking the guest agent to shut the guest down");
        _cleanup_free_ char *why = NULL;
        bool agent_asked = timeout_s > 0 && vo_vm_agent_shutdown(vm, hv, &why);
        if (agent_asked) {
            int64_t half = (deadline - vo_now_ms()) / 2;
            pthread_mutex_lock(&vm->lock);
            exited = vo_vm_wait_exit(vm, half > 0 ? (int)half : 0);
            pthread_mutex_unlock(&vm->lock);
            if (exited)
                how = "shut down by the guest agent";
            else
                log_warn("vm %s: the guest agent's shutdown did not power it off; ACPI next",
                         vm->spec->name);
        } else if (why)
            log_info("vm %s: %s; ACPI next", vm->spec->name, why);
        if (!exited)
            vo_task_progress(t, 20, "asking the guest to power off (ACPI)");
        /* A guest still booting may not listen to the button yet: press it
         * again every second until it powers off or the timeout passes. */
        while (!exited && vo_now_ms() < deadline) {
            bool pressed = drv->powerdown(hv) >= 0;
            /* A button QEMU refuses: it may be exiting (the guest powered
             * off just now: QEMU closes its monitor, then flushes and
             * ends, which under load takes more than a second): its exit
             * is waited for until the deadline, as for a press, before
             * forcing (a fixed moment made a clean power-off "forced off"). */
            int64_t left = deadline - vo_now_ms();
            pthread_mutex_lock(&vm->lock);
            exited = vo_vm_wait_exit(vm, !pressed || left < 1000 ? (int)left : 1000);
            pthread_mutex_unlock(&vm->lock);
            if (exited)
                how = "powered off by ACPI";
            if (!pressed)
                break;
        }
        if (!exited)
            log_warn("vm %s: no power-off after %d s; forcing", vm->spec->name, timeout_s);
    }
    if (!exited) {
        vo_task_progress(t, 80, "forcing the VM off");
        pthread_mutex_lock(&vm->lock);
        if (vm->hv)
            (void)drv->kill(vm->hv);
        exited = vo_vm_wait_exit(vm, STOP_EXIT_WAIT_MS);
        pthread_mutex_unlock(&vm->lock);
    }
    if (!exited)
        return vo_task_fail(t, -ETIMEDOUT, "VM '%s' did not stop", vm->spec->name);
    *ret_how = how;
    return 0;
}

int vo_vm_stop_locked(VoTask *t, VoVm *vm, bool force, int timeout_s)
{
    const char *how;
    return stop_locked(t, vm, force, timeout_s, &how);
}

static int task_stop(VoTask *t, void *userdata)
{
    OpArgs *a = userdata;
    pthread_mutex_lock(&a->vm->job);
    pthread_mutex_lock(&a->vm->lock);
    if (vo_vm_check_if_match(t, a->vm) < 0)
        return -VO_EIFMATCH;
    pthread_mutex_unlock(&a->vm->lock);
    const char *how = NULL;
    int r = stop_locked(t, a->vm, a->force, a->timeout_s, &how);
    pthread_mutex_unlock(&a->vm->job);
    if (r >= 0) {
        /* Which way worked: the agent, ACPI or force. */
        vo_task_progress(t, 100, how);
        vo_task_set_result(t, json_pack("{s:s}", "stopped", how));
    }
    return r;
}

/* Shows the run state the hypervisor answered (caller holds job and lock):
 * only for a VM shown running or paused (a start or stop sets its own). A
 * paused VM keeps its reason unless QEMU says I/O error. */
static void apply_run_state(VoVm *vm, const VoHvInfo *info)
{
    if (vm->state != VO_VM_RUNNING && vm->state != VO_VM_PAUSED)
        return;
    if (!info->paused) {
        vm->info.paused = false;
        if (vm->state == VO_VM_PAUSED)
            vo_vm_set_state(vm, VO_VM_RUNNING);
        return;
    }
    const char *reason = info->io_error                           ? VO_VM_REASON_IO_ERROR
                         : vm->state == VO_VM_PAUSED && vm->state_reason ? vm->state_reason
                                                                          : VO_VM_REASON_UNKNOWN;
    vm->info.paused = true;
    if (vm->state != VO_VM_PAUSED || !vm->state_reason || strcmp(vm->state_reason, reason)) {
        _cleanup_free_ char *r = vo_strdup(reason); /* may be vm->state_reason itself */
        vo_vm_set_state_reason(vm, VO_VM_PAUSED, r);
    }
}

void vo_vm_job_end(VoVm *vm, bool sync)
{
    pthread_mutex_lock(&vm->lock);
    /* Asked again while events keep coming meanwhile (bounded: a guest
     * stopping and resuming without end gets the last answer). */
    for (int tries = 0; (sync || vm->run_state_missed) && vm->hv && tries < 4; tries++) {
        VoHvInstance *hv = vm->hv; /* stays while the job lock is held */
        sync = false;
        vm->run_state_missed = false;
        pthread_mutex_unlock(&vm->lock);
        VoHvInfo info = { 0 };
        int r = vm->d->driver->info(hv, &info); /* QMP: not under vm->lock */
        pthread_mutex_lock(&vm->lock);
        if (r < 0)
            break;
        if (vm->run_state_missed && tries < 3)
            continue; /* the answer may be older than those events */
        apply_run_state(vm, &info);
    }
    /* Released under vm->lock: an event the loop reads after this sees the
     * job free (lock_for_run_state in vm-events.c). */
    pthread_mutex_unlock(&vm->job);
    pthread_mutex_unlock(&vm->lock);
}

/* pause/resume/reboot: one driver call on a VM in the required state. A
 * resume then asks QEMU whether it runs (a write retried by cont may fail
 * at once and stop it again), and any task reads the state again when
 * STOP/RESUME came while it held the VM (vo_vm_job_end). */
static int simple_op(VoTask *t, VoVm *vm, VoVmState required, int (*op)(VoHvInstance *),
                     VoVmState after, const char *verb)
{
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    if (vo_vm_check_if_match(t, vm) < 0)
        return -VO_EIFMATCH;
    if (vm->state != required || !vm->hv) {
        VoVmState s = vm->state;
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -EBUSY, "cannot %s VM '%s': it is %s (must be %s)", verb, name,
                            state_names[s], state_names[required]);
    }
    VoHvInstance *hv = vm->hv;
    unsigned io_errors = vm->io_errors;
    pthread_mutex_unlock(&vm->lock);
    int r = op(hv);
    if (r >= 0) {
        pthread_mutex_lock(&vm->lock);
        /* An I/O error the resumed guest hit again (retried on resume) has
         * paused it anew: it stays paused (vm-events.c). */
        bool paused_again = after == VO_VM_RUNNING && vm->io_errors != io_errors;
        if (vm->state == required && !paused_again) {
            vm->info.paused = after == VO_VM_PAUSED;
            vo_vm_set_state_reason(vm, after, VO_VM_REASON_USER);
        }
        pthread_mutex_unlock(&vm->lock);
        if (after == VO_VM_RUNNING)
            vo_vm_refresh_live(vm, hv);
    }
    vo_vm_job_end(vm, r >= 0 && required == VO_VM_PAUSED && after == VO_VM_RUNNING);
    if (r < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, r, "cannot %s VM '%s': %s", verb, name, strerror(-r));
    }
    return 0;
}

static int task_pause(VoTask *t, void *userdata)
{
    VoVm *vm = ((OpArgs *)userdata)->vm;
    return simple_op(t, vm, VO_VM_RUNNING, vm->d->driver->pause, VO_VM_PAUSED, "pause");
}

static int task_resume(VoTask *t, void *userdata)
{
    VoVm *vm = ((OpArgs *)userdata)->vm;
    return simple_op(t, vm, VO_VM_PAUSED, vm->d->driver->resume, VO_VM_RUNNING, "resume");
}

static int task_reboot(VoTask *t, void *userdata)
{
    VoVm *vm = ((OpArgs *)userdata)->vm;
    return simple_op(t, vm, VO_VM_RUNNING, vm->d->driver->reset, VO_VM_RUNNING, "reboot");
}

/* A delete that did not happen: another may be asked for. */
static void end_delete(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->deleting = false;
    pthread_mutex_unlock(&vm->lock);
}

static int collect_key(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)value;
    (void)rev;
    return vo_strv_push(userdata, vo_strdup(key));
}

/* Caller holds the job lock and vm->lock. The VM's document (at the revision
 * this daemon last wrote: vm->lock orders it with saves), its relations and
 * the documents kept for it (its snapshots, the snapshot its disks are at,
 * its backup base) in one transaction. Those are deleted whatever their
 * revision: they are the VM's and go with it, and no snapshot or backup of
 * it runs while the job lock is held. 0 also when its document was not
 * written yet (a VM deleted while it was being created). */
static int delete_documents(VoVm *vm)
{
    vo_vm_save_settle(vm); /* compared on the revision a save under way leaves */
    const char *id = vm->spec->id;
    _cleanup_strv_ char **also = NULL;
    _cleanup_free_ char *snapshots = vo_key_snapshots_prefix(id);
    int r = vo_store_list(vm->d->store, snapshots, collect_key, &also);
    if (r < 0)
        return r;
    vo_strv_push(&also, vo_key_snapshot_current(id));
    vo_strv_push(&also, vo_key_backup_base(id));
    /* DRS's cooldown of it (written after each live migration): the
     * cluster's key goes with the VM, or the keys of deleted VMs pile up
     * and every DRS round lists them. */
    if (vm->d->cluster_store)
        vo_strv_push(&also, vo_asprintf(VO_DRS_MOVED_PREFIX "%s", id));
    if (vm->claimed_name) /* its name is free again, in the same transaction */
        vo_strv_push(&also, vo_key_vm_name(vm->claimed_name));
    _cleanup_free_ char *key = vo_key_vm(id);
    json_t *none = json_object();
    VoRelationsTxn txn = { .vm_key = key, .vm_rev = vm->rev ? vm->rev : VO_REV_NEW,
                           .delete_vm = vm->rev > 0, .have = vm->uses, .want = none,
                           .also_delete = also };
    r = vo_relations_commit(vm->d->store, &txn, NULL);
    json_t *unindexed = NULL;
    if (r == -ENOENT) { /* its document is gone already: the rest goes all the same */
        /* But not its MACs' index entries: whatever took its document (an
         * HA move while this host was cut off, a host remove) moved them
         * to the VM elsewhere or freed them, and another VM may hold them
         * now. */
        unindexed = json_deep_copy(vm->uses);
        json_t *held = vo_vm_mac_index_of(vm->uses);
        const char *k;
        json_t *v;
        json_object_foreach(held, k, v)
            json_object_del(unindexed, k);
        json_decref(held);
        txn.have = unindexed;
        txn.vm_rev = VO_REV_NEW;
        txn.delete_vm = false;
        r = vo_relations_commit(vm->d->store, &txn, NULL);
    }
    json_decref(unindexed);
    if (r >= 0) {
        json_decref(vm->uses);
        vm->uses = TAKE_PTR(none);
        free(vm->claimed_name);
        vm->claimed_name = NULL;
    }
    json_decref(none);
    return r;
}

static int task_delete(VoTask *t, void *userdata)
{
    OpArgs *a = userdata;
    VoVm *vm = a->vm;
    VoDaemon *d = vm->d;
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    if (vo_vm_check_if_match(t, vm) < 0) {
        end_delete(vm);
        return -VO_EIFMATCH;
    }
    bool gone = vm->deleted;
    pthread_mutex_unlock(&vm->lock);
    if (gone) { /* its create failed meanwhile */
        pthread_mutex_unlock(&vm->job);
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, -ENOENT, "VM '%s' does not exist any more", name);
    }
    if (vo_vm_is_active(vm)) {
        if (!a->force) {
            end_delete(vm);
            _cleanup_free_ char *name = vo_vm_name(vm);
            pthread_mutex_unlock(&vm->job);
            return vo_task_fail(t, -EBUSY, "VM '%s' is running; stop it first or use --force",
                                name);
        }
        int r = vo_vm_stop_locked(t, vm, true, 0);
        if (r < 0) {
            end_delete(vm);
            pthread_mutex_unlock(&vm->job);
            return r;
        }
    }
    vo_task_progress(t, 50, "removing disks and definition");
    /* The VM leaves the registry in the same critical section as its
     * documents leave the store (as a create registers it: vo_vm_create):
     * the delete's event goes out as the commit lands, and a client that
     * reloads on it (the web UI, vireo events) must not find it listed.
     * A lookup waits for the commit here, as it waits on vm->lock. */
    pthread_mutex_lock(&d->vms_lock);
    pthread_mutex_lock(&vm->lock);
    int r = delete_documents(vm);
    bool deleted = r >= 0 || r == -ENOENT;
    if (deleted)
        vm->deleted = true; /* a create task that gets the job lock next stops there */
    VoVmSpec *spec = deleted ? vo_vm_spec_copy(vm->spec) : NULL; /* a create task edits it */
    pthread_mutex_unlock(&vm->lock);
    if (deleted) /* first: a volume attached to a VM cannot be removed */
        registry_remove_locked(d, vm);
    pthread_mutex_unlock(&d->vms_lock);
    if (!deleted) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        end_delete(vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, r, "cannot delete VM '%s': %s", name, strerror(-r));
    }
    if (vm_gone_hook)
        vm_gone_hook(d);
    _cleanup_free_ char *state_dir = vo_vm_state_dir(d, spec->id);
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, spec->id);
    (void)vo_rm_rf(state_dir);
    (void)vo_rm_rf(run_dir);
    pthread_mutex_unlock(&vm->job);
    for (size_t i = 0; !a->keep_disks && i < spec->n_disks; i++) {
        _cleanup_free_ char *error = NULL;
        if (spec->disks[i].volume && spec->disks[i].owned &&
            vo_volume_remove_now(d, spec->disks[i].volume, &error) < 0)
            log_warn("vm %s: kept volume %s: %s", spec->name, spec->disks[i].volume, error);
    }
    /* The UEFI NVRAM is the VM's own: it goes with it (kept with its disks). */
    _cleanup_free_ char *nvram_error = NULL;
    if (!a->keep_disks && spec->nvram && vo_volume_remove_now(d, spec->nvram, &nvram_error) < 0)
        log_warn("vm %s: kept its NVRAM volume %s: %s", spec->name, spec->nvram, nvram_error);
    log_info("vm %s: deleted%s", spec->name, a->keep_disks ? " (disks kept)" : "");
    vo_networks_refresh_hosts(d);
    vo_vm_spec_free(spec);
    return 0;
}

/* The create task's boot disk when it is an existing volume (an iSCSI LUN):
 * claimed as a disk add claims it, checked free of other VMs (unless
 * shareable), then named in the VM's definition (which records the VM as
 * its user) before the claim ends. Not owned: the VM's delete keeps it. */
static int boot_disk_existing(VoVm *vm, const char *key, char **ret_error)
{
    VoDaemon *d = vm->d;
    _cleanup_free_ char *path = NULL, *format = NULL;
    bool shareable = false;
    int r = vo_volume_attach_claim(d, key, &path, &format, &shareable, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *user = vo_vms_volume_user(d, key);
    if (user && !shareable)
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is already attached to VM '%s' (mark "
                         "it shareable to share it)", key, user);
    if (r >= 0)
        r = vo_volume_attach_confirm(d, key, ret_error);
    if (r >= 0) {
        pthread_mutex_lock(&vm->lock);
        VoVmSpec *s = vm->spec;
        VoDiskSpec *disks = vo_malloc0(sizeof(VoDiskSpec) * (s->n_disks + 1));
        disks[0] = (VoDiskSpec){ .volume = vo_strdup(key),
                                 .format = !strcmp(format, "raw") ? VO_DISK_RAW : VO_DISK_QCOW2,
                                 .shareable = shareable, .slot = 0 };
        memcpy(disks + 1, s->disks, sizeof(VoDiskSpec) * s->n_disks);
        free(s->disks);
        s->disks = disks;
        s->n_disks++;
        r = write_vm(vm, NULL, false);
        pthread_mutex_unlock(&vm->lock);
        if (r < 0)
            *ret_error = vo_asprintf("cannot save the VM: %s", strerror(-r));
    }
    vo_volume_attach_release(d, key);
    return r;
}

static int task_create(VoTask *t, void *userdata)
{
    OpArgs *a = userdata;
    VoVm *vm = a->vm;
    VoDaemon *d = vm->d;
    /* The job lock for the whole create: a (forced) delete waits for it, or
     * ran before, and then nothing is made or saved. */
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    bool gone = vm->deleted;
    pthread_mutex_unlock(&vm->lock);
    if (gone) {
        pthread_mutex_unlock(&vm->job);
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, -ENOENT, "VM '%s' was deleted before it was created", name);
    }
    _cleanup_free_ char *id = vm_id(vm), *name = vo_vm_name(vm);
    _cleanup_free_ char *dir = vo_vm_state_dir(d, id);
    _cleanup_free_ char *error = NULL, *volume = NULL, *path = NULL;
    const char *pool = a->pool ? a->pool : VO_DEFAULT_POOL;
    int r = vo_mkdir_p(dir, 0750);
    /* An image of another host is copied here first (copy on first use). */
    VoImage *img = NULL;
    if (r >= 0 && !a->base_image) {
        /* blank: an empty disk */
    } else if (r >= 0 && (r = vo_image_ensure_local(d, a->base_image, t, &error)) >= 0 &&
        (r = vo_image_get(d, a->base_image, &img, NULL)) >= 0) {
        free(a->base_disk);
        free(a->base_format);
        a->base_disk = vo_strdup(img->disk);
        a->base_format = vo_strdup(img->format);
        vo_image_free(img);
    } else if (r < 0 && !error)
        error = vo_asprintf("image '%s' is gone: %s", a->base_image, strerror(-r));
    if (r >= 0 && a->disk_volume) {
        r = boot_disk_existing(vm, a->disk_volume, &error);
    } else if (r >= 0) {
        vo_task_progress(t, 30, a->full_clone ? "copying the image" : "creating a linked clone");
        volume = vo_volume_free_name(d, pool, name);
        r = volume ? 0 : -ENOSPC;
    }
    /* The volumes it makes, recorded before each is made: the next start
     * removes them when vireod stopped before the VM's document was saved. */
    _cleanup_strv_ char **made = NULL;
    if (r >= 0 && !a->disk_volume) {
        vo_strv_pushf(&made, "%s/%s", pool, volume);
        if ((r = vo_intent_vm_volumes(d, id, NULL, made)) < 0)
            error = vo_asprintf("cannot record the create in the store: %s", strerror(-r));
    }
    if (r >= 0 && !a->disk_volume) {
        /* The boot disk (vo_vm_create made the VM without one), named and
         * recorded as used by this VM just before its volume is made, so
         * nothing can take that volume from it once it exists. */
        pthread_mutex_lock(&vm->lock);
        VoVmSpec *s = vm->spec;
        VoDiskSpec *disks = vo_malloc0(sizeof(VoDiskSpec) * (s->n_disks + 1));
        disks[0] = (VoDiskSpec){ .volume = vo_asprintf("%s/%s", pool, volume),
                                 .format = vo_pool_is_rbd(d, pool) ? VO_DISK_RAW : VO_DISK_QCOW2,
                                 .owned = true, .slot = 0 };
        memcpy(disks + 1, s->disks, sizeof(VoDiskSpec) * s->n_disks);
        free(s->disks);
        s->disks = disks;
        s->n_disks++;
        r = write_vm(vm, NULL, false);
        pthread_mutex_unlock(&vm->lock);
        if (r >= 0 && !a->base_image)
            r = vo_volume_create_empty(d, pool, volume, "qcow2", a->disk_size, t, &path,
                                       &error);
        else if (r >= 0) {
            /* Not from an image being deleted (its files and bases go). */
            r = vo_image_name_check_free(d, a->base_image, &error);
            if (r >= 0)
                r = vo_volume_create_from_base(d, pool, volume, a->base_disk,
                                               a->base_format, a->base_image, a->full_clone,
                                               a->disk_size, t, &path, &error);
        }
        if (r >= 0 && vo_migrate_fault("create-exit-after-disk")) /* test: vireod dies */
            _exit(70);
    }
    _cleanup_free_ char *nvram = NULL;
    if (r >= 0 && vm->spec->firmware == VO_FIRMWARE_UEFI) {
        vo_task_progress(t, 80, "making the UEFI NVRAM");
        r = vo_vm_nvram_make(vm, pool, &nvram, &error);
        if (r >= 0) { /* made: recorded (a moment after) */
            vo_strv_pushf(&made, "%s", nvram);
            if ((r = vo_intent_vm_volumes(d, id, NULL, made)) < 0)
                error = vo_asprintf("cannot record the create in the store: %s", strerror(-r));
        }
    }
    if (r >= 0) {
        pthread_mutex_lock(&vm->lock);
        r = vo_vm_save(vm);
        vm->provisioning = false;
        pthread_mutex_unlock(&vm->lock);
    }
    if (r < 0) {
        (void)vo_rm_rf(dir);
        pthread_mutex_lock(&vm->lock);
        vm->deleted = true; /* a delete queued meanwhile finds it gone */
        (void)write_vm(vm, NULL, true); /* the relations written when it was registered */
        pthread_mutex_unlock(&vm->lock);
        /* The boot disk made before the NVRAM or the save failed goes too
         * (once its relation to the VM is gone: else it is "attached"). */
        _cleanup_free_ char *ignored = NULL;
        if (path) {
            _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, volume);
            if (vo_volume_remove_now(d, key, &ignored) < 0)
                log_warn("vm %s: kept volume %s: %s", name, key, ignored);
            free(TAKE_PTR(ignored));
        }
        if (nvram && vo_volume_remove_now(d, nvram, &ignored) < 0)
            log_warn("vm %s: kept volume %s: %s", name, nvram, ignored);
        if (made)
            vo_intent_vm_end(d, id);
        registry_remove(d, vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, r, "cannot create VM '%s': %s", name,
                            error ? error : strerror(-r));
    }
    if (made)
        vo_intent_vm_end(d, id); /* the VM's document owns them now */
    pthread_mutex_unlock(&vm->job);
    log_info("vm %s: created (%s)", name, id);
    vo_networks_refresh_hosts(d);
    return 0;
}

/* ---- public entry points -------------------------------------------------- */

static int vm_submit(VoDaemon *d, VoVm *vm, const char *kind, const char *also, bool unbounded,
                     VoTaskFn fn, void *args, VoTaskFreeFn free_args, json_t **ret_task,
                     char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    _cleanup_free_ char *key = vo_key_vm_task(vm->spec->id);
    _cleanup_free_ char *id = vo_strdup(vm->spec->id);
    /* A migration or cold move sets migration_task before it queues itself. */
    _cleanup_free_ char *migrating = strcmp(kind, "migrate") && strcmp(kind, "move")
                                         ? vo_strdup(vm->migration_task)
                                         : NULL;
    bool gone = vm->migrated_away;
    pthread_mutex_unlock(&vm->lock);
    if (migrating || gone) {
        if (free_args)
            free_args(args);
        if (gone)
            return vo_error_set(ret_error, -EBUSY, "VM '%s' has migrated to another host", name);
        return vo_error_set(ret_error, -EBUSY, "VM '%s' is migrating (task %s): wait for it "
                            "or cancel it (vireo task cancel %s)", name, migrating, migrating);
    }
    /* Of a VM's operations a backup alone can be cancelled (jobs/tasks.h). */
    VoTaskDesc desc = { .kind = kind, .target = name, .keys = { key, also },
                        .unbounded = unbounded, .target_id = id,
                        .cancellable = !strcmp(kind, "backup-create") ||
                                       !strcmp(kind, "migrate") || !strcmp(kind, "move") };
    int r = vo_tasks_submit(d->tasks, &desc, fn, args, free_args, ret_task, ret_error);
    if (r != 0 && free_args)
        free_args(args);
    return r < 0 ? r : 0;
}

int vo_vm_submit(VoDaemon *d, VoVm *vm, const char *kind, VoTaskFn fn, void *args,
                 VoTaskFreeFn free_args, json_t **ret_task, char **ret_error)
{
    return vm_submit(d, vm, kind, NULL, false, fn, args, free_args, ret_task, ret_error);
}

int vo_vm_submit_keyed(VoDaemon *d, VoVm *vm, const char *kind, const char *also,
                       VoTaskFn fn, void *args, VoTaskFreeFn free_args, json_t **ret_task,
                       char **ret_error)
{
    return vm_submit(d, vm, kind, also, false, fn, args, free_args, ret_task, ret_error);
}

int vo_vm_precheck(VoVm *vm, unsigned allowed, const char *verb, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    VoVmState s = vm->state;
    bool provisioning = vm->provisioning, deleting = vm->deleting || vm->deleted;
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    _cleanup_free_ char *migrating = vo_strdup(vm->migration_task);
    pthread_mutex_unlock(&vm->lock);
    if (migrating) {
        *ret_error = vo_asprintf("VM '%s' is migrating (task %s): wait for it or cancel it "
                                 "(vireo task cancel %s)", name, migrating, migrating);
        return -EBUSY;
    }
    if (deleting) {
        *ret_error = vo_asprintf("VM '%s' is being deleted", name);
        return -EBUSY;
    }
    if (provisioning) {
        *ret_error = vo_asprintf("VM '%s' is still being created", name);
        return -EBUSY;
    }
    if (!(allowed & IN(s))) {
        *ret_error = vo_asprintf("cannot %s VM '%s': it is %s", verb, name, state_names[s]);
        return -EBUSY;
    }
    /* A VM whose old definition names unknown host paths may only be
     * stopped (and the like) or deleted. */
    static const char *const always[] = { "stop", "reboot", "pause", "resume", "delete" };
    bool allowed_anyway = false;
    for (size_t i = 0; i < ELEMENTSOF(always); i++)
        allowed_anyway = allowed_anyway || !strcmp(verb, always[i]);
    pthread_mutex_lock(&vm->lock);
    int r = 0;
    if (vm->problem && !allowed_anyway)
        r = vo_error_set(ret_error, -EBUSY, "cannot %s VM '%s': %s", verb, name, vm->problem);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

/* unbounded: vireod's own starts (autostart, HA), which the queue's bound
 * never refuses. ha: an HA restart (a fenced host's own, a retry). The
 * first start of a VM HA recovery moved here is one too: a failure of its
 * task is retried (ha-retry.h). */
static int vm_start(VoDaemon *d, VoVm *vm, bool unbounded, bool ha, json_t **ret_task,
                    char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    bool landed = vm->ha_landed;
    _cleanup_free_ char *id = vo_strdup(vm->spec->id), *name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    int r = vo_fence_check_start(d, ret_error);
    if (r >= 0)
        r = vo_vm_precheck(vm, INACTIVE_STATES, "start", ret_error);
    if (r >= 0 && (ha || landed)) { /* tests refuse an HA start here, before its task */
        _cleanup_free_ char *point = vo_asprintf("ha_start_refused@%s", name);
        r = vo_test_fault(point);
        if (r < 0)
            *ret_error = vo_asprintf("test fault: HA start of VM '%s' refused before its task "
                                     "(%s)", name, strerror(-r));
    }
    if (r >= 0) {
        OpArgs *a = op_args(vm);
        a->ha_start = ha || landed;
        r = vm_submit(d, vm, "start", NULL, unbounded, task_start, a, op_args_free, ret_task,
                      ret_error);
    }
    /* An HA start refused before its task is marked in the VM's document
     * like one whose task failed, so the retries take it up (the first
     * start of a VM HA recovery moved here is followed from here). */
    if (r < 0 && (ha || landed))
        vo_ha_retry_refused(d, vm, landed && !ha, *ret_error ? *ret_error : strerror(-r));
    pthread_mutex_lock(&vm->lock);
    landed = r >= 0 && landed;
    vm->ha_landed = vm->ha_landed && !landed;
    pthread_mutex_unlock(&vm->lock);
    if (landed)
        vo_ha_retry_follow(d, id, name, json_string_value(json_object_get(*ret_task, "id")));
    return r;
}

int vo_vm_start_ha(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error)
{
    return vm_start(d, vm, true, true, ret_task, ret_error);
}

int vo_vm_start_once(VoDaemon *d, VoVm *vm, VoBootDev dev, json_t **ret_task,
                     char **ret_error)
{
    int r = vo_vm_precheck(vm, INACTIVE_STATES, "start", ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    bool drive = vm->spec->has_cdrom, kernel = vo_boot_file_set(&vm->spec->kernel_from);
    pthread_mutex_unlock(&vm->lock);
    if (dev == VO_BOOT_CDROM && !drive)
        return vo_error_set(ret_error, -EINVAL, "boot_once: cdrom, but the VM has no CD-ROM "
                            "drive (vireo vm cdrom insert VM POOL/ISO gives it one)");
    if (kernel)
        return vo_error_set(ret_error, -EINVAL, "boot_once: the VM boots a kernel directly; "
                            "its firmware boot order does not apply");
    OpArgs *a = op_args(vm);
    a->boot_once = true;
    a->once_dev = dev;
    return vm_submit(d, vm, "start", NULL, false, task_start, a, op_args_free, ret_task,
                     ret_error);
}

int vo_vm_start(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error)
{
    return vm_start(d, vm, false, false, ret_task, ret_error);
}

int vo_vm_stop(VoDaemon *d, VoVm *vm, bool force, int timeout_s, json_t **ret_task,
               char **ret_error)
{
    int r = vo_vm_precheck(vm, IN(VO_VM_RUNNING) | IN(VO_VM_PAUSED), "stop", ret_error);
    if (r < 0)
        return r;
    OpArgs *a = op_args(vm);
    a->force = force;
    a->timeout_s = timeout_s;
    return vo_vm_submit(d, vm, "stop", task_stop, a, op_args_free, ret_task, ret_error);
}

int vo_vm_reboot(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error)
{
    int r = vo_vm_precheck(vm, IN(VO_VM_RUNNING), "reboot", ret_error);
    return r < 0 ? r
                 : vo_vm_submit(d, vm, "reboot", task_reboot, op_args(vm), op_args_free, ret_task,
                                ret_error);
}

int vo_vm_pause(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error)
{
    int r = vo_vm_precheck(vm, IN(VO_VM_RUNNING), "pause", ret_error);
    return r < 0 ? r
                 : vo_vm_submit(d, vm, "pause", task_pause, op_args(vm), op_args_free, ret_task,
                                ret_error);
}

int vo_vm_resume(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error)
{
    int r = vo_vm_precheck(vm, IN(VO_VM_PAUSED), "resume", ret_error);
    return r < 0 ? r
                 : vo_vm_submit(d, vm, "resume", task_resume, op_args(vm), op_args_free, ret_task,
                                ret_error);
}

/* Refuses a delete of a VM that another delete holds (-EBUSY) or that is
 * gone (-ENOENT); with claim, holds it for this one. */
static int delete_claim(VoVm *vm, bool claim, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    int r = 0;
    if (vm->deleted)
        r = vo_error_set(ret_error, -ENOENT, "VM '%s' does not exist", vm->spec->name);
    else if (vm->deleting)
        r = vo_error_set(ret_error, -EBUSY, "VM '%s' is already being deleted", vm->spec->name);
    else if (claim)
        vm->deleting = true;
    pthread_mutex_unlock(&vm->lock);
    return r;
}

int vo_vm_delete(VoDaemon *d, VoVm *vm, bool force, bool keep_disks, json_t **ret_task,
                 char **ret_error)
{
    int r = delete_claim(vm, false, ret_error);
    if (r < 0)
        return r;
    if (!force) {
        r = vo_vm_precheck(vm, INACTIVE_STATES, "delete", ret_error);
        if (r < 0 && !vo_vm_is_provisioning(vm)) {
            _cleanup_free_ char *name = vo_vm_name(vm);
            free(*ret_error);
            *ret_error = vo_asprintf("VM '%s' is running; stop it first or delete with force",
                                     name);
        }
        if (r < 0)
            return r;
    }
    /* One delete at a time: the first claims the VM; the others are refused
     * until it failed, or find the VM gone once it succeeded. */
    r = delete_claim(vm, true, ret_error);
    if (r < 0)
        return r;
    OpArgs *a = op_args(vm);
    a->force = force;
    a->keep_disks = keep_disks;
    r = vo_vm_submit(d, vm, "delete", task_delete, a, op_args_free, ret_task, ret_error);
    if (r < 0)
        end_delete(vm);
    return r;
}

/* A new name (create, define, rename) that reads as an id is refused: a
 * VM is found by name or id, across the hosts of a cluster too, and such a
 * name would be ambiguous. Names given before stay. */
static int check_new_name(const char *name, char **ret_error)
{
    if (name && vo_uuid_valid(name))
        return vo_error_set(ret_error, -EINVAL, "name: '%s' looks like a VM id (a UUID); "
                            "give the VM a name that does not", name);
    return 0;
}

/* disk_volume (the boot disk an existing volume): usable as one, and
 * attached to no other VM (unless shareable); the create task claims it. */
static int check_disk_volume(VoDaemon *d, const VoVmCreateArgs *args, char **ret_error)
{
    const char *key = args->disk_volume;
    if (args->blank || args->pool || args->disk_size_bytes || args->full_clone)
        return vo_error_set(ret_error, -EINVAL, "disk_volume: the boot disk is volume '%s' as "
                            "it is: leave out blank, pool, disk_size_bytes and full_clone", key);
    _cleanup_free_ char *path = NULL, *format = NULL;
    bool shareable = false;
    int r = vo_volume_lookup(d, key, &path, &format, &shareable, ret_error);
    if (r < 0)
        return r == -ENOENT ? -EINVAL : r;
    /* Its pool's reach (by the pool's name: the key is POOL/NAME). */
    const char *slash = strchr(key, '/');
    _cleanup_free_ char *pool = vo_asprintf("%.*s", slash ? (int)(slash - key) : 0, key);
    if ((r = vo_pool_check_reachable(d, pool, ret_error)) < 0)
        return r;
    if (vo_volume_is_base(d, key))
        return vo_error_set(ret_error, -EBUSY, "volume '%s' backs linked clones: attaching it "
                            "would let a VM write under them; clone it instead", key);
    _cleanup_free_ char *user = vo_vms_volume_user(d, key);
    if (user && !shareable)
        return vo_error_set(ret_error, -EBUSY, "volume '%s' is already attached to VM '%s' "
                            "(mark it shareable to share it)", key, user);
    return 0;
}

int vo_vm_create(VoDaemon *d, const VoVmCreateArgs *args, json_t **ret_task, json_t **ret_vm,
                 char **ret_error)
{
    if (!vo_name_valid(args->name)) {
        *ret_error = vo_asprintf("name: '%s' is invalid: use 1-63 characters of a-z, 0-9 and "
                                 "'-', not starting with '-'",
                                 args->name ? args->name : "");
        return -EINVAL;
    }
    if (check_new_name(args->name, ret_error) < 0)
        return -EINVAL;
    int r = vo_fence_check_start(d, ret_error);
    if (r < 0)
        return r;
    VoImage *img = NULL;
    if (args->blank && !args->disk_size_bytes)
        return vo_error_set(ret_error, -EINVAL, "disk_size_bytes: a blank VM needs the size of "
                            "its empty disk");
    if (args->cdrom && (r = vo_volume_check_iso(d, args->cdrom, ret_error)) < 0)
        return -EINVAL;
    if (args->disk_volume && (r = check_disk_volume(d, args, ret_error)) < 0)
        return r;
    if (args->blank) {
        /* No image: an empty disk, booted by the firmware (from the CD-ROM). */
        img = vo_malloc0(sizeof(*img));
        r = 0;
    } else /* another host's own image: the create task copies it here first */
        r = vo_image_find_anywhere(d, args->image, &img);
    if (r < 0) {
        *ret_error = r == -ENOENT ? vo_asprintf("image '%s' does not exist (see: vireo image list)",
                                                args->image)
                                  : vo_asprintf("image '%s' is unusable", args->image);
        return r == -ENOENT ? -EINVAL : -EIO;
    }
    /* An image of a shared pool: its files must be reachable from here. */
    if (img->pool && (r = vo_pool_check_reachable(d, img->pool, ret_error)) < 0) {
        vo_image_free(img);
        return r;
    }
    /* The boot disk's pool: one of this host's, reachable here. */
    if (args->pool) {
        json_t *pool_doc = NULL;
        _cleanup_free_ char *pool_error = NULL;
        r = vo_pool_get_json(d, args->pool, &pool_doc, &pool_error);
        bool usable = r >= 0 &&
                      strcmp(json_string_value(json_object_get(pool_doc, "type")) ?: "", "backup");
        json_decref(pool_doc);
        if (!usable) {
            vo_image_free(img);
            return vo_error_set(ret_error, -EINVAL, "pool: '%s' is not a pool for disks here "
                                "(see vireo pool list)", args->pool);
        }
        if ((r = vo_pool_check_reachable(d, args->pool, ret_error)) < 0) {
            vo_image_free(img);
            return r;
        }
    }
    if (args->disk_size_bytes && args->disk_size_bytes < img->size_bytes) {
        *ret_error = vo_asprintf("disk_size_bytes: %llu is smaller than image '%s' (%llu bytes)",
                                 (unsigned long long)args->disk_size_bytes, img->name,
                                 (unsigned long long)img->size_bytes);
        vo_image_free(img);
        return -EINVAL;
    }

    VoVmSpec *spec = vo_malloc0(sizeof(*spec));
    char id[37];
    if (vo_uuid_generate(id) < 0)
        abort();
    spec->id = vo_strdup(id);
    spec->name = vo_strdup(args->name);
    spec->image = vo_strdup(img->name);
    spec->has_cdrom = args->has_cdrom || args->cdrom;
    spec->cdrom = vo_strdup(args->cdrom);
    memcpy(spec->boot, args->boot, sizeof(spec->boot));
    spec->n_boot = args->n_boot;
    spec->vcpus = args->vcpus;
    spec->memory_mib = args->memory_mib;
    spec->max_vcpus = args->max_vcpus ? args->max_vcpus : args->vcpus;
    spec->max_memory_mib = args->max_memory_mib ? args->max_memory_mib : args->memory_mib;
    spec->accel = args->accel;
    spec->machine = vo_strdup("q35");
    /* Firmware: asked for, else the image's preference, else SeaBIOS. UEFI's
     * NVRAM volume is made by the create task. */
    const char *firmware = args->firmware ? args->firmware : img->firmware;
    if (firmware && vo_firmware_from_string(firmware, &spec->firmware) < 0) {
        *ret_error = vo_asprintf("firmware: '%s' is not one of bios, uefi", firmware);
        vo_vm_spec_free(spec);
        vo_image_free(img);
        return -EINVAL;
    }
    spec->secure_boot = args->secure_boot;
    spec->project = args->project && strcmp(args->project, "default") ? vo_strdup(args->project)
                                                                      : NULL;
    /* A display: asked for, else VGA for an ISO install (a CD in the drive),
     * else none (the serial console). */
    if (args->display && vo_display_from_string(args->display, &spec->display) < 0) {
        *ret_error = vo_asprintf("display: '%s' is not one of vga, virtio, none", args->display);
        vo_vm_spec_free(spec);
        vo_image_free(img);
        return -EINVAL;
    }
    if (!args->display && args->cdrom)
        spec->display = VO_DISPLAY_VGA;
    /* cloud-init: as asked, else a seed with the defaults (the VM's name as
     * its hostname) when the image wants one. */
    if (args->cloud_init) {
        if (vo_cloud_init_from_json(args->cloud_init, &spec->cloud_init, ret_error) < 0) {
            vo_vm_spec_free(spec);
            vo_image_free(img);
            return -EINVAL;
        }
    } else if (img->cloud_init)
        spec->cloud_init = vo_malloc0(sizeof(VoCloudInit));
    /* Direct boot: the image's kernel and initrd, by the image's name. */
    spec->kernel_from.image = img->kernel && img->name ? vo_strdup(img->name) : NULL;
    spec->initrd_from.image = img->initrd && img->name ? vo_strdup(img->name) : NULL;
    spec->cmdline = vo_strdup(img->cmdline);
    spec->autostart = args->autostart;
    spec->group = vo_strdup(args->group);
    spec->ha = args->ha;
    spec->ha_priority = args->ha_priority;
    spec->ha_group = vo_strdup(args->ha_group);
    spec->disks = vo_malloc0(sizeof(VoDiskSpec));
    /* The boot disk is added by the create task once it made and named its
     * volume (the first free name then): until then the VM has no disk, so
     * a volume made meanwhile under that name is not taken for this VM's.
     * Validated with a stand-in. */
    spec->disks[0] = (VoDiskSpec){ .volume = args->disk_volume
                                                 ? vo_strdup(args->disk_volume)
                                                 : vo_asprintf("%s/disk", args->pool ? args->pool
                                                                                     : VO_DEFAULT_POOL),
                                   .format = VO_DISK_QCOW2 };
    spec->n_disks = 1;
    /* One NIC per network asked for; by default one on the default network
     * (or QEMU's user-mode networking on a host where it could not be made). */
    static const char *const default_nets[] = { VO_DEFAULT_NETWORK };
    static const char *const user_net[] = { "user" };
    const char *const *nets = args->networks;
    size_t n_nets = args->n_networks;
    if (!nets) {
        nets = vo_network_exists(d, VO_DEFAULT_NETWORK) ? default_nets : user_net;
        n_nets = 1;
    }
    for (size_t i = 0; i < n_nets && !*ret_error; i++)
        if (strcmp(nets[i], "user") && !vo_network_exists(d, nets[i]))
            *ret_error = vo_asprintf("network '%s' does not exist (see: vireo network list)",
                                     nets[i]);
    if (!*ret_error && args->n_macs > n_nets)
        *ret_error = vo_asprintf("macs: %zu MACs for %zu NIC%s (one per network, in order)",
                                 args->n_macs, n_nets, n_nets == 1 ? "" : "s");
    r = *ret_error ? -EINVAL : 0;
    /* Each NIC's MAC is claimed in the cluster (mac-claims.h) and the claims
     * compared in the VM's first write, which makes them its own. */
    VoMacClaims *mac_claims = NULL;
    spec->nics = vo_malloc0(sizeof(VoNicSpec) * (n_nets + 1));
    for (size_t i = 0; r >= 0 && i < n_nets && i < VO_VM_MAX_NICS; i++) {
        char mac[18];
        const char *given = i < args->n_macs ? args->macs[i] : NULL;
        if (given) {
            _cleanup_free_ char *field = vo_asprintf("macs[%zu]", i);
            r = vo_vms_claim_given_mac(d, &mac_claims, args->name, field, given, spec->nics, i,
                                       ret_error);
            for (int k = 0; r >= 0 && k < 18; k++)
                mac[k] = (char)tolower((unsigned char)given[k]);
        } else if ((r = vo_vms_claim_new_mac(d, &mac_claims, args->name, spec->nics, i,
                                             mac)) < 0)
            *ret_error = r == -EEXIST ? vo_strdup("cannot find an unused MAC")
                                      : vo_asprintf("cannot claim a new MAC in the store: %s",
                                                    strerror(-r));
        if (r < 0 && r != -EEXIST && !given) /* the store's: never an unclaimed MAC */
            r = -EAGAIN;
        if (r < 0)
            break;
        spec->nics[i] = (VoNicSpec){ .mac = vo_strdup(mac), .network = vo_strdup(nets[i]),
                                      .slot = (unsigned)i };
        spec->n_nics++;
    }
    if (r >= 0)
        r = vo_vm_spec_validate(spec, &d->limits, ret_error);
    if (r >= 0)
        r = vo_vm_firmware_check(d, spec, ret_error);
    if (r >= 0 && spec->ha) /* its ISO must be where every host reaches it */
        r = vo_vm_ha_check_cdrom(d, spec->name, spec->cdrom, ret_error);
    if (r >= 0 && spec->ha) { /* its boot disk must be made where every host reaches it */
        _cleanup_free_ char *ha_error = NULL;
        r = vo_vm_ha_check_disks(d, spec, &ha_error);
        if (r < 0)
            *ret_error = vo_asprintf("ha: VM '%s' cannot be highly available: its boot disk "
                                     "would be made in pool '%s', which is not a shared pool "
                                     "(give --pool with a shared pool)", spec->name,
                                     args->pool ? args->pool : VO_DEFAULT_POOL);
    }
    free(TAKE_PTR(spec->disks[0].volume));
    spec->n_disks = 0;
    if (r >= 0 && spec->accel == VO_ACCEL_KVM && !d->driver->kvm_usable) {
        *ret_error = vo_asprintf("accel: kvm was requested but KVM is not usable on this host "
                                 "(%s); use auto or tcg", d->driver->kvm_reason);
        r = -ENODEV;
    }
    if (r < 0) {
        vo_mac_claims_release(mac_claims);
        vo_vm_spec_free(spec);
        vo_image_free(img);
        return r;
    }

    /* Its networks are held until the VM is registered, where a network
     * delete sees it. */
    r = vo_vm_claim_networks(d, spec, ret_error);
    if (r < 0) {
        vo_mac_claims_release(mac_claims);
        vo_vm_spec_free(spec);
        vo_image_free(img);
        return r == -ENOENT ? -EINVAL : r;
    }
    VoVm *vm = vm_new_defined(d, spec);
    vm->provisioning = true;
    /* Its boot disk's virtual size counts from its first save, before the
     * task makes the disk: as asked, else the existing volume's, else the
     * image's (read before the registry's lock: the volume's document asks
     * who uses it). */
    vm->disk_bytes = args->disk_size_bytes ? (int64_t)args->disk_size_bytes
                     : args->disk_volume   ? vo_vm_volume_virtual_size(d, args->disk_volume)
                                           : (int64_t)img->size_bytes;
    pthread_mutex_lock(&d->vms_lock);
    if (vo_vms_find_locked(d, args->name)) {
        vo_vm_release_networks(d, spec);
        pthread_mutex_unlock(&d->vms_lock);
        *ret_error = vo_vm_name_taken_message(d, args->name);
        vo_mac_claims_release(mac_claims);
        vo_vm_unref(vm);
        vo_image_free(img);
        return -EEXIST;
    }
    /* Its relations are recorded now, before its networks are released, so
     * a network, image or volume delete from here on finds it in use; its
     * document is written once the create task made its disk. */
    pthread_mutex_lock(&vm->lock);
    vm->check_quota = true; /* its project's room is taken now, with its name */
    vm->mac_claims = mac_claims; /* and its MACs, made its own */
    r = write_vm(vm, NULL, false);
    vm->check_quota = false;
    vm->mac_claims = NULL;
    pthread_mutex_unlock(&vm->lock);
    vo_mac_claims_release(mac_claims);
    if (r < 0) {
        vo_vm_release_networks(d, spec);
        pthread_mutex_unlock(&d->vms_lock);
        char *refused = vo_vm_save_refusal(r);
        if (r == -ENOTUNIQ) { /* claimed meanwhile, maybe on another host */
            *ret_error = vo_vm_name_taken_message(d, args->name);
            r = -EEXIST;
        } else if (r == VO_RELATIONS_ECLAIM) {
            *ret_error = vo_vm_mac_claim_lapsed(args->name);
            r = -EAGAIN;
        } else if (refused) {
            *ret_error = refused;
        } else if (r == -EIDRM) {
            *ret_error = vo_asprintf("group '%s' is being deleted", spec->group);
            r = -EBUSY;
        } else
            *ret_error = vo_asprintf("cannot save VM '%s': %s", args->name, strerror(-r));
        vo_vm_unref(vm);
        vo_image_free(img);
        return r;
    }
    registry_add_locked(d, vm);
    vo_vm_release_networks(d, spec);
    pthread_mutex_unlock(&d->vms_lock);

    OpArgs *a = op_args(vm);
    a->base_disk = vo_strdup(img->disk);
    a->base_format = vo_strdup(img->format);
    a->base_image = vo_strdup(img->name);
    a->disk_size = args->disk_size_bytes;
    a->full_clone = args->full_clone;
    a->pool = vo_strdup(args->pool);
    a->disk_volume = vo_strdup(args->disk_volume);
    vo_image_free(img);
    *ret_vm = vo_vm_to_json(vm);
    r = vo_vm_submit(d, vm, "create", task_create, a, op_args_free, ret_task, ret_error);
    if (r < 0) { /* refused (the queue is full): the name is free again */
        pthread_mutex_lock(&vm->lock);
        (void)write_vm(vm, NULL, true);
        pthread_mutex_unlock(&vm->lock);
        registry_remove(d, vm);
        json_decref(*ret_vm);
        *ret_vm = NULL;
    }
    return r;
}

char *vo_vm_mac_claim_lapsed(const char *name)
{
    return vo_asprintf("the claims on VM '%s''s MAC addresses lapsed before it was saved (this "
                       "host did not renew them in time; another VM may have taken a MAC "
                       "since): try again", name);
}

int vo_vm_define(VoDaemon *d, VoVmSpec *spec, const VoMacClaims *mac_claims, char **ret_error)
{
    int r = vo_vm_spec_validate(spec, &d->limits, ret_error);
    if (r >= 0)
        r = check_new_name(spec->name, ret_error);
    if (r < 0) {
        vo_vm_spec_free(spec);
        return r;
    }
    r = vo_vm_claim_networks(d, spec, ret_error); /* see vo_vm_create */
    if (r < 0) {
        vo_vm_spec_free(spec);
        return r == -ENOENT ? -EINVAL : r;
    }
    VoVm *vm = vm_new_defined(d, spec);
    vm->disk_bytes = -1; /* its disks exist: they count from its first save */
    vm->disk_bytes = measure_disks(vm);
    _cleanup_free_ char *dir = vo_vm_state_dir(d, spec->id);
    pthread_mutex_lock(&d->vms_lock);
    if (vo_vms_find_locked(d, spec->name)) {
        *ret_error = vo_vm_name_taken_message(d, spec->name);
        r = -EEXIST;
    }
    if (r >= 0 && (r = vo_mkdir_p(dir, 0750)) < 0)
        *ret_error = vo_asprintf("cannot create %s: %s", dir, strerror(-r));
    if (r >= 0) {
        pthread_mutex_lock(&vm->lock);
        vm->check_quota = true;
        vm->mac_claims = mac_claims;
        r = vo_vm_save(vm);
        vm->check_quota = false;
        vm->mac_claims = NULL;
        pthread_mutex_unlock(&vm->lock);
        char *refused = vo_vm_save_refusal(r);
        if (r == -ENOTUNIQ) {
            *ret_error = vo_vm_name_taken_message(d, spec->name);
            r = -EEXIST;
        } else if (r == VO_RELATIONS_ECLAIM) {
            *ret_error = vo_vm_mac_claim_lapsed(spec->name);
            r = -EAGAIN;
        } else if (refused) {
            *ret_error = refused;
        } else if (r == -EIDRM) {
            *ret_error = vo_asprintf("group '%s' is being deleted", spec->group);
            r = -EBUSY;
        } else if (r < 0)
            *ret_error = vo_asprintf("cannot save VM '%s': %s", spec->name, strerror(-r));
    }
    if (r >= 0)
        registry_add_locked(d, vm);
    vo_vm_release_networks(d, spec);
    pthread_mutex_unlock(&d->vms_lock);
    if (r < 0) {
        (void)vo_rm_rf(dir);
        vo_vm_unref(vm);
        return r;
    }
    log_info("vm %s: defined (%s)", spec->name, spec->id);
    vo_networks_refresh_hosts(d);
    return 0;
}

int vo_vm_edit(VoDaemon *d, VoVm *vm, const VoVmEdit *edit, char **ret_error)
{
    if (edit->ha == 1) { /* read without the VM's locks: storage's lock comes first */
        pthread_mutex_lock(&vm->lock);
        _cleanup_vm_spec_ VoVmSpec *now = vo_vm_spec_copy(vm->spec);
        pthread_mutex_unlock(&vm->lock);
        int r = vo_vm_ha_check_disks(d, now, ret_error);
        if (r < 0)
            return r;
    }
    /* Switched on while it runs: only under a confirmed lease (checked
     * again once its QEMU is on the kill list, below). */
    if (edit->ha == 1 && d->cluster) {
        int64_t ha_lease = 0;
        pthread_mutex_lock(&vm->lock);
        bool active = vo_vm_state_active(vm->state);
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        int r = active ? vo_fence_ha_lease_wait(d, name, 0, &ha_lease, ret_error) : 0;
        if (r < 0)
            return r;
    }
    /* Firmware: the new NVRAM is made before the locks (storage's lock comes
     * first) and removed again when the edit is refused. */
    VoFirmware firmware = VO_FIRMWARE_BIOS;
    if (edit->firmware && vo_firmware_from_string(edit->firmware, &firmware) < 0)
        return vo_error_set(ret_error, -EINVAL, "firmware: '%s' is not one of bios, uefi",
                            edit->firmware);
    VoDisplay display = VO_DISPLAY_NONE;
    if (edit->display && vo_display_from_string(edit->display, &display) < 0)
        return vo_error_set(ret_error, -EINVAL, "display: '%s' is not one of vga, virtio, none",
                            edit->display);
    _cleanup_free_ char *new_nvram = NULL, *old_nvram = NULL;
    if (edit->firmware || edit->secure_boot_set) {
        pthread_mutex_lock(&vm->lock);
        _cleanup_vm_spec_ VoVmSpec *want = vo_vm_spec_copy(vm->spec);
        bool active = vo_vm_state_active(vm->state) || vm->provisioning;
        pthread_mutex_unlock(&vm->lock);
        if (active)
            return vo_error_set(ret_error, -EBUSY, "VM '%s' is running: stop it before "
                                "changing its firmware", want->name);
        bool was_secure = want->secure_boot;
        if (edit->firmware)
            want->firmware = firmware;
        if (edit->secure_boot_set)
            want->secure_boot = edit->secure_boot;
        else if (want->firmware != VO_FIRMWARE_UEFI)
            want->secure_boot = false;
        free(TAKE_PTR(want->nvram));
        int r = vo_vm_spec_validate(want, &d->limits, ret_error);
        if (r >= 0)
            r = vo_vm_firmware_check(d, want, ret_error);
        /* A new NVRAM when there is none, or for a switch of secure boot
         * (other keys enrolled). */
        pthread_mutex_lock(&vm->lock);
        bool has_nvram = vm->spec->nvram != NULL;
        pthread_mutex_unlock(&vm->lock);
        if (r >= 0 && want->firmware == VO_FIRMWARE_UEFI &&
            (!has_nvram || was_secure != want->secure_boot))
            r = vo_vm_nvram_create(d, want, NULL, &new_nvram, ret_error);
        if (r < 0)
            return r;
    }
    /* The samplers' moment is waited for, a task is not (daemon/vm-job.h). */
    if (vo_vm_job_wait_brief(vm, VO_VM_JOB_BRIEF_WAIT_MS, "change", ret_error) < 0) {
        if (new_nvram) {
            _cleanup_free_ char *ignored = NULL;
            (void)vo_volume_remove_now(d, new_nvram, &ignored);
        }
        return -EBUSY;
    }
    if (edit->ha == 1) {
        /* The CD-ROM again, under the job: an insert (a task holding it)
         * may have ended since the check above, and none runs now. */
        pthread_mutex_lock(&vm->lock);
        _cleanup_free_ char *iso = vo_strdup(vm->spec->cdrom);
        _cleanup_free_ char *vm_name = vo_strdup(vm->spec->name);
        pthread_mutex_unlock(&vm->lock);
        int c = vo_vm_ha_check_cdrom(d, vm_name, iso, ret_error);
        if (c < 0) {
            vo_vm_job_end_brief(vm);
            if (new_nvram) {
                _cleanup_free_ char *ignored = NULL;
                (void)vo_volume_remove_now(d, new_nvram, &ignored);
            }
            return c;
        }
    }
    /* A running QEMU's cgroup follows the saved CPU weight/limit, after
     * the locks: it may ask QEMU (its vCPU threads, qemu-cgroup.h), and a
     * stuck one must not stall every reader. The job lock keeps hv. */
    VoHvInstance *cgroup_hv = NULL;
    _cleanup_vm_spec_ VoVmSpec *cgroup_spec = NULL;
    pthread_mutex_lock(&d->vms_lock); /* a rename must not race another */
    pthread_mutex_lock(&vm->lock);
    int r = 0;
    bool offline_change = edit->name || edit->vcpus || edit->memory_mib || edit->max_vcpus ||
                          edit->max_memory_mib || edit->firmware || edit->secure_boot_set ||
                          edit->display;
    /* If-Match, compared under the lock the save below holds: atomic. */
    vo_vm_save_settle_first(vm); /* vm->rev as a save under way leaves it */
    if (edit->if_match > 0 && edit->if_match != vm->rev) {
        *ret_error = vo_asprintf("the VM changed: it is at revision %lld, not %lld (If-Match); "
                                 "read it again", (long long)vm->rev, (long long)edit->if_match);
        r = -VO_EIFMATCH;
        goto out;
    }
    if (vm->problem) {
        *ret_error = vo_asprintf("cannot change VM '%s': %s", vm->spec->name, vm->problem);
        r = -EBUSY;
        goto out;
    }
    if (vm->provisioning || (offline_change && vo_vm_state_active(vm->state))) {
        *ret_error = vo_asprintf("VM '%s' is %s: stop it before changing name, max_vcpus, "
                                 "max_memory or display",
                                 vm->spec->name, vm->provisioning ? "being created"
                                                                   : state_names[vm->state]);
        r = -EBUSY;
        goto out;
    }
    VoVmSpec *next = vo_vm_spec_copy(vm->spec);
    if (edit->name) {
        free(next->name);
        next->name = vo_strdup(edit->name);
    }
    if (edit->vcpus)
        next->vcpus = edit->vcpus;
    if (edit->memory_mib)
        next->memory_mib = edit->memory_mib;
    /* A stopped VM's size has no maximum: the maximum (what it may reach
     * while running) follows a value raised beyond it, unless it is given. */
    if (edit->max_vcpus)
        next->max_vcpus = edit->max_vcpus;
    else if (next->max_vcpus < next->vcpus)
        next->max_vcpus = next->vcpus;
    if (edit->max_memory_mib)
        next->max_memory_mib = edit->max_memory_mib;
    else if (next->max_memory_mib < next->memory_mib)
        next->max_memory_mib = next->memory_mib;
    if (edit->autostart >= 0)
        next->autostart = edit->autostart;
    if (edit->ha >= 0)
        next->ha = edit->ha;
    if (edit->ha_priority_set)
        next->ha_priority = edit->ha_priority;
    if (edit->ha_group) {
        free(next->ha_group);
        next->ha_group = *edit->ha_group ? vo_strdup(edit->ha_group) : NULL;
    }
    if (edit->firmware)
        next->firmware = firmware;
    if (edit->display)
        next->display = display;
    if (edit->project) {
        free(next->project);
        next->project = strcmp(edit->project, "default") ? vo_strdup(edit->project) : NULL;
    }
    if (edit->cpu_weight_set)
        next->cpu_weight = edit->cpu_weight;
    if (edit->cpu_limit_set)
        next->cpu_limit = edit->cpu_limit;
    if (edit->boot_set) { /* a running QEMU keeps its order until it ends */
        memcpy(next->boot, edit->boot, sizeof(VoBootDev) * edit->n_boot);
        next->n_boot = edit->n_boot;
    }
    if (edit->secure_boot_set)
        next->secure_boot = edit->secure_boot;
    else if (next->firmware != VO_FIRMWARE_UEFI)
        next->secure_boot = false;
    if (new_nvram || (next->nvram && next->firmware != VO_FIRMWARE_UEFI)) {
        old_nvram = next->nvram;
        next->nvram = vo_strdup(new_nvram);
    }
    r = vo_vm_spec_validate(next, &d->limits, ret_error);
    if (r >= 0 && edit->name && strcmp(edit->name, vm->spec->name))
        r = check_new_name(edit->name, ret_error);
    if (r >= 0 && edit->name && strcmp(edit->name, vm->spec->name)) {
        pthread_mutex_unlock(&vm->lock);
        VoVm *other = vo_vms_find_locked(d, edit->name);
        pthread_mutex_lock(&vm->lock);
        if (other) {
            *ret_error = vo_vm_name_taken_message(d, edit->name);
            r = -EEXIST;
        }
    }
    if (r < 0) {
        vo_vm_spec_free(next);
        goto out;
    }
    VoVmSpec *old = vm->spec;
    vm->spec = next;
    /* HA off forgets a failed HA start: HA on later must not retry it. */
    bool ha_start_failed = vm->ha_start_failed;
    if (!next->ha)
        vm->ha_start_failed = false;
    vm->check_quota = true;
    r = vo_vm_save(vm);
    vm->check_quota = false;
    if (r < 0)
        vm->ha_start_failed = ha_start_failed;
    char *refused = vo_vm_save_refusal(r);
    if (r == -ENOTUNIQ) { /* the new name is another VM's, on another host */
        vm->spec = old;
        *ret_error = vo_vm_name_taken_message(d, next->name);
        r = -EEXIST;
        vo_vm_spec_free(next);
    } else if (refused) {
        vm->spec = old;
        *ret_error = refused;
        vo_vm_spec_free(next);
    } else if (r < 0) {
        vm->spec = old;
        *ret_error = vo_asprintf("cannot save VM '%s': %s", old->name, strerror(-r));
        vo_vm_spec_free(next);
    } else {
        vo_vm_spec_free(old);
        /* A running QEMU's cgroup follows at once (below); without one
         * (the host has none) the values wait for the next start. */
        if ((edit->cpu_weight_set || edit->cpu_limit_set) && vm->hv &&
            d->driver->cgroup_update) {
            cgroup_hv = vm->hv;
            cgroup_spec = vo_vm_spec_copy(next);
        }
        int64_t lease = 0;
        bool listed = edit->ha == 1 && d->cluster && vm->hv;
        if (listed)
            (void)vo_fence_lease(d, &lease); /* 0 when none: not covered */
        vo_fence_vm_sync(vm); /* ha switched on or off: the fence's kill list follows */
        if (listed && !vo_fence_ha_covered(vm, lease)) {
            /* The lease went before the QEMU was on the kill list: as the
             * fence would have, it ends (the VM may be restarted elsewhere). */
            log_warn("vm %s: made HA while this host lost its lease: its QEMU is killed",
                     vm->spec->name);
            (void)d->driver->kill(vm->hv);
        }
    }
out:
    pthread_mutex_unlock(&vm->lock);
    pthread_mutex_unlock(&d->vms_lock);
    if (cgroup_hv) {
        _cleanup_free_ char *cg_error = NULL;
        if (d->driver->cgroup_update(cgroup_hv, cgroup_spec, &cg_error) < 0)
            log_warn("vm %s: CPU weight/limit saved, not applied now: %s", cgroup_spec->name,
                     cg_error);
    }
    vo_vm_job_end_brief(vm);
    /* The NVRAM the VM does not use (any more) goes. */
    const char *unused = r >= 0 ? old_nvram : new_nvram;
    _cleanup_free_ char *nvram_error = NULL;
    if (unused && vo_volume_remove_now(d, unused, &nvram_error) < 0)
        log_warn("kept the unused NVRAM volume %s: %s", unused, nvram_error);
    return r;
}

/* ---- live migration (the registry's part; migrate.c drives it) ---------- */

/* The restart limit's count of the document the ownership transaction
 * wrote at rev (the source's, "ha_restarts"), or NULL: a live migration
 * keeps it, or the VM's first save here would drop it. */
static json_t *ha_restarts_stored(VoDaemon *d, const char *vm_id, int64_t rev)
{
    _cleanup_free_ char *key = vo_key_vm(vm_id), *text = NULL;
    int64_t got = 0;
    if (vo_store_get(d->store, key, &text, &got) < 0 || got != rev)
        return NULL;
    json_t *doc = json_loads(text, 0, NULL);
    json_t *r = ha_restarts_of_doc(doc);
    json_decref(doc);
    return r;
}

int vo_vm_adopt_incoming(VoDaemon *d, VoVmSpec *spec, json_t *status, int64_t rev,
                         VoHvInstance *hv, VoVm **ret_vm, char **ret_error)
{
    json_t *ha_restarts = ha_restarts_stored(d, spec->id, rev);
    json_t *macs = vo_vm_mac_index_enter(d, spec); /* the index's, as it has them */
    pthread_mutex_lock(&d->vms_lock);
    if (vo_vms_find_locked(d, spec->id) || vo_vms_find_locked(d, spec->name)) {
        pthread_mutex_unlock(&d->vms_lock);
        int r = vo_error_set(ret_error, -EEXIST, "a VM '%s' (or with its id) is here already",
                             spec->name);
        vo_vm_spec_free(spec);
        json_decref(ha_restarts);
        json_decref(macs);
        return r;
    }
    VoVm *vm = vm_new(d);
    vm->spec = spec;
    vm->rev = rev;
    vm->ha_restarts = ha_restarts;
    /* What the transaction moved here is what a save would write: the
     * relations of an active VM, its group membership, its name's claim. */
    json_decref(vm->uses);
    vm->uses = vo_relations_of_vm(spec, true);
    vo_relations_add_group(vm->uses, spec, d->host_id);
    json_object_update(vm->uses, macs);
    json_decref(macs);
    vm->disk_bytes = vo_project_usage_disk_stored(d->store, vo_vm_spec_project(spec), spec->id);
    vo_relations_add_project(vm->uses, spec, d->host_id, vm->disk_bytes);
    vm->claimed_name = vo_strdup(spec->name);
    vm->state = VO_VM_PAUSED; /* until the caller resumes it */
    vm->state_reason = vo_strdup(VO_VM_REASON_UNKNOWN);
    vm->created_at = json_integer_value(json_object_get(status, "created_at"));
    vm->started_at = json_integer_value(json_object_get(status, "started_at"));
    if (!vm->started_at)
        vm->started_at = vo_wall_ms();
    vm->resets = (unsigned)json_integer_value(json_object_get(status, "resets"));
    vm->last_reset_at = json_integer_value(json_object_get(status, "last_reset_at"));
    vm->hv = hv;
    (void)d->driver->info(hv, &vm->info);
    pthread_mutex_lock(&vm->lock);
    vo_fence_vm_sync(vm); /* an HA VM's QEMU: on the kill list before it continues */
    pthread_mutex_unlock(&vm->lock);
    registry_add_locked(d, vm);
    pthread_mutex_lock(&vm->job);
    pthread_mutex_unlock(&d->vms_lock);
    watch_vm(vm);
    pthread_mutex_unlock(&vm->job);
    *ret_vm = vo_vm_ref(vm);
    return 0;
}

int vo_vm_adopt_moved(VoDaemon *d, const char *vm_id, char **ret_error)
{
    _cleanup_free_ char *key = vo_key_vm(vm_id), *text = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, key, &text, &rev);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read %s: %s", key, strerror(-r));
    json_t *doc = json_loads(text, 0, NULL);
    json_t *status = json_object_get(doc, "status");
    VoVmSpec *spec = NULL;
    _cleanup_free_ char *err = NULL;
    VoVmState state = VO_VM_STOPPED;
    if (!doc || vo_vm_spec_from_json(json_object_get(doc, "spec"), &spec, &err) < 0 ||
        state_from_string(json_string_value(json_object_get(status, "state")), &state) < 0 ||
        vo_vm_state_active(state)) {
        json_decref(doc);
        vo_vm_spec_free(spec);
        return vo_error_set(ret_error, -EINVAL, "%s is not a stopped VM's document: %s", key,
                            err ? err : "bad document or state");
    }
    _cleanup_free_ char *dir = vo_vm_state_dir(d, spec->id);
    if ((r = vo_mkdir_p(dir, 0750)) < 0) {
        json_decref(doc);
        vo_vm_spec_free(spec);
        return vo_error_set(ret_error, r, "cannot create %s: %s", dir, strerror(-r));
    }
    json_t *macs = vo_vm_mac_index_enter(d, spec); /* the index's, as it has them */
    pthread_mutex_lock(&d->vms_lock);
    if (vo_vms_find_locked(d, spec->id) || vo_vms_find_locked(d, spec->name)) {
        pthread_mutex_unlock(&d->vms_lock);
        r = vo_error_set(ret_error, -EEXIST, "a VM '%s' (or with its id) is here already",
                         spec->name);
        json_decref(doc);
        json_decref(macs);
        vo_vm_spec_free(spec);
        return r;
    }
    VoVm *vm = vm_new(d);
    vm->spec = spec;
    vm->rev = rev;
    /* What the move's transaction put here is what a save would write. */
    json_decref(vm->uses);
    vm->uses = vo_relations_of_vm(spec, false);
    vo_relations_add_group(vm->uses, spec, d->host_id);
    json_object_update(vm->uses, macs);
    json_decref(macs);
    vm->disk_bytes = vo_project_usage_disk_stored(d->store, vo_vm_spec_project(spec), spec->id);
    vo_relations_add_project(vm->uses, spec, d->host_id, vm->disk_bytes);
    vm->claimed_name = vo_strdup(spec->name);
    vm->state = state;
    vm->created_at = json_integer_value(json_object_get(status, "created_at"));
    vm->exit_reason = vo_strdup(json_string_value(json_object_get(status, "exit_reason")));
    vm->ha_state = vo_strdup(json_string_value(json_object_get(doc, "ha_state")));
    vm->ha_landed = json_is_true(json_object_get(doc, "ha_landed"));
    vm->ha_restarts = ha_restarts_of_doc(doc);
    vm->ha_start_failed = json_is_true(json_object_get(doc, VO_HA_START_FAILED_FIELD));
    vm->rbd_restore_undo = json_is_true(json_object_get(doc, VO_VM_RBD_UNDO_FIELD));
    json_decref(doc);
    registry_add_locked(d, vm);
    pthread_mutex_unlock(&d->vms_lock);
    vo_networks_refresh_hosts(d); /* its names and addresses served here */
    return 0;
}

void vo_vm_forget_migrated(VoVm *vm)
{
    VoDaemon *d = vm->d;
    pthread_mutex_lock(&vm->lock);
    vm->migrated_away = true;
    vo_fence_vm_sync(vm);
    if (!vo_vm_wait_exit(vm, STOP_EXIT_WAIT_MS))
        log_warn("vm %s: its source QEMU is still there after the migration",
                 vm->spec->name);
    _cleanup_free_ char *id = vo_strdup(vm->spec->id);
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    registry_remove(d, vm);
    /* Its addresses are served by the destination's dnsmasq now. */
    vo_network_forget_leases(d, spec);
    vo_vm_spec_free(spec);
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, id);
    _cleanup_free_ char *state_dir = vo_vm_state_dir(d, id);
    (void)vo_rm_rf(run_dir);
    (void)vo_rm_rf(state_dir);
    vo_post_copy_kept_unmark(d, id); /* its QEMU ended */
    vo_networks_refresh_hosts(d);
}

VoVm **vo_vms_ref_all(VoDaemon *d, size_t *ret_n)
{
    pthread_mutex_lock(&d->vms_lock);
    size_t n = d->n_vms;
    VoVm **vms = vo_malloc0(sizeof(VoVm *) * (n + 1));
    for (size_t i = 0; i < n; i++)
        vms[i] = vo_vm_ref(d->vms[i]);
    pthread_mutex_unlock(&d->vms_lock);
    *ret_n = n;
    return vms;
}

int vo_vms_reconcile_fenced(VoDaemon *d)
{
    size_t n = 0;
    VoVm **vms = vo_vms_ref_all(d, &n);
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&vms[i]->lock);
        _cleanup_free_ char *id = vo_strdup(vms[i]->spec->id);
        _cleanup_free_ char *name = vo_strdup(vms[i]->spec->name);
        pthread_mutex_unlock(&vms[i]->lock);
        _cleanup_free_ char *key = vo_key_vm(id);
        int64_t rev = 0;
        /* Read under the VM's lock, after a save made outside it
         * (vm-save-later.c): its own saves do not pass this read with an
         * older revision. */
        pthread_mutex_lock(&vms[i]->lock);
        vo_vm_save_settle_first(vms[i]);
        int g = r < 0 ? r : vo_store_get(d->store, key, NULL, &rev);
        if (g >= 0 && !vms[i]->migrated_away)
            /* Still ours; the manager may have written its ha_state while
             * this host was away: the next save compares at that revision. */
            vms[i]->rev = rev;
        /* Only a migrated-away VM's QEMU can be a post-copy source (never
         * continued here), and only the one its mark names. */
        bool away = vms[i]->migrated_away;
        pid_t pid = vms[i]->info.pid;
        pthread_mutex_unlock(&vms[i]->lock);
        _cleanup_free_ char *to = NULL;
        if (g == -ENOENT && away && vo_post_copy_kept(d, id, pid, &to)) {
            /* Moved away by a post-copy migration whose source QEMU is
             * here: paused, its disks no longer written, it holds pages
             * the destination's guest lacks. Ended only once that guest is
             * gone (the VM restarted elsewhere or deleted). */
            if (vo_post_copy_source_needed(d, id, to)) {
                log_warn("vm %s: no longer this host's, but its QEMU here is the source of a "
                         "post-copy to host %s and holds pages the destination lacks: kept",
                         name, to ? to : "(unknown)");
                vo_vm_unref(vms[i]);
                continue;
            }
            log_warn("vm %s: its post-copy source QEMU here is no longer needed (the VM is "
                     "gone from host %s: restarted elsewhere or deleted): ended", name, to);
        }
        if (g == -ENOENT) {
            /* Moved away by HA recovery while this host was fenced. A QEMU
             * still here (one the fence did not list) must not run on: the
             * VM is the other host's now. */
            log_info("vm %s: no longer this host's (restarted elsewhere while this host "
                     "was fenced): forgotten here", name);
            pthread_mutex_lock(&vms[i]->lock);
            if (vms[i]->hv) {
                log_warn("vm %s: its QEMU still ran here: killed", name);
                (void)d->driver->kill(vms[i]->hv);
            }
            pthread_mutex_unlock(&vms[i]->lock);
            vo_vm_forget_migrated(vms[i]);
        } else if (g < 0)
            r = g;
        vo_vm_unref(vms[i]);
    }
    free(vms);
    return r;
}

int vo_vms_forget_moved_off_fenced(VoDaemon *d)
{
    size_t n = 0;
    VoVm **vms = vo_vms_ref_all(d, &n);
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&vms[i]->lock);
        _cleanup_free_ char *key = vo_key_vm(vms[i]->spec->id);
        _cleanup_free_ char *name = vo_strdup(vms[i]->spec->name);
        vo_vm_save_settle_first(vms[i]);
        bool own_path = vms[i]->hv || vms[i]->deleted || vms[i]->migrated_away ||
                        vms[i]->migration_task;
        int g = r < 0 || own_path ? 0 : vo_store_get(d->store, key, NULL, NULL);
        pthread_mutex_unlock(&vms[i]->lock);
        if (g == -ENOENT) {
            log_info("vm %s: no longer this host's (moved away by the manager as this host's "
                     "fenced state ended): forgotten here", name);
            vo_vm_forget_migrated(vms[i]);
        } else if (g < 0)
            r = g;
        vo_vm_unref(vms[i]);
    }
    free(vms);
    return r;
}

/* How long a VM the fence killed may still look running here. */
#define FENCED_EXIT_WAIT_MS 5000

void vo_vms_restart_fenced(VoDaemon *d, char **killed)
{
    for (size_t i = 0; killed && killed[i]; i++) {
        _cleanup_vm_ VoVm *vm = vo_vms_find(d, killed[i]);
        if (!vm)
            continue; /* moved away (restarted elsewhere) */
        pthread_mutex_lock(&vm->lock);
        /* The fence's SIGKILL may not have been seen here yet (the QEMU's
         * exit is handled on the loop thread, and the fenced state can end
         * within a few hundred ms of the fencing): until it is, the VM still
         * looks running and would be left dead (bench/chaos found it). */
        if (!vo_vm_wait_exit(vm, FENCED_EXIT_WAIT_MS))
            log_warn("ha: vm %s was killed by this host's fence but its QEMU's end was not "
                     "seen within %d s", vm->spec->name, FENCED_EXIT_WAIT_MS / 1000);
        bool again = vm->spec->ha && vm->state == VO_VM_CRASHED && !vm->migrated_away;
        _cleanup_free_ char *name = vo_strdup(vm->spec->name), *id = vo_strdup(vm->spec->id);
        pthread_mutex_unlock(&vm->lock);
        if (!again)
            continue;
        if (!vo_ha_retry_count_start(vm)) { /* a VM the fence kept killing */
            vo_ha_retry_give_up(d, id, name, 0, "killed by this host's fence again");
            continue;
        }
        json_t *task = NULL;
        _cleanup_free_ char *error = NULL;
        if (vm_start(d, vm, true, true, &task, &error) < 0) {
            log_warn("ha: vm %s was killed by this host's fence and is still this host's, but "
                     "cannot be started again: %s", name, error);
            /* marked by vm_start; tried again after a backoff */
            vo_ha_retry_failed(d, id, name, error);
        } else {
            const char *task_id = json_string_value(json_object_get(task, "id"));
            log_info("ha: vm %s was killed by this host's fence and is still this host's: "
                     "started again here, under the new lease (task %s)", name,
                     task_id ?: "?");
            vo_ha_retry_follow(d, id, name, task_id); /* a failed start is tried again */
        }
        json_decref(task);
    }
}

/* ---- start-up ------------------------------------------------------------- */

/* Re-attaches to a VM that was active when vireod stopped. */
static void reconcile(VoVm *vm)
{
    VoDaemon *d = vm->d;
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, vm->spec->id);
    VoHvInstance *hv = NULL;
    pthread_mutex_lock(&vm->job);
    /* The driver is given the resolved copy; a VM whose volumes are gone
     * still runs and is re-attached (with the spec as it is). */
    _cleanup_free_ char *resolve_error = NULL;
    VoVmSpec *resolved = NULL;
    if (vo_vm_resolve(d, vm->spec, &resolved, &resolve_error) < 0)
        log_warn("vm %s: %s", vm->spec->name, resolve_error);
    pthread_mutex_lock(&vm->lock);
    int r = d->driver->attach(d->driver, resolved ? resolved : vm->spec, run_dir, &hv);
    vo_vm_spec_free(resolved);
    if (r < 0) {
        free(vm->exit_reason);
        vm->exit_reason = vo_strdup(vm->state == VO_VM_STOPPING
                                        ? "stopped while vireod was not running"
                                        : "QEMU exited while vireod was not running");
        vo_vm_set_state(vm, vm->state == VO_VM_STOPPING ? VO_VM_STOPPED : VO_VM_CRASHED);
        log_warn("vm %s: %s", vm->spec->name, vm->exit_reason);
        vo_snapshot_unmark(d, vm->spec->id); /* its QEMU is gone */
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        return;
    }
    vm->hv = hv;
    /* A snapshot's freeze/pause the dead vireod left (the agent's thaw
     * waits, bounded, without vm->lock). */
    _cleanup_free_ char *name = vo_strdup(vm->spec->name), *id = vo_strdup(vm->spec->id);
    pthread_mutex_unlock(&vm->lock);
    vo_snapshot_mark_recover(vm, hv, id, name);
    pthread_mutex_lock(&vm->lock);
    if (d->driver->info(hv, &vm->info) < 0)
        vm->info.paused = false;
    VoVmState s = vm->info.paused ? VO_VM_PAUSED : VO_VM_RUNNING;
    if (vm->state == VO_VM_STARTING && vm->info.paused) {
        /* vireod died between launch and continue: finish the start. */
        if (d->driver->resume(hv) >= 0)
            s = VO_VM_RUNNING;
    }
    if (vm->state == VO_VM_STOPPING) {
        /* The stop task died with the old vireod and nothing would finish
         * it: show the VM as QEMU has it. A guest that was already powering
         * off exits cleanly and is then stopped; otherwise stop it again. */
        log_warn("vm %s: a stop was cut short by a vireod restart; the VM still runs",
                 vm->spec->name);
        vm->stop_requested = false;
    }
    /* A VM still paused keeps the reason it had, unless QEMU says it is an
     * I/O error (one that came while vireod was not running). */
    const char *reason = s != VO_VM_PAUSED        ? NULL
                         : vm->info.io_error      ? VO_VM_REASON_IO_ERROR
                         : vm->state == VO_VM_PAUSED && vm->state_reason ? vm->state_reason
                                                                          : VO_VM_REASON_UNKNOWN;
    vo_vm_set_state_reason(vm, s, reason);
    log_info("vm %s: re-attached (pid %d, %s)", vm->spec->name, (int)vm->info.pid,
             state_names[vm->state]);
    pthread_mutex_unlock(&vm->lock);
    vo_vm_refresh_live(vm, hv);
    watch_vm(vm);
    pthread_mutex_unlock(&vm->job);
}

typedef struct {
    VoDaemon *d;
    int loaded;
    json_t *relations; /* {vm_id: {key: text}} in the store, taken by the VMs loaded */
    json_t *claims;    /* {name: {"vm", "host"}}: the VM name claims in the store */
} LoadCtx;

static int collect_claim(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    json_t *doc = json_loads(value, 0, NULL);
    if (json_is_object(doc))
        json_object_set_new(userdata, key + strlen(VO_KEY_VM_NAMES_PREFIX), doc);
    else
        json_decref(doc);
    return 0;
}

/* Whether a loaded VM holds its name's claim: yes (it is its own), not yet
 * (none: a store from before claims, or one moved into a cluster: the
 * next write claims it), or another VM's (a conflict: logged, left). */
static void adopt_claim(LoadCtx *ctx, VoVm *vm)
{
    json_t *claim = json_object_get(ctx->claims, vm->spec->name);
    const char *holder = json_string_value(json_object_get(claim, "vm"));
    if (!claim)
        return;
    if (holder && !strcmp(holder, vm->spec->id)) {
        vm->claimed_name = vo_strdup(vm->spec->name);
        return;
    }
    vm->name_conflict = vo_strdup(vm->spec->name);
    log_error("vm %s: another VM (%s, host %s) holds this name in the cluster; rename one "
              "of them (vireo vm edit %s --name NEW)", vm->spec->name, holder ? holder : "?",
              json_string_value(json_object_get(claim, "host")) ?: "?", vm->spec->name);
}

static int load_one(const char *key, const char *value, int64_t rev, void *userdata)
{
    LoadCtx *ctx = userdata;
    json_error_t jerr;
    json_t *doc = json_loads(value, 0, &jerr);
    json_t *spec_json = json_object_get(doc, "spec"), *status = json_object_get(doc, "status");
    VoVmSpec *spec = NULL;
    _cleanup_free_ char *err = NULL;
    VoVmState state;
    /* A definition written when specs held host paths: converted to names.
     * What names nothing is left out of the VM as loaded and reported; the
     * document is then kept as it was. */
    json_t *original = json_deep_copy(spec_json);
    bool upgraded = false;
    _cleanup_strv_ char **problems = NULL;
    if (!doc || vo_vm_spec_upgrade(ctx->d, spec_json, &upgraded, &problems) < 0 ||
        vo_vm_spec_from_json(spec_json, &spec, &err) < 0 ||
        state_from_string(json_string_value(json_object_get(status, "state")), &state) < 0) {
        log_error("store: skipping unreadable %s: %s", key, err ? err : "bad document");
        json_decref(original);
        json_decref(doc);
        return 0;
    }
    VoVm *vm = vm_new(ctx->d);
    vm->spec = spec;
    vm->rev = rev;
    adopt_claim(ctx, vm);
    json_t *have = json_object_get(ctx->relations, spec->id);
    /* Its disk figure as last written; -1 (none): measured before the
     * relations are written again (rebuild_relations). */
    vm->disk_bytes = have ? vo_project_usage_disk_in(have) : -1;
    if (have) { /* what is in the store: the next save writes only the difference */
        json_decref(vm->uses);
        vm->uses = json_incref(have);
        json_object_del(ctx->relations, spec->id);
    }
    if (problems) {
        _cleanup_free_ char *joined = vo_strdup(problems[0]);
        for (char **p = problems + 1; *p; p++) {
            char *next = vo_asprintf("%s; %s", joined, *p);
            free(joined);
            joined = next;
        }
        vm->problem = vo_asprintf("its definition names host paths that cannot be "
                                  "converted to volume or image names: %s; it can be stopped "
                                  "and deleted (vireo vm delete %s --keep-disks keeps its "
                                  "volumes)", joined, spec->name);
        vm->stored_spec = TAKE_PTR(original);
        log_error("vm %s: %s (the VM is kept as it was; it cannot start until this is "
                  "fixed)", spec->name, vm->problem);
    } else if (upgraded)
        log_info("vm %s: definition converted from host paths to volume and image names",
                 spec->name);
    json_decref(original);
    vm->state = state;
    vm->created_at = json_integer_value(json_object_get(status, "created_at"));
    vm->started_at = json_integer_value(json_object_get(status, "started_at"));
    const char *reason = json_string_value(json_object_get(status, "exit_reason"));
    vm->exit_reason = vo_strdup(reason);
    vm->ha_state = vo_strdup(json_string_value(json_object_get(doc, "ha_state")));
    vm->ha_restarts = ha_restarts_of_doc(doc);
    vm->ha_start_failed = json_is_true(json_object_get(doc, VO_HA_START_FAILED_FIELD));
    vm->rbd_restore_undo = json_is_true(json_object_get(doc, VO_VM_RBD_UNDO_FIELD));
    if (state == VO_VM_PAUSED)
        vm->state_reason =
            vo_strdup(json_string_value(json_object_get(status, "state_reason")));
    vm->resets = (unsigned)json_integer_value(json_object_get(status, "resets"));
    vm->last_reset_at = json_integer_value(json_object_get(status, "last_reset_at"));
    json_decref(doc);
    if (upgraded && !vm->problem) {
        pthread_mutex_lock(&vm->lock);
        (void)vo_vm_save(vm); /* the stored document names things from now on */
        pthread_mutex_unlock(&vm->lock);
    }
    registry_add(ctx->d, vm);
    ctx->loaded++;
    if (vo_vm_state_active(state))
        reconcile(vm);
    return 0;
}

static void autostart_once(VoDaemon *d)
{
    /* The run dir is emptied at boot: the marker makes autostart once per boot. */
    _cleanup_free_ char *marker = vo_asprintf("%s/autostart.done", d->run_dir);
    if (access(marker, F_OK) == 0)
        return;
    (void)vo_write_file_atomic(marker, "", 0);
    size_t n = 0;
    VoVm **vms = vo_vms_ref_all(d, &n);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *error = NULL;
        json_t *task = NULL;
        pthread_mutex_lock(&vms[i]->lock);
        bool autostart = vms[i]->spec->autostart;
        pthread_mutex_unlock(&vms[i]->lock);
        if (autostart && vm_start(d, vms[i], true, false, &task, &error) >= 0) {
            _cleanup_free_ char *name = vo_vm_name(vms[i]);
            log_info("vm %s: autostart", name);
            json_decref(task);
        }
        vo_vm_unref(vms[i]);
    }
    free(vms);
}

/* The relation documents as the VMs' definitions imply them: a state dir
 * from before relations has none, and a create cut short by a crash left
 * those of a VM that was never saved. */
static void rebuild_relations(VoDaemon *d, json_t *orphans)
{
    const char *id;
    json_t *have;
    json_object_foreach(orphans, id, have) {
        _cleanup_free_ char *key = vo_key_vm(id);
        json_t *none = json_object();
        /* Compared on the VM's document being absent: they are no VM's. */
        VoRelationsTxn txn = { .vm_key = key, .vm_rev = VO_REV_NEW, .have = have, .want = none };
        int r = vo_relations_commit(d->store, &txn, NULL);
        if (r < 0 && r != -EEXIST)
            log_warn("store: cannot remove the relations of VM %s: %s", id, strerror(-r));
        json_decref(none);
    }
    size_t n = 0;
    VoVm **vms = vo_vms_ref_all(d, &n);
    for (size_t i = 0; i < n; i++) {
        int64_t disk_bytes = measure_disks(vms[i]);
        pthread_mutex_lock(&vms[i]->lock);
        if (vms[i]->disk_bytes < 0)
            vms[i]->disk_bytes = disk_bytes;
        int r = write_vm(vms[i], NULL, false);
        if (r < 0)
            log_warn("vm %s: cannot record what it uses: %s", vms[i]->spec->name, strerror(-r));
        pthread_mutex_unlock(&vms[i]->lock);
        vo_vm_unref(vms[i]);
    }
    free(vms);
}

/* Claims of this host's VMs that have no document: a create cut short by a
 * crash. Deleted compared on the VM's document being absent. */
static void drop_orphan_claims(VoDaemon *d, json_t *claims)
{
    const char *name;
    json_t *claim;
    json_object_foreach(claims, name, claim) {
        const char *host = json_string_value(json_object_get(claim, "host"));
        const char *id = json_string_value(json_object_get(claim, "vm"));
        _cleanup_vm_ VoVm *vm = id ? vo_vms_find(d, id) : NULL;
        if (!host || strcmp(host, d->host_id) || !id || vm)
            continue;
        _cleanup_free_ char *vm_key = vo_key_vm(id), *key = vo_key_vm_name(name);
        VoStoreCompare cmp = { .key = vm_key, .expected_rev = VO_REV_NEW };
        VoStoreOp op = { .kind = VO_STORE_DELETE, .key = key };
        int r = vo_store_txn(d->store, &cmp, 1, &op, 1, NULL, NULL);
        if (r < 0 && r != -EEXIST)
            log_warn("store: cannot free the name of VM %s (%s): %s", name, id, strerror(-r));
    }
}

static int collect_member(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    json_t *doc = json_loads(value, 0, NULL);
    if (json_is_object(doc))
        json_object_set_new(userdata, key, doc);
    else
        json_decref(doc);
    return 0;
}

/* Group member documents of this host's VMs that have no document: a
 * create cut short by a crash, a delete whose transaction did not say.
 * Deleted compared on the VM's document being absent (as the claims). */
static void drop_orphan_members(VoDaemon *d)
{
    json_t *members = json_object();
    int r = vo_store_list(d->store, VO_GROUP_MEMBERS_PREFIX, collect_member, members);
    if (r < 0)
        log_warn("store: cannot read the group members: %s", strerror(-r));
    const char *key;
    json_t *m;
    json_object_foreach(members, key, m) {
        const char *host = json_string_value(json_object_get(m, "host"));
        const char *id = json_string_value(json_object_get(m, "vm"));
        _cleanup_vm_ VoVm *vm = id ? vo_vms_find(d, id) : NULL;
        if (!host || strcmp(host, d->host_id) || !id || vm)
            continue;
        _cleanup_free_ char *vm_key = vo_key_vm(id);
        VoStoreCompare cmp = { .key = vm_key, .expected_rev = VO_REV_NEW };
        VoStoreOp op = { .kind = VO_STORE_DELETE, .key = key };
        r = vo_store_txn(d->store, &cmp, 1, &op, 1, NULL, NULL);
        if (r < 0 && r != -EEXIST)
            log_warn("store: cannot remove the group membership of VM %s: %s", id,
                     strerror(-r));
    }
    json_decref(members);
}

int vo_vms_load(VoDaemon *d)
{
    LoadCtx ctx = { .d = d };
    int r = vo_relations_by_vm(d->store, &ctx.relations);
    if (r < 0)
        return r;
    /* Its VMs' usage documents in their projects are theirs too. */
    if ((r = vo_project_usage_of_host(d->store, d->host_id, ctx.relations)) < 0) {
        json_decref(ctx.relations);
        return r;
    }
    ctx.claims = json_object();
    r = vo_store_list(d->store, VO_KEY_VM_NAMES_PREFIX, collect_claim, ctx.claims);
    if (r >= 0)
        r = vo_store_list(d->store, "vms/", load_one, &ctx);
    if (r < 0) {
        json_decref(ctx.claims);
        json_decref(ctx.relations);
        return r;
    }
    log_info("loaded %d VMs", ctx.loaded);
    drop_orphan_claims(d, ctx.claims);
    json_decref(ctx.claims);
    drop_orphan_members(d);
    /* Before the rewrite, which writes only the index's own of a VM. */
    vo_vms_mac_index_fill(d, ctx.relations);
    rebuild_relations(d, ctx.relations); /* claims the names not claimed yet, too */
    json_decref(ctx.relations);
    vo_networks_refresh_hosts(d); /* the NICs as recorded now */
    /* The volume service sits below the VMs: it resizes a volume a running
     * VM holds through this hook rather than by calling the VM code. */
    vo_storage_set_online_resize(vo_vm_resize_volume_online);
    vo_storage_set_disk_grow(vo_vm_volume_grow);
    autostart_once(d);
    return 0;
}

/* What vireod's end gives up when a save still runs: each VM whose save
 * thread has not ended, and the state it was to write. */
static void log_unsaved(VoDaemon *d, int waited_ms)
{
    pthread_mutex_lock(&d->vms_lock);
    for (size_t i = 0; i < d->n_vms; i++) {
        VoVm *vm = d->vms[i];
        /* A save thread lets vm->lock go while it writes: where it is
         * held longer, not waited for (nor is its name read). */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (pthread_mutex_timedlock(&vm->lock, &until) != 0) {
            log_warn("a VM busy at vireod's end (its lock held) may have a save not done");
            continue;
        }
        if (vm->saver_running)
            log_warn("vm %s: its state '%s' was not saved (the store did not finish its write "
                     "within %d s); the next start takes the state from its QEMU",
                     vm->spec->name, state_names[vm->state], waited_ms / 1000);
        pthread_mutex_unlock(&vm->lock);
    }
    pthread_mutex_unlock(&d->vms_lock);
}

int vo_vms_release_all(VoDaemon *d)
{
    /* Tasks are done by now, so the release threads get their job locks at
     * once; bounded all the same. */
    vo_threads_wait(&releases, 5000);
    /* The saves the loop handed off (vm-save-later.c): waited for while
     * they go on, however slow the store; given up once none has moved for
     * longer than the store's client itself waits (twice its wait for one
     * request, and 1 s: a write may make more than one), when it is stuck.
     * One given up leaves the store at the state before it, which the next
     * start reconciles with the QEMU it finds, as after a crash. */
    int stuck_ms = 2 * vo_store_request_timeout_ms(d->store) + 1000;
    int unsaved = vo_vms_saves_wait(stuck_ms);
    if (unsaved > 0) {
        log_warn("%d VM state saves not done: the store did not finish a write for %d s",
                 unsaved, stuck_ms / 1000);
        log_unsaved(d, stuck_ms);
        /* Their threads still use the VMs and the store: kept. */
        return unsaved;
    }
    pthread_mutex_lock(&d->vms_lock);
    for (size_t i = 0; i < d->n_vms; i++)
        vo_vm_unref(d->vms[i]);
    free(d->vms);
    d->vms = NULL;
    d->n_vms = 0;
    pthread_mutex_unlock(&d->vms_lock);
    return 0;
}
