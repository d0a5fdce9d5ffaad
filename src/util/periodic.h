/* periodic.h: a background thread that runs a round every period_ms until
 * it is stopped, and at once when woken (vireod's schedule runner, DRS and
 * HA recovery). The round runs with no lock of this file held; what it
 * keeps between rounds is its own (only its thread touches it). */
#pragma once

#include <pthread.h>
#include <stdbool.h>

typedef struct {
    void (*round)(void *userdata);
    void *userdata;
    int period_ms;
    pthread_t thread;
    pthread_mutex_t lock; /* stop and woken */
    pthread_cond_t wake;
    bool started, stop, woken;
} VoPeriodic;

#define VO_PERIODIC_INIT { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER }

/* Starts the thread: round(userdata) now, then period_ms after each round
 * ends. 0, or -errno (nothing started). Start and stop are called from one
 * thread (vireod's main). */
int vo_periodic_start(VoPeriodic *p, void (*round)(void *userdata), void *userdata,
                      int period_ms);
bool vo_periodic_started(const VoPeriodic *p);
/* Whether a stop was asked: a long round checks it between its steps. */
bool vo_periodic_stopping(VoPeriodic *p);
/* The next round starts now (or right after the one under way). */
void vo_periodic_wake(VoPeriodic *p);
/* Stops the thread and waits for its round to end: true when it ran (the
 * caller then frees what its rounds kept), false when it was not started. */
bool vo_periodic_stop(VoPeriodic *p);
