/* ha-retry.c: failed HA starts tried again with a backoff (ha-retry.h). The
 * decision (how long to wait, whether the restart limit allows another
 * attempt) is cluster/ha-plan.c's; this file follows the start tasks, checks
 * the VM before each attempt, starts it and records each step. */
#include "daemon/ha-retry.h"

#include <pthread.h>
#include <string.h>

#include "cluster/ha-plan.h"
#include "daemon/fence.h"
#include "daemon/ha-recover.h"
#include "daemon/ha-settings.h"
#include "daemon/vm-internal.h"
#include "state/keys.h"
#include "state/store.h"
#include "util/periodic.h"
#include "util/test-hold.h"
#include "util/util.h"

#define START_FAILED "start failed"

static VoPeriodic runner = VO_PERIODIC_INIT;
/* {vm id: {"name", "task" (the start followed) or "due" (monotonic ms of the
 * next attempt) or "resume" (left pending by vireod's last run),
 * "failures", "crashed" and "again" (a crashed VM's restart queued by
 * vo_ha_retry_restart_crashed: how it crashed, the limit's reason)}},
 * under lock (callers are task and host threads; the rounds are the
 * runner's). Lock order: lock, then a VM's lock (no caller holds a
 * VM's lock when it calls in). The restart limit's count is the VM's own
 * (vm->ha_restarts, saved in its document): this memory only says which
 * starts are followed. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *pending;
/* Crashed VMs' restarts queued before the retrier ran (pending's entries),
 * under lock: moved into pending when it starts. */
static json_t *queued;
/* Under lock: vo_ha_retry_stop ran (vireod stops): nothing is queued. */
static bool stopped;

/* Under lock: vm_id's entry, made when new, for a start followed or
 * failed: a crashed VM's queued restart it was is no longer one (else that
 * start's failure would be checked as a crash: a VM the failed start left
 * stopped would be dropped, not tried again). */
static json_t *entry_locked(const char *vm_id, const char *name)
{
    json_t *e = json_object_get(pending, vm_id);
    if (!e) {
        e = json_pack("{s:s, s:i}", "name", name, "failures", 0);
        json_object_set_new(pending, vm_id, e);
    }
    json_object_del(e, "crashed");
    json_object_del(e, "again");
    return e;
}

/* Under lock: whether vm_id's followed start task is queued or running. */
static bool under_way_locked(VoDaemon *d, const char *vm_id)
{
    const char *task_id = json_string_value(json_object_get(json_object_get(pending, vm_id),
                                                            "task"));
    json_t *t = task_id ? vo_tasks_get_json(d->tasks, task_id) : NULL;
    const char *state = json_string_value(json_object_get(t, "state"));
    bool under_way = state && (!strcmp(state, "queued") || !strcmp(state, "running"));
    json_decref(t);
    return under_way;
}

bool vo_ha_retry_start_under_way(VoDaemon *d, const char *vm_id)
{
    pthread_mutex_lock(&lock);
    bool under_way = under_way_locked(d, vm_id);
    pthread_mutex_unlock(&lock);
    return under_way;
}

/* A copy of the VM's restart count (its document's "ha_restarts"), or NULL. */
static json_t *restarts_of(VoDaemon *d, const char *vm_id)
{
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    if (!vm)
        return NULL;
    pthread_mutex_lock(&vm->lock);
    json_t *r = json_deep_copy(vm->ha_restarts);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

bool vo_ha_retry_count_start(VoVm *vm)
{
    VoHaLimit limit = vo_ha_limit_followed(vm->d); /* before the VM's lock: it may read */
    pthread_mutex_lock(&vm->lock);
    int64_t now = vo_wall_ms();
    bool ok = vo_ha_restarts_allow(vm->ha_restarts, now, &limit, NULL);
    if (ok) {
        json_t *next = vo_ha_restarts_add(vm->ha_restarts, now);
        json_decref(vm->ha_restarts);
        vm->ha_restarts = next;
        int r = vo_vm_save(vm);
        if (r < 0)
            log_warn("ha: vm %s: its HA start is not counted in its document: %s",
                     vm->spec->name, strerror(-r));
    }
    pthread_mutex_unlock(&vm->lock);
    return ok;
}

void vo_ha_retry_follow(VoDaemon *d, const char *vm_id, const char *name, const char *task_id)
{
    (void)d;
    if (!task_id)
        return;
    pthread_mutex_lock(&lock);
    if (pending) {
        json_t *e = entry_locked(vm_id, name);
        json_object_set_new(e, "task", json_string(task_id));
        json_object_del(e, "due");
    }
    pthread_mutex_unlock(&lock);
}

void vo_ha_retry_give_up(VoDaemon *d, const char *vm_id, const char *name, unsigned failures,
                         const char *why)
{
    VoHaLimit limit = vo_ha_limit_followed(d);
    _cleanup_free_ char *allowed = vo_ha_limit_text(&limit);
    _cleanup_free_ char *times = vo_ha_times_text(failures ? failures : limit.max_restarts);
    _cleanup_free_ char *text = failures
        ? vo_asprintf("restart limit: its HA start failed %s (%s); left crashed: %s", times,
                      allowed, why)
        : vo_asprintf("restart limit: restarted %s (%s); left crashed: %s", times, allowed,
                      why);
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    if (vm) {
        pthread_mutex_lock(&vm->lock);
        if (!vo_vm_state_active(vm->state)) {
            free(vm->ha_state);
            vm->ha_state = vo_strdup(text);
            free(vm->exit_reason);
            vm->exit_reason = vo_strdup(text);
            vm->ha_start_failed = false; /* given up: not followed again at start */
            vo_vm_set_state(vm, VO_VM_CRASHED); /* saves */
        }
        pthread_mutex_unlock(&vm->lock);
    }
    vo_ha_note(d, name, vm_id, json_pack("{s:s, s:i}", "vm", name, "failures", failures),
               "vm %s: %s", name, text);
}

/* Under lock for e (dropped around the give-up): one more failure (why),
 * judged by limit (read before the lock was taken: reading it may wait on
 * the store). */
static void failed_locked(VoDaemon *d, const char *vm_id, json_t *e, const char *why,
                          const VoHaLimit *limit)
{
    unsigned failures = (unsigned)json_integer_value(json_object_get(e, "failures")) + 1;
    _cleanup_free_ char *name = vo_strdup(json_string_value(json_object_get(e, "name")));
    int64_t now = vo_now_ms();
    json_t *restarts = restarts_of(d, vm_id);
    int64_t delay = vo_ha_retry_delay(restarts, failures, vo_wall_ms(), limit);
    json_decref(restarts);
    if (delay < 0) {
        json_object_del(pending, vm_id);
        pthread_mutex_unlock(&lock);
        vo_ha_retry_give_up(d, vm_id, name, failures, why);
        pthread_mutex_lock(&lock);
        return;
    }
    json_object_set_new(e, "failures", json_integer(failures));
    json_object_set_new(e, "due", json_integer(now + delay));
    json_object_del(e, "task");
    pthread_mutex_unlock(&lock);
    vo_ha_note(d, name, vm_id,
               json_pack("{s:s, s:i, s:I}", "vm", name, "failures", failures, "retry_ms",
                         (json_int_t)delay),
               "vm %s: its HA start failed (%s): tried again in %lld s", name, why,
               (long long)(delay / 1000));
    pthread_mutex_lock(&lock);
}

void vo_ha_retry_failed(VoDaemon *d, const char *vm_id, const char *name, const char *why)
{
    VoHaLimit limit = vo_ha_limit_followed(d);
    pthread_mutex_lock(&lock);
    if (pending)
        failed_locked(d, vm_id, entry_locked(vm_id, name), why ? why : "?", &limit);
    pthread_mutex_unlock(&lock);
}

void vo_ha_retry_refused(VoDaemon *d, VoVm *vm, bool follow, const char *why)
{
    pthread_mutex_lock(&vm->lock);
    /* Only an HA VM left down for no other reason: one being deleted, moved
     * or migrated (or already running) was refused for that, and a mark a
     * move carried along would start it unasked at its new host. */
    bool down = vm->spec->ha && !vo_vm_state_active(vm->state) && !vm->migrated_away &&
                !vm->deleting && !vm->deleted && !vm->migration_task;
    bool mark = down && !vm->ha_start_failed;
    if (mark) {
        vm->ha_start_failed = true; /* kept here when the save fails: the retries see it */
        int r = vo_vm_save(vm);
        if (r < 0)
            log_warn("ha: vm %s: its refused HA start is not marked in its document: %s",
                     vm->spec->name, strerror(-r));
    }
    _cleanup_free_ char *id = vo_strdup(vm->spec->id), *name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    log_warn("ha: vm %s: its HA start was refused before its task: %s%s", name, why,
             down ? "" : " (not followed: it is not an HA VM left down)");
    if (follow && down)
        vo_ha_retry_failed(d, id, name, why);
}

/* Why the VM must not be started again (NULL: it may): checked before each
 * attempt, as the other HA starts do; crashed: a crashed VM's queued
 * restart (it must still be crashed), else a failed start's retry (its
 * document's mark). *ret_later: not now, but kept and checked again (the
 * store unreadable; this host fenced: it starts nothing until it holds a
 * new lease and has reconciled, then it starts its own HA VMs again
 * itself, docs/ha.md "The fenced state"; dropped here, the VM stayed
 * stopped until vireod's next start). */
static char *stale(VoDaemon *d, const char *vm_id, bool crashed, bool *ret_later)
{
    *ret_later = true;
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    if (!vm) {
        *ret_later = false;
        return vo_strdup("it is no longer on this host");
    }
    _cleanup_free_ char *key = vo_key_vm(vm_id);
    int r = vo_store_get(d->store, key, NULL, NULL);
    if (r == -ENOENT) {
        *ret_later = false;
        return vo_strdup("it is no longer this host's (deleted, or restarted elsewhere)");
    }
    if (r < 0)
        return vo_asprintf("the store cannot be read: %s", strerror(-r));
    if (vo_fence_is_fenced(d, NULL, NULL))
        return vo_strdup("this host is fenced: tried once it holds a new lease");
    *ret_later = false;
    pthread_mutex_lock(&vm->lock);
    char *why = NULL;
    if (!vm->spec->ha)
        why = vo_strdup("it is no longer HA");
    else if (vm->migrated_away || vm->deleting || vm->deleted)
        why = vo_strdup("it is being deleted or moved");
    else if (vo_vm_state_active(vm->state))
        why = vo_strdup("it was started meanwhile");
    else if (crashed ? vm->state != VO_VM_CRASHED
                     : !vm->ha_start_failed) /* a user's start that failed, a stop */
        why = vo_strdup("it was started by a user or stopped meanwhile");
    pthread_mutex_unlock(&vm->lock);
    return why;
}

/* Under lock: e's attempt waits (why: this host fenced, the store
 * unreadable): checked again after VO_HA_RETRY_FIRST_MS, logged once. */
static void wait_locked(json_t *e, const char *name, const char *why)
{
    if (!json_is_true(json_object_get(e, "waiting")))
        log_info("ha: vm %s: its HA start waits: %s", name, why);
    json_object_set_new(e, "waiting", json_true());
    json_object_set_new(e, "due", json_integer(vo_now_ms() + VO_HA_RETRY_FIRST_MS));
}

/* Under lock: e's attempt is due: checked, then started (or dropped). */
static void attempt_locked(VoDaemon *d, const char *vm_id, json_t *e, const VoHaLimit *limit)
{
    _cleanup_free_ char *name = vo_strdup(json_string_value(json_object_get(e, "name")));
    pthread_mutex_unlock(&lock);
    _cleanup_free_ char *point = vo_asprintf("ha_retry@%s", name);
    vo_test_hold(point); /* tests fence the host while an attempt is due */
    bool later = false;
    _cleanup_free_ char *why = stale(d, vm_id, false, &later);
    json_t *task = NULL;
    _cleanup_free_ char *error = NULL;
    int r = 0;
    _cleanup_vm_ VoVm *vm = why ? NULL : vo_vms_find(d, vm_id);
    if (vm && !vo_ha_retry_count_start(vm)) {
        r = -EDQUOT;
        error = vo_strdup("the restart limit allows no more starts");
    } else if (vm)
        r = vo_vm_start_ha(d, vm, &task, &error);
    pthread_mutex_lock(&lock);
    if (json_object_get(pending, vm_id) != e) {
        /* followed anew meanwhile */
    } else if (why && later) {
        wait_locked(e, name, why);
    } else if (why) {
        log_info("ha: vm %s: its HA start is not tried again: %s", name, why);
        json_object_del(pending, vm_id);
    } else {
        json_object_del(e, "waiting");
        const char *task_id = json_string_value(json_object_get(task, "id"));
        if (r >= 0 && task_id) {
            json_object_set_new(e, "task", json_string(task_id));
            json_object_del(e, "due");
        } else
            failed_locked(d, vm_id, e, error ? error : "no start task", limit);
    }
    json_decref(task);
}

/* Under lock: e is a crashed VM's restart (vo_ha_retry_restart_crashed):
 * checked as an attempt is, then made by vo_vm_ha_restart_here, which
 * counts it and has its start followed (a new entry) or given up. */
static void restart_crashed_locked(VoDaemon *d, const char *vm_id, json_t *e)
{
    _cleanup_free_ char *name = vo_strdup(json_string_value(json_object_get(e, "name")));
    _cleanup_free_ char *what = vo_strdup(json_string_value(json_object_get(e, "crashed")));
    _cleanup_free_ char *again = vo_strdup(json_string_value(json_object_get(e, "again")));
    pthread_mutex_unlock(&lock);
    bool later = false;
    _cleanup_free_ char *why = stale(d, vm_id, true, &later);
    _cleanup_vm_ VoVm *vm = why ? NULL : vo_vms_find(d, vm_id);
    pthread_mutex_lock(&lock);
    if (json_object_get(pending, vm_id) != e)
        return; /* queued or followed anew meanwhile */
    if (why && later) {
        wait_locked(e, name, why);
        return;
    }
    json_object_del(pending, vm_id);
    if (why) {
        log_info("ha: vm %s %s, but is not started again: %s", name, what, why);
        return;
    }
    pthread_mutex_unlock(&lock);
    vo_vm_ha_restart_here(d, vm, what, again);
    pthread_mutex_lock(&lock);
}

void vo_ha_retry_restart_crashed(VoDaemon *d, VoVm *vm, const char *what, const char *again_why)
{
    pthread_mutex_lock(&vm->lock);
    bool crashed = vm->spec->ha && vm->state == VO_VM_CRASHED;
    _cleanup_free_ char *id = vo_strdup(vm->spec->id), *name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    if (!crashed)
        return;
    pthread_mutex_lock(&lock);
    if (stopped) { /* the migration watcher ends after the retrier */
        pthread_mutex_unlock(&lock);
        log_warn("ha: vm %s %s, but vireod stops: it is left crashed", name, what);
        return;
    }
    bool runs = pending != NULL;
    if (runs && under_way_locked(d, id)) {
        /* a start followed (the fenced host's own restart): kept, its
         * failure retried; replaced, the same crash would be restarted
         * again while that start is still queued */
        pthread_mutex_unlock(&lock);
        log_info("ha: vm %s %s: its HA start is under way", name, what);
        return;
    }
    if (!runs && !queued)
        queued = json_object();
    json_object_set_new(runs ? pending : queued, id,
                        json_pack("{s:s, s:i, s:I, s:s, s:s}", "name", name, "failures", 0,
                                  "due", (json_int_t)0, "crashed", what, "again", again_why));
    pthread_mutex_unlock(&lock);
    log_info("ha: vm %s %s: it is started again here %s", name, what,
             runs ? "by the HA retrier" : "once the fence and the HA retrier run");
}

/* Under lock: e's followed task, if it ended. */
static void check_task_locked(VoDaemon *d, const char *vm_id, json_t *e,
                              const VoHaLimit *limit)
{
    json_t *t = vo_tasks_get_json(d->tasks, json_string_value(json_object_get(e, "task")));
    const char *state = json_string_value(json_object_get(t, "state"));
    unsigned failures = (unsigned)json_integer_value(json_object_get(e, "failures"));
    if (!t || (state && !strcmp(state, "succeeded"))) {
        if (t && failures > 0) {
            _cleanup_free_ char *name = vo_strdup(json_string_value(json_object_get(e,
                                                                                    "name")));
            json_object_del(pending, vm_id);
            pthread_mutex_unlock(&lock);
            vo_ha_note(d, name, vm_id, json_pack("{s:s, s:i}", "vm", name, "failures", failures),
                       "vm %s: started after %u failed HA starts", name, failures);
            pthread_mutex_lock(&lock);
        } else
            json_object_del(pending, vm_id);
    } else if (state && (!strcmp(state, "failed") || !strcmp(state, "cancelled"))) {
        const char *why = json_string_value(json_object_get(json_object_get(t, "error"),
                                                            "message"));
        _cleanup_free_ char *text = vo_strdup(why ? why : state);
        failed_locked(d, vm_id, e, text, limit);
    }
    json_decref(t);
}

/* Under lock: an entry of a VM whose HA start had failed when vireod last
 * stopped (resume_pending): counted as the failure it was, so it is tried
 * again after the backoff its starts so far give, or given up. */
static void resume_locked(VoDaemon *d, const char *vm_id, json_t *e, const VoHaLimit *limit)
{
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    _cleanup_free_ char *why = NULL;
    if (vm) {
        pthread_mutex_lock(&vm->lock);
        why = vo_strdup(vm->exit_reason ? vm->exit_reason : START_FAILED);
        pthread_mutex_unlock(&vm->lock);
    }
    failed_locked(d, vm_id, e, why ? why : START_FAILED, limit);
}

/* Under lock, at start: the HA VMs left stopped by a failed HA start (their
 * documents' mark: a user's start that failed is not one) whose restarts
 * (their documents') are within the window: vireod stopped while it
 * retried them. Without this a restart of vireod would drop them. */
static void resume_pending_locked(VoDaemon *d, const VoHaLimit *limit)
{
    size_t n = 0;
    VoVm **vms = vo_vms_ref_all(d, &n);
    int64_t now = vo_wall_ms();
    for (size_t i = 0; i < n; i++) {
        VoVm *vm = vms[i];
        pthread_mutex_lock(&vm->lock);
        unsigned recent = vo_ha_restarts_recent(vm->ha_restarts, now, limit);
        /* Stopped by a failed start task, or crashed (killed by the
         * fence, landed here) with a start refused before its task. */
        if (vm->spec->ha && recent > 0 && !vo_vm_state_active(vm->state) &&
            vm->ha_start_failed) {
            /* failures: the starts counted so far, all failed (the last
             * one's failure is counted again by resume_locked). */
            json_object_set_new(pending, vm->spec->id,
                                json_pack("{s:s, s:i, s:b}", "name", vm->spec->name,
                                          "failures", recent - 1, "resume", true));
            log_info("ha: vm %s: its HA start had failed (%u HA starts within %lld minutes): "
                     "followed again", vm->spec->name, recent,
                     (long long)(limit->window_ms / 60000));
        }
        pthread_mutex_unlock(&vm->lock);
        vo_vm_unref(vm);
    }
    free(vms);
}

static void retry_round(void *userdata)
{
    VoDaemon *d = userdata;
    VoHaLimit limit = vo_ha_limit_followed(d); /* the cluster's, as it is now */
    pthread_mutex_lock(&lock);
    json_t *ids = json_array();
    const char *vm_id;
    json_t *e;
    json_object_foreach(pending, vm_id, e)
        json_array_append_new(ids, json_string(vm_id));
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        if (vo_periodic_stopping(&runner))
            break;
        e = json_object_get(pending, json_string_value(id));
        if (!e)
            continue;
        json_incref(e); /* the entry may leave pending while lock is dropped */
        if (json_object_get(e, "resume")) {
            json_object_del(e, "resume");
            resume_locked(d, json_string_value(id), e, &limit);
        } else if (json_object_get(e, "task"))
            check_task_locked(d, json_string_value(id), e, &limit);
        else if (json_integer_value(json_object_get(e, "due")) > vo_now_ms()) {
            /* not due yet */
        } else if (json_object_get(e, "crashed"))
            restart_crashed_locked(d, json_string_value(id), e);
        else
            attempt_locked(d, json_string_value(id), e, &limit);
        json_decref(e);
    }
    pthread_mutex_unlock(&lock);
    json_decref(ids);
}

int vo_ha_retry_start(VoDaemon *d)
{
    if (!d->cluster || vo_periodic_started(&runner))
        return 0;
    VoHaLimit limit = vo_ha_limit_followed(d);
    pthread_mutex_lock(&lock);
    pending = json_object();
    resume_pending_locked(d, &limit);
    /* The crashed VMs' restarts queued meanwhile: a fresh crash, newer
     * than a failed start resume_pending found. */
    json_object_update(pending, queued);
    json_decref(TAKE_PTR(queued));
    pthread_mutex_unlock(&lock);
    int r = vo_periodic_start(&runner, retry_round, d, VO_HA_RETRY_PERIOD_MS);
    if (r < 0) {
        pthread_mutex_lock(&lock);
        json_decref(pending);
        pending = NULL;
        pthread_mutex_unlock(&lock);
    }
    return r;
}

void vo_ha_retry_stop(VoDaemon *d)
{
    (void)d;
    bool ran = vo_periodic_stop(&runner);
    pthread_mutex_lock(&lock);
    stopped = true;
    if (ran) {
        json_decref(pending);
        pending = NULL;
    }
    json_decref(TAKE_PTR(queued)); /* the retrier never ran */
    pthread_mutex_unlock(&lock);
}
