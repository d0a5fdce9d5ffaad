/* job-lock.c: brief holds of an object's job lock (job-lock.h): samplers
 * that only try it, and quick operations that wait a bounded moment for the
 * samplers but answer at once when a long task holds it. */
#include "jobs/job-lock.h"

#include <errno.h>
#include <poll.h>

#include "util/util.h"

/* The poll's pause: from the first to the last, doubling. A sampler's hold
 * is a QMP query or two (milliseconds). */
#define FIRST_PAUSE_MS 1
#define LAST_PAUSE_MS 10

bool vo_job_lock_try_brief(pthread_mutex_t *job, atomic_int *brief)
{
    atomic_fetch_add(brief, 1);
    if (pthread_mutex_trylock(job) == 0)
        return true;
    atomic_fetch_sub(brief, 1);
    return false;
}

int vo_job_lock_wait_brief(pthread_mutex_t *job, atomic_int *brief, int wait_ms,
                           VoJobLockLongHolderFn long_holder, void *userdata)
{
    int64_t deadline = vo_now_ms() + (wait_ms > 0 ? wait_ms : 0);
    int pause_ms = FIRST_PAUSE_MS;
    for (;;) {
        if (vo_job_lock_try_brief(job, brief))
            return 0;
        /* Held. No brief holder counted: a task (or another long holder).
         * The answer stands only while the job is still held by no brief
         * holder: the one the try met may have let go meanwhile (a task
         * ending, still listed for a moment). */
        if (atomic_load(brief) == 0 && long_holder && long_holder(userdata)) {
            if (vo_job_lock_try_brief(job, brief))
                return 0;
            if (atomic_load(brief) == 0)
                return -EBUSY;
        }
        int64_t left = deadline - vo_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        poll(NULL, 0, pause_ms < left ? pause_ms : (int)left);
        pause_ms = pause_ms * 2 > LAST_PAUSE_MS ? LAST_PAUSE_MS : pause_ms * 2;
    }
}

void vo_job_lock_release_brief(pthread_mutex_t *job, atomic_int *brief)
{
    pthread_mutex_unlock(job);
    atomic_fetch_sub(brief, 1);
}

void vo_job_lock_brief_done(atomic_int *brief)
{
    atomic_fetch_sub(brief, 1);
}
