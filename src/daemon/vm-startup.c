/* vm-startup.c: this host's VMs at vireod's start (part of the VM service,
 * vms.c): each VM document loaded (its spec upgraded, its name's claim
 * adopted), re-attached to a QEMU still running or reconciled with its
 * absence, relation documents rebuilt, orphan claims and group members of
 * creates cut short dropped, and autostart. */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/vm-internal.h"
#include "daemon/vm-rbd-restore-undo.h"

#include <string.h>
#include <unistd.h>

#include "cluster/ha-plan.h"
#include "daemon/groups.h"
#include "daemon/networks.h"
#include "daemon/projects.h"
#include "daemon/vm-pause-mark.h"
#include "daemon/storage.h"
#include "state/keys.h"
#include "state/relations.h"
#include "state/vm-claim-mark.h"

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
             vo_vm_state_names[vm->state]);
    pthread_mutex_unlock(&vm->lock);
    vo_vm_refresh_live(vm, hv);
    vo_vm_watch(vm);
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
        vo_vm_state_from_string(json_string_value(json_object_get(status, "state")), &state) < 0) {
        log_error("store: skipping unreadable %s: %s", key, err ? err : "bad document");
        json_decref(original);
        json_decref(doc);
        return 0;
    }
    VoVm *vm = vo_vm_new(ctx->d);
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
    vm->san_state = vo_strdup(json_string_value(json_object_get(doc, "san_state")));
    vm->ha_restarts = vo_vm_ha_restarts_of_doc(doc);
    vm->ha_start_failed = json_is_true(json_object_get(doc, VO_HA_START_FAILED_FIELD));
    vm->rbd_restore_undo = json_is_true(json_object_get(doc, VO_VM_RBD_UNDO_FIELD));
    vm->claimed_in = vo_strdup(json_string_value(json_object_get(doc, VO_VM_CLAIMED_IN_FIELD)));
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
    vo_vm_registry_add(ctx->d, vm);
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
        if (autostart && vo_vm_start_request(d, vms[i], true, false, &task, &error) >= 0) {
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
        int64_t disk_bytes = vo_vm_measure_disks(vms[i]);
        pthread_mutex_lock(&vms[i]->lock);
        if (vms[i]->disk_bytes < 0)
            vms[i]->disk_bytes = disk_bytes;
        int r = vo_vm_write(vms[i], NULL, false);
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
