/* threads.c: counted detached helper threads (see threads.h). */
#include "util/threads.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>

int vo_thread_spawn_counted(VoThreadCount *c, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&c->pending, 1);
    int r = pthread_create(&thread, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (r != 0)
        atomic_fetch_sub(&c->pending, 1);
    return -r;
}

void vo_thread_done(VoThreadCount *c)
{
    atomic_fetch_sub(&c->pending, 1);
}

void vo_threads_wait(VoThreadCount *c, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms && atomic_load(&c->pending) > 0; waited += 10)
        poll(NULL, 0, 10);
}
