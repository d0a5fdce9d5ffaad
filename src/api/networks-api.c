/* networks-api.c: /v1/networks routes and a VM's NICs (/v1/vms/{vm}/nics). */
#include <string.h>

#include "api/handlers.h"
#include "daemon/networks.h"
#include "daemon/vms.h"
#include "util/util.h"

void vo_api_networks_list(VoRequest *req, VoReply *rep)
{
    vo_reply_json(rep, 200, json_pack("{s:o}", "networks", vo_networks_list_json(req->d)));
}

void vo_api_network_create(VoRequest *req, VoReply *rep)
{
    if (!req->body) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "give the network as a JSON object");
        return;
    }
    json_t *net = NULL;
    char *error = NULL;
    int r = vo_network_create(req->d, req->body, &net, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 201, net);
    free(error);
}

void vo_api_network_show(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_asprintf("networks/%s", req->params[0]);
    rep->etag = vo_api_key_rev(req->d, key);
    json_t *net = NULL;
    char *error = NULL;
    int r = vo_network_get_json(req->d, req->params[0], &net, &error);
    vo_reply_found(rep, r, net, error);
}

void vo_api_network_delete(VoRequest *req, VoReply *rep)
{
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return;
    char *error = NULL;
    int r = vo_network_delete(req->d, req->params[0], want, &error);
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
