/* vms.c: the VM service's core (see vms.h): VM states, the VM object and its
 * references, the registry of this host's VMs and its lookups, the queueing
 * of a VM's tasks and their state prechecks, a task's end reading the run
 * state, and the registry's release at vireod's end. Its other parts, each
 * with one job: vm-save.c (the VM's documents), vm-json.c (the API's views),
 * vm-watch.c (exit and console on the loop), vm-start.c, vm-stop.c,
 * vm-delete.c, vm-create.c, vm-edit.c, vm-adopt.c (migration's and move's
 * registry part), vm-fenced.c (after the fence), vm-startup.c (vireod's
 * start); they share vms-parts.h.
 * Locking: vm->job serialises operations on one VM (held by the task for the
 * whole operation; the loop thread at most tries it, see vm-events.c; the
 * samplers and the API's quick operations hold it briefly, vm-job.h);
 * vm->lock guards the fields and is held only briefly; the loop thread owns
 * exit and event watching and the console.
 * Every state change is written to the store before it is acted upon. */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/vm-internal.h"

#include <stdatomic.h>
#include <string.h>

#include "state/keys.h"
#include "util/threads.h"
#include "util/util.h"

const char *const vo_vm_state_names[] = { "defined", "starting", "running", "paused",
                                           "stopping", "stopped", "crashed" };
_Static_assert(ELEMENTSOF(vo_vm_state_names) == _VO_VM_STATE_MAX, "vo_vm_state_names");

const char *vo_vm_state_to_string(VoVmState s)
{
    return s < _VO_VM_STATE_MAX ? vo_vm_state_names[s] : "unknown";
}

int vo_vm_state_from_string(const char *s, VoVmState *ret)
{
    for (size_t i = 0; s && i < ELEMENTSOF(vo_vm_state_names); i++)
        if (!strcmp(s, vo_vm_state_names[i])) {
            *ret = (VoVmState)i;
            return 0;
        }
    return -EINVAL;
}

bool vo_vm_state_active(VoVmState s)
{
    return s == VO_VM_STARTING || s == VO_VM_RUNNING || s == VO_VM_PAUSED || s == VO_VM_STOPPING;
}

VoVm *vo_vm_new(VoDaemon *d)
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
VoVm *vo_vm_new_defined(VoDaemon *d, VoVmSpec *spec)
{
    VoVm *vm = vo_vm_new(d);
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
    free(vm->claimed_in);
    free(vm->san_state);
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
char *vo_vm_id_dup(VoVm *vm)
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
void vo_vm_registry_add_locked(VoDaemon *d, VoVm *vm)
{
    d->vms = realloc(d->vms, sizeof(VoVm *) * (d->n_vms + 1));
    if (!d->vms)
        abort();
    d->vms[d->n_vms++] = vm;
}

void vo_vm_registry_add(VoDaemon *d, VoVm *vm)
{
    pthread_mutex_lock(&d->vms_lock);
    vo_vm_registry_add_locked(d, vm);
    pthread_mutex_unlock(&d->vms_lock);
}

/* Told when a VM left the registry (vo_vms_set_gone_hook). */
void (*vo_vm_gone_hook)(VoDaemon *d);

void vo_vms_set_gone_hook(void (*fn)(VoDaemon *d))
{
    vo_vm_gone_hook = fn;
}

/* Caller holds d->vms_lock; then calls vo_vm_gone_hook without it. */
void vo_vm_registry_remove_locked(VoDaemon *d, VoVm *vm)
{
    for (size_t i = 0; i < d->n_vms; i++)
        if (d->vms[i] == vm) {
            d->vms[i] = d->vms[--d->n_vms];
            vo_vm_unref(vm);
            break;
        }
}

void vo_vm_registry_remove(VoDaemon *d, VoVm *vm)
{
    pthread_mutex_lock(&d->vms_lock);
    vo_vm_registry_remove_locked(d, vm);
    pthread_mutex_unlock(&d->vms_lock);
    if (vo_vm_gone_hook)
        vo_vm_gone_hook(d);
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

void vo_vm_op_args_free(void *p)
{
    VoVmOpArgs *a = p;
    vo_vm_unref(a->vm);
    free(a->base_disk);
    free(a->base_format);
    free(a->base_image);
    free(a->pool);
    free(a->disk_volume);
    free(a);
}

VoVmOpArgs *vo_vm_op_args(VoVm *vm)
{
    VoVmOpArgs *a = vo_malloc0(sizeof(*a));
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

/* vo_vm_submit_op, cancellable when undo is given (it undoes what the
 * submitter prepared when the task is cancelled before it runs). */
static int submit(VoDaemon *d, VoVm *vm, const char *kind, const char *also, bool unbounded,
                  VoTaskFn fn, void *args, VoTaskFreeFn free_args, VoTaskFreeFn undo,
                  json_t **ret_task, char **ret_error)
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
    /* Of a VM's operations a backup, a migration, a move and a clone can be
     * cancelled (jobs/tasks.h). */
    VoTaskDesc desc = { .kind = kind, .target = name, .keys = { key, also },
                        .unbounded = unbounded, .target_id = id, .undo = undo,
                        .cancellable = undo || !strcmp(kind, "backup-create") ||
                                       !strcmp(kind, "migrate") || !strcmp(kind, "move") };
    int r = vo_tasks_submit(d->tasks, &desc, fn, args, free_args, ret_task, ret_error);
    if (r != 0 && free_args)
        free_args(args);
    return r < 0 ? r : 0;
}

int vo_vm_submit_op(VoDaemon *d, VoVm *vm, const char *kind, const char *also, bool unbounded,
              VoTaskFn fn, void *args, VoTaskFreeFn free_args, json_t **ret_task,
              char **ret_error)
{
    return submit(d, vm, kind, also, unbounded, fn, args, free_args, NULL, ret_task, ret_error);
}

int vo_vm_submit_cancellable(VoDaemon *d, VoVm *vm, const char *kind, const char *also,
                             VoTaskFn fn, void *args, VoTaskFreeFn free_args, VoTaskFreeFn undo,
                             json_t **ret_task, char **ret_error)
{
    return submit(d, vm, kind, also, false, fn, args, free_args, undo, ret_task, ret_error);
}

int vo_vm_submit(VoDaemon *d, VoVm *vm, const char *kind, VoTaskFn fn, void *args,
                 VoTaskFreeFn free_args, json_t **ret_task, char **ret_error)
{
    return vo_vm_submit_op(d, vm, kind, NULL, false, fn, args, free_args, ret_task, ret_error);
}

int vo_vm_submit_keyed(VoDaemon *d, VoVm *vm, const char *kind, const char *also,
                       VoTaskFn fn, void *args, VoTaskFreeFn free_args, json_t **ret_task,
                       char **ret_error)
{
    return vo_vm_submit_op(d, vm, kind, also, false, fn, args, free_args, ret_task, ret_error);
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
        *ret_error = vo_asprintf("cannot %s VM '%s': it is %s", verb, name, vo_vm_state_names[s]);
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
                     vm->spec->name, vo_vm_state_names[vm->state], waited_ms / 1000);
        pthread_mutex_unlock(&vm->lock);
    }
    pthread_mutex_unlock(&d->vms_lock);
}

int vo_vms_release_all(VoDaemon *d)
{
    /* Tasks are done by now, so the release threads get their job locks at
     * once; bounded all the same. */
    vo_threads_wait(&vo_vm_releases, 5000);
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
