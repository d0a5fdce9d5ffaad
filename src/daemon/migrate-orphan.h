/* migrate-orphan.h: a live migration that left its guest in no QEMU
 * (docs/internals.md, "Both sides gone"): the switch gave the VM to the
 * destination, whose incoming QEMU never held the guest (it died, or its
 * stream failed, before the device state was loaded), and the source's
 * QEMU is gone too. The destination, the document's owner, then records
 * the VM crashed, naming the migration, as an event, and an HA VM is
 * started again there. Never while a QEMU could still hold the guest: the
 * source is asked first, and says so while it has any QEMU of the VM, a
 * migration of it still running, a kept intent or a kept post-copy source. */
#pragma once

#include <stdbool.h>

#include "daemon/daemon.h"

/* Source: whether this host may still hold a QEMU of VM vm_id (the peer
 * route GET /v1/migrations/outgoing/{vm}/source answers it): the VM in the
 * table with a QEMU or a migration task, an intent file of it, or a kept
 * post-copy source's mark. False only when none is here. */
bool vo_migration_source_holds(VoDaemon *d, const char *vm_id);

/* Destination: asks host source_host (its id) whether it may still hold a
 * QEMU of vm_id. 1: none there; 0: it may (or it says nothing we can read);
 * -errno with *ret_error when it cannot be asked (offline, unreachable). */
int vo_migration_source_gone(VoDaemon *d, const char *source_host, const char *vm_id,
                             char **ret_error);

/* Destination: VM vm_id (in the table now, adopted with its dead incoming
 * QEMU) is recorded crashed with a reason naming migration `migration` from
 * host source_host, noted as an event (a task of kind migrate), and started
 * again here when it is HA. */
void vo_migration_orphan_crashed(VoDaemon *d, const char *vm_id, const char *migration,
                                 const char *source_host);
