/* threads.h: detached helper threads that vireod counts, so that its
 * teardown can wait (bounded) until the last one is done. */
#pragma once

#include <stdatomic.h>

typedef struct {
    atomic_int pending;
} VoThreadCount;

/* Starts fn(arg) on a detached thread counted in c; fn calls
 * vo_thread_done(c) as its last step. 0, or -errno (nothing started or
 * counted: the caller still owns arg). */
int vo_thread_spawn_counted(VoThreadCount *c, void *(*fn)(void *), void *arg);
void vo_thread_done(VoThreadCount *c);
/* Waits until no counted thread runs, at most timeout_ms. */
void vo_threads_wait(VoThreadCount *c, int timeout_ms);
