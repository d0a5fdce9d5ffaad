/* backup-id.h: backup ids ("VMNAME-YYYYMMDD-HHMMSS-xxxx") and the rule that
 * keeps any id a single safe directory name inside its backup pool. */
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
