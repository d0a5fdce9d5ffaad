/* migrate-target-api.c: POST /v1/vms/{vm}/migrate-target, where the VM
 * would go if it moved now (daemon/migrate-target.h): 200 {"host", "hosts"}
 * or 409 naming each host's reason (the error object carries "hosts" too).
 * The request reaches the VM's host (any door forwards it there), which
 * asks the manager; the manager's own request carries X-Vireo-Place and
 * the VM's host in {"source"}. Nothing is moved or reserved. */
#include <string.h>

#include "api/handlers.h"
#include "api/vm-place-api.h"
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
        const char *source = NULL;
        if (!vo_request_unpack(req, rep, "{s:s}", "source", &source))
            return;
        if (!vo_hosts_is_manager(d)) {
            vo_reply_error(rep, VO_ERR_UNAVAILABLE,
                           "host '%s' is not the cluster's manager (any more): ask again",
                           d->host_name);
            return;
        }
        r = vo_migrate_target_place(d, req->params[0], source, &doc, &error);
    } else {
        _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
        if (!vm)
            return;
        if (req->body && json_object_size(req->body)) {
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                           "invalid request body: POST /v1/vms/{vm}/migrate-target takes no "
                           "fields (send {} or nothing)");
            return;
        }
        _cleanup_free_ char *id = vo_vm_id(vm);
        r = vo_migrate_target_json(d, id, d->host_id, &doc, &error);
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
