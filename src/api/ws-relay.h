/* ws-relay.h: an upgraded connection relayed to a local socket, framed as a
 * WebSocket for browsers or raw for the CLI (the VNC stream, the serial
 * console), and the WebSocket handshake's checks. */
#pragma once

#include <stdbool.h>

#include "api/http.h"

/* Whether the request asks for 'Connection: Upgrade' to protocol. */
bool vo_upgrade_requested(VoRequest *req, const char *protocol);
/* The same for "websocket". */
bool vo_ws_requested(VoRequest *req);
/* A WebSocket handshake's checks: Sec-WebSocket-Version 13, the key (its
 * accept value into accept), an Origin naming the Host (cross-site
 * WebSocket hijacking); false with rep filled (400, 403). what names the
 * stream in the message ("the VNC stream"). */
bool vo_ws_handshake_check(VoRequest *req, VoReply *rep, const char *what, char accept[29]);
/* Makes rep the 101 whose connection is relayed to peer (taken): in
 * WebSocket binary frames when accept (from vo_ws_handshake_check) is not
 * NULL, else raw with 'Upgrade: raw_protocol'. */
void vo_ws_relay_reply(VoRequest *req, VoReply *rep, int peer, const char *accept,
                       const char *raw_protocol);
