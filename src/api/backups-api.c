/* backups-api.c: /v1/backups routes and POST /v1/vms/{vm}/backups. */
#include <errno.h>

#include "api/access.h"
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
    _cleanup_free_ char *key = vo_asprintf("backups/%s", req->params[0]);
    rep->etag = vo_api_key_rev(req->d, key); /* before the read: never newer than it */
    int r = vo_backup_get_json(req->d, req->params[0], &backup, &error);
    vo_reply_found(rep, r, backup, error);
}

/* "bwlimit_mib": absent (0: no limit), else a whole number of MiB/s in
 * 1..VO_BACKUP_BWLIMIT_MAX_MIB; false with rep filled (400) otherwise. */
static bool bwlimit_arg(VoReply *rep, json_t *v, unsigned *ret)
{
    *ret = 0;
    if (!v)
        return true;
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    if (n < 1 || n > VO_BACKUP_BWLIMIT_MAX_MIB) {
        _cleanup_free_ char *got = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "bwlimit_mib: %s is not a bandwidth limit: "
                       "give a whole number of MiB/s from 1 to %u (or leave it out for none)",
                       got ? got : "?", VO_BACKUP_BWLIMIT_MAX_MIB);
        return false;
    }
    *ret = (unsigned)n;
    return true;
}

void vo_api_backup_create(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    const char *pool = NULL;
    int incremental = 0;
    json_int_t keep_last = 0;
    json_t *bwlimit = NULL;
    unsigned bwlimit_mib = 0;
    if (!vm || !vo_request_unpack(req, rep, "{s?s, s?b, s?I, s?o}", "pool", &pool, "incremental",
                                  &incremental, "keep_last", &keep_last, "bwlimit_mib", &bwlimit) ||
        !bwlimit_arg(rep, bwlimit, &bwlimit_mib))
        return;
    if (keep_last < 0 || keep_last > 1000) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "keep_last: %lld is out of range (1-1000, "
                       "or 0 for all)", (long long)keep_last);
        return;
    }
    /* Taking a backup is an operator's; keep_last deletes backups, which
     * is the admin's (DELETE /v1/backups/ID), on this VM's project. */
    const VoPrincipal *who = vo_access_current();
    _cleanup_free_ char *project = vo_vm_project(vm);
    VoRole role = vo_principal_role_in(who, project);
    if (keep_last && role < VO_ROLE_ADMIN) {
        char name[128];
        vo_principal_describe(who, name, sizeof(name));
        vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "keep_last: deleting backups needs the "
                       "admin role; %s has %s on VM '%s'", name, vo_role_name(role),
                       req->params[0]);
        return;
    }
    VoBackupCreateArgs args = { .pool = pool, .incremental = incremental,
                                .keep_last = (unsigned)keep_last, .bwlimit_mib = bwlimit_mib };
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_backup_create(req->d, vm, &args, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_backup_delete(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_asprintf("backups/%s", req->params[0]);
    if (!vo_api_if_match_key(req, rep, key, "the backup"))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_backup_delete(req->d, req->params[0], &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_backup_restore(VoRequest *req, VoReply *rep)
{
    const char *as = NULL, *pool = NULL;
    json_t *bwlimit = NULL;
    unsigned bwlimit_mib = 0;
    if (!vo_request_unpack(req, rep, "{s?s, s?s, s?o}", "as", &as, "pool", &pool, "bwlimit_mib",
                           &bwlimit) ||
        !bwlimit_arg(rep, bwlimit, &bwlimit_mib))
        return;
    _cleanup_free_ char *key = vo_asprintf("backups/%s", req->params[0]);
    if (!vo_api_if_match_key(req, rep, key, "the backup"))
        return;
    /* The route is an operator's (a restore over the VM, as a snapshot's
     * revert); one that makes a VM is the admin's, as POST /v1/vms. */
    const VoPrincipal *who = vo_access_current();
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_backup_restore(req->d, req->params[0], as, pool, bwlimit_mib,
                              who->role >= VO_ROLE_ADMIN, &task, &error);
    if (r == -EACCES) {
        char name[128];
        vo_principal_describe(who, name, sizeof(name));
        vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "%s; %s has %s", error, name,
                       vo_role_name(who->role));
        free(error);
        return;
    }
    vo_reply_task(rep, r, task, error);
}

void vo_api_backup_verify(VoRequest *req, VoReply *rep)
{
    json_t *bwlimit = NULL;
    unsigned bwlimit_mib = 0;
    if (!vo_request_unpack(req, rep, "{s?o}", "bwlimit_mib", &bwlimit) ||
        !bwlimit_arg(rep, bwlimit, &bwlimit_mib))
        return;
    _cleanup_free_ char *key = vo_asprintf("backups/%s", req->params[0]);
    if (!vo_api_if_match_key(req, rep, key, "the backup"))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_backup_verify(req->d, req->params[0], bwlimit_mib, &task, &error);
    vo_reply_task(rep, r, task, error);
}
