/* cluster-leave.c: a host leaves its cluster (`vireo cluster leave`) or is
 * removed by another host (`vireo host remove`: a dead or departed host's
 * member and documents). Both are refused while the host runs VMs.
 *
 * A leave, in an order where every failure leaves the host as it was:
 * refused (409) when this host is the last voting etcd member (etcd cannot
 * remove it); its documents copied into STATE/vireo.db.leaving (fsync'd);
 * its etcd member removed (the step that may fail) and stopped; the commit,
 * one rename: STATE/cluster to STATE/cluster.left-<time>; then
 * vireo.db.leaving becomes vireo.db (vo_cluster_leave_recover finishes that
 * at the next start if vireod dies between); then, best effort, its
 * documents, names and member record deleted from etcd through the other
 * members; then re-exec standalone. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/cluster.h"
#include "daemon/vms.h"
#include "util/util.h"

VoClusterEtcd *vo_cluster_runtime_etcd(VoDaemon *d);

typedef struct {
    char **names;
} Collect;

static int collect_running(const char *key, const char *value, int64_t rev, void *userdata)
{
    Collect *c = userdata;
    const char *rest = strstr(key, "/vms/");
    if (!rest || strchr(rest + 5, '/'))
        return 0;
    json_t *doc = json_loads(value, 0, NULL);
    const char *state = json_string_value(json_object_get(json_object_get(doc, "status"), "state"));
    const char *name = json_string_value(json_object_get(json_object_get(doc, "spec"), "name"));
    if (state && name && (!strcmp(state, "running") || !strcmp(state, "paused")))
        vo_strv_pushf(&c->names, "%s", name);
    json_decref(doc);
    return 0;
}

/* VMs the host's documents say run: -EBUSY naming them. */
static int refuse_running(VoDaemon *d, const char *host_id, const char *host_name,
                          char **ret_error)
{
    Collect c = { 0 };
    _cleanup_free_ char *prefix = vo_asprintf("h/%s/vms/", host_id);
    int r = vo_store_list(d->cluster_store, prefix, collect_running, &c);
    if (r < 0)
        r = vo_error_set(ret_error, r, "cannot read the VMs of %s: %s", host_name,
                         r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
    else if (c.names) {
        _cleanup_free_ char *list = vo_strv_join(c.names, ", ");
        r = vo_error_set(ret_error, -EBUSY, "%s runs VMs: %s; stop them (or move them) first",
                         host_name, list);
    }
    vo_strv_free(c.names);
    return r;
}

/* Deletes the host's namespace, the cluster records that name it (VM
 * names, group memberships, addresses, its VMs' MACs) and its member
 * document. */
static int forget_host(VoStore *raw, const char *host_id)
{
    _cleanup_free_ char *ns = vo_asprintf("h/%s/", host_id);
    int r = vo_cluster_forget_macs(raw, host_id); /* read from the namespace: first */
    if (r >= 0)
        r = vo_cluster_delete_prefix(raw, ns);
    if (r >= 0)
        r = vo_cluster_forget_records(raw, host_id);
    _cleanup_free_ char *member = vo_asprintf("cluster/members/%s", host_id);
    if (r >= 0 && (r = vo_store_delete(raw, member, VO_REV_ANY)) == -ENOENT)
        r = 0;
    _cleanup_free_ char *record = vo_asprintf("cluster/hosts/%s", host_id);
    if (r >= 0)
        (void)vo_store_delete(raw, record, VO_REV_ANY);
    return r;
}

/* Removes the etcd member named name, or at peer_url (when not NULL): a
 * learner that never started has no name yet (its join committed, its etcd
 * never ran), only the peer URL it was added with. Through an endpoint
 * other than skip_url when there is one. 0 also when there is no such
 * member; *ret_unstarted says whether the one removed had never started. */
static int remove_etcd_member(VoDaemon *d, const char *name, const char *peer_url,
                              const char *skip_url, bool *ret_unstarted, char **ret_error)
{
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    int r = -EAGAIN;
    for (size_t i = 0; d->cluster->endpoints && d->cluster->endpoints[i]; i++) {
        const char *url = d->cluster->endpoints[i];
        if (skip_url && !strcmp(url, skip_url) && d->cluster->endpoints[1])
            continue;
        VoClusterEndpoint ep;
        vo_cluster_endpoint(dir, url, &ep);
        VoEtcdMembers m = { 0 };
        free(*ret_error);
        *ret_error = NULL;
        r = vo_etcd_member_list(&ep.e, &m, ret_error);
        for (size_t k = 0; r >= 0 && k < m.n; k++) {
            bool at_peer = false;
            for (char **u = m.v[k].peer_urls; peer_url && u && *u; u++)
                at_peer |= !strcmp(*u, peer_url);
            if (strcmp(m.v[k].name, name) != 0 && !at_peer)
                continue;
            bool unstarted = !m.v[k].name[0];
            r = vo_etcd_member_remove(&ep.e, m.v[k].id, 10000, ret_error);
            if (r >= 0 && unstarted)
                log_info("cluster: etcd member %s (%" PRIx64 ", a learner that never started) "
                         "removed", name, m.v[k].id);
            else if (r >= 0)
                log_info("cluster: etcd member %s removed", name);
            if (r >= 0 && ret_unstarted)
                *ret_unstarted = unstarted;
            break;
        }
        vo_etcd_members_clear(&m);
        vo_cluster_endpoint_clear(&ep);
        if (r >= 0)
            break;
    }
    return r;
}

static int fsync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

/* STATE/vireo.db.leaving (complete and fsync'd) becomes STATE/vireo.db. */
static int leaving_into_place(const char *state_dir)
{
    _cleanup_free_ char *db = vo_asprintf("%s/vireo.db", state_dir);
    _cleanup_free_ char *fresh = vo_asprintf("%s/vireo.db.leaving", state_dir);
    /* The old store's WAL would be replayed into the fresh one. */
    _cleanup_free_ char *wal = vo_asprintf("%s-wal", db), *shm = vo_asprintf("%s-shm", db);
    (void)unlink(wal);
    (void)unlink(shm);
    if (rename(fresh, db) < 0)
        return -errno;
    (void)fsync_path(state_dir, true);
    return 0;
}

void vo_cluster_leave_recover(const char *state_dir)
{
    _cleanup_free_ char *fresh = vo_asprintf("%s/vireo.db.leaving", state_dir);
    _cleanup_free_ char *dir = vo_asprintf("%s/" VO_CLUSTER_DIR, state_dir);
    struct stat st;
    if (stat(fresh, &st) < 0)
        return;
    if (stat(dir, &st) == 0) {
        /* The leave did not reach its commit: the host is still a member. */
        log_warn("removing %s, left by a cluster leave that did not finish", fresh);
        (void)unlink(fresh);
        return;
    }
    int r = leaving_into_place(state_dir);
    if (r < 0)
        log_error("cannot finish the cluster leave: rename %s: %s", fresh, strerror(-r));
    else
        log_info("cluster leave: finished (its SQLite store moved into place)");
}

/* Reads the etcd members through this host's endpoints: -EBUSY when this
 * host's member is the last voter; *ret_urls: the client URLs of the
 * other members (to delete this host's documents through after the leave). */
static int check_members(VoDaemon *d, char ***ret_urls, char **ret_error)
{
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    int r = -EAGAIN;
    for (size_t i = 0; d->cluster->endpoints && d->cluster->endpoints[i]; i++) {
        VoClusterEndpoint ep;
        vo_cluster_endpoint(dir, d->cluster->endpoints[i], &ep);
        VoEtcdMembers m = { 0 };
        free(*ret_error);
        *ret_error = NULL;
        r = vo_etcd_member_list(&ep.e, &m, ret_error);
        vo_cluster_endpoint_clear(&ep);
        if (r < 0) {
            vo_etcd_members_clear(&m);
            continue;
        }
        size_t other_voters = 0;
        bool own_voter = false;
        for (size_t k = 0; k < m.n; k++) {
            bool own = d->cluster->etcd_member && !strcmp(m.v[k].name, d->cluster->etcd_name);
            if (own)
                own_voter = !m.v[k].learner;
            else {
                other_voters += !m.v[k].learner;
                for (char **u = m.v[k].client_urls; u && *u; u++)
                    vo_strv_pushf(ret_urls, "%s", *u);
            }
        }
        vo_etcd_members_clear(&m);
        if (own_voter && other_voters == 0)
            return vo_error_set(ret_error, -EBUSY,
                                "a one-host cluster cannot be left: this host runs the "
                                "cluster's last voting etcd member, which etcd cannot remove; "
                                "the host keeps working as a one-host cluster (join another "
                                "host first, then leave, if it must be standalone)");
        return 0;
    }
    return vo_error_set(ret_error, r, "cannot read the etcd members: %s",
                        *ret_error ? *ret_error : strerror(-r));
}

/* After the commit: this host's documents, names and member record deleted
 * from etcd through the other members (cert files now in aside). */
static void forget_self(VoDaemon *d, const char *aside, char **urls)
{
    VoStore *raw = NULL;
    int r = urls ? vo_cluster_store_open(aside, urls, NULL, &raw) : -ENOENT;
    if (r >= 0)
        r = forget_host(raw, d->host_id);
    if (raw)
        vo_store_close(raw);
    if (r < 0)
        log_warn("cluster leave: cannot delete this host's documents from etcd (%s); "
                 "'vireo host remove %s' on another host deletes them",
                 r == -EAGAIN ? "cluster has no quorum" : strerror(-r), d->host_id);
}

int vo_cluster_leave(VoDaemon *d, json_t **ret, char **ret_error)
{
    if (!d->cluster)
        return vo_error_set(ret_error, -ENOTCONN, "this host is not in a cluster");
    int r = refuse_running(d, d->host_id, d->host_name, ret_error);
    if (r < 0 || (r = vo_cluster_begin(ret_error)) < 0)
        return r;
    char **urls = NULL;
    _cleanup_free_ char *db = vo_asprintf("%s/vireo.db", d->state_dir);
    _cleanup_free_ char *fresh = vo_asprintf("%s/vireo.db.leaving", d->state_dir);
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    _cleanup_free_ char *aside = vo_asprintf("%s/cluster.left-%lld", d->state_dir,
                                             (long long)time(NULL));
    if ((r = check_members(d, &urls, ret_error)) < 0)
        goto out;
    (void)unlink(fresh);
    VoStore *sqlite = NULL;
    if ((r = vo_store_open_keeping(fresh, d->event_history, &sqlite)) < 0) {
        vo_error_set(ret_error, r, "cannot make %s: %s", fresh, strerror(-r));
        goto out;
    }
    r = vo_cluster_copy_out(d->store, sqlite, ret_error);
    vo_store_close(sqlite); /* checkpointed: one file */
    if (r >= 0 && ((r = fsync_path(fresh, false)) < 0 || (r = fsync_path(d->state_dir, true)) < 0))
        vo_error_set(ret_error, r, "cannot sync %s: %s", fresh, strerror(-r));
    if (r < 0)
        goto fail;
    bool unstarted = false;
    if (d->cluster->etcd_member) {
        _cleanup_free_ char *own = vo_cluster_url(d->cluster->address,
                                                  d->cluster->etcd_client_port);
        _cleanup_free_ char *peer = vo_cluster_url(d->cluster->address,
                                                   d->cluster->etcd_peer_port);
        if ((r = remove_etcd_member(d, d->cluster->etcd_name, peer, own, &unstarted,
                                    ret_error)) < 0) {
            log_warn("cluster leave: %s", *ret_error);
            goto fail;
        }
        vo_cluster_etcd_stop(vo_cluster_runtime_etcd(d), 10000);
    }
    /* The commit. */
    if (rename(dir, aside) < 0) {
        r = vo_error_set(ret_error, -errno, "cannot move %s aside: %s (its etcd member is "
                         "removed already: 'vireo host remove %s' on another host, then "
                         "remove %s and restart vireod)", dir, strerror(errno), d->host_name, dir);
        log_error("cluster leave: %s", *ret_error);
        goto fail;
    }
    (void)fsync_path(d->state_dir, true);
    vo_cluster_committed();
    if ((r = leaving_into_place(d->state_dir)) < 0)
        log_error("cluster leave: cannot rename %s: %s; the next start finishes it", fresh,
                  strerror(-r));
    r = 0;
    forget_self(d, aside, urls);
    log_info("cluster leave: done; %s kept as %s", dir, aside);
    *ret = json_pack("{s:b}", "left", 1);
    if (unstarted)
        json_object_set_new(*ret, "note", json_string("this host's etcd member had never "
                                                      "started (a learner since the join): "
                                                      "removed from the cluster"));
    goto out;
fail:
    (void)unlink(fresh);
out:
    vo_strv_free(urls);
    vo_cluster_end();
    return r;
}

static int find_member(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t *want = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *host = json_string_value(json_object_get(want, "want"));
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (id && name && (!strcmp(id, host) || !strcmp(name, host))) {
        json_object_set_new(want, "id", json_string(id));
        json_object_set_new(want, "name", json_string(name));
        json_object_set(want, "address", json_object_get(doc, "address"));
    }
    json_decref(doc);
    return 0;
}

int vo_cluster_host_remove(VoDaemon *d, const char *host, char **ret_error)
{
    if (!d->cluster)
        return vo_error_set(ret_error, -ENOTCONN, "this host is not in a cluster");
    json_t *found = json_pack("{s:s}", "want", host);
    int r = vo_store_list(d->cluster_store, "cluster/members/", find_member, found);
    const char *id = json_string_value(json_object_get(found, "id"));
    const char *name = json_string_value(json_object_get(found, "name"));
    if (r < 0)
        vo_error_set(ret_error, r, "cannot read the hosts: %s",
                     r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
    else if (!id)
        r = vo_error_set(ret_error, -ENOENT, "host '%s' does not exist", host);
    else if (!strcmp(id, d->host_id))
        r = vo_error_set(ret_error, -EINVAL, "%s is this host: use 'vireo cluster leave'", name);
    if (r >= 0) {
        _cleanup_free_ char *record_key = vo_asprintf("cluster/hosts/%s", id);
        _cleanup_free_ char *record = NULL;
        if (vo_store_get(d->cluster_store, record_key, &record, NULL) == 0)
            r = vo_error_set(ret_error, -EBUSY, "%s is online: run 'vireo cluster leave' on it, "
                             "or stop its vireod first", name);
    }
    if (r >= 0)
        r = refuse_running(d, id, name, ret_error);
    if (r >= 0 && (r = vo_cluster_begin(ret_error)) >= 0) {
        /* Documents first, while the member still counts for the quorum. */
        if ((r = forget_host(d->cluster_store, id)) < 0) {
            vo_error_set(ret_error, r, "cannot delete the documents of %s: %s", name,
                         r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
        } else {
            /* Its peer URL too: a learner that never started has no name. */
            const char *address = json_string_value(json_object_get(found, "address"));
            _cleanup_free_ char *peer = address ? vo_cluster_url(address, VO_ETCD_PEER_PORT)
                                                : NULL;
            r = remove_etcd_member(d, name, peer, NULL, NULL, ret_error);
        }
        vo_cluster_end();
        if (r >= 0)
            log_info("cluster: host %s (%s) removed", name, id);
    }
    json_decref(found);
    return r;
}
