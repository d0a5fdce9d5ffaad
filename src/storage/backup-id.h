/* backup-id.h: backup ids ("VMNAME-YYYYMMDD-HHMMSS-xxxx") and the rules that
 * keep any id a single safe directory name inside its backup pool and any
 * disk file named in a backup record a plain file inside its backup. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define VO_BACKUP_ID_MAX 96

/* 1..96 characters of [a-z0-9-], not starting with '-': never '/', '.' or
 * "..", so POOL_DIR/ID is always a directory directly inside the pool. */
bool vo_backup_id_valid(const char *id);

/* The id of a backup of VM vm_name taken at wall_ms (UTC), with suffix (the
 * caller's random number; its low 16 bits are used). Returns malloc'd text. */
char *vo_backup_id_make(const char *vm_name, int64_t wall_ms, uint32_t suffix);

/* Whether file is a backup's disk file name, "disk<N>.qcow2" (N: 1-10
 * digits): never '/', so POOL_DIR/ID/FILE stays inside the backup. */
bool vo_backup_file_valid(const char *file);
