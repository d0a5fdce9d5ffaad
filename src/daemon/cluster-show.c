/* cluster-show.c: GET /v1/cluster: the cluster as this host sees it: its
 * id, the etcd members (voting or learner, healthy or not), whether the
 * store has a quorum, the manager, the hosts with their state and versions,
 * etcd's version. Standalone: {"cluster": null}.
 * What etcd says of its members (a member list, a health check per member,
 * the version: each an HTTPS request, seconds for a member that does not
 * answer) is asked at most every ETCD_VIEW_MS, by one reader at a time;
 * readers meanwhile get that answer (the web UI's cluster page reads it
 * while shown, and any number of them may be open). */
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

#define ETCD_VIEW_MS 5000

/* The last answer of etcd (etcd_view), when and for which cluster. */
static pthread_mutex_t view_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *view;
static char *view_cluster;
static int64_t view_at;

/* {"etcd_members": [...], "etcd_version"?, "etcd_error"?} asked of etcd now. */
static json_t *etcd_view_read(VoDaemon *d)
{
    VoClusterConfig *c = d->cluster;
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    json_t *members = json_array();
    _cleanup_free_ char *version = NULL, *list_error = NULL;
    VoEtcdMembers m = { 0 };
    int r = -EAGAIN;
    for (size_t i = 0; r < 0 && c->endpoints && c->endpoints[i]; i++) {
        VoClusterEndpoint ep;
        vo_cluster_endpoint(dir, c->endpoints[i], &ep);
        ep.e.timeout_ms = 3000;
        free(list_error);
        list_error = NULL;
        r = vo_etcd_member_list(&ep.e, &m, &list_error);
        vo_cluster_endpoint_clear(&ep);
    }
    for (size_t i = 0; r >= 0 && i < m.n; i++) {
        bool healthy = false;
        const char *url = m.v[i].client_urls ? m.v[i].client_urls[0] : NULL;
        if (url) {
            VoClusterEndpoint ep;
            vo_cluster_endpoint(dir, url, &ep);
            ep.e.timeout_ms = 2000;
            _cleanup_free_ char *error = NULL;
            healthy = vo_etcd_endpoint_health(&ep.e, &error) == 0;
            if (healthy && !version)
                version = etcd_version(&ep.e);
            vo_cluster_endpoint_clear(&ep);
        }
        char id[32];
        snprintf(id, sizeof(id), "%" PRIx64, m.v[i].id);
        json_array_append_new(members,
                              json_pack("{s:s, s:s, s:b, s:b, s:s?}", "name", m.v[i].name, "id",
                                        id, "voting", !m.v[i].learner, "healthy", healthy,
                                        "client_url", url));
    }
    vo_etcd_members_clear(&m);
    return json_pack("{s:o, s:s?, s:s?}", "etcd_members", members, "etcd_version", version,
                     "etcd_error", r < 0 ? list_error : NULL);
}

/* etcd_view_read's answer, at most ETCD_VIEW_MS old (a new reader); the
 * lock makes readers meanwhile wait for the one asking, then share it. */
static json_t *etcd_view(VoDaemon *d)
{
    pthread_mutex_lock(&view_lock);
    int64_t now = vo_now_ms();
    if (!view || now - view_at >= ETCD_VIEW_MS || !view_cluster ||
        strcmp(view_cluster, d->cluster->cluster_id)) {
        json_decref(view);
        free(view_cluster);
        view = etcd_view_read(d);
        view_cluster = vo_strdup(d->cluster->cluster_id);
        view_at = vo_now_ms();
        log_debug("cluster show: etcd's members asked");
    }
    json_t *v = json_deep_copy(view);
    pthread_mutex_unlock(&view_lock);
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
