/* vm-delete.c: a VM's delete (part of the VM service, vms.c): one delete at
 * a time, the task that ends the VM, removes its documents in one
 * transaction and then its disks (unless kept) and directories. */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/vm-internal.h"

#include <string.h>

#include "daemon/drs-settings.h"
#include "daemon/networks.h"
#include "daemon/storage.h"
#include "state/keys.h"
#include "state/relations.h"

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

/* A volume of the VM its delete keeps (what: which), error why: logged, and
 * added to the task's result kept ({"kept_volumes": [{"volume", "reason"}],
 * "warnings": [...]}: the CLI shows the task's warnings). */
static void note_kept(json_t *kept, const char *vm, const char *what, const char *volume,
                      const char *error)
{
    if (!error)
        error = "unknown";
    log_warn("vm %s: kept %s %s: %s", vm, what, volume, error);
    json_array_append_new(json_object_get(kept, "kept_volumes"),
                          json_pack("{s:s, s:s}", "volume", volume, "reason", error));
    _cleanup_free_ char *warning = vo_asprintf("kept %s %s: %s", what, volume, error);
    json_array_append_new(json_object_get(kept, "warnings"), json_string(warning));
}

static int task_delete(VoTask *t, void *userdata)
{
    VoVmOpArgs *a = userdata;
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
        vo_vm_registry_remove_locked(d, vm);
    pthread_mutex_unlock(&d->vms_lock);
    if (!deleted) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        end_delete(vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, r, "cannot delete VM '%s': %s", name, strerror(-r));
    }
    if (vo_vm_gone_hook)
        vo_vm_gone_hook(d);
    _cleanup_free_ char *state_dir = vo_vm_state_dir(d, spec->id);
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, spec->id);
    (void)vo_rm_rf(state_dir);
    (void)vo_rm_rf(run_dir);
    pthread_mutex_unlock(&vm->job);
    /* A volume that cannot go (one backing a linked clone, say) is kept. */
    json_t *kept = json_pack("{s:[], s:[]}", "kept_volumes", "warnings");
    for (size_t i = 0; !a->keep_disks && i < spec->n_disks; i++) {
        _cleanup_free_ char *error = NULL;
        if (spec->disks[i].volume && spec->disks[i].owned &&
            vo_volume_remove_now(d, spec->disks[i].volume, &error) < 0)
            note_kept(kept, spec->name, "volume", spec->disks[i].volume, error);
    }
    /* The UEFI NVRAM is the VM's own: it goes with it (kept with its disks). */
    _cleanup_free_ char *nvram_error = NULL;
    if (!a->keep_disks && spec->nvram && vo_volume_remove_now(d, spec->nvram, &nvram_error) < 0)
        note_kept(kept, spec->name, "its NVRAM volume", spec->nvram, nvram_error);
    if (json_array_size(json_object_get(kept, "kept_volumes")))
        vo_task_set_result(t, json_incref(kept));
    json_decref(kept);
    log_info("vm %s: deleted%s", spec->name, a->keep_disks ? " (disks kept)" : "");
    vo_networks_refresh_hosts(d);
    vo_vm_spec_free(spec);
    return 0;
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
        /* Refused for what it is doing (migrating, still being created,
         * being deleted): that refusal, as it is; refused only for being
         * active (a precheck allowing every state passes): the way out. */
        _cleanup_free_ char *not_for_state = NULL;
        if (r < 0 && vo_vm_precheck(vm, ~0u, "delete", &not_for_state) >= 0) {
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
    VoVmOpArgs *a = vo_vm_op_args(vm);
    a->force = force;
    a->keep_disks = keep_disks;
    r = vo_vm_submit(d, vm, "delete", task_delete, a, vo_vm_op_args_free, ret_task, ret_error);
    if (r < 0)
        end_delete(vm);
    return r;
}
