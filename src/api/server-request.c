/* server-request.c: one request through vireod's HTTP server (part of
 * server.c): its request line, who asks (peer certificate, user
 * authentication), the route matched, the body read (JSON, content type,
 * limits) or streamed to a file (uploads), the quorum gate and stale
 * marks, the web UI's files, the handler called and its reply sent. */
#include "api/http.h"
#include "api/server-internal.h"

#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/access-check.h"
#include "api/forward.h"
#include "api/route-match.h"
#include "api/vm-place-api.h"
#include "api/web-files.h"
#include "daemon/fence.h"
#include "state/store.h"
#include "util/time-format.h"
#include "util/util.h"

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

static enum MHD_Result send_reply(struct MHD_Connection *conn, PendingRequest *p, VoReply *rep)
{
    struct MHD_Response *resp;
    const char *ctype = "application/json";
    if (rep->upgrade) {
        /* The request owns upgrade_cls from here (vo_api_server_on_upgraded,
         * vo_api_server_on_completed). */
        p->upgrade_fn = rep->upgrade_fn;
        p->upgrade_run = rep->upgrade_run;
        p->upgrade_stop = rep->upgrade_stop;
        p->upgrade_free = rep->upgrade_free;
        atomic_store(&p->upgrade_cls, rep->upgrade_cls);
        rep->upgrade_cls = NULL;
        resp = MHD_create_response_for_upgrade(vo_api_server_on_upgraded, p);
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
void *vo_api_server_on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
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
    vo_api_server_client_of(info ? info->connect_fd : -1, client, sizeof(client));
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

enum MHD_Result vo_api_server_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                           const char *method, const char *version,
                           const char *upload_data, size_t *upload_data_size,
                           void **con_cls)
{
    VoApiServer *s = cls;
    VoDaemon *d = s->d;
    PendingRequest *p = *con_cls;
    if (!p) /* vo_api_server_on_request_line always runs first; refuse rather than guess */
        *con_cls = p = vo_api_server_on_request_line(s, NULL, conn);
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

void vo_api_server_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
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
