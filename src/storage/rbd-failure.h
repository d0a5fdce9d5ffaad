/* rbd-failure.h: what a failed Ceph call on an RBD image means for a
 * retry, and when to retry. The sweep's kept intents (daemon/sweep-kept.c)
 * use it to tell "Ceph does not answer" (retry soon) from "a client still
 * has it open" (retry later) and failures a retry will not cure (a refused
 * key, a bad setting: shown to the user, tried seldom). An image that does
 * not exist is no failure: rbd-client.h answers it as done. Pure
 * functions: no Ceph needed to test them. */
#pragma once

#include <stdint.h>

typedef enum {
    VO_RBD_FAIL_UNREACHABLE, /* timeouts, refused or lost connections: keep, retry soon */
    VO_RBD_FAIL_BUSY,        /* -EBUSY: a client (a watcher) holds it: retry later */
    VO_RBD_FAIL_PERMANENT,   /* -EACCES, -EINVAL, -ENOENT, anything else: a retry will
                              * not cure it */
} VoRbdFailure;

/* The kind of failure err (a -errno; a positive errno is read the same). */
VoRbdFailure vo_rbd_failure_kind(int err);
/* Its name in the API and the log: "unreachable", "busy", "permanent". */
const char *vo_rbd_failure_name(VoRbdFailure kind);

/* Milliseconds to wait before the next automatic try after `tries` failed
 * ones (tries >= 1) of that kind: 0 for unreachable (each check cycle),
 * doubling from VO_RBD_BUSY_RETRY_MS up to VO_RBD_BUSY_RETRY_MAX_MS for
 * busy, VO_RBD_PERMANENT_RETRY_MS for permanent (so a key put right is
 * noticed without a restart, without hammering Ceph meanwhile). */
#define VO_RBD_BUSY_RETRY_MS (30 * 1000)
#define VO_RBD_BUSY_RETRY_MAX_MS (10 * 60 * 1000)
#define VO_RBD_PERMANENT_RETRY_MS (60 * 60 * 1000)
int64_t vo_rbd_retry_delay_ms(VoRbdFailure kind, unsigned tries);
