/* tasks.h: long operations as tasks: an id answered at once, progress, a
 * result or an error; run on a small worker pool. Each task is an operation
 * document "operations/<id>" in the store (docs/internals.md, "Operations"):
 * written on every state change (progress at most a few times a second),
 * each write stating the revision it expects; its value is what GET
 * /v1/tasks/<id> answers. The newest VO_TASKS_KEPT finished ones are kept;
 * after a restart the ones found queued or running end as failed,
 * "interrupted". Some kinds can be cancelled (vo_tasks_cancel).
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
#include <stdint.h>

#include "state/store.h"

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

#define VO_TASKS_KEPT 500 /* finished operations kept (documents and memory) */
#define VO_TASKS_PREFIX "operations/"
/* Progress writes of one operation: at most one per this many ms (a new
 * message, and every state change, is written at once). */
#define VO_TASKS_PROGRESS_WRITE_MS 250
/* A failed write of an operation document (the store busy or failing): the
 * final one is tried this many times at once (backoff 10, 20, 40, 80 ms),
 * then any document not written is tried again every VO_TASKS_RETRY_MS
 * until it is (GET answers the newest meanwhile). */
#define VO_TASKS_FINAL_WRITE_TRIES 5
#define VO_TASKS_RETRY_MS 1000

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
    /* The object's id where it has one (a VM's uuid, "POOL/NAME" of a
     * volume), shown as target_id; NULL: none. */
    const char *target_id;
    /* May be cancelled (vo_tasks_cancel): its work stops at the cancel
     * (util/cancel.h: qemu-img children and QEMU block jobs are stopped for
     * it, fn returns -ECANCELED after undoing what it made). */
    bool cancellable;
    /* Cancelled before it ran: undoes what the submitter prepared for fn
     * (a reservation); called before free_userdata. NULL: nothing to undo. */
    VoTaskFreeFn undo;
} VoTaskDesc;

int vo_tasks_new(const VoTasksLimits *limits, VoTasks **ret);
VoTasks *vo_tasks_free(VoTasks *ts); /* waits for running tasks */

/* Makes the tasks operation documents in store from here on (call once, at
 * start, before the first submit): loads those found (oldest first); the
 * ones queued or running when vireod stopped become failed with error
 * "interrupted", naming what the start-up sweep removed for them
 * (vo_tasks_note_cleanup). 0 or -errno (the store could not be read). */
int vo_tasks_attach_store(VoTasks *ts, VoStore *store);
/* From the start-up sweep (before vo_tasks_attach_store): it removed what
 * (a path) that the object at store key owner ("volumes/POOL/NAME",
 * "images/NAME") was being made from. */
void vo_tasks_note_cleanup(VoTasks *ts, const char *owner, const char *what);

/* Who asks for the operations queued by the calling thread (the API server
 * sets it around a request from the Unix socket peer's credentials; known
 * false clears it). */
void vo_tasks_set_requester(bool known, uint32_t uid, int32_t pid);
/* And who that is to the API (an HTTPS listener's principal: "user:NAME",
 * "token:ID", "peer"), recorded as requested_by.who; NULL clears it. */
void vo_tasks_set_requester_who(const char *who);
/* The revision the request on the calling thread names (If-Match; 0: none):
 * the tasks it queues carry it (vo_task_if_match), so the work compares it
 * with its object's revision under the object's lock before changing
 * anything. The API server sets it from the header and clears it after each
 * request. */
void vo_tasks_set_if_match(int64_t rev);

/* Cancels task id: 0 when it was queued (it is cancelled now), 1 when it runs
 * (its work is told to stop; it ends as cancelled, or succeeded when it was
 * done already), -ENOENT when unknown, -EBUSY (with *ret_error) when it has
 * finished, its kind cannot be cancelled or its work refuses it now
 * (vo_task_refuse_cancel). *ret_task: its JSON then. */
int vo_tasks_cancel(VoTasks *ts, const char *id, json_t **ret_task, char **ret_error);
/* The same with If-Match: expected > 0 is the revision of the operation
 * document the caller read; another answers -VO_EIFMATCH (412), compared
 * under the registry's lock, and nothing changes. */
int vo_tasks_cancel_at(VoTasks *ts, const char *id, int64_t expected, json_t **ret_task,
                       char **ret_error);

/* Queues fn and gives the task's JSON (new reference). Returns 0 for a new
 * task (userdata is the task's from here on), 1 when an existing task was
 * answered (desc->once), or -EUSERS with *ret_error when the queue is full;
 * for these two userdata stays the caller's, to undo what it prepared. */
int vo_tasks_submit(VoTasks *ts, const VoTaskDesc *desc, VoTaskFn fn, void *userdata,
                    VoTaskFreeFn free_userdata, json_t **ret_task, char **ret_error);

/* Records a decision made outside any request (the HA manager's steps,
 * DRS's choices) as a task that succeeds at once with message and result
 * (both stolen): an event with its numbers. Nothing when the queue is
 * full. */
void vo_tasks_note(VoTasks *ts, const VoTaskDesc *desc, char *message, json_t *result);

/* New reference, or NULL when unknown. */
json_t *vo_tasks_get_json(VoTasks *ts, const char *id);
/* The task running now that names key (a VM's task key, say): 1 with its
 * id and kind (malloc'd), 0 when none runs (queued ones do not count). */
int vo_tasks_running_with_key(VoTasks *ts, const char *key, char **ret_id, char **ret_kind);
/* A queued or running task of kind that names key: 1 with its id and
 * target_id (malloc'd; NULL when it has none), 0 when there is none. */
int vo_tasks_pending_of_kind(VoTasks *ts, const char *key, const char *kind, char **ret_id,
                             char **ret_target_id);
json_t *vo_tasks_list_json(VoTasks *ts);

/* From inside a task. */
void vo_task_progress(VoTask *t, int percent, const char *message);
/* Progress with live facts of the work (steals details; shown as
 * "details", e.g. a migration's phase and bytes), written as progress is. */
void vo_task_set_details(VoTask *t, int percent, const char *message, json_t *details);
/* The same, shown at once by this host (vo_tasks_get_json) but written to
 * the store only with the task's next write: for a moment that must not
 * wait for the store (a migration's switch-over, the guest paused). */
void vo_task_set_details_unwritten(VoTask *t, int percent, const char *message,
                                   json_t *details);
/* What it made (e.g. {"backup": ID}), shown as "result" once it succeeded;
 * steals result. */
void vo_task_set_result(VoTask *t, json_t *result);
/* The revision the request that queued t named (If-Match), 0: none. */
int64_t vo_task_if_match(VoTask *t);
/* Its id (as the API shows it; lives as long as t). */
const char *vo_task_id(VoTask *t);
/* Whether cancel was asked (cancellable tasks check it between steps). */
bool vo_task_cancelled(VoTask *t);
/* From inside a cancellable task: its work cannot be stopped from here on
 * (handed to another process), so a cancel is refused (vo_tasks_cancel:
 * -EBUSY, 409) saying why (copied). */
void vo_task_refuse_cancel(VoTask *t, const char *why);
int vo_task_fail(VoTask *t, int negative_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
