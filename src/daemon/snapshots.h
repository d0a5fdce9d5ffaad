/* snapshots.h: VM snapshots: internal qcow2 snapshots of every disk taken at
 * one instant (QMP snapshot-save with the memory state while the VM runs,
 * qemu-img snapshot while it is stopped), kept as a tree (each snapshot's
 * parent is the VM's current snapshot when it was taken). Documents
 * snapshots/VM-ID/NAME and snapshot-current/VM-ID. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"

/* {"snapshots":[{name,parent,children,current,memory,vm_running,description,created_at}],
 *  "current"}. A snapshot of a running VM always holds its memory state (QEMU's
 * snapshot-save needs it); "memory" says whether a revert loads it. */
json_t *vo_snapshots_list_json(VoDaemon *d, VoVm *vm);
int vo_snapshot_get_json(VoDaemon *d, VoVm *vm, const char *name, json_t **ret,
                         char **ret_error);
int vo_snapshot_create(VoDaemon *d, VoVm *vm, const char *name, bool memory,
                       const char *description, json_t **ret_task, char **ret_error);
int vo_snapshot_revert(VoDaemon *d, VoVm *vm, const char *name, bool force, json_t **ret_task,
                       char **ret_error);
int vo_snapshot_delete(VoDaemon *d, VoVm *vm, const char *name, json_t **ret_task,
                       char **ret_error);
/* A restored VM's disks are new: its snapshots go (a deleted VM's go in
 * the transaction that deletes it, see vm-delete.c). */
void vo_snapshots_forget(VoDaemon *d, const char *vm_id);
/* Deletes every internal snapshot in the qcow2 volume at path (a file or
 * an iSCSI LUN's layer): a restore writes a LUN over in place, and the
 * snapshots it forgets would stay there, one with the tag of a later one
 * reverted to first (qemu-img takes the oldest of a tag). */
int vo_snapshots_drop_internal(const char *path, char **ret_error);
