/* schedules.h: scheduled snapshots and backups (docs/schedules.md).
 * Documents of the whole cluster (a standalone host keeps them too):
 *   cluster/schedules/<name>               the schedule, as the API shows it
 *   cluster/schedule-runs/<name>/<vm-id>   {"vm","last_due","last_run",
 *                                           "last_skip","run_now"}
 *   cluster/schedule-made/<name>/<vm-id>/<item>
 *                                          {"kind","name"|"backup","at","task"}
 * A due time runs on the host that has the VM (its owner: where its disks
 * and QEMU are), once: the host first claims it with a transaction that
 * writes last_due into the run document on the revision it read (and on the
 * schedule's revision), so of two hosts (a VM migrating, a manager change)
 * only one wins, and a host that restarts never runs it again. A crash
 * between the claim and the task's submission loses that run (it is never
 * run twice). The made documents record what a schedule made, so retention
 * prunes only those (schedule-runner.c). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conf/cron.h"
#include "conf/retention.h"
#include "daemon/daemon.h"

#define VO_SCHEDULES_PREFIX "cluster/schedules/"
#define VO_SCHEDULE_RUNS_PREFIX "cluster/schedule-runs/"
#define VO_SCHEDULE_MADE_PREFIX "cluster/schedule-made/"
/* A schedule's name is at most this long: its snapshots are named
 * NAME-YYYYMMDD-HHMMSS (a run-now's NAME-YYYYMMDD-HHMMSS-rN) within the 63
 * characters of a snapshot's name. */
#define VO_SCHEDULE_NAME_MAX 32
/* A cron schedule's missed due time still runs when vireod is back within
 * this many seconds (a daily/weekly one: within its window). */
#define VO_SCHEDULE_CRON_GRACE_S 3600
/* --every without --window. */
#define VO_SCHEDULE_DEFAULT_WINDOW "02:00-06:00"

/* What the runner needs of a schedule document. */
typedef struct {
    VoCron cron;
    int64_t grace_s;
    VoKeepRules keep;
    bool enabled;
} VoScheduleRule;

/* The document's rule; -EINVAL with *ret_error when it is damaged. */
int vo_schedule_rule(json_t *doc, VoScheduleRule *ret, char **ret_error);

/* Each returns 0 or -errno with *ret_error saying what to fix. */
int vo_schedule_create(VoDaemon *d, json_t *body, json_t **ret_doc, char **ret_error);
/* Changes the fields body names (the others stay); if_match > 0: the
 * document's revision must be that one (-VO_EIFMATCH otherwise). */
int vo_schedule_set(VoDaemon *d, const char *name, json_t *body, int64_t if_match,
                    json_t **ret_doc, char **ret_error);
/* Deletes the schedule and its run records; what it made stays (no longer
 * pruned). */
int vo_schedule_delete(VoDaemon *d, const char *name, char **ret_error);
/* {"schedules": [doc + "next_due"]} by name. */
int vo_schedules_list_json(VoDaemon *d, json_t **ret, char **ret_error);
/* doc + "cron", "grace_s", "next_due", "runs": [...], "made": [...]. */
int vo_schedule_show_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error);
/* The schedule's document and its revision. */
int vo_schedule_get(VoDaemon *d, const char *name, json_t **ret, int64_t *ret_rev,
                    char **ret_error);

/* ---- the runner (schedule-runner.c) ---- */

/* Test only (vireod --schedule-clock-file): the scheduler's "now" is the
 * unix time written in this file, read at every round (rounds every
 * 200 ms then). NULL: the real clock. */
void vo_schedules_set_clock_file(const char *path);
time_t vo_schedules_now(void);
/* Starts and stops the runner thread (every host runs one). */
int vo_schedules_start(VoDaemon *d);
void vo_schedules_stop(void);
/* A schedule changed: the runner looks again now. */
void vo_schedules_wake(void);
/* Runs the schedule now for every VM it selects: those of this host at
 * once (their tasks in *ret, {"tasks": [...], "run_now": n}), the other
 * hosts' at their next round. */
int vo_schedule_run_now(VoDaemon *d, const char *name, json_t **ret, char **ret_error);
