/* schedule-runner.c: the thread that runs schedules (schedules.h). Every
 * host runs one for the VMs it has: each round it reads the schedules,
 * works out per VM whether a due time has come (or a run-now was asked),
 * claims it in the store (a transaction on the run document's revision and
 * the schedule's), and queues an ordinary snapshot or backup task whose
 * requester is "schedule:NAME". When such a task has ended, retention
 * deletes (as tasks too) what the keep rules no longer keep of what that
 * schedule made for that VM.
 *
 * Missed due times (vireod down): the newest one still inside the grace
 * (the window of a daily/weekly schedule, VO_SCHEDULE_CRON_GRACE_S for a
 * cron one) runs once; older ones are skipped and recorded as last_skip,
 * never run in a burst. */
#include "daemon/schedules.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "daemon/backups.h"
#include "daemon/cluster-follow.h"
#include "daemon/groups.h"
#include "daemon/snapshots.h"
#include "daemon/vm-internal.h"
#include "daemon/vms.h"
#include "util/periodic.h"
#include "util/time-format.h"
#include "util/util.h"
#include "vireo/errors.h"

#define ROUND_MS 10000
#define ROUND_TEST_CLOCK_MS 200
/* At most this many due times are walked to find the newest one inside
 * the grace (a cron that is due every minute: 60 in an hour). */
#define MAX_DUE_WALK 100000
/* A last due time this far after now was claimed under a wrong clock. */
#define CLOCK_BACK_S (24 * 3600)

static VoPeriodic runner = VO_PERIODIC_INIT;
/* A schedule changed on this host since the runner last read them. */
static atomic_bool changed_here;
static char *clock_file;

/* Tasks this host queued for schedules, not yet seen ending (pending_lock). */
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
typedef struct {
    char *schedule, *vm_id, *task_id;
} Pending;
static Pending *pending;
static size_t n_pending;

void vo_schedules_set_clock_file(const char *path)
{
    free(clock_file);
    clock_file = path ? vo_strdup(path) : NULL;
}

time_t vo_schedules_now(void)
{
    if (!clock_file)
        return time(NULL);
    FILE *f = fopen(clock_file, "re");
    long long t = 0;
    bool ok = f && fscanf(f, "%lld", &t) == 1 && t > 0;
    if (f)
        fclose(f);
    if (!ok) {
        log_warn("schedules: the clock file '%s' holds no unix time; using the real clock",
                 clock_file);
        return time(NULL);
    }
    return (time_t)t;
}

void vo_schedules_wake(void)
{
    atomic_store(&changed_here, true);
    vo_periodic_wake(&runner);
}

static const char *str_of(json_t *doc, const char *key)
{
    return json_string_value(json_object_get(doc, key));
}

static int64_t int_of(json_t *doc, const char *key)
{
    return json_integer_value(json_object_get(doc, key));
}

static void pending_add(const char *schedule, const char *vm_id, const char *task_id)
{
    pthread_mutex_lock(&pending_lock);
    pending = realloc(pending, (n_pending + 1) * sizeof(Pending));
    if (!pending)
        abort();
    pending[n_pending++] = (Pending){ vo_strdup(schedule), vo_strdup(vm_id),
                                      vo_strdup(task_id) };
    pthread_mutex_unlock(&pending_lock);
}

/* ---- what a run makes ---- */

/* NAME-YYYYMMDD-HHMMSS of the due time in local time; a run-now's is
 * followed by -rN (N: the schedule's run-now counter), so two in one second
 * differ. */
static char *snapshot_name(const char *schedule, time_t due, int64_t run_now)
{
    struct tm tm;
    char stamp[32] = "";
    if (localtime_r(&due, &tm))
        strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    if (run_now)
        return vo_asprintf("%s-%s-r%lld", schedule, stamp, (long long)run_now);
    return vo_asprintf("%s-%s", schedule, stamp);
}

/* Queues the schedule's action for vm as "schedule:NAME"; records what it
 * will make. 0 and the task, or -errno with *ret_error. */
static int queue_action(VoDaemon *d, json_t *sched, VoVm *vm, const char *vm_id, time_t due,
                        int64_t run_now, json_t **ret_task, char **ret_error)
{
    const char *name = str_of(sched, "name");
    bool backup = !strcmp(str_of(sched, "action"), "backup");
    _cleanup_free_ char *who = vo_asprintf("schedule:%s", name);
    _cleanup_free_ char *snap = backup ? NULL : snapshot_name(name, due, run_now);
    json_t *task = NULL;
    vo_tasks_set_requester_who(who);
    int r;
    if (backup) {
        VoBackupCreateArgs args = {
            .pool = str_of(sched, "pool"),
            .incremental = json_is_true(json_object_get(sched, "incremental")),
            .bwlimit_mib = (unsigned)int_of(sched, "bwlimit_mib"),
        };
        r = vo_backup_create(d, vm, &args, &task, ret_error);
    } else {
        _cleanup_free_ char *description = vo_asprintf("made by schedule %s", name);
        r = vo_snapshot_create(d, vm, snap, json_is_true(json_object_get(sched, "memory")),
                               description, &task, ret_error);
    }
    vo_tasks_set_requester_who(NULL);
    if (r < 0)
        return r;
    const char *task_id = str_of(task, "id");
    /* Before the task can end: retention finds the record when it ends. */
    _cleanup_free_ char *item = backup ? vo_asprintf("task-%s", task_id) : vo_strdup(snap);
    _cleanup_free_ char *key = vo_asprintf(VO_SCHEDULE_MADE_PREFIX "%s/%s/%s", name, vm_id, item);
    json_t *made = json_pack("{s:s, s:I, s:s}", "kind", backup ? "backup" : "snapshot", "at",
                             (json_int_t)due, "task", task_id);
    if (snap)
        json_object_set_new(made, "name", json_string(snap));
    _cleanup_free_ char *text = json_dumps(made, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(made);
    int w = vo_store_put(d->store, key, text, VO_REV_ANY, NULL); /* the item is new: no one else writes it */
    if (w < 0)
        log_warn("schedules: cannot record what schedule '%s' makes (%s): %s; it will not be "
                 "pruned", name, item, strerror(-w));
    pending_add(name, vm_id, task_id);
    *ret_task = task;
    return 0;
}

/* ---- one VM of one schedule ---- */

typedef struct {
    json_t *doc; /* the schedule */
    int64_t rev;
    VoScheduleRule rule;
} Sched;

/* The newest due time in (after, now], or 0. */
static time_t newest_due(const VoCron *c, time_t after, time_t now)
{
    time_t t = after, found = 0, next;
    for (int i = 0; i < MAX_DUE_WALK && vo_cron_next(c, t, &next) == 0 && next <= now; i++)
        found = t = next;
    return found;
}

static json_t *time_json_s(time_t t)
{
    return vo_time_json((int64_t)t * 1000);
}

/* The newest due time after base in the grace (0: none), with last_due and
 * last_skip set in run. first: the first due time after base (<= now). */
static time_t take_due(const Sched *s, json_t *run, time_t base, time_t first, time_t now,
                       time_t *ret_missed)
{
    time_t from = base > now - s->rule.grace_s ? base : now - s->rule.grace_s;
    time_t due = newest_due(&s->rule.cron, from, now), missed = 0;
    if (due) {
        if (first < due)
            missed = first;
        json_object_set_new(run, "last_due", json_integer(due));
    } else {
        missed = first;
        json_object_set_new(run, "last_due", json_integer(now - s->rule.grace_s));
    }
    if (missed)
        json_object_set_new(run, "last_skip",
                            json_pack("{s:o, s:o, s:s}", "due", time_json_s(missed), "at",
                                      time_json_s(now), "reason",
                                      "vireod was not running at the due time; a missed "
                                      "run is taken only within the schedule's window "
                                      "(its newest due time), never several at once"));
    *ret_missed = missed;
    return due;
}

/* Whether a run-now asked at wall time at_ms is not for a VM the schedule
 * has no run record of: the VM was made after it, or it is older than
 * every host's next round (the VM was selected since: a new group member,
 * the schedule pointed at it). */
#define RUN_NOW_FRESH_MS (6 * ROUND_MS)
static bool run_now_not_for(VoDaemon *d, const char *vm_id, int64_t at_ms)
{
    if (vo_wall_ms() - at_ms > RUN_NOW_FRESH_MS)
        return true;
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    return vm && vm->created_at > at_ms;
}

/* Decides, claims and runs. run_now: the schedule's run-now counter to
 * honour now (0: only due times). *ret_task (may be NULL): the task queued. */
static void consider(VoDaemon *d, const Sched *s, const char *vm_id, const char *vm_name,
                     time_t now, json_t **ret_task)
{
    const char *name = str_of(s->doc, "name");
    _cleanup_free_ char *run_key = vo_asprintf(VO_SCHEDULE_RUNS_PREFIX "%s/%s", name, vm_id);
    _cleanup_free_ char *text = NULL;
    int64_t run_rev = VO_REV_NEW;
    int r = vo_store_get(d->store, run_key, &text, &run_rev);
    if (r < 0 && r != -ENOENT)
        return;
    if (r == -ENOENT)
        run_rev = VO_REV_NEW;
    json_t *run = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(run)) {
        json_decref(run);
        run = json_object();
    }
    int64_t want_now = int_of(s->doc, "run_now");
    if (r == -ENOENT && want_now > 0 &&
        run_now_not_for(d, vm_id, int_of(s->doc, "run_now_at_ms")))
        json_object_set_new(run, "run_now", json_integer(want_now)); /* not its raises */
    time_t due = 0, missed = 0;
    const char *trigger = NULL;
    if (want_now > int_of(run, "run_now")) {
        trigger = "run-now";
        due = now;
        json_object_set_new(run, "run_now", json_integer(want_now));
    } else if (s->rule.enabled) {
        /* Due times before the schedule was made, enabled or given a new
         * time ("since") are none of its business. */
        time_t last = (time_t)int_of(run, "last_due");
        time_t since = (time_t)int_of(s->doc, "since");
        /* Claimed or changed under a clock far ahead (set wrong, then put
         * right): waiting for that time would stop the schedule until
         * then; it goes on as after a stop (the newest due time in the
         * grace runs). A small step back keeps its claim (never twice).
         * The run document saved below says so once. */
        bool clock_back = last > now + CLOCK_BACK_S;
        if (clock_back) {
            log_warn("schedules: '%s' for VM '%s' last ran for %lld, after now (%lld): the "
                     "clock went back", name, vm_name, (long long)last, (long long)now);
            last = now - s->rule.grace_s;
            json_object_set_new(run, "last_due", json_integer(last));
        }
        if (since > now + CLOCK_BACK_S)
            since = 0;
        time_t base = last < since ? since : last;
        time_t first = 0;
        if (vo_cron_next(&s->rule.cron, base, &first) < 0 || first > now) {
            if (!clock_back) {
                json_decref(run);
                return;
            }
        } else
            due = take_due(s, run, base, first, now, &missed);
        trigger = due ? "schedule" : NULL;
    } else {
        json_decref(run);
        return;
    }
    json_object_set_new(run, "vm", json_string(vm_name));
    if (trigger)
        json_object_set_new(run, "last_run",
                            json_pack("{s:o, s:o, s:s, s:s}", "due", time_json_s(due), "at",
                                      time_json_s(now), "trigger", trigger, "host",
                                      d->host_name ? d->host_name : ""));
    _cleanup_free_ char *new_text = json_dumps(run, JSON_COMPACT | JSON_SORT_KEYS);
    _cleanup_free_ char *sched_key = vo_asprintf(VO_SCHEDULES_PREFIX "%s", name);
    /* The claim: nobody handled this due time (the run document unchanged
     * since we read it) and the schedule is still the one we read. */
    VoStoreCompare cmps[2] = { { run_key, run_rev }, { sched_key, s->rev } };
    VoStoreOp ops[1] = { { VO_STORE_PUT, run_key, new_text, 0 } };
    int64_t claimed_rev = 0;
    r = vo_store_txn(d->store, cmps, 2, ops, 1, &claimed_rev, NULL);
    if (r < 0) {
        if (r != -ESTALE && r != -EEXIST && r != -ENOENT)
            log_warn("schedules: cannot claim schedule '%s' for VM '%s': %s", name, vm_name,
                     strerror(-r));
        json_decref(run);
        return; /* another host (or thread) has it, or the schedule changed */
    }
    if (missed)
        log_info("schedules: '%s' for VM '%s' missed its due time %lld (vireod was down)", name,
                 vm_name, (long long)missed);
    if (!trigger) {
        json_decref(run);
        return;
    }
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    json_t *task = NULL;
    char *error = NULL;
    r = vm ? queue_action(d, s->doc, vm, vm_id, due, strcmp(trigger, "run-now") ? 0 : want_now,
                          &task, &error)
           : -ENOENT;
    json_t *last = json_object_get(run, "last_run");
    if (r < 0) {
        log_warn("schedules: '%s' for VM '%s': %s", name, vm_name, error ? error : strerror(-r));
        json_object_set_new(last, "error", json_string(error ? error : strerror(-r)));
    } else
        json_object_set_new(last, "task", json_string(str_of(task, "id")));
    free(error);
    free(new_text);
    new_text = json_dumps(run, JSON_COMPACT | JSON_SORT_KEYS);
    (void)vo_store_put(d->store, run_key, new_text, claimed_rev, NULL); /* the task or error shown */
    json_decref(run);
    if (ret_task && task)
        *ret_task = task;
    else
        json_decref(task);
}

/* ---- retention ---- */

typedef struct {
    json_t *items;
} Records;

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t *o = json_loads(value, 0, NULL);
    if (json_is_object(o)) {
        json_object_set_new(o, "key", json_string(key));
        json_object_set_new(o, "rev", json_integer(rev));
        json_array_append_new(((Records *)userdata)->items, o);
    } else
        json_decref(o);
    return 0;
}

/* The state of a task of this host: "queued", "running", "succeeded", ...;
 * NULL when unknown. *ret_result: its result (new reference) or NULL. */
static char *task_state(VoDaemon *d, const char *id, json_t **ret_result)
{
    json_t *t = id ? vo_tasks_get_json(d->tasks, id) : NULL;
    char *state = t ? vo_strdup(str_of(t, "state")) : NULL;
    if (ret_result)
        *ret_result = t ? json_incref(json_object_get(t, "result")) : NULL;
    json_decref(t);
    return state;
}

static bool task_busy(const char *state)
{
    return state && (!strcmp(state, "queued") || !strcmp(state, "running"));
}

/* Writes the record (its key and revision in it) back without them. */
static void record_put(VoDaemon *d, json_t *rec)
{
    json_t *doc = json_deep_copy(rec);
    json_object_del(doc, "key");
    json_object_del(doc, "rev");
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    int64_t rev = 0;
    if (vo_store_put(d->store, str_of(rec, "key"), text, int_of(rec, "rev"), &rev) == 0)
        json_object_set_new(rec, "rev", json_integer(rev));
}

/* Whether the record's snapshot or backup exists; a backup record learns
 * its backup's id from its task. -1: not known yet (its task runs). */
static int record_exists(VoDaemon *d, VoVm *vm, json_t *rec)
{
    const char *kind = str_of(rec, "kind");
    _cleanup_free_ char *state = NULL;
    json_t *result = NULL;
    _cleanup_free_ char *deleting = task_state(d, str_of(rec, "deleting"), NULL);
    if (task_busy(deleting))
        return -1; /* a prune's delete runs: neither kept nor deleted again */
    if (!strcmp(kind, "backup") && !str_of(rec, "backup")) {
        state = task_state(d, str_of(rec, "task"), &result);
        const char *id = str_of(result, "backup");
        if (state && !strcmp(state, "succeeded") && id) {
            json_object_set_new(rec, "backup", json_string(id));
            record_put(d, rec);
        }
        json_decref(result);
    }
    json_t *found = NULL;
    _cleanup_free_ char *error = NULL;
    int r = -ENOENT;
    if (!strcmp(kind, "snapshot") && str_of(rec, "name"))
        r = vo_snapshot_get_json(d, vm, str_of(rec, "name"), &found, &error);
    else if (!strcmp(kind, "backup") && str_of(rec, "backup"))
        r = vo_backup_get_json(d, str_of(rec, "backup"), &found, &error);
    json_decref(found);
    if (r == 0)
        return 1;
    if (!state)
        state = task_state(d, str_of(rec, "task"), NULL);
    return task_busy(state) ? -1 : 0;
}

/* Deletes what the keep rules no longer keep of what schedule made for the
 * VM; drops the records of what is gone. */
static void prune(VoDaemon *d, const char *schedule, const char *vm_id)
{
    json_t *sched = NULL;
    if (vo_schedule_get(d, schedule, &sched, NULL, NULL) < 0)
        return;
    VoScheduleRule rule;
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    if (!vm || vo_schedule_rule(sched, &rule, NULL) < 0) {
        json_decref(sched);
        return;
    }
    json_decref(sched);
    _cleanup_free_ char *prefix = vo_asprintf(VO_SCHEDULE_MADE_PREFIX "%s/%s/", schedule, vm_id);
    Records recs = { json_array() };
    if (vo_store_list(d->store, prefix, collect, &recs) < 0) {
        json_decref(recs.items);
        return;
    }
    size_t n = json_array_size(recs.items), k = 0;
    int64_t *times = vo_malloc0((n + 1) * sizeof(int64_t));
    json_t **cands = vo_malloc0((n + 1) * sizeof(json_t *));
    bool *keep = vo_malloc0((n + 1) * sizeof(bool));
    size_t i;
    json_t *rec;
    json_array_foreach(recs.items, i, rec) {
        int e = record_exists(d, vm, rec);
        if (e == 0)
            (void)vo_store_delete(d->store, str_of(rec, "key"), int_of(rec, "rev"));
        if (e != 1)
            continue;
        times[k] = int_of(rec, "at");
        cands[k++] = rec;
    }
    _cleanup_free_ char *who = vo_asprintf("schedule:%s", schedule);
    if (vo_retention_select(times, k, &rule.keep, keep) == 0) {
        for (size_t j = 0; j < k; j++) {
            if (keep[j])
                continue;
            json_t *task = NULL;
            char *error = NULL;
            vo_tasks_set_requester_who(who);
            int r = !strcmp(str_of(cands[j], "kind"), "snapshot")
                        ? vo_snapshot_delete(d, vm, str_of(cands[j], "name"), &task, &error)
                        : vo_backup_delete(d, str_of(cands[j], "backup"), &task, &error);
            vo_tasks_set_requester_who(NULL);
            if (r < 0)
                log_warn("schedules: '%s' cannot prune %s: %s", schedule,
                         str_of(cands[j], "key"), error ? error : strerror(-r));
            else {
                pending_add(schedule, vm_id, str_of(task, "id")); /* its record goes after it */
                json_object_set_new(cands[j], "deleting", json_string(str_of(task, "id")));
                record_put(d, cands[j]);
            }
            if (r >= 0)
                log_info("schedules: '%s' prunes %s %s (task %s)", schedule,
                         str_of(cands[j], "kind"),
                         str_of(cands[j], "name") ? str_of(cands[j], "name")
                                                  : str_of(cands[j], "backup"),
                         str_of(task, "id"));
            json_decref(task);
            free(error);
        }
    }
    free(times);
    free(cands);
    free(keep);
    json_decref(recs.items);
}

/* ---- rounds ---- */

typedef struct {
    Sched *v;
    size_t n;
} SchedList;

static int collect_sched(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)key;
    SchedList *l = userdata;
    Sched s = { .doc = json_loads(value, 0, NULL), .rev = rev };
    if (!json_is_object(s.doc) || !str_of(s.doc, "name") ||
        vo_schedule_rule(s.doc, &s.rule, NULL) < 0) {
        json_decref(s.doc); /* damaged: nothing runs it */
        return 0;
    }
    l->v = realloc(l->v, (l->n + 1) * sizeof(Sched));
    if (!l->v)
        abort();
    l->v[l->n++] = s;
    return 0;
}

static void sched_list_clear(SchedList *l)
{
    for (size_t i = 0; i < l->n; i++)
        json_decref(l->v[i].doc);
    free(l->v);
    *l = (SchedList){ 0 };
}

/* Whether the schedule selects the VM (its id and name). members: the
 * group's member documents when it selects a group. */
static bool selects(json_t *doc, json_t *members, const char *id, const char *name)
{
    if (json_is_true(json_object_get(doc, "all")))
        return true;
    if (str_of(doc, "vm"))
        return !strcmp(str_of(doc, "vm"), name);
    if (str_of(doc, "group") && members) {
        const char *key;
        json_t *m;
        json_object_foreach(members, key, m) {
            const char *slash = strrchr(key, '/');
            if (slash && !strcmp(slash + 1, id))
                return true;
        }
    }
    return false; /* "project": once projects exist, the project's VMs */
}

static bool is_schedule_key(const char *key)
{
    return !strncmp(key, VO_SCHEDULES_PREFIX, strlen(VO_SCHEDULES_PREFIX));
}

/* The runner's copy of the schedules (its thread only): read again when the
 * host's cluster/ watch saw one change (cluster-follow.h), when woken by a
 * change on this host (vo_schedules_wake), or every
 * VO_CLUSTER_FOLLOW_RECHECK_MS. Due times are still worked out every round
 * from the copy; what a claim compares is the schedule's revision, so a
 * copy behind the store loses its claim, never runs twice. */
static VoClusterFollower follower = { .wants = is_schedule_key };
static struct {
    SchedList list;
    uint64_t mark;
    int64_t at; /* vo_now_ms() of the read; 0: none kept */
} kept;

static void kept_clear(void)
{
    sched_list_clear(&kept.list);
    kept.at = 0;
}

/* The schedules: the runner's copy (use_kept) or read now into *ret;
 * *ret_list points at the one used. */
static int read_schedules(VoDaemon *d, bool use_kept, SchedList *ret, const SchedList **ret_list)
{
    if (use_kept) {
        vo_cluster_follow_add(&follower);
        bool changed = atomic_exchange(&changed_here, false);
        if (changed || !vo_cluster_follow_keep(&follower, kept.mark, kept.at)) {
            kept_clear();
            kept.mark = vo_cluster_follow_mark(&follower);
            int r = vo_store_list(d->store, VO_SCHEDULES_PREFIX, collect_sched, &kept.list);
            if (r < 0) {
                kept_clear();
                return r;
            }
            kept.at = vo_now_ms();
        }
        *ret_list = &kept.list;
        return 0;
    }
    int r = vo_store_list(d->store, VO_SCHEDULES_PREFIX, collect_sched, ret);
    if (r < 0) {
        sched_list_clear(ret);
        return r;
    }
    *ret_list = ret;
    return 0;
}

/* For each schedule (name: only that one) and each VM of this host it
 * selects: consider; and, with prune_all, prune. tasks: the tasks queued
 * are appended when not NULL. */
static int each_local_pair(VoDaemon *d, const char *only, bool prune_all, json_t *tasks)
{
    SchedList read = { 0 };
    const SchedList *list = NULL;
    /* The runner's rounds (no name) use its copy; a run-now reads. */
    int r = read_schedules(d, !only, &read, &list);
    if (r < 0)
        return r;
    const SchedList scheds = *list;
    json_t *vms = vo_vms_list_json(d, true);
    time_t now = vo_schedules_now();
    for (size_t i = 0; i < scheds.n; i++) {
        const Sched *s = &scheds.v[i];
        const char *name = str_of(s->doc, "name");
        if (only && strcmp(only, name))
            continue;
        json_t *members = NULL;
        if (str_of(s->doc, "group"))
            (void)vo_group_members(d, str_of(s->doc, "group"), &members);
        size_t j;
        json_t *vm;
        json_array_foreach(vms, j, vm) {
            const char *id = str_of(vm, "id"), *vm_name = str_of(vm, "name");
            if (!id || !vm_name || !selects(s->doc, members, id, vm_name))
                continue;
            json_t *task = NULL;
            consider(d, s, id, vm_name, now, tasks ? &task : NULL);
            if (task)
                json_array_append_new(tasks, task);
            if (prune_all)
                prune(d, name, id);
        }
        json_decref(members);
    }
    json_decref(vms);
    sched_list_clear(&read);
    return 0;
}

/* Prunes after each of this host's schedule tasks that ended. */
static void prune_ended(VoDaemon *d)
{
    for (;;) {
        Pending p = { 0 };
        pthread_mutex_lock(&pending_lock);
        for (size_t i = 0; i < n_pending; i++) {
            _cleanup_free_ char *state = task_state(d, pending[i].task_id, NULL);
            if (task_busy(state))
                continue;
            p = pending[i];
            pending[i] = pending[--n_pending];
            break;
        }
        pthread_mutex_unlock(&pending_lock);
        if (!p.schedule)
            return;
        prune(d, p.schedule, p.vm_id);
        free(p.schedule);
        free(p.vm_id);
        free(p.task_id);
    }
}

/* No round has read the schedules yet (the runner's thread only). */
static bool first_round;

static void runner_round(void *userdata)
{
    VoDaemon *d = userdata;
    /* The first round also prunes every pair: tasks that ended while
     * vireod was down. */
    int r = each_local_pair(d, NULL, first_round, NULL);
    if (r < 0 && r != -EAGAIN)
        log_warn("schedules: cannot read the schedules: %s", strerror(-r));
    first_round = first_round && r < 0;
    prune_ended(d);
}

int vo_schedules_start(VoDaemon *d)
{
    if (vo_periodic_started(&runner))
        return 0;
    first_round = true;
    return vo_periodic_start(&runner, runner_round, d,
                             clock_file ? ROUND_TEST_CLOCK_MS : ROUND_MS);
}

void vo_schedules_stop(void)
{
    if (!vo_periodic_stop(&runner))
        return;
    kept_clear();
    for (size_t i = 0; i < n_pending; i++) {
        free(pending[i].schedule);
        free(pending[i].vm_id);
        free(pending[i].task_id);
    }
    free(pending);
    pending = NULL;
    n_pending = 0;
}

int vo_schedule_run_now(VoDaemon *d, const char *name, json_t **ret, char **ret_error)
{
    json_t *doc = NULL;
    int64_t rev = 0;
    int r = vo_schedule_get(d, name, &doc, &rev, ret_error);
    if (r < 0)
        return r;
    json_int_t n = (json_int_t)int_of(doc, "run_now") + 1;
    json_object_set_new(doc, "run_now", json_integer(n));
    json_object_set_new(doc, "run_now_at_ms", json_integer(vo_wall_ms()));
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *key = vo_asprintf(VO_SCHEDULES_PREFIX "%s", name);
    r = vo_store_put(d->store, key, text, rev, NULL);
    if (r < 0)
        return vo_error_set(ret_error, r == -ESTALE || r == -ENOENT ? -VO_EIFMATCH : r,
                            "cannot ask schedule '%s' to run: %s", name,
                            r == -ESTALE || r == -ENOENT ? "it changed meanwhile, retry"
                                                         : strerror(-r));
    json_t *tasks = json_array();
    r = each_local_pair(d, name, false, tasks);
    if (r < 0) {
        json_decref(tasks);
        return vo_error_set(ret_error, r, "cannot read the schedules: %s", strerror(-r));
    }
    vo_schedules_wake(); /* the ended tasks are pruned by the runner */
    *ret = json_pack("{s:I, s:o}", "run_now", n, "tasks", tasks);
    return 0;
}
