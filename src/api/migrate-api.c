/* migrate-api.c: live migration routes. POST /v1/vms/{vm}/migrate queues
 * the source's migration task (any door forwards it to the VM's host);
 * /v1/migrations/incoming/... are the destination's peer routes, which
 * only another host of the cluster calls (over the mutual-TLS listener;
 * refused on the Unix socket). See daemon/migrate.h. */
#include <string.h>

#include "api/handlers.h"
#include "conf/names.h"
#include "daemon/maintenance.h"
#include "daemon/migrate.h"
#include "daemon/migrate-orphan.h"
#include "util/util.h"

/* {"resume": true} and nothing else: vireo vm migrate --resume; 0 when
 * body asks for no resume (none, or false: a migration), 1 when it does,
 * -EINVAL (rep filled) when it asks for it with other fields or not as a
 * boolean. */
static int resume_asked(json_t *body, VoReply *rep)
{
    json_t *resume = json_object_get(body, "resume");
    if (!resume || json_is_false(resume))
        return 0;
    if (!json_is_true(resume) || json_object_size(body) != 1) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "invalid request body: \"resume\" is "
                       "a boolean and takes no other field (it retries the recovery of the "
                       "VM's paused post-copy)");
        return -EINVAL;
    }
    return json_is_true(resume);
}

/* The VM's post-copy recovery retried where its source QEMU is kept. The
 * VM need not be in this host's table: a destination may not have adopted
 * it yet (its source went silent before the commit reached it), and the
 * source's table may have forgotten it; the kept intents name it (by id or
 * name). */
static void migrate_resume(VoRequest *req, VoReply *rep, const char *key)
{
    _cleanup_vm_ VoVm *vm = vo_vms_find(req->d, key);
    _cleanup_free_ char *id = vm ? vo_vm_id(vm) : vo_strdup(key);
    _cleanup_free_ char *name = vm ? vo_vm_name(vm) : vo_strdup(key);
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_migrate_resume_request(req->d, id, name, true, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_vm_migrate(VoRequest *req, VoReply *rep)
{
    int resume = resume_asked(req->body, rep);
    if (resume < 0)
        return;
    if (resume) {
        migrate_resume(req, rep, req->params[0]);
        return;
    }
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    if (!vm)
        return;
    VoMigrateArgs args;
    char *error = NULL;
    int r = vo_migrate_args_parse(req->body, &args, &error);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        free(error);
        return;
    }
    json_t *task = NULL;
    r = vo_vm_migrate(req->d, vm, &args, &task, &error);
    vo_reply_task(rep, r, task, error);
}

/* Peer routes answer only a cluster member (http.h). */
static bool from_peer(VoRequest *req, VoReply *rep)
{
    return vo_request_from_member(req, rep, "POST /v1/vms/{vm}/migrate");
}

void vo_api_migration_prepare(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    json_t *ret = NULL;
    char *error = NULL;
    int r = vo_migration_prepare(req->d, req->body, &ret, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 201, ret);
    free(error);
}

void vo_api_migration_digest(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    json_t *ret = NULL;
    char *error = NULL;
    int r = vo_migration_digest(req->d, req->params[0], &ret, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, ret);
    free(error);
}

void vo_api_migration_commit(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    char *error = NULL;
    int r = vo_migration_commit(req->d, req->params[0], req->body, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_pack("{s:s}", "state", "committed"));
    free(error);
}

void vo_api_migration_abort(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    char *error = NULL;
    int r = vo_migration_abort(req->d, req->params[0], &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_pack("{s:s}", "state", "aborted"));
    free(error);
}

void vo_api_migration_alive(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    char *error = NULL;
    int r = vo_migration_alive(req->d, req->params[0], &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_pack("{s:s}", "state", "waiting"));
    free(error);
}

/* Post-copy recovery: the destination listens for the resumed stream. */
void vo_api_migration_recover(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    json_t *ret = NULL;
    char *error = NULL;
    int r = vo_migration_recover(req->d, req->params[0], req->body, &ret, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, ret);
    free(error);
}

/* vireo vm migrate --resume asked at the VM's host: a post-copy recovery
 * retried here when this host keeps its source QEMU (202 with the task),
 * else 404. */
void vo_api_migration_outgoing_resume(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_migrate_resume_request(req->d, req->params[0], req->params[0], false, &task,
                                      &error);
    vo_reply_task(rep, r, task, error);
}

/* Whether this host may still hold a QEMU of the VM ({id}: its id): a
 * destination whose incoming QEMU never held the guest asks before it
 * records the VM crashed (daemon/migrate-orphan.h). */
void vo_api_migration_outgoing_source(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    if (!vo_uuid_valid(req->params[0])) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "not a VM id: %s", req->params[0]);
        return;
    }
    vo_reply_json(rep, 200, json_pack("{s:b}", "holds",
                                      vo_migration_source_holds(req->d, req->params[0])));
}

/* A stopped VM moved here by its host's evacuation (daemon/maintenance.h). */
void vo_api_migration_moved(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    char *error = NULL;
    int r = vo_host_adopt_moved(req->d, req->body, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_pack("{s:s}", "state", "adopted"));
    free(error);
}
