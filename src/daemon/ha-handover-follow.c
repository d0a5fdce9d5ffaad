/* ha-handover-follow.c: the HA hand-overs that failed (ha-recover.h):
 * VMs the manager moved to a live host whose registration or start there
 * failed, kept in a table and looked at again each round: handed over
 * again while the VM waits there unstarted, placed again elsewhere when
 * that host fenced itself; a new manager fills the table from the VM
 * documents. The table and its lock are the round's (ha-recover.c); a
 * hand-over worker (ha-handover.c) only puts a VM back. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cluster/ha-plan.h"
#include "daemon/ha-recover-internal.h"
#include "daemon/hosts.h"
#include "util/util.h"

/* VMs this manager moved to a live host whose hand-over failed (the
 * /v1/migrations/moved or start call got no answer or was refused, or the
 * start task failed): {vm id: {"host" (id), "name", "from" (the down
 * host's name), "fenced" (true: "from" was online but fenced), "since",
 * "due"}}. Looked at again (vo_ha_handovers_follow): a
 * VM left there landed and not started is handed over again; one whose
 * host fenced itself is placed again elsewhere. Cleared with the role; a
 * new manager fills it from the documents (seed_handovers). */
static json_t *handovers;
/* handovers belongs to the round's thread (ha-recover.c), which holds this
 * lock through each round; a hand-over worker takes it only to put back a
 * VM whose hand-over failed (ha-handover.c's job_put_back). Taken before
 * the workers' lock. */
static pthread_mutex_t handovers_lock = PTHREAD_MUTEX_INITIALIZER;
/* Whether handovers was filled from the documents since this host holds
 * the role. */
static bool handovers_seeded;
#define HANDOVER_RETRY_MS 2000
/* A host that keeps not answering is asked less often (a call can take
 * PEER_TIMEOUT_MS, holding its hand-over worker): doubling up to this. */
#define HANDOVER_RETRY_MAX_MS 30000

void vo_ha_handovers_lock(void)
{
    pthread_mutex_lock(&handovers_lock);
}

void vo_ha_handovers_unlock(void)
{
    pthread_mutex_unlock(&handovers_lock);
}

void vo_ha_handovers_begin(void)
{
    handovers = json_object();
    handovers_seeded = false;
}

void vo_ha_handovers_forget(void)
{
    json_object_clear(handovers);
    handovers_seeded = false;
}

void vo_ha_handovers_end(void)
{
    json_decref(handovers);
    handovers = NULL;
}

/* Adds a VM to handovers (the caller holds handovers_lock), due again after
 * the backoff of its failed tries so far. */
void vo_ha_handovers_add(const char *vm_id, const char *host_id, const char *name,
                          const char *from, bool from_fenced, int64_t since_ms,
                          json_int_t failed)
{
    int64_t wait = failed > 5 ? HANDOVER_RETRY_MAX_MS : (int64_t)HANDOVER_RETRY_MS << failed;
    if (wait > HANDOVER_RETRY_MAX_MS)
        wait = HANDOVER_RETRY_MAX_MS;
    json_object_set_new(handovers, vm_id,
                        json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:I}", "host", host_id,
                                  "name", name, "from", from, "fenced", from_fenced, "since",
                                  (json_int_t)since_ms, "due",
                                  (json_int_t)(vo_now_ms() + wait), "failed", failed));
}

void vo_ha_handovers_put_back(VoDaemon *d, const char *vm_id, const char *host_id,
                              const char *name, const char *from, bool from_fenced,
                              int64_t since_ms, json_int_t failed)
{
    if (handovers && vo_hosts_is_manager(d) && !json_object_get(handovers, vm_id))
        vo_ha_handovers_add(vm_id, host_id, name, from, from_fenced, since_ms, failed);
}

/* Whether a VM document on a host online says the VM waits there for a
 * start nobody made: HA, not running, and landed there by a recovery and
 * not started since (its host's first save drops "ha_landed"), or its HA
 * start failed there (marked: that host follows it, unless it fenced
 * itself). */
static bool handover_waiting(json_t *doc)
{
    const char *state = json_string_value(json_object_get(json_object_get(doc, "status"),
                                                          "state"));
    bool landed = json_is_true(json_object_get(doc, "ha_landed"));
    bool marked = json_is_true(json_object_get(doc, VO_HA_START_FAILED_FIELD));
    return json_is_true(json_object_get(doc, "ha")) && state &&
           (!strcmp(state, "crashed") || !strcmp(state, "stopped")) && (landed || marked);
}

/* A new manager's handovers, from the VM documents of the hosts online:
 * those landed there and waiting (handover_waiting). An earlier manager
 * that died or lost the role after a move, before or while handing the VM
 * over, left it there, unstarted and followed by nobody. (One marked
 * only, its HA start failed there, is its host's retries': not taken up,
 * lest one no host follows, moved by a user say, be read every 2 s.)
 * false when a host's documents could not be read (tried again at the
 * next round). */
static bool seed_handovers(VoDaemon *d, json_t *records)
{
    const char *host_id;
    json_t *rec;
    json_object_foreach(records, host_id, rec) {
        json_t *docs = json_object();
        _cleanup_free_ char *prefix = vo_asprintf("h/%s/vms/", host_id);
        int r = vo_store_list(d->cluster_store, prefix, vo_ha_collect_doc, docs);
        const char *vm_id;
        json_t *e;
        json_object_foreach(docs, vm_id, e) {
            json_t *doc = json_object_get(e, "doc");
            if (r < 0 || json_object_get(handovers, vm_id) || vo_ha_handover_in_flight(vm_id) ||
                !handover_waiting(doc) ||
                !json_is_true(json_object_get(doc, "ha_landed")))
                continue;
            const char *name = json_string_value(json_object_get(json_object_get(doc, "spec"),
                                                                 "name"));
            /* Its move's exit_reason: "host NAME went offline" (or "fenced itself"). */
            const char *why = json_string_value(json_object_get(json_object_get(doc, "status"),
                                                                "exit_reason"));
            char from[256] = "?";
            if (why)
                (void)sscanf(why, "host %255s", from);
            const char *host = json_string_value(json_object_get(json_object_get(rec, "doc"),
                                                                 "name"));
            log_info("ha: vm %s waits unstarted on host %s: followed by this manager",
                     name ? name : vm_id, host ? host : host_id);
            vo_ha_handovers_add(vm_id, host_id, name ? name : vm_id, from,
                                why && strstr(why, "fenced itself"), vo_now_ms(), 0);
        }
        json_decref(docs);
        if (r < 0)
            return false;
    }
    return true;
}

/* One VM of handovers, due: what its document on its host says now
 * decides (the round's thread, handovers_lock held). */
static void follow_handover(VoDaemon *d, const char *vm_id, json_t *e, json_t *records)
{
    const char *host_id = json_string_value(json_object_get(e, "host"));
    const char *name = json_string_value(json_object_get(e, "name"));
    int64_t since = json_integer_value(json_object_get(e, "since"));
    json_int_t failed = json_integer_value(json_object_get(e, "failed"));
    _cleanup_free_ char *key = vo_asprintf("h/%s/vms/%s", host_id, vm_id), *text = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->cluster_store, key, &text, &rev);
    if (r == -ENOENT) { /* deleted, or moved on */
        json_object_del(handovers, vm_id);
        return;
    }
    json_t *rec = json_object_get(records, host_id);
    json_t *doc = r < 0 ? NULL : json_loads(text, 0, NULL);
    bool marked = json_is_true(json_object_get(doc, VO_HA_START_FAILED_FIELD));
    bool waiting = handover_waiting(doc);
    const char *rec_state = json_string_value(json_object_get(json_object_get(rec, "doc"),
                                                              "state"));
    bool fenced = rec_state && !strcmp(rec_state, "fenced");
    /* Followed while it waits on a host online (its host follows a marked
     * one itself, but not while it is fenced); ends once it started, was
     * given up, deleted or moved, or its host went down (the down host's
     * recovery then takes it: vo_ha_wanted). */
    bool again = r < 0 || (waiting && rec);
    bool placed_again = r >= 0 && waiting && rec && fenced;
    if (placed_again) {
        /* It starts nothing until it holds a new lease: placed again. */
        const char *host_name = json_string_value(json_object_get(json_object_get(rec, "doc"),
                                                                  "name"));
        VoHaCandidate c = { .vm_id = vm_id, .host_id = host_id, .name = name, .rev = rev,
                            .priority = vo_ha_priority(doc) };
        log_info("ha: vm %s: its host %s fenced itself before starting it: placed again", name,
                 host_name ? host_name : host_id);
        json_incref(e);
        json_object_del(handovers, vm_id); /* vo_ha_recover_one hands it over to its new host */
        again = !vo_ha_recover_one(d, &c, doc, host_name ? host_name : host_id, since, true,
                                   json_integer_value(json_object_get(rec, "rev"))) &&
                !json_object_get(handovers, vm_id);
        if (again)
            json_object_set(handovers, vm_id, e);
        json_decref(e);
    } else if (r >= 0 && again && !marked) {
        /* Still landed and not started on a host online: handed over again
         * (the VM's registration there is idempotent), by its host's worker. */
        json_object_del(handovers, vm_id); /* (e is the caller's too) */
        vo_ha_handover_start(d, vm_id, host_id, name,
                             json_string_value(json_object_get(e, "from")),
                             json_is_true(json_object_get(e, "fenced")), since, failed, true);
        json_decref(doc);
        return;
    }
    json_decref(doc);
    int64_t wait = failed > 5 ? HANDOVER_RETRY_MAX_MS : (int64_t)HANDOVER_RETRY_MS << failed;
    if (again) /* e is in handovers */
        json_object_set_new(e, "due", json_integer(vo_now_ms() + (wait < HANDOVER_RETRY_MAX_MS
                                                                      ? wait
                                                                      : HANDOVER_RETRY_MAX_MS)));
    else if (!placed_again) /* (placed again: its entry is vo_ha_recover_one's, if any) */
        json_object_del(handovers, vm_id);
}

void vo_ha_handovers_follow(VoDaemon *d, json_t *records)
{
    json_t *ids = json_array();
    const char *vm_id;
    json_t *e;
    json_object_foreach(handovers, vm_id, e)
        if (json_integer_value(json_object_get(e, "due")) <= vo_now_ms())
            json_array_append_new(ids, json_string(vm_id));
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        if (vo_ha_recover_stopping() || !vo_hosts_is_manager(d))
            break;
        e = json_object_get(handovers, json_string_value(id));
        json_incref(e);
        if (e)
            follow_handover(d, json_string_value(id), e, records);
        json_decref(e);
    }
    json_decref(ids);
}

void vo_ha_handovers_seed(VoDaemon *d, json_t *records)
{
    if (!handovers_seeded)
        handovers_seeded = seed_handovers(d, records);
}
