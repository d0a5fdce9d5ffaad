/* backup-internal.h: what the backup files (backups.c, backup-records.c,
 * backup-restore.c) share: the records in the pool directories, the base each
 * VM's next incremental backup builds on, and the lock that serialises backup
 * operations on this host. Not for the API layer. */
#pragma once

#include <jansson.h>
#include <pthread.h>

#include "daemon/backups.h"
#include "jobs/tasks.h"

#define BACKUP_RECORD "backup.json"
#define BACKUP_PARTIAL_PREFIX ".partial-"
#define BACKUP_DELETING_PREFIX ".deleting-"

/* POOL/.partial-HOST-ID and POOL/.deleting-HOST-ID for this host. */
char *backup_partial_path(VoDaemon *d, const char *pool_path, const char *id);
char *backup_deleting_path(VoDaemon *d, const char *pool_path, const char *id);

/* Held by every backup operation that reads or writes backup files. */
extern pthread_mutex_t vo_backups_lock;
/* The task key of every task that takes vo_backups_lock for long: such a task
 * waits in the queue while another runs, not on a worker (jobs/tasks.h). */
#define BACKUPS_TASK_KEY "backups"

/* A backup found by id: its pool, the pool's directory, its record, and
 * the revision of its document (backups/ID). */
typedef struct {
    char *pool, *pool_path, *id;
    json_t *record;
    int64_t rev;
} BackupRef;

void backup_ref_clear(BackupRef *b);
/* Looks id up: its document (backups/ID) names its pool, whose backup.json
 * (the truth for its content) is read; -EINVAL for an id that is not one,
 * -ENOENT when there is no document or its record is gone from the pool. */
int backup_find(VoDaemon *d, const char *id, BackupRef *ret, char **ret_error);
/* A backup task's If-Match (vo_task_if_match) against b's document, under
 * vo_backups_lock (every writer of backup documents holds it). */
int backup_if_match(VoTask *t, const BackupRef *b, char **ret_error);

/* The store documents of backups ("backups/ID": the record and its pool),
 * written after the record's files (see backups.h). */
#define BACKUP_DOC_PREFIX "backups/"
/* Writes the document of record: create-only when create, else at the
 * revision it has now (created when missing), keeping its pool when pool is
 * NULL (then nothing is written for a record without a document). */
int backup_doc_put(VoDaemon *d, const char *pool, json_t *record, bool create);
/* Deletes backups/ID at the revision it has now; 0 when already gone. */
int backup_doc_delete(VoDaemon *d, const char *id);
json_t *backup_record_load(const char *pool_path, const char *id);
int backup_record_save(const char *dir, json_t *record);
/* Every record in pool_path (new references, oldest first). */
json_t *backup_records_in(const char *pool_path);
/* The same into *ret (always set, empty when the directory cannot be
 * opened); -errno of opendir, so a caller tells "cannot list" from "empty". */
int backup_records_read(const char *pool_path, json_t **ret);
/* The file of disk slot in record, or NULL. */
const char *backup_disk_file(json_t *record, unsigned slot);
/* sha256 and allocated bytes of one disk file, into its record entry. */
int backup_disk_measure(const char *path, json_t *disk, char **ret_error);
/* Sums the disks' stored_bytes into the record's total. */
void backup_record_total(json_t *record);
/* Deletes backup id of pool_path, rebasing its children onto its parent. */
int backup_delete_locked(VoDaemon *d, const char *pool_path, const char *id, VoTask *t,
                         char **ret_error);

/* The document backup-base/VM-ID: {"backup","pool","disks":[{slot,path,virtual_size}],
 * "in_progress"}; NULL when there is none. */
json_t *backup_base_load(VoDaemon *d, const char *vm_id);
void backup_base_save(VoDaemon *d, const char *vm_id, json_t *base);
