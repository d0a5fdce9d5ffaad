/* peer-client.h: vireod's HTTPS client to another vireod of its cluster
 * (mutual TLS with the cluster CA, libcurl): one request and its whole
 * answer, or an upgraded connection (the console) as a raw two-way byte
 * stream to pump against a local socket. The peer's certificate must name
 * the address of base_url (a SAN IP for "https://10.0.0.5:8443"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* This host's certificate and key (shown to the peer) and the cluster CA
 * (that must have signed the peer's), PEM files. */
typedef struct {
    const char *cert_file;
    const char *key_file;
    const char *ca_file;
} VoPeerTls;

/* A peer's answer larger than this is refused (-EMSGSIZE). */
#define VO_PEER_MAX_BODY (64u * 1024 * 1024)

/* A host that made a VM the manager placed there answers its 202 with the
 * store revision at which it rewrote its host record (api/vm-place-api.c):
 * the manager keeps the create's room reserved until its snapshot holds
 * that revision, without reading the record itself. */
#define VO_RECORD_REV_HEADER "Vireo-Record-Revision"

typedef struct {
    int status;          /* the peer's HTTP status */
    char *content_type;  /* these headers of its answer, or NULL */
    char *etag;
    char *location;
    char *retry_after;
    char *stale;         /* Vireo-Stale: it answered from data that may be stale */
    char *record_rev;    /* VO_RECORD_REV_HEADER (a placed create's answer) */
    char *body;          /* NUL-terminated after body_len bytes, or NULL when empty */
    size_t body_len;
    char *error;         /* a failed call (< 0): why, naming the peer */
} VoPeerResponse;

void vo_peer_response_clear(VoPeerResponse *r);
/* What a peer's error answer says: its {"error":{"message"}}, else the
 * start of its body (malloc'd). */
char *vo_peer_answer_text(const VoPeerResponse *resp);

/* METHOD base_url + path_and_query ("https://10.0.0.5:8443" + "/v1/vms?x=1"),
 * with headers ("Name: value", NULL-terminated; may be NULL) and body (may be
 * NULL). 0 with ret filled when the peer answered (any status), -errno with
 * ret->error when it could not be reached, refused the TLS handshake
 * (-EACCES), did not answer within timeout_ms (-ETIMEDOUT), or answered more
 * than VO_PEER_MAX_BODY (-EMSGSIZE). The connect phase (TCP and TLS
 * handshake) gets at most VO_PEER_CONNECT_TIMEOUT_MS: a peer not taking
 * the connection gives -ECONNREFUSED (or -EACCES for a refused handshake),
 * and then it never got the request; after -ETIMEDOUT or -ECONNRESET it
 * may have acted on it. */
#define VO_PEER_CONNECT_TIMEOUT_MS 4000
int vo_peer_request(const VoPeerTls *tls, const char *base_url, const char *method,
                    const char *path_and_query, const char *const *headers, const char *body,
                    size_t body_len, int timeout_ms, VoPeerResponse *ret);

/* GET base_url + path_and_query whose answer may be large (an image's
 * file): with status 200, the body goes to sink piece by piece (sink
 * returns 0, or -errno to stop the transfer, which then returns that
 * -errno); any other status is collected in ret->body as vo_peer_request
 * does. Fails (-ETIMEDOUT) when no byte came for stall_ms, whatever the
 * total time. Otherwise as vo_peer_request. */
typedef int (*VoPeerSink)(const char *data, size_t len, void *userdata);
int vo_peer_download(const VoPeerTls *tls, const char *base_url, const char *path_and_query,
                     const char *const *headers, int stall_ms, VoPeerSink sink,
                     void *userdata, VoPeerResponse *ret);

/* An upgraded connection to a peer. */
typedef struct VoPeerStream VoPeerStream;

/* GET path_and_query with "Connection: Upgrade" and "Upgrade: upgrade"
 * (plus headers, as above) over a new TLS connection. 0 and *ret when the
 * peer switched protocols (101); 0, *ret = NULL and ret_response filled when
 * it answered anything else (its error, to pass on); -errno and
 * ret_response->error when it could not be reached or did not answer within
 * timeout_ms. */
int vo_peer_stream_connect(const VoPeerTls *tls, const char *base_url, const char *path_and_query,
                           const char *upgrade, const char *const *headers, int timeout_ms,
                           VoPeerStream **ret, VoPeerResponse *ret_response);

/* Copies bytes both ways between the peer and local_fd (a connected socket)
 * until either side closes or fails; blocks. What the peer sent after its 101
 * goes to local_fd first. Returns 0 when a side closed, -errno on an error. */
int vo_peer_stream_pump(VoPeerStream *s, int local_fd);

/* Sends len bytes to the peer (before or between pumps); 0 or -errno. */
int vo_peer_stream_send(VoPeerStream *s, const char *buf, size_t len);

/* Shuts the connection to the peer down (from another thread, say): a pump
 * or send blocked on it returns. The stream is still to be freed. */
void vo_peer_stream_shutdown(VoPeerStream *s);

void vo_peer_stream_free(VoPeerStream *s);
