/* sweep-kept.h: the intents the start-up sweep kept because Ceph could
 * not be asked to remove the RBD image one names (a create cut short by a
 * crash, its image marked as the volume's: sweep.c). They are tried again
 * while vireod runs (the rbd pools' check thread, one every few seconds) and
 * before a volume of that name is made, so the image goes once Ceph
 * answers and never blocks the name; a stop first leaves the record to
 * the next start's sweep. */
#pragma once

#include "daemon/daemon.h"

/* Notes intent store key ("intents/...") as kept for Ceph. */
void vo_sweep_kept_add(const char *key);
/* Tries one kept intent (the next in turn; bounded by the Ceph timeouts). */
void vo_sweep_kept_retry(VoDaemon *d);
/* Before volume pool/name is reserved: a kept intent of that name is
 * finished first. 0 (none, or finished), or -EBUSY with *ret_error when
 * Ceph still does not answer (the name stays blocked until it does). */
int vo_sweep_kept_finish_volume(VoDaemon *d, const char *pool, const char *name,
                                char **ret_error);

/* sweep.c: the work of one intent without volumes (key, its text): its
 * files and marked RBD images removed when its owner is gone. 1 when done
 * (the record may go), 0 when the store cannot say whether the owner
 * exists, -EAGAIN when Ceph could not be asked (the record stays). */
int vo_sweep_intent(VoDaemon *d, const char *key, const char *text);
