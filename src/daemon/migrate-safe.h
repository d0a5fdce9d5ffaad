/* migrate-safe.h: test-only hooks of live migration (docs/internals.md,
 * "Live migration", "Test-only hooks"), read by vireod only when a test sets
 * them: fault points that make a step fail or vireod exit at a chosen
 * moment, a shorter idle limit for incoming migrations, a directory
 * where the RAM images of both sides are kept for the test to compare, and
 * a slow post-copy push and a shorter post-copy stall limit. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* True once per file $VIREO_TEST_MIGRATE_FAULT/<point> (the file is
 * removed); false when the variable is unset. VM import and create use it
 * too (import-exit-after-disk, create-exit-after-disk), and the start-up
 * sweep (sweep-owner-read-fails). */
bool vo_migrate_fault(const char *point);
/* Waits (at most ms) until a test makes $VIREO_TEST_MIGRATE_FAULT/<point>,
 * then removes it: a pause a test ends when its racing step is done. */
void vo_migrate_fault_wait(const char *point, int ms);
/* True while $VIREO_TEST_MIGRATE_FAULT/<point> exists (not removed): a
 * state a test holds until its racing step is done. */
bool vo_migrate_fault_held(const char *point);

/* VO_MIGRATION_INCOMING_IDLE_MS, or $VIREO_TEST_MIGRATE_IDLE_MS. */
int vo_migrate_idle_ms(void);

/* $VIREO_TEST_MIGRATE_KEEP_RAM (a directory), or NULL. */
const char *vo_migrate_keep_ram_dir(void);
/* $VIREO_TEST_MIGRATE_POST_COPY_BANDWIDTH (bytes per second: post-copy's
 * background push, slow enough for a test to break its link), or 0. */
uint64_t vo_migrate_test_post_copy_bandwidth(void);
/* $VIREO_TEST_MIGRATE_POST_COPY_STALL_MS (how long post-copy may send no
 * page before it counts as stalled), or otherwise. */
int vo_migrate_post_copy_stall_ms(int otherwise);
