/* forward.c: answer an API request with a peer vireod's answer (forward.h). */
#include "api/forward.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    /* Replaces the reply's own Content-Type (server.c, send_reply). */
    add_header(&rep->extra_headers, &n, "Content-Type", resp->content_type);
}

static void reply_unreachable(VoReply *rep, int r, VoPeerResponse *resp, const char *base_url)
{
    reply_error(rep, VO_ERR_BAD_GATEWAY, "the host at %s that runs this did not answer: %s",
                base_url, resp->error ? resp->error : strerror(-r));
}

typedef struct {
    VoPeerStream *stream;
    int sock;
    struct MHD_UpgradeResponseHandle *urh;
} Pump;

static void *pump_main(void *userdata)
{
    Pump *p = userdata;
    int r = vo_peer_stream_pump(p->stream, p->sock);
    if (r < 0)
        log_debug("forwarded stream ended: %s", strerror(-r));
    vo_peer_stream_free(p->stream);
    MHD_upgrade_action(p->urh, MHD_UPGRADE_ACTION_CLOSE); /* closes sock */
    free(p);
    return NULL;
}

static void on_upgraded(void *cls, struct MHD_Connection *conn, void *req_cls,
                        const char *extra_in, size_t extra_in_size, MHD_socket sock,
                        struct MHD_UpgradeResponseHandle *urh)
{
    Pump *p = vo_malloc0(sizeof(*p));
    p->stream = cls;
    p->sock = sock;
    p->urh = urh;
    /* Bytes the client sent right after its request go first. */
    if (extra_in_size > 0 && vo_peer_stream_send(p->stream, extra_in, extra_in_size) < 0)
        log_debug("forwarded stream: cannot pass on the client's first bytes");
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, pump_main, p) != 0) {
        log_warn("cannot start a thread for a forwarded stream");
        vo_peer_stream_free(p->stream);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        free(p);
    }
    pthread_attr_destroy(&attr);
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
    char *headers[6] = { 0 };
    size_t n = 0;
    headers[n++] = vo_asprintf("%s: 1", VO_FORWARDED_HEADER);
    if (in->content_type)
        headers[n++] = vo_asprintf("Content-Type: %s", in->content_type);
    if (in->if_match)
        headers[n++] = vo_asprintf("If-Match: %s", in->if_match);
    if (in->extra_header)
        headers[n++] = vo_strdup(in->extra_header);
    VoPeerResponse resp = { 0 };
    int r;
    if (in->upgrade) {
        VoPeerStream *stream = NULL;
        r = vo_peer_stream_connect(tls, base_url, in->path_and_query, in->upgrade,
                                   (const char *const *)headers, timeout_ms, &stream, &resp);
        if (r >= 0 && stream) {
            json_decref(rep->json);
            rep->json = NULL;
            rep->upgrade = true;
            rep->upgrade_fn = on_upgraded;
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

void vo_api_forward(VoRequest *req, VoReply *rep, const VoPeerTls *tls, const char *base_url)
{
    struct MHD_Connection *c = req->conn;
    const char *upgrade = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade");
    const char *connection = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection");
    VoForwardRequest in = {
        .method = req->method,
        .path_and_query = req->path,
        .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"),
        .if_match = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-Match"),
        .upgrade = upgrade && connection && strcasestr(connection, "upgrade") ? upgrade : NULL,
        .forwarded = MHD_lookup_connection_value(c, MHD_HEADER_KIND, VO_FORWARDED_HEADER) != NULL,
    };
    _cleanup_free_ char *body = NULL;
    if (req->body) {
        body = json_dumps(req->body, JSON_COMPACT);
        in.body = body;
        in.body_len = body ? strlen(body) : 0;
    }
    vo_forward_reply(tls, base_url, &in, VO_FORWARD_TIMEOUT_MS, rep);
}
