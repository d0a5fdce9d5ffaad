/* backups-api.c: /v1/backups routes and POST /v1/vms/{vm}/backups. */
#include "api/handlers.h"
#include "daemon/backups.h"
#include "daemon/vms.h"
#include "util/util.h"

void vo_api_backups_list(VoRequest *req, VoReply *rep)
{
    const char *vm = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "vm");
    vo_reply_json(rep, 200, vo_backups_list_json(req->d, vm && *vm ? vm : NULL));
}

void vo_api_backup_show(VoRequest *req, VoReply *rep)
{
    json_t *backup = NULL;
    char *error = NULL;
    int r = vo_backup_get_json(req->d, req->params[0], &backup, &error);
    vo_reply_found(rep, r, backup, error);
}

void vo_api_backup_create(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    const char *pool = NULL;
    int incremental = 0;
    json_int_t keep_last = 0;
    if (!vm || !vo_request_unpack(req, rep, "{s?s, s?b, s?I}", "pool", &pool, "incremental",
                                  &incremental, "keep_last", &keep_last))
        return;
    if (keep_last < 0 || keep_last > 1000) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "keep_last: %lld is out of range (1-1000, "
                       "or 0 for all)", (long long)keep_last);
        return;
    }
    VoBackupCreateArgs args = { .pool = pool, .incremental = incremental,
                                .keep_last = (unsigned)keep_last };
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_backup_create(req->d, vm, &args, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_backup_delete(VoRequest *req, VoReply *rep)
{
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_backup_delete(req->d, req->params[0], &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_backup_restore(VoRequest *req, VoReply *rep)
{
    const char *as = NULL, *pool = NULL;
    if (!vo_request_unpack(req, rep, "{s?s, s?s}", "as", &as, "pool", &pool))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_backup_restore(req->d, req->params[0], as, pool, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_backup_verify(VoRequest *req, VoReply *rep)
{
    if (!vo_request_unpack(req, rep, "{}"))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_backup_verify(req->d, req->params[0], &task, &error);
    vo_reply_task(rep, r, task, error);
}
