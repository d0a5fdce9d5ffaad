/* vm-rbd-restore-undo.h: the way back from a restore over a VM's RBD disks
 * (backup-rbd.h, vo_backup_rbd_restore_over): the undo snapshot it takes of
 * every image before it writes, the mark in the VM's document that says
 * the disks may be half-written, and the rollback a VM's start (or the
 * next restore) does when a crash cut a restore short. The mark is in the
 * document, not on this host: whichever host starts the VM next (an HA
 * restart, a move, the same host) reads it there. Part of the VM service:
 * the start needs it, and the backup service uses it. */
#pragma once

#include <stdbool.h>

#include "conf/vm-spec.h"
#include "daemon/daemon.h"

/* The RBD snapshot a restore over a VM takes of each of its disks (and
 * NVRAM) before it writes them: the way back when a write fails. */
#define BACKUP_RBD_UNDO_SNAP "vireo.restore-undo"
/* The mark: the VM document's top-level field, true from the undo
 * snapshots' making until every disk is the backup's or rolled back. It
 * moves with the document (live migration, cold move, HA recovery). */
#define VO_VM_RBD_UNDO_FIELD "rbd_restore_undo"
/* The mark of vireods before it moved into the document, a file in the
 * VM's state directory: still honoured (and removed) by the rollback. */
#define BACKUP_RBD_UNDO_MARK "rbd-restore-undo"

/* Under the VM's job lock, the VM stopped: sets (on) or clears the mark,
 * the VM's document saved. 0, or -errno with *ret_error (the mark in
 * memory as it was; the store may or may not have it when the write's
 * outcome is unknown, so a caller keeps the undo snapshots then). */
int vo_vm_rbd_undo_mark(VoVm *vm, bool on, char **ret_error);
/* Under the VM's job lock, the VM stopped: when a restore over spec's RBD
 * disks was cut short (the mark is set), rolls every disk back to
 * BACKUP_RBD_UNDO_SNAP, removes that snapshot and the mark: 1; 0 when there
 * was none; -EBUSY (the disks stay half-made, the mark too) when the
 * rollback fails. No image left with the snapshot (removed by hand, after
 * a rollback by hand): the mark is cleared, logged, 1. */
int vo_vm_rbd_undo_cut_short(VoVm *vm, const VoVmSpec *spec, char **ret_error);
