/* vm-start-unknown.h: a start whose save of "starting" got no answer from
 * the store (VO_STORE_EUNKNOWN: etcd timed out, the write may have landed)
 * is refused and nothing runs (docs/ha.md, "The rule"). When the write did
 * land, the VM's document says "starting" for a VM that never started, and
 * this host's copy of its revision is stale (its next save would fail):
 * this puts the document back as the VM is, best effort; when it cannot
 * tell, the VM's next save refused for its stale revision takes the
 * document up (vo_vm_unsaved_start_landed). Part of the VM service (vm-start.c's
 * start task, vm-save.c's saves). */
#pragma once

#include "daemon/vm-internal.h"

/* Caller holds vm->job and vm->lock (dropped while it waits between reads),
 * vm->state already back to what it was before the start. Reads the VM's
 * document (a few tries, about 3 s at most while the store does not
 * answer): when it is at another revision and says "starting", saves the
 * VM again at that revision, its relations (which the write may have made
 * "active") rewritten too. Logs what it found; changes nothing else. */
void vo_vm_unsaved_start_undo(VoVm *vm);

/* Caller holds vm->lock; vo_vm_save calls it when a save was refused for
 * a stale revision. When vm->start_unknown (the undo above could not tell
 * whether the write landed: the store did not answer its reads, or the
 * write was still in flight), reads the document once: when it is still
 * this host's (under this host's key: a move or an HA restart elsewhere
 * deleted it) and says "starting" at a revision this host does not know
 * (nothing but this host's own lost write says so: a move lands a VM
 * "crashed", the manager's notes keep the state they read), takes that
 * revision (relations rewritten) and returns true: the caller saves again.
 * Otherwise false (the refusal stands: the document is another writer's).
 * The mark goes once the document was read. */
bool vo_vm_unsaved_start_landed(VoVm *vm);
