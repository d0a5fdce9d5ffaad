/* backup-rbd.h: backups of VMs whose disks are RBD images (volumes of rbd
 * pools; docs/backups-api.md, "Disks in rbd pools"). The backup's instant is
 * one RBD snapshot per disk (and NVRAM), BACKUP_RBD_SNAP_PREFIX + the backup's
 * id, made as a VM snapshot's are (snapshot-rbd.h: the VM paused, its file
 * systems frozen, the pause marker written); each disk is then exported from
 * it into the backup's qcow2 file (storage/rbd-export.h): in full, or, when
 * the disk still has the previous backup's snapshot, only what changed since
 * (over the previous backup's file as backing file). Only the newest
 * backup's snapshots stay on the disks: the rest are pruned after a backup
 * and before the next, so a crash anywhere leaves nothing that stays. */
#pragma once

#include "conf/vm-spec.h"
#include "daemon/daemon.h"
#include "daemon/vm-rbd-restore-undo.h"
#include "hypervisor/driver.h"

/* '.' is in no VM snapshot's name (conf/names.c): never one of those. */
#define BACKUP_RBD_SNAP_PREFIX "vireo.backup."

/* For the create request (local state only): 1 when every disk of spec (and
 * its NVRAM) is in an rbd pool, 0 when none is, -EINVAL naming a disk when
 * only some are. */
int vo_backup_rbd_check(VoDaemon *d, const VoVmSpec *spec, char **ret_error);
/* The disks' virtual sizes (sizes[i] for spec->disks[i]), from the cluster. */
int vo_backup_rbd_sizes(VoDaemon *d, const VoVmSpec *spec, uint64_t *sizes, char **ret_error);
/* Takes backup id of plan's disks (plan->disks[i] is spec->disks[i]): the
 * snapshots (pause: the VM's QEMU, paused for the instant; NULL for a
 * stopped or paused VM; plan->quiesce called around it), then every disk
 * exported into its target_path: incremental, from parent_id's snapshots,
 * when plan->incremental, every disk has a parent_path and still has that
 * snapshot; else full (ret->reason says why a wanted incremental is not).
 * nvram_target: where spec's NVRAM goes (a full copy), or NULL. On failure
 * the new snapshots are removed again (ret->jobs_failed: the base stands). */
int vo_backup_rbd_take(VoDaemon *d, const VoVmSpec *spec, VoHvInstance *pause,
                       const char *id, const char *parent_id, const VoHvBackupPlan *plan,
                       const char *nvram_target, VoHvBackupResult *ret, char **ret_error);
/* Removes the backup snapshots of spec's disks (and NVRAM) but keep's (may
 * be NULL); failures are logged (a backup never fails on them). */
void vo_backup_rbd_prune(VoDaemon *d, const VoVmSpec *spec, const char *keep);
/* Restores a backup over the stopped VM vm (spec: a copy of its spec)
 * whose disks are RBD images, all of them or none: each disk (sources[i]
 * for spec->disks[i], the qcow2 files of its backup chain, top first, each
 * backed by the next; sources[spec->n_disks] the NVRAM's, or NULL to keep
 * it) is written over its image (resized to the backup's size) after every
 * image got BACKUP_RBD_UNDO_SNAP; a failure rolls every image back to it.
 * The snapshot is removed at the end. From the snapshots until the end (or
 * a failed rollback) the VM's document holds the mark
 * (VO_VM_RBD_UNDO_FIELD): a restore cut short by a crash is rolled back by
 * the VM's next start or restore, on whichever host
 * (vo_vm_rbd_undo_cut_short). Caller holds the VM's job lock. */
int vo_backup_rbd_restore_over(VoDaemon *d, VoVm *vm, const VoVmSpec *spec,
                               char **const *sources, char **ret_error);
