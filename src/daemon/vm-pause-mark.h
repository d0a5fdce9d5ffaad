/* vm-pause-mark.h: the marker a snapshot of a running VM leaves in the VM's
 * run directory (RUN_DIR/vms/ID/snapshot-pause.json, tmp + rename) while it
 * has the guest's file systems frozen (guest agent) and the VM paused by
 * vireod (RBD snapshots), so that a vireod that died inside that window
 * thaws and resumes the VM when it re-attaches it at start-up. Only a pause
 * the marker records is undone: a pause the user asked for never is. See
 * docs/internals.md, "Snapshot pause marker". */
#pragma once

#include <stdbool.h>

#include "daemon/vm-internal.h"

/* Written before the freeze: frozen (the agent is asked to freeze), paused
 * (vireod pauses the VM itself). A failure is logged (the snapshot goes on). */
void vo_snapshot_mark(VoDaemon *d, const char *vm_id, const char *name, bool frozen,
                      bool paused);
/* Removed once the VM is resumed and thawed. */
void vo_snapshot_unmark(VoDaemon *d, const char *vm_id);
/* reconcile(), caller holds the job lock (not vm->lock), hv attached: when
 * the VM has a marker, resumes it (if it says paused and QEMU is paused, not
 * by an I/O error), thaws (if it says frozen; an agent that does not answer
 * is logged), logs what it did and removes the marker. */
void vo_snapshot_mark_recover(VoVm *vm, VoHvInstance *hv, const char *vm_id, const char *name);
