/* cluster-promote.c: a joiner's etcd member is promoted from learner to
 * voter only once it runs from STATE/cluster, by the vireod that follows
 * the join's commit: the join marks it (STATE/cluster/etcd-promote: the
 * member id) and that vireod's start promotes it through the other
 * members, then removes the mark. Started during the join and again after
 * the commit as a voter, the member's stop would leave a two-host cluster
 * without a quorum for seconds (the first host's fence then cannot renew
 * its lease); as a learner it counts for no quorum. */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/cluster.h"
#include "util/util.h"

#define PROMOTE_MARK "etcd-promote"
#define RETRY_S 5

int vo_cluster_promote_mark(const char *cluster_dir, uint64_t member_id, char **ret_error)
{
    if (!member_id)
        return vo_error_set(ret_error, -EPROTO, "the member admitted this host without "
                            "naming its etcd member");
    _cleanup_free_ char *path = vo_asprintf("%s/" PROMOTE_MARK, cluster_dir);
    _cleanup_free_ char *text = vo_asprintf("%" PRIx64 "\n", member_id);
    int r = vo_write_file_atomic(path, text, strlen(text));
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot write %s: %s", path, strerror(-r));
    return 0;
}

/* What a promotion needs, owned (the retry thread outlives the caller's). */
typedef struct {
    char *dir, *path;
    char **endpoints; /* the other members' */
    uint64_t id;
} Promotion;

static void promotion_free(Promotion *p)
{
    free(p->dir);
    free(p->path);
    vo_strv_free(p->endpoints);
    free(p);
}

/* One try through each other member: 0 once a voter (mark removed),
 * -ENOENT when the member is not in the cluster any more (removed: a
 * `host remove`, or a stale learner's removal by a later join). */
static int promote(Promotion *p, bool quiet)
{
    _cleanup_free_ char *error = NULL;
    int r = -ENOTCONN; /* no other member to ask */
    for (size_t i = 0; p->endpoints && p->endpoints[i] && r < 0; i++) {
        VoClusterEndpoint ep;
        vo_cluster_endpoint(p->dir, p->endpoints[i], &ep);
        free(error);
        error = NULL;
        r = vo_etcd_member_promote(&ep.e, p->id, VO_CLUSTER_PROMOTE_MS, &error);
        vo_cluster_endpoint_clear(&ep);
        if (r == -EINVAL) /* a voter already: promoted before a restart */
            r = 0;
    }
    if (r == -ENOENT) {
        log_error("this host's etcd member %" PRIx64 " is not in the cluster any more: it "
                  "cannot vote (leave the cluster, then join again)", p->id);
        return r;
    }
    if (r < 0) {
        if (!quiet)
            log_warn("cannot promote this host's etcd member %" PRIx64 " to a voting member: "
                     "%s; trying again every %d s", p->id, error ? error : strerror(-r),
                     RETRY_S);
        return r;
    }
    log_info("etcd member %" PRIx64 " promoted to a voting member", p->id);
    if (unlink(p->path) < 0)
        log_warn("cannot remove %s: %s", p->path, strerror(errno));
    return 0;
}

static void *retry_thread(void *userdata)
{
    Promotion *p = userdata;
    int r;
    while ((r = promote(p, true)) < 0 && r != -ENOENT)
        sleep(RETRY_S);
    promotion_free(p);
    return NULL;
}

char **vo_cluster_other_endpoints(const VoClusterConfig *c)
{
    _cleanup_free_ char *own = vo_cluster_url(c->address, c->etcd_client_port);
    char **v = NULL;
    for (size_t i = 0; c->endpoints && c->endpoints[i]; i++)
        if (strcmp(c->endpoints[i], own) != 0)
            vo_strv_pushf(&v, "%s", c->endpoints[i]);
    return v;
}

bool vo_cluster_promote_pending(const char *cluster_dir, const VoClusterConfig *c)
{
    Promotion *p = vo_malloc0(sizeof(*p));
    p->path = vo_asprintf("%s/" PROMOTE_MARK, cluster_dir);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(p->path, 64, &text, NULL) < 0) {
        promotion_free(p);
        return false;
    }
    p->id = strtoull(text, NULL, 16);
    p->dir = vo_strdup(cluster_dir);
    /* Through another member: the learner itself does not serve the call. */
    p->endpoints = vo_cluster_other_endpoints(c);
    int r = promote(p, false);
    if (r == 0 || r == -ENOENT) { /* a voter, or no member to promote (the mark stays) */
        promotion_free(p);
        return r == -ENOENT;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, retry_thread, p) != 0) {
        log_error("cannot start the thread promoting the etcd member: restart vireod");
        promotion_free(p);
    } else
        pthread_detach(t);
    return true;
}
