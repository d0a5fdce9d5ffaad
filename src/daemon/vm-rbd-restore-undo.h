/* vm-rbd-restore-undo.h: the way back from a restore over a VM's RBD disks
 * (backup-rbd.h, vo_backup_rbd_restore_over): the undo snapshot it takes of
 * every image before it writes, the mark in the VM's state directory that
 * says the disks may be half-written, and the rollback a VM's start (or the
 * next restore) does when a crash cut a restore short. Part of the VM
 * service: the start needs it, and the backup service uses it. */
#pragma once

#include "conf/vm-spec.h"
#include "daemon/daemon.h"

/* The RBD snapshot a restore over a VM takes of each of its disks (and
 * NVRAM) before it writes them: the way back when a write fails. */
#define BACKUP_RBD_UNDO_SNAP "vireo.restore-undo"
/* The mark's file name in the VM's state directory. */
#define BACKUP_RBD_UNDO_MARK "rbd-restore-undo"

/* The mark's path (the VM's state directory made when missing). */
char *vo_vm_rbd_undo_mark(VoDaemon *d, const VoVmSpec *spec);
/* Under the VM's job lock, the VM stopped: when a restore over spec's RBD
 * disks was cut short (its mark is there), rolls every disk back to
 * BACKUP_RBD_UNDO_SNAP, removes that snapshot and the mark: 1; 0 when there
 * was none; -EBUSY (the disks stay half-made, the mark too) when the
 * rollback fails. */
int vo_vm_rbd_undo_cut_short(VoDaemon *d, const VoVmSpec *spec, char **ret_error);
