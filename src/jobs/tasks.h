/* tasks.h: long operations as tasks: an id answered at once, progress, a
 * result or an error; run on a small worker pool; kept in memory (the newest
 * few hundred).
 *
 * Scheduling: a task names the objects it works on (keys, e.g. a VM's id).
 * At most one task per key runs at a time: a task whose key is busy waits in
 * the queue, not on a worker, so one slow VM never holds more than one worker
 * and the next runnable task is taken instead; tasks sharing a key run in the
 * order they were submitted. The queue is bounded, in total and per object:
 * beyond it a submission is refused (-EUSERS, the API's 429). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

typedef struct VoTask VoTask;
typedef struct VoTasks VoTasks;

/* Runs on a worker. Returns 0, or a negative errno after vo_task_fail (or
 * without: then the errno's text becomes the message). */
typedef int (*VoTaskFn)(VoTask *t, void *userdata);
typedef void (*VoTaskFreeFn)(void *userdata);

/* vireod's limits (docs/api.md, "Limits"). */
#define VO_TASKS_WORKERS 8
#define VO_TASKS_MAX_QUEUED 256        /* waiting tasks, all objects together */
#define VO_TASKS_MAX_QUEUED_PER_KEY 16 /* waiting tasks of one object */

typedef struct {
    unsigned workers;
    unsigned max_queued;
    unsigned max_queued_per_key;
} VoTasksLimits;

#define VO_TASK_MAX_KEYS 3

typedef struct {
    const char *kind;   /* "start", "backup-verify", ... */
    const char *target; /* what the user named (shown in the task) */
    /* The objects the task works on; unused entries NULL. keys[0] (or, with
     * no key, target) is the object the per-object bound counts. */
    const char *keys[VO_TASK_MAX_KEYS];
    /* A queued or running task of the same kind and target is answered
     * instead of a new one (e.g. at most one verify per backup). */
    bool once;
    /* Queued by vireod itself (autostart at boot), never refused. */
    bool unbounded;
} VoTaskDesc;

int vo_tasks_new(const VoTasksLimits *limits, VoTasks **ret);
VoTasks *vo_tasks_free(VoTasks *ts); /* waits for running tasks */

/* Queues fn and gives the task's JSON (new reference). Returns 0 for a new
 * task (userdata is the task's from here on), 1 when an existing task was
 * answered (desc->once), or -EUSERS with *ret_error when the queue is full;
 * for these two userdata stays the caller's, to undo what it prepared. */
int vo_tasks_submit(VoTasks *ts, const VoTaskDesc *desc, VoTaskFn fn, void *userdata,
                    VoTaskFreeFn free_userdata, json_t **ret_task, char **ret_error);

/* New reference, or NULL when unknown. */
json_t *vo_tasks_get_json(VoTasks *ts, const char *id);
json_t *vo_tasks_list_json(VoTasks *ts);

/* From inside a task. */
void vo_task_progress(VoTask *t, int percent, const char *message);
int vo_task_fail(VoTask *t, int negative_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
