/* maintenance.c: the evacuation task of a host (maintenance.h): every VM
 * of this host moved away with the existing moves (a live migration task
 * per running VM, local disks mirrored along; the ownership transaction
 * for a stopped VM whose disks are shared; a cold move task for a stopped
 * VM with local disks) and a report per VM. */
#include "daemon/maintenance.h"

#include <poll.h>
#include <string.h>

#include "cluster/peer-client.h"
#include "daemon/cluster-view.h"
#include "daemon/hosts.h"
#include "daemon/migrate-safe.h"
#include "daemon/migrate-target.h"
#include "daemon/migrate.h"
#include "daemon/move.h"
#include "daemon/vm-internal.h"
#include "state/vm-move.h"
#include "util/util.h"

#define POLL_MS 250
#define PEER_TIMEOUT_MS 30000
#define ADOPT_PATH "/v1/migrations/moved"

typedef struct {
    VoDaemon *d;
    bool enter;
    char *pool; /* the targets' pool for local disks; NULL: each target's default */
    bool verify_memory; /* each live migration compares guest RAM (VoMigrateArgs) */
} Evacuation;

static void evacuation_free(void *p)
{
    Evacuation *e = p;
    free(e->pool);
    free(e);
}

/* One VM's line of the report. */
typedef struct {
    VoVm *vm;
    char *name;
    char *task_id;  /* its migration or cold move task while it runs */
    bool cold;      /* stopped, with local disks: a cold move (move.h) */
    json_t *report; /* {"vm","state","result":"moved"|"not moved", "host"?, "reason"?,
                     *  "task"?, "memory_verified"?} */
} Item;

static void report_moved(Item *it, const char *host)
{
    json_object_set_new(it->report, "result", json_string("moved"));
    json_object_set_new(it->report, "host", json_string(host));
}

static void report_stays(Item *it, const char *reason)
{
    json_object_set_new(it->report, "result", json_string("not moved"));
    json_object_set_new(it->report, "reason", json_string(reason));
}

/* The target for the VM, from the manager: its host id and name, or -errno
 * with the reason (every host's, when none fits). */
static int pick(VoDaemon *d, Item *it, VoClusterHost *ret, char **ret_error)
{
    _cleanup_free_ char *vm_id = vo_vm_id(it->vm), *to = NULL;
    int r = vo_migrate_pick_target(d, vm_id, d->host_id, NULL, &to, ret_error);
    if (r < 0)
        return r;
    r = vo_cluster_host_get(d, to, ret);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot look target host %s up: %s", to,
                            strerror(-r));
    if (!ret->online || !ret->url) {
        vo_cluster_host_clear(ret);
        return vo_error_set(ret_error, -EBUSY, "the target the manager chose is offline");
    }
    return 0;
}

/* A stopped VM whose disks are all shared: its documents move to the
 * target in one transaction (state/vm-move.h), then the target registers
 * it (peer call) and this host forgets it. */
static int move_stopped(VoDaemon *d, Item *it, char **ret_host, char **ret_error)
{
    VoVm *vm = it->vm;
    _cleanup_free_ char *vm_id = vo_vm_id(vm);
    VoClusterHost h = { 0 };
    int r = pick(d, it, &h, ret_error);
    if (r < 0)
        return r;
    if (vo_migrate_fault("evacuate-stopped-pause")) /* test: a change lands meanwhile */
        vo_migrate_fault_wait("evacuate-stopped-go", 30000);
    pthread_mutex_lock(&vm->job);
    /* Checked again under the job: a change that ran since cannot_move (a
     * CD-ROM insert, a disk or NVRAM added) may name a volume of this
     * host's own pools, which the documents must not take to the target. */
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *local = NULL;
    bool has_local = vo_migrate_check_disks(d, spec, &local) < 0;
    vo_vm_spec_free(spec);
    pthread_mutex_lock(&vm->lock);
    (void)vo_vm_save_flush(vm); /* a save due (vm-save-later.c) before the move reads it */
    VoVmState s = vm->state;
    bool busy = vm->migration_task || vm->provisioning || vm->deleting || vm->deleted ||
                vm->migrated_away;
    int64_t rev = vm->rev;
    if (!busy && !has_local && !vo_vm_state_active(s))
        vm->migrated_away = true; /* no write of its documents from here on */
    pthread_mutex_unlock(&vm->lock);
    if (busy || has_local || vo_vm_state_active(s)) {
        pthread_mutex_unlock(&vm->job);
        vo_cluster_host_clear(&h);
        return vo_error_set(ret_error, -EBUSY, "it changed meanwhile (%s)",
                            busy ? "busy" : has_local ? local : vo_vm_state_to_string(s));
    }
    int64_t new_rev = 0;
    r = vo_vm_move_txn(d->cluster_store, vm_id, d->host_id, h.id, rev, &new_rev, ret_error);
    if (r < 0) {
        pthread_mutex_lock(&vm->lock);
        vm->migrated_away = false;
        pthread_mutex_unlock(&vm->lock);
        pthread_mutex_unlock(&vm->job);
        vo_cluster_host_clear(&h);
        return r;
    }
    json_t *body = json_pack("{s:s}", "vm", vm_id);
    _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    const char *headers[] = { "Content-Type: application/json", NULL };
    VoPeerResponse resp = { 0 };
    int pr = vo_peer_request(&d->peer_tls, h.url, "POST", ADOPT_PATH, headers, text,
                             strlen(text), PEER_TIMEOUT_MS, &resp);
    if (pr < 0 || resp.status != 200)
        log_warn("vm %s: moved to host %s, which did not take it at once (%s); it loads "
                 "it when it restarts", it->name, h.name,
                 pr < 0 ? (resp.error ? resp.error : strerror(-pr)) : "refused");
    vo_peer_response_clear(&resp);
    vo_vm_forget_migrated(vm);
    pthread_mutex_unlock(&vm->job);
    *ret_host = TAKE_PTR(h.name);
    vo_cluster_host_clear(&h);
    log_info("vm %s: moved (stopped) to host %s", it->name, *ret_host);
    return 0;
}

/* A running VM: a migration task (migrate.c) to the manager's choice,
 * comparing guest RAM when e asks; a stopped VM with local disks: a cold
 * move task (move.c), likewise. Local volumes go to e->pool (NULL: the
 * target's default pool). */
static int start_move(VoDaemon *d, const Evacuation *e, Item *it, char **ret_error)
{
    VoMigrateArgs args = { .pool = e->pool, .verify_memory = e->verify_memory };
    json_t *task = NULL;
    int r = it->cold ? vo_vm_move(d, it->vm, NULL, e->pool, &task, ret_error)
                     : vo_vm_migrate(d, it->vm, &args, &task, ret_error);
    if (r < 0)
        return r;
    it->task_id = vo_strdup(json_string_value(json_object_get(task, "id")));
    json_object_set_new(it->report, "task", json_string(it->task_id));
    json_decref(task);
    return 0;
}

/* Whether the migration or move task ended; then the report says how
 * (memory_verified: only when e asked each live migration to compare). */
static bool move_done(VoDaemon *d, const Evacuation *e, Item *it)
{
    json_t *t = vo_tasks_get_json(d->tasks, it->task_id);
    const char *state = json_string_value(json_object_get(t, "state"));
    bool done = !t || (state && strcmp(state, "queued") && strcmp(state, "running"));
    json_t *result = json_object_get(t, "result");
    if (done && state && !strcmp(state, "succeeded")) {
        report_moved(it, json_string_value(json_object_get(result, "to")) ?: "?");
        json_t *verified = json_object_get(result, "memory_verified");
        if (e->verify_memory && !it->cold && json_is_boolean(verified))
            json_object_set(it->report, "memory_verified", verified);
    } else if (done) {
        const char *msg = json_string_value(
            json_object_get(json_object_get(t, "error"), "message"));
        _cleanup_free_ char *why = vo_asprintf("%s %s: %s", it->cold ? "move" : "migration",
                                               state ? state : "lost",
                                               msg ? msg : "no reason given");
        report_stays(it, why);
    }
    json_decref(t);
    return done;
}

/* Why a VM cannot move as it is, or NULL: the checks done before asking
 * the manager for a target. *ret_running: it live-migrates; *ret_local: it
 * is stopped with a disk on this host's own pools (a cold move copies it). */
static char *cannot_move(VoDaemon *d, VoVm *vm, bool *ret_running, bool *ret_local)
{
    pthread_mutex_lock(&vm->lock);
    VoVmState s = vm->state;
    bool provisioning = vm->provisioning, deleting = vm->deleting || vm->deleted;
    _cleanup_free_ char *migrating = vo_strdup(vm->migration_task);
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    char *why = NULL, *error = NULL;
    *ret_running = s == VO_VM_RUNNING || s == VO_VM_PAUSED;
    if (migrating)
        why = vo_asprintf("it is migrating already (task %s)", migrating);
    else if (provisioning || deleting)
        why = vo_strdup(provisioning ? "it is being created" : "it is being deleted");
    else if (!*ret_running && vo_vm_state_active(s))
        why = vo_asprintf("it is %s: try again once it is running or stopped",
                          vo_vm_state_to_string(s));
    else if (!*ret_running)
        *ret_local = vo_migrate_check_disks(d, spec, &error) < 0;
    free(error);
    vo_vm_spec_free(spec);
    return why;
}

static void item_clear(Item *it)
{
    vo_vm_unref(it->vm);
    free(it->name);
    free(it->task_id);
    json_decref(it->report);
}

static int task_evacuate(VoTask *t, void *userdata)
{
    Evacuation *e = userdata;
    VoDaemon *d = e->d;
    pthread_mutex_lock(&d->vms_lock);
    size_t n = d->n_vms;
    Item *items = vo_malloc0(sizeof(Item) * (n + 1));
    for (size_t i = 0; i < n; i++)
        items[i].vm = vo_vm_ref(d->vms[i]);
    pthread_mutex_unlock(&d->vms_lock);
    size_t *running = vo_malloc0(sizeof(size_t) * (n + 1)), n_running = 0;
    for (size_t i = 0; i < n; i++) {
        Item *it = &items[i];
        pthread_mutex_lock(&it->vm->lock);
        it->name = vo_strdup(it->vm->spec->name);
        const char *state = vo_vm_state_to_string(it->vm->state);
        pthread_mutex_unlock(&it->vm->lock);
        it->report = json_pack("{s:s, s:s}", "vm", it->name, "state", state);
        bool is_running = false, is_local = false;
        _cleanup_free_ char *why = d->cluster_store
                                       ? cannot_move(d, it->vm, &is_running, &is_local)
                                       : vo_strdup("this host is not in a cluster");
        if (why)
            report_stays(it, why);
        else if (is_running || is_local) {
            it->cold = is_local;
            running[n_running++] = i;
        }
        else { /* stopped, shared disks: moved now */
            _cleanup_free_ char *host = NULL, *error = NULL;
            vo_task_set_details(t, (int)(5 + 40 * i / (n ? n : 1)), "moving stopped VMs",
                                json_pack("{s:s, s:s}", "phase", "stopped", "vm", it->name));
            if (move_stopped(d, it, &host, &error) < 0)
                report_stays(it, error ? error : "cannot move");
            else
                report_moved(it, host);
        }
    }
    /* Running VMs and stopped ones with local disks: at most
     * VO_EVACUATE_PARALLEL migrations or cold moves at once. */
    size_t next = 0, active = 0, done = 0;
    size_t *slots = vo_malloc0(sizeof(size_t) * VO_EVACUATE_PARALLEL);
    bool cancelled = false;
    while (done < n_running) {
        while (!cancelled && active < VO_EVACUATE_PARALLEL && next < n_running) {
            Item *it = &items[running[next++]];
            _cleanup_free_ char *error = NULL;
            if (start_move(d, e, it, &error) < 0) {
                report_stays(it, error ? error : "cannot move");
                done++;
            } else
                slots[active++] = (size_t)(it - items);
        }
        if (!cancelled && vo_task_cancelled(t)) {
            cancelled = true; /* the running migrations finish; no new one */
            for (size_t k = next; k < n_running; k++)
                report_stays(&items[running[k]], "the evacuation was cancelled");
            done += n_running - next;
            next = n_running;
        }
        for (size_t k = 0; k < active;) {
            if (move_done(d, e, &items[slots[k]])) {
                slots[k] = slots[--active];
                done++;
            } else
                k++;
        }
        json_t *moving = json_array();
        for (size_t k = 0; k < active; k++)
            json_array_append_new(moving, json_pack("{s:s, s:s}", "vm", items[slots[k]].name,
                                                    "task", items[slots[k]].task_id));
        vo_task_set_details(t, (int)(45 + 50 * done / (n_running ? n_running : 1)),
                            "migrating running VMs",
                            json_pack("{s:s, s:o, s:I, s:I}", "phase", "running", "migrating",
                                      moving, "done", (json_int_t)done, "total",
                                      (json_int_t)n_running));
        if (done < n_running)
            (void)poll(NULL, 0, POLL_MS);
    }
    free(slots);
    free(running);
    json_t *vms = json_array();
    size_t moved = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(json_string_value(json_object_get(items[i].report, "result")) ?: "",
                    "moved"))
            moved++;
        json_array_append(vms, items[i].report);
        item_clear(&items[i]);
    }
    free(items);
    vo_hosts_refresh(d);
    vo_task_set_result(t, json_pack("{s:s, s:b, s:I, s:I, s:o}", "host", d->host_name,
                                    "maintenance", e->enter, "moved", (json_int_t)moved,
                                    "not_moved", (json_int_t)(n - moved), "vms", vms));
    vo_task_set_details(t, 100, moved == n ? "every VM moved" : "some VMs stay: see the result",
                        NULL);
    log_info("host %s: evacuation done: %zu of %zu VMs moved", d->host_name, moved, n);
    return cancelled ? vo_task_fail(t, -ECANCELED, "cancelled: %zu of %zu VMs moved", moved, n)
                     : 0;
}

int vo_host_evacuate(VoDaemon *d, bool enter, const VoEvacuateArgs *args, json_t **ret_task,
                     char **ret_error)
{
    if (enter) {
        bool changed = false;
        int r = vo_hosts_set_maintenance(d, d->host_id, true, &changed);
        if (r < 0)
            return vo_error_set(ret_error, r, "cannot set host '%s' in maintenance: %s",
                                d->host_name, strerror(-r));
        if (changed)
            log_info("host %s: in maintenance", d->host_name);
    }
    Evacuation *e = vo_malloc0(sizeof(*e));
    *e = (Evacuation){ .d = d, .enter = enter,
                       .pool = args->pool ? vo_strdup(args->pool) : NULL,
                       .verify_memory = args->verify_memory };
    /* One evacuation at a time: a second request (maintenance or evacuate)
     * answers the queued or running one (once: same kind and target). */
    VoTaskDesc desc = { .kind = "host-evacuate", .target = d->host_name,
                        .target_id = d->host_id, .once = true, .cancellable = true };
    int r = vo_tasks_submit(d->tasks, &desc, task_evacuate, e, evacuation_free, ret_task,
                            ret_error);
    if (r != 0)
        evacuation_free(e);
    return r < 0 ? r : 0;
}

int vo_host_adopt_moved(VoDaemon *d, json_t *body, char **ret_error)
{
    const char *vm_id = json_string_value(json_object_get(body, "vm"));
    if (!vm_id)
        return vo_error_set(ret_error, -EINVAL, "vm: the id of the VM moved here is needed");
    int r = vo_vm_adopt_moved(d, vm_id, ret_error);
    if (r >= 0)
        vo_hosts_refresh(d);
    return r == -EEXIST ? 0 : r;
}
