/* vm-start-unknown.h: a start whose save of "starting" got no answer from
 * the store (VO_STORE_EUNKNOWN: etcd timed out, the write may have landed)
 * is refused and nothing runs (docs/ha.md, "The rule"). When the write did
 * land, the VM's document says "starting" for a VM that never started, and
 * this host's copy of its revision is stale (its next save would fail):
 * this puts the document back as the VM is, best effort. Part of the VM
 * service (vms.c's start task). */
#pragma once

#include "daemon/vm-internal.h"

/* Caller holds vm->job and vm->lock (dropped while it waits between reads),
 * vm->state already back to what it was before the start. Reads the VM's
 * document (a few tries, about 3 s at most while the store does not
 * answer): when it is at another revision and says "starting", saves the
 * VM again at that revision, its relations (which the write may have made
 * "active") rewritten too. Logs what it found; changes nothing else. */
void vo_vm_unsaved_start_undo(VoVm *vm);
