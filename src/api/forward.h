/* forward.h: answering an API request with another vireod's answer (the
 * host that owns the object), over mutual TLS (cluster/peer-client.h):
 * the peer's status, body and ETag/Location/Retry-After verbatim, and for an
 * upgrade (the console) the byte stream proxied both ways. Forwarded
 * requests carry "X-Vireo-Forwarded: 1"; one that already carries it is
 * refused (508 loop-detected) rather than forwarded again. They carry the
 * principal of the thread's request too (X-Vireo-Principal, access.h): the
 * peer checks and audits them as that user's, not as its own. */
#pragma once

#include <stdbool.h>

#include "api/http.h"
#include "cluster/peer-client.h"

#define VO_FORWARDED_HEADER "X-Vireo-Forwarded"
/* How long a forwarded request may take (an upgrade: until the 101). */
#define VO_FORWARD_TIMEOUT_MS 60000

/* What is forwarded of a request. */
typedef struct {
    const char *method;
    const char *path_and_query; /* raw, as the client sent it */
    const char *content_type;   /* these headers of the request, or NULL */
    const char *if_match;
    const char *last_event_id;  /* an event stream's resume point */
    const char *upgrade;        /* an upgrade request's protocol ("vireo-console"), or NULL */
    bool forwarded;             /* it carries X-Vireo-Forwarded already */
    const char *extra_header;   /* one more header ("Name: value"), or NULL */
    const char *body;           /* may be NULL */
    size_t body_len;
    unsigned principal_members; /* the optional members of X-Vireo-Principal the
                                 * peer understands (VoClusterHost, access.h) */
} VoForwardRequest;

/* Why METHOD path_and_query cannot be forwarded yet, or NULL: its body is a
 * stream (an upload: routes.def VO_UPLOAD) or its answer is one (a
 * download, GET /v1/events unless follow=false), which the forwarder would
 * lose or buffer whole. Caller frees. */
char *vo_forward_refusal(const char *method, const char *path_and_query);

/* Fills rep with the peer's answer to in: its status, body, Content-Type,
 * ETag, Location and Retry-After; 502 bad-gateway naming the peer when it
 * cannot be reached, 508 loop-detected for an already forwarded request,
 * 409 invalid-state naming the peer for what vo_forward_refusal refuses,
 * 500 internal for a user's request whose principal cannot be named (it
 * is never sent as the peer's own), 409 invalid-state for one the peer
 * would take for more than it is (a uid of the Unix socket other than
 * root's, to a host too old to be told: access.h).
 * An upgrade is a GET with in->upgrade (another method with it is a plain
 * request); when the peer accepted it, rep->upgrade is set: the 101 goes to
 * the client and the bytes are pumped on a thread the server tracks
 * (rep->upgrade_run), and rep->upgrade_free frees the stream if the client
 * never gets the 101.
 * Returns 0 when the request was answered here or by the peer (any status),
 * or the -errno of a peer that could not be reached (rep then holds the
 * 502). */
int vo_forward_reply(const VoPeerTls *tls, const char *base_url, const VoForwardRequest *in,
                     int timeout_ms, VoReply *rep);

/* vo_forward_reply for the request a route handler has: its method, raw
 * path, JSON body, Content-Type, If-Match, Last-Event-ID, Upgrade (when
 * Connection holds the token "upgrade") and X-Vireo-Forwarded. A streamed
 * upload (req->upload_path) is refused (409). */
void vo_api_forward(VoRequest *req, VoReply *rep, const VoPeerTls *tls, const char *base_url,
                    unsigned principal_members);
