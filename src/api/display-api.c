/* display-api.c: a running VM's display: GET /v1/vms/{vm}/screenshot (a
 * PNG), POST /v1/vms/{vm}/send-keys (key combinations and text typed), and
 * GET /v1/vms/{vm}/vnc, its VNC stream: a WebSocket (RFC 6455, binary
 * frames; noVNC's "binary" subprotocol) or, for `vireo console --vnc`, a
 * raw upgraded stream ("Upgrade: vireo-vnc", like the serial console's),
 * relayed (api/ws-relay.c) to QEMU's VNC Unix socket (?password=true: to
 * its twin that asks for the one-time password POST
 * /v1/vms/{vm}/vnc-ticket sets, for viewers off loopback). */
#include <string.h>

#include "api/handlers.h"
#include "api/ws-relay.h"
#include "daemon/vms.h"
#include "qemu/qemu-keys.h"
#include "util/unix-socket.h"
#include "util/util.h"

/* Bounds of one send-keys request. */
#define KEYS_MAX 128
#define TEXT_MAX 1024
/* How long QEMU's VNC server may take to take a new connection. */
#define VNC_CONNECT_TIMEOUT_MS 5000
/* How long a one-time VNC password admits new viewers: default, bounds. */
#define VNC_TICKET_TTL_DEFAULT 60
#define VNC_TICKET_TTL_MIN 5
#define VNC_TICKET_TTL_MAX 3600

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

void vo_api_vm_vnc(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
    if (!vm)
        return;
    bool websocket = vo_ws_requested(req);
    if (!websocket && !vo_upgrade_requested(req, "vireo-vnc")) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "the VNC stream needs 'Connection: Upgrade' and 'Upgrade: websocket' "
                       "(a WebSocket, e.g. noVNC) or 'Upgrade: vireo-vnc' (use 'vireo console "
                       "--vnc'), or take a screenshot (GET .../screenshot)");
        return;
    }
    char accept[29] = "";
    if (websocket && !vo_ws_handshake_check(req, rep, "the VNC stream", accept))
        return;
    /* Strict: a misspelt ?password= must not fall back to the server that
     * asks for none (a relay to the network would then admit anyone). */
    const char *password = NULL;
    bool given = MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, "password",
                                               strlen("password"), &password, NULL) == MHD_YES;
    bool with_password = vo_request_query_bool(req, "password");
    if (given && !with_password &&
        (!password || (strcmp(password, "false") && strcmp(password, "0") &&
                       strcmp(password, "no")))) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "password: '%s' is not true or false "
                       "(?password=true: the VNC server that asks for the one-time password "
                       "of POST .../vnc-ticket)", password ? password : "");
        return;
    }
    _cleanup_free_ char *path = NULL, *error = NULL;
    int r = vo_vm_vnc_socket(vm, with_password, &path, &error);
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
    vo_ws_relay_reply(req, rep, fd, websocket ? accept : NULL, "vireo-vnc");
}

void vo_api_vm_vnc_ticket(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    json_int_t ttl = VNC_TICKET_TTL_DEFAULT;
    if (!vm || !vo_request_unpack(req, rep, "{s?I}", "ttl_seconds", &ttl))
        return;
    if (ttl < VNC_TICKET_TTL_MIN || ttl > VNC_TICKET_TTL_MAX) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "ttl_seconds: give %d to %d seconds",
                       VNC_TICKET_TTL_MIN, VNC_TICKET_TTL_MAX);
        return;
    }
    _cleanup_free_ char *password = NULL, *error = NULL;
    int r = vo_vm_vnc_ticket(vm, (unsigned)ttl, &password, &error);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        return;
    }
    /* Shown once: vireod keeps no copy (QEMU holds it until it expires). */
    vo_reply_json(rep, 201, json_pack("{s:s, s:I, s:s}", "password", password, "ttl_seconds",
                                      ttl, "stream", "GET /v1/vms/{vm}/vnc?password=true"));
}
