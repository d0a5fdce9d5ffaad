/* console-api.c: /v1/vms/{vm}/console (an HTTP upgrade to a raw two-way
 * stream with the VM's serial console, or a WebSocket for the web UI's
 * terminal) and /v1/vms/{vm}/console/log. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/handlers.h"
#include "api/route-match.h"
#include "api/ws-relay.h"
#include "daemon/console.h"
#include "daemon/vms.h"
#include "util/util.h"

typedef struct {
    VoDaemon *d;
    VoVm *vm;
} UpgradeCtx;

static void on_client_closed(void *userdata)
{
    struct MHD_UpgradeResponseHandle *urh = userdata;
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

static void on_upgraded(void *cls, struct MHD_Connection *conn, void *req_cls,
                        const char *extra_in, size_t extra_in_size, MHD_socket sock,
                        struct MHD_UpgradeResponseHandle *urh)
{
    UpgradeCtx *ctx = cls;
    char *initial = extra_in_size ? vo_malloc0(extra_in_size) : NULL;
    if (initial)
        memcpy(initial, extra_in, extra_in_size);
    /* The loop owns the socket from here; MHD closes it on MHD_UPGRADE_ACTION_CLOSE. */
    vo_vm_console_attach(ctx->d, ctx->vm, sock, initial, extra_in_size, on_client_closed, urh);
    vo_vm_unref(ctx->vm);
    free(ctx);
}

/* The request ended without an upgrade (the server's on_completed). */
static void upgrade_ctx_free(void *cls)
{
    UpgradeCtx *ctx = cls;
    vo_vm_unref(ctx->vm);
    free(ctx);
}

/* The console closed the relay's end of the socketpair (it owns it). */
static void on_pair_closed(void *userdata)
{
    close((int)(intptr_t)userdata);
}

/* The WebSocket: the console gets one end of a socketpair as a client; a
 * relay thread (ws-relay.c) frames what crosses the other end. */
static void console_websocket(VoRequest *req, VoReply *rep, VoVm *vm)
{
    char accept[29] = "";
    if (!vo_ws_handshake_check(req, rep, "the serial console", accept))
        return;
    if (!vo_vm_is_active(vm)) {
        vo_reply_error(rep, VO_ERR_INVALID_STATE, "VM '%s' is not running", req->params[0]);
        return;
    }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
        vo_reply_errno(rep, -errno, "cannot make the console's socketpair");
        return;
    }
    vo_vm_console_attach(req->d, vm, pair[1], NULL, 0, on_pair_closed,
                         (void *)(intptr_t)pair[1]);
    vo_ws_relay_reply(req, rep, pair[0], accept, NULL);
}

void vo_api_vm_console(VoRequest *req, VoReply *rep)
{
    VoVm *vm = vo_vms_find(req->d, req->params[0]);
    if (!vm) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "VM '%s' does not exist", req->params[0]);
        return;
    }
    if (vo_ws_requested(req)) {
        console_websocket(req, rep, vm);
        vo_vm_unref(vm);
        return;
    }
    if (!vo_upgrade_requested(req, "vireo-console")) {
        vo_vm_unref(vm);
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "the console needs 'Connection: Upgrade' and 'Upgrade: vireo-console' "
                       "(use 'vireo console'), or a WebSocket ('Upgrade: websocket'), or "
                       "console/log for the output so far");
        return;
    }
    if (!vo_vm_is_active(vm)) {
        vo_vm_unref(vm);
        vo_reply_error(rep, VO_ERR_INVALID_STATE, "VM '%s' is not running", req->params[0]);
        return;
    }
    UpgradeCtx *ctx = vo_malloc0(sizeof(*ctx));
    ctx->d = req->d;
    ctx->vm = vm;
    rep->upgrade = true;
    rep->upgrade_fn = on_upgraded;
    rep->upgrade_cls = ctx;
    rep->upgrade_free = upgrade_ctx_free;
}

void vo_api_vm_console_log(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_vms_find(req->d, req->params[0]);
    if (!vm) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "VM '%s' does not exist", req->params[0]);
        return;
    }
    _cleanup_free_ char *path = vo_vm_console_log_path(req->d, vm);
    char *text = NULL;
    size_t len = 0;
    vo_console_read_log(path, &text, &len);
    rep->status = 200;
    rep->text = text;
    rep->text_len = len;
}
