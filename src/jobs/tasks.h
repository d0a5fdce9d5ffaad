/* tasks.h: long operations as tasks: an id answered at once, progress, a
 * result or an error; run on a small worker pool; kept in memory (the newest
 * few hundred). */
#pragma once

#include <jansson.h>

typedef struct VoTask VoTask;
typedef struct VoTasks VoTasks;

/* Runs on a worker. Returns 0, or a negative errno after vo_task_fail (or
 * without: then the errno's text becomes the message). */
typedef int (*VoTaskFn)(VoTask *t, void *userdata);
typedef void (*VoTaskFreeFn)(void *userdata);

int vo_tasks_new(unsigned workers, VoTasks **ret);
VoTasks *vo_tasks_free(VoTasks *ts); /* waits for running tasks */

/* Queues fn; returns the task's JSON (new reference) at submission. */
json_t *vo_tasks_submit(VoTasks *ts, const char *kind, const char *target, VoTaskFn fn,
                        void *userdata, VoTaskFreeFn free_userdata);

/* New reference, or NULL when unknown. */
json_t *vo_tasks_get_json(VoTasks *ts, const char *id);
json_t *vo_tasks_list_json(VoTasks *ts);

/* From inside a task. */
void vo_task_progress(VoTask *t, int percent, const char *message);
int vo_task_fail(VoTask *t, int negative_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
