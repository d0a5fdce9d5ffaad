/* lease-keeper.c: a thread that renews one lease until stopped (see
 * lease-keeper.h). A renewal the store cannot answer is tried again at the
 * next tick; one that finds the lease gone marks it lost for good. */
#include "state/lease-keeper.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "util/util.h"

struct VoLeaseKeeper {
    VoStore *store;
    int64_t lease;
    int period_ms;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop, lost;
};

static void *keeper_main(void *userdata)
{
    VoLeaseKeeper *k = userdata;
    pthread_mutex_lock(&k->lock);
    while (!k->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += k->period_ms / 1000;
        until.tv_nsec += (long)(k->period_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int w = 0;
        while (!k->stop && w != ETIMEDOUT)
            w = pthread_cond_timedwait(&k->cond, &k->lock, &until);
        if (k->stop || k->lost)
            continue;
        pthread_mutex_unlock(&k->lock);
        int r = k->store->ops->lease_keepalive(k->store, k->lease);
        pthread_mutex_lock(&k->lock);
        if (r == -ENOENT)
            k->lost = true;
    }
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

VoLeaseKeeper *vo_lease_keeper_start(VoStore *s, int64_t lease, int ttl_ms)
{
    VoLeaseKeeper *k = vo_malloc0(sizeof(*k));
    k->store = s;
    k->lease = lease;
    k->period_ms = ttl_ms / 3 > 0 ? ttl_ms / 3 : 1;
    pthread_mutex_init(&k->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&k->thread, NULL, keeper_main, k) != 0)
        abort();
    return k;
}

int vo_lease_keeper_confirm(VoLeaseKeeper *k)
{
    pthread_mutex_lock(&k->lock);
    bool lost = k->lost;
    pthread_mutex_unlock(&k->lock);
    if (lost)
        return -ENOENT;
    int r = k->store->ops->lease_keepalive(k->store, k->lease);
    if (r == -ENOENT) {
        pthread_mutex_lock(&k->lock);
        k->lost = true;
        pthread_mutex_unlock(&k->lock);
    }
    return r < 0 ? r : 0;
}

int64_t vo_lease_keeper_lease(const VoLeaseKeeper *k)
{
    return k->lease;
}

int vo_lease_keeper_stop(VoLeaseKeeper *k)
{
    if (!k)
        return 0;
    pthread_mutex_lock(&k->lock);
    k->stop = true;
    pthread_cond_signal(&k->cond);
    pthread_mutex_unlock(&k->lock);
    pthread_join(k->thread, NULL);
    int r = k->store->ops->lease_revoke(k->store, k->lease);
    pthread_cond_destroy(&k->cond);
    pthread_mutex_destroy(&k->lock);
    free(k);
    return r;
}
