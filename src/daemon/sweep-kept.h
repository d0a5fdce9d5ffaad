/* sweep-kept.h: the intents the start-up sweep kept because Ceph would not
 * remove the RBD image one names (a create cut short by a crash, its image
 * marked as the volume's: sweep.c). Each remembers its last failure, of
 * one kind (storage/rbd-failure.h), which sets when it is tried again
 * while vireod runs (the rbd pools' check thread, one every few seconds):
 * Ceph not answering at each check, an image still open by a client after
 * a growing wait, a failure a retry will not cure (a refused key) only
 * hourly. While Ceph does not answer, its going down is logged, then a
 * reminder every VO_SWEEP_KEPT_DOWN_REMINDER_MS and its coming back with
 * how long it was down (not a line at every check). A create of that name
 * tries it first, whatever the wait, so the
 * image goes once Ceph lets it and never blocks the name; a stop leaves
 * the record to the next start's sweep. GET of the pool lists them. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"

#define VO_SWEEP_KEPT_DOWN_REMINDER_MS (10 * 60 * 1000)

/* Notes intent store key ("intents/...") as kept: removing an RBD image of
 * rbd pool `pool` failed with err (-errno) saying error. A shared pool's
 * kept intents are published to the cluster (pool-kept.h). */
void vo_sweep_kept_add(VoDaemon *d, const char *key, const char *pool, int err,
                       const char *error);
/* Tries one kept intent that is due (the next in turn; bounded by the Ceph
 * timeouts). */
void vo_sweep_kept_retry(VoDaemon *d);
/* Before volume pool/name is reserved: a kept intent of that name is
 * finished first. 0 (none, or finished), or -EBUSY with *ret_error saying
 * why the image cannot go yet (the name stays blocked until it does). */
int vo_sweep_kept_finish_volume(VoDaemon *d, const char *pool, const char *name,
                                char **ret_error);
/* The kept intents of rbd pool `pool`: [{"intent","failure","error",
 * "tries","next_try_at"}] (failure: rbd-failure.h's kind name; next_try_at
 * null while tried at every check). */
json_t *vo_sweep_kept_json(const char *pool);
/* Their keys ("intents/..."), NULL when none. */
char **vo_sweep_kept_of_pool(const char *pool);
/* Pool `pool` is deleted (forced, or by another host): its kept intents'
 * records go and they are no longer tried (their images, when there are
 * any, stay in Ceph: logged, naming them). A try of one of them under
 * way is waited for first (bounded by Ceph's timeouts), and a create of
 * such a name waits for this. */
void vo_sweep_kept_forget_pool(VoDaemon *d, const char *pool);

/* What one try of an intent (vo_sweep_intent) found, and what it remembers
 * across the tries of one sweep. */
typedef struct {
    char **down; /* rbd pool directories that did not answer in this sweep (strv) */
    bool quiet_unreachable; /* a retry of a kept intent: Ceph not answering is not
                             * logged at each try (sweep-kept.c logs it going down,
                             * a reminder now and then, and it coming back) */
    char *pool;  /* a failure's rbd pool (its name), or NULL */
    char *error; /* and what it said */
} VoSweepTry;
void vo_sweep_try_clear(VoSweepTry *t);

/* sweep.c: the work of one intent without volumes (key, its text): its
 * files and marked RBD images removed when its owner is gone. 1 when done
 * (the record may go), 0 when the store cannot say whether the owner
 * exists, -errno when an RBD image could not be removed (t->pool and
 * t->error say where and why; the record stays). An RBD pool in t->down
 * is not asked again: a pool whose Ceph does not answer costs one
 * connection's timeout per sweep, not one per image. */
int vo_sweep_intent(VoDaemon *d, const char *key, const char *text, VoSweepTry *t);
