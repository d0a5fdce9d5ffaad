/* etcd-member.c: the argv of a host's etcd member (TLS everywhere, client
 * certificates required, revision compaction, a backend quota, a log file)
 * and the member calls of etcd's JSON gateway (/v3/cluster/member/...,
 * /health) made with libcurl and the host certificate. */
#include "cluster/etcd-member.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

#define DEFAULT_TIMEOUT_MS 5000
#define RESPONSE_MAX (1 << 20)
#define RETRY_MS 250
#define NOT_IN_SYNC "can only promote a learner member which is in sync with leader"
#define UNHEALTHY "unhealthy cluster"
#define MEMBER_NOT_FOUND "member not found" /* also an id removed before */
#define ADD_TRIES 3            /* a member add refused for a removed id: in 3 seconds */
#define ADD_SECOND_MARGIN_MS 50 /* past the next second (of etcd's clock, near ours) */

static bool is_ipv6(const char *address)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET6, address, buf) == 1;
}

static bool is_ip(const char *address)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return address && (inet_pton(AF_INET, address, buf) == 1 || is_ipv6(address));
}

static bool member_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 253)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || *s == '=' || *s == ',')
            return false;
    return true;
}

int vo_etcd_member_argv(const VoEtcdMemberConfig *c, char ***ret_argv, char **ret_error)
{
    int client = c->client_port ? c->client_port : VO_ETCD_CLIENT_PORT;
    int peer = c->peer_port ? c->peer_port : VO_ETCD_PEER_PORT;
    int heartbeat = c->heartbeat_ms ? c->heartbeat_ms : VO_ETCD_HEARTBEAT_MS;
    int election = c->election_ms ? c->election_ms : VO_ETCD_ELECTION_MS;
    uint64_t quota = c->quota_backend_bytes ? c->quota_backend_bytes : VO_ETCD_QUOTA_BYTES;

    if (!member_name_ok(c->name))
        return vo_error_set(ret_error, -EINVAL, "etcd member name '%s' is empty or has a space, '=' or ','",
                            c->name ? c->name : "");
    if (!is_ip(c->address))
        return vo_error_set(ret_error, -EINVAL, "cluster address '%s' is not an IP address",
                            c->address ? c->address : "");
    if (!c->state_dir || c->state_dir[0] != '/' || !c->run_dir || c->run_dir[0] != '/')
        return vo_error_set(ret_error, -EINVAL, "etcd member needs absolute state and run directories");
    if (client < 1 || client > 65535 || peer < 1 || peer > 65535 || client == peer)
        return vo_error_set(ret_error, -EINVAL, "etcd ports %d (client) and %d (peer) must be two ports 1-65535",
                            client, peer);
    if (heartbeat < 10 || election < 5 * heartbeat || election > 50000)
        return vo_error_set(ret_error, -EINVAL,
                            "etcd election timeout %d ms must be at least 5 heartbeats (%d ms) and at most 50000",
                            election, heartbeat);
    if (!c->cluster_id || !*c->cluster_id)
        return vo_error_set(ret_error, -EINVAL, "etcd member needs the cluster id");
    if (c->existing && !c->initial_cluster)
        return vo_error_set(ret_error, -EINVAL, "a joining etcd member needs the initial cluster from its member add");

    _cleanup_free_ char *client_url = vo_cluster_url(c->address, client);
    _cleanup_free_ char *peer_url = vo_cluster_url(c->address, peer);
    bool loopback = !strcmp(c->address, "127.0.0.1");
    const char *dir = c->state_dir;
    char **argv = NULL;
    vo_strv_pushf(&argv, "%s", c->etcd_path ? c->etcd_path : VO_ETCD_PATH);
    vo_strv_pushf(&argv, "--name=%s", c->name);
    vo_strv_pushf(&argv, "--data-dir=%s/cluster/etcd", dir);
    /* Clients: the address (other hosts) and loopback (this host's vireod
     * and fence process, which keep working when the address moves). Only
     * the address is advertised: other hosts read advertised URLs. */
    if (loopback)
        vo_strv_pushf(&argv, "--listen-client-urls=%s", client_url);
    else
        vo_strv_pushf(&argv, "--listen-client-urls=%s,https://127.0.0.1:%d", client_url, client);
    vo_strv_pushf(&argv, "--advertise-client-urls=%s", client_url);
    vo_strv_pushf(&argv, "--listen-peer-urls=%s", peer_url);
    vo_strv_pushf(&argv, "--initial-advertise-peer-urls=%s", peer_url);
    if (c->initial_cluster)
        vo_strv_pushf(&argv, "--initial-cluster=%s", c->initial_cluster);
    else
        vo_strv_pushf(&argv, "--initial-cluster=%s=%s", c->name, peer_url);
    vo_strv_pushf(&argv, "--initial-cluster-state=%s", c->existing ? "existing" : "new");
    vo_strv_pushf(&argv, "--initial-cluster-token=%s", c->cluster_id);
    /* One host certificate for both ports; a certificate from the cluster CA
     * is required of every client and peer. */
    vo_strv_pushf(&argv, "--cert-file=%s/cluster/host.crt", dir);
    vo_strv_pushf(&argv, "--key-file=%s/cluster/host.key", dir);
    vo_strv_pushf(&argv, "--trusted-ca-file=%s/cluster/ca.crt", dir);
    vo_strv_pushf(&argv, "--client-cert-auth");
    vo_strv_pushf(&argv, "--peer-cert-file=%s/cluster/host.crt", dir);
    vo_strv_pushf(&argv, "--peer-key-file=%s/cluster/host.key", dir);
    vo_strv_pushf(&argv, "--peer-trusted-ca-file=%s/cluster/ca.crt", dir);
    vo_strv_pushf(&argv, "--peer-client-cert-auth");
    /* The store needs the JSON gateway (etcd 3.4's default; said anyway). */
    vo_strv_pushf(&argv, "--enable-grpc-gateway=true");
    /* Keep the last 10000 revisions: space bounded by the number of writes,
     * not by their rate (periodic compaction keeps an hour of a write storm);
     * a watcher further behind gets "compacted" and re-lists. */
    vo_strv_pushf(&argv, "--auto-compaction-mode=revision");
    vo_strv_pushf(&argv, "--auto-compaction-retention=%d", VO_ETCD_COMPACTION_REVISIONS);
    vo_strv_pushf(&argv, "--quota-backend-bytes=%" PRIu64, quota);
    vo_strv_pushf(&argv, "--heartbeat-interval=%d", heartbeat);
    vo_strv_pushf(&argv, "--election-timeout=%d", election);
    /* A member cut off keeps starting elections and raising its term; back
     * on the network, that term made the healthy leader step down: seconds
     * without a leader, so without confirmed lease renewals, and every
     * host fenced its HA VMs (bench/chaos). Pre-vote (etcd 3.5's default)
     * lets a member raise its term only when it could win. */
    vo_strv_pushf(&argv, "--pre-vote=true");
    vo_strv_pushf(&argv, "--logger=zap");
    vo_strv_pushf(&argv, "--log-outputs=%s/etcd.log", c->run_dir);
    *ret_argv = argv;
    return 0;
}

void vo_etcd_members_clear(VoEtcdMembers *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].name);
        vo_strv_free(m->v[i].peer_urls);
        vo_strv_free(m->v[i].client_urls);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

/* The gateway writes uint64 as a decimal string (some writers as a number). */
static bool parse_id(json_t *j, uint64_t *ret)
{
    if (json_is_integer(j) && json_integer_value(j) > 0) {
        *ret = (uint64_t)json_integer_value(j);
        return true;
    }
    const char *s = json_string_value(j);
    if (!s || !*s || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0)
        return false;
    *ret = v;
    return true;
}

static bool parse_urls(json_t *arr, char ***ret)
{
    char **v = NULL;
    size_t i;
    json_t *u;
    if (arr && !json_is_array(arr))
        return false;
    json_array_foreach(arr, i, u) {
        if (!json_is_string(u)) {
            vo_strv_free(v);
            return false;
        }
        vo_strv_pushf(&v, "%s", json_string_value(u));
    }
    if (!v)
        v = vo_malloc0(sizeof(char *));
    *ret = v;
    return true;
}

static int members_from_json(json_t *arr, VoEtcdMembers *ret)
{
    if (!json_is_array(arr))
        return -EBADMSG;
    VoEtcdMembers m = { .v = vo_malloc0((json_array_size(arr) + 1) * sizeof(VoEtcdMember)) };
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        VoEtcdMember *x = &m.v[m.n];
        json_t *name = json_object_get(o, "name"), *learner = json_object_get(o, "isLearner");
        if (!json_is_object(o) || !parse_id(json_object_get(o, "ID"), &x->id) ||
            (name && !json_is_string(name)) || (learner && !json_is_boolean(learner)))
            goto bad;
        x->name = vo_strdup(name ? json_string_value(name) : "");
        x->learner = json_is_true(learner);
        m.n++;
        if (!parse_urls(json_object_get(o, "peerURLs"), &x->peer_urls) ||
            !parse_urls(json_object_get(o, "clientURLs"), &x->client_urls))
            goto bad;
    }
    *ret = m;
    return 0;
bad:
    vo_etcd_members_clear(&m);
    return -EBADMSG;
}

int vo_etcd_members_parse(const char *json_text, VoEtcdMembers *ret)
{
    json_t *root = json_loads(json_text, 0, NULL);
    int r = members_from_json(json_object_get(root, "members"), ret);
    json_decref(root);
    return r;
}

char *vo_etcd_initial_cluster(const VoEtcdMembers *m, uint64_t new_id, const char *new_name)
{
    char *s = vo_strdup("");
    for (size_t i = 0; i < m->n; i++) {
        const char *name = m->v[i].id == new_id ? new_name : m->v[i].name;
        for (char **u = m->v[i].peer_urls; u && *u; u++) {
            char *next = vo_asprintf("%s%s%s=%s", s, *s ? "," : "", name, *u);
            free(s);
            s = next;
        }
    }
    return s;
}

/* ---- the JSON gateway over libcurl ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct {
    char *data;
    size_t len;
    bool too_big;
} Body;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    Body *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > RESPONSE_MAX) {
        b->too_big = true;
        return 0;
    }
    char *d = realloc(b->data, b->len + n + 1);
    if (!d)
        abort();
    memcpy(d + b->len, ptr, n);
    b->len += n;
    d[b->len] = 0;
    b->data = d;
    return n;
}

static int curl_errno(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
        return -EPROTO;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -ECONNRESET;
    }
}

/* grpc status codes the gateway puts in "code". */
static int grpc_errno(json_int_t code)
{
    switch (code) {
    case 3: /* INVALID_ARGUMENT */
    case 11: /* OUT_OF_RANGE */
        return -EINVAL;
    case 4: /* DEADLINE_EXCEEDED */
    case 9: /* FAILED_PRECONDITION */
    case 14: /* UNAVAILABLE */
        return -EAGAIN;
    case 5: /* NOT_FOUND */
        return -ENOENT;
    case 6: /* ALREADY_EXISTS */
        return -EEXIST;
    case 7: /* PERMISSION_DENIED */
    case 16: /* UNAUTHENTICATED */
        return -EACCES;
    default:
        return -EIO;
    }
}

/* etcd's messages that say more than their grpc code (9 is used for
 * "exists", "not in sync" and "not a learner" alike); first match wins. */
static const struct {
    const char *text;
    int r;
} known_messages[] = {
    { NOT_IN_SYNC, -EAGAIN },
    { "can only promote a learner member", -EINVAL }, /* already a voter */
    { "already exist", -EEXIST },                    /* member ID, peer URLs */
    { MEMBER_NOT_FOUND, -ENOENT },
    { "too many learner members", -EBUSY },          /* one learner at a time */
    { UNHEALTHY, -EAGAIN },
};

static int message_errno(const char *msg, int fallback)
{
    for (size_t i = 0; msg && i < ELEMENTSOF(known_messages); i++)
        if (strstr(msg, known_messages[i].text))
            return known_messages[i].r;
    return fallback;
}

/* One request: POST body (a JSON object; stolen) to path, or GET when body
 * is NULL. *ret gets the parsed answer of a 2xx (may be NULL). A non-2xx
 * answer becomes an errno with etcd's message. */
static int gateway(const VoEtcdEndpoint *e, const char *path, json_t *body, json_t **ret,
                   char **ret_error)
{
    pthread_once(&curl_once, curl_init_once);
    _cleanup_free_ char *url = vo_asprintf("%s%s", e->endpoint, path);
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    CURL *h = curl_easy_init();
    if (!h)
        return vo_error_set(ret_error, -ENOMEM, "etcd %s: no curl handle", url);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    Body b = { 0 };
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never through https_proxy/ALL_PROXY */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(e->timeout_ms > 0 ? e->timeout_ms : DEFAULT_TIMEOUT_MS));
    curl_easy_setopt(h, CURLOPT_CAINFO, e->ca_file);
    curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    if (e->cert_file) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert_file);
        curl_easy_setopt(h, CURLOPT_SSLKEY, e->key_file);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (text)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    CURLcode c = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    _cleanup_free_ char *data = b.data;
    if (c != CURLE_OK)
        return vo_error_set(ret_error, b.too_big ? -EBADMSG : curl_errno(c), "etcd %s: %s", url,
                            b.too_big ? "answer over 1 MiB" : (*errbuf ? errbuf : curl_easy_strerror(c)));
    json_t *doc = data ? json_loads(data, 0, NULL) : NULL;
    if (status < 200 || status > 299) {
        const char *msg = json_string_value(json_object_get(doc, "message"));
        if (!msg)
            msg = json_string_value(json_object_get(doc, "error"));
        json_t *code = json_object_get(doc, "code");
        int r = message_errno(msg, json_is_integer(code) ? grpc_errno(json_integer_value(code))
                                                         : (status == 503 ? -EAGAIN : -EIO));
        r = vo_error_set(ret_error, r, "etcd %s: HTTP %ld: %s", url, status, msg ? msg : "(no message)");
        json_decref(doc);
        return r;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return vo_error_set(ret_error, -EBADMSG, "etcd %s: the answer is not a JSON object", url);
    }
    if (ret)
        *ret = doc;
    else
        json_decref(doc);
    return 0;
}

int vo_etcd_member_list(const VoEtcdEndpoint *e, VoEtcdMembers *ret, char **ret_error)
{
    json_t *doc = NULL;
    int r = gateway(e, "/v3/cluster/member/list", json_object(), &doc, ret_error);
    if (r < 0)
        return r;
    r = members_from_json(json_object_get(doc, "members"), ret);
    json_decref(doc);
    return r < 0 ? vo_error_set(ret_error, r, "etcd member list: unexpected answer") : 0;
}

int vo_etcd_member_add_learner(const VoEtcdEndpoint *e, const char *name, const char *peer_url,
                               uint64_t *ret_id, char **ret_initial_cluster, char **ret_error)
{
    if (!member_name_ok(name) || !peer_url || strncmp(peer_url, "https://", 8) != 0 ||
        strchr(peer_url, ','))
        return vo_error_set(ret_error, -EINVAL, "etcd member add: bad name '%s' or peer URL '%s'",
                            name ? name : "", peer_url ? peer_url : "");
    json_t *doc = NULL;
    int r;
    /* etcd makes a new member's id from its peer URLs and the second of
     * the add (membership.computeMemberId), and refuses an id it removed
     * before, saying "member not found". So a peer URL added, removed (a
     * join undone after its admission) and added again within one second
     * is refused: the add is tried again in the next second, a new id.
     * Only for that message: another not-found (a gateway without this
     * path, say) is answered at once. */
    for (int tries = 1;; tries++) {
        _cleanup_free_ char *err = NULL;
        r = gateway(e, "/v3/cluster/member/add",
                    json_pack("{s:[s], s:b}", "peerURLs", peer_url, "isLearner", 1), &doc, &err);
        if (r != -ENOENT || !err || !strstr(err, MEMBER_NOT_FOUND) || tries == ADD_TRIES) {
            if (r < 0 && ret_error)
                *ret_error = TAKE_PTR(err);
            break;
        }
        struct timespec now, ts = { 0 };
        clock_gettime(CLOCK_REALTIME, &now);
        ts.tv_nsec = 1000000000L - now.tv_nsec + ADD_SECOND_MARGIN_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec = 1;
            ts.tv_nsec -= 1000000000L;
        }
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    if (r < 0)
        return r;
    uint64_t id = 0;
    VoEtcdMembers m = { 0 };
    if (!parse_id(json_object_get(json_object_get(doc, "member"), "ID"), &id) ||
        members_from_json(json_object_get(doc, "members"), &m) < 0) {
        json_decref(doc);
        return vo_error_set(ret_error, -EBADMSG, "etcd member add: unexpected answer");
    }
    json_decref(doc);
    *ret_initial_cluster = vo_etcd_initial_cluster(&m, id, name);
    vo_etcd_members_clear(&m);
    *ret_id = id;
    return 0;
}

static json_t *id_body(uint64_t id)
{
    char s[32];
    snprintf(s, sizeof(s), "%" PRIu64, id);
    return json_pack("{s:s}", "ID", s);
}

/* POSTs {"ID": id} to path, again every 250 ms for at most timeout_ms
 * while etcd answers with a message containing retry_text. */
static int post_id_retrying(const VoEtcdEndpoint *e, const char *path, uint64_t id, int timeout_ms,
                            const char *retry_text, const char *what, char **ret_error)
{
    int64_t deadline = vo_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        _cleanup_free_ char *err = NULL;
        int r = gateway(e, path, id_body(id), NULL, &err);
        if (r == 0)
            return 0;
        if (!err || !strstr(err, retry_text) || vo_now_ms() + RETRY_MS > deadline) {
            if (err && strstr(err, retry_text))
                return vo_error_set(ret_error, -ETIMEDOUT, "etcd member %" PRIx64 " %s within %d ms (%s)",
                                    id, what, timeout_ms, err);
            if (ret_error)
                *ret_error = TAKE_PTR(err);
            return r;
        }
        struct timespec ts = { .tv_nsec = RETRY_MS * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

int vo_etcd_member_promote(const VoEtcdEndpoint *e, uint64_t id, int timeout_ms, char **ret_error)
{
    return post_id_retrying(e, "/v3/cluster/member/promote", id, timeout_ms, NOT_IN_SYNC,
                            "was not in sync with the leader", ret_error);
}

int vo_etcd_member_remove(const VoEtcdEndpoint *e, uint64_t id, int timeout_ms, char **ret_error)
{
    return post_id_retrying(e, "/v3/cluster/member/remove", id, timeout_ms, UNHEALTHY,
                            "could not be removed without breaking the active quorum", ret_error);
}

int vo_etcd_endpoint_health(const VoEtcdEndpoint *e, char **ret_error)
{
    json_t *doc = NULL;
    int r = gateway(e, "/health", NULL, &doc, ret_error);
    if (r < 0)
        return r;
    const char *h = json_string_value(json_object_get(doc, "health"));
    r = h && !strcmp(h, "true") ? 0
                                : vo_error_set(ret_error, -EAGAIN, "etcd %s is not healthy (health: %s)",
                                               e->endpoint, h ? h : "missing");
    json_decref(doc);
    return r;
}
