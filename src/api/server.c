/* server.c: vireod's HTTP/1.1 server on a Unix socket (libmicrohttpd, one
 * thread per connection): its own accept loop with connection limits (total
 * and per client) and an idle timeout, raw request paths checked and routed by
 * route-match.c, body limits, content type, JSON parsing and the JSON error
 * envelope. Handlers live in one file per noun.
 * The same server, with the same routes, also serves HTTPS on a TCP address
 * for the peers of a cluster (vo_api_server_start_tls): mutual TLS, every
 * request's client certificate verified against the cluster CA.
 * And HTTPS for users (vo_api_server_start_users): no client certificate;
 * every request authenticated and its role checked (access-check.c). */
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "api/access-check.h"
#include "api/forward.h"
#include "api/http.h"
#include "api/peer-member.h"
#include "api/route-match.h"
#include "api/vm-place-api.h"
#include "api/web-files.h"
#include "daemon/fence.h"
#include "state/store.h"
#include "util/time-format.h"
#include "util/unix-socket.h"
#include "util/util.h"

/* A connection that has sent nothing for this long (no complete request, or
 * idle between requests, or not reading its answer) is closed. Handlers and
 * upgraded connections (the console) are not subject to it. */
#define IDLE_TIMEOUT_S 30u
/* Open connections at most, in all and from one client (a Unix socket peer's
 * process, a TCP peer's address); more are answered 503 and closed. */
#define MAX_CONNECTIONS 512u
#define MAX_CONNECTIONS_PER_CLIENT 64u

_Static_assert(VO_API_MAX_PARAMS == VO_ROUTE_MAX_PARAMS, "VoRequest.params holds a match's params");

typedef struct {
    int fd;
    char client[64];
} OpenConnection;

/* An upgraded connection served on a thread of its own (VoReply.upgrade_run:
 * a forwarded console), joined before the server stops. */
typedef struct UpgradeThread {
    struct UpgradeThread *next;
    struct VoApiServer *server;
    pthread_t thread;
    int sock;     /* the upgraded socket; -1 once the thread closes it (under lock) */
    bool done;    /* the thread has finished its work (under lock): join it */
    struct MHD_UpgradeResponseHandle *urh;
    void *cls;
    void (*run)(void *cls, int sock, const char *first, size_t first_len);
    void (*stop)(void *cls);
    void (*free)(void *cls);
    char *first;  /* what the client sent after its request */
    size_t first_len;
} UpgradeThread;

struct VoApiServer {
    VoDaemon *d;
    struct MHD_Daemon *mhd;
    int listen_fd;
    char *socket_path; /* the Unix socket's, NULL for the TLS listener */
    bool tls;          /* HTTPS with client certificates (peers of a cluster) */
    bool users;        /* HTTPS for users: tokens and sessions, roles (tls false) */
    char *tls_cert, *tls_key, *tls_ca; /* their PEM text, for MHD */
    pthread_t accept_thread;
    bool accept_running;
    int stop_pipe[2];
    unsigned max_connections;
    pthread_mutex_t lock; /* guards conns, upgrades, stopping */
    OpenConnection *conns;
    size_t n_conns;
    UpgradeThread *upgrades;
    bool stopping; /* no more upgrade threads */
};

static void client_of(int fd, char *client, size_t size);

/* One request, created when its request line arrives (on_request_line). */
typedef struct {
    VoApiServer *server;
    char *raw_uri;   /* as the client sent it, before any decoding */
    bool started;
    int match_r;     /* vo_route_match's answer */
    char *match_error;
    char *unauthenticated; /* TLS: why the client is refused (401), or NULL */
    bool refused;          /* users: answered before the body (401, 403, 429) */
    VoPrincipal principal; /* who asks (users: access-check.c) */
    bool from_peer;        /* TLS: a client certificate of the cluster CA was checked */
    bool named;            /* principal: named by that peer (X-Vireo-Principal) */
    bool quit_after;       /* the reply's quit_after: stop the loop once it is sent */
    VoRouteMatch match;
    const VoRoute *route;
    char *body;
    size_t len;
    bool too_large;
    /* Streamed uploads. */
    bool streaming;
    int upload_fd;
    char *upload_path;
    uint64_t upload_bytes;
    int upload_errno;
    char *upload_error;
    /* An upgrade answered (VoReply's): upgrade_cls is the request's until
     * on_upgraded takes it; on_completed frees it if nobody did. */
    void *_Atomic upgrade_cls;
    MHD_UpgradeHandler upgrade_fn;
    void (*upgrade_run)(void *cls, int sock, const char *first, size_t first_len);
    void (*upgrade_stop)(void *cls);
    void (*upgrade_free)(void *cls);
} PendingRequest;

void vo_reply_json(VoReply *rep, int status, json_t *json)
{
    json_decref(rep->json);
    rep->status = status;
    rep->json = json;
}

void vo_reply_error(VoReply *rep, VoErrorCode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vo_vasprintf(fmt, ap);
    va_end(ap);
    vo_reply_json(rep, vo_error_http_status(code),
                  json_pack("{s:{s:s, s:s}}", "error", "code", vo_error_code_name(code),
                            "message", msg));
    free(msg);
}

void vo_reply_errno(VoReply *rep, int negative_errno, const char *message)
{
    /* -EAGAIN comes from the store: its backend says what it means (SQLite
     * "database is busy", etcd "cluster has no quorum"). */
    _cleanup_free_ char *unavailable = negative_errno == -EAGAIN
        ? vo_error_unavailable_message(message, rep->unavailable_message)
        : negative_errno == -ETIMEDOUT && rep->unknown_message
        ? vo_error_unknown_message(message, rep->unknown_message) : NULL;
    if (unavailable)
        message = unavailable;
    vo_reply_error(rep, vo_error_from_errno(negative_errno), "%s",
                   message ? message : strerror(-negative_errno));
    /* Busy (the store held by another process, say): 503, and when to ask
     * again. VO_STORE_ECOMPACTED (-ERANGE) surfaces only from watches, which
     * GET /v1/events answers itself (410, or an error event). */
    if (negative_errno == -EAGAIN && !rep->header_name) {
        rep->header_name = "Retry-After";
        snprintf(rep->header_value, sizeof(rep->header_value), "1");
    }
}

/* Unpacks the body strictly; fills rep with 400 naming the problem. */
bool vo_request_unpack(VoRequest *req, VoReply *rep, const char *fmt, ...)
{
    if (!req->body)
        req->body = json_object();
    json_error_t jerr;
    va_list ap;
    va_start(ap, fmt);
    int r = json_vunpack_ex(req->body, &jerr, JSON_STRICT, fmt, ap);
    va_end(ap);
    if (r < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "invalid request body: %s", jerr.text);
        return false;
    }
    return true;
}

void vo_reply_task(VoReply *rep, int r, json_t *task, char *error)
{
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 202, json_pack("{s:o}", "task", task));
    free(error);
}

void vo_reply_found(VoReply *rep, int r, json_t *doc, char *error)
{
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, doc);
    free(error);
}

bool vo_request_index(VoRequest *req, VoReply *rep, size_t i, const char *what, size_t *ret)
{
    const char *text = req->params[i];
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (!text[0] || *end || text[0] == '-' || errno || v > 1000) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s: '%s' is not an index (0, 1, ...)",
                       what, text);
        return false;
    }
    *ret = (size_t)v;
    return true;
}

/* The view an ETag of an answer cut to its caller names after its
 * revision (VoReply's etag_view): "-" and 16 hex digits. */
static bool etag_view_suffix(const char *s)
{
    if (*s++ != '-' || strlen(s) != 16)
        return false;
    return strspn(s, "0123456789abcdef") == 16;
}

bool vo_request_if_match(VoRequest *req, VoReply *rep, int64_t *ret_rev)
{
    *ret_rev = 0;
    const char *v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "If-Match");
    if (!v)
        return true;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!strcmp(v, "*"))
        return true;
    if (!strncmp(v, "W/", 2))
        v += 2;
    char text[48]; /* a revision, and the view of an answer cut to its caller */
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    char *end = NULL;
    if (n > 0 && n < sizeof(text)) {
        memcpy(text, v, n);
        text[n] = '\0';
        errno = 0;
        long long rev = strtoll(text, &end, 10);
        if (text[0] != '-' && text[0] != '+' && (!*end || etag_view_suffix(end)) && !errno &&
            rev > 0) {
            *ret_rev = rev;
            /* Tasks the handler queues carry it, to compare where they act. */
            vo_tasks_set_if_match(rev);
            return true;
        }
    }
    vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                   "If-Match: expected one revision as an ETag gives it (\"42\")");
    return false;
}

bool vo_reply_precondition(VoReply *rep, int64_t expected, int64_t current, const char *what)
{
    if (expected <= 0 || expected == current)
        return true;
    vo_reply_error(rep, VO_ERR_PRECONDITION_FAILED,
                   "%s changed: it is at revision %lld, not %lld (If-Match); read it again",
                   what, (long long)current, (long long)expected);
    return false;
}

bool vo_request_over_tls(VoRequest *req)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    return info && info->tls_session;
}

bool vo_request_from_member(VoRequest *req, VoReply *rep, const char *instead)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!info || !info->tls_session) {
        vo_reply_error(rep, VO_ERR_UNAUTHENTICATED, "%s is for the hosts of the cluster only, "
                       "over their mutual-TLS listener%s%s", req->path, instead ? "; use " : "",
                       instead ? instead : "");
        return false;
    }
    unsigned n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(info->tls_session, &n);
    if (chain && n > 0 && vo_peer_cert_is_member(req->d->cluster_store, &chain[0],
                                                 GNUTLS_X509_FMT_DER))
        return true;
    vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "%s is for the hosts of the cluster only: "
                   "the client certificate names no member of the cluster", req->path);
    return false;
}

bool vo_request_query_bool(VoRequest *req, const char *key)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
    return v && (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"));
}

static bool is_json_content_type(struct MHD_Connection *conn)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (!ct)
        return false;
    size_t n = strcspn(ct, ";");
    return n == strlen("application/json") && !strncasecmp(ct, "application/json", n);
}

/* Validates and parses the body; false with rep filled on bad input. */
static bool parse_body(VoRequest *req, PendingRequest *p, VoReply *rep)
{
    if (p->too_large) {
        vo_reply_error(rep, VO_ERR_PAYLOAD_TOO_LARGE, "request body exceeds %d bytes",
                       VO_API_MAX_BODY);
        return false;
    }
    if (p->len == 0)
        return true;
    if (!is_json_content_type(req->conn)) {
        vo_reply_error(rep, VO_ERR_UNSUPPORTED_MEDIA,
                       "request body must be JSON (Content-Type: application/json)");
        return false;
    }
    json_error_t jerr;
    req->body = json_loadb(p->body, p->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req->body) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "malformed JSON at line %d column %d: %s",
                       jerr.line, jerr.column, jerr.text);
        return false;
    }
    if (!json_is_object(req->body)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "request body must be a JSON object");
        return false;
    }
    return true;
}

static void on_upgraded(void *cls, struct MHD_Connection *conn, void *req_cls,
                        const char *extra_in, size_t extra_in_size, MHD_socket sock,
                        struct MHD_UpgradeResponseHandle *urh);

static enum MHD_Result send_reply(struct MHD_Connection *conn, PendingRequest *p, VoReply *rep)
{
    struct MHD_Response *resp;
    const char *ctype = "application/json";
    if (rep->upgrade) {
        /* The request owns upgrade_cls from here (on_upgraded, on_completed). */
        p->upgrade_fn = rep->upgrade_fn;
        p->upgrade_run = rep->upgrade_run;
        p->upgrade_stop = rep->upgrade_stop;
        p->upgrade_free = rep->upgrade_free;
        atomic_store(&p->upgrade_cls, rep->upgrade_cls);
        rep->upgrade_cls = NULL;
        resp = MHD_create_response_for_upgrade(on_upgraded, p);
        if (!resp)
            return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE,
                                rep->upgrade_protocol ? rep->upgrade_protocol : "vireo-console");
        for (size_t i = 0; rep->extra_headers && rep->extra_headers[i] && rep->extra_headers[i + 1];
             i += 2)
            MHD_add_response_header(resp, rep->extra_headers[i], rep->extra_headers[i + 1]);
        enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        return r;
    }
    if (rep->stream_fn) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, rep->stream_fn,
                                                 rep->stream_cls, rep->stream_free);
        rep->stream_fn = NULL; /* the response owns stream_cls now */
        ctype = rep->content_type;
        if (!rep->per_caller) /* else private, no-cache below */
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    } else if (rep->file_fd >= 0) {
        resp = MHD_create_response_from_fd64(rep->file_size, rep->file_fd); /* takes the fd */
        rep->file_fd = -1;
        ctype = "application/octet-stream";
    } else if (rep->text) {
        resp = MHD_create_response_from_buffer(rep->text_len, rep->text, MHD_RESPMEM_MUST_FREE);
        rep->text = NULL;
        ctype = rep->content_type ? rep->content_type : "text/plain; charset=utf-8";
    } else {
        char *s = json_dumps(rep->json ? rep->json : json_object(), JSON_INDENT(0) | JSON_SORT_KEYS | JSON_COMPACT);
        size_t len = strlen(s);
        char *with_nl = vo_asprintf("%s\n", s);
        free(s);
        resp = MHD_create_response_from_buffer(len + 1, with_nl, MHD_RESPMEM_MUST_FREE);
    }
    /* A forwarded reply brings its own Content-Type (api/forward.c). */
    for (size_t i = 0; rep->extra_headers && rep->extra_headers[i] && rep->extra_headers[i + 1];
         i += 2)
        if (!strcasecmp(rep->extra_headers[i], MHD_HTTP_HEADER_CONTENT_TYPE))
            ctype = rep->extra_headers[i + 1];
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (rep->etag > 0 && rep->status / 100 == 2) {
        char etag[64];
        snprintf(etag, sizeof(etag), "\"%lld%s%s\"", (long long)rep->etag,
                 rep->etag_view[0] ? "-" : "", rep->etag_view);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    }
    if (rep->per_caller) { /* no cache may give it to another caller */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "private, no-cache");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Authorization, Cookie");
    }
    if (rep->header_name)
        MHD_add_response_header(resp, rep->header_name, rep->header_value);
    for (size_t i = 0; rep->extra_headers && rep->extra_headers[i] && rep->extra_headers[i + 1];
         i += 2)
        if (strcasecmp(rep->extra_headers[i], MHD_HTTP_HEADER_CONTENT_TYPE) != 0)
            MHD_add_response_header(resp, rep->extra_headers[i], rep->extra_headers[i + 1]);
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)rep->status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* A streamed route: open the file its body goes to. Errors are kept and
 * answered once the body has been read (HTTP needs the whole request first). */
static void begin_upload(VoRequest *req, PendingRequest *p)
{
    p->streaming = true;
    char *tmpl = NULL;
    int r = p->route->prepare_upload(req, &tmpl, &p->upload_error);
    if (r >= 0) {
        p->upload_fd = mkostemp(tmpl, O_CLOEXEC);
        if (p->upload_fd < 0) {
            r = -errno;
            p->upload_error = vo_asprintf("cannot store the upload: %s", strerror(errno));
            free(tmpl);
        } else
            p->upload_path = tmpl;
    }
    p->upload_errno = r < 0 ? r : 0;
}

static void write_upload(PendingRequest *p, const char *data, size_t len)
{
    while (p->upload_fd >= 0 && !p->upload_errno && len > 0) {
        ssize_t n = write(p->upload_fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            p->upload_errno = -errno;
            p->upload_error = vo_asprintf("cannot store the upload after %llu bytes: %s",
                                          (unsigned long long)p->upload_bytes, strerror(errno));
            return;
        }
        data += n;
        len -= (size_t)n;
        p->upload_bytes += (uint64_t)n;
    }
}

static void finish_upload(VoRequest *req, PendingRequest *p, VoReply *rep)
{
    if (!p->upload_errno && p->upload_fd >= 0 && fsync(p->upload_fd) < 0) {
        p->upload_errno = -errno;
        p->upload_error = vo_asprintf("cannot store the upload: %s", strerror(errno));
    }
    if (p->upload_errno) {
        vo_reply_errno(rep, p->upload_errno, p->upload_error);
        return;
    }
    req->upload_path = p->upload_path;
    req->upload_bytes = p->upload_bytes;
    p->route->fn(req, rep);
}

/* MHD_OPTION_URI_LOG_CALLBACK: called with the request's raw URI before MHD
 * decodes it; what it returns becomes the request's *con_cls. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
    PendingRequest *p = vo_malloc0(sizeof(PendingRequest));
    p->server = cls;
    p->raw_uri = vo_strdup(uri ? uri : "");
    p->upload_fd = -1;
    return p;
}

/* The Unix socket peer's uid and pid (SO_PEERCRED) as the requester of the
 * operations this thread queues next (jobs/tasks.h); none over TCP. Its
 * root, in a cluster, is this host's: another host that serves its request
 * audits it as root@HOST (access.h). */
static void set_requester(VoDaemon *d, struct MHD_Connection *conn, PendingRequest *p)
{
    VoApiServer *s = p->server;
    if (!s->users && !p->named)
        p->principal.kind = s->tls ? VO_PRINCIPAL_PEER : VO_PRINCIPAL_ROOT;
    if (p->principal.kind == VO_PRINCIPAL_ROOT && !p->named && d->cluster_store &&
        d->host_name && strlen(d->host_name) < sizeof(p->principal.host))
        snprintf(p->principal.host, sizeof(p->principal.host), "%s", d->host_name);
    if (p->principal.kind == VO_PRINCIPAL_ROOT || p->principal.kind == VO_PRINCIPAL_PEER)
        p->principal.role = VO_ROLE_ADMIN;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct ucred cred;
    socklen_t len = sizeof(cred);
    bool peer_known = info &&
                      getsockopt(info->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                      len == sizeof(cred) && cred.pid > 0;
    /* The socket is root's (0660 root:root): a uid that may open it has
     * root's access here, and is named as itself, here (requested_by.uid)
     * and on a host its request is forwarded to ("uid:N@HOST", never
     * root@HOST: access.h). */
    if (peer_known && p->principal.kind == VO_PRINCIPAL_ROOT && !p->named)
        p->principal.uid = (uint32_t)cred.uid;
    vo_access_set_current(&p->principal);
    char who[128];
    vo_principal_describe(&p->principal, who, sizeof(who));
    vo_tasks_set_requester_who(s->users || s->tls ? who : NULL);
    if (peer_known)
        vo_tasks_set_requester(true, (uint32_t)cred.uid, (int32_t)cred.pid);
    else
        vo_tasks_set_requester(false, 0, 0);
}

/* TLS: NULL when the client's certificate chain verifies against the
 * cluster CA (MHD_OPTION_HTTPS_MEM_TRUST) for client authentication, else
 * why not. MHD asks for a certificate but lets the handshake pass without
 * one, so it is checked here, on every request. */
static char *client_unauthenticated(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!info || !info->tls_session)
        return vo_strdup("no TLS session");
    gnutls_session_t session = info->tls_session;
    unsigned n = 0;
    if (gnutls_certificate_type_get(session) != GNUTLS_CRT_X509 ||
        !gnutls_certificate_get_peers(session, &n) || n == 0)
        return vo_strdup("a client certificate signed by the cluster CA is required");
    gnutls_typed_vdata_st purpose = { .type = GNUTLS_DT_KEY_PURPOSE_OID,
                                      .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT };
    unsigned status = 0;
    int r = gnutls_certificate_verify_peers(session, &purpose, 1, &status);
    if (r < 0)
        return vo_asprintf("cannot verify the client certificate: %s", gnutls_strerror(r));
    if (status == 0)
        return NULL;
    gnutls_datum_t text = { 0 };
    char *why;
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0) {
        why = vo_asprintf("the client certificate is not accepted: %s", (char *)text.data);
        gnutls_free(text.data);
    } else
        why = vo_strdup("the client certificate is not accepted");
    return why;
}

/* The two routes a host that is not yet a member calls to join, on the TLS
 * listener without a client certificate: the cluster CA (public; the
 * joiner checks it against its token) and the join request (authenticated
 * by the token's secret). */
static bool without_client_cert(const char *method, const char *raw_uri)
{
    size_t n = strcspn(raw_uri, "?#");
    return (!strcmp(method, "GET") && n == strlen("/v1/cluster/ca") &&
            !strncmp(raw_uri, "/v1/cluster/ca", n)) ||
           (!strcmp(method, "POST") && n == strlen("/v1/cluster/join-request") &&
            !strncmp(raw_uri, "/v1/cluster/join-request", n));
}

/* Users' listener: whether the request carries a header only hosts of the
 * cluster send one another (X-Vireo-Forwarded: served here, not by the any
 * door or the manager's placement; X-Vireo-Place: placed by this host as
 * the manager), then refused (400 naming it, rep filled). A user who sent
 * one would skip the placement's rules (capacity, firmware, groups). */
static bool hosts_header_refused(struct MHD_Connection *conn, VoReply *rep)
{
    static const char *const names[] = { VO_FORWARDED_HEADER, VO_PLACE_HEADER };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, names[i])) {
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s: only a host of the cluster "
                           "sends this header; remove it", names[i]);
            return true;
        }
    return false;
}

/* First call for a request: check and route its raw path. */
static void route_request(VoDaemon *d, struct MHD_Connection *conn, const char *url,
                          const char *method, const char *version, PendingRequest *p,
                          VoReply *refusal)
{
    /* A user's request forwarded by a peer: checked as that user's. */
    if (!vo_access_forwarded(conn, p->from_peer, &p->principal, &p->named, refusal))
        return;
    if (p->server->users && hosts_header_refused(conn, refusal))
        return;
    /* MHD ends the URI where the HTTP version starts, so a literal NUL byte in
     * the URI shows as a raw URI shorter than that span. */
    if (version && version[0] && version > url &&
        (size_t)(version - 1 - url) != strlen(p->raw_uri)) {
        p->match_r = -EINVAL;
        p->match_error = vo_strdup("the request path holds a NUL byte");
        if (p->server->users) /* 401 before the body, as any other path */
            (void)vo_access_check(d, conn, method, NULL, &p->principal, refusal);
        return;
    }
    p->match_r = vo_route_match(vo_route_specs, vo_n_route_specs, method, p->raw_uri,
                                &p->match, &p->match_error);
    /* Users: who does not authenticate learns nothing, not even which
     * routes exist. */
    if (p->match_r < 0) {
        if (p->server->users)
            (void)vo_access_check(d, conn, method, NULL, &p->principal, refusal);
        return;
    }
    p->route = &vo_routes[p->match.index];
    if (p->named && !vo_access_authorize(method, p->route->pattern, &p->principal, refusal))
        return;
    if (p->server->users && !vo_access_check(d, conn, method, p->route->pattern, &p->principal,
                                             refusal))
        return;
    if (p->route->prepare_upload) {
        VoRequest req = { .d = d, .conn = conn, .method = method, .path = p->raw_uri };
        memcpy(req.params, p->match.params, sizeof(req.params));
        begin_upload(&req, p);
    }
}

static void reply_route_error(PendingRequest *p, VoReply *rep)
{
    const char *msg = p->match_error ? p->match_error : strerror(-p->match_r);
    switch (p->match_r) {
    case -EINVAL:
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s", msg);
        break;
    case -ENOENT:
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "%s", msg);
        break;
    case -EPERM:
        vo_reply_error(rep, VO_ERR_METHOD_NOT_ALLOWED, "%s", msg);
        break;
    default:
        vo_reply_error(rep, VO_ERR_INTERNAL, "cannot route the request: %s", msg);
    }
}

/* Logs a refused unauthenticated request: at most one line per
 * REFUSAL_LOG_INTERVAL_MS, with how many more there were, so that a client
 * without a certificate cannot flood the log. */
#define REFUSAL_LOG_INTERVAL_MS 10000
static void log_unauthenticated(struct MHD_Connection *conn, const char *why)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static int64_t last_ms = -REFUSAL_LOG_INTERVAL_MS;
    static unsigned long unlogged;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    pthread_mutex_lock(&lock);
    bool log = now_ms - last_ms >= REFUSAL_LOG_INTERVAL_MS;
    unsigned long more = unlogged;
    if (log) {
        last_ms = now_ms;
        unlogged = 0;
    } else
        unlogged++;
    pthread_mutex_unlock(&lock);
    if (!log)
        return;
    char client[64];
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    client_of(info ? info->connect_fd : -1, client, sizeof(client));
    if (more)
        log_info("https: refused a request from %s: %s (and %lu more without an accepted "
                 "client certificate since the last such message)", client, why, more);
    else
        log_info("https: refused a request from %s: %s", client, why);
}

/* TLS without an accepted client certificate: 401 at once, before any body
 * is read (MHD discards it), and the connection closed after the answer, so
 * such a client holds no connection and no memory for long. */
static enum MHD_Result refuse_unauthenticated(struct MHD_Connection *conn, PendingRequest *p)
{
    log_unauthenticated(conn, p->unauthenticated);
    VoReply rep = { .status = 401, .file_fd = -1, .header_name = MHD_HTTP_HEADER_CONNECTION };
    snprintf(rep.header_value, sizeof(rep.header_value), "close");
    vo_reply_error(&rep, VO_ERR_UNAUTHENTICATED, "%s", p->unauthenticated);
    enum MHD_Result r = send_reply(conn, p, &rep);
    json_decref(rep.json);
    return r;
}

/* Users (access-check.c): 401, 403 or 429 before any body is read, the
 * connection closed after the answer; rep's JSON is consumed. */
static enum MHD_Result refuse_now(struct MHD_Connection *conn, PendingRequest *p, VoReply *rep)
{
    p->refused = true;
    if (rep->status == 401)
        log_unauthenticated(conn, json_string_value(json_object_get(
                                      json_object_get(rep->json, "error"), "message")));
    vo_strv_pushf(&rep->extra_headers, "%s", MHD_HTTP_HEADER_CONNECTION);
    vo_strv_pushf(&rep->extra_headers, "close");
    enum MHD_Result r = send_reply(conn, p, rep);
    json_decref(rep->json);
    vo_strv_free(rep->extra_headers);
    return r;
}

/* Users: the web UI's files (web-files.c), public, answered before any
 * authentication (the login page is one of them); no body is read. */
static enum MHD_Result serve_web_file(struct MHD_Connection *conn, PendingRequest *p)
{
    p->refused = true;
    VoReply rep = { .status = 200, .file_fd = -1 };
    vo_api_web_file(p->server->d, conn, p->raw_uri, &rep);
    enum MHD_Result r = send_reply(conn, p, &rep);
    if (rep.file_fd >= 0)
        close(rep.file_fd);
    json_decref(rep.json);
    free(rep.text);
    vo_strv_free(rep.extra_headers);
    return r;
}

/* A read answered from data that may be stale says so in a header,
 * Vireo-Stale: "cluster has no quorum since <RFC 3339>": a store read made
 * for it answered without a quorum (vo_store_stale_read), or the store
 * knows its quorum lost now (then what this host holds in memory, its own
 * VMs or caches fed by watches, may be out of date too: the others may
 * have moved on). A forwarded answer brings the peer's own. */
static void mark_stale(VoDaemon *d, const char *method, VoReply *rep)
{
    int64_t since = vo_store_stale_read(), now_since = vo_store_stale_since(d->store);
    vo_store_stale_reset();
    if (now_since && (!since || now_since < since))
        since = now_since;
    if (!since || rep->status / 100 != 2 || rep->upgrade ||
        (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0))
        return;
    for (size_t i = 0; rep->extra_headers && rep->extra_headers[i] && rep->extra_headers[i + 1];
         i += 2)
        if (!strcasecmp(rep->extra_headers[i], VO_STALE_HEADER))
            return;
    char when[32];
    vo_time_format(since, when);
    vo_strv_pushf(&rep->extra_headers, "%s", VO_STALE_HEADER);
    vo_strv_pushf(&rep->extra_headers, "cluster has no quorum since %s", when);
}

/* A change asked while the store knows its quorum lost (reads stale) is
 * not acted on from stale data: one linearizable read first, which fails
 * within etcd's own timeout (about 7 s) while the quorum is still gone
 * (503 "cluster has no quorum", nothing changed) or, the quorum back,
 * lets the request run. False with rep filled. */
static bool quorum_gate(VoDaemon *d, const char *method, VoReply *rep)
{
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD") || !d->store)
        return true;
    /* A host that fenced itself is most likely cut off, whether or not its
     * store met the loss yet (on a loaded host its own requests may still
     * be on their way): it asks too, and says it is fenced, which is why a
     * start or create stays refused a while after quorum is back. */
    _cleanup_free_ char *fenced = NULL;
    (void)vo_fence_check_start(d, &fenced);
    int64_t since = vo_store_stale_since(d->store);
    if (!since && !fenced)
        return true;
    int64_t rev = 0;
    int r = d->store->ops->revision(d->store, &rev);
    if (r != -EAGAIN)
        return true; /* answered (quorum back), or another error the handler meets too */
    char when[48] = "";
    if (since) {
        char at[32];
        vo_time_format(since, at);
        snprintf(when, sizeof(when), " (since %s)", at);
    }
    _cleanup_free_ char *msg = vo_asprintf(
        "cluster has no quorum%s: nothing was changed; changes work again once a "
        "majority of the cluster's voting members reach each other%s%s",
        when, fenced ? ". Also: " : "", fenced ? fenced : "");
    vo_reply_errno(rep, -EAGAIN, msg);
    return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    VoApiServer *s = cls;
    VoDaemon *d = s->d;
    PendingRequest *p = *con_cls;
    if (!p) /* on_request_line always runs first; refuse rather than guess */
        *con_cls = p = on_request_line(s, NULL, conn);
    if (!p->started) {
        p->started = true;
        /* An unauthenticated peer reaches no handler, not even an upload's. */
        if (s->tls && !without_client_cert(method, p->raw_uri) &&
            (p->unauthenticated = client_unauthenticated(conn)))
            return refuse_unauthenticated(conn, p);
        p->from_peer = s->tls && !without_client_cert(method, p->raw_uri);
        if (s->users && vo_api_web_wants(method, p->raw_uri))
            return serve_web_file(conn, p);
        VoReply refusal = { .status = 0, .file_fd = -1 };
        route_request(d, conn, url, method, version, p, &refusal);
        if (refusal.json)
            return refuse_now(conn, p, &refusal);
        return MHD_YES;
    }
    if (p->unauthenticated || p->refused) { /* answered already: its body is not read */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0 && p->streaming) {
        write_upload(p, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (p->len + *upload_data_size > VO_API_MAX_BODY)
            p->too_large = true;
        else {
            p->body = realloc(p->body, p->len + *upload_data_size + 1);
            if (!p->body)
                abort();
            memcpy(p->body + p->len, upload_data, *upload_data_size);
            p->len += *upload_data_size;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    VoRequest req = { .d = d, .conn = conn, .method = method, .path = p->raw_uri };
    /* Whatever it is, its caller's roles decided it (VoReply's per_caller). */
    VoReply rep = { .status = 200, .file_fd = -1, .per_caller = true,
                    .unavailable_message = d->store ? d->store->ops->unavailable_message : NULL,
                    .unknown_message = d->store ? d->store->ops->unknown_message : NULL };
    memcpy(req.params, p->match.params, sizeof(req.params));
    /* No idle timeout while the handler works (setting it again restarts it). */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    set_requester(d, conn, p); /* operations the handler queues say who asked */
    vo_store_stale_reset();
    if (p->match_r < 0)
        reply_route_error(p, &rep);
    else if (p->streaming)
        finish_upload(&req, p, &rep);
    else if (parse_body(&req, p, &rep) && quorum_gate(d, method, &rep) &&
             vo_api_project_gate(&req, &rep, p->route->pattern) &&
             !vo_api_any_door(&req, &rep, p->route->pattern)) {
        p->route->fn(&req, &rep);
        vo_api_project_filter(&req, &rep, p->route->pattern);
    }
    vo_tasks_set_requester(false, 0, 0);
    vo_tasks_set_requester_who(NULL);
    vo_access_set_current(NULL);
    vo_tasks_set_if_match(0);
    mark_stale(d, method, &rep);
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, IDLE_TIMEOUT_S);
    enum MHD_Result r = send_reply(conn, p, &rep);
    p->quit_after = rep.quit_after;
    _cleanup_free_ char *shown_method = vo_escape_bytes(method, strlen(method));
    _cleanup_free_ char *path = vo_route_raw_path(p->raw_uri);
    _cleanup_free_ char *shown_path = path ? vo_escape_bytes(path, strlen(path)) : NULL;
    log_debug("%s %s -> %d", shown_method ? shown_method : "?", shown_path ? shown_path : "?",
              rep.upgrade ? 101 : rep.status);
    if (rep.stream_fn && rep.stream_free) /* not handed to a response */
        rep.stream_free(rep.stream_cls);
    json_decref(rep.json);
    free(rep.text);
    vo_strv_free(rep.extra_headers);
    json_decref(req.body);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    PendingRequest *p = *con_cls;
    if (p && p->quit_after)
        vo_loop_quit(((VoApiServer *)cls)->d->loop);
    if (p) {
        void *upgrade_cls = atomic_exchange(&p->upgrade_cls, NULL);
        if (upgrade_cls && p->upgrade_free) /* answered 101, but no upgrade took it */
            p->upgrade_free(upgrade_cls);
        if (p->upload_fd >= 0)
            close(p->upload_fd);
        if (p->upload_path)
            (void)unlink(p->upload_path); /* the handler took what it wanted */
        free(p->upload_path);
        free(p->upload_error);
        free(p->body);
        free(p->raw_uri);
        free(p->match_error);
        free(p->unauthenticated);
        vo_route_match_clear(&p->match);
        free(p);
        *con_cls = NULL;
    }
}

/* ---- Upgraded connections ---- */

static void *upgrade_main(void *userdata)
{
    UpgradeThread *u = userdata;
    VoApiServer *s = u->server;
    u->run(u->cls, u->sock, u->first, u->first_len);
    pthread_mutex_lock(&s->lock);
    u->sock = -1; /* closed next: the server's stop must not shut it down */
    pthread_mutex_unlock(&s->lock);
    MHD_upgrade_action(u->urh, MHD_UPGRADE_ACTION_CLOSE);
    if (u->free)
        u->free(u->cls);
    pthread_mutex_lock(&s->lock);
    u->done = true;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Joins and frees the upgrade threads that have finished (caller holds s->lock). */
static void reap_upgrades_locked(VoApiServer *s)
{
    for (UpgradeThread **up = &s->upgrades; *up;) {
        UpgradeThread *u = *up;
        if (!u->done) {
            up = &u->next;
            continue;
        }
        *up = u->next;
        pthread_join(u->thread, NULL);
        free(u->first);
        free(u);
    }
}

/* The 101 went out: the request's upgrade_cls goes to its taker. */
static void on_upgraded(void *cls, struct MHD_Connection *conn, void *req_cls,
                        const char *extra_in, size_t extra_in_size, MHD_socket sock,
                        struct MHD_UpgradeResponseHandle *urh)
{
    PendingRequest *p = cls;
    void *upgrade_cls = atomic_exchange(&p->upgrade_cls, NULL);
    if (!upgrade_cls) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        return;
    }
    if (!p->upgrade_run) {
        p->upgrade_fn(upgrade_cls, conn, req_cls, extra_in, extra_in_size, sock, urh);
        return;
    }
    VoApiServer *s = p->server;
    UpgradeThread *u = vo_malloc0(sizeof(*u));
    u->server = s;
    u->sock = sock;
    u->urh = urh;
    u->cls = upgrade_cls;
    u->run = p->upgrade_run;
    u->stop = p->upgrade_stop;
    u->free = p->upgrade_free;
    if (extra_in_size > 0) {
        u->first = vo_malloc0(extra_in_size);
        memcpy(u->first, extra_in, extra_in_size);
        u->first_len = extra_in_size;
    }
    pthread_mutex_lock(&s->lock);
    reap_upgrades_locked(s);
    bool started = !s->stopping && pthread_create(&u->thread, NULL, upgrade_main, u) == 0;
    if (started) {
        u->next = s->upgrades;
        s->upgrades = u;
    }
    pthread_mutex_unlock(&s->lock);
    if (!started) {
        if (!s->stopping)
            log_warn("cannot start a thread for an upgraded connection");
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        if (u->free)
            u->free(u->cls);
        free(u->first);
        free(u);
    }
}

/* Before MHD frees the upgraded connections: end their threads (their
 * sockets shut down, what else they wait on stopped) and join them. */
static void stop_upgrades(VoApiServer *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    for (UpgradeThread *u = s->upgrades; u; u = u->next)
        if (u->sock >= 0) {
            shutdown(u->sock, SHUT_RDWR);
            if (u->stop)
                u->stop(u->cls);
        }
    UpgradeThread *list = s->upgrades;
    s->upgrades = NULL;
    pthread_mutex_unlock(&s->lock);
    while (list) {
        UpgradeThread *u = list;
        list = u->next;
        pthread_join(u->thread, NULL);
        free(u->first);
        free(u);
    }
}

/* MHD's own messages, on vireod's log (escaped like every log line). MHD
 * cannot tell that a connection handed to it by MHD_add_connection is not TCP,
 * so it tries TCP_CORK/TCP_NODELAY on Unix sockets and complains once per
 * response: those go to the debug level. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    if (strstr(msg, "TCP_CORK") || strstr(msg, "TCP_NODELAY") ||
        strstr(msg, "push the data from buffers"))
        log_debug("http: %s", msg);
    else
        log_warn("http: %s", msg);
}

/* ---- Connection limits ---- */

/* Who is at the other end: a Unix socket peer's process, a TCP peer's address. */
static void client_of(int fd, char *client, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    snprintf(client, size, "unknown");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t clen = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
            snprintf(client, size, "pid %d (uid %u)", (int)cred.pid, (unsigned)cred.uid);
    } else if (ss.ss_family == AF_INET) {
        char addr[INET_ADDRSTRLEN];
        if (inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr)))
            snprintf(client, size, "%s", addr);
    } else if (ss.ss_family == AF_INET6) {
        char addr[INET6_ADDRSTRLEN];
        if (inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr)))
            snprintf(client, size, "%s", addr);
    }
}

/* Drops the record of fd (the caller holds s->lock). */
static void forget_connection_locked(VoApiServer *s, int fd)
{
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i].fd == fd) {
            s->conns[i] = s->conns[--s->n_conns];
            return;
        }
}

/* Answers 503 with the JSON envelope before closing a connection over a limit. */
static void refuse_connection(int fd, const char *message)
{
    json_t *doc = json_pack("{s:{s:s, s:s}}", "error", "code",
                            vo_error_code_name(VO_ERR_UNAVAILABLE), "message", message);
    char *body = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    char *resp = vo_asprintf("HTTP/1.1 503 Service Unavailable\r\n"
                             "Content-Type: application/json\r\n"
                             "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s\n",
                             strlen(body) + 1, body);
    free(body);
    /* Read what the request already sent, so closing does not reset the peer. */
    char buf[4096];
    for (int i = 0; i < 16 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
        ;
    (void)!send(fd, resp, strlen(resp), MSG_DONTWAIT | MSG_NOSIGNAL);
    free(resp);
    shutdown(fd, SHUT_WR);
    close(fd);
}

/* A new connection: hand it to MHD, or refuse it when over a limit. */
static void admit_connection(VoApiServer *s, int fd, const struct sockaddr *sa, socklen_t salen)
{
    char client[64];
    client_of(fd, client, sizeof(client));
    char *refusal = NULL;
    pthread_mutex_lock(&s->lock);
    forget_connection_locked(s, fd); /* a stale record: that fd number was closed */
    size_t mine = 0;
    for (size_t i = 0; i < s->n_conns; i++)
        mine += !strcmp(s->conns[i].client, client);
    if (s->n_conns >= s->max_connections)
        refusal = vo_asprintf("vireod has %u open connections, its limit; retry later",
                              s->max_connections);
    else if (mine >= MAX_CONNECTIONS_PER_CLIENT)
        refusal = vo_asprintf("this client (%s) has %u open connections, the limit per "
                              "client; close idle ones and retry", client,
                              MAX_CONNECTIONS_PER_CLIENT);
    else {
        OpenConnection *c = &s->conns[s->n_conns++];
        c->fd = fd;
        snprintf(c->client, sizeof(c->client), "%s", client);
    }
    pthread_mutex_unlock(&s->lock);
    if (refusal) {
        log_debug("refused a connection: %s", refusal);
        refuse_connection(fd, refusal);
        free(refusal);
        return;
    }
    if (MHD_add_connection(s->mhd, fd, sa, salen) != MHD_YES) { /* MHD closed fd */
        pthread_mutex_lock(&s->lock);
        forget_connection_locked(s, fd);
        pthread_mutex_unlock(&s->lock);
    }
}

/* MHD_OPTION_NOTIFY_CONNECTION: a connection MHD managed is closing. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    VoApiServer *s = cls;
    if (code != MHD_CONNECTION_NOTIFY_CLOSED)
        return;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info)
        return;
    pthread_mutex_lock(&s->lock);
    forget_connection_locked(s, info->connect_fd);
    pthread_mutex_unlock(&s->lock);
}

static void *accept_main(void *userdata)
{
    VoApiServer *s = userdata;
    for (;;) {
        struct pollfd pfd[2] = { { .fd = s->listen_fd, .events = POLLIN },
                                 { .fd = s->stop_pipe[0], .events = POLLIN } };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("http: poll: %s", strerror(errno));
            return NULL;
        }
        if (pfd[1].revents)
            return NULL;
        struct sockaddr_storage ss;
        socklen_t salen = sizeof(ss);
        int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &salen, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn("http: cannot accept a connection: %s", strerror(errno));
                (void)poll(&pfd[1], 1, 100); /* let some close */
            }
            continue;
        }
        admit_connection(s, fd, (struct sockaddr *)&ss, salen);
    }
}

/* The total limit: at most MAX_CONNECTIONS, and half the open-files limit. */
static unsigned connection_limit(void)
{
    struct rlimit rl;
    unsigned limit = MAX_CONNECTIONS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / 2 < limit)
        limit = rl.rlim_cur / 2 > 16 ? (unsigned)(rl.rlim_cur / 2) : 16;
    return limit;
}

static void server_free(VoApiServer *s)
{
    if (s->stop_pipe[0] >= 0) {
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->socket_path)
        (void)unlink(s->socket_path);
    pthread_mutex_destroy(&s->lock);
    free(s->conns);
    free(s->socket_path);
    free(s->tls_cert);
    if (s->tls_key)
        explicit_bzero(s->tls_key, strlen(s->tls_key));
    free(s->tls_key);
    free(s->tls_ca);
    free(s);
}

/* Serves the API on listen_fd (taken, even on failure). */
static int server_start(VoApiServer *s, VoApiServer **ret)
{
    s->max_connections = connection_limit();
    s->conns = vo_malloc0(s->max_connections * sizeof(OpenConnection));
    int r = -EIO;
    if (fcntl(s->listen_fd, F_SETFL, fcntl(s->listen_fd, F_GETFL) | O_NONBLOCK) < 0 ||
        pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
        r = -errno;
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | /* select() refuses fds >= 1024 */
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC | MHD_ALLOW_UPGRADE |
                     MHD_USE_ERROR_LOG;
    struct MHD_OptionItem tls_opts[] = {
        { MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert },
        { MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key },
        /* Peers: asks clients for a certificate. Users: none asked. */
        { s->users ? MHD_OPTION_END : MHD_OPTION_HTTPS_MEM_TRUST, 0, s->tls_ca },
        { MHD_OPTION_END, 0, NULL },
    };
    if (s->tls || s->users)
        flags |= MHD_USE_TLS;
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                              MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                              MHD_OPTION_URI_LOG_CALLBACK, on_request_line, s,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                              MHD_OPTION_CONNECTION_LIMIT, s->max_connections + 16,
                              MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
                              MHD_OPTION_ARRAY, s->tls || s->users ? tls_opts : tls_opts + 3,
                              MHD_OPTION_END);
    if (!s->mhd)
        goto fail;
    r = -pthread_create(&s->accept_thread, NULL, accept_main, s);
    if (r < 0)
        goto fail;
    s->accept_running = true;
    *ret = s;
    return 0;
fail:
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    server_free(s);
    return r;
}

static VoApiServer *server_new(VoDaemon *d, int listen_fd)
{
    VoApiServer *s = vo_malloc0(sizeof(*s));
    s->d = d;
    s->listen_fd = listen_fd;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

int vo_api_server_start(VoDaemon *d, const char *socket_path, VoApiServer **ret)
{
    int fd = vo_unix_listen(socket_path, 0660);
    if (fd < 0)
        return fd;
    VoApiServer *s = server_new(d, fd);
    s->socket_path = vo_strdup(socket_path);
    return server_start(s, ret);
}

int vo_api_parse_listen(const char *text, struct sockaddr_storage *ret, socklen_t *ret_len,
                        char **ret_error)
{
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (!colon || colon == text || !colon[1])
        return vo_error_set(ret_error, -EINVAL, "--listen '%s': expected ADDRESS:PORT "
                            "(10.0.0.5:8443, [fd00::5]:8443)", text ? text : "");
    _cleanup_free_ char *host = vo_strdup(text);
    host[colon - text] = '\0';
    size_t n = strlen(host);
    if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
        memmove(host, host + 1, n - 2);
        host[n - 2] = '\0';
        if (!strchr(host, ':'))
            return vo_error_set(ret_error, -EINVAL, "--listen '%s': brackets are for an IPv6 "
                                "address; write an IPv4 one without them (10.0.0.5:8443)",
                                text);
    } else if (strchr(host, ':'))
        /* fd00::5:8443: is 8443 the port or the address's last group? */
        return vo_error_set(ret_error, -EINVAL, "--listen '%s': an IPv6 address goes in "
                            "brackets before the port ([fd00::5]:8443)", text);
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || errno || port == 0 || port > 65535 || colon[1] == '-' || colon[1] == '+')
        return vo_error_set(ret_error, -EINVAL, "--listen '%s': the port must be 1 to 65535",
                            text);
    struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                              .ai_socktype = SOCK_STREAM }, *ai = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
        return vo_error_set(ret_error, -EINVAL, "--listen '%s': '%s' is not an IP address",
                            text, host);
    memcpy(ret, ai->ai_addr, ai->ai_addrlen);
    *ret_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* Reads a PEM file whole; the error names the file and the option. */
static int read_pem(const char *path, const char *option, char **ret, char **ret_error)
{
    size_t len = 0;
    int r = vo_read_file(path, 1024 * 1024, ret, &len);
    if (r < 0)
        return vo_error_set(ret_error, r, "%s %s: cannot read it: %s", option, path,
                            strerror(-r));
    if (!strstr(*ret, "-----BEGIN ")) {
        free(*ret);
        *ret = NULL;
        return vo_error_set(ret_error, -EINVAL, "%s %s: not a PEM file", option, path);
    }
    return 0;
}

/* Loads the key pair and the CA as MHD will, to name what is wrong. */
static int check_credentials(const VoApiServer *s, const VoApiTlsFiles *tls, char **ret_error)
{
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return vo_error_set(ret_error, -ENOMEM, "out of memory");
    gnutls_datum_t cert = { (unsigned char *)s->tls_cert, (unsigned)strlen(s->tls_cert) };
    gnutls_datum_t key = { (unsigned char *)s->tls_key, (unsigned)strlen(s->tls_key) };
    gnutls_datum_t ca = { (unsigned char *)s->tls_ca, (unsigned)strlen(s->tls_ca) };
    int r = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
    if (r < 0) {
        gnutls_certificate_free_credentials(cred);
        return vo_error_set(ret_error, -EINVAL, "--tls-cert %s with --tls-key %s: %s",
                            tls->cert_file, tls->key_file, gnutls_strerror(r));
    }
    r = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
    gnutls_certificate_free_credentials(cred);
    if (r <= 0)
        return vo_error_set(ret_error, -EINVAL, "--tls-ca %s: %s", tls->ca_file,
                            r < 0 ? gnutls_strerror(r) : "no certificate in it");
    return 0;
}

/* Reads and checks the listener's address and files into s. */
static int load_tls(VoApiServer *s, const char *listen_addr, const VoApiTlsFiles *tls,
                    struct sockaddr_storage *ss, socklen_t *len, char **ret_error)
{
    int r = vo_api_parse_listen(listen_addr, ss, len, ret_error);
    if (r < 0 || (r = read_pem(tls->cert_file, "--tls-cert", &s->tls_cert, ret_error)) < 0 ||
        (r = read_pem(tls->key_file, "--tls-key", &s->tls_key, ret_error)) < 0 ||
        (r = read_pem(tls->ca_file, "--tls-ca", &s->tls_ca, ret_error)) < 0)
        return r;
    return check_credentials(s, tls, ret_error);
}

int vo_api_tls_check(const char *listen_addr, const VoApiTlsFiles *tls, char **ret_error)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    VoApiServer *s = server_new(NULL, -1);
    int r = load_tls(s, listen_addr, tls, &ss, &len, ret_error);
    server_free(s);
    return r;
}

/* Binds s's TCP socket to ss and starts serving; on failure s is freed and
 * *ret_error names the daemon option that gave the address. */
static int listen_and_start(VoApiServer *s, const struct sockaddr_storage *ss, socklen_t len,
                            const char *option, const char *listen_addr, VoApiServer **ret,
                            char **ret_error)
{
    int one = 1, r;
    s->listen_fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0 ||
        setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(s->listen_fd, (const struct sockaddr *)ss, len) < 0 ||
        listen(s->listen_fd, 128) < 0) {
        r = -errno;
        vo_error_set(ret_error, r, "%s %s: %s", option, listen_addr, strerror(errno));
        server_free(s);
        return r;
    }
    r = server_start(s, ret);
    if (r < 0)
        vo_error_set(ret_error, r, "cannot serve HTTPS on %s (see the log)", listen_addr);
    return r;
}

int vo_api_server_start_tls(VoDaemon *d, const char *listen_addr, const VoApiTlsFiles *tls,
                            VoApiServer **ret, char **ret_error)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    VoApiServer *s = server_new(d, -1);
    s->tls = true;
    int r = load_tls(s, listen_addr, tls, &ss, &len, ret_error);
    if (r < 0) {
        server_free(s);
        return r;
    }
    return listen_and_start(s, &ss, len, "--listen", listen_addr, ret, ret_error);
}

/* The users' listener's address, certificate and key into s (checked). */
static int load_users(VoApiServer *s, const char *listen_addr, const char *cert_file,
                      const char *key_file, struct sockaddr_storage *ss, socklen_t *len,
                      char **ret_error)
{
    int r = vo_api_parse_listen(listen_addr, ss, len, ret_error);
    if (r < 0 || (r = read_pem(cert_file, "certificate", &s->tls_cert, ret_error)) < 0 ||
        (r = read_pem(key_file, "key", &s->tls_key, ret_error)) < 0)
        return r;
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return vo_error_set(ret_error, -ENOMEM, "out of memory");
    gnutls_datum_t cert = { (unsigned char *)s->tls_cert, (unsigned)strlen(s->tls_cert) };
    gnutls_datum_t key = { (unsigned char *)s->tls_key, (unsigned)strlen(s->tls_key) };
    r = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
    gnutls_certificate_free_credentials(cred);
    if (r < 0)
        return vo_error_set(ret_error, -EINVAL, "%s with %s: %s", cert_file, key_file,
                            gnutls_strerror(r));
    return 0;
}

int vo_api_users_check(const char *listen_addr, const char *cert_file, const char *key_file,
                       char **ret_error)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    VoApiServer *s = server_new(NULL, -1);
    int r = load_users(s, listen_addr, cert_file, key_file, &ss, &len, ret_error);
    server_free(s);
    return r;
}

int vo_api_server_start_users(VoDaemon *d, const char *listen_addr, const char *cert_file,
                              const char *key_file, VoApiServer **ret, char **ret_error)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    VoApiServer *s = server_new(d, -1);
    s->users = true;
    int r = load_users(s, listen_addr, cert_file, key_file, &ss, &len, ret_error);
    if (r < 0) {
        server_free(s);
        return r;
    }
    return listen_and_start(s, &ss, len, "--https", listen_addr, ret, ret_error);
}

void vo_api_server_stop(VoApiServer *s)
{
    if (!s)
        return;
    if (s->accept_running) {
        (void)!write(s->stop_pipe[1], "x", 1);
        pthread_join(s->accept_thread, NULL);
    }
    vo_api_events_shutdown(); /* their threads block on the store, not the socket */
    stop_upgrades(s);         /* MHD_stop_daemon frees what their threads use */
    MHD_stop_daemon(s->mhd);
    server_free(s);
}
