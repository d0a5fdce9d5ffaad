/* tasks.c: the task registry, its bounded queue and the worker pool (see
 * tasks.h for the scheduling rules), and the operation documents that
 * persist each task in the store. */
#include "jobs/tasks.h"

#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "conf/names.h"
#include "util/cancel.h"
#include "util/time-format.h"
#include "util/util.h"
#include "vireo/errors.h"

typedef enum { TASK_QUEUED, TASK_RUNNING, TASK_SUCCEEDED, TASK_FAILED, TASK_CANCELLED } TaskState;
static const char *const task_state_names[] = { "queued", "running", "succeeded", "failed",
                                                "cancelled" };

static bool finished(TaskState s)
{
    return s == TASK_SUCCEEDED || s == TASK_FAILED || s == TASK_CANCELLED;
}

struct VoTask {
    VoTasks *owner;
    char id[37];
    char *kind, *target, *target_id;
    char *keys[VO_TASK_MAX_KEYS];
    TaskState state;
    int progress;
    char *message;
    char *error_code; /* an API error code name, or "interrupted" */
    char *error_message;
    json_t *result;
    json_t *details; /* vo_task_set_details: live facts of the work, or NULL */
    bool has_requester;
    char who[128]; /* the API's principal ("user:NAME", "token:ID"), or "" */
    int64_t if_match; /* what the request that queued it named (If-Match), 0: none */
    uint32_t uid;
    int32_t pid;
    int64_t created_at, started_at, finished_at;
    bool cancellable, cancel_requested;
    char *cancel_refused; /* why a cancel is refused now (vo_task_refuse_cancel), or NULL */
    VoCancel *cancel; /* while it runs */
    /* The operation document: what was last written (what GET answers),
     * its revision (0: not written yet), when. A task loaded from the store
     * (from before this start) has only doc and the fields above its id. */
    json_t *doc;
    int64_t rev;
    int64_t written_ms;
    bool dirty; /* doc is not in the store yet (a write failed): retried */
    bool loaded;
    VoTaskFn fn;
    void *userdata;
    VoTaskFreeFn free_userdata, undo;
    VoTask *next_queued;
};

/* What the start-up sweep removed for an object being made. */
typedef struct {
    char *owner, *what;
} Cleanup;

struct VoTasks {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    VoTasksLimits limits;
    VoTask **all; /* oldest first */
    size_t n_all;
    VoTask *queue_head, *queue_tail; /* oldest first */
    size_t n_queued;
    VoTask **running; /* one slot per worker, NULL when idle */
    const char **scratch_keys; /* pick(): keys of the tasks skipped */
    size_t scratch_cap;        /* entries scratch_keys holds (>= keys of all queued) */
    pthread_t *workers;
    unsigned n_workers;
    bool stopping;
    VoStore *store; /* NULL: memory only (unit tests) */
    bool dirty_left; /* some task's document is not written yet (retry_dirty) */
    Cleanup *cleanups;
    size_t n_cleanups;
};

typedef struct {
    bool known;
    uint32_t uid;
    int32_t pid;
} Requester;

static _Thread_local Requester requester;
static _Thread_local char requester_who[128];

void vo_tasks_set_requester(bool known, uint32_t uid, int32_t pid)
{
    requester = (Requester){ .known = known, .uid = uid, .pid = pid };
}

void vo_tasks_set_requester_who(const char *who)
{
    snprintf(requester_who, sizeof(requester_who), "%s", who ? who : "");
}

static _Thread_local int64_t request_if_match;

void vo_tasks_set_if_match(int64_t rev)
{
    request_if_match = rev > 0 ? rev : 0;
}

int64_t vo_task_if_match(VoTask *t)
{
    return t->if_match; /* set at submit, never changed */
}

const char *vo_task_id(VoTask *t)
{
    return t->id;
}

static void task_free(VoTask *t)
{
    if (t->free_userdata)
        t->free_userdata(t->userdata);
    free(t->kind);
    free(t->target);
    for (size_t i = 0; i < VO_TASK_MAX_KEYS; i++)
        free(t->keys[i]);
    free(t->message);
    free(t->error_code);
    free(t->error_message);
    free(t->target_id);
    free(t->cancel_refused);
    json_decref(t->result);
    json_decref(t->details);
    json_decref(t->doc);
    vo_cancel_free(t->cancel);
    free(t);
}

/* Caller holds ts->lock: the operation document of a task of this start. */
static json_t *task_to_json(const VoTask *t)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i}", "id", t->id, "kind", t->kind, "target",
                          t->target ? t->target : "", "state", task_state_names[t->state],
                          "progress", t->progress);
    json_object_set_new(o, "target_id", t->target_id ? json_string(t->target_id) : json_null());
    json_object_set_new(o, "message", t->message ? json_string(t->message) : json_null());
    json_object_set_new(o, "error",
                        t->state == TASK_FAILED
                            ? json_pack("{s:s, s:s}", "code",
                                        t->error_code ? t->error_code : "internal", "message",
                                        t->error_message ? t->error_message : "failed")
                            : json_null());
    json_object_set_new(o, "result", t->state == TASK_SUCCEEDED && t->result
                                         ? json_deep_copy(t->result) : json_null());
    if (t->details)
        json_object_set_new(o, "details", json_deep_copy(t->details));
    /* Who: the Unix socket's process (uid, pid; "root" for uid 0), or the
     * HTTPS listeners' principal (user:NAME, token:ID, peer). */
    json_t *by = json_null();
    if (t->has_requester) {
        by = json_pack("{s:I, s:I}", "uid", (json_int_t)t->uid, "pid", (json_int_t)t->pid);
        if (t->who[0] || t->uid == 0)
            json_object_set_new(by, "who", json_string(t->who[0] ? t->who : "root"));
    } else if (t->who[0])
        by = json_pack("{s:s}", "who", t->who);
    json_object_set_new(o, "requested_by", by);
    json_object_set_new(o, "cancellable", json_boolean(t->cancellable && !finished(t->state) &&
                                                       !t->cancel_refused));
    json_object_set_new(o, "cancel_requested", json_boolean(t->cancel_requested));
    json_object_set_new(o, "created_at", vo_time_json(t->created_at));
    json_object_set_new(o, "started_at", t->started_at ? vo_time_json(t->started_at) : json_null());
    json_object_set_new(o, "finished_at", t->finished_at ? vo_time_json(t->finished_at) : json_null());
    return o;
}

/* Caller holds ts->lock: one attempt to put t->doc, stating the revision
 * last written (create-only the first time). A write that finds another
 * revision checks whether the store holds this very document (a write that
 * committed but answered an error): then it counts as written. */
static int put_doc(VoTasks *ts, VoTask *t)
{
    _cleanup_free_ char *text = json_dumps(t->doc, JSON_COMPACT | JSON_SORT_KEYS);
    _cleanup_free_ char *key = vo_asprintf(VO_TASKS_PREFIX "%s", t->id);
    int64_t rev = 0;
    /* The store's lock is a leaf: a short write under ts->lock keeps the
     * writes of one operation in order. */
    int r = text ? vo_store_put(ts->store, key, text, t->rev > 0 ? t->rev : VO_REV_NEW, &rev)
                 : -ENOMEM;
    if (r == -ESTALE || r == -EEXIST) {
        _cleanup_free_ char *now = NULL;
        if (vo_store_get(ts->store, key, &now, &rev) >= 0 && !strcmp(now, text))
            r = 0;
    }
    if (r >= 0) {
        t->rev = rev;
        t->dirty = false;
    }
    return r;
}

/* Caller holds ts->lock: writes doc as t's operation document and keeps it
 * as what GET answers. Steals doc. A failed write leaves the document
 * dirty: the next write of t (a newer document) or the registry's retry
 * timer (retry_dirty) writes it. The final document (the task's end) is
 * what a waiting client and a restart need: its write is retried a few
 * times at once, with backoff, before it is left to the timer. */
static void write_doc(VoTasks *ts, VoTask *t, json_t *doc)
{
    json_decref(t->doc);
    t->doc = doc;
    t->written_ms = vo_now_ms();
    if (!ts->store)
        return;
    t->dirty = true;
    int r = put_doc(ts, t);
    bool final = finished(t->state);
    for (int i = 0; r < 0 && final && i < VO_TASKS_FINAL_WRITE_TRIES - 1; i++) {
        /* ts->lock is held: short, bounded (10 + 20 + 40 + 80 ms). */
        (void)poll(NULL, 0, 10 << i);
        r = put_doc(ts, t);
    }
    if (r < 0) {
        log_warn("task %s: cannot write its operation document%s: %s; retried every %d ms",
                 t->id, final ? " (final)" : "", strerror(-r), VO_TASKS_RETRY_MS);
        ts->dirty_left = true;
        pthread_cond_broadcast(&ts->wake); /* a worker waits with the retry timer now */
    }
}

/* Caller holds ts->lock: writes the documents a failed write left behind
 * (one attempt each); whether some are still dirty. */
static bool retry_dirty(VoTasks *ts)
{
    bool left = false;
    for (size_t i = 0; ts->store && i < ts->n_all; i++) {
        VoTask *t = ts->all[i];
        if (t->dirty && put_doc(ts, t) < 0)
            left = true;
    }
    ts->dirty_left = left;
    return left;
}

/* Caller holds ts->lock: writes t's document now. */
static void persist(VoTasks *ts, VoTask *t)
{
    write_doc(ts, t, task_to_json(t));
}

static bool has_key(const VoTask *t, const char *key)
{
    for (size_t i = 0; i < VO_TASK_MAX_KEYS; i++)
        if (t->keys[i] && !strcmp(t->keys[i], key))
            return true;
    return false;
}

static bool key_listed(const char *const *keys, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(keys[i], key))
            return true;
    return false;
}

/* Caller holds ts->lock: takes queued t, which follows prev (NULL: t is
 * the head), off the queue. */
static void unlink_queued(VoTasks *ts, VoTask *t, VoTask *prev)
{
    if (prev)
        prev->next_queued = t->next_queued;
    else
        ts->queue_head = t->next_queued;
    if (ts->queue_tail == t)
        ts->queue_tail = prev;
    t->next_queued = NULL;
    ts->n_queued--;
}

/* Caller holds ts->lock: the oldest queued task none of whose keys is held
 * by a running task or wanted by an older queued task (so tasks sharing a
 * key run in order), taken off the queue; NULL when none may run now. */
static VoTask *pick(VoTasks *ts)
{
    size_t n_skipped_keys = 0;
    for (VoTask *t = ts->queue_head, *prev = NULL; t; prev = t, t = t->next_queued) {
        bool busy = false;
        for (size_t k = 0; k < VO_TASK_MAX_KEYS && !busy; k++) {
            if (!t->keys[k])
                continue;
            busy = key_listed(ts->scratch_keys, n_skipped_keys, t->keys[k]);
            for (unsigned w = 0; w < ts->n_workers && !busy; w++)
                busy = ts->running[w] && has_key(ts->running[w], t->keys[k]);
        }
        if (!busy) {
            unlink_queued(ts, t, prev);
            return t;
        }
        for (size_t k = 0; k < VO_TASK_MAX_KEYS; k++)
            if (t->keys[k] && !key_listed(ts->scratch_keys, n_skipped_keys, t->keys[k]))
                ts->scratch_keys[n_skipped_keys++] = t->keys[k];
    }
    return NULL;
}

typedef struct {
    VoTasks *ts;
    unsigned slot;
} Worker;

static void *worker_main(void *arg)
{
    Worker *w = arg;
    VoTasks *ts = w->ts;
    pthread_mutex_lock(&ts->lock);
    for (;;) {
        VoTask *t;
        /* When stopping, what is queued still runs (as before the bound). */
        while (!(t = pick(ts)) && !(ts->stopping && !ts->queue_head)) {
            if (!ts->dirty_left) {
                pthread_cond_wait(&ts->wake, &ts->lock);
                continue;
            }
            /* A document a write failed to store: tried again on a timer. */
            struct timespec at;
            clock_gettime(CLOCK_REALTIME, &at);
            at.tv_sec += VO_TASKS_RETRY_MS / 1000;
            at.tv_nsec += (long)(VO_TASKS_RETRY_MS % 1000) * 1000000L;
            if (at.tv_nsec >= 1000000000L) {
                at.tv_sec++;
                at.tv_nsec -= 1000000000L;
            }
            if (pthread_cond_timedwait(&ts->wake, &ts->lock, &at) == ETIMEDOUT)
                (void)retry_dirty(ts);
        }
        if (!t)
            break;
        t->state = TASK_RUNNING;
        t->started_at = vo_wall_ms();
        t->cancel = vo_cancel_new();
        persist(ts, t);
        ts->running[w->slot] = t;
        pthread_mutex_unlock(&ts->lock);

        vo_cancel_set_current(t->cancel);
        int r = t->fn(t, t->userdata);
        vo_cancel_set_current(NULL);

        pthread_mutex_lock(&ts->lock);
        ts->running[w->slot] = NULL;
        if (r == -ECANCELED && t->cancel_requested) {
            /* Its work stopped at the cancel: it did not happen, and what it
             * made is gone. (Another error, even after a cancel was asked,
             * is a failure of its own and keeps its code.) */
            t->state = TASK_CANCELLED;
            free(t->message);
            t->message = vo_strdup(t->error_message ? t->error_message : "cancelled");
        } else if (r < 0) {
            t->state = TASK_FAILED;
            free(t->error_code);
            t->error_code = vo_strdup(vo_error_code_name(vo_error_from_errno(r)));
            if (!t->error_message)
                t->error_message = vo_strdup(strerror(-r));
        } else {
            t->state = TASK_SUCCEEDED;
            t->progress = 100;
        }
        t->finished_at = vo_wall_ms();
        vo_cancel_free(t->cancel);
        t->cancel = NULL;
        persist(ts, t);
        log_info("task %s %s %s: %s%s%s", t->id, t->kind, t->target ? t->target : "",
                 task_state_names[t->state], t->error_message ? ": " : "",
                 t->error_message ? t->error_message : "");
        /* Its keys are free: tasks that waited for them may run now. */
        pthread_cond_broadcast(&ts->wake);
    }
    pthread_mutex_unlock(&ts->lock);
    free(w);
    return NULL;
}

int vo_tasks_running_with_key(VoTasks *ts, const char *key, char **ret_id, char **ret_kind)
{
    int found = 0;
    pthread_mutex_lock(&ts->lock);
    for (unsigned w = 0; w < ts->n_workers && !found; w++)
        if (ts->running[w] && has_key(ts->running[w], key)) {
            *ret_id = vo_strdup(ts->running[w]->id);
            *ret_kind = vo_strdup(ts->running[w]->kind);
            found = 1;
        }
    pthread_mutex_unlock(&ts->lock);
    return found;
}

/* Caller holds ts->lock. */
static bool is_of(const VoTask *t, const char *key, const char *kind, char **ret_id,
                  char **ret_target_id)
{
    if (!t || strcmp(t->kind, kind) || !has_key(t, key))
        return false;
    *ret_id = vo_strdup(t->id);
    *ret_target_id = vo_strdup(t->target_id);
    return true;
}

int vo_tasks_pending_of_kind(VoTasks *ts, const char *key, const char *kind, char **ret_id,
                             char **ret_target_id)
{
    bool found = false;
    pthread_mutex_lock(&ts->lock);
    for (unsigned w = 0; w < ts->n_workers && !found; w++)
        found = is_of(ts->running[w], key, kind, ret_id, ret_target_id);
    for (VoTask *t = ts->queue_head; t && !found; t = t->next_queued)
        found = is_of(t, key, kind, ret_id, ret_target_id);
    pthread_mutex_unlock(&ts->lock);
    return found;
}

int vo_tasks_new(const VoTasksLimits *limits, VoTasks **ret)
{
    VoTasks *ts = vo_malloc0(sizeof(*ts));
    pthread_mutex_init(&ts->lock, NULL);
    pthread_cond_init(&ts->wake, NULL);
    ts->limits = *limits;
    ts->running = vo_malloc0(sizeof(VoTask *) * (limits->workers + 1));
    ts->scratch_cap = (size_t)limits->max_queued * VO_TASK_MAX_KEYS + 1;
    ts->scratch_keys = vo_malloc0(sizeof(char *) * ts->scratch_cap);
    ts->workers = vo_malloc0(sizeof(pthread_t) * (limits->workers + 1));
    for (unsigned i = 0; i < limits->workers; i++) {
        Worker *w = vo_malloc0(sizeof(*w));
        *w = (Worker){ .ts = ts, .slot = i };
        int r = pthread_create(&ts->workers[i], NULL, worker_main, w);
        if (r != 0) {
            free(w);
            vo_tasks_free(ts);
            return -r;
        }
        pthread_mutex_lock(&ts->lock);
        ts->n_workers++;
        pthread_mutex_unlock(&ts->lock);
    }
    *ret = ts;
    return 0;
}

VoTasks *vo_tasks_free(VoTasks *ts)
{
    if (!ts)
        return NULL;
    pthread_mutex_lock(&ts->lock);
    ts->stopping = true;
    pthread_cond_broadcast(&ts->wake);
    pthread_mutex_unlock(&ts->lock);
    for (unsigned i = 0; i < ts->n_workers; i++)
        pthread_join(ts->workers[i], NULL);
    pthread_mutex_lock(&ts->lock);
    if (ts->dirty_left && retry_dirty(ts)) /* a last try: the store closes after us */
        log_warn("tasks: some operation documents could not be written");
    pthread_mutex_unlock(&ts->lock);
    for (size_t i = 0; i < ts->n_all; i++)
        task_free(ts->all[i]);
    free(ts->all);
    for (size_t i = 0; i < ts->n_cleanups; i++) {
        free(ts->cleanups[i].owner);
        free(ts->cleanups[i].what);
    }
    free(ts->cleanups);
    free(ts->workers);
    free(ts->running);
    free(ts->scratch_keys);
    pthread_cond_destroy(&ts->wake);
    pthread_mutex_destroy(&ts->lock);
    free(ts);
    return NULL;
}

/* Caller holds ts->lock: forget the oldest finished tasks beyond
 * VO_TASKS_KEPT, their documents too. */
static void prune(VoTasks *ts)
{
    size_t w = 0;
    size_t excess = ts->n_all > VO_TASKS_KEPT ? ts->n_all - VO_TASKS_KEPT : 0;
    for (size_t i = 0; i < ts->n_all; i++) {
        VoTask *t = ts->all[i];
        if (excess > 0 && finished(t->state)) {
            if (ts->store && t->rev > 0) {
                _cleanup_free_ char *key = vo_asprintf(VO_TASKS_PREFIX "%s", t->id);
                int r = vo_store_delete(ts->store, key, t->rev);
                if (r < 0 && r != -ENOENT)
                    log_warn("task %s: cannot delete %s: %s", t->id, key, strerror(-r));
            }
            task_free(t);
            excess--;
            continue;
        }
        ts->all[w++] = t;
    }
    ts->n_all = w;
}

/* The object the per-object bound counts. */
static const char *bound_key(const char *const *keys, const char *target)
{
    for (size_t i = 0; i < VO_TASK_MAX_KEYS; i++)
        if (keys[i])
            return keys[i];
    return target ? target : "";
}

/* Caller holds ts->lock: a queued or running task of kind on target. */
static VoTask *find_pending(VoTasks *ts, const char *kind, const char *target)
{
    for (size_t i = ts->n_all; i > 0; i--) {
        VoTask *t = ts->all[i - 1];
        if (!finished(t->state) && !t->cancel_requested && !strcmp(t->kind, kind) &&
            !strcmp(t->target ? t->target : "", target ? target : ""))
            return t;
    }
    return NULL;
}

/* Caller holds ts->lock: why desc may not queue now, or NULL. */
static char *refusal(VoTasks *ts, const VoTaskDesc *desc)
{
    if (ts->n_queued >= ts->limits.max_queued)
        return vo_asprintf("too many operations are waiting (%zu queued, at most %u): try "
                           "again once some have finished (see: vireo task list)",
                           ts->n_queued, ts->limits.max_queued);
    const char *key = bound_key(desc->keys, desc->target);
    size_t same = 0;
    for (VoTask *t = ts->queue_head; t; t = t->next_queued)
        if (!strcmp(bound_key((const char *const *)t->keys, t->target), key))
            same++;
    if (same >= ts->limits.max_queued_per_key)
        return vo_asprintf("too many operations on '%s' are waiting (%zu queued, at most %u): "
                           "try again once some have finished (see: vireo task list)",
                           desc->target ? desc->target : key, same,
                           ts->limits.max_queued_per_key);
    return NULL;
}

int vo_tasks_submit(VoTasks *ts, const VoTaskDesc *desc, VoTaskFn fn, void *userdata,
                    VoTaskFreeFn free_userdata, json_t **ret_task, char **ret_error)
{
    pthread_mutex_lock(&ts->lock);
    VoTask *pending = desc->once ? find_pending(ts, desc->kind, desc->target) : NULL;
    char *why = pending || desc->unbounded ? NULL : refusal(ts, desc);
    if (pending || why) {
        int r = pending ? 1 : -EUSERS;
        if (pending)
            *ret_task = json_deep_copy(pending->doc);
        else
            *ret_error = why;
        pthread_mutex_unlock(&ts->lock);
        return r;
    }

    VoTask *t = vo_malloc0(sizeof(*t));
    t->owner = ts;
    if (vo_uuid_generate(t->id) < 0)
        abort();
    t->kind = vo_strdup(desc->kind);
    t->target = vo_strdup(desc->target);
    t->target_id = vo_strdup(desc->target_id);
    t->cancellable = desc->cancellable;
    t->undo = desc->undo;
    t->has_requester = requester.known;
    t->uid = requester.uid;
    t->pid = requester.pid;
    memcpy(t->who, requester_who, sizeof(t->who));
    t->if_match = request_if_match;
    for (size_t i = 0, n = 0; i < VO_TASK_MAX_KEYS; i++)
        if (desc->keys[i])
            t->keys[n++] = vo_strdup(desc->keys[i]);
    t->fn = fn;
    t->userdata = userdata;
    t->free_userdata = free_userdata;
    t->created_at = vo_wall_ms();

    ts->all = realloc(ts->all, sizeof(VoTask *) * (ts->n_all + 1));
    if (!ts->all)
        abort();
    ts->all[ts->n_all++] = t;
    if (ts->queue_tail)
        ts->queue_tail->next_queued = t;
    else
        ts->queue_head = t;
    ts->queue_tail = t;
    ts->n_queued++;
    /* Unbounded tasks (autostart) may queue past max_queued: pick() lists
     * the keys of every queued task it skips. */
    if (ts->n_queued * VO_TASK_MAX_KEYS >= ts->scratch_cap) {
        ts->scratch_cap = ts->n_queued * VO_TASK_MAX_KEYS * 2 + 1;
        ts->scratch_keys = realloc(ts->scratch_keys, sizeof(char *) * ts->scratch_cap);
        if (!ts->scratch_keys)
            abort();
    }
    persist(ts, t);
    *ret_task = json_deep_copy(t->doc);
    prune(ts);
    pthread_cond_broadcast(&ts->wake);
    pthread_mutex_unlock(&ts->lock);
    return 0;
}
json_t *vo_tasks_get_json(VoTasks *ts, const char *id)
{
    json_t *j = NULL;
    pthread_mutex_lock(&ts->lock);
    for (size_t i = 0; i < ts->n_all && !j; i++)
        if (!strcmp(ts->all[i]->id, id))
            j = json_deep_copy(ts->all[i]->doc);
    pthread_mutex_unlock(&ts->lock);
    return j;
}

json_t *vo_tasks_list_json(VoTasks *ts)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&ts->lock);
    for (size_t i = ts->n_all; i > 0; i--)
        json_array_append_new(arr, json_deep_copy(ts->all[i - 1]->doc));
    pthread_mutex_unlock(&ts->lock);
    return arr;
}

void vo_task_progress(VoTask *t, int percent, const char *message)
{
    VoTasks *ts = t->owner;
    pthread_mutex_lock(&ts->lock);
    bool new_message = !t->message != !message || (message && strcmp(t->message, message));
    t->progress = percent;
    free(t->message);
    t->message = vo_strdup(message);
    /* Throttled: a qemu-img reports every percent. */
    if (new_message || vo_now_ms() - t->written_ms >= VO_TASKS_PROGRESS_WRITE_MS)
        persist(ts, t);
    pthread_mutex_unlock(&ts->lock);
}

void vo_task_set_details(VoTask *t, int percent, const char *message, json_t *details)
{
    VoTasks *ts = t->owner;
    pthread_mutex_lock(&ts->lock);
    bool new_message = !t->message != !message || (message && strcmp(t->message, message));
    t->progress = percent;
    free(t->message);
    t->message = vo_strdup(message);
    json_decref(t->details);
    t->details = details;
    if (new_message || vo_now_ms() - t->written_ms >= VO_TASKS_PROGRESS_WRITE_MS)
        persist(ts, t);
    pthread_mutex_unlock(&ts->lock);
}

void vo_task_set_details_unwritten(VoTask *t, int percent, const char *message,
                                   json_t *details)
{
    VoTasks *ts = t->owner;
    pthread_mutex_lock(&ts->lock);
    t->progress = percent;
    free(t->message);
    t->message = vo_strdup(message);
    json_decref(t->details);
    t->details = details;
    json_decref(t->doc); /* not dirty: the next write carries it */
    t->doc = task_to_json(t);
    pthread_mutex_unlock(&ts->lock);
}

void vo_task_set_result(VoTask *t, json_t *result)
{
    pthread_mutex_lock(&t->owner->lock);
    json_decref(t->result);
    t->result = result;
    pthread_mutex_unlock(&t->owner->lock);
}

void vo_task_refuse_cancel(VoTask *t, const char *why)
{
    pthread_mutex_lock(&t->owner->lock);
    free(t->cancel_refused);
    t->cancel_refused = vo_strdup(why);
    persist(t->owner, t); /* "cancellable" says so */
    pthread_mutex_unlock(&t->owner->lock);
}

bool vo_task_cancelled(VoTask *t)
{
    pthread_mutex_lock(&t->owner->lock);
    bool c = t->cancel_requested;
    pthread_mutex_unlock(&t->owner->lock);
    return c;
}

int vo_task_fail(VoTask *t, int negative_errno, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vo_vasprintf(fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&t->owner->lock);
    free(t->error_message);
    t->error_message = msg;
    pthread_mutex_unlock(&t->owner->lock);
    return negative_errno;
}

/* ---- cancel ----------------------------------------------------------------- */

static VoTask *find_task(VoTasks *ts, const char *id)
{
    for (size_t i = 0; i < ts->n_all; i++)
        if (!strcmp(ts->all[i]->id, id))
            return ts->all[i];
    return NULL;
}

/* Caller holds ts->lock: takes t off the queue. */
static void unqueue(VoTasks *ts, VoTask *t)
{
    for (VoTask *q = ts->queue_head, *prev = NULL; q; prev = q, q = q->next_queued)
        if (q == t) {
            unlink_queued(ts, t, prev);
            return;
        }
}

int vo_tasks_cancel(VoTasks *ts, const char *id, json_t **ret_task, char **ret_error)
{
    return vo_tasks_cancel_at(ts, id, 0, ret_task, ret_error);
}

int vo_tasks_cancel_at(VoTasks *ts, const char *id, int64_t expected, json_t **ret_task,
                       char **ret_error)
{
    pthread_mutex_lock(&ts->lock);
    VoTask *t = find_task(ts, id);
    int r;
    if (!t) {
        r = vo_error_set(ret_error, -ENOENT, "task '%s' does not exist (see: vireo task list)",
                         id);
    } else if (expected > 0 && t->rev != expected) {
        /* If-Match, under the lock every write of the document holds. */
        r = vo_error_set(ret_error, -VO_EIFMATCH, "the task changed: it is at revision %lld, "
                         "not %lld (If-Match); read it again", (long long)t->rev,
                         (long long)expected);
    } else if (finished(t->state)) {
        r = vo_error_set(ret_error, -EBUSY, "task '%s' (%s '%s') has %s already: only a queued "
                         "or running task can be cancelled", id, t->kind, t->target ? t->target : "",
                         task_state_names[t->state]);
    } else if (!t->cancellable) {
        r = vo_error_set(ret_error, -EBUSY, "a %s task cannot be cancelled: wait for it to "
                         "finish (see: vireo task show %s); cancellable are image-import, "
                         "volume-import, volume-clone, volume-clone-linked, volume-flatten, "
                         "clone (of a VM), migrate, move, backup-create, backup-restore and "
                         "backup-verify", t->kind, id);
    } else if (t->state == TASK_RUNNING && t->cancel_refused && !t->cancel_requested) {
        r = vo_error_set(ret_error, -EBUSY, "task '%s' (%s '%s') cannot be cancelled now: %s",
                         id, t->kind, t->target ? t->target : "", t->cancel_refused);
    } else if (t->state == TASK_QUEUED && !t->cancel_requested) {
        /* Off the queue (no worker takes it), then what the submitter
         * prepared is undone (with ts->lock released: undo takes the
         * owner's locks), and only then is it cancelled for everyone to
         * see: a client that sees "cancelled" finds the reservation gone. A
         * second cancel meanwhile is answered as for a running one. */
        unqueue(ts, t);
        t->cancel_requested = true;
        void *userdata = t->userdata;
        VoTaskFreeFn undo = t->undo, free_userdata = t->free_userdata;
        t->userdata = NULL;
        t->free_userdata = NULL;
        pthread_mutex_unlock(&ts->lock);
        if (undo)
            undo(userdata);
        pthread_mutex_lock(&ts->lock);
        t->state = TASK_CANCELLED;
        t->finished_at = vo_wall_ms();
        free(t->message);
        t->message = vo_strdup("cancelled before it started");
        persist(ts, t);
        log_info("task %s %s %s: cancelled while queued", t->id, t->kind,
                 t->target ? t->target : "");
        *ret_task = json_deep_copy(t->doc);
        /* Tasks that waited behind it (same keys) may run now. */
        pthread_cond_broadcast(&ts->wake);
        pthread_mutex_unlock(&ts->lock);
        if (free_userdata)
            free_userdata(userdata);
        return 0;
    } else {
        if (!t->cancel_requested) {
            t->cancel_requested = true;
            vo_cancel_request(t->cancel);
            free(t->message);
            t->message = vo_strdup("cancelling");
            persist(ts, t);
            log_info("task %s %s %s: cancel asked", t->id, t->kind, t->target ? t->target : "");
        }
        *ret_task = json_deep_copy(t->doc);
        r = 1;
    }
    pthread_mutex_unlock(&ts->lock);
    return r;
}

/* ---- after a restart ---------------------------------------------------------- */

void vo_tasks_note_cleanup(VoTasks *ts, const char *owner, const char *what)
{
    pthread_mutex_lock(&ts->lock);
    ts->cleanups = realloc(ts->cleanups, sizeof(Cleanup) * (ts->n_cleanups + 1));
    if (!ts->cleanups)
        abort();
    ts->cleanups[ts->n_cleanups++] = (Cleanup){ .owner = vo_strdup(owner),
                                                .what = vo_strdup(what) };
    pthread_mutex_unlock(&ts->lock);
}

typedef struct {
    json_t **docs;
    int64_t *revs;
    size_t n;
} Found;

static int collect_doc(const char *key, const char *value, int64_t rev, void *userdata)
{
    Found *f = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "id"));
    if (!json_is_object(doc) || !id || !vo_uuid_valid(id) ||
        strcmp(key + strlen(VO_TASKS_PREFIX), id) ||
        !json_is_string(json_object_get(doc, "state")) ||
        !json_is_string(json_object_get(doc, "kind"))) {
        log_warn("tasks: %s is not an operation document; ignored", key);
        json_decref(doc);
        return 0;
    }
    f->docs = realloc(f->docs, sizeof(json_t *) * (f->n + 1));
    f->revs = realloc(f->revs, sizeof(int64_t) * (f->n + 1));
    if (!f->docs || !f->revs)
        abort();
    f->docs[f->n] = doc;
    f->revs[f->n++] = rev;
    return 0;
}

static const char *doc_str(json_t *doc, const char *key)
{
    const char *s = json_string_value(json_object_get(doc, key));
    return s ? s : "";
}

/* Oldest first: by created_at (whole seconds), then id. */
static int doc_order(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(doc_str(x, "created_at"), doc_str(y, "created_at"));
    return c ? c : strcmp(doc_str(x, "id"), doc_str(y, "id"));
}

/* Caller holds ts->lock: the store key of the object an operation was
 * making, as intents and the sweep name it; NULL when none. */
static char *made_object(json_t *doc)
{
    const char *kind = doc_str(doc, "kind");
    if (!strncmp(kind, "volume-", 7) && strcmp(kind, "volume-delete") &&
        strcmp(kind, "volume-resize") && *doc_str(doc, "target_id"))
        return vo_asprintf("volumes/%s", doc_str(doc, "target_id"));
    if (!strcmp(kind, "image-import"))
        return vo_asprintf("images/%s", doc_str(doc, "target"));
    /* A backup's id is known once it is made: its task says it as its
     * progress message at 99 (backups.c), after the backup's document. */
    if (!strcmp(kind, "backup-create") &&
        json_integer_value(json_object_get(doc, "progress")) == 99 && *doc_str(doc, "message"))
        return vo_asprintf("backups/%s", doc_str(doc, "message"));
    return NULL;
}

/* Caller holds ts->lock: what the sweep removed for the object doc made. */
static char *cleaned_for(VoTasks *ts, json_t *doc)
{
    _cleanup_free_ char *owner = made_object(doc);
    char *list = NULL;
    for (size_t i = 0; owner && i < ts->n_cleanups; i++) {
        if (strcmp(ts->cleanups[i].owner, owner))
            continue;
        char *next = vo_asprintf("%s%s%s", list ? list : "", list ? ", " : "",
                                 ts->cleanups[i].what);
        free(list);
        list = next;
    }
    return list;
}

/* Caller holds ts->lock: the operation's work was complete when vireod
 * stopped (killed between the commit of what it made and its own final
 * write): the object it made exists in the store (its document is written
 * only once the object is whole: storage-tasks.c, images.c, backups.c) and the
 * sweep removed nothing for it. */
static bool completed_before_stop(VoTasks *ts, VoTask *t, const char *removed)
{
    _cleanup_free_ char *made = made_object(t->doc);
    _cleanup_free_ char *value = NULL;
    if (!made || removed || vo_store_get(ts->store, made, &value, NULL) < 0)
        return false;
    const char *was = doc_str(t->doc, "state");
    json_t *doc = json_deep_copy(t->doc);
    json_object_set_new(doc, "state", json_string("succeeded"));
    json_object_set_new(doc, "progress", json_integer(100));
    _cleanup_free_ char *msg = vo_asprintf("completed before vireod stopped (it was %s; %s "
                                           "exists)", was, made);
    json_object_set_new(doc, "message", json_string(msg));
    json_object_set_new(doc, "error", json_null());
    if (!strncmp(made, "backups/", 8) && !json_is_object(json_object_get(doc, "result")))
        json_object_set_new(doc, "result", json_pack("{s:s}", "backup", made + 8));
    json_object_set_new(doc, "cancellable", json_false());
    json_object_set_new(doc, "finished_at", vo_time_json(vo_wall_ms()));
    t->state = TASK_SUCCEEDED;
    write_doc(ts, t, doc);
    log_info("task %s %s %s: %s", t->id, t->kind, t->target, msg);
    return true;
}

/* Caller holds ts->lock: an operation cut short by a stop of vireod ends
 * as failed, "interrupted" (or succeeded when its work was complete). */
static void mark_interrupted(VoTasks *ts, VoTask *t)
{
    const char *was = doc_str(t->doc, "state");
    _cleanup_free_ char *removed = cleaned_for(ts, t->doc);
    if (completed_before_stop(ts, t, removed))
        return;
    _cleanup_free_ char *msg =
        removed ? vo_asprintf("interrupted: vireod stopped while it was %s; removed what it "
                              "had half-made: %s", was, removed)
                : vo_asprintf("interrupted: vireod stopped while it was %s; the start-up sweep "
                              "removed anything it had half-made", was);
    json_t *doc = json_deep_copy(t->doc);
    json_object_set_new(doc, "state", json_string("failed"));
    json_object_set_new(doc, "message", json_string(removed ? "interrupted; cleaned up"
                                                            : "interrupted"));
    json_object_set_new(doc, "error", json_pack("{s:s, s:s}", "code", "interrupted", "message",
                                                msg));
    json_object_set_new(doc, "cancellable", json_false());
    json_object_set_new(doc, "finished_at", vo_time_json(vo_wall_ms()));
    t->state = TASK_FAILED;
    write_doc(ts, t, doc);
    log_info("task %s %s %s: %s", t->id, t->kind, t->target, msg);
}

static TaskState state_named(const char *name)
{
    for (size_t i = 0; i < ELEMENTSOF(task_state_names); i++)
        if (!strcmp(task_state_names[i], name))
            return (TaskState)i;
    return TASK_RUNNING; /* unknown: treated as cut short */
}

int vo_tasks_attach_store(VoTasks *ts, VoStore *store)
{
    Found f = { 0 };
    int r = vo_store_list(store, VO_TASKS_PREFIX, collect_doc, &f);
    if (r < 0) {
        for (size_t i = 0; i < f.n; i++)
            json_decref(f.docs[i]);
        free(f.docs);
        free(f.revs);
        return r;
    }
    /* Sorting moves docs; their revisions go along through the map below. */
    json_t **sorted = vo_malloc0(sizeof(json_t *) * (f.n + 1));
    if (f.n)
        memcpy(sorted, f.docs, sizeof(json_t *) * f.n);
    qsort(sorted, f.n, sizeof(json_t *), doc_order);

    pthread_mutex_lock(&ts->lock);
    ts->store = store;
    ts->all = realloc(ts->all, sizeof(VoTask *) * (ts->n_all + f.n + 1));
    if (!ts->all)
        abort();
    /* Before any task of this start (none is submitted before this). */
    if (ts->n_all)
        memmove(ts->all + f.n, ts->all, sizeof(VoTask *) * ts->n_all);
    size_t interrupted = 0;
    for (size_t i = 0; i < f.n; i++) {
        VoTask *t = vo_malloc0(sizeof(*t));
        t->owner = ts;
        t->loaded = true;
        t->doc = sorted[i];
        for (size_t k = 0; k < f.n; k++)
            if (f.docs[k] == sorted[i])
                t->rev = f.revs[k];
        snprintf(t->id, sizeof(t->id), "%s", doc_str(t->doc, "id"));
        t->kind = vo_strdup(doc_str(t->doc, "kind"));
        t->target = vo_strdup(doc_str(t->doc, "target"));
        t->state = state_named(doc_str(t->doc, "state"));
        if (!finished(t->state)) {
            mark_interrupted(ts, t);
            interrupted++;
        }
        ts->all[i] = t;
    }
    ts->n_all += f.n;
    prune(ts);
    pthread_mutex_unlock(&ts->lock);
    if (f.n)
        log_info("tasks: %zu operation(s) from before, %zu of them interrupted", f.n,
                 interrupted);
    free(sorted);
    free(f.docs);
    free(f.revs);
    return 0;
}

/* ---- notes: decisions recorded as tasks ---- */

typedef struct {
    char *message;
    json_t *result;
} Note;

static void note_free(void *p)
{
    Note *n = p;
    free(n->message);
    json_decref(n->result);
    free(n);
}

static int note_run(VoTask *t, void *userdata)
{
    Note *n = userdata;
    vo_task_set_details(t, 100, n->message, NULL);
    vo_task_set_result(t, json_incref(n->result));
    return 0;
}

void vo_tasks_note(VoTasks *ts, const VoTaskDesc *desc, char *message, json_t *result)
{
    Note *n = vo_malloc0(sizeof(*n));
    *n = (Note){ .message = message, .result = result };
    json_t *task = NULL;
    char *error = NULL;
    if (vo_tasks_submit(ts, desc, note_run, n, note_free, &task, &error) != 0)
        note_free(n);
    json_decref(task);
    free(error);
}
