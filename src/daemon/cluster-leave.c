/* cluster-leave.c: a host leaves its cluster (`vireo cluster leave`: its
 * documents copied back into a fresh SQLite store, its namespace, names and
 * member document deleted, its etcd member removed and stopped, STATE/cluster
 * moved aside, then re-exec standalone) or is removed by another host
 * (`vireo host remove`: a dead or departed host's member and documents).
 * Both are refused while the host runs VMs. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/cluster.h"
#include "daemon/vms.h"
#include "util/util.h"

VoClusterEtcd *vo_cluster_runtime_etcd(VoDaemon *d);

typedef struct {
    char **names;
    const char *host; /* for name records: only this host's */
    char **keys;
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

static int collect_names(const char *key, const char *value, int64_t rev, void *userdata)
{
    Collect *c = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *host = json_string_value(json_object_get(doc, "host"));
    if (host && !strcmp(host, c->host))
        vo_strv_pushf(&c->keys, "%s", key);
    json_decref(doc);
    return 0;
}

static char *joined(char **v)
{
    char *s = vo_strdup("");
    for (size_t i = 0; v && v[i]; i++) {
        char *more = vo_asprintf("%s%s%s", s, i ? ", " : "", v[i]);
        free(s);
        s = more;
    }
    return s;
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
        _cleanup_free_ char *list = joined(c.names);
        r = vo_error_set(ret_error, -EBUSY, "%s runs VMs: %s; stop them (or move them) first",
                         host_name, list);
    }
    vo_strv_free(c.names);
    return r;
}

/* Deletes the host's namespace, its VM name records and member document. */
static int forget_host(VoDaemon *d, const char *host_id)
{
    _cleanup_free_ char *ns = vo_asprintf("h/%s/", host_id);
    int r = vo_cluster_delete_prefix(d->cluster_store, ns);
    Collect c = { .host = host_id };
    if (r >= 0)
        r = vo_store_list(d->cluster_store, "cluster/names/vms/", collect_names, &c);
    for (size_t i = 0; r >= 0 && c.keys && c.keys[i]; i++) {
        r = vo_store_delete(d->cluster_store, c.keys[i], VO_REV_ANY);
        if (r == -ENOENT)
            r = 0;
    }
    vo_strv_free(c.keys);
    _cleanup_free_ char *member = vo_asprintf("cluster/members/%s", host_id);
    if (r >= 0 && (r = vo_store_delete(d->cluster_store, member, VO_REV_ANY)) == -ENOENT)
        r = 0;
    _cleanup_free_ char *record = vo_asprintf("cluster/hosts/%s", host_id);
    if (r >= 0)
        (void)vo_store_delete(d->cluster_store, record, VO_REV_ANY);
    return r;
}

/* Removes the etcd member named name, through an endpoint other than
 * skip_url when there is one. 0 also when there is no such member. */
static int remove_etcd_member(VoDaemon *d, const char *name, const char *skip_url,
                              char **ret_error)
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
        for (size_t k = 0; r >= 0 && k < m.n; k++)
            if (!strcmp(m.v[k].name, name)) {
                r = vo_etcd_member_remove(&ep.e, m.v[k].id, 10000, ret_error);
                if (r >= 0)
                    log_info("cluster: etcd member %s removed", name);
                break;
            }
        vo_etcd_members_clear(&m);
        vo_cluster_endpoint_clear(&ep);
        if (r >= 0)
            break;
    }
    return r;
}

/* The fresh SQLite store in place of the old one, STATE/cluster aside. */
static int leave_commit(VoDaemon *d, const char *fresh, const char *db, char **ret_error)
{
    /* The fresh store was closed cleanly: it is one file. */
    _cleanup_free_ char *wal = vo_asprintf("%s-wal", db), *shm = vo_asprintf("%s-shm", db);
    (void)unlink(wal);
    (void)unlink(shm);
    if (rename(fresh, db) < 0)
        return vo_error_set(ret_error, -errno, "cannot rename %s: %s", fresh, strerror(errno));
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    _cleanup_free_ char *aside = vo_asprintf("%s/cluster.left-%lld", d->state_dir,
                                             (long long)time(NULL));
    if (rename(dir, aside) < 0)
        return vo_error_set(ret_error, -errno, "cannot move %s aside: %s", dir, strerror(errno));
    log_info("cluster leave: done; %s kept as %s", dir, aside);
    return 0;
}

int vo_cluster_leave(VoDaemon *d, char **ret_error)
{
    if (!d->cluster)
        return vo_error_set(ret_error, -ENOTCONN, "this host is not in a cluster");
    int r = refuse_running(d, d->host_id, d->host_name, ret_error);
    if (r < 0 || (r = vo_cluster_begin(ret_error)) < 0)
        return r;
    _cleanup_free_ char *db = vo_asprintf("%s/vireo.db", d->state_dir);
    _cleanup_free_ char *fresh = vo_asprintf("%s/vireo.db.leaving", d->state_dir);
    (void)unlink(fresh);
    VoStore *sqlite = NULL;
    if ((r = vo_store_open(fresh, &sqlite)) < 0) {
        vo_error_set(ret_error, r, "cannot make %s: %s", fresh, strerror(-r));
        goto out;
    }
    r = vo_cluster_copy_out(d->store, sqlite, ret_error);
    vo_store_close(sqlite);
    if (r < 0)
        goto fail;
    if ((r = forget_host(d, d->host_id)) < 0) {
        vo_error_set(ret_error, r, "cannot delete this host's documents from etcd: %s",
                     r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
        goto fail;
    }
    if (d->cluster->etcd_member) {
        _cleanup_free_ char *own = vo_cluster_url(d->cluster->address,
                                                  d->cluster->etcd_client_port);
        if ((r = remove_etcd_member(d, d->cluster->etcd_name, own, ret_error)) < 0) {
            log_warn("cluster leave: %s", *ret_error);
            goto fail;
        }
        vo_cluster_etcd_stop(vo_cluster_runtime_etcd(d), 10000);
    }
    /* The commit: a fresh SQLite store, and STATE/cluster aside. */
    r = leave_commit(d, fresh, db, ret_error);
    goto out;
fail:
    (void)unlink(fresh);
out:
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
        if ((r = forget_host(d, id)) < 0)
            vo_error_set(ret_error, r, "cannot delete the documents of %s: %s", name,
                         r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
        else
            r = remove_etcd_member(d, name, NULL, ret_error);
        vo_cluster_end();
        if (r >= 0)
            log_info("cluster: host %s (%s) removed", name, id);
    }
    json_decref(found);
    return r;
}
