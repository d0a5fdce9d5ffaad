/* ws-relay.c: a two-way relay between an upgraded HTTP connection and a
 * local socket (QEMU's VNC socket, the serial console), on a thread of the
 * server's: in WebSocket frames (RFC 6455, binary; util/websocket.c does the
 * framing) for browsers, or raw for the CLI. Also the WebSocket handshake's
 * checks (version, key, Origin), shared by every such route. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/route-match.h"
#include "api/ws-relay.h"
#include "util/util.h"
#include "util/websocket.h"

/* A peer that takes nothing for this long ends the relay. */
#define RELAY_WRITE_TIMEOUT_MS 30000
#define RELAY_CHUNK (64 * 1024)

typedef struct {
    int peer;        /* the peer: QEMU's VNC socket, the serial console's socketpair */
    bool websocket; /* framed (RFC 6455), else raw */
} Relay;

static void relay_free(void *cls)
{
    Relay *relay = cls;
    if (relay->peer >= 0)
        close(relay->peer);
    free(relay);
}

/* The server stops: wake the relay (its client socket is shut down too). */
static void relay_stop(void *cls)
{
    Relay *relay = cls;
    shutdown(relay->peer, SHUT_RDWR);
}

/* Writes all of data to fd, waiting (bounded) while it takes nothing. */
static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            int pr = poll(&pfd, 1, RELAY_WRITE_TIMEOUT_MS);
            if (pr <= 0)
                return pr == 0 ? -ETIMEDOUT : -errno;
            continue;
        }
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int ws_send(int fd, uint8_t opcode, const void *data, size_t len)
{
    uint8_t header[VO_WS_MAX_HEADER];
    size_t hl = vo_ws_frame_header(opcode, len, header);
    int r = write_all(fd, header, hl);
    return r < 0 ? r : write_all(fd, data, len);
}

/* What the client sent (in, *in_len bytes): raw, passed on; framed, every
 * whole frame handled and the rest kept. 1 when the client closed. */
static int from_client(Relay *relay, int sock, uint8_t *in, size_t *in_len)
{
    if (!relay->websocket) {
        int r = write_all(relay->peer, in, *in_len);
        *in_len = 0;
        return r;
    }
    size_t pos = 0;
    int r = 0;
    while (r == 0 && pos < *in_len) {
        VoWsFrame f;
        long n = vo_ws_parse(in + pos, *in_len - pos, &f);
        if (n == 0)
            break;
        if (n < 0) {
            /* 1002: protocol error; 1009: too big. */
            uint8_t code[2] = { 0x03, n == -EMSGSIZE ? 0xf1 : 0xea };
            (void)ws_send(sock, VO_WS_OP_CLOSE, code, sizeof(code));
            return (int)n;
        }
        const uint8_t *payload = in + pos + f.header_len;
        switch (f.opcode) {
        case VO_WS_OP_CONT:
        case VO_WS_OP_TEXT:
        case VO_WS_OP_BINARY:
            r = write_all(relay->peer, payload, f.payload_len);
            break;
        case VO_WS_OP_PING:
            r = ws_send(sock, VO_WS_OP_PONG, payload, f.payload_len);
            break;
        case VO_WS_OP_CLOSE:
            (void)ws_send(sock, VO_WS_OP_CLOSE, payload, f.payload_len < 2 ? 0 : 2);
            r = 1;
            break;
        default: /* pong */
            break;
        }
        pos += (size_t)n;
    }
    memmove(in, in + pos, *in_len - pos);
    *in_len -= pos;
    return r;
}

static void relay_run(void *cls, int sock, const char *first, size_t first_len)
{
    Relay *relay = cls;
    size_t cap = relay->websocket ? VO_WS_MAX_PAYLOAD + VO_WS_MAX_HEADER : RELAY_CHUNK;
    _cleanup_free_ uint8_t *in = vo_malloc0(cap);
    _cleanup_free_ uint8_t *out = vo_malloc0(RELAY_CHUNK);
    size_t in_len = 0;
    int r = 0;
    if (first_len > 0) {
        if (first_len > cap)
            return;
        memcpy(in, first, first_len);
        in_len = first_len;
        r = from_client(relay, sock, in, &in_len);
    }
    while (r == 0) {
        struct pollfd pfd[2] = { { .fd = sock, .events = POLLIN },
                                 { .fd = relay->peer, .events = POLLIN } };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents) {
            ssize_t n = recv(sock, in + in_len, cap - in_len, MSG_DONTWAIT);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0)
                break;
            in_len += (size_t)n;
            r = from_client(relay, sock, in, &in_len);
            if (r == 0 && in_len == cap)
                r = -EMSGSIZE; /* cannot happen: a frame fits (parse checks its size) */
        }
        if (r == 0 && pfd[1].revents) {
            ssize_t n = recv(relay->peer, out, RELAY_CHUNK, MSG_DONTWAIT);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) {
                if (relay->websocket) /* 1001: going away (the VM stopped) */
                    (void)ws_send(sock, VO_WS_OP_CLOSE, (const uint8_t[]){ 0x03, 0xe9 }, 2);
                break;
            }
            r = relay->websocket ? ws_send(sock, VO_WS_OP_BINARY, out, (size_t)n)
                                 : write_all(sock, out, (size_t)n);
        }
    }
    if (r < 0)
        log_debug("relay ended: %s", strerror(-r));
}

static bool header_has_token(struct MHD_Connection *conn, const char *header, const char *token)
{
    return vo_http_has_token(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, header), token);
}

bool vo_upgrade_requested(VoRequest *req, const char *protocol)
{
    return header_has_token(req->conn, "Connection", "upgrade") &&
           header_has_token(req->conn, "Upgrade", protocol);
}

bool vo_ws_requested(VoRequest *req)
{
    return vo_upgrade_requested(req, "websocket");
}

bool vo_ws_handshake_check(VoRequest *req, VoReply *rep, const char *what, char accept[29])
{
    const char *version = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                      "Sec-WebSocket-Version");
    if (!version || strcmp(version, "13")) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "Sec-WebSocket-Version: expected 13 "
                       "(RFC 6455)");
        return false;
    }
    if (vo_ws_accept_key(MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     "Sec-WebSocket-Key"), accept) < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "Sec-WebSocket-Key: expected the base64 "
                       "of 16 random bytes (RFC 6455)");
        return false;
    }
    const char *origin = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Host");
    if (!vo_ws_origin_allowed(origin, host)) {
        vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "Origin '%s' is not this server's "
                       "(Host '%s'): open %s from a page vireod serves, or from a client "
                       "that sends no Origin", origin, host ? host : "", what);
        return false;
    }
    return true;
}

void vo_ws_relay_reply(VoRequest *req, VoReply *rep, int peer, const char *accept,
                       const char *raw_protocol)
{
    Relay *relay = vo_malloc0(sizeof(*relay));
    relay->peer = peer;
    relay->websocket = accept != NULL;
    json_decref(rep->json);
    rep->json = NULL;
    rep->upgrade = true;
    rep->upgrade_protocol = accept ? "websocket" : raw_protocol;
    if (accept) {
        vo_strv_pushf(&rep->extra_headers, "%s", "Sec-WebSocket-Accept");
        vo_strv_pushf(&rep->extra_headers, "%s", accept);
        if (header_has_token(req->conn, "Sec-WebSocket-Protocol", "binary")) {
            vo_strv_pushf(&rep->extra_headers, "%s", "Sec-WebSocket-Protocol");
            vo_strv_pushf(&rep->extra_headers, "%s", "binary");
        }
    }
    rep->upgrade_run = relay_run;
    rep->upgrade_stop = relay_stop;
    rep->upgrade_free = relay_free;
    rep->upgrade_cls = relay;
}
