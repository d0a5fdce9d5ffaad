/* backups.h: VM backups into backup pools (see docs/backups-api.md). A backup
 * is a directory POOL_DIR/ID holding backup.json (the VM's definition, per
 * disk its file, sizes and sha256) and one qcow2 per disk; an incremental
 * backup's files have the previous backup's files as backing files. Backups
 * are written as POOL_DIR/.partial-ID and renamed into place when complete,
 * then recorded as the store document "backups/ID" (the record and its
 * pool), which listing and lookups read; so only whole backups are ever
 * listed. A pool may be shared between hosts, so its backup.json files stay
 * the truth for a backup's content: lookups read the file, and start-up
 * reconciles the documents with the pools (vo_backups_load). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"

/* At start (pools loaded): removes what interrupted backups and deletes
 * left behind, then reconciles the documents with the pools: records found
 * in a pool without a document are adopted, documents that differ from their
 * record are rewritten, documents whose record is gone are dropped (those of
 * a pool whose directory cannot be read are kept). */
void vo_backups_load(VoDaemon *d);

/* Every complete backup, oldest first; vm (name or id) filters, may be NULL. */
json_t *vo_backups_list_json(VoDaemon *d, const char *vm);
int vo_backup_get_json(VoDaemon *d, const char *id, json_t **ret, char **ret_error);

/* A bandwidth limit ("bwlimit_mib", MiB/s) is 1..this; 0 (not given): none. */
#define VO_BACKUP_BWLIMIT_MAX_MIB (1024u * 1024u)

typedef struct {
    const char *pool;   /* a backup pool; NULL: the default one */
    bool incremental;   /* only what changed since this VM's previous backup */
    unsigned keep_last; /* afterwards keep only the newest N of this VM in the pool; 0: all */
    unsigned bwlimit_mib; /* the copy reads at most this many MiB/s in all; 0: no limit */
} VoBackupCreateArgs;

int vo_backup_create(VoDaemon *d, VoVm *vm, const VoBackupCreateArgs *args, json_t **ret_task,
                     char **ret_error);
/* Deletes a backup; backups built on it are rebased onto its parent first. */
int vo_backup_delete(VoDaemon *d, const char *id, json_t **ret_task, char **ret_error);
/* Into a new VM named as (NULL: the original name when no VM has it), its
 * volumes in pool (NULL: default); or over the original VM (same id, stopped)
 * when as is NULL or its name and that VM still exists. bwlimit_mib (0: none)
 * limits each disk's copy (qemu-img convert -r). Without may_create (the
 * asker may not create VMs) a restore that would make a VM is refused,
 * -EACCES, before anything is made. */
int vo_backup_restore(VoDaemon *d, const char *id, const char *as, const char *pool,
                      unsigned bwlimit_mib, bool may_create, json_t **ret_task, char **ret_error);
/* Checks every file of the backup and of the backups it builds on against the
 * sha256 recorded at creation, and qemu-img check; the task fails on a
 * mismatch, and the result is kept in the backup ("last_verify").
 * bwlimit_mib (0: none) limits how fast the files are read for the sha256. */
int vo_backup_verify(VoDaemon *d, const char *id, unsigned bwlimit_mib, json_t **ret_task,
                     char **ret_error);

/* The VM's disks changed outside a backup (snapshot revert, restore) or the
 * VM is gone: its next backup is a full one. */
void vo_backups_forget_base(VoDaemon *d, const char *vm_id);
