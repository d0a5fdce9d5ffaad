/* store-etcd.c: the etcd backend of the store (store.h), spoken through
 * etcd 3.4's JSON gateway (POST /v3/kv/..., /v3/watch, /v3/lease/...) with
 * libcurl and jansson: key mapping into the vireo/ namespace, transactions
 * with the failing compare found from ranges in the failure branch, one
 * streaming watch per thread, leases as one POST per renewal, compaction,
 * reads without a quorum (serializable, marked stale; a probe sees it back).
 * docs/internals.md ("etcd backend") describes the mapping and quirks. */
#include "state/store.h"

#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "util/util.h"

#define DEFAULT_TIMEOUT_MS 8000
#define LIST_PAGE 500
#define MAX_IDLE_HANDLES 8
/* An answer (or one line of a watch stream) larger than this is refused
 * (-EMSGSIZE): a list halves its page then. */
#define MAX_ANSWER_BYTES (64u << 20)
/* What a watch queues for a caller that does not read: beyond it the watch
 * ends with VO_STORE_ECOMPACTED (changes lost; re-list). */
#define WATCH_MAX_QUEUED_BYTES (64u << 20)
#define WATCH_MAX_QUEUED_EVENTS 1000000u
/* A dead peer is noticed within seconds, not the kernel's ~10 minutes:
 * keepalive probes after 3 s idle, every 2 s; unacknowledged data gives up
 * after 10 s. */
#define TCP_KEEPIDLE_S 3L
#define TCP_KEEPINTVL_S 2L
#define TCP_USER_TIMEOUT_MS 10000
/* gRPC status codes the gateway answers with. */
#define GRPC_CANCELED 1
#define GRPC_INVALID_ARGUMENT 3
#define GRPC_DEADLINE_EXCEEDED 4
#define GRPC_NOT_FOUND 5
#define GRPC_RESOURCE_EXHAUSTED 8
#define GRPC_ABORTED 10
#define GRPC_OUT_OF_RANGE 11
#define GRPC_UNAVAILABLE 14
/* Once a quorum is known lost, a linearizable read is tried every
 * PROBE_EVERY_MS (each waiting at most PROBE_TIMEOUT_MS); reads answer
 * serializable meanwhile. A serializable read connects within
 * LOCAL_CONNECT_MS or tries the next endpoint. */
#define PROBE_EVERY_MS 1000
#define PROBE_TIMEOUT_MS 3000
#define LOCAL_CONNECT_MS 2000

/* What a request needs of etcd: a linearizable read or a write need a
 * quorum (their failure says it is lost; a read's success that it is
 * back), a serializable read only a member; the probe's own read changes
 * nothing itself. */
typedef enum { CALL_READ, CALL_WRITE, CALL_LOCAL, CALL_PROBE } CallKind;

/* Whether the cluster behind some endpoints has a quorum, as its handles
 * last saw it: shared by every handle opened on the same endpoints (a
 * daemon's host and raw handles), so one failure is paid once. */
typedef struct Quorum {
    struct Quorum *next;
    char *endpoints; /* the key: the normalized list */
    int refs;
    int64_t lost_since; /* unix ms; 0: not known lost (under quorum_lock) */
} Quorum;

static pthread_mutex_t quorum_lock = PTHREAD_MUTEX_INITIALIZER;
static Quorum *quorums;

typedef struct EtcdStore EtcdStore;

struct VoStoreWatch {
    EtcdStore *s;
    struct VoStoreWatch *next; /* in s->watches, under s->lock */
    char *prefix;              /* the caller's prefix (keys are reported with it) */
    char *ekey;                /* the etcd range watched */
    size_t ekey_len;
    char *eend;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Under lock. */
    VoStoreEvent *ev;
    size_t n, cap;
    size_t queued_bytes; /* of ev's strings */
    int64_t next_rev;    /* where the stream (re)starts: after the last event queued */
    bool stream_created; /* etcd answered this stream's create request */
    bool stream_checked; /* ... and its start is known not compacted */
    bool created;        /* ... and its start revision is known not compacted */
    int connect_error;   /* the first attempt failed (-errno) */
    bool compacted;      /* changes were lost to a compaction */
    bool canceled;       /* the store is closing */
    bool woken;
    bool stop;           /* the thread ends */
    CURLM *multi;        /* set before the watch is linked into s->watches */
    pthread_t thread;
    bool thread_started;
    /* The stream's partial line (the thread's own). */
    char *buf;
    size_t buf_len, buf_cap;
};

struct EtcdStore {
    VoStore base;
    char **endpoints;
    size_t n_endpoints;
    char *prefix; /* "vireo/h/<host-id>/" or "vireo/" */
    char *ca_file, *cert_file, *key_file;
    int timeout_ms;
    pthread_mutex_t lock;
    /* Under lock. */
    int refs; /* the handle, and each watch */
    bool closing;
    size_t endpoint; /* the one tried first */
    CURL *idle[MAX_IDLE_HANDLES];
    size_t n_idle;
    VoStoreWatch *watches;
    int64_t compacted; /* the last compaction revision known */
    Quorum *quorum;
    /* The probe thread (started when the quorum is lost, ends when it is
     * back or the handle closes; etcd_close joins it). Under lock. */
    pthread_cond_t probe_cond;
    pthread_t probe;
    bool probing, probe_joinable;
};

/* ---- encoding ---- */

static char *b64_encode(const char *data, size_t len)
{
    char *out = vo_malloc0(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
    return out;
}

/* Returns NUL-terminated bytes (length in *ret_len, may be NULL), or NULL
 * on bad input. */
static char *b64_decode(const char *in, size_t *ret_len)
{
    size_t n = strlen(in);
    if (n % 4)
        return NULL;
    char *out = vo_malloc0(n / 4 * 3 + 1);
    int k = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n) : 0;
    if (k < 0) {
        free(out);
        return NULL;
    }
    if (n >= 1 && in[n - 1] == '=')
        k--;
    if (n >= 2 && in[n - 2] == '=')
        k--;
    out[k] = '\0';
    if (ret_len)
        *ret_len = (size_t)k;
    return out;
}

static json_t *b64_json(const char *data, size_t len)
{
    char *e = b64_encode(data, len);
    json_t *j = json_string(e);
    free(e);
    return j;
}

/* The gateway sends int64 as strings and omits zeros. */
static int64_t json_i64(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    if (json_is_integer(v))
        return json_integer_value(v);
    return 0;
}

/* A base64 field decoded, or NULL (absent or bad). */
static char *json_b64(json_t *obj, const char *key, size_t *ret_len)
{
    const char *v = json_string_value(json_object_get(obj, key));
    if (!v) {
        if (ret_len)
            *ret_len = 0;
        return ret_len ? vo_strdup("") : NULL;
    }
    return b64_decode(v, ret_len);
}

/* ---- key mapping ---- */

static char *map_key(EtcdStore *s, const char *key)
{
    if (strcmp(s->prefix, "vireo/") != 0 && strncmp(key, "cluster/", 8) == 0)
        return vo_asprintf("vireo/%s", key);
    return vo_asprintf("%s%s", s->prefix, key);
}

/* The end of the range of keys starting with prefix (never empty here: the
 * mapped prefix starts with "vireo/"). */
static char *prefix_end(const char *prefix)
{
    char *end = vo_strdup(prefix);
    for (size_t i = strlen(end); i > 0; i--) {
        if ((unsigned char)end[i - 1] != 0xff) {
            end[i - 1]++;
            end[i] = '\0';
            return end;
        }
    }
    free(end);
    return vo_strdup("\0"); /* unreachable for "vireo/..." */
}

/* ---- requests ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
}

typedef struct {
    char *data;
    size_t len, cap;
    bool too_large; /* refused: beyond MAX_ANSWER_BYTES */
} Buf;

static size_t buf_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    Buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > MAX_ANSWER_BYTES) {
        b->too_large = true;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static CURL *handle_get(EtcdStore *s)
{
    pthread_mutex_lock(&s->lock);
    CURL *c = s->n_idle ? s->idle[--s->n_idle] : NULL;
    pthread_mutex_unlock(&s->lock);
    return c ? c : curl_easy_init();
}

static void handle_put(EtcdStore *s, CURL *c)
{
    pthread_mutex_lock(&s->lock);
    if (s->n_idle < MAX_IDLE_HANDLES && !s->closing) {
        s->idle[s->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (c)
        curl_easy_cleanup(c);
}

static void setup_handle(EtcdStore *s, CURL *c, const char *url, struct curl_slist *headers)
{
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)s->timeout_ms);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* TLS 1.2: etcd refuses a client certificate inside the handshake, so a
     * refusal is told apart from a lost connection (under 1.3 it comes after
     * it, as a broken connection or none). */
    curl_easy_setopt(c, CURLOPT_SSLVERSION,
                     (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
    if (s->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
    if (s->cert_file)
        curl_easy_setopt(c, CURLOPT_SSLCERT, s->cert_file);
    if (s->key_file)
        curl_easy_setopt(c, CURLOPT_SSLKEY, s->key_file);
}

static size_t endpoint_first(EtcdStore *s)
{
    pthread_mutex_lock(&s->lock);
    size_t e = s->endpoint;
    pthread_mutex_unlock(&s->lock);
    return e;
}

static void endpoint_failed(EtcdStore *s, size_t e)
{
    pthread_mutex_lock(&s->lock);
    if (s->endpoint == e)
        s->endpoint = (e + 1) % s->n_endpoints;
    pthread_mutex_unlock(&s->lock);
}

/* An error answer of the gateway ({"error","message","code"}) as -errno.
 * write: the request was a write, which such an answer does not prove
 * undone (etcd's "request timed out" may still commit): VO_STORE_EUNKNOWN. */
static int gateway_error(json_t *body, long http, const char *path, bool write)
{
    int64_t code = json_i64(body, "code");
    const char *msg = json_string_value(json_object_get(body, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(body, "error"));
    if (!msg)
        msg = "";
    log_debug("etcd %s: HTTP %ld, code %lld: %s", path, http, (long long)code, msg);
    switch (code) {
    case GRPC_OUT_OF_RANGE:
        if (strstr(msg, "compacted"))
            return VO_STORE_ECOMPACTED;
        return -EINVAL; /* a future revision */
    case GRPC_NOT_FOUND:
        return -ENOENT; /* a lease */
    case GRPC_INVALID_ARGUMENT:
        if (strstr(msg, "too many operations"))
            return -E2BIG;
        if (strstr(msg, "too large"))
            return -EMSGSIZE;
        return -EINVAL;
    case GRPC_RESOURCE_EXHAUSTED:
        if (strstr(msg, "space exceeded"))
            return -ENOSPC;
        return -EAGAIN; /* too many requests: refused before it was proposed */
    case GRPC_CANCELED:
    case GRPC_DEADLINE_EXCEEDED:
    case GRPC_ABORTED:
    case GRPC_UNAVAILABLE:
        /* no leader, no quorum, timed out: a write may be in the log */
        return write ? VO_STORE_EUNKNOWN : -EAGAIN;
    default:
        return http >= 500 ? (write ? VO_STORE_EUNKNOWN : -EAGAIN) : -EIO;
    }
}

/* A learner (a joiner's member not promoted yet) refuses all but
 * serializable reads, before anything is proposed: the next endpoint
 * takes the call. Unary and streamed (keepalive) answers say so alike. */
static bool learner_refused(json_t *body)
{
    json_t *err = json_object_get(body, "error");
    const char *msg = json_string_value(json_object_get(json_is_object(err) ? err : body,
                                                        "message"));
    if (!msg)
        msg = json_string_value(err);
    return msg && strstr(msg, "not supported for learner");
}

/* The server refused our certificate (or its absence): a TLS alert. */
static bool tls_refused(const char *errbuf)
{
    return strstr(errbuf, "certificate required") || strstr(errbuf, "bad certificate") ||
           strstr(errbuf, "unknown ca") || strstr(errbuf, "certificate unknown") ||
           strstr(errbuf, "handshake failure");
}

/* Whether curl may have sent (part of) the request before it failed. */
static bool request_sent(CURL *c, CURLcode cr)
{
    if (cr == CURLE_COULDNT_CONNECT || cr == CURLE_COULDNT_RESOLVE_HOST)
        return false;
    curl_off_t pre = 0;
    long sent = 0;
    curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME_T, &pre);
    curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &sent);
    return pre > 0 || sent > 0;
}

/* POSTs req (stolen) to path; 0 with the answer's JSON in *ret (the first
 * object of a streamed answer, unwrapped from "result"), or -errno. No
 * endpoint reachable, or no answer in time to a read: -EAGAIN. A write
 * (CALL_WRITE) sent but not answered (a timeout, a broken connection, or
 * etcd's own timeout): VO_STORE_EUNKNOWN, as it may have been applied.
 * What the outcome says of the quorum is noted (quorum_seen). */
static void quorum_seen(EtcdStore *s, CallKind kind, int r);

static int call_ex(EtcdStore *s, const char *path, json_t *req, CallKind kind, json_t **ret)
{
    bool write = kind == CALL_WRITE;
    /* A serializable read starts at the first endpoint (a voter's own
     * member) and does not move the others' choice. */
    bool local = kind == CALL_LOCAL;
    long timeout = kind == CALL_PROBE && s->timeout_ms > PROBE_TIMEOUT_MS ? PROBE_TIMEOUT_MS
                                                                           : s->timeout_ms;
    pthread_once(&curl_once, curl_init_once);
    _cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!body)
        return -ENOMEM;
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip for bodies over 1 KiB (a host
     * record with its CPU flags): it can cost up to a second. */
    headers = curl_slist_append(headers, "Expect:");
    CURL *c = handle_get(s);
    if (!c || !headers) {
        curl_slist_free_all(headers);
        if (c)
            curl_easy_cleanup(c);
        return -ENOMEM;
    }
    int r = -EAGAIN;
    char errbuf[CURL_ERROR_SIZE];
    size_t first = local ? 0 : endpoint_first(s);
    for (size_t i = 0; i < s->n_endpoints; i++) {
        size_t e = (first + i) % s->n_endpoints;
        _cleanup_free_ char *url = vo_asprintf("%s%s", s->endpoints[e], path);
        Buf b = { 0 };
        errbuf[0] = '\0';
        setup_handle(s, c, url, headers);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
        if (local || kind == CALL_PROBE)
            curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                             (long)(timeout < LOCAL_CONNECT_MS ? timeout : LOCAL_CONNECT_MS));
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        CURLcode cr = curl_easy_perform(c);
        if (cr != CURLE_OK) {
            free(b.data);
            if (b.too_large) {
                log_warn("etcd %s%s: answer larger than %u MiB refused", s->endpoints[e], path,
                         MAX_ANSWER_BYTES >> 20);
                r = -EMSGSIZE; /* only reads answer at length */
                break;
            }
            log_debug("etcd %s%s: %s (%s)", s->endpoints[e], path, curl_easy_strerror(cr),
                      errbuf);
            if (!local)
                endpoint_failed(s, e);
            /* Our own certificates are wrong: not a passing state. */
            if (cr == CURLE_PEER_FAILED_VERIFICATION || cr == CURLE_SSL_CERTPROBLEM ||
                cr == CURLE_SSL_CACERT_BADFILE || tls_refused(errbuf)) {
                log_warn("etcd %s: %s (%s)", s->endpoints[e], curl_easy_strerror(cr), errbuf);
                r = -EACCES;
                break;
            }
            /* Only a request that never reached etcd goes to the next one:
             * a write that timed out may still be applied. */
            if (!request_sent(c, cr))
                continue;
            r = write ? VO_STORE_EUNKNOWN : -EAGAIN;
            break;
        }
        long http = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
        json_error_t jerr;
        json_t *j = b.data ? json_loadb(b.data, b.len, JSON_DISABLE_EOF_CHECK, &jerr) : NULL;
        free(b.data);
        if (!json_is_object(j)) {
            json_decref(j);
            r = http >= 500 ? (write ? VO_STORE_EUNKNOWN : -EAGAIN) : -EBADMSG;
            break;
        }
        json_t *err = json_object_get(j, "error");
        if (learner_refused(j)) {
            log_debug("etcd %s%s: a learner: trying the next member", s->endpoints[e], path);
            json_decref(j);
            if (!local)
                endpoint_failed(s, e);
            r = -EAGAIN;
            continue;
        }
        if (http != 200 || json_is_object(err)) {
            r = gateway_error(json_is_object(err) ? err : j, http, path, write);
            json_decref(j);
            break;
        }
        json_t *result = json_object_get(j, "result");
        if (json_is_object(result)) {
            json_incref(result);
            json_decref(j);
            j = result;
        }
        *ret = j;
        r = 0;
        break;
    }
    curl_slist_free_all(headers);
    handle_put(s, c);
    quorum_seen(s, kind, r);
    return r;
}

static int call(EtcdStore *s, const char *path, json_t *req, json_t **ret)
{
    return call_ex(s, path, req, CALL_READ, ret);
}

static int call_write(EtcdStore *s, const char *path, json_t *req, json_t **ret)
{
    return call_ex(s, path, req, CALL_WRITE, ret);
}

/* ---- quorum ---- */

static json_t *range_request(const char *key, size_t key_len, const char *end, int64_t rev);

static int64_t quorum_lost_since(EtcdStore *s)
{
    pthread_mutex_lock(&quorum_lock);
    int64_t since = s->quorum->lost_since;
    pthread_mutex_unlock(&quorum_lock);
    return since;
}

static void quorum_back(EtcdStore *s)
{
    pthread_mutex_lock(&quorum_lock);
    int64_t since = s->quorum->lost_since;
    s->quorum->lost_since = 0;
    pthread_mutex_unlock(&quorum_lock);
    if (since)
        log_info("etcd: the cluster has a quorum again (lost for %lld s); reads are "
                 "linearizable again",
                 (long long)((vo_wall_ms() - since) / 1000));
}

static void *probe_thread(void *userdata)
{
    EtcdStore *s = userdata;
    pthread_mutex_lock(&s->lock);
    while (!s->closing) {
        struct timespec until = vo_deadline_ms(CLOCK_MONOTONIC, PROBE_EVERY_MS);
        pthread_cond_timedwait(&s->probe_cond, &s->lock, &until);
        if (s->closing)
            break;
        pthread_mutex_unlock(&s->lock);
        int r = 0; /* another handle's read may have seen it back */
        if (quorum_lost_since(s) != 0) {
            json_t *req = range_request(s->prefix, strlen(s->prefix), NULL, 0);
            json_object_set_new(req, "count_only", json_true());
            json_t *ans = NULL;
            r = call_ex(s, "/v3/kv/range", req, CALL_PROBE, &ans);
            json_decref(ans);
        }
        pthread_mutex_lock(&s->lock);
        /* Back. A loss noted since then found this probe still running and
         * started none (probe_start_locked): then this one goes on. */
        if (r == 0 && quorum_lost_since(s) == 0)
            break;
    }
    s->probing = false;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Starts this handle's probe unless one runs. Under s->lock. */
static void probe_start_locked(EtcdStore *s)
{
    if (s->probing || s->closing)
        return;
    if (s->probe_joinable) { /* a finished one: joined by this thread alone */
        pthread_t done = s->probe;
        s->probe_joinable = false;
        pthread_mutex_unlock(&s->lock);
        pthread_join(done, NULL);
        pthread_mutex_lock(&s->lock);
        if (s->probing || s->probe_joinable || s->closing)
            return;
    }
    if (pthread_create(&s->probe, NULL, probe_thread, s) == 0)
        s->probing = s->probe_joinable = true;
}

/* What a request's outcome says of the quorum: a linearizable read or a
 * write that got no answer (-EAGAIN, VO_STORE_EUNKNOWN: etcd's own timeout
 * or ours) marks it lost, a linearizable read answered marks it back (a
 * write does not: an isolated 3.4 leader renews leases by itself). */
static void quorum_seen(EtcdStore *s, CallKind kind, int r)
{
    if (kind == CALL_LOCAL)
        return;
    if (r == 0 && (kind == CALL_READ || kind == CALL_PROBE)) {
        quorum_back(s);
        return;
    }
    if (kind == CALL_PROBE || (r != -EAGAIN && r != VO_STORE_EUNKNOWN))
        return;
    pthread_mutex_lock(&quorum_lock);
    bool news = s->quorum->lost_since == 0;
    if (news)
        s->quorum->lost_since = vo_wall_ms();
    pthread_mutex_unlock(&quorum_lock);
    if (news)
        log_warn("etcd: no quorum (a %s got no answer); reads answer from a member, possibly "
                 "stale, until a quorum answers again",
                 kind == CALL_WRITE ? "write" : "linearizable read");
    pthread_mutex_lock(&s->lock);
    probe_start_locked(s);
    pthread_mutex_unlock(&s->lock);
}

/* A read (req stolen): linearizable while the quorum is not known lost;
 * without one, serializable (from a member), noted as stale in the
 * calling thread. */
static int call_read(EtcdStore *s, const char *path, json_t *req, json_t **ret)
{
    int r = -EAGAIN;
    if (quorum_lost_since(s) == 0) {
        r = call(s, path, json_incref(req), ret);
        if (r != -EAGAIN) {
            json_decref(req);
            return r;
        }
    }
    json_object_set_new(req, "serializable", json_true());
    r = call_ex(s, path, req, CALL_LOCAL, ret);
    if (r == 0) {
        int64_t since = quorum_lost_since(s);
        /* Lost and back in between: this answer is still a member's. */
        vo_store_stale_note(since ? since : vo_wall_ms());
        /* Make sure someone watches for the quorum's return. */
        pthread_mutex_lock(&s->lock);
        probe_start_locked(s);
        pthread_mutex_unlock(&s->lock);
    }
    return r;
}

static int64_t etcd_stale_since(VoStore *base)
{
    return quorum_lost_since((EtcdStore *)base);
}

static int etcd_request_timeout_ms(VoStore *base)
{
    EtcdStore *s = (EtcdStore *)base;
    int64_t ms = (int64_t)s->timeout_ms * (int64_t)(s->n_endpoints ? s->n_endpoints : 1);
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static Quorum *quorum_ref(const char *endpoints)
{
    pthread_mutex_lock(&quorum_lock);
    Quorum *q = quorums;
    while (q && strcmp(q->endpoints, endpoints) != 0)
        q = q->next;
    if (!q) {
        q = vo_malloc0(sizeof(*q));
        q->endpoints = vo_strdup(endpoints);
        q->next = quorums;
        quorums = q;
    }
    q->refs++;
    pthread_mutex_unlock(&quorum_lock);
    return q;
}

static void quorum_unref(Quorum *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&quorum_lock);
    if (--q->refs == 0) {
        for (Quorum **p = &quorums; *p; p = &(*p)->next)
            if (*p == q) {
                *p = q->next;
                break;
            }
        free(q->endpoints);
        free(q);
    }
    pthread_mutex_unlock(&quorum_lock);
}

static int64_t header_rev(json_t *answer)
{
    return json_i64(json_object_get(answer, "header"), "revision");
}

/* A range of one etcd key (or [key, end)) as of rev (0: now). */
static json_t *range_request(const char *key, size_t key_len, const char *end, int64_t rev)
{
    json_t *req = json_object();
    json_object_set_new(req, "key", b64_json(key, key_len));
    if (end)
        json_object_set_new(req, "range_end", b64_json(end, strlen(end)));
    if (rev > 0)
        json_object_set_new(req, "revision", json_integer(rev));
    return req;
}

/* 0 when the store still holds revision rev, VO_STORE_ECOMPACTED when a
 * compaction dropped it (a range at rev says so), else -errno. */
static int probe_rev(EtcdStore *s, int64_t rev)
{
    json_t *req = range_request(s->prefix, strlen(s->prefix), NULL, rev);
    json_object_set_new(req, "count_only", json_true());
    json_t *ans = NULL;
    int r = call(s, "/v3/kv/range", req, &ans);
    json_decref(ans);
    return r == -EINVAL ? 0 : r; /* a future revision: not compacted */
}

/* ---- reads ---- */

static int etcd_get(VoStore *base, const char *key, char **ret_value, int64_t *ret_rev)
{
    EtcdStore *s = (EtcdStore *)base;
    if (!key)
        return -EINVAL;
    if (ret_value)
        *ret_value = NULL;
    _cleanup_free_ char *ek = map_key(s, key);
    json_t *ans = NULL;
    int r = call_read(s, "/v3/kv/range", range_request(ek, strlen(ek), NULL, 0), &ans);
    if (r < 0)
        return r;
    json_t *kv = json_array_get(json_object_get(ans, "kvs"), 0);
    if (!kv) {
        json_decref(ans);
        return -ENOENT;
    }
    if (ret_value && !(*ret_value = json_b64(kv, "value", &(size_t){ 0 }))) {
        json_decref(ans);
        return -EBADMSG;
    }
    if (ret_rev)
        *ret_rev = json_i64(kv, "mod_revision");
    json_decref(ans);
    return 0;
}

static int etcd_list(VoStore *base, const char *prefix, VoStoreListFn fn, void *userdata,
                     int64_t *ret_rev)
{
    EtcdStore *s = (EtcdStore *)base;
    if (!prefix || !fn)
        return -EINVAL;
    _cleanup_free_ char *ek = map_key(s, prefix);
    _cleanup_free_ char *end = prefix_end(ek);
    size_t ek_len = strlen(ek);
    _cleanup_free_ char *from = vo_strdup(ek);
    size_t from_len = ek_len;
    int64_t rev = 0, page = LIST_PAGE;
    for (;;) {
        /* Later pages read at the first page's revision: one snapshot. */
        json_t *req = range_request(from, from_len, end, rev);
        json_object_set_new(req, "limit", json_integer(page));
        json_t *ans = NULL;
        int r = call_read(s, "/v3/kv/range", req, &ans);
        if (r == -EMSGSIZE && page > 1) {
            page /= 2; /* large documents: fewer at a time */
            continue;
        }
        if (r == VO_STORE_ECOMPACTED)
            r = -EAGAIN; /* compacted between pages: walk again */
        if (r < 0)
            return r;
        if (rev == 0) {
            rev = header_rev(ans);
            if (ret_rev)
                *ret_rev = rev;
        }
        json_t *kvs = json_object_get(ans, "kvs");
        size_t i;
        json_t *kv;
        json_array_foreach(kvs, i, kv) {
            size_t klen = 0;
            _cleanup_free_ char *k = json_b64(kv, "key", &klen);
            _cleanup_free_ char *v = json_b64(kv, "value", &(size_t){ 0 });
            if (!k || !v || klen < ek_len || memcmp(k, ek, ek_len) != 0) {
                json_decref(ans);
                return -EBADMSG;
            }
            _cleanup_free_ char *key = vo_asprintf("%s%s", prefix, k + ek_len);
            r = fn(key, v, json_i64(kv, "mod_revision"), userdata);
            if (r != 0) {
                json_decref(ans);
                return r;
            }
            if (i + 1 == json_array_size(kvs)) {
                /* The next page starts just after this key. */
                free(from);
                from = vo_malloc0(klen + 2);
                memcpy(from, k, klen);
                from_len = klen + 1;
            }
        }
        bool more = json_is_true(json_object_get(ans, "more")) && json_array_size(kvs) > 0;
        json_decref(ans);
        if (!more)
            return 0;
    }
}

static int etcd_revision(VoStore *base, int64_t *ret_rev)
{
    EtcdStore *s = (EtcdStore *)base;
    if (!ret_rev)
        return -EINVAL;
    json_t *req = range_request(s->prefix, strlen(s->prefix), NULL, 0);
    json_object_set_new(req, "count_only", json_true());
    json_t *ans = NULL;
    int r = call(s, "/v3/kv/range", req, &ans);
    if (r < 0)
        return r;
    *ret_rev = header_rev(ans);
    json_decref(ans);
    return 0;
}

/* ---- transactions ---- */

/* Which compare failed: the failure branch read every compared key at the
 * transaction's revision (etcd does not say which compare was false). */
static int failed_compare(const VoStoreCompare *cmps, size_t n_cmps, json_t *ans,
                          size_t *ret_failed)
{
    json_t *responses = json_object_get(ans, "responses");
    for (size_t i = 0; i < n_cmps; i++) {
        json_t *range = json_object_get(json_array_get(responses, i), "response_range");
        json_t *kv = json_array_get(json_object_get(range, "kvs"), 0);
        int r = 0;
        if (cmps[i].expected_rev == VO_REV_NEW)
            r = kv ? -EEXIST : 0;
        else if (!kv)
            r = -ENOENT;
        else if (json_i64(kv, "mod_revision") != cmps[i].expected_rev)
            r = -ESTALE;
        if (r < 0) {
            if (ret_failed)
                *ret_failed = i;
            return r;
        }
    }
    return -ESTALE; /* not reached: a compare was false */
}

static int etcd_txn(VoStore *base, const VoStoreCompare *cmps, size_t n_cmps,
                    const VoStoreOp *ops, size_t n_ops, int64_t *ret_rev, size_t *ret_failed)
{
    EtcdStore *s = (EtcdStore *)base;
    if ((n_cmps && !cmps) || (n_ops && !ops))
        return -EINVAL;
    if (n_cmps > VO_STORE_ETCD_MAX_TXN_OPS || n_ops > VO_STORE_ETCD_MAX_TXN_OPS)
        return -E2BIG;
    for (size_t i = 0; i < n_cmps; i++)
        if (!cmps[i].key || cmps[i].expected_rev < VO_REV_NEW)
            return -EINVAL;
    for (size_t i = 0; i < n_ops; i++) {
        if (!ops[i].key || ops[i].lease < 0 ||
            (ops[i].kind == VO_STORE_PUT && !ops[i].value) ||
            (ops[i].kind != VO_STORE_PUT && ops[i].kind != VO_STORE_DELETE))
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(ops[i].key, ops[j].key) == 0)
                return -EINVAL;
    }

    json_t *compare = json_array(), *success = json_array(), *failure = json_array();
    for (size_t i = 0; i < n_cmps; i++) {
        _cleanup_free_ char *ek = map_key(s, cmps[i].key);
        json_t *c = json_object();
        json_object_set_new(c, "key", b64_json(ek, strlen(ek)));
        json_object_set_new(c, "result", json_string("EQUAL"));
        if (cmps[i].expected_rev == VO_REV_NEW) {
            json_object_set_new(c, "target", json_string("CREATE"));
            json_object_set_new(c, "create_revision", json_integer(0));
        } else {
            json_object_set_new(c, "target", json_string("MOD"));
            json_object_set_new(c, "mod_revision", json_integer(cmps[i].expected_rev));
        }
        json_array_append_new(compare, c);
        json_t *rr = range_request(ek, strlen(ek), NULL, 0);
        json_object_set_new(rr, "keys_only", json_true());
        json_array_append_new(failure, json_pack("{s:o}", "request_range", rr));
    }
    for (size_t i = 0; i < n_ops; i++) {
        _cleanup_free_ char *ek = map_key(s, ops[i].key);
        json_t *o = json_object();
        json_object_set_new(o, "key", b64_json(ek, strlen(ek)));
        if (ops[i].kind == VO_STORE_PUT) {
            json_object_set_new(o, "value", b64_json(ops[i].value, strlen(ops[i].value)));
            if (ops[i].lease)
                json_object_set_new(o, "lease", json_integer(ops[i].lease));
            json_array_append_new(success, json_pack("{s:o}", "request_put", o));
        } else {
            json_array_append_new(success, json_pack("{s:o}", "request_delete_range", o));
        }
    }
    json_t *req = json_pack("{s:o, s:o, s:o}", "compare", compare, "success", success,
                            "failure", failure);
    json_t *ans = NULL;
    int r = call_write(s, "/v3/kv/txn", req, &ans);
    /* A put's lease is unknown (expired): not a compare, nothing written. */
    if (r == -ENOENT)
        return -EKEYEXPIRED;
    if (r < 0)
        return r;
    if (json_is_true(json_object_get(ans, "succeeded"))) {
        if (ret_rev)
            *ret_rev = header_rev(ans);
        r = 0;
    } else {
        r = failed_compare(cmps, n_cmps, ans, ret_failed);
    }
    json_decref(ans);
    return r;
}

/* ---- watches ---- */

/* The watch lost changes (a compaction, or its caller fell too far behind):
 * it ends, and watch_next says VO_STORE_ECOMPACTED once the queue is read.
 * Under w->lock. */
static void watch_lost(VoStoreWatch *w)
{
    w->compacted = true;
    pthread_cond_broadcast(&w->cond);
}

static void watch_queue_event(VoStoreWatch *w, json_t *e)
{
    json_t *kv = json_object_get(e, "kv"), *prev = json_object_get(e, "prev_kv");
    size_t klen = 0;
    _cleanup_free_ char *k = json_b64(kv, "key", &klen);
    if (!k || klen < w->ekey_len || memcmp(k, w->ekey, w->ekey_len) != 0)
        return;
    const char *type = json_string_value(json_object_get(e, "type"));
    bool del = type && !strcmp(type, "DELETE");
    size_t vlen = 0, plen = 0;
    VoStoreEvent ev = {
        .rev = json_i64(kv, "mod_revision"),
        .kind = del ? VO_STORE_DELETE : VO_STORE_PUT,
        .key = vo_asprintf("%s%s", w->prefix, k + w->ekey_len),
        .value = del ? NULL : json_b64(kv, "value", &vlen),
        .prev_value = json_is_object(prev) ? json_b64(prev, "value", &plen) : NULL,
    };
    w->queued_bytes += strlen(ev.key) + vlen + plen;
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        VoStoreEvent *n = realloc(w->ev, w->cap * sizeof(*n));
        if (!n)
            abort();
        w->ev = n;
    }
    w->ev[w->n++] = ev;
}

/* For a log line. */
static const char *json_dumps_or(json_t *res)
{
    const char *reason = json_string_value(json_object_get(res, "cancel_reason"));
    return reason ? reason : "";
}

/* One line of the stream ({"result":{...}}), under w->lock. false: the
 * stream is no good (an error, a cancel, a full queue): end it. */
static bool watch_line(VoStoreWatch *w, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb(line, len, 0, &jerr);
    json_t *res = json_object_get(j, "result");
    bool ok = json_is_object(res);
    bool created = ok && json_is_true(json_object_get(res, "created"));
    if (created)
        w->stream_created = true;
    if (ok && json_is_true(json_object_get(res, "canceled"))) {
        if (json_i64(res, "compact_revision") > 0)
            watch_lost(w);
        else
            log_debug("etcd watch on '%s' canceled: %s", w->prefix,
                      json_dumps_or(res));
        ok = false;
    }
    json_t *events = json_object_get(res, "events");
    if (ok && json_array_size(events) > 0) {
        size_t i;
        json_t *e;
        int64_t last = 0;
        json_array_foreach(events, i, e) {
            watch_queue_event(w, e);
            last = json_i64(json_object_get(e, "kv"), "mod_revision");
        }
        /* A revision's events come in one answer: resume after it. */
        if (last >= w->next_rev)
            w->next_rev = last + 1;
        if (w->queued_bytes > WATCH_MAX_QUEUED_BYTES || w->n > WATCH_MAX_QUEUED_EVENTS) {
            log_warn("etcd watch on '%s': %zu changes (%zu bytes) not read: dropping it",
                     w->prefix, w->n, w->queued_bytes);
            watch_lost(w);
            ok = false;
        }
    } else if (ok && !created && w->stream_checked) {
        /* A progress notice: every change up to its revision was sent. */
        int64_t rev = header_rev(res);
        if (rev >= w->next_rev)
            w->next_rev = rev + 1;
    }
    json_decref(j);
    pthread_cond_broadcast(&w->cond);
    return ok;
}

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    VoStoreWatch *w = userdata;
    size_t n = size * nmemb;
    Buf b = { w->buf, w->buf_len, w->buf_cap, false };
    size_t k = buf_write(ptr, 1, n, &b);
    w->buf = b.data;
    w->buf_len = b.len;
    w->buf_cap = b.cap;
    if (k != n) {
        log_warn("etcd watch on '%s': a line beyond %u MiB: dropping it", w->prefix,
                 MAX_ANSWER_BYTES >> 20);
        pthread_mutex_lock(&w->lock);
        watch_lost(w);
        pthread_mutex_unlock(&w->lock);
        return 0;
    }
    size_t start = 0;
    bool ok = true;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->buf_len && ok; i++) {
        if (w->buf[i] != '\n')
            continue;
        if (i > start)
            ok = watch_line(w, w->buf + start, i - start);
        start = i + 1;
    }
    bool stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    memmove(w->buf, w->buf + start, w->buf_len - start);
    w->buf_len -= start;
    return ok && !stop ? n : 0;
}

/* A dead peer (its host gone, no RST) breaks the stream within seconds. */
static int watch_sockopt(void *userdata, curl_socket_t fd, curlsocktype purpose)
{
    (void)userdata;
    if (purpose == CURLSOCKTYPE_IPCXN) {
        unsigned int ms = TCP_USER_TIMEOUT_MS;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
    }
    return CURL_SOCKOPT_OK;
}

/* etcd starts a watch at a compaction revision C although the delete at C
 * is gone (it cancels only one that starts before C): a range at start - 1
 * decides (it fails once start - 1 < C). 0: nothing lost. */
static int watch_check_start(VoStoreWatch *w, int64_t start)
{
    return start > 1 ? probe_rev(w->s, start - 1) : 0;
}

/* One streaming POST /v3/watch from w->next_rev until it ends or stop. */
static void watch_stream(VoStoreWatch *w, size_t e)
{
    EtcdStore *s = w->s;
    pthread_mutex_lock(&w->lock);
    int64_t start = w->next_rev;
    w->stream_created = w->stream_checked = false;
    json_t *create = range_request(w->ekey, w->ekey_len, w->eend, 0);
    json_object_set_new(create, "start_revision", json_integer(start));
    json_object_set_new(create, "prev_kv", json_true());
    json_object_set_new(create, "progress_notify", json_true());
    pthread_mutex_unlock(&w->lock);
    json_t *req = json_pack("{s:o}", "create_request", create);
    _cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    _cleanup_free_ char *url = vo_asprintf("%s/v3/watch", s->endpoints[e]);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* A member that lost its leader cancels the watch (it would go quiet). */
    struct curl_slist *h2 = headers ? curl_slist_append(headers, "Grpc-Metadata-hasleader: true")
                                    : NULL;
    if (h2)
        headers = h2;
    CURL *c = curl_easy_init();
    if (!c || !h2 || !body) {
        curl_slist_free_all(headers);
        if (c)
            curl_easy_cleanup(c);
        return;
    }
    setup_handle(s, c, url, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, TCP_KEEPIDLE_S);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, TCP_KEEPINTVL_S);
    curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, watch_sockopt);
    w->buf_len = 0;
    curl_multi_add_handle(w->multi, c);
    int running = 1;
    bool checked = false, lost = false;
    for (;;) {
        curl_multi_perform(w->multi, &running);
        int left;
        while (curl_multi_info_read(w->multi, &left))
            ; /* the end is !running; how it ended changes nothing */
        pthread_mutex_lock(&w->lock);
        bool stop = w->stop || w->compacted, created = w->stream_created;
        pthread_mutex_unlock(&w->lock);
        if (!running || stop)
            break;
        if (created && !checked) {
            int k = watch_check_start(w, start);
            pthread_mutex_lock(&w->lock);
            if (k == VO_STORE_ECOMPACTED) {
                /* Changes before this stream's are whole; its own follow a gap. */
                size_t keep = 0;
                while (keep < w->n && w->ev[keep].rev < start)
                    keep++;
                for (size_t i = keep; i < w->n; i++) {
                    free(w->ev[i].key);
                    free(w->ev[i].value);
                    free(w->ev[i].prev_value);
                }
                w->n = keep;
                watch_lost(w);
                lost = true;
            } else if (k < 0) {
                /* Unchecked: this stream's changes come again from start. */
                size_t keep = 0;
                while (keep < w->n && w->ev[keep].rev < start)
                    keep++;
                for (size_t i = keep; i < w->n; i++) {
                    free(w->ev[i].key);
                    free(w->ev[i].value);
                    free(w->ev[i].prev_value);
                }
                w->n = keep;
                w->next_rev = start;
                if (!w->created && !w->connect_error)
                    w->connect_error = k;
            } else {
                w->created = w->stream_checked = true;
            }
            pthread_cond_broadcast(&w->cond);
            pthread_mutex_unlock(&w->lock);
            if (k < 0)
                break; /* lost, or unknown: a new stream checks again */
            checked = true;
            continue;
        }
        curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
    }
    curl_multi_remove_handle(w->multi, c);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    pthread_mutex_lock(&w->lock);
    if (!w->created && !w->connect_error && !w->compacted)
        w->connect_error = -EAGAIN;
    bool stop = w->stop;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    /* A stream that failed or was canceled (a member without a leader, say)
     * tries the next endpoint. */
    if (!stop && !lost)
        endpoint_failed(s, e);
}

/* Waits up to ms for stop (or cond), under w->lock. */
static void timed_wait(VoStoreWatch *w, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w->cond, &w->lock, &ts);
}

static void *watch_thread(void *userdata)
{
    VoStoreWatch *w = userdata;
    for (;;) {
        watch_stream(w, endpoint_first(w->s));
        pthread_mutex_lock(&w->lock);
        /* A broken stream (etcd restarted, a member lost) resumes where it
         * ended (checked against compaction again); a compaction or stop
         * ends the watch. */
        if (!w->stop && !w->compacted)
            timed_wait(w, 500);
        bool done = w->stop || w->compacted;
        pthread_mutex_unlock(&w->lock);
        if (done)
            return NULL;
    }
}

static void watch_stop(VoStoreWatch *w)
{
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (w->multi)
        curl_multi_wakeup(w->multi);
}

static void store_unref(EtcdStore *s);

static void etcd_watch_close(VoStoreWatch *w)
{
    if (!w)
        return;
    watch_stop(w);
    if (w->thread_started)
        pthread_join(w->thread, NULL);
    EtcdStore *s = w->s;
    pthread_mutex_lock(&s->lock);
    for (VoStoreWatch **p = &s->watches; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    pthread_mutex_unlock(&s->lock);
    if (w->multi)
        curl_multi_cleanup(w->multi);
    vo_store_events_free(w->ev, w->n);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w->buf);
    free(w->prefix);
    free(w->ekey);
    free(w->eend);
    free(w);
    store_unref(s);
}

static int etcd_watch_open(VoStore *base, const char *prefix, int64_t after_rev,
                           VoStoreWatch **ret)
{
    EtcdStore *s = (EtcdStore *)base;
    if (!prefix || after_rev < 0 || !ret)
        return -EINVAL;
    pthread_once(&curl_once, curl_init_once);
    VoStoreWatch *w = vo_malloc0(sizeof(*w));
    w->s = s;
    w->prefix = vo_strdup(prefix);
    w->ekey = map_key(s, prefix);
    w->ekey_len = strlen(w->ekey);
    w->eend = prefix_end(w->ekey);
    w->next_rev = after_rev + 1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    w->multi = curl_multi_init();
    pthread_mutex_lock(&s->lock);
    bool closing = s->closing;
    if (!closing) {
        s->refs++;
        w->next = s->watches;
        s->watches = w;
    }
    pthread_mutex_unlock(&s->lock);
    if (closing) {
        if (w->multi)
            curl_multi_cleanup(w->multi);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w->prefix);
        free(w->ekey);
        free(w->eend);
        free(w);
        return -ECANCELED;
    }

    int r = 0;
    if (!w->multi || pthread_create(&w->thread, NULL, watch_thread, w) != 0)
        r = -ENOMEM;
    else
        w->thread_started = true;
    /* Wait for etcd to take the watch, so it sees every later change (and
     * for the thread's check that after_rev is not compacted). */
    int64_t give_up = vo_now_ms() + s->timeout_ms;
    pthread_mutex_lock(&w->lock);
    while (r == 0 && !w->created && !w->compacted && !w->connect_error && !w->canceled &&
           vo_now_ms() < give_up)
        timed_wait(w, (int)(give_up - vo_now_ms()));
    if (r == 0 && !w->created && !w->compacted)
        r = w->canceled ? -ECANCELED : w->connect_error < 0 ? w->connect_error : -EAGAIN;
    pthread_mutex_unlock(&w->lock);
    if (r < 0) {
        etcd_watch_close(w);
        return r;
    }
    *ret = w;
    return 0;
}

static int etcd_watch_next(VoStoreWatch *w, int timeout_ms, VoStoreEvent **ret_events,
                           size_t *ret_n)
{
    if (!w || !ret_events || !ret_n)
        return -EINVAL;
    *ret_events = NULL;
    *ret_n = 0;
    int64_t give_up = vo_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&w->lock);
    for (;;) {
        if (w->canceled) {
            pthread_mutex_unlock(&w->lock);
            return -ECANCELED;
        }
        if (w->n > 0) {
            *ret_events = w->ev;
            *ret_n = w->n;
            w->ev = NULL;
            w->n = w->cap = 0;
            w->queued_bytes = 0;
            break;
        }
        if (w->compacted) {
            pthread_mutex_unlock(&w->lock);
            return VO_STORE_ECOMPACTED;
        }
        int64_t left = give_up - vo_now_ms();
        if (w->woken || left <= 0)
            break;
        timed_wait(w, (int)(left > 600000 ? 600000 : left));
    }
    w->woken = false;
    pthread_mutex_unlock(&w->lock);
    return 0;
}

static void etcd_watch_wake(VoStoreWatch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->woken = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* ---- leases ---- */

static int etcd_lease_grant(VoStore *base, int ttl_ms, int64_t *ret_lease)
{
    EtcdStore *s = (EtcdStore *)base;
    if (ttl_ms <= 0 || !ret_lease)
        return -EINVAL;
    json_t *ans = NULL;
    int r = call_write(s, "/v3/lease/grant", json_pack("{s:I}", "TTL", (json_int_t)((ttl_ms + 999) / 1000)),
                 &ans);
    if (r < 0)
        return r;
    *ret_lease = json_i64(ans, "ID");
    const char *err = json_string_value(json_object_get(ans, "error"));
    json_decref(ans);
    return *ret_lease > 0 && !(err && *err) ? 0 : -EIO;
}

static int etcd_lease_keepalive(VoStore *base, int64_t lease)
{
    EtcdStore *s = (EtcdStore *)base;
    if (lease <= 0)
        return -EINVAL;
    json_t *ans = NULL;
    int r = call_write(s, "/v3/lease/keepalive", json_pack("{s:I}", "ID", (json_int_t)lease), &ans);
    if (r < 0)
        return r;
    /* An expired or unknown lease answers without a TTL. */
    r = json_i64(ans, "TTL") > 0 ? 0 : -ENOENT;
    json_decref(ans);
    return r;
}

static int etcd_lease_revoke(VoStore *base, int64_t lease)
{
    EtcdStore *s = (EtcdStore *)base;
    if (lease <= 0)
        return -EINVAL;
    json_t *ans = NULL;
    int r = call_write(s, "/v3/lease/revoke", json_pack("{s:I}", "ID", (json_int_t)lease), &ans);
    json_decref(ans);
    return r;
}

/* ---- compaction ---- */

static int etcd_compact(VoStore *base, int64_t rev)
{
    EtcdStore *s = (EtcdStore *)base;
    if (rev <= 0)
        return -EINVAL;
    json_t *ans = NULL;
    /* physical: answered once the log is dropped for good. */
    int r = call_write(s, "/v3/kv/compaction",
                       json_pack("{s:I, s:b}", "revision", (json_int_t)rev, "physical", 1), &ans);
    json_decref(ans);
    if (r == VO_STORE_ECOMPACTED)
        return 0; /* already compacted past rev */
    if (r < 0)
        return r;
    pthread_mutex_lock(&s->lock);
    if (rev > s->compacted)
        s->compacted = rev;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* etcd does not report its compaction revision C; a range at revision r
 * fails exactly when r < C, so C is the lowest revision a range still
 * reads (searched from the last one known; it only grows). */
static int etcd_compacted(VoStore *base, int64_t *ret_rev)
{
    EtcdStore *s = (EtcdStore *)base;
    if (!ret_rev)
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    int64_t known = s->compacted;
    pthread_mutex_unlock(&s->lock);
    int r = probe_rev(s, known > 0 ? known : 1);
    if (r == 0) {
        *ret_rev = known; /* 0 when a range at 1 works: nothing to resume from is lost */
        return 0;
    }
    if (r != VO_STORE_ECOMPACTED)
        return r;
    int64_t lo = (known > 0 ? known : 1) + 1, hi = 0;
    if ((r = etcd_revision(base, &hi)) < 0)
        return r;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        r = probe_rev(s, mid);
        if (r == 0)
            hi = mid;
        else if (r == VO_STORE_ECOMPACTED)
            lo = mid + 1;
        else
            return r;
    }
    pthread_mutex_lock(&s->lock);
    if (hi > s->compacted)
        s->compacted = hi;
    pthread_mutex_unlock(&s->lock);
    *ret_rev = hi;
    return 0;
}

/* ---- open and close ---- */

static void store_free(EtcdStore *s)
{
    for (size_t i = 0; i < s->n_idle; i++)
        curl_easy_cleanup(s->idle[i]);
    vo_strv_free(s->endpoints);
    free(s->prefix);
    free(s->ca_file);
    free(s->cert_file);
    free(s->key_file);
    quorum_unref(s->quorum);
    pthread_cond_destroy(&s->probe_cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void store_unref(EtcdStore *s)
{
    pthread_mutex_lock(&s->lock);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (last)
        store_free(s);
}

/* Watches still open see -ECANCELED from now on (their threads end); the
 * store's memory goes with the last of them. */
static void etcd_close(VoStore *base)
{
    EtcdStore *s = (EtcdStore *)base;
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    for (VoStoreWatch *w = s->watches; w; w = w->next) {
        pthread_mutex_lock(&w->lock);
        w->canceled = true;
        w->stop = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        if (w->multi)
            curl_multi_wakeup(w->multi);
    }
    pthread_cond_broadcast(&s->probe_cond);
    bool join = s->probe_joinable;
    s->probe_joinable = false;
    pthread_mutex_unlock(&s->lock);
    if (join) /* ends within its read's timeout (PROBE_TIMEOUT_MS) */
        pthread_join(s->probe, NULL);
    store_unref(s);
}

static const VoStoreOps etcd_ops = {
    .name = "etcd",
    .unavailable_message = "cluster has no quorum",
    .unknown_message = "cluster has no quorum or did not answer in time: the change may or may "
                       "not have been made; read it before trying again",
    .close = etcd_close,
    .get = etcd_get,
    .list = etcd_list,
    .txn = etcd_txn,
    .revision = etcd_revision,
    .watch_open = etcd_watch_open,
    .watch_next = etcd_watch_next,
    .watch_wake = etcd_watch_wake,
    .watch_close = etcd_watch_close,
    .lease_grant = etcd_lease_grant,
    .lease_keepalive = etcd_lease_keepalive,
    .lease_revoke = etcd_lease_revoke,
    .compact = etcd_compact,
    .compacted = etcd_compacted,
    .stale_since = etcd_stale_since,
    .request_timeout_ms = etcd_request_timeout_ms,
};

int vo_store_open_etcd(const VoEtcdOptions *o, VoStore **ret)
{
    if (!o || !o->endpoints || !ret || o->timeout_ms < 0)
        return -EINVAL;
    if (o->host_id && (!*o->host_id || strchr(o->host_id, '/')))
        return -EINVAL;
    EtcdStore *s = vo_malloc0(sizeof(*s));
    s->base.ops = &etcd_ops;
    s->refs = 1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->probe_cond, &attr);
    pthread_condattr_destroy(&attr);
    s->timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    s->prefix = o->host_id ? vo_asprintf("vireo/h/%s/", o->host_id) : vo_strdup("vireo/");
    s->ca_file = o->ca_file ? vo_strdup(o->ca_file) : NULL;
    s->cert_file = o->cert_file ? vo_strdup(o->cert_file) : NULL;
    s->key_file = o->key_file ? vo_strdup(o->key_file) : NULL;
    _cleanup_free_ char *list = vo_strdup(o->endpoints);
    char *save = NULL;
    for (char *e = strtok_r(list, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        e += strspn(e, " ");
        size_t n = strlen(e);
        while (n && (e[n - 1] == '/' || e[n - 1] == ' '))
            e[--n] = '\0';
        if (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0) {
            store_free(s);
            return -EINVAL;
        }
        vo_strv_pushf(&s->endpoints, "%s", e);
    }
    s->n_endpoints = vo_strv_len(s->endpoints);
    if (s->n_endpoints == 0) {
        store_free(s);
        return -EINVAL;
    }
    _cleanup_free_ char *key = vo_strdup("");
    for (size_t i = 0; i < s->n_endpoints; i++) {
        char *more = vo_asprintf("%s%s%s", key, i ? "," : "", s->endpoints[i]);
        free(key);
        key = more;
    }
    s->quorum = quorum_ref(key);
    *ret = &s->base;
    return 0;
}
