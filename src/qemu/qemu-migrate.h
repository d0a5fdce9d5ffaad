/* qemu-migrate.h: the QEMU driver's live-migration ops (see driver.h): the
 * hardware layout, migrate-incoming on a destination started with
 * -incoming defer, migrate with capabilities and parameters on the source,
 * query-migrate, migrate_cancel, and the end on either side. */
#pragma once

#include "hypervisor/driver.h"

int vo_qemu_layout_text(VoHvInstance *vm, char **ret_layout, char **ret_error);
/* The QMP half of migrate_prepare: the destination QEMU (started paused
 * with -incoming defer) listens on uri. */
int vo_qemu_migrate_incoming(VoHvInstance *vm, const char *uri, bool post_copy,
                             char **ret_error);
int vo_qemu_migrate_start(VoHvInstance *vm, const char *uri, const VoHvMigrationOptions *opts,
                          char **ret_error);
int vo_qemu_migrate_query(VoHvInstance *vm, VoHvMigrationProgress *ret);
int vo_qemu_migrate_wait(VoHvInstance *vm, int timeout_ms, bool cancellable, bool passes);
/* migrate-start-postcopy (a migration started with opts->post_copy). */
int vo_qemu_migrate_start_post_copy(VoHvInstance *vm, char **ret_error);
/* migrate-continue from pre-switchover (post-copy's pause; the disk
 * mirrors' own is continued by the query, qemu-mirror.c). */
int vo_qemu_migrate_continue(VoHvInstance *vm, char **ret_error);
/* Post-copy recovery: migrate-recover (destination), migrate with resume
 * (source), migrate-pause (either). */
int vo_qemu_migrate_recover(VoHvInstance *vm, const char *uri, char **ret_error);
int vo_qemu_migrate_resume(VoHvInstance *vm, const char *uri, char **ret_error);
int vo_qemu_migrate_pause(VoHvInstance *vm, char **ret_error);
int vo_qemu_migrate_cancel(VoHvInstance *vm, char **ret_error);
int vo_qemu_migrate_finish(VoHvInstance *vm, VoHvMigrationSide side, bool succeeded,
                           bool resume, char **ret_error);

/* QEMU's MigrationStatus word as the driver's status (its many in-progress
 * states are all "active"); -EINVAL for a word it does not know. */
int vo_qemu_migration_status(const char *word, VoHvMigrationStatus *ret);
/* The same word read into a query's answer: its status and what it says of
 * post-copy (post_copy, post_copy_paused, post_copy_recovering) and the
 * switch-over (switching); at_switchover is the caller's (it needs to know
 * of disk mirrors). -EINVAL for a word it does not know. */
int vo_qemu_migration_status_read(const char *word, VoHvMigrationProgress *ret);
/* A "tcp:HOST:PORT" or "unix:/PATH" URI; -EINVAL with a message otherwise. */
int vo_qemu_migration_uri_check(const char *uri, char **ret_error);
