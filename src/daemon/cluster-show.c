/* cluster-show.c: GET /v1/cluster: the cluster as this host sees it: its
 * id, the etcd members (voting or learner, healthy or not), whether the
 * store has a quorum, the manager, the hosts with their state and versions,
 * etcd's version. Standalone: {"cluster": null}.
 * etcd's member list is asked at each read; the members' health and the
 * version (an HTTPS request each, seconds for a member that does not
 * answer) at most every ETCD_HEALTH_MS while the list stays the same, by
 * one reader at a time; readers meanwhile get that answer, with its age
 * (the web UI's cluster page reads it while shown, and any number of them
 * may be open). */
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cluster.h"
#include "daemon/hosts.h"
#include "util/util.h"

typedef struct {
    char *data;
    size_t len;
} Buf;

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
    Buf *b = userdata;
    if (b->len + size * n > 65536)
        return 0;
    b->data = realloc(b->data, b->len + size * n + 1);
    if (!b->data)
        abort();
    memcpy(b->data + b->len, p, size * n);
    b->len += size * n;
    b->data[b->len] = 0;
    return size * n;
}

/* GET endpoint/version: etcd's server version, or NULL. */
static char *etcd_version(const VoEtcdEndpoint *e)
{
    CURL *curl = curl_easy_init();
    if (!curl)
        return NULL;
    _cleanup_free_ char *url = vo_asprintf("%s/version", e->endpoint);
    Buf b = { 0 };
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_CAINFO, e->ca_file);
    curl_easy_setopt(curl, CURLOPT_SSLCERT, e->cert_file);
    curl_easy_setopt(curl, CURLOPT_SSLKEY, e->key_file);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    CURLcode c = curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    char *v = NULL;
    json_t *doc = c == CURLE_OK && b.data ? json_loads(b.data, 0, NULL) : NULL;
    if (json_is_string(json_object_get(doc, "etcdserver")))
        v = vo_strdup(json_string_value(json_object_get(doc, "etcdserver")));
    json_decref(doc);
    free(b.data);
    return v;
}

#define ETCD_HEALTH_MS 5000

/* The members' health and etcd's version as last asked (etcd_health), for
 * which members (as listed, without "healthy") and when. */
static pthread_mutex_t health_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *health_members; /* [{"name", "id", "voting", "client_url"?}] */
static json_t *health_healthy; /* [true|false], in health_members' order */
static char *health_version;
static int64_t health_at;

/* etcd's member list now, as the answer shows it (without "healthy"); NULL
 * with *ret_error when no endpoint answered. */
static json_t *etcd_members_list(VoDaemon *d, char **ret_error)
{
    VoClusterConfig *c = d->cluster;
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    VoEtcdMembers m = { 0 };
    int r = -EAGAIN;
    for (size_t i = 0; r < 0 && c->endpoints && c->endpoints[i]; i++) {
        VoClusterEndpoint ep;
        vo_cluster_endpoint(dir, c->endpoints[i], &ep);
        ep.e.timeout_ms = 3000;
        free(*ret_error);
        *ret_error = NULL;
        r = vo_etcd_member_list(&ep.e, &m, ret_error);
        vo_cluster_endpoint_clear(&ep);
    }
    if (r < 0)
        return NULL;
    json_t *members = json_array();
    for (size_t i = 0; i < m.n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%" PRIx64, m.v[i].id);
        json_array_append_new(members,
                              json_pack("{s:s, s:s, s:b, s:s?}", "name", m.v[i].name, "id", id,
                                        "voting", !m.v[i].learner, "client_url",
                                        m.v[i].client_urls ? m.v[i].client_urls[0] : NULL));
    }
    vo_etcd_members_clear(&m);
    return members;
}

/* Asks each member of members (health_lock held) whether it is healthy,
 * and the first healthy one etcd's version, into the health_* above. */
static void etcd_health_read(VoDaemon *d, json_t *members)
{
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    json_decref(health_healthy);
    free(health_version);
    health_healthy = json_array();
    health_version = NULL;
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m) {
        bool healthy = false;
        const char *url = json_string_value(json_object_get(m, "client_url"));
        if (url) {
            VoClusterEndpoint ep;
            vo_cluster_endpoint(dir, url, &ep);
            ep.e.timeout_ms = 2000;
            _cleanup_free_ char *error = NULL;
            healthy = vo_etcd_endpoint_health(&ep.e, &error) == 0;
            if (healthy && !health_version)
                health_version = etcd_version(&ep.e);
            vo_cluster_endpoint_clear(&ep);
        }
        json_array_append_new(health_healthy, json_boolean(healthy));
    }
    json_decref(health_members);
    health_members = json_deep_copy(members); /* the caller adds "healthy" to its own */
    health_at = vo_now_ms();
    log_debug("cluster show: etcd's members' health asked");
}

/* {"etcd_members": [...], "etcd_version"?, "etcd_error"?,
 * "etcd_health_age_ms"}: the member list asked of etcd now (so a member
 * added, removed, started or promoted shows at once), each member's health
 * and the version asked again only when the list changed or they are
 * ETCD_HEALTH_MS old: one reader at a time asks, the others meanwhile wait
 * for its answer (each request has a timeout) and share it. */
static json_t *etcd_view(VoDaemon *d)
{
    _cleanup_free_ char *list_error = NULL;
    json_t *members = etcd_members_list(d, &list_error);
    if (!members)
        return json_pack("{s:[], s:s?}", "etcd_members", "etcd_error", list_error);
    pthread_mutex_lock(&health_lock);
    if (!health_members || !json_equal(health_members, members) ||
        vo_now_ms() - health_at >= ETCD_HEALTH_MS)
        etcd_health_read(d, members);
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
        json_object_set(m, "healthy", json_array_get(health_healthy, i));
    json_t *v = json_pack("{s:o, s:s?, s:I}", "etcd_members", members, "etcd_version",
                          health_version, "etcd_health_age_ms",
                          (json_int_t)(vo_now_ms() - health_at));
    pthread_mutex_unlock(&health_lock);
    return v;
}

json_t *vo_cluster_show(VoDaemon *d, int *ret_err)
{
    if (!d->cluster)
        return json_pack("{s:n}", "cluster");
    VoClusterConfig *c = d->cluster;
    json_t *etcd = etcd_view(d);
    /* A quorum known lost is said at once; else a linearizable read (the
     * revision) needs one. Without it the manager and hosts below come from
     * this host's member, possibly stale (the answer's Vireo-Stale says so). */
    int64_t rev = 0;
    bool quorum = vo_store_stale_since(d->cluster_store) == 0 &&
                  d->cluster_store->ops->revision(d->cluster_store, &rev) == 0;
    _cleanup_free_ char *manager_text = NULL;
    (void)vo_store_get(d->cluster_store, "cluster/manager", &manager_text, NULL);
    json_t *manager = manager_text ? json_loads(manager_text, 0, NULL) : NULL;
    int herr = 0;
    json_t *hosts = vo_hosts_list_json(d, &herr);
    json_t *o = json_pack("{s:{s:s, s:s, s:i, s:b}, s:b, s:O?, s:O?}", "cluster", "id",
                          c->cluster_id, "address", c->address, "api_port", c->api_port,
                          "etcd_member", c->etcd_member, "quorum", quorum, "manager",
                          json_object_get(manager, "name"), "hosts",
                          json_object_get(hosts, "hosts"));
    json_object_update(o, etcd);
    json_decref(etcd);
    json_decref(manager);
    json_decref(hosts);
    *ret_err = 0;
    return o;
}
