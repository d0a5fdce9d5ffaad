/* pool-watch.c: the shared pools' watch and marker checks, and the rbd
 * pools' and the iSCSI pools' reachability checks on a thread each (see
 * pool-watch.h).
 * The watch is the host's one watch on cluster/: it also tells the
 * followers of cluster-follow.h what changed. */
#include "daemon/pool-watch.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "daemon/check-workers.h"
#include "daemon/cluster-follow.h"
#include "daemon/storage.h"
#include "daemon/sweep-kept.h"
#include "util/util.h"

#define WATCH_PREFIX "cluster/"

/* The checks of one kind of networked pool, on a thread of their own. */
typedef struct {
    const char *what;
    bool (*check)(VoDaemon *d);
    bool retry_sweep; /* also retries the RBD images the start-up sweep could not remove */
    pthread_t thread;
    bool started;
} NetworkChecks;

static NetworkChecks network_checks[] = {
    { .what = "rbd", .check = vo_storage_check_rbd_pools, .retry_sweep = true },
    /* A target that does not answer costs a login timeout (10 s) a check:
     * never on the rbd pools' thread. */
    { .what = "iSCSI", .check = vo_storage_check_iscsi_pools },
};

static struct {
    VoDaemon *d;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the network threads' wait between checks, cut short by a stop */
    bool stop, started;
    VoStoreWatch *watch;
} pw = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static bool is_shared_key(const char *key)
{
    return !strncmp(key, VO_SHARED_POOLS_PREFIX, strlen(VO_SHARED_POOLS_PREFIX)) ||
           !strncmp(key, VO_SHARED_VOLUMES_PREFIX, strlen(VO_SHARED_VOLUMES_PREFIX));
}

/* A watch from now, after listing again what it may have missed. */
static int reopen(VoDaemon *d, VoStoreWatch **ret)
{
    int64_t rev = 0;
    VoStore *s = d->store;
    int r = s->ops->revision(s, &rev);
    if (r >= 0)
        r = s->ops->watch_open(s, WATCH_PREFIX, rev, ret);
    if (r >= 0)
        r = vo_storage_relist_shared(d);
    return r;
}

static void *watch_thread(void *userdata)
{
    VoDaemon *d = userdata;
    VoStore *s = d->store;
    int64_t next_check = vo_now_ms() + VO_POOL_CHECK_MS;
    int64_t last_log = 0;
    for (;;) {
        pthread_mutex_lock(&pw.lock);
        bool stop = pw.stop;
        VoStoreWatch *w = pw.watch;
        pthread_mutex_unlock(&pw.lock);
        if (stop)
            break;
        int r = 0;
        if (!w) {
            r = reopen(d, &w);
            pthread_mutex_lock(&pw.lock);
            if (r >= 0 && !pw.stop) {
                pw.watch = w;
                vo_cluster_follow_opened();
            } else if (w) {
                s->ops->watch_close(w);
                w = NULL;
            }
            pthread_mutex_unlock(&pw.lock);
        }
        VoStoreEvent *events = NULL;
        size_t n = 0;
        if (w)
            r = s->ops->watch_next(w, VO_POOL_CHECK_MS, &events, &n);
        if (r == -ECANCELED)
            break;
        for (size_t i = 0; r >= 0 && i < n; i++) {
            if (is_shared_key(events[i].key))
                vo_storage_apply_change(d, events[i].key,
                                        events[i].kind == VO_STORE_PUT ? events[i].value : NULL,
                                        events[i].rev);
            vo_cluster_follow_changed(events[i].key);
        }
        vo_store_events_free(events, n);
        if (r < 0) {
            /* Compacted, or the store is unreachable: watch again from now. */
            if (vo_now_ms() - last_log > 30000) {
                log_warn("shared pools: watch lost (%s); listing again", strerror(-r));
                last_log = vo_now_ms();
            }
            pthread_mutex_lock(&pw.lock);
            if (pw.watch) {
                vo_cluster_follow_lost();
                s->ops->watch_close(pw.watch);
            }
            pw.watch = NULL;
            pthread_mutex_unlock(&pw.lock);
            if (!w) /* could not open one: do not spin */
                usleep(500 * 1000);
        }
        if (vo_now_ms() >= next_check) {
            next_check = vo_now_ms() + VO_POOL_CHECK_MS;
            if (vo_storage_check_pools(d))
                vo_storage_notify_pools_changed(d);
        }
    }
    return NULL;
}

/* One kind of networked pool's checks: a Ceph whose monitors do not
 * answer holds each rbd check for up to VO_RBD_TIMEOUT_S, a target that
 * does not answer each iSCSI check for its login timeout, here only (never
 * the watch above, whose changes of other pools must show at once, nor the
 * other kind's thread). */
static void *network_thread(void *userdata)
{
    const NetworkChecks *n = userdata;
    VoDaemon *d = pw.d;
    pthread_mutex_lock(&pw.lock);
    while (!pw.stop) {
        struct timespec until = vo_deadline_ms(CLOCK_REALTIME, VO_POOL_CHECK_MS);
        while (!pw.stop && pthread_cond_timedwait(&pw.wake, &pw.lock, &until) == 0)
            ;
        if (pw.stop)
            break;
        pthread_mutex_unlock(&pw.lock);
        if (n->check(d))
            vo_storage_notify_pools_changed(d);
        if (n->retry_sweep)
            vo_sweep_kept_retry(d);
        pthread_mutex_lock(&pw.lock);
    }
    pthread_mutex_unlock(&pw.lock);
    return NULL;
}

int vo_pool_watch_start(VoDaemon *d)
{
    pw.d = d;
    pw.stop = false;
    int r = -pthread_create(&pw.thread, NULL, watch_thread, d);
    if (r < 0)
        return r;
    pw.started = true;
    for (size_t i = 0; i < ELEMENTSOF(network_checks); i++) {
        NetworkChecks *n = &network_checks[i];
        r = -pthread_create(&n->thread, NULL, network_thread, n);
        if (r < 0) {
            log_error("pool watch: cannot start the %s pools' checks: %s", n->what,
                      strerror(-r));
            vo_pool_watch_stop();
            return r;
        }
        n->started = true;
    }
    return 0;
}

void vo_pool_watch_stop(void)
{
    if (!pw.started)
        return;
    pthread_mutex_lock(&pw.lock);
    pw.stop = true;
    if (pw.watch)
        pw.d->store->ops->watch_wake(pw.watch);
    pthread_cond_broadcast(&pw.wake);
    pthread_mutex_unlock(&pw.lock);
    pthread_join(pw.thread, NULL);
    for (size_t i = 0; i < ELEMENTSOF(network_checks); i++) {
        /* waits for a check under way (VO_RBD_TIMEOUT_S, a login timeout) */
        if (network_checks[i].started)
            pthread_join(network_checks[i].thread, NULL);
        network_checks[i].started = false;
    }
    /* the iSCSI pools' checks under way (a login timeout) */
    vo_check_workers_wait(VO_CHECKS_ISCSI_REACH);
    if (pw.watch) {
        vo_cluster_follow_lost();
        pw.d->store->ops->watch_close(pw.watch);
    }
    pw.watch = NULL;
    pw.started = false;
}
