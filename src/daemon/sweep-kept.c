/* sweep-kept.c: the intents the start-up sweep kept because an RBD image
 * would not go, tried again while vireod runs (see sweep-kept.h). One
 * intent is tried at a time, so a volume create of that name and the
 * retry thread never both act on it: the create waits, then finds it
 * finished (or fails at once when that try failed; else it tries itself).
 * A create of a name not kept never waits. */
#include "daemon/sweep-kept.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/pool-kept.h"
#include "storage/rbd-failure.h"
#include "util/time-format.h"
#include "util/util.h"

typedef struct {
    char *key;  /* "intents/..." */
    char *pool; /* the rbd pool whose image would not go */
    char *error;
    VoRbdFailure kind;
    unsigned tries;  /* failed ones, the start-up sweep's included */
    int64_t next_ms; /* not tried by the retry thread before (vo_now_ms) */
    int64_t next_wall_ms;
    bool dropping; /* its pool deleted: its record going (forget_pool), not tried */
    int64_t down_since_ms; /* Ceph not answering since (vo_now_ms), or 0 */
    int64_t down_told_ms;  /* and last said so in the log */
} Kept;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t idle; /* working went back to NULL, or a dropping one went */
    Kept *items;
    size_t n;
    char *working; /* the key being tried now, or NULL */
} kept = { .lock = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER };

/* Caller holds kept.lock. */
static Kept *kept_find(const char *key)
{
    for (size_t i = 0; i < kept.n; i++)
        if (!strcmp(kept.items[i].key, key))
            return &kept.items[i];
    return NULL;
}

/* Caller holds kept.lock. Ceph not answering for k's image, as the log
 * tells it: when it starts (the start-up sweep's own line says it at
 * first), a reminder every VO_SWEEP_KEPT_DOWN_REMINDER_MS, and when it
 * answers again (a failure of another kind now; finish() when it finished),
 * with how long it did not: not a line at every check. */
static void log_down(Kept *k, VoRbdFailure kind)
{
    int64_t now = vo_now_ms();
    const char *pool = k->pool ? k->pool : "?";
    if (kind != VO_RBD_FAIL_UNREACHABLE) {
        if (k->down_since_ms)
            log_info("sweep: the Ceph of pool '%s' answers again after %lld s (%s: %s now)",
                     pool, (long long)((now - k->down_since_ms) / 1000), k->key,
                     vo_rbd_failure_name(kind));
        k->down_since_ms = 0;
        return;
    }
    if (!k->down_since_ms) {
        k->down_since_ms = k->down_told_ms = now;
        if (k->tries > 1) /* a retry's (quiet, its try counted): said once here */
            log_warn("sweep: the Ceph of pool '%s' does not answer (%s): the RBD image of %s "
                     "is tried again at each check, reminded every %d min", pool, k->error,
                     k->key, VO_SWEEP_KEPT_DOWN_REMINDER_MS / 60000);
    } else if (now - k->down_told_ms >= VO_SWEEP_KEPT_DOWN_REMINDER_MS) {
        k->down_told_ms = now;
        log_warn("sweep: the Ceph of pool '%s' still does not answer after %lld min (%s): the "
                 "RBD image of %s is not removed yet (%u tries)", pool,
                 (long long)((now - k->down_since_ms) / 60000), k->error, k->key, k->tries);
    }
}

/* Caller holds kept.lock. Records failure err of k (its try count and
 * when the retry thread tries it next), logging a change of kind. True
 * when what the cluster is shown of it changed (pool-kept.h): the caller
 * publishes it once it let go of the lock. */
static bool kept_failed(Kept *k, const char *pool, int err, const char *error)
{
    VoRbdFailure kind = vo_rbd_failure_kind(err);
    bool changed = !k->tries || k->kind != kind;
    const char *new_error = error ? error : strerror(err < 0 ? -err : err);
    bool shown_changed = changed || !k->error || strcmp(k->error, new_error) ||
                         (pool && (!k->pool || strcmp(k->pool, pool)));
    if (pool && (!k->pool || strcmp(k->pool, pool))) {
        free(k->pool);
        k->pool = vo_strdup(pool);
    }
    char *old_error = k->error;
    k->error = vo_strdup(new_error);
    free(old_error);
    k->kind = kind;
    k->tries++;
    int64_t delay = vo_rbd_retry_delay_ms(kind, k->tries);
    k->next_ms = vo_now_ms() + (delay > 0 ? delay : 0);
    k->next_wall_ms = vo_wall_ms() + (delay > 0 ? delay : 0);
    log_down(k, kind);
    if (kind == VO_RBD_FAIL_BUSY)
        log_warn("sweep: the RBD image of %s is still in use (%s); tried again in %lld s",
                 k->key, k->error, (long long)(delay / 1000));
    else if (changed && kind == VO_RBD_FAIL_PERMANENT)
        log_warn("sweep: the RBD image of %s cannot be removed (%s), and trying again will "
                 "not change that: fix the cause (the pool's key, its settings) or delete "
                 "pool '%s' with force; tried again hourly", k->key, k->error,
                 k->pool ? k->pool : "?");
    return shown_changed;
}

void vo_sweep_kept_add(VoDaemon *d, const char *key, const char *pool, int err,
                       const char *error)
{
    pthread_mutex_lock(&kept.lock);
    Kept *k = kept_find(key);
    if (!k) {
        Kept *items = vo_malloc0(sizeof(Kept) * (kept.n + 1));
        if (kept.n)
            memcpy(items, kept.items, sizeof(Kept) * kept.n);
        free(kept.items);
        kept.items = items;
        k = &kept.items[kept.n++];
        *k = (Kept){ .key = vo_strdup(key) };
    }
    _cleanup_free_ char *publish = kept_failed(k, pool, err, error) && k->pool
                                       ? vo_strdup(k->pool) : NULL;
    pthread_mutex_unlock(&kept.lock);
    if (publish)
        (void)vo_pool_kept_publish(d, publish);
}

/* Caller holds kept.lock. */
static void kept_drop(const char *key)
{
    Kept *k = kept_find(key);
    if (!k)
        return;
    free(k->key);
    free(k->pool);
    free(k->error);
    *k = kept.items[--kept.n];
}

void vo_sweep_try_clear(VoSweepTry *t)
{
    vo_strv_free(t->down);
    free(t->pool);
    free(t->error);
    *t = (VoSweepTry){ 0 };
}

/* One try of kept intent key: 0 when it is finished (or was not kept),
 * -EAGAIN while it is not (*ret_error: why, when asked for). */
static int finish(VoDaemon *d, const char *key, char **ret_error)
{
    pthread_mutex_lock(&kept.lock);
    /* One try at a time (bounded by Ceph's timeouts); a key not kept waits
     * for none (a create of another name must not wait on Ceph). */
    bool tried_meanwhile = false;
    Kept *k;
    while ((k = kept_find(key)) && (kept.working || k->dropping)) {
        tried_meanwhile = tried_meanwhile || (kept.working && !strcmp(kept.working, key));
        pthread_cond_wait(&kept.idle, &kept.lock);
    }
    if (!k || tried_meanwhile) { /* finished, or failed just now */
        if (k && ret_error)
            *ret_error = vo_strdup(k->error);
        pthread_mutex_unlock(&kept.lock);
        return k ? -EAGAIN : 0;
    }
    kept.working = vo_strdup(key);
    pthread_mutex_unlock(&kept.lock);

    _cleanup_free_ char *text = NULL;
    int64_t rev = 0;
    VoSweepTry t = { .quiet_unreachable = true };
    int r = vo_store_get(d->store, key, &text, &rev);
    if (r == -ENOENT) /* ended by someone else (a host leaving a cluster...) */
        r = 1;
    else if (r >= 0 && (r = vo_sweep_intent(d, key, text, &t)) > 0 &&
             vo_store_delete(d->store, key, rev) >= 0)
        log_info("sweep: finished %s, kept at start while its RBD image would not go", key);
    pthread_mutex_lock(&kept.lock);
    k = kept_find(key); /* NULL: forgotten meanwhile (its pool deleted) */
    _cleanup_free_ char *publish = k && k->pool ? vo_strdup(k->pool) : NULL;
    if (r > 0) {
        if (k && k->down_since_ms)
            log_info("sweep: the Ceph of pool '%s' answers again after %lld s (%s finished)",
                     k->pool ? k->pool : "?",
                     (long long)((vo_now_ms() - k->down_since_ms) / 1000), key);
        kept_drop(key);
    } else if (k && r < 0 && t.pool) { /* Ceph's answer: a store read that failed is none */
        if (!kept_failed(k, t.pool, r, t.error))
            free(TAKE_PTR(publish));
    } else {
        free(TAKE_PTR(publish));
    }
    if (k && r <= 0 && ret_error)
        *ret_error = vo_strdup(k->error);
    free(TAKE_PTR(kept.working));
    pthread_cond_broadcast(&kept.idle);
    pthread_mutex_unlock(&kept.lock);
    if (publish) /* finished, or its failure changed: the cluster sees it */
        (void)vo_pool_kept_publish(d, publish);
    vo_sweep_try_clear(&t);
    return r > 0 ? 0 : -EAGAIN;
}

void vo_sweep_kept_retry(VoDaemon *d)
{
    /* A publish to the cluster that failed (pool-kept.h): the cluster must
     * see them even when their failure does not change. */
    vo_pool_kept_publish_owed(d);
    /* One due intent per call, in turn: a stop waits for one try at most. */
    static size_t next;
    pthread_mutex_lock(&kept.lock);
    _cleanup_free_ char *key = NULL;
    int64_t now = vo_now_ms();
    for (size_t i = 0; i < kept.n && !key; i++) {
        Kept *k = &kept.items[(next + i) % kept.n];
        if (k->next_ms <= now && !k->dropping) {
            key = vo_strdup(k->key);
            next = (next + i + 1) % kept.n;
        }
    }
    pthread_mutex_unlock(&kept.lock);
    if (key)
        (void)finish(d, key, NULL);
}

int vo_sweep_kept_finish_volume(VoDaemon *d, const char *pool, const char *name,
                                char **ret_error)
{
    pthread_mutex_lock(&kept.lock);
    bool any = kept.n > 0;
    pthread_mutex_unlock(&kept.lock);
    if (!any) /* the usual case: nothing to wait for */
        return 0;
    _cleanup_free_ char *key = vo_asprintf("intents/volumes/%s/%s", pool, name);
    _cleanup_free_ char *why = NULL;
    if (finish(d, key, &why) < 0)
        return vo_error_set(ret_error, -EBUSY, "volume '%s/%s': the RBD image a create cut "
                            "short left cannot be removed yet: %s", pool, name,
                            why ? why : "Ceph does not answer");
    return 0;
}

json_t *vo_sweep_kept_json(const char *pool)
{
    json_t *list = json_array();
    pthread_mutex_lock(&kept.lock);
    for (size_t i = 0; i < kept.n; i++) {
        const Kept *k = &kept.items[i];
        if (!k->pool || strcmp(k->pool, pool))
            continue;
        bool each_check = vo_rbd_retry_delay_ms(k->kind, k->tries) <= 0;
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:I, s:o}", "intent", k->key, "failure",
                            vo_rbd_failure_name(k->kind), "error", k->error, "tries",
                            (json_int_t)k->tries, "next_try_at",
                            each_check ? json_null() : vo_time_json(k->next_wall_ms)));
    }
    pthread_mutex_unlock(&kept.lock);
    return list;
}

char **vo_sweep_kept_of_pool(const char *pool)
{
    char **keys = NULL;
    pthread_mutex_lock(&kept.lock);
    for (size_t i = 0; i < kept.n; i++)
        if (kept.items[i].pool && !strcmp(kept.items[i].pool, pool) && !kept.items[i].dropping)
            vo_strv_push(&keys, vo_strdup(kept.items[i].key));
    pthread_mutex_unlock(&kept.lock);
    return keys;
}

void vo_sweep_kept_forget_pool(VoDaemon *d, const char *pool)
{
    _cleanup_strv_ char **keys = vo_sweep_kept_of_pool(pool);
    for (size_t i = 0; keys && keys[i]; i++) {
        /* Not while a try of it is under way (it may still remove the
         * image: a create of the name must wait for it, not find the name
         * free); then marked dropping, so that no try starts and a create
         * of the name waits until the record is gone (its own intent,
         * written next, must not be the one deleted here). A try of
         * another intent is not waited for. */
        pthread_mutex_lock(&kept.lock);
        Kept *k;
        while ((k = kept_find(keys[i])) && kept.working && !strcmp(kept.working, keys[i]))
            pthread_cond_wait(&kept.idle, &kept.lock);
        if (!k || k->dropping) { /* finished meanwhile, or being dropped */
            pthread_mutex_unlock(&kept.lock);
            continue;
        }
        k->dropping = true;
        _cleanup_free_ char *error = vo_strdup(k->error);
        pthread_mutex_unlock(&kept.lock);
        int r = vo_store_delete(d->store, keys[i], VO_REV_ANY);
        pthread_mutex_lock(&kept.lock);
        kept_drop(keys[i]);
        pthread_cond_broadcast(&kept.idle);
        pthread_mutex_unlock(&kept.lock);
        log_warn("sweep: dropped %s with pool '%s': its RBD image, if Ceph still holds one, "
                 "stays there (last error: %s)%s", keys[i], pool, error,
                 r < 0 && r != -ENOENT ? "; its record could not be removed" : "");
    }
    if (keys) /* this host's document of them goes (the pool has none) */
        (void)vo_pool_kept_publish(d, pool);
}
