/* vm-adopt.c: the registry's part of a VM moving between hosts (part of the
 * VM service, vms.c; migrate.c and move.c drive the moves): the destination
 * registers a VM migrated in (running) or moved in (stopped); the source
 * forgets a VM migrated away. */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/vm-internal.h"
#include "daemon/vm-rbd-restore-undo.h"

#include <string.h>

#include "cluster/ha-plan.h"
#include "daemon/fence.h"
#include "daemon/networks.h"
#include "daemon/post-copy-kept.h"
#include "daemon/projects.h"
#include "state/keys.h"
#include "state/relations.h"
#include "state/vm-claim-mark.h"

/* The restart limit's count of the document the ownership transaction
 * wrote at rev (the source's, "ha_restarts"), or NULL: a live migration
 * keeps it, or the VM's first save here would drop it. known: that
 * document's text when the caller has it (else it is read). */
static json_t *ha_restarts_stored(VoDaemon *d, const char *vm_id, int64_t rev, const char *known)
{
    _cleanup_free_ char *key = vo_key_vm(vm_id), *text = NULL;
    int64_t got = 0;
    if (!known && (vo_store_get(d->store, key, &text, &got) < 0 || got != rev))
        return NULL;
    json_t *doc = json_loads(known ? known : text, 0, NULL);
    json_t *r = vo_vm_ha_restarts_of_doc(doc);
    json_decref(doc);
    return r;
}

int vo_vm_adopt_incoming(VoDaemon *d, VoVmSpec *spec, json_t *status, int64_t rev,
                         const char *claimed_in, const char *doc, VoHvInstance *hv,
                         VoVm **ret_vm, char **ret_error)
{
    json_t *ha_restarts = ha_restarts_stored(d, spec->id, rev, doc);
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
    VoVm *vm = vo_vm_new(d);
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
    vm->claimed_in = vo_strdup(claimed_in);
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
    vo_vm_registry_add_locked(d, vm);
    pthread_mutex_lock(&vm->job);
    pthread_mutex_unlock(&d->vms_lock);
    vo_vm_watch(vm);
    pthread_mutex_unlock(&vm->job);
    *ret_vm = vo_vm_ref(vm);
    return 0;
}

/* vo_vm_adopt_moved; with crashed (its exit reason), a document of any
 * state, the VM registered and saved crashed (vo_vm_adopt_crashed). */
static int adopt_stored(VoDaemon *d, const char *vm_id, const char *crashed, char **ret_error)
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
        vo_vm_state_from_string(json_string_value(json_object_get(status, "state")), &state) < 0 ||
        (vo_vm_state_active(state) && !crashed)) {
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
    VoVm *vm = vo_vm_new(d);
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
    vm->ha_restarts = vo_vm_ha_restarts_of_doc(doc);
    vm->ha_start_failed = json_is_true(json_object_get(doc, VO_HA_START_FAILED_FIELD));
    vm->rbd_restore_undo = json_is_true(json_object_get(doc, VO_VM_RBD_UNDO_FIELD));
    vm->claimed_in = vo_strdup(json_string_value(json_object_get(doc, VO_VM_CLAIMED_IN_FIELD)));
    json_decref(doc);
    vo_vm_registry_add_locked(d, vm);
    _cleanup_vm_ VoVm *held = crashed ? vo_vm_ref(vm) : NULL;
    pthread_mutex_unlock(&d->vms_lock);
    if (held) { /* saved: this host owns its document */
        pthread_mutex_lock(&held->lock);
        free(held->exit_reason);
        held->exit_reason = vo_strdup(crashed);
        vo_vm_set_state(held, VO_VM_CRASHED);
        pthread_mutex_unlock(&held->lock);
    }
    vo_networks_refresh_hosts(d); /* its names and addresses served here */
    return 0;
}

int vo_vm_adopt_moved(VoDaemon *d, const char *vm_id, char **ret_error)
{
    return adopt_stored(d, vm_id, NULL, ret_error);
}

int vo_vm_adopt_crashed(VoDaemon *d, const char *vm_id, const char *why, char **ret_error)
{
    return adopt_stored(d, vm_id, why, ret_error);
}

void vo_vm_forget_migrated(VoVm *vm)
{
    VoDaemon *d = vm->d;
    pthread_mutex_lock(&vm->lock);
    vm->migrated_away = true;
    vo_fence_vm_sync(vm);
    if (!vo_vm_wait_exit(vm, VO_VM_STOP_EXIT_WAIT_MS))
        log_warn("vm %s: its source QEMU is still there after the migration",
                 vm->spec->name);
    _cleanup_free_ char *id = vo_strdup(vm->spec->id);
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    vo_vm_registry_remove(d, vm);
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
