/* cluster-follow.c: tells the followers of the host's one cluster/ watch
 * what changed (see cluster-follow.h). */
#include "daemon/cluster-follow.h"

#include <pthread.h>

#include "util/util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* the list */
static VoClusterFollower *followers;
static atomic_bool live; /* a watch is open and was opened after every follower's mark */

void vo_cluster_follow_add(VoClusterFollower *f)
{
    pthread_mutex_lock(&lock);
    if (!f->added) {
        f->next = followers;
        followers = f;
        f->added = true;
    }
    pthread_mutex_unlock(&lock);
}

uint64_t vo_cluster_follow_mark(VoClusterFollower *f)
{
    return atomic_load(&f->changes);
}

bool vo_cluster_follow_unchanged(VoClusterFollower *f, uint64_t mark)
{
    /* live first: an opening bumps the counters before it sets live, so a
     * mark taken before the opening never passes. */
    return atomic_load(&live) && atomic_load(&f->changes) == mark;
}

bool vo_cluster_follow_keep(VoClusterFollower *f, uint64_t mark, int64_t at_ms)
{
    return at_ms && vo_cluster_follow_unchanged(f, mark) &&
           vo_now_ms() - at_ms < VO_CLUSTER_FOLLOW_RECHECK_MS;
}

static void bump(VoClusterFollower *f)
{
    atomic_fetch_add(&f->changes, 1);
    if (f->wake)
        f->wake();
}

static void bump_all(void)
{
    pthread_mutex_lock(&lock);
    for (VoClusterFollower *f = followers; f; f = f->next)
        bump(f);
    pthread_mutex_unlock(&lock);
}

void vo_cluster_follow_opened(void)
{
    bump_all(); /* what was read before may have missed changes */
    atomic_store(&live, true);
}

void vo_cluster_follow_lost(void)
{
    atomic_store(&live, false);
    bump_all();
}

void vo_cluster_follow_changed(const char *key)
{
    pthread_mutex_lock(&lock);
    for (VoClusterFollower *f = followers; f; f = f->next)
        if (f->wants(key))
            bump(f);
    pthread_mutex_unlock(&lock);
}
