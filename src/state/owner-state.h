/* owner-state.h: whether the document that owns something a crash may
 * have left half-made (an intent's files and RBD images, a VM's state and
 * run directories) is there, as the store says it, for the start-up sweep
 * (daemon/sweep.c). Only a definite "not found" says it is gone: a store
 * that cannot answer (etcd unreachable or slow at vireod's start, no
 * quorum, a timeout, any other error) or that answers from a member which
 * may be behind (a stale read, store.h) leaves the question open, and the
 * sweep then keeps everything for its next try: removing what a live
 * document owns would lose data. */
#pragma once

#include "state/store.h"

typedef enum {
    VO_OWNER_EXISTS,  /* the document is there */
    VO_OWNER_GONE,    /* a linearizable read found no such key (-ENOENT) */
    VO_OWNER_UNKNOWN, /* the store could not say: nothing may be removed */
} VoOwnerState;

/* What the store says of key now. For VO_OWNER_UNKNOWN, *ret_errno (may be
 * NULL) is the store's error, or -EAGAIN for a stale "not found". The
 * calling thread's stale-read note (vo_store_stale_read) is kept as it was,
 * plus this read's. */
VoOwnerState vo_store_owner_state(VoStore *s, const char *key, int *ret_errno);

/* Words for a log line: "it exists", "it is gone", "the store cannot say". */
const char *vo_owner_state_name(VoOwnerState st);
