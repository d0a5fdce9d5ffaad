/* post-copy-kept.h: the "post-copy source kept" mark of this host's QEMUs
 * (fence/fence-state.h: RUN/fence/post-copy/<vm-id>; docs/ha.md, "Post-copy
 * sources"). From the moment a VM is the destination host's and its QEMU
 * here is the source of a post-copy (the device state or pages the
 * destination lacks are here) until that QEMU ended, nothing here ends it
 * but the migration itself: not the fence, not the reconcile after a
 * fencing. Only once the VM is no longer the destination's (the manager
 * restarted it elsewhere after the destination died, or it was deleted)
 * are its pages needed by nobody, and the QEMU ends. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "daemon/daemon.h"
#include "hypervisor/driver.h"

/* Marks the VM's QEMU here (pid) as a post-copy source (to: the
 * destination's host id) and takes it off the fence's kill list. */
void vo_post_copy_kept_mark(VoDaemon *d, const char *vm_id, const char *name, const char *to,
                            pid_t pid);
/* Its QEMU ended (or the VM is this host's again): the mark goes. */
void vo_post_copy_kept_unmark(VoDaemon *d, const char *vm_id);
/* Whether the mark is there and names the QEMU pid (< 0: any); *ret_to
 * (may be NULL): the destination. An unreadable mark, or one left for an
 * earlier QEMU of the VM, keeps nothing. */
bool vo_post_copy_kept(VoDaemon *d, const char *vm_id, pid_t pid, char **ret_to);
/* Whether a kept source's pages may still be needed: false only when a
 * linearizable read finds the VM's document gone from the destination
 * (restarted elsewhere or deleted); true when it is there or the store
 * cannot say. to NULL (an unreadable mark): true. */
bool vo_post_copy_source_needed(VoDaemon *d, const char *vm_id, const char *to);
/* Destination, asked to recover post-copy migration `migration` of the VM
 * whose QEMU here is hv: -EIDRM (the peer route's 410 migration-gone) when
 * that QEMU took no migration in (the VM was started here afresh after the
 * migration's guest died: the source's pages are needed by nobody), else
 * 0 (that guest, or the QEMU cannot say). Asked only once the QEMU was found
 * not in post-copy: one whose main loop waits on a page answers no query. */
int vo_post_copy_incoming_gone(VoDaemon *d, VoHvInstance *hv, const char *vm_id,
                               const char *migration, char **ret_error);
/* Source: the destination answered that the VM there runs a later start
 * (vo_post_copy_incoming_gone): logs it and says so in an event; the
 * caller ends the QEMU (the mark, its dirs and moved volumes' files go as
 * for a VM the destination has). */
void vo_post_copy_kept_gone(VoDaemon *d, const char *vm_id, const char *name, const char *to,
                            const char *why);
