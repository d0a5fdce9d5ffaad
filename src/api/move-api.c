/* move-api.c: cold move routes (daemon/move.h). POST /v1/vms/{vm}/move
 * queues the source's move task (any door forwards it to the VM's host);
 * POST /v1/moves/incoming (the target takes the VM) and GET
 * /v1/moves/outgoing/{vm}/volumes/{volume} (the source streams the file
 * of volume POOL/NAME, named POOL.NAME in the path, to it) are peer routes, which only another host of the
 * cluster calls (over the mutual-TLS listener; refused on the Unix
 * socket). */
#include <string.h>

#include "api/handlers.h"
#include "daemon/move.h"
#include "util/util.h"

void vo_api_vm_move(VoRequest *req, VoReply *rep)
{
    const char *to = NULL, *pool = NULL;
    if (!vo_request_unpack(req, rep, "{s?s, s?s}", "to", &to, "pool", &pool))
        return;
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    if (!vm)
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_vm_move(req->d, vm, to, pool, &task, &error);
    vo_reply_task(rep, r, task, error);
}

/* Peer routes answer only a cluster member (http.h). */
static bool from_peer(VoRequest *req, VoReply *rep)
{
    return vo_request_from_member(req, rep, "POST /v1/vms/{vm}/move");
}

void vo_api_move_incoming(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_move_incoming(req->d, req->body, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_move_outgoing_file(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    _cleanup_free_ char *error = NULL;
    int fd = -1;
    uint64_t size = 0;
    const char *vol = req->params[1], *dot = strchr(vol, '.');
    if (!dot) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "volume: '%s' is not POOL.NAME", vol);
        return;
    }
    _cleanup_free_ char *pool = strndup(vol, (size_t)(dot - vol));
    if (!pool)
        abort();
    int r = vo_move_outgoing_file(req->d, req->params[0], pool, dot + 1, &fd, &size, &error);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        return;
    }
    rep->file_fd = fd;
    rep->file_size = size;
}
