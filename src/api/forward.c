/* forward.c: answer an API request with a peer vireod's answer (forward.h). */
#include "api/forward.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/access.h"
#include "api/route-match.h"
#include "util/util.h"

static void reply_error(VoReply *rep, VoErrorCode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(VoReply *rep, VoErrorCode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vo_vasprintf(fmt, ap);
    va_end(ap);
    json_decref(rep->json);
    rep->status = vo_error_http_status(code);
    rep->json = json_pack("{s:{s:s, s:s}}", "error", "code", vo_error_code_name(code),
                          "message", msg);
    free(msg);
}

static void add_header(char ***headers, size_t *n, const char *name, const char *value)
{
    if (!value)
        return;
    *headers = realloc(*headers, (*n + 3) * sizeof(char *));
    if (!*headers)
        abort();
    (*headers)[(*n)++] = vo_strdup(name);
    (*headers)[(*n)++] = vo_strdup(value);
    (*headers)[*n] = NULL;
}

/* The peer's answer as this server's: status, body and headers as they were. */
static void reply_verbatim(VoReply *rep, VoPeerResponse *resp)
{
    json_decref(rep->json);
    rep->json = NULL;
    rep->status = resp->status;
    /* Always a text body, even empty, so the reply is exactly the peer's. */
    rep->text = resp->body ? resp->body : vo_strdup("");
    rep->text_len = resp->body_len;
    resp->body = NULL;
    size_t n = 0;
    add_header(&rep->extra_headers, &n, "ETag", resp->etag);
    add_header(&rep->extra_headers, &n, "Location", resp->location);
    add_header(&rep->extra_headers, &n, "Retry-After", resp->retry_after);
    add_header(&rep->extra_headers, &n, VO_STALE_HEADER, resp->stale);
    add_header(&rep->extra_headers, &n, VO_RECORD_REV_HEADER, resp->record_rev);
    /* Replaces the reply's own Content-Type (server-request.c, send_reply). */
    add_header(&rep->extra_headers, &n, "Content-Type", resp->content_type);
}

static void reply_unreachable(VoReply *rep, int r, VoPeerResponse *resp, const char *base_url)
{
    reply_error(rep, VO_ERR_BAD_GATEWAY, "the host at %s that runs this did not answer: %s",
                base_url, resp->error ? resp->error : strerror(-r));
}

/* An upgraded stream, on a thread of the server's (http.h, upgrade_run):
 * the client's first bytes, then both ways until a side closes. */
static void pump_run(void *cls, int sock, const char *first, size_t first_len)
{
    VoPeerStream *stream = cls;
    if (first_len > 0 && vo_peer_stream_send(stream, first, first_len) < 0) {
        log_debug("forwarded stream: cannot pass on the client's first bytes");
        return;
    }
    int r = vo_peer_stream_pump(stream, sock);
    if (r < 0)
        log_debug("forwarded stream ended: %s", strerror(-r));
}

/* The server stops: end a pump blocked on the peer. */
static void pump_stop(void *cls)
{
    vo_peer_stream_shutdown(cls);
}

static void pump_free(void *cls)
{
    vo_peer_stream_free(cls);
}

/* Routes whose answer is a stream of unknown length (a download, an event
 * stream that follows): the forwarder would buffer it whole, or give up
 * after VO_PEER_MAX_BODY bytes or its timeout. */
static const struct {
    const char *method, *pattern;
    const char *what;
} streamed_answers[] = {
    { "GET", "/v1/pools/{pool}/volumes/{volume}/data", "its answer streams the volume" },
    { "GET", "/v1/events", "its answer is an event stream (follow=false is forwarded)" },
};

/* Routes whose body is streamed to a file (routes.def: VO_UPLOAD): the
 * forwarder has only JSON bodies, it would send an empty one. */
static const struct {
    const char *method, *pattern;
} streamed_bodies[] = {
    { "PUT", "/v1/pools/{pool}/volumes/{volume}/data" },
};

/* Whether the query of path_and_query says follow=false (0, no). */
static bool query_follow_false(const char *path_and_query)
{
    const char *q = strchr(path_and_query, '?');
    while (q && *q) {
        q++;
        size_t n = strcspn(q, "&");
        if (n > 7 && !strncmp(q, "follow=", 7)) {
            const char *v = q + 7;
            size_t vn = n - 7;
            if ((vn == 5 && !strncmp(v, "false", 5)) || (vn == 1 && v[0] == '0') ||
                (vn == 2 && !strncmp(v, "no", 2)))
                return true;
        }
        q += n;
        if (*q != '&')
            break;
    }
    return false;
}

char *vo_forward_refusal(const char *method, const char *path_and_query)
{
    VoRouteMatch m;
    if (vo_route_match(vo_route_specs, vo_n_route_specs, method, path_and_query, &m, NULL) < 0)
        return NULL; /* the peer answers it (404, 405, 400) */
    const VoRouteSpec *spec = &vo_route_specs[m.index];
    vo_route_match_clear(&m);
    for (size_t i = 0; i < sizeof(streamed_bodies) / sizeof(streamed_bodies[0]); i++)
        if (!strcmp(spec->method, streamed_bodies[i].method) &&
            !strcmp(spec->pattern, streamed_bodies[i].pattern))
            return vo_asprintf("%s %s uploads a stream, which vireo cannot forward to "
                               "another host yet", method, spec->pattern);
    for (size_t i = 0; i < sizeof(streamed_answers) / sizeof(streamed_answers[0]); i++)
        if (!strcmp(spec->method, streamed_answers[i].method) &&
            !strcmp(spec->pattern, streamed_answers[i].pattern) &&
            !(!strcmp(spec->pattern, "/v1/events") && query_follow_false(path_and_query)))
            return vo_asprintf("%s %s cannot be forwarded to another host yet: %s", method,
                               spec->pattern, streamed_answers[i].what);
    return NULL;
}

int vo_forward_reply(const VoPeerTls *tls, const char *base_url, const VoForwardRequest *in,
                     int timeout_ms, VoReply *rep)
{
    if (in->forwarded) {
        reply_error(rep, VO_ERR_LOOP_DETECTED, "this request was forwarded by another host "
                    "already (%s) and would be forwarded again: the hosts disagree on where "
                    "it runs; retry on the host that runs it", VO_FORWARDED_HEADER);
        return 0;
    }
    /* Only a GET upgrades (the console); anything else is a plain request. */
    bool upgrade = in->upgrade && !strcmp(in->method, "GET");
    _cleanup_free_ char *refusal = vo_forward_refusal(in->method, in->path_and_query);
    if (refusal) {
        reply_error(rep, VO_ERR_INVALID_STATE, "%s: run it on the host that has it (%s), "
                    "on its own socket", refusal, base_url);
        return 0;
    }
    /* Who asked, so that the peer checks and audits the request as theirs
     * (access.h); a peer's own request (no principal of a user) goes as
     * the peer's. A user's that cannot be named is not sent: without the
     * header the peer would take it for its own (full access). */
    const VoPrincipal *who = vo_access_current();
    _cleanup_free_ char *principal = NULL;
    int e = vo_principal_header_encode_for(who, in->principal_members, &principal);
    if (e == -EPROTO) {
        /* An older host, which would take this uid for root. */
        char name[128];
        vo_principal_describe(who, name, sizeof(name));
        reply_error(rep, VO_ERR_INVALID_STATE, "the host that serves this (%s) runs an older "
                    "vireod that would take %s for root: not forwarded; ask as root, or "
                    "when that host is upgraded", base_url, name);
        return 0;
    }
    if (!principal && who->kind != VO_PRINCIPAL_NONE && who->kind != VO_PRINCIPAL_PEER) {
        reply_error(rep, VO_ERR_INTERNAL, "cannot name who asked (%s) to the host that serves "
                    "it (%s): not forwarded", VO_PRINCIPAL_HEADER, base_url);
        return 0;
    }
    char *headers[8] = { 0 };
    size_t n = 0;
    headers[n++] = vo_asprintf("%s: 1", VO_FORWARDED_HEADER);
    if (in->content_type)
        headers[n++] = vo_asprintf("Content-Type: %s", in->content_type);
    if (in->if_match)
        headers[n++] = vo_asprintf("If-Match: %s", in->if_match);
    if (in->last_event_id)
        headers[n++] = vo_asprintf("Last-Event-ID: %s", in->last_event_id);
    if (in->extra_header)
        headers[n++] = vo_strdup(in->extra_header);
    if (principal)
        headers[n++] = vo_asprintf("%s: %s", VO_PRINCIPAL_HEADER, principal);
    VoPeerResponse resp = { 0 };
    int r;
    if (upgrade) {
        VoPeerStream *stream = NULL;
        r = vo_peer_stream_connect(tls, base_url, in->path_and_query, in->upgrade,
                                   (const char *const *)headers, timeout_ms, &stream, &resp);
        if (r >= 0 && stream) {
            json_decref(rep->json);
            rep->json = NULL;
            rep->upgrade = true;
            rep->upgrade_run = pump_run;
            rep->upgrade_stop = pump_stop;
            rep->upgrade_free = pump_free;
            rep->upgrade_cls = stream;
        }
    } else
        r = vo_peer_request(tls, base_url, in->method, in->path_and_query,
                            (const char *const *)headers, in->body, in->body_len, timeout_ms,
                            &resp);
    if (r < 0)
        reply_unreachable(rep, r, &resp, base_url);
    else if (!rep->upgrade)
        reply_verbatim(rep, &resp);
    vo_peer_response_clear(&resp);
    for (size_t i = 0; i < n; i++)
        free(headers[i]);
    return r < 0 ? r : 0;
}

void vo_api_forward(VoRequest *req, VoReply *rep, const VoPeerTls *tls, const char *base_url,
                    unsigned principal_members)
{
    struct MHD_Connection *c = req->conn;
    const char *upgrade = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade");
    const char *connection = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection");
    VoForwardRequest in = {
        .method = req->method,
        .path_and_query = req->path,
        .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"),
        .if_match = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-Match"),
        .last_event_id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID"),
        /* As libmicrohttpd decides whether it may answer 101. */
        .upgrade = upgrade && vo_http_has_token(connection, "upgrade") ? upgrade : NULL,
        .forwarded = MHD_lookup_connection_value(c, MHD_HEADER_KIND, VO_FORWARDED_HEADER) != NULL,
        .principal_members = principal_members,
    };
    _cleanup_free_ char *body = NULL;
    /* A streamed upload's body is in a file, not req->body: never forward
     * it as an empty one (vo_forward_reply refuses its route too). */
    if (req->upload_path) {
        reply_error(rep, VO_ERR_INVALID_STATE, "%s %s uploads a stream, which vireo cannot "
                    "forward to another host yet: run it on the host that has it (%s), on its "
                    "own socket", req->method, req->path, base_url);
        return;
    }
    if (req->body) {
        body = json_dumps(req->body, JSON_COMPACT);
        in.body = body;
        in.body_len = body ? strlen(body) : 0;
    }
    vo_forward_reply(tls, base_url, &in, VO_FORWARD_TIMEOUT_MS, rep);
}
