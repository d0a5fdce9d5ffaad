/* vm-move.h: the ownership switch of a live migration (docs/internals.md,
 * "Live migration"): one transaction on the raw etcd handle (keys
 * "h/<host-id>/..." and "cluster/...") that moves a VM's documents from the
 * source host's namespace to the destination's and points the cluster
 * documents that name its host (its name claim, its group membership, its
 * usage in its project, the address records of its NICs) at the
 * destination. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/store.h"

/* The VM's documents under h/<src>/: vms/<id> (compared at vm_rev, > 0),
 * uses/.../<id>, snapshots/<id>/..., snapshot-current/<id>, backup-base/<id>,
 * each deleted there and put, unchanged, under h/<dst>/ (where vms/<id> must
 * not exist); cluster/names/vms/<name> (when it is this VM's),
 * cluster/group-members/<group>/<id>, cluster/project-usage/<project>/<id>
 * and every cluster/ipam/<network>/<x> of the VM get "host": dst. Every document read is compared at the
 * revision read, so a change meanwhile makes the whole move fail and
 * nothing changes. 0 and *ret_rev (the new revision: the VM document's on
 * the destination); -ESTALE / -ENOENT (the VM document is not at vm_rev, or
 * another changed meanwhile), -EEXIST (the destination has the VM
 * already), -EHOSTDOWN (the destination's live record cluster/hosts/<dst>
 * is gone: it died; the record is compared too, so a destination that
 * dies before the commit is never given the VM), -EBUSY (a volume or
 * network the VM uses is being moved to another project: its move mark,
 * state/project-objects.h, is compared absent for a shared pool's volume,
 * a cluster network and a volume that moves with the VM, one compare each,
 * as that move looks for their users host by host and could miss a VM
 * moving between two hosts meanwhile), -E2BIG (more than a transaction holds), or the store's error;
 * *ret_error says which. */
int vo_vm_move_txn(VoStore *raw, const char *vm_id, const char *src_host, const char *dst_host,
                   int64_t vm_rev, int64_t *ret_rev, char **ret_error);

/* A volume that moves with the VM (local disks: the files were copied
 * first): "pool/name" in the source's namespace and in the
 * destination's (the pool may differ). flatten: the destination's copy
 * stands alone (a live migration's mirror), its document loses "backing"
 * and "image". */
typedef struct {
    const char *from;
    const char *to;
    bool flatten;
} VoVolumeMove;

/* vo_vm_move_txn, and in the same transaction each volume document
 * h/<src>/volumes/<from> (compared at its revision; -ENOENT when absent)
 * deleted and put as h/<dst>/volumes/<to> (which must not exist: -EEXIST)
 * with its "pool" and "name" of <to> (without "backing" and "image" when
 * flatten); the VM's relation uses/volumes/<from>/<id> lands as
 * uses/volumes/<to>/<id>, and the VM
 * document's references to <from> (disks, kernel, initrd, UEFI nvram) name <to>. Used
 * by the cold move (daemon/move.c) and by a local-disk live migration. */
int vo_vm_move_volumes_txn(VoStore *raw, const char *vm_id, const char *src_host,
                           const char *dst_host, int64_t vm_rev, const VoVolumeMove *vols,
                           size_t n_vols, int64_t *ret_rev, char **ret_error);

/* HA recovery (docs/ha.md): what a VM of a dead host becomes. */
typedef struct {
    const char *exit_reason; /* its status's "exit_reason" ("host h1 went offline") */
    const char *ha_state;    /* its document's "ha_state", or NULL: unchanged */
    /* its document's "ha_restarts" (cluster/ha-plan.h: the restart limit's
     * count, this restart included), or NULL: unchanged */
    json_t *ha_restarts;
    /* The source is online but fenced itself (it starts nothing): its live
     * record is not compared absent (see src_record_rev); instead the VM's document must say it is
     * not running ("crashed" or "stopped", -EBUSY otherwise), compared at
     * its revision like every moved document: a start there (which saves
     * "starting" first) and the move never both commit. */
    bool src_fenced;
    /* With src_fenced: the revision of the source's live record that said
     * it was fenced (> 0), compared too (-EBUSY when it changed): a host
     * whose fenced state ended rewrites its record, and after that keeps
     * its VMs (it reconciled, and reads its VMs' documents once more when
     * that record is out: hosts.c). 0: not compared. */
    int64_t src_record_rev;
} VoVmMoveDown;

/* vo_vm_move_txn from a host that is down (the manager's recovery): the
 * transaction also compares that the source's live record
 * cluster/hosts/<down_host> is absent, so a host that comes back (its
 * fence holds a lease again) keeps its VMs: -EBUSY, nothing changes. The
 * VM document lands on the destination not running: status "state"
 * "crashed" with down->exit_reason (no started_at), "ha_state" as given;
 * the destination registers it (vo_vm_adopt_moved) and starts it. With
 * down->src_fenced, from a host online but fenced instead (see there). */
int vo_vm_move_from_down_txn(VoStore *raw, const char *vm_id, const char *down_host,
                             const char *dst_host, int64_t vm_rev, const VoVmMoveDown *down,
                             int64_t *ret_rev, char **ret_error);
