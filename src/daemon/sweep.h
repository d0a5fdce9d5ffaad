/* sweep.h: what vireod removes at start because none of its records owns it:
 * the half-made files of an operation a crash (kill -9, power loss) cut
 * short, so that they never block a name. Long operations that make files
 * first write an intent record (store key "intents/..."), naming the
 * document that will own the files once they are done and the files
 * themselves; they remove it when they finish either way. */
#pragma once

#include "daemon/daemon.h"

/* Records, before the work, that paths[0..n) belong to store key owner once
 * it exists (and are half-made until then). id names the intent, unique
 * among running operations (e.g. the owner key). 0 or -errno. */
int vo_intent_begin(VoDaemon *d, const char *id, const char *owner, const char *const *paths,
                    size_t n);
/* The operation is over (its owner saved, or its files removed). */
void vo_intent_end(VoDaemon *d, const char *id);

/* As vo_intent_begin, for an operation that makes whole volumes (documents
 * and files) on the way to its owner, a VM document (a VM import or create):
 * volumes ("POOL/NAME", NULL-terminated, may be NULL) are the owner's once
 * it exists and are removed otherwise, after the pools are loaded
 * (vo_sweep_volumes_after_load). Called again with the longer list before
 * each volume is made (and with it taken out when making it failed). */
int vo_intent_begin_volumes(VoDaemon *d, const char *id, const char *owner,
                            const char *const *paths, size_t n, char *const *volumes);
/* That of a VM being made (import, create): id and owner "vms/VM_ID",
 * scratch a directory (NULL: none). And its end, once the VM's document is
 * saved or what it made removed. */
int vo_intent_vm_volumes(VoDaemon *d, const char *vm_id, const char *scratch,
                         char *const *volumes);
void vo_intent_vm_end(VoDaemon *d, const char *vm_id);

/* At start, before any record is loaded and before the API serves:
 *  - every intent whose owner document does not exist: its files go (one
 *    with volumes: later, vo_sweep_volumes_after_load);
 *  - in every dir pool: this host's ".upload-HOST-*" files of uploads and
 *    ".restore-HOST-*" files of restores cut short (HOST: vo_host_id; a
 *    pool may be shared, other hosts' are kept); a ".replaced-FILE" (an old disk moved
 *    aside during a restore) whose FILE is missing is put back;
 *  - in the images directory: ".build-*" directories of imports cut short,
 *    ".deleting-*" ones and image directories without image.json (deletes
 *    cut short);
 *  - VM state and run directories (named by a VM id) with no VM document;
 *  - "FILE.tmp.PID" files (a vo_write_file_atomic cut short) in the
 *    directories of images, VMs and networks (never through a symlink).
 * Files vireo did not name are never touched. */
void vo_sweep_at_start(VoDaemon *d);

/* At start, once pools, volumes and VMs are loaded (a VM with no document
 * has lost its relations by then), before the API serves: the volumes and
 * paths of each intent with volumes whose owner document does not exist are
 * removed (a volume something else uses is kept, logged); the record goes. */
void vo_sweep_volumes_after_load(VoDaemon *d);
