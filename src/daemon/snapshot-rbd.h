/* snapshot-rbd.h: VM snapshots of VMs whose disks are RBD images (volumes of
 * rbd pools): one RBD snapshot per disk (and per UEFI NVRAM), named as the
 * VM snapshot. For a running VM they are made with the VM paused for the
 * instant, so its disks agree with each other. Disk state only: no memory
 * (that lives in a qcow2 disk 0 for other VMs). snapshots.c decides which
 * kind a VM's snapshot is and calls these under the VM's job lock. */
#pragma once

#include "conf/vm-spec.h"
#include "daemon/daemon.h"
#include "hypervisor/driver.h"

/* 1 when every disk of spec (and its NVRAM) is in an rbd pool, 0 when none
 * is, -EINVAL with *ret_error (naming a disk) when only some are. Reads
 * local state only. */
int vo_snapshot_rbd_check(VoDaemon *d, const VoVmSpec *spec, char **ret_error);
/* Snapshot tag of every disk; pause: the VM's QEMU, stopped (QMP stop: its
 * disks drained and flushed) around the snapshots and resumed after, or
 * NULL (a stopped or already paused VM). On failure the snapshots made are
 * removed again. */
int vo_snapshot_rbd_create(VoDaemon *d, const VoVmSpec *spec, const char *tag,
                           VoHvInstance *pause, char **ret_error);
/* Every disk back to tag (the VM is stopped): checks first that each disk
 * has it (an NVRAM made later keeps its contents), so it never stops
 * half-way for a missing one. */
int vo_snapshot_rbd_revert(VoDaemon *d, const VoVmSpec *spec, const char *tag, char **ret_error);
/* Removes tag from every disk that has it. */
int vo_snapshot_rbd_delete(VoDaemon *d, const VoVmSpec *spec, const char *tag, char **ret_error);
