/* peer-client.c: HTTPS requests and upgraded streams to another vireod of
 * the cluster over mutual TLS (libcurl; see peer-client.h). */
#include "cluster/peer-client.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

/* The most header bytes of a peer's answer to an upgrade request. */
#define MAX_UPGRADE_HEAD (16 * 1024)

struct VoPeerStream {
    CURL *curl;
    curl_socket_t fd;
    char *initial; /* what the peer sent after its 101's headers */
    size_t initial_len;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* Requests reuse open connections: a request to a peer takes an idle easy
 * handle (the newest that last talked to that peer, else the newest) whose
 * own connection cache holds connections it made, rather than making a new
 * TCP connection and a mutual-TLS handshake (the costliest part of a
 * forward); it gives the handle back when done. A handle is used by one
 * thread at a time. libcurl's shared connection cache (CURL_LOCK_DATA_CONNECT)
 * is not used: sharing connections between concurrent threads is not
 * supported (CURLSHOPT_SHARE(3); KNOWN_BUGS, "A shared connection cache is
 * not thread-safe"). TLS sessions and DNS are shared (with a mutex per kind
 * of data, as libcurl supports). libcurl reuses only a connection whose TLS
 * settings (certificate, key, CA) match. The upgraded streams keep
 * connections of their own. */
static CURLSH *share;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

#define IDLE_HANDLES 16
typedef struct {
    CURL *curl;
    char *base_url; /* the peer it last talked to */
} IdleHandle;
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static IdleHandle idle[IDLE_HANDLES]; /* oldest first */
static size_t n_idle;

/* An idle connection older than this is not reused: the peer's server
 * closes idle ones after 30 s (api/server-internal.h), and a connection it is
 * closing just as a request goes out would fail that request. */
#define REUSE_MAX_IDLE_S 20L

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userptr)
{
    (void)h;
    (void)access;
    (void)userptr;
    pthread_mutex_lock(&share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userptr)
{
    (void)h;
    (void)userptr;
    pthread_mutex_unlock(&share_locks[data]);
}

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&share_locks[i], NULL);
    share = curl_share_init();
    if (share && (curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
                  curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
                  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
                      CURLSHE_OK ||
                  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK)) {
        curl_share_cleanup(share); /* no sharing: every handle keeps its own */
        share = NULL;
    }
}

/* An idle handle for a request to base_url (options reset, connections
 * kept), or a new one; NULL without memory. */
static CURL *handle_take(const char *base_url)
{
    CURL *curl = NULL;
    pthread_mutex_lock(&idle_lock);
    if (n_idle > 0) {
        size_t pick = n_idle - 1;
        for (size_t i = n_idle; i-- > 0;)
            if (!strcmp(idle[i].base_url, base_url)) {
                pick = i;
                break;
            }
        curl = idle[pick].curl;
        free(idle[pick].base_url);
        memmove(&idle[pick], &idle[pick + 1], (n_idle - pick - 1) * sizeof(idle[0]));
        n_idle--;
    }
    pthread_mutex_unlock(&idle_lock);
    if (curl)
        curl_easy_reset(curl);
    else
        curl = curl_easy_init();
    return curl;
}

/* Gives a handle back (the oldest idle one goes when there are too many). */
static void handle_give(CURL *curl, const char *base_url)
{
    CURL *drop = NULL;
    pthread_mutex_lock(&idle_lock);
    if (n_idle == IDLE_HANDLES) {
        drop = idle[0].curl;
        free(idle[0].base_url);
        memmove(&idle[0], &idle[1], (n_idle - 1) * sizeof(idle[0]));
        n_idle--;
    }
    idle[n_idle++] = (IdleHandle){ .curl = curl, .base_url = vo_strdup(base_url) };
    pthread_mutex_unlock(&idle_lock);
    if (drop)
        curl_easy_cleanup(drop);
}

char *vo_peer_answer_text(const VoPeerResponse *resp)
{
    json_t *doc = resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"),
                                                        "message"));
    char *text = msg ? vo_strdup(msg) : vo_asprintf("%.200s", resp->body ? resp->body : "");
    json_decref(doc);
    return text;
}

void vo_peer_response_clear(VoPeerResponse *r)
{
    free(r->content_type);
    free(r->etag);
    free(r->location);
    free(r->retry_after);
    free(r->stale);
    free(r->record_rev);
    free(r->body);
    free(r->error);
    memset(r, 0, sizeof(*r));
}

typedef struct {
    VoPeerResponse *resp;
    size_t cap;
    bool too_large;
    CURL *curl;          /* a download's (vo_peer_download), or NULL */
    VoPeerSink sink;
    void *sink_data;
    int sink_r;          /* what the sink returned when it stopped the transfer */
} Collect;

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
    Collect *c = userdata;
    VoPeerResponse *r = c->resp;
    size_t len = size * n;
    long status = 0;
    if (c->sink && curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
        status == 200) {
        c->sink_r = c->sink(data, len, c->sink_data);
        return c->sink_r < 0 ? 0 : len;
    }
    if (r->body_len + len > VO_PEER_MAX_BODY) {
        c->too_large = true;
        return 0; /* curl fails the transfer (CURLE_WRITE_ERROR) */
    }
    if (r->body_len + len + 1 > c->cap) {
        c->cap = (r->body_len + len + 1) * 2;
        r->body = realloc(r->body, c->cap);
        if (!r->body)
            abort();
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

/* Keeps header `name` of line ("Name: value\r\n") in *slot. */
static bool take_header(const char *line, size_t len, const char *name, char **slot)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    free(*slot);
    *slot = strndup(v, (size_t)(end - v));
    if (!*slot)
        abort();
    return true;
}

static void parse_header_line(VoPeerResponse *r, const char *line, size_t len)
{
    if (len >= 5 && !strncmp(line, "HTTP/", 5)) {
        /* A new answer (after a 100 Continue, say): forget the last one's. */
        free(r->content_type);
        free(r->etag);
        free(r->location);
        free(r->retry_after);
        free(r->stale);
        free(r->record_rev);
        r->content_type = r->etag = r->location = r->retry_after = r->stale = NULL;
        r->record_rev = NULL;
        return;
    }
    (void)(take_header(line, len, "Content-Type", &r->content_type) ||
           take_header(line, len, "ETag", &r->etag) ||
           take_header(line, len, "Location", &r->location) ||
           take_header(line, len, "Retry-After", &r->retry_after) ||
           take_header(line, len, "Vireo-Stale", &r->stale) ||
           take_header(line, len, VO_RECORD_REV_HEADER, &r->record_rev));
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata)
{
    parse_header_line(((Collect *)userdata)->resp, data, size * n);
    return size * n;
}

/* The options every connection to a peer has: TLS both ways, names checked. */
static void set_tls(CURL *curl, const VoPeerTls *tls, int timeout_ms)
{
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_SSLCERT, tls->cert_file);
    curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(curl, CURLOPT_SSLKEY, tls->key_file);
    curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
    curl_easy_setopt(curl, CURLOPT_CAINFO, tls->ca_file);
    curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_PROXY, ""); /* never through a proxy from the environment */
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 30000));
    /* A peer that does not take the connection within a few seconds is
     * down or unreachable: known early, and known to have got nothing. */
    long total = timeout_ms > 0 ? timeout_ms : 30000;
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     total < VO_PEER_CONNECT_TIMEOUT_MS ? total : VO_PEER_CONNECT_TIMEOUT_MS);
}

static int errno_of(CURLcode c)
{
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_URL_MALFORMAT: case CURLE_UNSUPPORTED_PROTOCOL:
        return -EINVAL;
    case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_CIPHER:
        return -EACCES;
    case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING: return -ECONNRESET;
    default: return -EIO;
    }
}

static struct curl_slist *header_list(const char *const *headers, struct curl_slist *list)
{
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    return list;
}

int vo_peer_request(const VoPeerTls *tls, const char *base_url, const char *method,
                    const char *path_and_query, const char *const *headers, const char *body,
                    size_t body_len, int timeout_ms, VoPeerResponse *ret)
{
    memset(ret, 0, sizeof(*ret));
    pthread_once(&curl_once, curl_init_once);
    CURL *curl = handle_take(base_url);
    if (!curl)
        return vo_error_set(&ret->error, -ENOMEM, "cannot make a request to %s", base_url);
    _cleanup_free_ char *url = vo_asprintf("%s%s", base_url, path_and_query);
    char errbuf[CURL_ERROR_SIZE] = "";
    Collect c = { .resp = ret };
    struct curl_slist *list = header_list(headers, NULL);
    list = curl_slist_append(list, "Expect:"); /* no 100-continue round trip */
    set_tls(curl, tls, timeout_ms);
    if (share)
        curl_easy_setopt(curl, CURLOPT_SHARE, share);
    curl_easy_setopt(curl, CURLOPT_MAXAGE_CONN, REUSE_MAX_IDLE_S);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (body || strcmp(method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method); /* POSTFIELDS implies POST */
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &c);
    CURLcode cc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    /* Timed out before the TLS handshake of a new connection was done: the
     * request was never sent (a caller may send it elsewhere), unlike a
     * timeout after it. A reused connection (no new one made) had its
     * handshake long ago: the request went out. */
    curl_off_t tls_done = 0;
    long connects = 0;
    if (cc == CURLE_OPERATION_TIMEDOUT &&
        curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0 &&
        curl_easy_getinfo(curl, CURLINFO_APPCONNECT_TIME_T, &tls_done) == CURLE_OK &&
        tls_done == 0)
        cc = CURLE_COULDNT_CONNECT;
    curl_slist_free_all(list);
    handle_give(curl, base_url);
    if (cc != CURLE_OK) {
        _cleanup_free_ char *why = vo_strdup(errbuf[0] ? errbuf : curl_easy_strerror(cc));
        vo_peer_response_clear(ret);
        if (c.too_large)
            return vo_error_set(&ret->error, -EMSGSIZE, "the answer of %s to %s %s exceeds %u "
                                "bytes", base_url, method, path_and_query, VO_PEER_MAX_BODY);
        return vo_error_set(&ret->error, errno_of(cc), "%s did not answer %s %s: %s", base_url,
                            method, path_and_query, why);
    }
    ret->status = (int)status;
    return 0;
}

int vo_peer_download(const VoPeerTls *tls, const char *base_url, const char *path_and_query,
                     const char *const *headers, int stall_ms, VoPeerSink sink,
                     void *userdata, VoPeerResponse *ret)
{
    memset(ret, 0, sizeof(*ret));
    pthread_once(&curl_once, curl_init_once);
    CURL *curl = curl_easy_init();
    if (!curl)
        return vo_error_set(&ret->error, -ENOMEM, "cannot make a request to %s", base_url);
    _cleanup_free_ char *url = vo_asprintf("%s%s", base_url, path_and_query);
    char errbuf[CURL_ERROR_SIZE] = "";
    Collect c = { .resp = ret, .curl = curl, .sink = sink, .sink_data = userdata };
    struct curl_slist *list = header_list(headers, NULL);
    set_tls(curl, tls, stall_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 0L); /* as long as bytes keep coming */
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, (long)((stall_ms + 999) / 1000));
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &c);
    CURLcode cc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    if (cc != CURLE_OK) {
        _cleanup_free_ char *why = vo_strdup(errbuf[0] ? errbuf : curl_easy_strerror(cc));
        vo_peer_response_clear(ret);
        if (c.sink_r < 0)
            return vo_error_set(&ret->error, c.sink_r, "receiving GET %s from %s: %s",
                                path_and_query, base_url, strerror(-c.sink_r));
        if (c.too_large)
            return vo_error_set(&ret->error, -EMSGSIZE, "the answer of %s to GET %s exceeds %u "
                                "bytes", base_url, path_and_query, VO_PEER_MAX_BODY);
        return vo_error_set(&ret->error, errno_of(cc), "%s did not answer GET %s: %s", base_url,
                            path_and_query, why);
    }
    ret->status = (int)status;
    return 0;
}

/* ---- Upgraded streams ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes (-ETIMEDOUT). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline < 0 ? -1 : deadline - now_ms();
        if (deadline >= 0 && left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, (int)(left > 600000 || left < 0 ? 600000 : left));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* Sends all of buf on the stream's TLS connection. */
static int stream_send(VoPeerStream *s, const char *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        size_t sent = 0;
        CURLcode cc = curl_easy_send(s->curl, buf, len, &sent);
        if (cc == CURLE_AGAIN) {
            int r = wait_fd(s->fd, POLLOUT, deadline);
            if (r < 0)
                return r;
            continue;
        }
        if (cc != CURLE_OK)
            return -ECONNRESET;
        buf += sent;
        len -= sent;
    }
    return 0;
}

/* One read: > 0 bytes, 0 at the peer's end, -EAGAIN when nothing is buffered. */
static ssize_t stream_recv(VoPeerStream *s, char *buf, size_t size)
{
    size_t got = 0;
    CURLcode cc = curl_easy_recv(s->curl, buf, size, &got);
    if (cc == CURLE_AGAIN)
        return -EAGAIN;
    if (cc != CURLE_OK)
        return -ECONNRESET;
    return (ssize_t)got;
}

void vo_peer_stream_free(VoPeerStream *s)
{
    if (!s)
        return;
    if (s->curl)
        curl_easy_cleanup(s->curl);
    free(s->initial);
    free(s);
}

/* The peer's answer other than 101: its status, headers and body (as much
 * as Content-Length says, what arrives before the deadline). */
static int read_refusal(VoPeerStream *s, char *head, size_t head_len, size_t body_at,
                        int64_t deadline, VoPeerResponse *ret)
{
    char *line = head;
    char *end_of_head = head + body_at;
    size_t content_length = 0;
    while (line < end_of_head) {
        char *eol = memchr(line, '\n', (size_t)(end_of_head - line));
        size_t len = eol ? (size_t)(eol - line + 1) : (size_t)(end_of_head - line);
        if (line != head)
            parse_header_line(ret, line, len);
        if (len > 15 && !strncasecmp(line, "Content-Length:", 15))
            content_length = strtoul(line + 15, NULL, 10);
        line += len;
    }
    if (content_length > VO_PEER_MAX_BODY)
        content_length = VO_PEER_MAX_BODY;
    ret->body = vo_malloc0(content_length + 1);
    ret->body_len = head_len - body_at < content_length ? head_len - body_at : content_length;
    memcpy(ret->body, head + body_at, ret->body_len);
    while (ret->body_len < content_length) {
        ssize_t n = stream_recv(s, ret->body + ret->body_len, content_length - ret->body_len);
        if (n == -EAGAIN) {
            if (wait_fd(s->fd, POLLIN, deadline) < 0)
                break;
            continue;
        }
        if (n <= 0)
            break;
        ret->body_len += (size_t)n;
    }
    return 0;
}

int vo_peer_stream_connect(const VoPeerTls *tls, const char *base_url, const char *path_and_query,
                           const char *upgrade, const char *const *headers, int timeout_ms,
                           VoPeerStream **ret, VoPeerResponse *ret_response)
{
    *ret = NULL;
    memset(ret_response, 0, sizeof(*ret_response));
    pthread_once(&curl_once, curl_init_once);
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 30000);
    VoPeerStream *s = vo_malloc0(sizeof(*s));
    s->fd = CURL_SOCKET_BAD;
    s->curl = curl_easy_init();
    if (!s->curl) {
        vo_peer_stream_free(s);
        return vo_error_set(&ret_response->error, -ENOMEM, "cannot connect to %s", base_url);
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    set_tls(s->curl, tls, timeout_ms);
    curl_easy_setopt(s->curl, CURLOPT_URL, base_url);
    curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(s->curl, CURLOPT_CONNECT_ONLY, 1L);
    CURLcode cc = curl_easy_perform(s->curl);
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (cc == CURLE_OK)
        cc = curl_easy_getinfo(s->curl, CURLINFO_ACTIVESOCKET, &fd);
    if (cc != CURLE_OK || fd == CURL_SOCKET_BAD) {
        int r = cc != CURLE_OK ? errno_of(cc) : -ENOTCONN;
        vo_error_set(&ret_response->error, r, "cannot connect to %s: %s", base_url,
                     errbuf[0] ? errbuf : curl_easy_strerror(cc));
        vo_peer_stream_free(s);
        return r;
    }
    s->fd = fd;
    /* The Host header: the authority of base_url ("https://HOST:PORT"). */
    const char *authority = strstr(base_url, "://");
    authority = authority ? authority + 3 : base_url;
    _cleanup_free_ char *host = vo_strdup(authority);
    host[strcspn(host, "/")] = '\0';
    char *request = vo_asprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\n"
                                "Upgrade: %s\r\n", path_and_query, host, upgrade);
    for (size_t i = 0; headers && headers[i]; i++) {
        char *more = vo_asprintf("%s%s\r\n", request, headers[i]);
        free(request);
        request = more;
    }
    char *full = vo_asprintf("%s\r\n", request);
    free(request);
    int r = stream_send(s, full, strlen(full), deadline);
    free(full);
    /* The answer's head, up to its blank line; what follows is the stream's. */
    char *head = vo_malloc0(MAX_UPGRADE_HEAD + 1);
    size_t len = 0, body_at = 0;
    while (r >= 0) {
        char *blank = len ? strstr(head, "\r\n\r\n") : NULL;
        if (blank) {
            body_at = (size_t)(blank - head) + 4;
            break;
        }
        if (len == MAX_UPGRADE_HEAD) {
            r = -EMSGSIZE;
            break;
        }
        ssize_t n = stream_recv(s, head + len, MAX_UPGRADE_HEAD - len);
        if (n == -EAGAIN)
            r = wait_fd(s->fd, POLLIN, deadline);
        else if (n <= 0)
            r = n < 0 ? (int)n : -ECONNRESET;
        else {
            len += (size_t)n;
            head[len] = '\0';
            if (memchr(head, '\0', len)) /* no NUL in an HTTP head */
                r = -EPROTO;
        }
    }
    int status = 0;
    if (r >= 0 && (sscanf(head, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 599))
        r = -EPROTO;
    if (r < 0) {
        vo_error_set(&ret_response->error, r, "%s did not answer the upgrade of %s: %s",
                     base_url, path_and_query, r == -ETIMEDOUT ? "timed out" : strerror(-r));
        free(head);
        vo_peer_stream_free(s);
        return r;
    }
    ret_response->status = status;
    if (status != 101) {
        read_refusal(s, head, len, body_at, deadline, ret_response);
        free(head);
        vo_peer_stream_free(s);
        return 0;
    }
    s->initial_len = len - body_at;
    if (s->initial_len) {
        s->initial = vo_malloc0(s->initial_len);
        memcpy(s->initial, head + body_at, s->initial_len);
    }
    free(head);
    *ret = s;
    return 0;
}

int vo_peer_stream_send(VoPeerStream *s, const char *buf, size_t len)
{
    return stream_send(s, buf, len, now_ms() + 30000);
}

void vo_peer_stream_shutdown(VoPeerStream *s)
{
    if (s && s->fd != CURL_SOCKET_BAD)
        shutdown(s->fd, SHUT_RDWR);
}

/* Writes all of buf to fd (which may be non-blocking); no SIGPIPE when the
 * other end of a socket has gone. */
static int write_all(int fd, const char *buf, size_t len)
{
    bool is_socket = true;
    while (len > 0) {
        ssize_t n = is_socket ? send(fd, buf, len, MSG_NOSIGNAL) : write(fd, buf, len);
        if (n < 0 && errno == ENOTSOCK && is_socket) {
            is_socket = false;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(fd, POLLOUT, -1);
            if (r < 0)
                return r;
            continue;
        }
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Passes on everything the TLS layer can give now, until it has nothing
 * decoded and nothing on the socket (-EAGAIN: 0 here). poll() does not wake
 * for bytes the TLS layer already took from the socket: the rest of a record
 * that did not fit the last read (the one after the 101's head, say). */
static int drain_peer(VoPeerStream *s, int local_fd, char *buf, size_t size)
{
    for (;;) {
        ssize_t n = stream_recv(s, buf, size);
        if (n == -EAGAIN)
            return 0;
        if (n == 0)
            return 1; /* the peer closed */
        if (n < 0)
            return (int)n;
        int r = write_all(local_fd, buf, (size_t)n);
        if (r < 0)
            return r;
    }
}

int vo_peer_stream_pump(VoPeerStream *s, int local_fd)
{
    char buf[32 * 1024];
    int r = s->initial_len ? write_all(local_fd, s->initial, s->initial_len) : 0;
    while (r >= 0) {
        /* Before every wait, not only when poll says the socket is readable. */
        r = drain_peer(s, local_fd, buf, sizeof(buf));
        if (r != 0)
            return r > 0 ? 0 : r;
        struct pollfd p[2] = { { .fd = local_fd, .events = POLLIN },
                               { .fd = s->fd, .events = POLLIN } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p[0].revents) {
            ssize_t n = read(local_fd, buf, sizeof(buf));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0)
                return n < 0 ? -errno : 0;
            r = stream_send(s, buf, (size_t)n, -1);
        }
    }
    return r;
}
