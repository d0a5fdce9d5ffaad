/* migrate-recover.h: the parts of settling a live migration that vireod
 * (at start) or its task (the background, migrate-resettle.h) left
 * unsettled, shared by the files that do it: migrate-recover.c (the
 * intent files, the decision, the notes), migrate-recover-source.c (the
 * source's QEMU resumed, handed over, ended), migrate-take-back.c (the VM
 * taken back when that QEMU runs the guest again) and
 * migrate-recover-incoming.c (the destination's claim and continue).
 * Internal to them; the daemon's entry points are in migrate.h. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/migrate.h"

/* How long the store is asked to settle an outcome it did not answer. */
#define VO_MIGRATION_SETTLE_GIVE_UP_MS 30000

/* migrate-recover.c */

/* How a migration settled here was left: by a vireod that stopped (the
 * settling at start), or by its task with its outcome unknown (the
 * background's, later: migrate-resettle.h). */
const char *vo_migration_cut_short(bool later);
/* A settled switch's outcome, logged and recorded (a task of kind
 * "migrate" that succeeded at once: an event). */
void vo_migration_note_settled(VoDaemon *d, const VoMigrateIntent *i, bool moved,
                               const char *what);

/* migrate-recover-source.c */

/* The VM's QEMU that no VM of the table holds, attached with the spec the
 * intent kept; NULL when it is gone (or cannot be found). */
VoHvInstance *vo_migration_attach_unowned(VoDaemon *d, const VoMigrateIntent *i);
/* Ends a QEMU of the VM no VM of the table holds (its documents are gone
 * from here): attached with the spec the intent kept, ended (source: quit,
 * destination: SIGKILL), its run and state dirs removed; a source QEMU
 * that runs the guest again is taken back and adopted instead
 * (vo_migration_adopt_running_source). False: a source QEMU kept (its
 * post-copy could not be handed over, *ret_error says why), its dirs too. */
bool vo_migration_end_unowned(VoDaemon *d, const VoMigrateIntent *i, VoHvMigrationSide side,
                              bool later, char **ret_error);
/* Source, the VM still this host's: a stream in flight is cancelled, the
 * source QEMU continued when the VM ran before, the destination told to
 * abort (its watcher would, a minute later). */
void vo_migration_resume_source(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i, bool later);
/* Source, the VM moved while it was in the table (settled after it was
 * loaded): its QEMU quits, the VM leaves the table. False: its QEMU kept
 * (its post-copy not handed over), the VM in the table, moved away. */
bool vo_migration_quit_source(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i, bool later,
                              char **ret_error);

/* migrate-take-back.c */

/* Source, the VM in the table (moved away), its QEMU running the guest
 * again: taken back (vo_migration_take_back_here), it runs on here
 * (vo_migration_resume_source): 1. 0: kept as it is; -ENOENT: to be
 * ended. */
int vo_migration_take_back_running(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i, bool later,
                                   char **ret_error);
/* Source, not in the table (a start), its QEMU hv running the guest again
 * after the switch (vo_migrate_source_runs_guest): the VM taken back and
 * adopted as this host's with hv, running on: 1. 0: hv not taken (kept
 * running as it is, the intent too); -ENOENT: hv not taken, to be ended. */
int vo_migration_adopt_running_source(VoDaemon *d, const VoMigrateIntent *i, VoHvInstance *hv,
                                      bool later, char **ret_error);
/* A source's settling that found the VM's document neither at the peer nor
 * here at the revision it switched from (vo_vm_move_settle's -EIO): 0 with
 * *ret_rev when its task's take-back applied (the VM is this host's), else
 * err. */
int vo_migration_taken_back(VoDaemon *d, const VoMigrateIntent *i, int64_t *ret_rev, int err);
/* Source, the VM in no table, its task having sent a take-back
 * (i->back_rev), settled before anything else is read. 1: not back here
 * (go on as read); 0: it applied, the source QEMU adopted (or, gone, the
 * VM recorded crashed); negative: the intent kept. */
int vo_migration_settle_unloaded_take_back(VoDaemon *d, const VoMigrateIntent *i, bool later);

/* migrate-recover-incoming.c */

/* Destination, the store gave the VM here at load: its incoming QEMU
 * looked at first, claimed only when it holds the guest, then continued.
 * False: the intent stays. */
bool vo_migration_continue_incoming(VoDaemon *d, VoVm *vm, const VoMigrateIntent *i);
