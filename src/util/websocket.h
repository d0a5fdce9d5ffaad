/* websocket.h: the server side of RFC 6455 framing, pure (no I/O): the
 * handshake's accept key, the header of a frame to send, and the parse of
 * a frame a client sent (masked, as clients must). vireod relays a VM's
 * VNC stream in binary frames (api/display-api.c); noVNC is the client. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VO_WS_OP_CONT 0x0
#define VO_WS_OP_TEXT 0x1
#define VO_WS_OP_BINARY 0x2
#define VO_WS_OP_CLOSE 0x8
#define VO_WS_OP_PING 0x9
#define VO_WS_OP_PONG 0xA

/* The largest frame payload a client may send (VNC input is tiny). */
#define VO_WS_MAX_PAYLOAD (1024 * 1024)
/* A frame header is at most this long (2 + 8 length + 4 mask). */
#define VO_WS_MAX_HEADER 14

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key
 * + the RFC's GUID)), 28 characters and a NUL. -EINVAL when key is not
 * the base64 of 16 bytes. */
int vo_ws_accept_key(const char *key, char ret[29]);

/* Writes the header of an unmasked frame (server to client) with fin set:
 * opcode and payload length len. Returns its length (2, 4 or 10). */
size_t vo_ws_frame_header(uint8_t opcode, uint64_t len, uint8_t out[VO_WS_MAX_HEADER]);

/* Whether a WebSocket handshake's Origin ("scheme://host[:port]", RFC
 * 6454; sent by browsers) names the host the request was sent to (its Host
 * header): a page of another origin must not open the stream, as the
 * browser adds the session cookie to any same-site page's request
 * (cross-site WebSocket hijacking). true without an Origin (not a
 * browser); false for "null" or a malformed one. */
bool vo_ws_origin_allowed(const char *origin, const char *host);

typedef struct {
    bool fin;
    uint8_t opcode;
    size_t header_len;  /* the payload starts here */
    size_t payload_len;
} VoWsFrame;

/* Parses the frame at the start of buf (len bytes): 0 when more bytes are
 * needed, else the frame's whole length (header and payload), with the
 * payload unmasked in place and *ret filled. -EPROTO for a frame that
 * breaks the RFC (unmasked, reserved bits, a control frame too long or
 * fragmented, an unknown opcode), -EMSGSIZE beyond VO_WS_MAX_PAYLOAD. */
long vo_ws_parse(uint8_t *buf, size_t len, VoWsFrame *ret);
