/* check-workers.c: checks that may hang (an iSCSI login to a target that
 * does not answer) run side by side on threads of their own, one per key at
 * a time and a bounded number at once, so one that hangs holds only its own
 * key's next check (check-workers.h). */
#include "daemon/check-workers.h"

#include <pthread.h>
#include <string.h>

#include "util/util.h"

static struct {
    pthread_mutex_t lock;
    pthread_cond_t ended;
    char **running; /* the keys whose check runs */
} cw = { .lock = PTHREAD_MUTEX_INITIALIZER, .ended = PTHREAD_COND_INITIALIZER };

typedef struct {
    char *key;
    void (*fn)(void *arg);
    void *arg;
} Worker;

static size_t running_count(void)
{
    size_t n = 0;
    while (cw.running && cw.running[n])
        n++;
    return n;
}

/* Caller holds cw.lock. */
static ssize_t running_index(const char *key)
{
    for (size_t i = 0; cw.running && cw.running[i]; i++)
        if (!strcmp(cw.running[i], key))
            return (ssize_t)i;
    return -1;
}

/* Caller holds cw.lock; the last key takes its place. */
static void running_remove(const char *key)
{
    ssize_t i = running_index(key);
    if (i < 0)
        return;
    size_t n = running_count();
    free(cw.running[i]);
    cw.running[i] = cw.running[n - 1];
    cw.running[n - 1] = NULL;
}

static void *worker_main(void *userdata)
{
    Worker *w = userdata;
    w->fn(w->arg);
    pthread_mutex_lock(&cw.lock);
    running_remove(w->key);
    pthread_cond_broadcast(&cw.ended);
    pthread_mutex_unlock(&cw.lock);
    free(w->key);
    free(w);
    return NULL;
}

bool vo_check_workers_start(const char *key, size_t max, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&cw.lock);
    bool start = running_index(key) < 0 && running_count() < max;
    Worker *w = NULL;
    if (start) {
        w = vo_malloc0(sizeof(*w));
        *w = (Worker){ .key = vo_strdup(key), .fn = fn, .arg = arg };
        vo_strv_pushf(&cw.running, "%s", key);
    }
    pthread_attr_t attr;
    pthread_t thread;
    int r = 0;
    if (start) {
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&thread, &attr, worker_main, w);
        pthread_attr_destroy(&attr);
    }
    if (start && r != 0) { /* no thread: nothing runs for the key */
        log_warn("cannot start the check of %s: %s", key, strerror(r));
        running_remove(key);
        free(w->key);
        free(w);
        start = false;
    }
    pthread_mutex_unlock(&cw.lock);
    return start;
}

void vo_check_workers_wait(void)
{
    pthread_mutex_lock(&cw.lock);
    while (running_count() > 0)
        pthread_cond_wait(&cw.ended, &cw.lock);
    pthread_mutex_unlock(&cw.lock);
}
