/* periodic.c: a thread running a round every period, woken early on demand
 * and stopped with a join (periodic.h). */
#include "util/periodic.h"

#include "util/util.h"

static void *periodic_main(void *arg)
{
    VoPeriodic *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        p->woken = false;
        pthread_mutex_unlock(&p->lock);
        p->round(p->userdata);
        pthread_mutex_lock(&p->lock);
        struct timespec until = vo_deadline_ms(CLOCK_REALTIME, p->period_ms);
        if (!p->stop && !p->woken)
            pthread_cond_timedwait(&p->wake, &p->lock, &until);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int vo_periodic_start(VoPeriodic *p, void (*round)(void *userdata), void *userdata,
                      int period_ms)
{
    if (p->started)
        return 0;
    p->round = round;
    p->userdata = userdata;
    p->period_ms = period_ms;
    p->stop = p->woken = false;
    int r = -pthread_create(&p->thread, NULL, periodic_main, p);
    if (r < 0)
        return r;
    p->started = true;
    return 0;
}

bool vo_periodic_started(const VoPeriodic *p)
{
    return p->started;
}

bool vo_periodic_stopping(VoPeriodic *p)
{
    pthread_mutex_lock(&p->lock);
    bool stop = p->stop;
    pthread_mutex_unlock(&p->lock);
    return stop;
}

void vo_periodic_wake(VoPeriodic *p)
{
    pthread_mutex_lock(&p->lock);
    p->woken = true;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

bool vo_periodic_stop(VoPeriodic *p)
{
    if (!p->started)
        return false;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    p->started = false;
    return true;
}
