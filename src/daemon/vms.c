/* vms.c: the VM service's core (see vms.h): VM states, the VM object and its
 * references, the registry of this host's VMs and its lookups, its
 * operations (tasks and their entry points) not in a file of their own yet,
 * and the registry's release at vireod's end. Its other parts, each with one
 * job: vm-save.c (the VM's documents), vm-json.c (the API's views),
 * vm-watch.c (exit and console on the loop), vm-start.c, vm-stop.c,
 * vm-delete.c, vm-create.c, vm-edit.c; they share vms-parts.h.
 * Locking: vm->job serialises operations on one VM (held by the task for the
 * whole operation; the loop thread at most tries it, see vm-events.c; the
 * samplers and the API's quick operations hold it briefly, vm-job.h);
 * vm->lock guards the fields and is held only briefly; the loop thread owns
 * exit and event watching and the console.
 * Every state change is written to the store before it is acted upon. */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/vm-internal.h"
#include "daemon/vm-rbd-restore-undo.h"
#include "daemon/ha-retry.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "cluster/ha-plan.h"
#include "daemon/fence.h"
#include "daemon/groups.h"
#include "daemon/networks.h"
#include "daemon/post-copy-kept.h"
#include "daemon/projects.h"
#include "daemon/vm-pause-mark.h"
#include "daemon/storage.h"
#include "state/keys.h"
#include "state/relations.h"
#include "util/threads.h"
#include "util/util.h"

const char *const state_names[] = { "defined", "starting", "running", "paused",
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
char *vm_id(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    char *id = vo_strdup(vm->spec->id);
    pthread_mutex_unlock(&vm->lock);
    return id;
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
void (*vm_gone_hook)(VoDaemon *d);

void vo_vms_set_gone_hook(void (*fn)(VoDaemon *d))
{
    vm_gone_hook = fn;
}

/* Caller holds d->vms_lock; then calls vm_gone_hook without it. */
void registry_remove_locked(VoDaemon *d, VoVm *vm)
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

bool vo_vm_is_provisioning(VoVm *vm)
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

/* ---- operations ---------------------------------------------------------- */

void op_args_free(void *p)
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

OpArgs *op_args(VoVm *vm)
{
    OpArgs *a = vo_malloc0(sizeof(*a));
    a->vm = vo_vm_ref(vm);
    return a;
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

/* ---- public entry points -------------------------------------------------- */

int vm_submit(VoDaemon *d, VoVm *vm, const char *kind, const char *also, bool unbounded,
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
