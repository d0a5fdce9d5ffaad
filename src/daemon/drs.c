/* drs.c: the manager's balancing loop (drs.h). The decisions are the
 * planner's (cluster/drs.c); this file gathers its input from the hosts'
 * records (their "vm_load", daemon/vm-load.h) and the VM documents, acts on
 * its answer and records each step: a task of kind "drs" on the manager per
 * decision (recommended, started, done, failed, skipped because ...: it
 * shows in the task list and the event stream) and the round's numbers in
 * cluster/drs/status. */
#include "daemon/drs.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cluster/drs.h"
#include "cluster/drs-vm-cpu.h"
#include "cluster/drs-vm-memory.h"
#include "daemon/cluster-place.h"
#include "daemon/cluster-view.h"
#include "daemon/drs-settings.h"
#include "daemon/groups.h"
#include "daemon/hosts.h"
#include "daemon/migrate.h"
#include "daemon/migrate-target.h"
#include "util/periodic.h"
#include "util/util.h"
#include "state/store-json.h"

/* A move recorded in cluster/drs/moving without a task (its starter died
 * between the two writes) is dropped after this long. */
#define MOVING_NO_TASK_MS 60000
/* A move whose task its host cannot be asked about (its vireod down, the
 * fence keeping the record) is given up after this long: longer than a
 * DRS move's own timeouts let it run (the default 10 min to converge, 20
 * min to copy local disks). */
#define MOVING_MAX_MS (60 * 60 * 1000)

static VoPeriodic runner = VO_PERIODIC_INIT;

/* The loop's memory while this host is manager (the loop thread only). */
static VoDrsState st;
static json_t *recs;       /* the recommendations: [{...}] */
static json_t *last_decision;
static char *said;         /* the last skip or no-move reason noted, without its numbers */
/* {vm id: cores}: what each VM weighed in the last round that read the
 * VMs, so that one its host has no sample of yet (just arrived by a move,
 * or restarted) is carried at it rather than at 0 (vo_drs_vm_cpu_measure). */
static json_t *cpu_known;

/* ---- events: a task of kind "drs" per decision ---- */

/* Records the decision (what: recommended, started, done, failed, skipped,
 * no move) with its numbers (result, taken) as an event and as the
 * status's last decision. */
static void note(VoDaemon *d, const char *what, const char *vm, json_t *result,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void note(VoDaemon *d, const char *what, const char *vm, json_t *result,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *message = NULL;
    if (vasprintf(&message, fmt, ap) < 0)
        abort();
    va_end(ap);
    log_info("drs: %s", message);
    json_object_set_new(result, "decision", json_string(what));
    json_object_set_new(result, "message", json_string(message));
    json_decref(last_decision);
    last_decision = json_deep_copy(result);
    json_object_set_new(last_decision, "at", json_integer(vo_wall_ms() / 1000));
    VoTaskDesc desc = { .kind = "drs", .target = vm ? vm : "cluster", .target_id = vm ? vm
                                                                                        : "cluster",
                        .keys = { "drs" }, .unbounded = true };
    vo_tasks_note(d->tasks, &desc, message, result);
}

/* A reason without its digits: the same reason with other numbers is not
 * noted again. */
static bool said_before(const char *why)
{
    char *cls = vo_strdup(why);
    size_t k = 0;
    for (const char *p = why; *p; p++)
        if (!(*p >= '0' && *p <= '9') && *p != '.')
            cls[k++] = *p;
    cls[k] = 0;
    bool same = said && !strcmp(said, cls);
    free(said);
    said = cls;
    return same;
}

/* ---- input ---- */

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0;
}

/* Everything one round reads; what the planner's input points into. */
typedef struct {
    json_t *members, *records, *groups, *moved;
    json_t *network_owners; /* cluster/place-network-projects.h */
    json_t *vm_docs; /* {vm id: doc} of the hosts counted */
    json_t *cpu;     /* {vm id: cores} weighed this round: the next cpu_known */
    VoDrsHost *hosts;
    VoDrsVm *vms;
    size_t n_hosts, n_vms;
} Round;

static void round_clear(Round *r)
{
    json_decref(r->members);
    json_decref(r->records);
    json_decref(r->groups);
    json_decref(r->moved);
    json_decref(r->network_owners);
    json_decref(r->vm_docs);
    json_decref(r->cpu);
    for (size_t i = 0; r->hosts && i < r->n_hosts; i++) {
        vo_strv_free((char **)r->hosts[i].firmware);
        vo_strv_free((char **)r->hosts[i].networks);
        vo_strv_free((char **)r->hosts[i].pools);
    }
    for (size_t i = 0; r->vms && i < r->n_vms; i++) {
        vo_strv_free((char **)r->vms[i].networks);
        vo_strv_free((char **)r->vms[i].pools);
    }
    free(r->hosts);
    free(r->vms);
}

/* A host record's "firmware" list as a strv (NULL: the record does not say). */
static char **record_firmware(json_t *rec)
{
    json_t *list = json_object_get(rec, "firmware");
    if (!json_is_array(list))
        return NULL;
    char **v = NULL;
    size_t i;
    json_t *f;
    vo_strv_push(&v, NULL); /* an empty list is not "does not say" */
    json_array_foreach(list, i, f)
        if (json_is_string(f))
            vo_strv_push(&v, vo_strdup(json_string_value(f)));
    return v;
}

/* The networks a VM's spec (JSON) needs a target to have, or NULL. */
static char **spec_networks(json_t *spec)
{
    json_t *nics = json_object_get(spec, "nics");
    const char **names = vo_malloc0((json_array_size(nics) + 1) * sizeof(char *));
    size_t i;
    json_t *nic;
    json_array_foreach(nics, i, nic)
        names[i] = json_string_value(json_object_get(nic, "network"));
    char **v = vo_place_networks_needed(names, json_array_size(nics));
    free(names);
    return v;
}

/* The pools a move of a VM (its spec, JSON) needs on the target, as a
 * migration's target asks them (vo_migrate_pools_needed), or NULL: its
 * definition cannot be read (the move's own checks say why). */
static char **spec_pools(VoDaemon *d, json_t *spec)
{
    VoVmSpec *s = NULL;
    _cleanup_free_ char *error = NULL;
    if (vo_vm_spec_from_json(spec, &s, &error) < 0)
        return NULL;
    char **v = vo_migrate_pools_needed(d, s, NULL); /* a DRS move copies into default */
    vo_vm_spec_free(s);
    return v;
}

/* The firmware a VM's spec (JSON) needs a host to list, or NULL. */
static const char *spec_firmware(json_t *spec)
{
    VoFirmware fw = VO_FIRMWARE_BIOS;
    const char *name = json_string_value(json_object_get(spec, "firmware"));
    if (name)
        (void)vo_firmware_from_string(name, &fw);
    return vo_place_firmware_needed(fw, json_is_true(json_object_get(spec, "secure_boot")));
}

/* Why the round is skipped (malloc'd), or NULL: a host offline (HA
 * recovery first), in maintenance or fenced. */
static char *skip_reason(Round *r)
{
    const char *id;
    json_t *m;
    json_object_foreach(r->members, id, m) {
        const char *name = json_string_value(json_object_get(json_object_get(m, "doc"),
                                                             "name"));
        json_t *rec = json_object_get(json_object_get(r->records, id), "doc");
        if (!rec)
            return vo_asprintf("host %s is offline (HA recovery comes first)", name ? name : id);
        const char *state = json_string_value(json_object_get(rec, "state"));
        if (json_is_true(json_object_get(json_object_get(m, "doc"), "maintenance")) ||
            (state && !strcmp(state, "maintenance")))
            return vo_asprintf("host %s is in maintenance", name ? name : id);
        if (state && strcmp(state, "online"))
            return vo_asprintf("host %s is %s", name ? name : id, state);
    }
    return NULL;
}

char *vo_drs_paused_reason(VoDaemon *d)
{
    Round r = { 0 };
    int e = vo_cluster_hosts_read(d, &r.members, &r.records);
    char *why = e < 0 ? vo_asprintf("cannot read the hosts: %s", strerror(-e))
                      : skip_reason(&r);
    round_clear(&r);
    return why;
}

static int build(VoDaemon *d, Round *r)
{
    r->groups = json_object();
    r->moved = json_object();
    r->vm_docs = json_object();
    r->cpu = json_object();
    int e = vo_store_list_objects(d->cluster_store, VO_GROUPS_PREFIX, r->groups);
    if (e >= 0)
        e = vo_store_list_objects(d->cluster_store, VO_DRS_MOVED_PREFIX, r->moved);
    if (e >= 0) /* a target's network of another project is not the VM's */
        e = vo_cluster_network_owners_read(d, &r->network_owners);
    if (e < 0)
        return e;
    size_t nh = json_object_size(r->records);
    r->hosts = vo_malloc0(sizeof(VoDrsHost) * (nh + 1));
    /* First the hosts and their VM documents, then the VMs. */
    size_t cap = 0;
    const char *id;
    json_t *e_rec;
    json_object_foreach(r->records, id, e_rec) {
        json_t *rec = json_object_get(e_rec, "doc");
        _cleanup_free_ char *prefix = vo_asprintf("h/%s/vms/", id);
        json_t *docs = json_object();
        e = vo_store_list_objects(d->cluster_store, prefix, docs);
        if (e < 0) {
            json_decref(docs);
            return e;
        }
        json_object_set_new(r->vm_docs, id, docs);
        cap += json_object_size(docs);
        double cpus = num(rec, "cpus"), memory = num(rec, "memory_mib");
        double free_mem = num(rec, "mem_ratio") * memory - num(rec, "committed_memory_mib");
        double free_cpu = num(rec, "cpu_ratio") * cpus - num(rec, "committed_vcpus");
        const char *state = json_string_value(json_object_get(rec, "state"));
        size_t k = r->n_hosts++;
        r->hosts[k] = (VoDrsHost){
            .id = id, .name = json_string_value(json_object_get(rec, "name")),
            .cpus = cpus > 0 ? cpus : 1, .memory_mib = memory > 0 ? (uint64_t)memory : 1,
            .free_memory_mib = free_mem > 0 ? (uint64_t)free_mem : 0,
            .free_vcpus = free_cpu > 0 ? free_cpu : 0,
            .can_receive = state && !strcmp(state, "online"),
            .firmware = record_firmware(rec), .networks = vo_place_strv_of_json(json_object_get(rec, "networks")),
            .pools = vo_place_strv_of_json(json_object_get(rec, "pools")) };
        if (!r->hosts[k].name)
            r->hosts[k].name = id;
    }
    r->vms = vo_malloc0(sizeof(VoDrsVm) * (cap + 1));
    for (size_t h = 0; h < r->n_hosts; h++) {
        json_t *rec = json_object_get(json_object_get(r->records, r->hosts[h].id), "doc");
        json_t *load = json_object_get(rec, "vm_load");
        json_t *docs = json_object_get(r->vm_docs, r->hosts[h].id);
        const char *vm_id;
        json_t *doc;
        json_object_foreach(docs, vm_id, doc) {
            json_t *spec = json_object_get(doc, "spec");
            const char *state = json_string_value(json_object_get(json_object_get(doc, "status"),
                                                                  "state"));
            json_t *l = json_object_get(load, vm_id);
            bool running = state && !strcmp(state, "running");
            if (!running && !l)
                continue; /* a stopped VM weighs nothing and cannot move live */
            const char *group = json_string_value(json_object_get(spec, "group"));
            VoGroupPolicy gp = VO_GROUP_SPREAD;
            const char *policy = json_string_value(
                json_object_get(json_object_get(r->groups, group ? group : ""), "policy"));
            if (policy)
                (void)vo_group_policy_from_string(policy, &gp);
            json_t *mv = json_object_get(r->moved, vm_id);
            const char *mem_source = NULL;
            uint64_t mem_used = vo_drs_vm_memory_measure(l, spec, &mem_source);
            double cpu = vo_drs_vm_cpu_measure(l, cpu_known, vm_id, NULL);
            json_object_set_new(r->cpu, vm_id, json_real(cpu));
            r->vms[r->n_vms++] = (VoDrsVm){
                .id = vm_id, .name = json_string_value(json_object_get(spec, "name")),
                .host = h, .cpu = cpu,
                .mem_used_mib = mem_used, .mem_source = mem_source,
                .rss_mib = (uint64_t)num(l, "rss_mib"),
                .memory_mib = (uint64_t)num(spec, "memory_mib"),
                .vcpus = (unsigned)num(spec, "vcpus"), .firmware = spec_firmware(spec),
                .networks = spec_networks(spec),
                .pools = running && l ? spec_pools(d, spec) : NULL, /* only a movable one's */
                .project = json_string_value(json_object_get(spec, "project")),
                .group = group, .group_policy = gp,
                .movable = running && l, .last_moved_ms = (int64_t)num(mv, "at"),
                .retry_after_ms = (int64_t)num(mv, "retry_after") };
            if (!r->vms[r->n_vms - 1].name)
                r->vms[r->n_vms - 1].name = vm_id;
        }
    }
    return 0;
}

/* ---- the move under way ---- */

/* The DRS move under way, if any: true while it runs (the round is
 * skipped, *ret_why saying so); an ended one is noted and its document
 * removed. */
static bool move_under_way(VoDaemon *d, char **ret_why)
{
    _cleanup_free_ char *text = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->cluster_store, VO_DRS_MOVING_KEY, &text, &rev);
    if (r == -ENOENT)
        return false;
    if (r < 0) {
        *ret_why = vo_asprintf("cannot read the move under way: %s", strerror(-r));
        return true;
    }
    json_t *doc = json_loads(text, 0, NULL);
    const char *vm = json_string_value(json_object_get(doc, "vm"));
    const char *from_id = json_string_value(json_object_get(doc, "from_id"));
    const char *task_id = json_string_value(json_object_get(doc, "task"));
    const char *to = json_string_value(json_object_get(doc, "to"));
    const char *from = json_string_value(json_object_get(doc, "from"));
    vm = vm ? vm : "?";
    if (!task_id || !from_id) {
        if (vo_wall_ms() - (int64_t)num(doc, "at") > MOVING_NO_TASK_MS)
            (void)vo_store_delete(d->cluster_store, VO_DRS_MOVING_KEY, rev);
        *ret_why = vo_asprintf("the move of VM %s is being started", vm);
        json_decref(doc);
        return true;
    }
    json_t *t = NULL;
    _cleanup_free_ char *error = NULL;
    bool gone = false; /* its host no longer knows the task (a vireod restart) */
    if (!strcmp(from_id, d->host_id)) {
        t = vo_tasks_get_json(d->tasks, task_id);
        gone = !t;
    } else {
        VoClusterHost h = { 0 };
        _cleanup_free_ char *path = vo_asprintf("/v1/tasks/%s", task_id);
        int g = vo_cluster_host_get(d, from_id, &h);
        if (g == -ENOENT) /* the host left the cluster, its task with it */
            gone = true;
        else if (g >= 0 && h.url)
            gone = vo_migrate_peer_call(d, h.url, "GET", path, NULL, &t, &error) == -ENOENT;
        vo_cluster_host_clear(&h);
    }
    /* Its host has not answered for its task for so long that the
     * migration cannot still run (MOVING_MAX_MS): over. */
    bool stale = !t && !gone && vo_wall_ms() - (int64_t)num(doc, "at") > MOVING_MAX_MS;
    if (gone || stale)
        t = json_pack("{s:s, s:{s:s}}", "state", "lost", "error", "message",
                      gone ? "its task is gone (the VM's host restarted or left the cluster?)"
                           : "its host has not answered for its task for an hour");
    const char *state = json_string_value(json_object_get(t, "state"));
    if (!state || !strcmp(state, "queued") || !strcmp(state, "running")) {
        *ret_why = vo_asprintf("the move of VM %s to host %s is under way (task %s)", vm,
                               to ? to : "?", task_id);
        json_decref(t);
        json_decref(doc);
        return true;
    }
    json_t *result = json_pack("{s:s, s:s?, s:s?, s:s, s:O?, s:O?, s:O?, s:O?, s:O?}", "vm",
                               vm, "from", from, "to", to, "task", task_id, "imbalance_before",
                               json_object_get(doc, "imbalance_before"), "imbalance_after",
                               json_object_get(doc, "imbalance_after"), "cpu",
                               json_object_get(doc, "cpu"), "mem_used_mib",
                               json_object_get(doc, "mem_used_mib"), "mem_source",
                               json_object_get(doc, "mem_source"));
    if (!strcmp(state, "succeeded"))
        note(d, "done", vm, result, "vm %s moved from %s to %s (imbalance %.3f expected %.3f)",
             vm, from ? from : "?", to ? to : "?", num(doc, "imbalance_before"),
             num(doc, "imbalance_after"));
    else {
        const char *why = json_string_value(json_object_get(json_object_get(t, "error"),
                                                            "message"));
        json_object_set_new(result, "error", json_string(why ? why : state));
        const char *vm_id = json_string_value(json_object_get(doc, "vm_id"));
        int64_t backoff = vm_id ? vo_drs_note_failed(d, vm_id) : 0;
        note(d, "failed", vm, result, "vm %s: the move from %s to %s %s: %s (not tried again "
             "for %lld s)", vm, from ? from : "?", to ? to : "?", state,
             why ? why : "no reason given", (long long)(backoff / 1000));
    }
    (void)vo_store_delete(d->cluster_store, VO_DRS_MOVING_KEY, rev);
    *ret_why = vo_asprintf("the move of VM %s just ended", vm); /* vm is doc's */
    json_decref(t);
    json_decref(doc);
    return true; /* the next round samples the new placement */
}

/* ---- status ---- */

static void write_status(VoDaemon *d, const VoDrsSettings *s, const Round *r, double imbalance,
                         const char *skipped)
{
    json_t *hosts = json_array();
    for (size_t i = 0; r && i < r->n_hosts; i++) {
        double cpu = 0, mem = 0;
        VoDrsInput in = { r->n_hosts, r->hosts, r->n_vms, r->vms, r->network_owners };
        vo_drs_host_load(&in, i, &cpu, &mem);
        json_array_append_new(hosts, json_pack("{s:s, s:f, s:f, s:I, s:I}", "name",
                                               r->hosts[i].name, "cpu_load", cpu, "mem_load",
                                               mem, "mem_used_mib",
                                               (json_int_t)(mem * (double)r->hosts[i].memory_mib + 0.5),
                                               "memory_mib", (json_int_t)r->hosts[i].memory_mib));
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:i, s:f, s:f, s:i, s:i, s:s?, s:O?, s:O, s:o, s:I}", "manager",
        d->host_name, "mode", vo_drs_mode_to_string(s->mode), "level", s->level, "threshold",
        vo_drs_threshold(s->level), "imbalance", isfinite(imbalance) ? imbalance : 0,
        "rounds_above", st.rounds_above, "rounds_needed", VO_DRS_ROUNDS, "skipped", skipped,
        "last_decision", last_decision, "recommendations", recs, "hosts", hosts, "at",
        (json_int_t)(vo_wall_ms() / 1000));
    _cleanup_free_ char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    int e = vo_store_put(d->cluster_store, VO_DRS_STATUS_KEY, text, VO_REV_ANY, NULL);
    if (e < 0)
        log_warn("drs: cannot write the status: %s", strerror(-e));
}

/* ---- one round ---- */

static char *new_id(void)
{
    uint32_t x = 0;
    if (getrandom(&x, sizeof(x), 0) != sizeof(x))
        x = (uint32_t)vo_now_ms();
    return vo_asprintf("%08x", x);
}

static json_t *move_json(const Round *r, const VoDrsMove *mv)
{
    const VoDrsVm *vm = &r->vms[mv->vm];
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:I, s:s, s:I}",
                     "vm", vm->name, "vm_id", vm->id, "from", r->hosts[mv->from].name,
                     "from_id", r->hosts[mv->from].id, "to", r->hosts[mv->to].name, "to_id",
                     r->hosts[mv->to].id, "imbalance_before", mv->imbalance_before,
                     "imbalance_after", mv->imbalance_after, "cpu", vm->cpu, "cost_s",
                     mv->cost, "score", mv->score, "mem_used_mib",
                     (json_int_t)vm->mem_used_mib, "mem_source",
                     vm->mem_source ? vm->mem_source : "configured", "memory_mib",
                     (json_int_t)vm->memory_mib);
}

/* Drops the recommendations whose VM is no longer on their host. */
static void prune_recs(const Round *r)
{
    size_t i;
    json_t *rec;
    json_t *keep = json_array();
    json_array_foreach(recs, i, rec) {
        const char *vm_id = json_string_value(json_object_get(rec, "vm_id"));
        const char *from = json_string_value(json_object_get(rec, "from_id"));
        json_t *docs = json_object_get(r->vm_docs, from ? from : "");
        if (vm_id && json_object_get(docs, vm_id))
            json_array_append(keep, rec);
    }
    json_decref(recs);
    recs = keep;
}

/* What a VM weighs in a decision's text: "0.50 cores, 300 MiB (guest)". */
static char *vm_weight_text(const VoDrsVm *vm)
{
    return vo_asprintf("%.2f cores, %llu MiB (%s)", vm->cpu,
                       (unsigned long long)vm->mem_used_mib,
                       vm->mem_source ? vm->mem_source : "configured");
}

static void recommend(VoDaemon *d, const Round *r, const VoDrsMove *mv)
{
    json_t *m = move_json(r, mv);
    /* The same move again keeps its id (a user may be about to apply it). */
    size_t i;
    json_t *rec;
    json_array_foreach(recs, i, rec)
        if (json_equal(json_object_get(rec, "vm_id"), json_object_get(m, "vm_id")) &&
            json_equal(json_object_get(rec, "to_id"), json_object_get(m, "to_id"))) {
            json_object_set(m, "id", json_object_get(rec, "id"));
            json_object_set(m, "at", json_object_get(rec, "at"));
            json_array_set_new(recs, i, m);
            return;
        }
    _cleanup_free_ char *id = new_id();
    json_object_set_new(m, "id", json_string(id));
    json_object_set_new(m, "at", json_integer(vo_wall_ms() / 1000));
    /* One recommendation per VM: the newest. */
    json_array_foreach(recs, i, rec)
        if (json_equal(json_object_get(rec, "vm_id"), json_object_get(m, "vm_id"))) {
            json_array_remove(recs, i);
            break;
        }
    json_array_append(recs, m);
    _cleanup_free_ char *weight = vm_weight_text(&r->vms[mv->vm]);
    note(d, "recommended", r->vms[mv->vm].name, m,
         "recommended (%s): move vm %s (%s) from %s to %s: imbalance %.3f -> %.3f "
         "(apply: vireo cluster recommendations apply %s)", id, r->vms[mv->vm].name,
         weight, r->hosts[mv->from].name, r->hosts[mv->to].name,
         mv->imbalance_before, mv->imbalance_after, id);
}

static void start_move(VoDaemon *d, const Round *r, const VoDrsMove *mv)
{
    json_t *info = move_json(r, mv);
    json_object_set_new(info, "by", json_string("auto"));
    json_t *task = NULL;
    _cleanup_free_ char *error = NULL;
    const VoDrsVm *vm = &r->vms[mv->vm];
    int e = vo_drs_start_move(d, vm->id, r->hosts[mv->from].id, r->hosts[mv->to].id, info,
                              &task, &error);
    if (e < 0) {
        json_object_set_new(info, "error", json_string(error ? error : strerror(-e)));
        int64_t backoff = vo_drs_note_failed(d, vm->id);
        note(d, "failed", vm->name, info, "vm %s: cannot start its move from %s to %s: %s "
             "(not tried again for %lld s)", vm->name, r->hosts[mv->from].name,
             r->hosts[mv->to].name, error ? error : strerror(-e), (long long)(backoff / 1000));
        return;
    }
    json_object_set(info, "task", json_object_get(task, "id"));
    _cleanup_free_ char *weight = vm_weight_text(vm);
    note(d, "started", vm->name, info,
         "started: move vm %s (%s) from %s to %s (task %s): imbalance %.3f -> %.3f",
         vm->name, weight, r->hosts[mv->from].name, r->hosts[mv->to].name,
         json_string_value(json_object_get(task, "id")), mv->imbalance_before,
         mv->imbalance_after);
    json_decref(task);
}

static void skipped(VoDaemon *d, const VoDrsSettings *s, const Round *r, const char *why)
{
    st.rounds_above = 0;
    if (!said_before(why))
        note(d, "skipped", NULL, json_object(), "round skipped: %s", why);
    write_status(d, s, r, st.last_imbalance, why);
}

static void round_once(VoDaemon *d, const VoDrsSettings *s)
{
    Round r = { 0 };
    if (vo_cluster_hosts_read(d, &r.members, &r.records) < 0) {
        round_clear(&r);
        return;
    }
    _cleanup_free_ char *why = skip_reason(&r);
    if (!why)
        (void)move_under_way(d, &why);
    int e = 0;
    if (!why && (e = build(d, &r)) < 0)
        why = vo_asprintf("cannot read the VMs: %s", strerror(-e));
    if (why) {
        skipped(d, s, NULL, why);
        round_clear(&r);
        return;
    }
    prune_recs(&r);
    json_decref(cpu_known);
    cpu_known = json_incref(r.cpu);
    VoDrsInput in = { r.n_hosts, r.hosts, r.n_vms, r.vms, r.network_owners };
    VoDrsMove mv;
    _cleanup_free_ char *no = NULL;
    int got = vo_drs_round(&st, &in, s, vo_wall_ms(), &mv, &no);
    double imbalance = vo_drs_imbalance(&in);
    if (got < 0) {
        if (!said_before(no ? no : "bad input"))
            note(d, "skipped", NULL, json_object(), "round skipped: %s",
                 no ? no : "bad input");
    } else if (got == 0) {
        if (imbalance < vo_drs_threshold(s->level)) /* even: nothing to recommend */
            json_array_clear(recs);
        /* "no move improves it" for VO_DRS_ROUNDS rounds in a row: a decision */
        if (st.rounds_above >= VO_DRS_ROUNDS && no && !said_before(no))
            note(d, "no move", NULL,
                 json_pack("{s:f, s:f}", "imbalance", imbalance, "threshold",
                           vo_drs_threshold(s->level)),
                 "no move: %s", no);
    } else {
        free(said);
        said = NULL;
        if (s->mode == VO_DRS_AUTO)
            start_move(d, &r, &mv);
        else
            recommend(d, &r, &mv);
    }
    write_status(d, s, &r, imbalance, NULL);
    round_clear(&r);
}

static void forget(void)
{
    vo_drs_state_clear(&st);
    json_decref(cpu_known);
    cpu_known = NULL;
    json_array_clear(recs);
    json_decref(last_decision);
    last_decision = NULL;
    free(said);
    said = NULL;
}

/* What the last round saw (the runner's thread only). */
static bool was_manager;
static VoDrsMode was_mode;

static void drs_round(void *userdata)
{
    VoDaemon *d = userdata;
    VoDrsSettings s;
    bool known = vo_drs_settings_followed(d, &s) >= 0;
    if (known)
        atomic_store(&d->drs_sampling, s.mode != VO_DRS_OFF);
    bool manager = vo_hosts_is_manager(d);
    if (!manager && was_manager)
        forget(); /* a new manager starts afresh (cooldowns are in the store) */
    if (manager && known && s.mode != was_mode) {
        forget();
        log_info("drs: mode %s (level %d, threshold %.2f)", vo_drs_mode_to_string(s.mode),
                 s.level, vo_drs_threshold(s.level));
    }
    if (manager && known) {
        if (s.mode != VO_DRS_OFF)
            round_once(d, &s);
        else if (was_mode != VO_DRS_OFF || !was_manager)
            write_status(d, &s, NULL, 0, "DRS is off");
        was_mode = s.mode;
    }
    was_manager = manager;
}

int vo_drs_start(VoDaemon *d)
{
    if (!d->cluster || !d->cluster_store || vo_periodic_started(&runner))
        return 0;
    recs = json_array();
    was_manager = false;
    was_mode = VO_DRS_OFF;
    int r = vo_periodic_start(&runner, drs_round, d, VO_DRS_ROUND_MS);
    if (r < 0) {
        json_decref(recs);
        recs = NULL;
    }
    return r;
}

void vo_drs_stop(VoDaemon *d)
{
    (void)d;
    if (!vo_periodic_stop(&runner))
        return;
    forget();
    json_decref(recs);
    recs = NULL;
}
