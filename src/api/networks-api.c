/* networks-api.c: /v1/networks routes and a VM's NICs (/v1/vms/{vm}/nics). */
#include <string.h>

#include "api/handlers.h"
#include "daemon/hosts.h"
#include "daemon/networks.h"
#include "daemon/object-projects.h"
#include "daemon/projects.h"
#include "daemon/vms.h"
#include "util/test-hold.h"
#include "util/util.h"

void vo_api_networks_list(VoRequest *req, VoReply *rep)
{
    /* ?project=P: the networks of P only. */
    const char *project = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
                                                      "project");
    json_t *list = vo_networks_list_json(req->d);
    int r = vo_networks_add_projects(req->d, list, project);
    if (r < 0) {
        json_decref(list);
        vo_reply_errno(rep, r, "cannot read the networks' projects");
        return;
    }
    vo_reply_json(rep, 200, json_pack("{s:o}", "networks", list));
}

void vo_api_network_create(VoRequest *req, VoReply *rep)
{
    if (!req->body) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "give the network as a JSON object");
        return;
    }
    /* "project": made in it (checked first, set once the network is up; a
     * project deleted meanwhile takes the network back). */
    json_t *project = json_object_get(req->body, "project");
    char *error = NULL;
    int r = 0;
    if (project && (!json_is_string(project) ||
                    (r = vo_project_exists(req->d, json_string_value(project), &error)) < 0)) {
        vo_reply_errno(rep, r < 0 ? r : -EINVAL, error ? error : "project: give a project's name");
        free(error);
        return;
    }
    _cleanup_free_ char *in = vo_strdup(json_string_value(project));
    json_t *body = json_deep_copy(req->body);
    json_object_del(body, "project");
    json_t *net = NULL;
    r = vo_network_create(req->d, body, &net, &error);
    json_decref(body);
    const char *name = json_string_value(json_object_get(net, "name"));
    if (r >= 0 && in && (r = vo_network_project_set(req->d, name, in, &error)) < 0) {
        _cleanup_free_ char *ignored = NULL;
        (void)vo_network_delete(req->d, name, 0, &ignored);
        json_decref(net);
    }
    if (r >= 0)
        vo_hosts_publish_changed(req->d, "networks");
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else {
        vo_object_add_project(req->d, net, "network");
        vo_reply_json(rep, 201, net);
    }
    free(error);
}

/* PATCH {"project": P or null}: the network moves to P (or to none);
 * refused while a NIC is on it. */
void vo_api_network_edit(VoRequest *req, VoReply *rep)
{
    json_t *project = NULL;
    if (!vo_request_unpack(req, rep, "{s:o}", "project", &project))
        return;
    char *error = NULL;
    int r = json_is_null(project) || json_is_string(project)
                ? 0
                : vo_error_set(&error, -EINVAL, "project: give a project's name, or null");
    /* Marked moving while its VMs are looked for and it moves: a NIC add
     * (which checks its project, then records its VM) runs wholly before or
     * after. */
    bool claimed = r >= 0 && (r = vo_network_claim_move(req->d, req->params[0], &error)) >= 0;
    /* Refused while a VM of any host has a NIC on it; never committed
     * with a NIC add on another host (object-projects.h). */
    if (r >= 0)
        r = vo_network_project_move(req->d, req->params[0], json_string_value(project), &error);
    if (claimed)
        vo_network_release_move(req->d, req->params[0]);
    json_t *net = NULL;
    if (r >= 0 && (r = vo_network_get_json(req->d, req->params[0], &net, &error)) >= 0)
        vo_object_add_project(req->d, net, "network");
    vo_reply_found(rep, r, net, error);
}

void vo_api_network_show(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_asprintf("networks/%s", req->params[0]);
    rep->etag = vo_api_key_rev(req->d, key);
    json_t *net = NULL;
    char *error = NULL;
    int r = vo_network_get_json(req->d, req->params[0], &net, &error);
    if (r >= 0)
        vo_object_add_project(req->d, net, "network");
    vo_reply_found(rep, r, net, error);
}

void vo_api_network_delete(VoRequest *req, VoReply *rep)
{
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return;
    char *error = NULL;
    /* Its scope before it goes (a cluster network's is "cluster"). */
    VoProjectObject o = { .kind = "network", .scope = vo_network_scope(req->d, req->params[0]),
                          .id = req->params[0] };
    int r = vo_network_delete(req->d, req->params[0], want, &error);
    if (r >= 0) /* tests kill vireod here (daemon/project-heal.h) */
        vo_test_hold("network_forget_project");
    if (r >= 0 && vo_project_object_forget(req->d->store, &o) < 0)
        log_warn("network %s is gone but its project still names it", req->params[0]);
    if (r >= 0)
        vo_hosts_publish_changed(req->d, "networks");
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_object());
    free(error);
}

void vo_api_vm_nics_list(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
    if (vm)
        vo_reply_json(rep, 200, json_pack("{s:o}", "nics", vo_vm_nics_json(req->d, vm)));
}

void vo_api_vm_nic_add(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    const char *network = NULL, *mac = NULL;
    if (!vm || !vo_request_unpack(req, rep, "{s:s, s?s}", "network", &network, "mac", &mac))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_vm_nic_add(req->d, vm, network, mac, &task, &error);
    vo_reply_task(rep, r, task, error);
}

/* POST /v1/vms/{vm}/cdrom {"volume": "POOL/NAME"}: insert; {"volume": null}
 * or no body: eject. */
void vo_api_vm_cdrom(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    json_t *volume = NULL;
    if (!vm || (req->body && !vo_request_unpack(req, rep, "{s?o}", "volume", &volume)))
        return;
    if (volume && !json_is_null(volume) && !json_is_string(volume)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "volume: expected \"POOL/NAME\" of an ISO "
                       "volume, or null to eject");
        return;
    }
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_vm_cdrom_set(req->d, vm, json_string_value(volume), &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_vm_nic_remove(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    if (!vm)
        return;
    size_t index;
    if (!vo_request_index(req, rep, 1, "NIC index", &index))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_vm_nic_remove(req->d, vm, index, &task, &error);
    vo_reply_task(rep, r, task, error);
}
