/* snapshots-api.c: /v1/vms/{vm}/snapshots routes. */
#include "api/handlers.h"
#include "daemon/snapshots.h"
#include "daemon/vms.h"
#include "util/util.h"

/* The store key of the {snapshot} of vm. */
static char *snapshot_key(VoVm *vm, const char *name)
{
    _cleanup_free_ char *id = vo_vm_id(vm);
    return vo_asprintf("snapshots/%s/%s", id, name);
}

void vo_api_snapshots_list(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
    if (vm)
        vo_reply_json(rep, 200, vo_snapshots_list_json(req->d, vm));
}

void vo_api_snapshot_show(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
    if (!vm)
        return;
    _cleanup_free_ char *key = snapshot_key(vm, req->params[1]);
    rep->etag = vo_api_key_rev(req->d, key);
    json_t *snap = NULL;
    char *error = NULL;
    int r = vo_snapshot_get_json(req->d, vm, req->params[1], &snap, &error);
    vo_reply_found(rep, r, snap, error);
}

void vo_api_snapshot_create(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    const char *name = NULL, *description = NULL;
    int memory = 0;
    if (!vm || !vo_request_unpack(req, rep, "{s:s, s?b, s?s}", "name", &name, "memory", &memory,
                                  "description", &description))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_snapshot_create(req->d, vm, name, memory, description, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_snapshot_revert(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
    int force = 0;
    if (!vm || !vo_request_unpack(req, rep, "{s?b}", "force", &force))
        return;
    _cleanup_free_ char *key = snapshot_key(vm, req->params[1]);
    if (!vo_api_if_match_key(req, rep, key, "the snapshot"))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_snapshot_revert(req->d, vm, req->params[1], force, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_snapshot_delete(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
    if (!vm)
        return;
    _cleanup_free_ char *key = snapshot_key(vm, req->params[1]);
    if (!vo_api_if_match_key(req, rep, key, "the snapshot"))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_snapshot_delete(req->d, vm, req->params[1], &task, &error);
    vo_reply_task(rep, r, task, error);
}
