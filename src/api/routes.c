/* routes.c: the REST route table, the one list api/openapi.yaml must match
 * (vireod --list-routes prints it for the contract test). */
#include "api/handlers.h"
#include "util/util.h"

const VoRoute vo_routes[] = {
    { "GET", "/v1/host", vo_api_host_show },
    { "GET", "/v1/images", vo_api_images_list },
    { "GET", "/v1/vms", vo_api_vms_list },
    { "POST", "/v1/vms", vo_api_vm_create },
    { "GET", "/v1/vms/{vm}", vo_api_vm_show },
    { "PATCH", "/v1/vms/{vm}", vo_api_vm_edit },
    { "DELETE", "/v1/vms/{vm}", vo_api_vm_delete },
    { "POST", "/v1/vms/{vm}/start", vo_api_vm_start },
    { "POST", "/v1/vms/{vm}/stop", vo_api_vm_stop },
    { "POST", "/v1/vms/{vm}/reboot", vo_api_vm_reboot },
    { "POST", "/v1/vms/{vm}/pause", vo_api_vm_pause },
    { "POST", "/v1/vms/{vm}/resume", vo_api_vm_resume },
    { "GET", "/v1/vms/{vm}/console", vo_api_vm_console },
    { "GET", "/v1/vms/{vm}/console/log", vo_api_vm_console_log },
    { "GET", "/v1/tasks", vo_api_tasks_list },
    { "GET", "/v1/tasks/{id}", vo_api_task_show },
};
const size_t vo_n_routes = ELEMENTSOF(vo_routes);
