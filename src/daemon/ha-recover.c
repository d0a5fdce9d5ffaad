/* ha-recover.c: the manager's HA recovery loop (ha-recover.h): its
 * rounds find the down hosts and place and move their HA VMs. The pure
 * parts (which VMs, their order, the restart limit) are cluster/ha-plan.c;
 * the hand-over of a moved VM to its new host (register, start) is
 * ha-handover.c's, and following the hand-overs that failed
 * ha-handover-follow.c's (ha-recover-internal.h). Each step is logged
 * and recorded as a task of kind "ha" on the manager (so it shows in the
 * task list and the event stream): "host NAME offline", "vm NAME restarted
 * on HOST after N ms", "vm NAME: unplaceable: ...". */
#include "daemon/ha-recover.h"
#include "daemon/ha-recover-internal.h"

#include <pthread.h>
#include <string.h>

#include "cluster/ha-plan.h"
#include "daemon/cluster-place.h"
#include "daemon/cluster-view.h"
#include "daemon/ha-settings.h"
#include "daemon/hosts.h"
#include "daemon/migrate-target.h"
#include "daemon/vm-internal.h"
#include "state/vm-move.h"
#include "util/periodic.h"
#include "util/test-hold.h"
#include "util/util.h"

static VoPeriodic runner = VO_PERIODIC_INIT;

/* The loop's memory while this host is manager (the loop thread only):
 * {host id: monotonic ms its record was first seen missing} and the last
 * ha_state written per VM id. The restart limit's count is not here: it
 * is the VM document's "ha_restarts" (cluster/ha-plan.h), written in the
 * move's transaction, so a new manager or a restarted vireod sees it. */
static json_t *down_since;
/* {host id: true}: hosts this manager saw online (a member that never had
 * a record, one joining say, is not announced offline for nothing). */
static json_t *seen_online;
/* Belongs to the round's thread, which holds the hand-overs' lock
 * (vo_ha_handovers_lock) through each round. */
static json_t *said;

bool vo_ha_recover_stopping(void)
{
    return vo_periodic_stopping(&runner);
}

int vo_ha_collect_doc(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t *o = json_loads(value, 0, NULL);
    const char *slash = strrchr(key, '/');
    if (json_is_object(o) && slash)
        json_object_set_new(userdata, slash + 1, json_pack("{s:o, s:I}", "doc", o, "rev",
                                                           (json_int_t)rev));
    else
        json_decref(o);
    return 0;
}

/* ---- the record of each step: a task of kind "ha" ---- */

void vo_ha_note(VoDaemon *d, const char *target, const char *target_id, json_t *result,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *message = NULL;
    if (vasprintf(&message, fmt, ap) < 0)
        abort();
    va_end(ap);
    log_info("ha: %s", message);
    json_object_set_new(result, "message", json_string(message));
    _cleanup_free_ char *key = vo_asprintf("ha/%s", target_id);
    VoTaskDesc desc = { .kind = "ha", .target = target, .target_id = target_id,
                        .keys = { key }, .unbounded = true };
    vo_tasks_note(d->tasks, &desc, message, result);
}

/* ---- one VM ---- */

/* Writes ha_state into the VM's document on the down host, once per text,
 * compared at its revision and with the host's live record still absent,
 * as it was when the round judged the host down: a host back meanwhile has
 * read the document at the revision it knows, and a note landing after
 * that would refuse every later save of the VM there (a stale revision)
 * until its vireod restarted. Not on a host online but fenced (src_fenced):
 * its vireod owns the document and compares its next save at the revision
 * it knows (read again when its fenced state ends), so a note written after
 * that read would refuse every later save of the VM there (start, retries,
 * give-up) until vireod restarted; the manager's task says it instead. */
static void say(VoDaemon *d, const VoHaCandidate *c, json_t *vm_doc, const char *text,
                bool src_fenced)
{
    const char *was = json_string_value(json_object_get(said, c->vm_id));
    if (was && !strcmp(was, text))
        return;
    json_object_set_new(said, c->vm_id, json_string(text));
    if (src_fenced)
        return;
    json_t *doc = json_deep_copy(vm_doc);
    json_object_set_new(doc, "ha_state", json_string(text));
    _cleanup_free_ char *value = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *key = vo_asprintf("h/%s/vms/%s", c->host_id, c->vm_id);
    _cleanup_free_ char *live = vo_asprintf("cluster/hosts/%s", c->host_id);
    _cleanup_free_ char *point = vo_asprintf("ha_note@%s", c->name);
    const VoStoreCompare cmps[] = { { .key = key, .expected_rev = c->rev },
                                    { .key = live, .expected_rev = VO_REV_NEW } };
    const VoStoreOp op = { .kind = VO_STORE_PUT, .key = key, .value = value };
    size_t failed = 0;
    vo_test_hold(point); /* tests bring the host back here */
    int r = vo_store_txn(d->cluster_store, cmps, 2, &op, 1, NULL, &failed);
    if (r < 0) {
        json_object_del(said, c->vm_id); /* a next round notes it again if still so */
        log_warn("ha: cannot note on VM %s that it is %s: %s", c->name, text,
                 r == -EEXIST && failed == 1 ? "its host is back online" : strerror(-r));
    }
}

bool vo_ha_recover_one(VoDaemon *d, const VoHaCandidate *c, json_t *vm_doc,
                       const char *down_name, int64_t since_ms, bool src_fenced,
                       int64_t src_record_rev)
{
    int64_t now = vo_wall_ms(), next = 0;
    const char *away = src_fenced ? "fenced" : "offline";
    json_t *restarts = json_object_get(vm_doc, VO_HA_RESTARTS_FIELD);
    VoHaLimit limit = vo_ha_limit_followed(d); /* the cluster's setting, as it is now */
    if (!vo_ha_restarts_allow(restarts, now, &limit, &next)) {
        _cleanup_free_ char *times = vo_ha_times_text(vo_ha_restarts_recent(restarts, now,
                                                                            &limit));
        _cleanup_free_ char *allowed = vo_ha_limit_text(&limit);
        _cleanup_free_ char *text = vo_asprintf(
            "restart limit: restarted %s (%s); left where it was (host %s, %s) until %lld s "
            "from now", times, allowed, down_name, away, (long long)((next - now + 999) / 1000));
        const char *was = json_string_value(json_object_get(said, c->vm_id));
        if (!was || strncmp(was, "restart limit", 13))
            vo_ha_note(d, c->name, c->vm_id, json_object(), "vm %s: %s", c->name, text);
        say(d, c, vm_doc, text, src_fenced);
        return false;
    }
    json_t *doc = NULL;
    _cleanup_free_ char *error = NULL;
    const char *group = json_string_value(json_object_get(vm_doc, "ha_group"));
    int r = vo_migrate_target_place_group(d, c->vm_id, c->host_id, group, &doc, &error);
    const char *to = json_string_value(json_object_get(json_object_get(doc, "host"), "id"));
    if (r < 0 || !to) {
        _cleanup_free_ char *text = vo_asprintf("unplaceable: %s", error ? error : "no host");
        const char *was = json_string_value(json_object_get(said, c->vm_id));
        if (!was || strcmp(was, text))
            vo_ha_note(d, c->name, c->vm_id, json_object(), "vm %s (host %s %s): %s", c->name,
                 down_name, away, text);
        say(d, c, vm_doc, text, src_fenced);
        json_decref(doc);
        return false;
    }
    VoClusterHost h = { 0 };
    r = vo_cluster_host_get(d, to, &h);
    json_decref(doc);
    bool local = r >= 0 && !strcmp(h.id, d->host_id);
    if (r < 0 || (!local && !h.url)) {
        log_warn("ha: vm %s: the chosen host %s cannot be reached (no address)", c->name, to);
        vo_cluster_host_clear(&h);
        return false;
    }
    const char *gone = src_fenced ? "fenced itself" : "went offline";
    _cleanup_free_ char *reason = vo_asprintf("host %s %s", down_name, gone);
    _cleanup_free_ char *state = vo_asprintf("restarted on %s (host %s %s)", h.name, down_name,
                                             gone);
    /* in the move's transaction */
    json_t *counted = vo_ha_restarts_add(restarts, now);
    VoVmMoveDown down = { .exit_reason = reason, .ha_state = state, .ha_restarts = counted,
                          .src_fenced = src_fenced, .src_record_rev = src_record_rev };
    int64_t new_rev = 0;
    _cleanup_free_ char *point = vo_asprintf("ha_move@%s", c->name);
    vo_test_hold(point); /* tests end the source's fenced state here */
    r = vo_vm_move_from_down_txn(d->cluster_store, c->vm_id, c->host_id, h.id, c->rev, &down,
                                 &new_rev, &error);
    json_decref(counted);
    if (r < 0) { /* changed, or the host came back: the next round looks again */
        log_warn("ha: vm %s not moved to host %s: %s", c->name, h.name, error);
        vo_cluster_host_clear(&h);
        return false;
    }
    json_object_del(said, c->vm_id);
    vo_ha_handover_start(d, c->vm_id, h.id, c->name, down_name, src_fenced, since_ms, 0,
                         false);
    vo_cluster_host_clear(&h);
    return true;
}

/* ---- one round ---- */

typedef struct {
    json_t *docs; /* {vm id: {"doc","rev"}} of one down host */
    char *host_id, *host_name;
    int64_t since;
} Down;

static void round_once(VoDaemon *d)
{
    /* The manager's snapshot (watched, in memory): no store read 4 times
     * a second. */
    json_t *members = NULL, *records = NULL;
    if (vo_cluster_hosts_read(d, &members, &records) < 0)
        return;
    int64_t now = vo_now_ms();
    /* Hosts back online are no longer down. */
    const char *id;
    json_t *m;
    void *tmp;
    json_object_foreach_safe(down_since, tmp, id, m)
        if (json_object_get(records, id) || !json_object_get(members, id))
            json_object_del(down_since, id);
    json_object_foreach(records, id, m)
        json_object_set_new(seen_online, id, json_true());
    Down *downs = vo_malloc0(sizeof(Down) * (json_object_size(members) + 1));
    size_t n_downs = 0, n_cands = 0;
    json_object_foreach(members, id, m) {
        if (json_object_get(records, id) || !strcmp(id, d->host_id))
            continue;
        const char *name = json_string_value(json_object_get(json_object_get(m, "doc"),
                                                             "name"));
        if (!json_object_get(down_since, id))
            json_object_set_new(down_since, id, json_pack("{s:I, s:b}", "since",
                                                          (json_int_t)now, "said", false));
        json_t *ds = json_object_get(down_since, id);
        Down *dn = &downs[n_downs];
        *dn = (Down){ .docs = json_object(), .host_id = vo_strdup(id),
                      .host_name = vo_strdup(name ? name : id),
                      .since = json_integer_value(json_object_get(ds, "since")) };
        _cleanup_free_ char *prefix = vo_asprintf("h/%s/vms/", id);
        if (vo_store_list(d->cluster_store, prefix, vo_ha_collect_doc, dn->docs) < 0) {
            json_decref(dn->docs);
            free(dn->host_id);
            free(dn->host_name);
            continue;
        }
        bool has_ha = false;
        const char *vm_id;
        json_t *e;
        json_object_foreach(dn->docs, vm_id, e)
            has_ha = has_ha || vo_ha_wanted(json_object_get(e, "doc"));
        if (!json_is_true(json_object_get(ds, "said")) &&
            (has_ha || json_object_get(seen_online, id))) {
            json_object_set_new(ds, "said", json_true());
            vo_ha_note(d, dn->host_name, id, json_pack("{s:s}", "host", dn->host_name),
                 "host %s offline", dn->host_name);
        }
        n_cands += json_object_size(dn->docs);
        n_downs++;
    }
    VoHaCandidate *cands = vo_malloc0(sizeof(*cands) * (n_cands + 1));
    size_t n = 0;
    for (size_t i = 0; i < n_downs; i++) {
        const char *vm_id;
        json_t *e;
        json_object_foreach(downs[i].docs, vm_id, e) {
            json_t *doc = json_object_get(e, "doc");
            if (!vo_ha_wanted(doc))
                continue;
            cands[n++] = (VoHaCandidate){
                .vm_id = vm_id, .host_id = downs[i].host_id, .priority = vo_ha_priority(doc),
                .name = json_string_value(json_object_get(json_object_get(doc, "spec"), "name")),
                .rev = json_integer_value(json_object_get(e, "rev")) };
        }
    }
    vo_ha_order(cands, n);
    vo_ha_handovers_seed(d, records);
    /* Moved one after the other (in priority order), each handed over by
     * its new host's worker (in that order there; the start tasks waited
     * for together): no peer call here. */
    for (size_t i = 0; i < n && !vo_periodic_stopping(&runner) && vo_hosts_is_manager(d);
         i++) {
        const Down *dn = NULL;
        for (size_t k = 0; k < n_downs && !dn; k++)
            if (!strcmp(downs[k].host_id, cands[i].host_id))
                dn = &downs[k];
        json_t *doc = json_object_get(json_object_get(dn->docs, cands[i].vm_id), "doc");
        if (!cands[i].name)
            cands[i].name = cands[i].vm_id;
        (void)vo_ha_recover_one(d, &cands[i], doc, dn->host_name, dn->since, false, 0);
    }
    vo_ha_handovers_follow(d, records);
    free(cands);
    for (size_t i = 0; i < n_downs; i++) {
        json_decref(downs[i].docs);
        free(downs[i].host_id);
        free(downs[i].host_name);
    }
    free(downs);
    json_decref(members);
    json_decref(records);
}

/* Whether this host was the manager at the last round (the runner's
 * thread only). */
static bool was_manager;

static void recover_round(void *userdata)
{
    VoDaemon *d = userdata;
    bool manager = vo_hosts_is_manager(d);
    vo_ha_handovers_lock();
    if (manager && !was_manager)
        log_info("ha: this host is the manager: it restarts the HA VMs of hosts that go "
                 "offline");
    if (!manager && was_manager) { /* a new manager starts afresh */
        json_object_clear(down_since);
        json_object_clear(seen_online);
        json_object_clear(said);
        vo_ha_handovers_forget();
    }
    was_manager = manager;
    if (manager)
        round_once(d);
    vo_ha_handovers_unlock();
}

int vo_ha_recover_start(VoDaemon *d)
{
    if (!d->cluster || !d->cluster_store || vo_periodic_started(&runner))
        return 0;
    down_since = json_object();
    seen_online = json_object();
    said = json_object();
    vo_ha_handovers_begin();
    vo_ha_handover_workers_begin();
    was_manager = false;
    int r = vo_periodic_start(&runner, recover_round, d, VO_HA_RECOVER_PERIOD_MS);
    if (r < 0) {
        json_decref(down_since);
        json_decref(seen_online);
        json_decref(said);
        down_since = seen_online = said = NULL;
        vo_ha_handover_workers_end();
        vo_ha_handovers_end();
    }
    return r;
}

void vo_ha_recover_stop(VoDaemon *d)
{
    (void)d;
    if (!vo_periodic_stop(&runner))
        return;
    vo_ha_handover_workers_end();
    json_decref(down_since);
    json_decref(seen_online);
    json_decref(said);
    down_since = seen_online = said = NULL;
    vo_ha_handovers_end();
}
