/* display-api.c: a running VM's display: GET /v1/vms/{vm}/screenshot (a
 * PNG), POST /v1/vms/{vm}/send-keys (key combinations and text typed), and
 * GET /v1/vms/{vm}/vnc, its VNC stream: a WebSocket (RFC 6455, binary
 * frames; noVNC's "binary" subprotocol) or, for `vireo console --vnc`, a
 * raw upgraded stream ("Upgrade: vireo-vnc", like the serial console's),
 * relayed on a thread of the server's to QEMU's VNC Unix socket. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/handlers.h"
#include "api/route-match.h"
#include "daemon/vms.h"
#include "qemu/qemu-keys.h"
#include "util/unix-socket.h"
#include "util/util.h"
#include "util/websocket.h"

/* Bounds of one send-keys request. */
#define KEYS_MAX 128
#define TEXT_MAX 1024
/* A peer that takes nothing for this long ends the relay. */
#define RELAY_WRITE_TIMEOUT_MS 30000
#define RELAY_CHUNK (64 * 1024)
/* How long QEMU's VNC server may take to take a new connection. */
#define VNC_CONNECT_TIMEOUT_MS 5000

void vo_api_vm_screenshot(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
    if (!vm)
        return;
    char *png = NULL;
    size_t len = 0;
    _cleanup_free_ char *error = NULL;
    int r = vo_vm_screenshot(vm, &png, &len, &error);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        return;
    }
    rep->status = 200;
    rep->text = png;
    rep->text_len = len;
    rep->content_type = "image/png";
}

void vo_api_vm_send_keys(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    json_t *keys = NULL;
    const char *text = NULL;
    if (!vm || !vo_request_unpack(req, rep, "{s?o, s?s}", "keys", &keys, "text", &text))
        return;
    if (!keys && !text) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "give keys (e.g. [\"ctrl-alt-delete\", "
                       "\"down\", \"ret\"]) and/or text (typed, e.g. \"root\\n\")");
        return;
    }
    if (keys && (!json_is_array(keys) || json_array_size(keys) > KEYS_MAX)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "keys: expected an array of at most %d key "
                       "names (e.g. [\"ctrl-alt-delete\", \"ret\"])", KEYS_MAX);
        return;
    }
    if (text && (!*text || strlen(text) > TEXT_MAX)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "text: give 1 to %d characters", TEXT_MAX);
        return;
    }
    json_t *combos = json_array();
    size_t i;
    json_t *v;
    _cleanup_free_ char *error = NULL;
    json_array_foreach(keys, i, v) {
        json_t *combo = NULL;
        if (!json_is_string(v)) {
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "keys[%zu]: expected a key name", i);
            json_decref(combos);
            return;
        }
        if (vo_qemu_key_combo(json_string_value(v), &combo, &error) < 0) {
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "keys[%zu]: %s", i, error);
            json_decref(combos);
            return;
        }
        json_array_append_new(combos, combo);
    }
    if (text && vo_qemu_text_keys(text, combos, &error) < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s", error);
        json_decref(combos);
        return;
    }
    int r = vo_vm_send_keys(vm, combos, &error);
    size_t n = json_array_size(combos);
    json_decref(combos);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        return;
    }
    vo_reply_json(rep, 200, json_pack("{s:I}", "sent", (json_int_t)n));
}

/* ---- The VNC stream ---------------------------------------------------- */

typedef struct {
    int vnc;        /* connected to QEMU's VNC socket */
    bool websocket; /* framed (RFC 6455), else raw */
} Relay;

static void relay_free(void *cls)
{
    Relay *relay = cls;
    if (relay->vnc >= 0)
        close(relay->vnc);
    free(relay);
}

/* The server stops: wake the relay (its client socket is shut down too). */
static void relay_stop(void *cls)
{
    Relay *relay = cls;
    shutdown(relay->vnc, SHUT_RDWR);
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
        int r = write_all(relay->vnc, in, *in_len);
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
            r = write_all(relay->vnc, payload, f.payload_len);
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
                                 { .fd = relay->vnc, .events = POLLIN } };
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
            ssize_t n = recv(relay->vnc, out, RELAY_CHUNK, MSG_DONTWAIT);
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
        log_debug("VNC relay ended: %s", strerror(-r));
}

static bool header_has_token(struct MHD_Connection *conn, const char *header, const char *token)
{
    return vo_http_has_token(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, header), token);
}

void vo_api_vm_vnc(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
    if (!vm)
        return;
    bool websocket = header_has_token(req->conn, "Upgrade", "websocket");
    if (!header_has_token(req->conn, "Connection", "upgrade") ||
        (!websocket && !header_has_token(req->conn, "Upgrade", "vireo-vnc"))) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "the VNC stream needs 'Connection: Upgrade' and 'Upgrade: websocket' "
                       "(a WebSocket, e.g. noVNC) or 'Upgrade: vireo-vnc' (use 'vireo console "
                       "--vnc'), or take a screenshot (GET .../screenshot)");
        return;
    }
    char accept[29] = "";
    const char *version = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                      "Sec-WebSocket-Version");
    if (websocket && (!version || strcmp(version, "13"))) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "Sec-WebSocket-Version: expected 13 "
                       "(RFC 6455)");
        return;
    }
    if (websocket && vo_ws_accept_key(MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                                  "Sec-WebSocket-Key"),
                                      accept) < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "Sec-WebSocket-Key: expected the base64 "
                       "of 16 random bytes (RFC 6455)");
        return;
    }
    const char *origin = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Host");
    if (websocket && !vo_ws_origin_allowed(origin, host)) {
        vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "Origin '%s' is not this server's "
                       "(Host '%s'): open the VNC stream from a page vireod serves, or from a "
                       "client that sends no Origin", origin, host ? host : "");
        return;
    }
    _cleanup_free_ char *path = NULL, *error = NULL;
    int r = vo_vm_vnc_socket(vm, &path, &error);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        return;
    }
    /* Bounded: QEMU listens with a backlog of 1, and a connect to a full
     * backlog (QEMU stuck, stopped) would wait for ever on this thread. */
    int fd = vo_unix_connect_wait(path, VNC_CONNECT_TIMEOUT_MS);
    if (fd < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_STATE, "VM '%s': its VNC server does not answer "
                       "(%s); is it still running?", req->params[0], strerror(-fd));
        return;
    }
    Relay *relay = vo_malloc0(sizeof(*relay));
    relay->vnc = fd;
    relay->websocket = websocket;
    json_decref(rep->json);
    rep->json = NULL;
    rep->upgrade = true;
    rep->upgrade_protocol = websocket ? "websocket" : "vireo-vnc";
    if (websocket) {
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
