/* wait.h: following an asynchronous task until it ends, with a progress line
 * on a terminal, and running an action (a request answered by 202 + task). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

/* Follow the task (as first seen in `task`) until it has succeeded, failed
 * or been cancelled: GET /v1/tasks/ID for the document and its revision
 * (ETag), then its events on GET /v1/events from that revision; polling GET
 * /v1/tasks/ID every 50 ms only when vireod has no event stream or the task
 * no revision (or VIREO_WAIT_POLL is set in the environment: for comparing); *ret_final gets the last task document. Returns 0 when
 * the task ended (either way), -EINTR when Ctrl-C stopped the waiting (a note
 * was printed; the task keeps running) or another negative errno (printed). */
int task_wait(const json_t *task, json_t **ret_final);
/* Once the task ended, task_wait prints each of its result's "warnings"
 * on stderr (not with --json), but none printed before: those the caller
 * showed already (an import's plan) it names here first. */
void task_warnings_shown(const json_t *warnings);

/* task_wait, then the outcome as a CLI exit status: 0 when the task
 * succeeded; otherwise its error (or "KIND SUBJECT failed") is printed. When
 * the task ended either way, *ret_final is its last document (the caller
 * unrefs it); NULL when the waiting stopped (Ctrl-C, lost track). */
int task_outcome(const json_t *task, const char *subject, json_t **ret_final);

/* Send an action request and report it: with `async`, print the task id (or
 * the task JSON); otherwise wait, then print "SUBJECT: DONE_WORD" (or the final
 * task JSON) and return 0, or print the task's error and return 1. done_word
 * NULL: print nothing on success (the caller has more to say). Returns a CLI
 * exit status. */
int run_action(const char *method, const char *path, const json_t *body, bool async,
               const char *subject, const char *done_word);

/* The same for an answer already received: doc is {"task": ...}, what names
 * the request in messages ("PUT /v1/..."). */
int run_task(const json_t *doc, const char *what, bool async, const char *subject,
             const char *done_word);
