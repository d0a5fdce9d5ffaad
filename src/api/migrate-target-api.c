/* migrate-target-api.c: POST /v1/vms/{vm}/migrate-target, where the VM
 * would go if it moved now (daemon/migrate-target.h), its volumes of its
 * host's own pools into the target's pool {"pool"} (default when not
 * named; a migration's --pool): 200 {"host", "hosts"}
 * or 409 naming each host's reason (the error object carries "hosts" too).
 * The request reaches the VM's host (any door forwards it there), which
 * asks the manager; the manager's own request carries X-Vireo-Place and
 * the VM's host in {"source"}. Nothing is moved or reserved. */
#include <string.h>

#include "api/handlers.h"
#include "api/vm-place-api.h"
#include "conf/names.h"
#include "daemon/hosts.h"
#include "daemon/migrate-target.h"
#include "daemon/vms.h"
#include "util/util.h"

void vo_api_vm_migrate_target(VoRequest *req, VoReply *rep)
{
    VoDaemon *d = req->d;
    json_t *doc = NULL;
    char *error = NULL;
    int r;
    if (d->cluster && req->conn &&
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, VO_PLACE_HEADER)) {
        /* A host asks the manager: the VM is there, named by its id. */
        const char *source = NULL, *pool = NULL;
        if (!vo_request_unpack(req, rep, "{s:s, s?:s}", "source", &source, "pool", &pool))
            return;
        if (!vo_hosts_is_manager(d)) {
            vo_reply_error(rep, VO_ERR_UNAVAILABLE,
                           "host '%s' is not the cluster's manager (any more): ask again",
                           d->host_name);
            return;
        }
        r = vo_migrate_target_place(d, req->params[0], source, pool, &doc, &error);
    } else {
        _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
        if (!vm)
            return;
        const char *pool = NULL;
        if (!vo_request_unpack(req, rep, "{s?:s}", "pool", &pool))
            return;
        if (pool && !vo_name_valid(pool)) {
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "pool: '%s' is not a pool name", pool);
            return;
        }
        _cleanup_free_ char *id = vo_vm_id(vm);
        r = vo_migrate_target_json(d, id, d->host_id, pool, &doc, &error);
    }
    if (r >= 0)
        vo_reply_json(rep, 200, doc);
    else {
        vo_reply_errno(rep, r, error);
        json_t *err = json_object_get(rep->json, "error");
        if (r == -EBUSY && json_is_object(err) && doc)
            json_object_set(err, "hosts", json_object_get(doc, "hosts"));
        json_decref(doc);
    }
    free(error);
}
