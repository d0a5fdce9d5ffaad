/* tasks.c: the task registry and worker pool (see tasks.h). */
#include "jobs/tasks.h"

#include <pthread.h>
#include <stdbool.h>
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
    VoTask **all; /* oldest first */
    size_t n_all;
    VoTask *queue_head, *queue_tail;
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

static void *worker_main(void *arg)
{
    VoTasks *ts = arg;
    pthread_mutex_lock(&ts->lock);
    for (;;) {
        while (!ts->queue_head && !ts->stopping)
            pthread_cond_wait(&ts->wake, &ts->lock);
        if (!ts->queue_head)
            break;
        VoTask *t = ts->queue_head;
        ts->queue_head = t->next_queued;
        if (!ts->queue_head)
            ts->queue_tail = NULL;
        t->state = TASK_RUNNING;
        pthread_mutex_unlock(&ts->lock);

        int r = t->fn(t, t->userdata);

        pthread_mutex_lock(&ts->lock);
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
    }
    pthread_mutex_unlock(&ts->lock);
    return NULL;
}

int vo_tasks_new(unsigned workers, VoTasks **ret)
{
    VoTasks *ts = vo_malloc0(sizeof(*ts));
    pthread_mutex_init(&ts->lock, NULL);
    pthread_cond_init(&ts->wake, NULL);
    ts->workers = vo_malloc0(sizeof(pthread_t) * workers);
    for (unsigned i = 0; i < workers; i++) {
        int r = pthread_create(&ts->workers[i], NULL, worker_main, ts);
        if (r != 0) {
            vo_tasks_free(ts);
            return -r;
        }
        ts->n_workers++;
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

json_t *vo_tasks_submit(VoTasks *ts, const char *kind, const char *target, VoTaskFn fn,
                        void *userdata, VoTaskFreeFn free_userdata)
{
    VoTask *t = vo_malloc0(sizeof(*t));
    t->owner = ts;
    if (vo_uuid_generate(t->id) < 0)
        abort();
    t->kind = vo_strdup(kind);
    t->target = vo_strdup(target);
    t->fn = fn;
    t->userdata = userdata;
    t->free_userdata = free_userdata;
    t->created_at = vo_wall_ms();

    pthread_mutex_lock(&ts->lock);
    ts->all = realloc(ts->all, sizeof(VoTask *) * (ts->n_all + 1));
    if (!ts->all)
        abort();
    ts->all[ts->n_all++] = t;
    if (ts->queue_tail)
        ts->queue_tail->next_queued = t;
    else
        ts->queue_head = t;
    ts->queue_tail = t;
    json_t *j = task_to_json(t);
    prune(ts);
    pthread_cond_signal(&ts->wake);
    pthread_mutex_unlock(&ts->lock);
    return j;
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
