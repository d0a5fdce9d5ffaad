/* cloud-init-api.c: GET and PUT /v1/vms/{vm}/cloud-init, a VM's cloud-init
 * settings and the NoCloud seed documents made from them (vm-cloudinit.c). */
#include "api/handlers.h"
#include "api/http.h"
#include "daemon/vms.h"
#include "util/util.h"

void vo_api_vm_cloud_init_get(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
    if (!vm)
        return;
    vo_reply_json(rep, 200, vo_vm_cloud_init_json(req->d, vm));
}

/* {"settings": {...}} replaces them; {"settings": null} removes them. */
void vo_api_vm_cloud_init_set(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    json_t *settings = NULL;
    if (!vm || !vo_request_unpack(req, rep, "{s:o}", "settings", &settings))
        return;
    if (!json_is_object(settings) && !json_is_null(settings)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "settings: expected an object of "
                       "cloud-init settings, or null to remove them");
        return;
    }
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_vm_cloud_init_set(req->d, vm, settings, &task, &error);
    vo_reply_task(rep, r, task, error);
}
