/* routes.c: the REST route table, the one list api/openapi.yaml must match
 * (vireod --list-routes prints it for the contract test). */
#include "api/handlers.h"
#include "util/util.h"

#define ROUTE(method, pattern, fn) { method, pattern, fn, NULL }
#define UPLOAD(method, pattern, fn, prepare) { method, pattern, fn, prepare }

const VoRoute vo_routes[] = {
    ROUTE("GET", "/v1/host", vo_api_host_show),
    ROUTE("GET", "/v1/images", vo_api_images_list),
    ROUTE("POST", "/v1/images", vo_api_image_import),
    ROUTE("DELETE", "/v1/images/{image}", vo_api_image_delete),
    ROUTE("GET", "/v1/vms", vo_api_vms_list),
    ROUTE("POST", "/v1/vms", vo_api_vm_create),
    ROUTE("GET", "/v1/vms/{vm}", vo_api_vm_show),
    ROUTE("PATCH", "/v1/vms/{vm}", vo_api_vm_edit),
    ROUTE("DELETE", "/v1/vms/{vm}", vo_api_vm_delete),
    ROUTE("POST", "/v1/vms/{vm}/start", vo_api_vm_start),
    ROUTE("POST", "/v1/vms/{vm}/stop", vo_api_vm_stop),
    ROUTE("POST", "/v1/vms/{vm}/reboot", vo_api_vm_reboot),
    ROUTE("POST", "/v1/vms/{vm}/pause", vo_api_vm_pause),
    ROUTE("POST", "/v1/vms/{vm}/resume", vo_api_vm_resume),
    ROUTE("POST", "/v1/vms/{vm}/template", vo_api_vm_template),
    ROUTE("GET", "/v1/vms/{vm}/disks", vo_api_vm_disks_list),
    ROUTE("POST", "/v1/vms/{vm}/disks", vo_api_vm_disk_add),
    ROUTE("DELETE", "/v1/vms/{vm}/disks/{index}", vo_api_vm_disk_remove),
    ROUTE("GET", "/v1/vms/{vm}/nics", vo_api_vm_nics_list),
    ROUTE("POST", "/v1/vms/{vm}/nics", vo_api_vm_nic_add),
    ROUTE("DELETE", "/v1/vms/{vm}/nics/{index}", vo_api_vm_nic_remove),
    ROUTE("GET", "/v1/vms/{vm}/snapshots", vo_api_snapshots_list),
    ROUTE("POST", "/v1/vms/{vm}/snapshots", vo_api_snapshot_create),
    ROUTE("GET", "/v1/vms/{vm}/snapshots/{snapshot}", vo_api_snapshot_show),
    ROUTE("DELETE", "/v1/vms/{vm}/snapshots/{snapshot}", vo_api_snapshot_delete),
    ROUTE("POST", "/v1/vms/{vm}/snapshots/{snapshot}/revert", vo_api_snapshot_revert),
    ROUTE("GET", "/v1/vms/{vm}/console", vo_api_vm_console),
    ROUTE("GET", "/v1/vms/{vm}/console/log", vo_api_vm_console_log),
    ROUTE("GET", "/v1/pools", vo_api_pools_list),
    ROUTE("POST", "/v1/pools", vo_api_pool_create),
    ROUTE("GET", "/v1/pools/{pool}", vo_api_pool_show),
    ROUTE("DELETE", "/v1/pools/{pool}", vo_api_pool_delete),
    ROUTE("GET", "/v1/volumes", vo_api_volumes_list),
    ROUTE("POST", "/v1/pools/{pool}/volumes", vo_api_volume_create),
    ROUTE("GET", "/v1/pools/{pool}/volumes/{volume}", vo_api_volume_show),
    ROUTE("PATCH", "/v1/pools/{pool}/volumes/{volume}", vo_api_volume_edit),
    ROUTE("DELETE", "/v1/pools/{pool}/volumes/{volume}", vo_api_volume_delete),
    ROUTE("POST", "/v1/pools/{pool}/volumes/{volume}/resize", vo_api_volume_resize),
    ROUTE("POST", "/v1/pools/{pool}/volumes/{volume}/clone", vo_api_volume_clone),
    UPLOAD("PUT", "/v1/pools/{pool}/volumes/{volume}/data", vo_api_volume_upload,
           vo_api_volume_upload_prepare),
    ROUTE("GET", "/v1/pools/{pool}/volumes/{volume}/data", vo_api_volume_download),
    ROUTE("GET", "/v1/networks", vo_api_networks_list),
    ROUTE("POST", "/v1/networks", vo_api_network_create),
    ROUTE("GET", "/v1/networks/{network}", vo_api_network_show),
    ROUTE("DELETE", "/v1/networks/{network}", vo_api_network_delete),
    ROUTE("GET", "/v1/tasks", vo_api_tasks_list),
    ROUTE("GET", "/v1/tasks/{id}", vo_api_task_show),
};
const size_t vo_n_routes = ELEMENTSOF(vo_routes);
