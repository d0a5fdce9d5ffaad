/* store-etcd-call.c: one request to etcd's JSON gateway (part of the
 * store's etcd backend, store-etcd.c): base64 and int64 encodings, the
 * mapping of keys into the vireo/ namespace, curl handles kept idle for
 * reuse, the endpoint tried first and failing over, the gateway's errors as
 * -errno, and vo_etcd_call_ex, which POSTs a request and tells the quorum tracking
 * what its outcome says. */
#include "state/store.h"
#include "state/store-etcd-internal.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

#include "util/util.h"

/* gRPC status codes the gateway answers with. */
#define GRPC_CANCELED 1
#define GRPC_INVALID_ARGUMENT 3
#define GRPC_DEADLINE_EXCEEDED 4
#define GRPC_NOT_FOUND 5
#define GRPC_RESOURCE_EXHAUSTED 8
#define GRPC_ABORTED 10
#define GRPC_OUT_OF_RANGE 11
#define GRPC_UNAVAILABLE 14

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

json_t *vo_etcd_b64_json(const char *data, size_t len)
{
    char *e = b64_encode(data, len);
    json_t *j = json_string(e);
    free(e);
    return j;
}

/* The gateway sends int64 as strings and omits zeros. */
int64_t vo_etcd_json_i64(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    if (json_is_integer(v))
        return json_integer_value(v);
    return 0;
}

/* A base64 field decoded, or NULL (absent or bad). */
char *vo_etcd_json_b64(json_t *obj, const char *key, size_t *ret_len)
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

char *vo_etcd_map_key(EtcdStore *s, const char *key)
{
    if (strcmp(s->prefix, "vireo/") != 0 && strncmp(key, "cluster/", 8) == 0)
        return vo_asprintf("vireo/%s", key);
    return vo_asprintf("%s%s", s->prefix, key);
}

/* The end of the range of keys starting with prefix (never empty here: the
 * mapped prefix starts with "vireo/"). */
char *vo_etcd_prefix_end(const char *prefix)
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

pthread_once_t vo_etcd_curl_once = PTHREAD_ONCE_INIT;

void vo_etcd_curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
}

size_t vo_etcd_buf_write(char *ptr, size_t size, size_t nmemb, void *userdata)
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

void vo_etcd_setup_handle(EtcdStore *s, CURL *c, const char *url, struct curl_slist *headers)
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

size_t vo_etcd_endpoint_first(EtcdStore *s)
{
    pthread_mutex_lock(&s->lock);
    size_t e = s->endpoint;
    pthread_mutex_unlock(&s->lock);
    return e;
}

void vo_etcd_endpoint_failed(EtcdStore *s, size_t e)
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
    int64_t code = vo_etcd_json_i64(body, "code");
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
 * What the outcome says of the quorum is noted (vo_etcd_quorum_seen). */

int vo_etcd_call_ex(EtcdStore *s, const char *path, json_t *req, CallKind kind, json_t **ret)
{
    bool write = kind == CALL_WRITE;
    /* A serializable read starts at the first endpoint (a voter's own
     * member) and does not move the others' choice. */
    bool local = kind == CALL_LOCAL;
    long timeout = kind == CALL_PROBE && s->timeout_ms > PROBE_TIMEOUT_MS ? PROBE_TIMEOUT_MS
                                                                           : s->timeout_ms;
    pthread_once(&vo_etcd_curl_once, vo_etcd_curl_init_once);
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
    size_t first = local ? 0 : vo_etcd_endpoint_first(s);
    for (size_t i = 0; i < s->n_endpoints; i++) {
        size_t e = (first + i) % s->n_endpoints;
        _cleanup_free_ char *url = vo_asprintf("%s%s", s->endpoints[e], path);
        Buf b = { 0 };
        errbuf[0] = '\0';
        vo_etcd_setup_handle(s, c, url, headers);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
        if (local || kind == CALL_PROBE)
            curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                             (long)(timeout < LOCAL_CONNECT_MS ? timeout : LOCAL_CONNECT_MS));
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, vo_etcd_buf_write);
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
                vo_etcd_endpoint_failed(s, e);
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
                vo_etcd_endpoint_failed(s, e);
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
    vo_etcd_quorum_seen(s, kind, r);
    return r;
}

int vo_etcd_call(EtcdStore *s, const char *path, json_t *req, json_t **ret)
{
    return vo_etcd_call_ex(s, path, req, CALL_READ, ret);
}

int vo_etcd_call_write(EtcdStore *s, const char *path, json_t *req, json_t **ret)
{
    return vo_etcd_call_ex(s, path, req, CALL_WRITE, ret);
}
