/* cluster-start.c: vireod's start in cluster mode or standalone (the store
 * it opens, its etcd member, the fields of VoDaemon), its stop, and the
 * re-exec that follows a committed cluster change. */
#include <linux/close_range.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon/cluster.h"
#include "util/util.h"

struct VoClusterRuntime {
    VoClusterEtcd *etcd;
    atomic_bool reexec;
};

char *vo_cluster_path(const VoDaemon *d, const char *name)
{
    return name ? vo_asprintf("%s/" VO_CLUSTER_DIR "/%s", d->state_dir, name)
                : vo_asprintf("%s/" VO_CLUSTER_DIR, d->state_dir);
}

void vo_cluster_endpoint(const char *cluster_dir, const char *endpoint, VoClusterEndpoint *ret)
{
    *ret = (VoClusterEndpoint){ 0 };
    ret->endpoint = vo_strdup(endpoint);
    ret->ca = vo_asprintf("%s/ca.crt", cluster_dir);
    ret->cert = vo_asprintf("%s/host.crt", cluster_dir);
    ret->key = vo_asprintf("%s/host.key", cluster_dir);
    ret->e = (VoEtcdEndpoint){ .endpoint = ret->endpoint, .ca_file = ret->ca,
                               .cert_file = ret->cert, .key_file = ret->key };
}

void vo_cluster_endpoint_clear(VoClusterEndpoint *e)
{
    free(e->endpoint);
    free(e->ca);
    free(e->cert);
    free(e->key);
    *e = (VoClusterEndpoint){ 0 };
}

int vo_cluster_store_open(const char *cluster_dir, char *const *endpoints, const char *host_id,
                          VoStore **ret)
{
    _cleanup_free_ char *list = vo_strdup("");
    for (size_t i = 0; endpoints && endpoints[i]; i++) {
        char *more = vo_asprintf("%s%s%s", list, i ? "," : "", endpoints[i]);
        free(list);
        list = more;
    }
    _cleanup_free_ char *ca = vo_asprintf("%s/ca.crt", cluster_dir);
    _cleanup_free_ char *cert = vo_asprintf("%s/host.crt", cluster_dir);
    _cleanup_free_ char *key = vo_asprintf("%s/host.key", cluster_dir);
    VoEtcdOptions o = { .endpoints = list, .host_id = host_id, .ca_file = ca, .cert_file = cert,
                        .key_file = key };
    return vo_store_open_etcd(&o, ret);
}

/* What an init or join that did not reach its commit left: its etcd member
 * and its directory. */
static void remove_staging(VoDaemon *d)
{
    _cleanup_free_ char *staging = vo_asprintf("%s/" VO_CLUSTER_STAGING, d->state_dir);
    struct stat st;
    if (stat(staging, &st) < 0)
        return;
    log_warn("removing %s, left by a cluster init or join that did not finish", staging);
    vo_cluster_etcd_kill_stale(d->run_dir, staging);
    (void)vo_rm_rf(staging);
}

static int open_sqlite(VoDaemon *d, char **ret_error)
{
    _cleanup_free_ char *db = vo_asprintf("%s/vireo.db", d->state_dir);
    int r = vo_store_open_keeping(db, d->event_history, &d->store);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot open the store %s: %s", db, strerror(-r));
    return 0;
}

int vo_cluster_open(VoDaemon *d, char **ret_error)
{
    d->cluster_rt = vo_malloc0(sizeof(*d->cluster_rt));
    remove_staging(d);
    vo_cluster_init_recover(d);
    vo_cluster_leave_recover(d->state_dir);
    VoClusterConfig *c = vo_malloc0(sizeof(*c));
    _cleanup_free_ char *error = NULL;
    int r = vo_cluster_config_load(d->state_dir, c, &error);
    if (r == -ENOENT) {
        free(c);
        return open_sqlite(d, ret_error);
    }
    if (r < 0) {
        free(c);
        return vo_error_set(ret_error, r, "%s (remove %s/" VO_CLUSTER_DIR
                                          " to start standalone)", error, d->state_dir);
    }
    d->cluster = c;
    d->host_address = vo_strdup(c->address);
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    d->peer_tls = (VoPeerTls){ .cert_file = vo_asprintf("%s/host.crt", dir),
                               .key_file = vo_asprintf("%s/host.key", dir),
                               .ca_file = vo_asprintf("%s/ca.crt", dir) };
    log_info("cluster mode: cluster %s, address %s%s", c->cluster_id, c->address,
             c->etcd_member ? ", with an etcd member" : "");
    bool learner = false;
    if (c->etcd_member) {
        r = vo_cluster_etcd_start(d, d->state_dir, c, &d->cluster_rt->etcd, &error);
        if (r < 0)
            log_error("%s; the store answers 503 until it runs", error);
        else {
            learner = vo_cluster_promote_pending(dir, c);
            free(error);
            error = NULL;
            if (vo_cluster_etcd_wait_healthy(dir, c, VO_CLUSTER_HEALTH_WAIT_MS, &error) < 0)
                log_warn("%s; starting anyway (the store answers 503 \"cluster has no quorum\" "
                         "until it is)", error);
        }
    }
    /* A learner refuses the store's calls: the other members take them. */
    _cleanup_strv_ char **others = learner ? vo_cluster_other_endpoints(c) : NULL;
    char *const *endpoints = learner ? others : c->endpoints;
    if ((r = vo_cluster_store_open(dir, endpoints, d->host_id, &d->store)) < 0 ||
        (r = vo_cluster_store_open(dir, endpoints, NULL, &d->cluster_store)) < 0)
        return vo_error_set(ret_error, r, "cannot open the etcd store: %s", strerror(-r));
    return 0;
}

void vo_cluster_watch(VoDaemon *d)
{
    if (d->cluster_rt && d->cluster_rt->etcd)
        vo_cluster_etcd_supervise(d->cluster_rt->etcd, d);
}

bool vo_cluster_listen(VoDaemon *d, char **ret_listen)
{
    if (!d->cluster)
        return false;
    *ret_listen = strchr(d->cluster->address, ':')
                      ? vo_asprintf("[%s]:%d", d->cluster->address, d->cluster->api_port)
                      : vo_asprintf("%s:%d", d->cluster->address, d->cluster->api_port);
    return true;
}

void vo_cluster_close(VoDaemon *d)
{
    if (d->cluster_rt) {
        vo_cluster_etcd_release(d->cluster_rt->etcd); /* it keeps running */
        d->cluster_rt->etcd = NULL;
    }
    vo_store_close(d->store);
    d->store = NULL;
    if (d->cluster_store)
        vo_store_close(d->cluster_store);
    d->cluster_store = NULL;
    if (d->cluster) {
        vo_cluster_config_clear(d->cluster);
        free(d->cluster);
        d->cluster = NULL;
    }
    free((char *)d->peer_tls.cert_file);
    free((char *)d->peer_tls.key_file);
    free((char *)d->peer_tls.ca_file);
    d->peer_tls = (VoPeerTls){ 0 };
    free(d->cluster_rt);
    d->cluster_rt = NULL;
}

/* The etcd member of this runtime, for a leave (stopped, not restarted). */
VoClusterEtcd *vo_cluster_runtime_etcd(VoDaemon *d);
VoClusterEtcd *vo_cluster_runtime_etcd(VoDaemon *d)
{
    return d->cluster_rt ? d->cluster_rt->etcd : NULL;
}

void vo_cluster_reexec_after_reply(VoDaemon *d)
{
    if (d->cluster_rt)
        atomic_store(&d->cluster_rt->reexec, true);
}

bool vo_cluster_reexec_wanted(VoDaemon *d)
{
    return d->cluster_rt && atomic_load(&d->cluster_rt->reexec);
}

void vo_cluster_reexec(char **argv)
{
    log_info("re-executing vireod for the cluster change (VMs keep running)");
    /* Nothing of this process's but what exec keeps by design. */
    (void)syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
    execv("/proc/self/exe", argv);
    log_error("cannot re-execute vireod: %s; start it again by hand", strerror(errno));
}
