/* qemu-tls.h: mutual TLS for the QEMU driver's live-migration streams (see
 * driver.h, VoHvMigrationTls): one tls-creds-x509 object per instance made
 * at runtime (object-add) from the host's cluster certificate, used by the
 * memory stream (migration parameter tls-creds) and the disks' NBD server
 * or client, removed (object-del) when the migration ends or is cancelled.
 * The functions taking a VM expect its qmp_lock held. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "hypervisor/driver.h"

#define VO_QEMU_TLS_ID "vireo-migration-tls" /* the object's QOM id */
#define VO_QEMU_TLS_DIR "migration-tls"      /* its certificate dir, in the run dir */

/* tls usable for uri (NULL: plain, 0): absolute, readable files; a client
 * on a unix: socket needs tls->hostname. -EINVAL with a message otherwise. */
int vo_qemu_tls_check(const VoHvMigrationTls *tls, const char *uri, bool client,
                      char **ret_error);

/* Destination, before migrate-incoming: the credentials (endpoint server)
 * and the migration parameter tls-creds naming them. tls NULL: nothing. */
int vo_qemu_tls_incoming(VoHvInstance *vm, const VoHvMigrationTls *tls, char **ret_error);
/* Source: the credentials (endpoint client) and tls-creds/tls-hostname
 * added to params (migrate-set-parameters' arguments). tls NULL: nothing. */
int vo_qemu_tls_outgoing(VoHvInstance *vm, const VoHvMigrationTls *tls, json_t *params,
                         char **ret_error);
/* NBD: "tls-creds" added to nbd-server-start's arguments (server), or
 * "tls-creds" and "tls-hostname" to an nbd blockdev's (client); the
 * credentials are made first when missing. tls NULL: nothing. */
int vo_qemu_tls_nbd(VoHvInstance *vm, const VoHvMigrationTls *tls, bool server, json_t *args,
                    char **ret_error);

/* Whether the instance holds the credentials object now. */
bool vo_qemu_tls_active(const VoHvInstance *vm);
/* Removes the object (the migration parameters reset to plain first) and
 * its certificate dir; none: 0. A failed object-del is logged too (the
 * migration ops go on: their streams are over or cancelled). */
int vo_qemu_tls_remove(VoHvInstance *vm, char **ret_error);
/* The QEMU process is gone: only the certificate dir in run_dir goes. */
void vo_qemu_tls_dir_remove(const char *run_dir);
