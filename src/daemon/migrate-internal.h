/* migrate-internal.h: what the files of a live migration's source side
 * share (migrate.h is the daemon's view of them): the task's state
 * (migrate.c), the ownership switch and its outcomes (migrate-switch.c)
 * and the checks before a migration is accepted (migrate-checks.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "daemon/migrate.h"
#include "state/vm-move.h"

#define PEER_TIMEOUT_MS 30000

/* A disk on a pool of this host's own: mirrored to the destination. */
typedef struct {
    unsigned slot;
    char *pool, *name; /* here */
    char *format;
    uint64_t size;     /* virtual */
    char *image;       /* a linked clone of this image: the destination gets an
                        * overlay on its copy of it (only the top moves) */
    bool flatten;      /* the destination's copy stands alone */
} LocalDisk;

typedef struct {
    VoVm *vm;
    VoMigrateArgs opts;
    char *to_id, *to_name, *to_url;
    char *pool; /* the destination's pool for local disks */
    LocalDisk *disks;
    size_t n_disks;
    uint64_t disk_bytes;    /* what the mirrors sent (0: every disk shared) */
    VoMigrateIntent intent; /* RUN_DIR/migrations/<vm>.json while it runs */
    json_t *spec;           /* the intent's spec (held) */
    bool keep_intent;       /* ended with the source paused, the outcome unknown: the
                             * next start settles it from the intent */
    char *intent_vm, *intent_name, *intent_mig;
} MigrateTask;

/* ---- the switch (migrate-switch.c) ---- */

/* The local volumes' moving intents end: moved (their documents are the
 * destination's: files and registry entries go), or not (only the intents). */
void vo_migrate_moving_end(VoDaemon *d, MigrateTask *m, bool moved);
/* The local volumes' moves of the switch: here -> the destination's pool
 * (flattened as copied), or back (a take-back); freed with
 * vo_migrate_volume_moves_free (n: m->n_disks). */
VoVolumeMove *vo_migrate_volume_moves(const MigrateTask *m, bool back);
void vo_migrate_volume_moves_free(VoVolumeMove *v, size_t n);
/* Test hooks take-back-late and take-back-after-load: the take-back of VM
 * vm_id from host peer (compared at back_rev, with the volumes' moves
 * back) sent now, as one etcd decided late; its outcome logged
 * ("the late take-back of VM ID: applied|refused"). migrate-switch.c. */
void vo_migrate_test_take_back(VoDaemon *d, const char *vm_id, const char *peer,
                               int64_t back_rev, const VoVolumeMove *back, size_t n);
/* Whether the ownership transaction's error r leaves its outcome unknown. */
bool vo_migrate_switch_outcome_unknown(int r);
/* The switch's unknown outcome settled by the store: 0 with *new_rev (moved);
 * -ETIMEDOUT / -EIO: still unknown; another -errno: not moved. */
int vo_migrate_settle_switch(VoTask *t, VoDaemon *d, MigrateTask *m, VoVm *vm,
                             const char *name, const char *vm_id, int64_t rev,
                             int64_t *new_rev, char **error);
/* The VM's documents moved back after an unconfirmed commit: 0 back here,
 * 1 the destination claimed it, negative: unknown. */
int vo_migrate_take_back(VoDaemon *d, MigrateTask *m, VoVm *vm, const char *name,
                         const char *vm_id, int64_t new_rev, char **error);
/* The VM is the destination's: the source QEMU quits, the VM leaves the
 * table, the job ends, moved local volumes' files go. */
void vo_migrate_end_source(VoDaemon *d, MigrateTask *m, VoVm *vm, VoHvInstance *hv,
                           const char *name);
/* A post-copy that could not be recovered: both QEMUs kept, the task
 * fails (its return value); ends the job. */
int vo_migrate_keep_both(VoTask *t, VoDaemon *d, MigrateTask *m, VoVm *vm, VoHvInstance *hv,
                         const char *name, const char *vm_id, const char *error);

/* ---- the checks (migrate-checks.c) ---- */

/* The VM's disks on this host's own pools, to be mirrored to pool at the
 * target (*ret_disks, *ret_n; freed with vo_migrate_local_disks_free), or
 * 409 (-EBUSY) with what to fix. */
int vo_migrate_check_local_disks(VoDaemon *d, const VoVmSpec *spec, const char *target_id,
                                 const char *target_name, const char *pool,
                                 LocalDisk **ret_disks, size_t *ret_n, char **ret_error);
void vo_migrate_local_disks_free(LocalDisk *disks, size_t n);
