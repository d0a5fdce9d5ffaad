/* migrate-run.h: one run of the migrate task as named steps, each one job
 * (docs/internals.md, "Live migration"): the checks under the VM's job,
 * the destination prepared, the local disks mirrored and the memory
 * copied (migrate-copy.c), the RAM compared, the ownership switch, the
 * switch-over, the commit, post-copy's rest of memory and the result
 * (migrate.c). What one step leaves for the next is a MigrateRun's. Each
 * step returns 0 to go on, or the task's end (negative: it has failed the
 * task and done what that failure owes: the undo, the mark, the job). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/migrate-internal.h"

#define POLL_MS 200
/* The memory phase is asked more often: the guest is paused from QEMU's
 * completion (or its pre-switchover stop, local disks) until this loop sees
 * it and the destination continues, so each poll's wait is downtime. */
#define MEMORY_POLL_MS 10
/* ... unless QEMU tells of the end itself (driver's migrate_wait): then
 * asked at least this often, for the progress and the limits (a cancel
 * ends the wait within 50 ms). */
#define MEMORY_WAIT_MS 500
#define DISK_POLL_FIRST_MS 10 /* the disks' first wait for sync; doubles to POLL_MS */
#define PROGRESS_EVERY_MS 1000
#define CANCEL_WAIT_MS 30000
#define QUERY_TRIES 5 /* migrate_query errors in a row before the migration counts as failed */

typedef struct {
    VoTask *t;
    MigrateTask *m;
    VoVm *vm;
    VoDaemon *d;
    VoHvInstance *hv;
    char *name, *vm_id;
    json_t *doc;  /* the VM's document, until the prepare request takes it */
    bool resume;  /* it ran (not paused) when the task took it */
    char mig_id[37];
    char *base_path, *digest_path, *commit_path, *alive_path; /* at the destination */
    char *uri, *nbd_uri; /* the destination's memory stream and disk export */
    /* the phases' ends, for the result's phases_ms */
    int64_t start, at_prepared, at_disks, at_migrate, at_completed, at_verified, at_switched,
        at_committed, at_post_copied;
    bool at_switch;          /* held before the switch-over (post-copy) */
    unsigned max_throttle;   /* the highest vCPU throttle seen */
    bool verified;           /* RAM compared equal */
    int64_t new_rev;         /* the VM's documents' revision after the switch */
    bool in_post_copy;       /* the switch-over went on into post-copy */
    int resume_tries;        /* post-copy recoveries, the whole budget */
    char *verify_error;      /* a RAM compare after the switch-over failed: too late to undo */
    int outcome;             /* the switch-over's, then the commit's: 0 or -errno... */
    char *error;             /* ... with why */
    bool commit_unanswered;  /* post-copy: the destination's watcher continues it */
    char *post_copy_broke;   /* the rest of memory did not arrive: why */
    VoHvMigrationProgress fin; /* the last progress, for the result */
} MigrateRun;

/* Ends an attempt with the VM still here (the destination's incoming VM
 * aborted, this QEMU resumed when it ran before), the migration mark
 * cleared, the job ended. */
void vo_migrate_run_back_here(MigrateRun *x);
/* The intent file's phase (migrate-recover.c): written before the step. */
void vo_migrate_intent_phase(MigrateTask *m, const char *phase, int64_t rev);
/* A task's details for phase. */
json_t *vo_migrate_progress_json(const char *phase, const VoHvMigrationProgress *p, int64_t start);

/* ---- the copy (migrate-copy.c) ---- */

/* 1b. Local disks mirrored into the destination's export until in sync. */
int vo_migrate_run_disks(MigrateRun *x);
/* 2. Memory streamed until QEMU completed it, or (post-copy) it stopped
 * before the switch-over (x->at_switch); a cancel, a copy that does not
 * converge or a failure ends the task with the VM here. */
int vo_migrate_run_memory(MigrateRun *x);
