/* vm-save.c: the VM's documents in the store (part of the VM service,
 * vms.c): the VM's document and its relation documents written in one
 * transaction compared on the revision last read (write_vm_doc), the name's
 * claim, the project usage and its quota check, saves made outside vm->lock
 * (vm-save-later.c's thread) taken up, and the state changes saved. */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/vm-internal.h"
#include "daemon/vm-rbd-restore-undo.h"
#include "daemon/vm-start-unknown.h"

#include <string.h>

#include "cluster/ha-plan.h"
#include "conf/names.h"
#include "daemon/cluster-view.h"
#include "daemon/fence.h"
#include "daemon/groups.h"
#include "daemon/object-projects.h"
#include "daemon/projects.h"
#include "state/keys.h"
#include "state/relations.h"
#include "state/vm-claim-mark.h"
#include "util/test-hold.h"

/* Caller holds vm->lock. */
static json_t *vm_document(VoVm *vm)
{
    json_t *status = json_pack("{s:s, s:I}", "state", vo_vm_state_names[vm->state], "created_at",
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
    if (vm->san_state)
        json_object_set_new(doc, "san_state", json_string(vm->san_state));
    if (json_array_size(vm->ha_restarts))
        json_object_set(doc, VO_HA_RESTARTS_FIELD, vm->ha_restarts);
    if (vm->ha_start_failed)
        json_object_set_new(doc, VO_HA_START_FAILED_FIELD, json_true());
    if (vm->rbd_restore_undo)
        json_object_set_new(doc, VO_VM_RBD_UNDO_FIELD, json_true());
    if (vm->claimed_in)
        json_object_set_new(doc, VO_VM_CLAIMED_IN_FIELD, json_string(vm->claimed_in));
    return doc;
}

/* The document's "ha_restarts" (a new reference), or NULL. */
json_t *vo_vm_ha_restarts_of_doc(json_t *doc)
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
 * what it made: borrowed from the VM under vm->lock (vo_vm_write), or copies
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
int vo_vm_write(VoVm *vm, const char *text, bool forget)
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
int64_t vo_vm_measure_disks(VoVm *vm)
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
    int r = vo_vm_write(vm, NULL, false);
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
    int r = vo_vm_write(vm, text, false);
    if (r == -ESTALE && vo_vm_unsaved_start_landed(vm)) /* its own lost "starting" */
        r = vo_vm_write(vm, text, false);
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

/* Caller holds vm->lock. later: the save is handed to a thread. */
static int set_state(VoVm *vm, VoVmState state, const char *reason, bool later)
{
    if (state != VO_VM_PAUSED)
        reason = NULL;
    if (vm->state != state)
        log_info("vm %s: %s -> %s%s%s", vm->spec->name, vo_vm_state_names[vm->state],
                 vo_vm_state_names[state], reason ? ": " : "", reason ? reason : "");
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
