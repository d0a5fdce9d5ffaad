/* tasks.c: the task registry, its bounded queue and the worker pool (see
 * tasks.h for the scheduling rules). */
#include "jobs/tasks.h"

#include <pthread.h>
#include <string.h>

#include "conf/names.h"
#include "util/time-format.h"
#include "util/util.h"
#include "vireo/errors.h"

#define TASKS_KEPT 500

typedef enum { TASK_QUEUED, TASK_RUNNING, TASK_SUCCEEDED, TASK_FAILED } TaskState;
static const char *const task_state_names[] = { "queued", "running", "succeeded", "failed" };

struct VoTask {
    VoTasks *owner;
    char id[37];
    char *kind, *target;
    char *keys[VO_TASK_MAX_KEYS];
    TaskState state;
    int progress;
    char *message;
    VoErrorCode error_code;
    char *error_message;
    int64_t created_at, finished_at;
    VoTaskFn fn;
    void *userdata;
    VoTaskFreeFn free_userdata;
    VoTask *next_queued;
};

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
};

static void task_free(VoTask *t)
{
    if (t->free_userdata)
        t->free_userdata(t->userdata);
    free(t->kind);
    free(t->target);
    for (size_t i = 0; i < VO_TASK_MAX_KEYS; i++)
        free(t->keys[i]);
    free(t->message);
    free(t->error_message);
    free(t);
}

/* Caller holds ts->lock. */
static json_t *task_to_json(const VoTask *t)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i}", "id", t->id, "kind", t->kind, "target",
                          t->target ? t->target : "", "state", task_state_names[t->state],
                          "progress", t->progress);
    json_object_set_new(o, "message", t->message ? json_string(t->message) : json_null());
    json_object_set_new(o, "error",
                        t->state == TASK_FAILED
                            ? json_pack("{s:s, s:s}", "code", vo_error_code_name(t->error_code),
                                        "message", t->error_message ? t->error_message : "failed")
                            : json_null());
    json_object_set_new(o, "created_at", vo_time_json(t->created_at));
    json_object_set_new(o, "finished_at", t->finished_at ? vo_time_json(t->finished_at) : json_null());
    return o;
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
            if (prev)
                prev->next_queued = t->next_queued;
            else
                ts->queue_head = t->next_queued;
            if (ts->queue_tail == t)
                ts->queue_tail = prev;
            t->next_queued = NULL;
            ts->n_queued--;
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
        while (!(t = pick(ts)) && !(ts->stopping && !ts->queue_head))
            pthread_cond_wait(&ts->wake, &ts->lock);
        if (!t)
            break;
        t->state = TASK_RUNNING;
        ts->running[w->slot] = t;
        pthread_mutex_unlock(&ts->lock);

        int r = t->fn(t, t->userdata);

        pthread_mutex_lock(&ts->lock);
        ts->running[w->slot] = NULL;
        if (r < 0) {
            t->state = TASK_FAILED;
            t->error_code = vo_error_from_errno(r);
            if (!t->error_message)
                t->error_message = vo_strdup(strerror(-r));
        } else {
            t->state = TASK_SUCCEEDED;
            t->progress = 100;
        }
        t->finished_at = vo_wall_ms();
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
    for (size_t i = 0; i < ts->n_all; i++)
        task_free(ts->all[i]);
    free(ts->all);
    free(ts->workers);
    free(ts->running);
    free(ts->scratch_keys);
    pthread_cond_destroy(&ts->wake);
    pthread_mutex_destroy(&ts->lock);
    free(ts);
    return NULL;
}

/* Caller holds ts->lock: forget the oldest finished tasks beyond TASKS_KEPT. */
static void prune(VoTasks *ts)
{
    size_t w = 0;
    size_t excess = ts->n_all > TASKS_KEPT ? ts->n_all - TASKS_KEPT : 0;
    for (size_t i = 0; i < ts->n_all; i++) {
        VoTask *t = ts->all[i];
        if (excess > 0 && (t->state == TASK_SUCCEEDED || t->state == TASK_FAILED)) {
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
        if ((t->state == TASK_QUEUED || t->state == TASK_RUNNING) && !strcmp(t->kind, kind) &&
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
            *ret_task = task_to_json(pending);
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
    *ret_task = task_to_json(t);
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
            j = task_to_json(ts->all[i]);
    pthread_mutex_unlock(&ts->lock);
    return j;
}

json_t *vo_tasks_list_json(VoTasks *ts)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&ts->lock);
    for (size_t i = ts->n_all; i > 0; i--)
        json_array_append_new(arr, task_to_json(ts->all[i - 1]));
    pthread_mutex_unlock(&ts->lock);
    return arr;
}

void vo_task_progress(VoTask *t, int percent, const char *message)
{
    pthread_mutex_lock(&t->owner->lock);
    t->progress = percent;
    free(t->message);
    t->message = vo_strdup(message);
    pthread_mutex_unlock(&t->owner->lock);
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
