/* cluster-init.c: `vireo cluster init`: a standalone host becomes a
 * one-host cluster (CA, host certificate, etcd member, its documents copied
 * from SQLite into etcd, all in STATE/cluster; the commit is cluster.json,
 * and the member runs on into the re-exec'd vireod), join tokens, and the
 * steps join and leave share (staging directory, commit by rename). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster/join-token.h"
#include "cluster/pki.h"
#include "daemon/cluster.h"
#include "util/util.h"

/* In STATE/cluster while an init builds it (vo_cluster_init_recover). */
#define INIT_MARK "init-unfinished"

static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;
/* A change committed; this process only waits for its re-exec (guarded by
 * busy). */
static bool committed;

int vo_cluster_begin(char **ret_error)
{
    if (pthread_mutex_trylock(&busy) != 0)
        return vo_error_set(ret_error, -EBUSY,
                            "another cluster change (init, join or leave) is under way");
    if (committed) {
        pthread_mutex_unlock(&busy);
        return vo_error_set(ret_error, -EBUSY, "a cluster change (init, join or leave) was "
                            "committed and vireod restarts now: try again once it is back");
    }
    return 0;
}

void vo_cluster_committed(void)
{
    committed = true;
}

void vo_cluster_end(void)
{
    pthread_mutex_unlock(&busy);
}

char *vo_cluster_random_id(void)
{
    unsigned char b[8];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return NULL;
    return vo_asprintf("%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
                       b[6], b[7]);
}

char *vo_cluster_host_port(const char *address, int port)
{
    return strchr(address, ':') ? vo_asprintf("[%s]:%d", address, port)
                                : vo_asprintf("%s:%d", address, port);
}

void vo_cluster_staging_remove(VoDaemon *d)
{
    _cleanup_free_ char *staging = vo_asprintf("%s/" VO_CLUSTER_STAGING, d->state_dir);
    vo_cluster_etcd_kill_stale(d->run_dir, staging);
    (void)vo_rm_rf(staging);
}

char *vo_cluster_staging_make(VoDaemon *d)
{
    vo_cluster_staging_remove(d);
    char *staging = vo_asprintf("%s/" VO_CLUSTER_STAGING, d->state_dir);
    _cleanup_free_ char *dir = vo_asprintf("%s/" VO_CLUSTER_DIR, staging);
    if (vo_mkdir_p(dir, 0700) < 0) {
        free(staging);
        return NULL;
    }
    return staging;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

int vo_cluster_commit(VoDaemon *d, char **ret_error)
{
    _cleanup_free_ char *from = vo_asprintf("%s/" VO_CLUSTER_STAGING "/" VO_CLUSTER_DIR,
                                            d->state_dir);
    _cleanup_free_ char *to = vo_cluster_path(d, NULL);
    _cleanup_free_ char *staging = vo_asprintf("%s/" VO_CLUSTER_STAGING, d->state_dir);
    (void)fsync_dir(from);
    if (rename(from, to) < 0)
        return vo_error_set(ret_error, -errno, "cannot rename %s to %s: %s", from, to,
                            strerror(errno));
    (void)fsync_dir(d->state_dir);
    vo_cluster_committed();
    (void)vo_rm_rf(staging);
    return 0;
}

int vo_cluster_token(VoDaemon *d, VoStore *raw, const char *cluster_id, const char *ca_dir,
                     const char *address, int api_port, int64_t ttl_s, json_t **ret,
                     char **ret_error)
{
    (void)d;
    VoPkiPair ca = { 0 };
    char fp[VO_SHA256_HEX_LEN + 1];
    int r = vo_pki_pair_load(ca_dir, "ca", false, &ca);
    if (r < 0 || (r = vo_pki_fingerprint(ca.cert_pem, fp)) < 0) {
        vo_pki_pair_clear(&ca);
        return vo_error_set(ret_error, r, "cannot read the cluster CA in %s: %s", ca_dir,
                            strerror(-r));
    }
    vo_pki_pair_clear(&ca);
    _cleanup_free_ char *target = vo_cluster_host_port(address, api_port);
    VoJoinToken t = { 0 };
    r = vo_join_token_make(cluster_id, fp, target, ttl_s, (int64_t)time(NULL), &t, ret_error);
    if (r < 0)
        return r;
    json_t *record = vo_join_token_record(&t);
    _cleanup_free_ char *text = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(record);
    _cleanup_free_ char *key = vo_asprintf("cluster/join-tokens/%s", t.id);
    int64_t lease = 0;
    r = raw->ops->lease_grant(raw, (int)(ttl_s * 1000 > 0x7fffffff ? 0x7fffffff : ttl_s * 1000),
                              &lease);
    if (r >= 0)
        r = vo_store_put_lease(raw, key, text, VO_REV_NEW, lease, NULL);
    if (r < 0) {
        vo_join_token_clear(&t);
        /* A token stored or not is harmless either way: an unknown outcome
         * (VO_STORE_EUNKNOWN) is the store not answering, like -EAGAIN. */
        if (r == VO_STORE_EUNKNOWN)
            r = -EAGAIN;
        return vo_error_set(ret_error, r, "cannot store the join token: %s",
                            r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
    }
    _cleanup_free_ char *encoded = vo_join_token_encode(&t);
    _cleanup_free_ char *command = vo_asprintf("vireo cluster join %s --token %s", target, encoded);
    *ret = json_pack("{s:s, s:s, s:I, s:s}", "token", encoded, "join_command", command, "expires",
                     (json_int_t)t.expires, "cluster", cluster_id);
    vo_join_token_clear(&t);
    return 0;
}

/* Checks (or picks) the cluster address. */
static int cluster_address(const char *address, char **ret, char **ret_error)
{
    if (!address)
        return vo_cluster_default_address(ret, ret_error);
    unsigned char buf[16];
    if (inet_pton(AF_INET, address, buf) != 1 && inet_pton(AF_INET6, address, buf) != 1)
        return vo_error_set(ret_error, -EINVAL, "address '%s' is not an IP address", address);
    if (!strncmp(address, "127.", 4) || !strcmp(address, "::1"))
        return vo_error_set(ret_error, -EINVAL,
                            "address %s is a loopback address: other hosts cannot reach it",
                            address);
    if (!vo_cluster_address_is_local(address))
        return vo_error_set(ret_error, -EINVAL, "address %s is not an address of this host",
                            address);
    *ret = vo_strdup(address);
    return 0;
}

int vo_cluster_address_check(const char *address, char **ret, char **ret_error)
{
    return cluster_address(address, ret, ret_error);
}

/* The steps after STATE/cluster exists (with its mark); the last one,
 * cluster.json written, is the commit. On failure the caller stops etcd
 * (*etcd) and removes the directory. */
static int init_steps(VoDaemon *d, VoClusterConfig *c, VoClusterEtcd **etcd, json_t **ret,
                      char **ret_error)
{
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    VoPkiPair ca = { 0 }, host = { 0 };
    int r = vo_pki_ca_make(c->cluster_id, &ca);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot make the cluster CA: %s", strerror(-r));
    r = vo_pki_host_issue(&ca, c->address, d->host_name, &host, ret_error);
    if (r >= 0 && ((r = vo_pki_pair_write(dir, "ca", &ca)) < 0 ||
                   (r = vo_pki_pair_write(dir, "host", &host)) < 0))
        vo_error_set(ret_error, r, "cannot write the certificates in %s: %s", dir, strerror(-r));
    vo_pki_pair_clear(&ca);
    vo_pki_pair_clear(&host);
    if (r < 0)
        return r;
    if ((r = vo_cluster_etcd_start(d, d->state_dir, c, etcd, ret_error)) < 0 ||
        (r = vo_cluster_etcd_wait_healthy(dir, c, VO_CLUSTER_HEALTH_WAIT_MS, ret_error)) < 0)
        return r;
    VoStore *hs = NULL, *raw = NULL;
    if ((r = vo_cluster_store_open(dir, c->endpoints, d->host_id, &hs)) < 0 ||
        (r = vo_cluster_store_open(dir, c->endpoints, NULL, &raw)) < 0)
        vo_error_set(ret_error, r, "cannot open the etcd store: %s", strerror(-r));
    else if ((r = vo_cluster_copy_in(d->store, hs, d->host_id, true, ret_error)) >= 0)
        r = vo_cluster_token(d, raw, c->cluster_id, dir, c->address, c->api_port,
                             VO_JOIN_TOKEN_DEFAULT_TTL_S, ret, ret_error);
    if (hs)
        vo_store_close(hs);
    if (raw)
        vo_store_close(raw);
    if (r < 0)
        return r;
    if ((r = vo_cluster_config_save(dir, c)) < 0)
        return vo_error_set(ret_error, r, "cannot write %s/" VO_CLUSTER_CONFIG ": %s", dir,
                            strerror(-r));
    return 0;
}

/* STATE/cluster made for an init, with its mark: a directory there without
 * cluster.json is an init that did not finish (vo_cluster_init_recover).
 * The mark is made in place (no temporary name), so the folder is empty
 * or marked: an empty one, an init cut short before its mark, goes too. */
static int init_dir_make(const char *dir, char **ret_error)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return vo_error_set(ret_error, -EEXIST, "%s exists, though this host is in no "
                            "cluster: move it away first", dir);
    _cleanup_free_ char *mark = vo_asprintf("%s/" INIT_MARK, dir);
    int r = vo_mkdir_p(dir, 0700);
    if (r >= 0) {
        int fd = open(mark, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        r = fd < 0 || fsync(fd) < 0 ? -errno : fsync_dir(dir);
        if (fd >= 0)
            close(fd);
        if (r < 0)
            (void)vo_rm_rf(dir);
    }
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot make %s: %s", mark, strerror(-r));
    return 0;
}

/* Stops what an init that did not finish left (its etcd member, by the
 * data dir on its command line) and removes its directory. */
static void init_dir_remove(const char *run_dir, const char *dir)
{
    _cleanup_free_ char *prefix = vo_asprintf("%s/", dir);
    vo_cluster_etcd_kill_stale(run_dir, prefix);
    (void)vo_rm_rf(dir);
}

void vo_cluster_init_recover(VoDaemon *d)
{
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    _cleanup_free_ char *mark = vo_cluster_path(d, INIT_MARK);
    _cleanup_free_ char *config = vo_cluster_path(d, VO_CLUSTER_CONFIG);
    struct stat st;
    if (stat(mark, &st) < 0) {
        (void)rmdir(dir); /* empty: an init cut short before its mark */
        return;
    }
    if (stat(config, &st) == 0) { /* committed: only the mark was left */
        (void)unlink(mark);
        return;
    }
    log_warn("removing %s, left by a cluster init that did not finish", dir);
    init_dir_remove(d->run_dir, dir);
}

int vo_cluster_init(VoDaemon *d, const char *address, json_t **ret, char **ret_error)
{
    if (d->cluster)
        return vo_error_set(ret_error, -EEXIST, "this host is in cluster %s already",
                            d->cluster->cluster_id);
    int r = vo_cluster_begin(ret_error);
    if (r < 0)
        return r;
    VoClusterConfig c = { .api_port = VO_CLUSTER_API_PORT,
                          .etcd_client_port = VO_ETCD_CLIENT_PORT,
                          .etcd_peer_port = VO_ETCD_PEER_PORT, .etcd_member = true };
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL), *peer = NULL;
    _cleanup_free_ char *mark = vo_cluster_path(d, INIT_MARK);
    VoClusterEtcd *etcd = NULL;
    json_t *answer = NULL;
    if ((r = cluster_address(address, &c.address, ret_error)) < 0)
        goto out;
    c.cluster_id = vo_cluster_random_id();
    c.etcd_name = vo_strdup(d->host_name);
    peer = vo_cluster_url(c.address, c.etcd_peer_port);
    c.etcd_initial_cluster = vo_asprintf("%s=%s", c.etcd_name, peer);
    vo_strv_push(&c.endpoints, vo_cluster_url(c.address, c.etcd_client_port));
    if (!c.cluster_id) {
        r = vo_error_set(ret_error, -EIO, "cannot make a cluster id");
        goto out;
    }
    if ((r = init_dir_make(dir, ret_error)) < 0)
        goto out;
    log_info("cluster init: cluster %s on %s", c.cluster_id, c.address);
    /* Built in STATE/cluster itself, where the member runs on: its data
     * dir, WAL and certificates are opened again by path (new WAL
     * segments, snapshots, each TLS handshake), so it could not outlive a
     * rename of its folder. The re-exec'd vireod adopts it (RUN/etcd.pid,
     * its data dir): it starts once. The commit is cluster.json (written
     * last); a folder with the mark and without it is removed, its member
     * stopped: here on failure, at the next start after a crash. */
    r = init_steps(d, &c, &etcd, &answer, ret_error);
    if (r < 0) {
        vo_cluster_etcd_stop(etcd, 10000);
        vo_cluster_etcd_release(etcd);
        log_warn("cluster init failed: %s; this host stays standalone", *ret_error);
        init_dir_remove(d->run_dir, dir);
        json_decref(answer);
        goto out;
    }
    vo_cluster_etcd_release(etcd); /* it keeps running */
    (void)unlink(mark);
    (void)fsync_dir(dir);
    vo_cluster_committed();
    log_info("cluster init: committed; cluster %s", c.cluster_id);
    *ret = answer;
out:
    vo_cluster_config_clear(&c);
    vo_cluster_end();
    return r;
}
