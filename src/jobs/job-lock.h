/* job-lock.h: the brief side of an object's job lock (a pthread mutex that
 * serialises the operations on one object, e.g. a VM's vm->job). Tasks hold
 * the job for a whole operation and lock it plainly; samplers (monitoring,
 * DRS load, the event loop) hold it for a few milliseconds and must never
 * wait for it; a quick API operation (a screenshot, a guest agent call) holds
 * it briefly too and may wait a bounded moment for the samplers, but not
 * behind a task. The brief holders count themselves in a counter beside the
 * mutex, so a waiter can tell "a sampler has it for a moment" (wait) from
 * "something else has it" (ask who: a task answers busy at once).
 *
 * The counter is raised before the trylock and lowered after the unlock, so
 * whenever a brief holder holds the mutex the counter is above zero; a zero
 * read while the mutex is held means the holder is not a brief one. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* Whether the holder (not a brief one) is a long task, asked by a waiter
 * that found the job held with no brief holder counted; userdata is the
 * caller's. NULL: never (the waiter waits up to its bound). */
typedef bool (*VoJobLockLongHolderFn)(void *userdata);

/* A sampler's try: never waits. true: held, release with
 * vo_job_lock_release_brief. */
bool vo_job_lock_try_brief(pthread_mutex_t *job, atomic_int *brief);

/* Waits at most wait_ms for a job held by brief holders (or by a holder
 * long_holder does not call long): 0 when held (release with
 * vo_job_lock_release_brief), -EBUSY at once when long_holder says a long
 * task holds it, -ETIMEDOUT when it stayed held for wait_ms. Polls with a
 * short backoff (1 to 10 ms). The caller holds no lock that comes after
 * the job lock. */
int vo_job_lock_wait_brief(pthread_mutex_t *job, atomic_int *brief, int wait_ms,
                           VoJobLockLongHolderFn long_holder, void *userdata);

/* Ends a brief hold: unlocks the job and then lowers the counter. */
void vo_job_lock_release_brief(pthread_mutex_t *job, atomic_int *brief);
/* Lowers the counter only, for a holder that released the job itself (a
 * VM's job released by vo_vm_job_end under vm->lock): call after it. */
void vo_job_lock_brief_done(atomic_int *brief);
