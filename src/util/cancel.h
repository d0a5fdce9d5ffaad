/* cancel.h: a cancel token for long work on a thread (a task's): one flag
 * and an fd that becomes readable once cancel is asked, so code that waits
 * in poll() (a qemu-img child, QEMU block jobs) stops at once. A worker
 * makes its task's token the thread's current one; helpers deep in the call
 * chain (util/spawn.c, storage/qemu-img.c, qemu/qemu-backup.c) ask the
 * current token without a task being passed down. */
#pragma once

#include <stdbool.h>

typedef struct VoCancel VoCancel;

/* NULL when no fd could be made (then cancel is a flag only). */
VoCancel *vo_cancel_new(void);
void vo_cancel_free(VoCancel *c);
/* Thread-safe; idempotent. */
void vo_cancel_request(VoCancel *c);
bool vo_cancel_is_requested(const VoCancel *c);

/* The calling thread's token (NULL: none; then nothing is ever cancelled). */
void vo_cancel_set_current(VoCancel *c);
/* The calling thread's token, for work it hands to other threads (librbd's
 * callbacks): they ask vo_cancel_is_requested of it. NULL: none. */
const VoCancel *vo_cancel_current(void);
/* Whether cancel was asked of the calling thread's work. */
bool vo_cancelled(void);
/* An fd readable once cancel is asked of the calling thread's work, for
 * poll(); -1 when it has no token. */
int vo_cancel_fd(void);
