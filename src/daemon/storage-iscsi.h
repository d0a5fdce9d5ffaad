/* storage-iscsi.h: the I/O of iSCSI pools (docs/storage-san.md): logging in
 * to a target with libiscsi to list its LUNs, and the CHAP secret file a pool
 * keeps under the state directory. The registry side is
 * storage-iscsi-pool.c's. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "storage/iscsi-url.h"

typedef struct {
    int lun;
    uint64_t size_bytes;
} VoIscsiLun;

/* Logs in to u's target at u's portal as initiator (CHAP with u->user and
 * the secret in file u->secret when given) and lists its disk LUNs (REPORT
 * LUNS, then INQUIRY and READ CAPACITY(16) of each; others, such as tgt's
 * controller LUN 0, are left out), sorted. 0, or -EHOSTUNREACH (the portal
 * does not answer), -EACCES (login refused: target or CHAP), -EIO, with
 * *ret_error naming what failed. */
int vo_iscsi_scan(const VoIscsiUrl *u, const char *initiator, VoIscsiLun **ret, size_t *ret_n,
                  char **ret_error);

/* STATE/secrets/iscsi-POOL.chap, malloc'd. */
char *vo_iscsi_secret_path(const char *state_dir, const char *pool);
/* Writes secret to that file (0600, its directory 0700). 0 or -errno. */
int vo_iscsi_secret_write(const char *state_dir, const char *pool, const char *secret);
