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

/* At start, before any record is loaded and before the API serves:
 *  - every intent whose owner document does not exist: its files go;
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
