/* sweep-kept.c: the intents the start-up sweep kept because Ceph did not
 * answer, tried again while vireod runs (see sweep-kept.h). One intent is
 * tried at a time, so a volume create of that name and
 * the retry thread never both act on it: the create waits, then finds it
 * finished (or fails at once when that try failed: Ceph does not answer;
 * else it tries itself). A create of a name not kept never waits. */
#include "daemon/sweep-kept.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static struct {
    pthread_mutex_t lock;
    pthread_cond_t idle; /* working went back to NULL */
    char **keys;         /* strv of "intents/..." */
    char *working;       /* the key being tried now, or NULL */
} kept = { .lock = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER };

/* Caller holds kept.lock. */
static ssize_t kept_index(const char *key)
{
    for (size_t i = 0; kept.keys && kept.keys[i]; i++)
        if (!strcmp(kept.keys[i], key))
            return (ssize_t)i;
    return -1;
}

void vo_sweep_kept_add(const char *key)
{
    pthread_mutex_lock(&kept.lock);
    if (kept_index(key) < 0)
        vo_strv_push(&kept.keys, vo_strdup(key));
    pthread_mutex_unlock(&kept.lock);
}

/* Caller holds kept.lock. */
static void kept_drop(const char *key)
{
    ssize_t i = kept_index(key);
    if (i < 0)
        return;
    free(kept.keys[i]);
    size_t n = vo_strv_len(kept.keys);
    memmove(kept.keys + i, kept.keys + i + 1, (n - (size_t)i) * sizeof(char *));
}

/* One try of kept intent key: 0 when it is finished (or was not kept),
 * -EAGAIN while Ceph (or the store) still cannot answer. */
static int finish(VoDaemon *d, const char *key)
{
    pthread_mutex_lock(&kept.lock);
    /* One try at a time (bounded by Ceph's timeouts); a key not kept waits
     * for none (a create of another name must not wait on Ceph). */
    bool tried_meanwhile = false;
    while (kept.working && kept_index(key) >= 0) {
        tried_meanwhile = tried_meanwhile || !strcmp(kept.working, key);
        pthread_cond_wait(&kept.idle, &kept.lock);
    }
    if (kept_index(key) < 0 || tried_meanwhile) { /* finished, or failed just now */
        bool finished = kept_index(key) < 0;
        pthread_mutex_unlock(&kept.lock);
        return finished ? 0 : -EAGAIN;
    }
    kept.working = vo_strdup(key);
    pthread_mutex_unlock(&kept.lock);

    _cleanup_free_ char *text = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, key, &text, &rev);
    if (r == -ENOENT) /* ended by someone else (a host leaving a cluster...) */
        r = 1;
    else if (r >= 0 && (r = vo_sweep_intent(d, key, text)) > 0 &&
             vo_store_delete(d->store, key, rev) >= 0)
        log_info("sweep: finished %s, kept at start while Ceph did not answer", key);
    pthread_mutex_lock(&kept.lock);
    if (r > 0)
        kept_drop(key);
    free(TAKE_PTR(kept.working));
    pthread_cond_broadcast(&kept.idle);
    pthread_mutex_unlock(&kept.lock);
    return r > 0 ? 0 : -EAGAIN;
}

void vo_sweep_kept_retry(VoDaemon *d)
{
    /* One intent per call, in turn: a stop waits for one try at most. */
    static size_t next;
    pthread_mutex_lock(&kept.lock);
    size_t n = vo_strv_len(kept.keys);
    _cleanup_free_ char *key = n ? vo_strdup(kept.keys[next++ % n]) : NULL;
    pthread_mutex_unlock(&kept.lock);
    if (key)
        (void)finish(d, key);
}

int vo_sweep_kept_finish_volume(VoDaemon *d, const char *pool, const char *name,
                                char **ret_error)
{
    pthread_mutex_lock(&kept.lock);
    bool any = kept.keys && kept.keys[0];
    pthread_mutex_unlock(&kept.lock);
    if (!any) /* the usual case: nothing to wait for */
        return 0;
    _cleanup_free_ char *key = vo_asprintf("intents/volumes/%s/%s", pool, name);
    if (finish(d, key) < 0)
        return vo_error_set(ret_error, -EBUSY, "volume '%s/%s': the RBD image a create cut "
                            "short left cannot be removed yet (Ceph does not answer): try again "
                            "when it does", pool, name);
    return 0;
}
