/* check-workers.c: checks that may hang (an iSCSI login to a target that
 * does not answer) run side by side on threads of their own, one per key at
 * a time and a bounded number of a group at once, so one that hangs holds
 * only its own key's next check (check-workers.h). */
#include "daemon/check-workers.h"

#include <pthread.h>
#include <string.h>

#include "util/util.h"

static struct {
    pthread_mutex_t lock;
    pthread_cond_t ended;
    char **running; /* "GROUP\nKEY" of each check that runs */
} cw = { .lock = PTHREAD_MUTEX_INITIALIZER, .ended = PTHREAD_COND_INITIALIZER };

typedef struct {
    char *key; /* "GROUP\nKEY" */
    void (*fn)(void *arg);
    void *arg;
} Worker;

/* Caller holds cw.lock: the checks of group that run (NULL: of all). */
static size_t running_count(const char *group)
{
    size_t n = 0, len = group ? strlen(group) : 0;
    for (size_t i = 0; cw.running && cw.running[i]; i++)
        n += !group || (!strncmp(cw.running[i], group, len) && cw.running[i][len] == '\n');
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
    size_t n = running_count(NULL);
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

bool vo_check_workers_start(const char *group, const char *key, size_t max,
                            void (*fn)(void *arg), void *arg)
{
    _cleanup_free_ char *full = vo_asprintf("%s\n%s", group, key);
    pthread_mutex_lock(&cw.lock);
    bool start = running_index(full) < 0 && running_count(group) < max;
    Worker *w = NULL;
    if (start) {
        w = vo_malloc0(sizeof(*w));
        *w = (Worker){ .key = vo_strdup(full), .fn = fn, .arg = arg };
        vo_strv_pushf(&cw.running, "%s", full);
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
        log_warn("cannot start the %s check of %s: %s", group, key, strerror(r));
        running_remove(full);
        free(w->key);
        free(w);
        start = false;
    }
    pthread_mutex_unlock(&cw.lock);
    return start;
}

void vo_check_workers_wait(const char *group)
{
    pthread_mutex_lock(&cw.lock);
    while (running_count(group) > 0)
        pthread_cond_wait(&cw.ended, &cw.lock);
    pthread_mutex_unlock(&cw.lock);
}
