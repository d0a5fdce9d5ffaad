/* cluster-join.c: `vireo cluster join` on the joining (standalone) host:
 * fetch the cluster CA and check it against the token, ask a member to
 * admit this host (POST /v1/cluster/join-request, authenticated by the
 * token's secret over TLS checked against that CA), which adds its etcd
 * member as a learner (the first three hosts; started and promoted by the
 * vireod that follows the commit), copy its documents into etcd
 * under its namespace and its projects' into the cluster's
 * (cluster-join-projects.c), and commit. A failure before the commit undoes what
 * the cluster gained (the member, the namespace) and leaves it standalone. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/join-protocol.h"
#include "cluster/join-token.h"
#include "cluster/pki.h"
#include "daemon/cluster.h"
#include "daemon/storage.h"
#include "util/test-hold.h"
#include "util/util.h"

#define JOIN_TIMEOUT_MS 30000

typedef struct {
    char *data;
    size_t len;
} Buf;

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
    Buf *b = userdata;
    if (b->len + size * n > 1 << 20)
        return 0;
    b->data = realloc(b->data, b->len + size * n + 1);
    if (!b->data)
        abort();
    memcpy(b->data + b->len, p, size * n);
    b->len += size * n;
    b->data[b->len] = 0;
    return size * n;
}

/* GET base/v1/cluster/ca without checking the server: what it answers is
 * checked against the token's fingerprint instead. *ret_join: the member's
 * join protocol and checks (NULL from a member before protocol 2). */
static int fetch_ca(const char *base, char **ret_pem, json_t **ret_join, char **ret_error)
{
    CURL *curl = curl_easy_init();
    if (!curl)
        return -ENOMEM;
    _cleanup_free_ char *url = vo_asprintf("%s/v1/cluster/ca", base);
    char errbuf[CURL_ERROR_SIZE] = "";
    Buf b = { 0 };
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    CURLcode c = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    int r = 0;
    json_t *doc = b.data ? json_loads(b.data, 0, NULL) : NULL;
    const char *pem = json_string_value(json_object_get(doc, "ca"));
    if (c != CURLE_OK)
        r = vo_error_set(ret_error, -EHOSTUNREACH, "cannot reach %s: %s", base,
                         errbuf[0] ? errbuf : curl_easy_strerror(c));
    else if (status != 200 || !pem)
        r = vo_error_set(ret_error, -EPROTO, "%s answered %ld to GET /v1/cluster/ca: is it a "
                         "vireo host in a cluster?", base, status);
    else {
        *ret_pem = vo_strdup(pem);
        *ret_join = json_incref(json_object_get(doc, "join"));
    }
    json_decref(doc);
    free(b.data);
    return r;
}

static int collect_json(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t *o = json_loads(value, 0, NULL);
    if (o)
        json_array_append_new(userdata, o);
    return 0;
}

/* What the member checks for collisions: this host's VM names, networks
 * and pools ({name, type, path, rbd?: {monitors, pool, user}}: a host keeps
 * them as its own, and one named like a pool of the cluster would hide it
 * here). */
static int local_objects(VoDaemon *d, json_t **ret_vms, json_t **ret_networks,
                         json_t **ret_pools, json_t **ret_macs)
{
    json_t *vms = json_array(), *nets = json_array(), *names = json_array(),
           *list = json_array(), *pools = json_array(), *own_pools = json_array(),
           *macs = json_array();
    int r = vo_store_list(d->store, "vms/", collect_json, vms);
    if (r >= 0)
        r = vo_store_list(d->store, "networks/", collect_json, nets);
    if (r >= 0)
        r = vo_store_list(d->store, "pools/", collect_json, pools);
    size_t i;
    json_t *o;
    json_array_foreach(vms, i, o) {
        json_t *name = json_object_get(json_object_get(o, "spec"), "name");
        if (json_is_string(name))
            json_array_append(names, name);
        size_t k;
        json_t *nic;
        json_array_foreach(json_object_get(json_object_get(o, "spec"), "nics"), k, nic)
            if (json_is_string(json_object_get(nic, "mac")))
                json_array_append_new(macs, json_pack("{s:O?, s:O}", "vm", name, "mac",
                                                      json_object_get(nic, "mac")));
    }
    json_array_foreach(nets, i, o) {
        json_t *n = json_pack("{s:O?, s:O?}", "name", json_object_get(o, "name"), "subnet",
                              json_object_get(o, "subnet"));
        json_array_append_new(list, n);
    }
    json_array_foreach(pools, i, o) {
        json_t *p = json_pack("{s:O?, s:O?, s:O?}", "name", json_object_get(o, "name"), "type",
                              json_object_get(o, "type"), "path", json_object_get(o, "path"));
        if (json_is_object(json_object_get(o, "rbd")))
            json_object_set(p, "rbd", json_object_get(o, "rbd"));
        json_array_append_new(own_pools, p);
    }
    json_decref(vms);
    json_decref(nets);
    json_decref(pools);
    *ret_vms = names;
    *ret_networks = list;
    *ret_pools = own_pools;
    *ret_macs = macs;
    return r;
}

/* The member's answer, as an errno and message. */
static int member_error(const VoPeerResponse *resp, const char *base, char **ret_error)
{
    json_t *doc = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    int r = resp->status == 409 ? -EEXIST
          : resp->status == 401 || resp->status == 403 ? -EACCES
          : resp->status == 400 ? -EINVAL
          : resp->status == 503 ? -EAGAIN
          : -EPROTO;
    vo_error_set(ret_error, r, "%s refused the join: %s", base,
                 msg ? msg : "(no error message)");
    json_decref(doc);
    return r;
}

typedef struct {
    json_t *answer;
    uint64_t member_id;
    bool voter;
    char *member_endpoint; /* an endpoint of the existing cluster */
    char **created_projects; /* projects the copy brought into the cluster */
} Admission;

/* Undoes what the cluster gained: the etcd member (added as a learner) and
 * whatever was copied (this host's namespace, its VM name records). */
static void undo(VoDaemon *d, const char *dir, const Admission *a)
{
    if (!a->member_endpoint)
        return;
    VoClusterEndpoint ep;
    vo_cluster_endpoint(dir, a->member_endpoint, &ep);
    _cleanup_free_ char *error = NULL;
    if (a->voter && a->member_id &&
        vo_etcd_member_remove(&ep.e, a->member_id, 10000, &error) < 0)
        log_warn("join undo: cannot remove etcd member %llx: %s",
                 (unsigned long long)a->member_id, error);
    char *eps[] = { a->member_endpoint, NULL };
    VoStore *raw = NULL;
    if (vo_cluster_store_open(dir, eps, NULL, &raw) >= 0) {
        _cleanup_free_ char *ns = vo_asprintf("h/%s/", d->host_id);
        if (vo_cluster_forget_macs(raw, d->host_id) < 0 || vo_cluster_delete_prefix(raw, ns) < 0 ||
            vo_cluster_forget_records(raw, d->host_id) < 0)
            log_warn("join undo: cannot delete this host's documents from the cluster "
                     "('vireo host remove %s' on a member does)", d->host_name);
        vo_cluster_copy_projects_undo(raw, d->host_id, a->created_projects);
        vo_store_close(raw);
    }
    vo_cluster_endpoint_clear(&ep);
}

/* The join request: to a member before protocol 2, a legacy one (no
 * "protocol"; its projects and rbd pools as such members read them, which
 * they check or, older, refuse); else a protocol-2 one naming the checks
 * its documents need. Refused (-EPROTONOSUPPORT) when the member cannot
 * make one of them (join-protocol.h). *ret_needed: those checks, for the
 * answer. */
static int join_request(VoDaemon *d, const VoJoinToken *t, const char *base,
                        const char *address, const json_t *member_join, char **ret_body,
                        char ***ret_needed, char **ret_error)
{
    json_t *vms = NULL, *nets = NULL, *pools = NULL, *projects = NULL, *macs = NULL;
    int r = local_objects(d, &vms, &nets, &pools, &macs);
    if (r >= 0)
        r = vo_cluster_join_projects(d->store, &projects);
    if (r < 0) {
        json_decref(vms);
        json_decref(nets);
        json_decref(pools);
        json_decref(macs);
        return vo_error_set(ret_error, r, "cannot read this host's documents: %s", strerror(-r));
    }
    char **needed = vo_join_checks_needed(projects, pools, VO_DEFAULT_POOL, !member_join);
    /* Its MACs, to a member that checks them (join-protocol.h: with one that
     * does not, the copy entering them in the MAC index fails on a taken
     * one, and the join is undone). */
    size_t ci;
    json_t *check;
    bool checks_macs = false;
    json_array_foreach(json_object_get(member_join, "checks"), ci, check)
        checks_macs |= !strcmp(json_string_value(check) ?: "", VO_JOIN_CHECK_MACS);
    if (checks_macs && json_array_size(macs))
        vo_strv_pushf(&needed, "%s", VO_JOIN_CHECK_MACS);
    r = vo_join_member_usable(base, member_join, needed, ret_error);
    json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:i}", "cluster",
                            t->cluster, "token_id", t->id, "secret", t->secret, "host_id",
                            d->host_id, "name", d->host_name, "address", address, "vms", vms,
                            "networks", nets, "etcd_peer_port", VO_ETCD_PEER_PORT);
    if (member_join) {
        json_t *checks = json_array();
        for (size_t i = 0; needed && needed[i]; i++)
            json_array_append_new(checks, json_string(needed[i]));
        json_object_set_new(req, "protocol", json_integer(VO_JOIN_PROTOCOL));
        json_object_set_new(req, "checks", checks);
        json_object_set(req, "projects", projects);
        json_object_set(req, "pools", pools);
        if (checks_macs && json_array_size(macs))
            json_object_set(req, "macs", macs);
    } else {
        /* Only fields it needs: a member before them refuses them. */
        json_t *rbd_pools = json_array(), *p;
        size_t i;
        json_array_foreach(pools, i, p)
            if (json_is_object(json_object_get(p, "rbd")))
                json_array_append_new(rbd_pools, json_pack("{s:O?, s:O}", "name",
                                                           json_object_get(p, "name"), "rbd",
                                                           json_object_get(p, "rbd")));
        if (json_object_size(projects))
            json_object_set(req, "projects", projects);
        if (json_array_size(rbd_pools))
            json_object_set(req, "rbd_pools", rbd_pools);
        json_decref(rbd_pools);
    }
    json_decref(projects);
    json_decref(pools);
    json_decref(macs);
    if (r >= 0)
        *ret_body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (r < 0)
        vo_strv_free(needed);
    else
        *ret_needed = needed;
    return r;
}

static int join_steps(VoDaemon *d, const char *staging, const VoJoinToken *t, const char *base,
                      const char *address, VoClusterConfig *c, Admission *a,
                      char **ret_error)
{
    _cleanup_free_ char *dir = vo_asprintf("%s/" VO_CLUSTER_DIR, staging);
    _cleanup_free_ char *ca_pem = NULL;
    char fp[VO_SHA256_HEX_LEN + 1];
    json_t *member_join = NULL;
    int r = fetch_ca(base, &ca_pem, &member_join, ret_error);
    if (r < 0)
        return r;
    if (vo_pki_fingerprint(ca_pem, fp) < 0 || strcmp(fp, t->ca_sha256) != 0) {
        json_decref(member_join);
        return vo_error_set(ret_error, -EACCES,
                            "%s does not serve the cluster the token names (its CA's fingerprint "
                            "differs): check the address", base);
    }
    VoPkiPair ca_only = { .cert_pem = ca_pem };
    if ((r = vo_pki_pair_write(dir, "ca", &ca_only)) < 0) {
        json_decref(member_join);
        return vo_error_set(ret_error, r, "cannot write %s/ca.crt: %s", dir, strerror(-r));
    }
    _cleanup_free_ char *body = NULL;
    _cleanup_strv_ char **needed = NULL;
    r = join_request(d, t, base, address, member_join, &body, &needed, ret_error);
    json_decref(member_join);
    if (r < 0)
        return r;
    _cleanup_free_ char *ca_file = vo_asprintf("%s/ca.crt", dir);
    VoPeerTls tls = { .ca_file = ca_file }; /* no client certificate yet: the token is it */
    static const char *const headers[] = { "Content-Type: application/json", NULL };
    VoPeerResponse resp = { 0 };
    r = vo_peer_request(&tls, base, "POST", "/v1/cluster/join-request", headers, body,
                        strlen(body), JOIN_TIMEOUT_MS, &resp);
    if (r < 0) {
        vo_error_set(ret_error, r, "cannot ask %s to admit this host: %s", base, resp.error);
        vo_peer_response_clear(&resp);
        return r;
    }
    if (resp.status != 200) {
        r = member_error(&resp, base, ret_error);
        vo_peer_response_clear(&resp);
        return r;
    }
    a->answer = resp.body ? json_loads(resp.body, 0, NULL) : NULL;
    vo_peer_response_clear(&resp);
    const char *ca_key = NULL, *host_cert = NULL, *host_key = NULL, *initial = NULL,
               *member_id = NULL;
    json_t *endpoints = NULL;
    int voter = 0;
    if (!a->answer ||
        json_unpack(a->answer, "{s?s, s:s, s:s, s?s, s:o, s:b, s?s}", "ca_key", &ca_key,
                    "host_cert", &host_cert, "host_key", &host_key, "initial_cluster", &initial,
                    "endpoints", &endpoints, "voter", &voter, "member_id", &member_id) < 0 ||
        !json_is_array(endpoints) || json_array_size(endpoints) == 0)
        return vo_error_set(ret_error, -EPROTO, "%s answered the join with a document this "
                            "vireod does not understand", base);
    a->voter = voter;
    a->member_id = member_id ? strtoull(member_id, NULL, 16) : 0;
    a->member_endpoint = vo_strdup(json_string_value(json_array_get(endpoints, 0)));
    /* The member says which checks it made (protocol 2): one it did not
     * make fails the join here (undone), never passes unchecked. An answer
     * without them is a legacy member's: the legacy checks. */
    _cleanup_strv_ char **unmade = vo_join_checks_missing(needed,
                                                          json_object_get(a->answer, "checks"));
    if (unmade)
        return vo_error_set(ret_error, -EPROTONOSUPPORT, "%s admitted this host without "
                            "checking its %s%s: upgrade vireo on that host, then join again",
                            base, unmade[0], unmade[1] ? " (and more)" : "");

    VoPkiPair ca = { .cert_pem = ca_pem, .key_pem = (char *)ca_key };
    VoPkiPair host = { .cert_pem = (char *)host_cert, .key_pem = (char *)host_key };
    if ((r = vo_pki_pair_write(dir, "ca", &ca)) < 0 || (r = vo_pki_pair_write(dir, "host", &host)) < 0)
        return vo_error_set(ret_error, r, "cannot write the certificates in %s: %s", dir,
                            strerror(-r));
    c->etcd_member = voter;
    if (voter) {
        c->etcd_name = vo_strdup(d->host_name);
        c->etcd_initial_cluster = vo_strdup(initial ? initial : "");
        c->etcd_existing = true;
        vo_strv_push(&c->endpoints, vo_cluster_url(address, c->etcd_client_port));
    }
    size_t i;
    json_t *e;
    json_array_foreach(endpoints, i, e) {
        const char *url = json_string_value(e);
        bool have = false;
        for (size_t k = 0; url && c->endpoints && c->endpoints[k]; k++)
            have |= !strcmp(c->endpoints[k], url);
        if (url && !have)
            vo_strv_pushf(&c->endpoints, "%s", url);
    }
    /* The member starts once, from STATE/cluster after the commit, and is
     * promoted there (vo_cluster_open): stopped and started again as a
     * voter, it would leave a two-host cluster without a quorum meanwhile. */
    /* Its start comes after the commit: a port taken now would leave this
     * host joined with a learner that never runs (refused here, undone). */
    if (voter && ((r = vo_cluster_etcd_ports_check(c, ret_error)) < 0 ||
                  (r = vo_cluster_promote_mark(dir, a->member_id, ret_error)) < 0))
        return r;
    /* Copied through the voters: this host's own member is not running. */
    _cleanup_strv_ char **voters = vo_cluster_other_endpoints(c);
    VoStore *hs = NULL;
    if ((r = vo_cluster_store_open(dir, voters, d->host_id, &hs)) < 0)
        return vo_error_set(ret_error, r, "cannot open the etcd store: %s", strerror(-r));
    r = vo_cluster_copy_in(d->store, hs, d->host_id, false, ret_error);
    if (r >= 0) /* in the cluster's store, not a member yet: tests race a pool create here */
        vo_test_hold("cluster_join_copied");
    if (r >= 0)
        r = vo_cluster_copy_projects(d->store, hs, d->host_id, &a->created_projects, ret_error);
    vo_store_close(hs);
    if (r < 0)
        return r;
    if ((r = vo_cluster_config_save(dir, c)) < 0)
        return vo_error_set(ret_error, r, "cannot write %s/" VO_CLUSTER_CONFIG ": %s", dir,
                            strerror(-r));
    return 0;
}

/* "ADDRESS[:PORT]" or "[V6]:PORT" into a base URL. */
static int target_url(const char *target, char **ret, char **ret_error)
{
    _cleanup_free_ char *host = NULL;
    int port = VO_CLUSTER_API_PORT;
    const char *colon = strrchr(target, ':');
    if (target[0] == '[') {
        const char *end = strchr(target, ']');
        if (!end)
            return vo_error_set(ret_error, -EINVAL, "'%s' is not ADDRESS[:PORT]", target);
        host = strndup(target + 1, (size_t)(end - target - 1));
        colon = end[1] == ':' ? end + 1 : NULL;
    } else if (colon && strchr(target, ':') == colon)
        host = strndup(target, (size_t)(colon - target));
    else {
        host = vo_strdup(target);
        colon = NULL;
    }
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p < 1 || p > 65535)
            return vo_error_set(ret_error, -EINVAL, "'%s': the port must be 1-65535", target);
        port = (int)p;
    }
    unsigned char buf[16];
    if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
        return vo_error_set(ret_error, -EINVAL, "'%s' is not ADDRESS[:PORT] (an IP address)",
                            target);
    *ret = vo_cluster_url(host, port);
    return 0;
}

int vo_cluster_join(VoDaemon *d, const char *target, const char *token, const char *address,
                    json_t **ret, char **ret_error)
{
    if (d->cluster)
        return vo_error_set(ret_error, -EEXIST, "this host is in cluster %s already",
                            d->cluster->cluster_id);
    VoJoinToken t = { 0 };
    int r = vo_join_token_parse(token, (int64_t)time(NULL), &t, ret_error);
    if (r < 0)
        return r == -EKEYEXPIRED ? r : (r == -EINVAL ? r : -EINVAL);
    if ((r = vo_cluster_begin(ret_error)) < 0) {
        vo_join_token_clear(&t);
        return r;
    }
    VoClusterConfig c = { .api_port = VO_CLUSTER_API_PORT, .etcd_client_port = VO_ETCD_CLIENT_PORT,
                          .etcd_peer_port = VO_ETCD_PEER_PORT };
    _cleanup_free_ char *base = NULL, *staging = NULL;
    Admission a = { 0 };
    if ((r = target_url(target ? target : t.address, &base, ret_error)) < 0 ||
        (r = vo_cluster_address_check(address, &c.address, ret_error)) < 0)
        goto out;
    c.cluster_id = vo_strdup(t.cluster);
    if (!(staging = vo_cluster_staging_make(d))) {
        r = vo_error_set(ret_error, -EIO, "cannot make %s/" VO_CLUSTER_STAGING, d->state_dir);
        goto out;
    }
    log_info("cluster join: cluster %s through %s, this host's address %s", t.cluster, base,
             c.address);
    r = join_steps(d, staging, &t, base, c.address, &c, &a, ret_error);
    if (r >= 0)
        r = vo_cluster_commit(d, ret_error);
    if (r < 0) {
        log_warn("cluster join failed: %s; this host stays standalone", *ret_error);
        _cleanup_free_ char *dir = vo_asprintf("%s/" VO_CLUSTER_DIR, staging ? staging : "");
        if (staging)
            undo(d, dir, &a);
        vo_cluster_staging_remove(d);
        goto out;
    }
    log_info("cluster join: committed; cluster %s", t.cluster);
    *ret = json_pack("{s:s, s:s, s:b}", "cluster", t.cluster, "address", c.address, "voter",
                     a.voter);
out:
    json_decref(a.answer);
    free(a.member_endpoint);
    vo_strv_free(a.created_projects);
    vo_cluster_config_clear(&c);
    vo_join_token_clear(&t);
    vo_cluster_end();
    return r;
}
