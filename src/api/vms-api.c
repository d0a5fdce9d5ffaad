/* vms-api.c: /v1/vms routes: list, create, show, edit, delete and the
 * lifecycle actions, each a thin mapping from JSON to the operations in
 * daemon/vms.h (vms.c and its parts). */
#include <string.h>

#include "api/handlers.h"
#include "api/vm-place-api.h"
#include "cluster/any-door.h"
#include "conf/names.h"
#include "conf/vm-spec.h"
#include "daemon/cluster-view.h"
#include "daemon/groups.h"
#include "daemon/images.h"
#include "daemon/networks.h"
#include "daemon/post-copy-paused.h"
#include "daemon/storage.h"
#include "daemon/vms.h"
#include "util/util.h"

VoVm *vo_api_find_vm(VoRequest *req, VoReply *rep)
{
    VoVm *vm = vo_vms_find(req->d, req->params[0]);
    if (!vm)
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "VM '%s' does not exist", req->params[0]);
    return vm;
}

VoVm *vo_api_find_vm_for_write(VoRequest *req, VoReply *rep)
{
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return NULL;
    VoVm *vm = vo_api_find_vm(req, rep);
    if (vm && want && !vo_reply_precondition(rep, want, vo_vm_rev(vm), "the VM")) {
        vo_vm_unref(vm);
        return NULL;
    }
    return vm;
}

void vo_api_vms_list(VoRequest *req, VoReply *rep)
{
    const char *view = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "view");
    if (view && strcmp(view, "summary") && strcmp(view, "full")) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "view: '%s' is not summary or full", view);
        return;
    }
    bool summary = view && !strcmp(view, "summary");
    VoDaemon *d = req->d;
    /* ?host=NAME: one host's VMs (this one's, or another's from its
     * documents). */
    const char *host = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "host");
    VoClusterHost other = { 0 };
    json_t *records = NULL; /* the hosts' live records, read once for the list */
    bool here = !host || !strcmp(host, d->host_name) || !strcmp(host, d->host_id);
    if (!here) {
        int r = vo_cluster_host_find(d, host, &other);
        if (r == -ENOENT) {
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                           "host: '%s' is not a host of this cluster (see: vireo host list)",
                           host);
            return;
        }
        if (r < 0) {
            vo_reply_errno(rep, r, "cannot read the hosts");
            return;
        }
    }
    json_t *arr = here ? vo_vms_list_json(d, summary) : json_array();
    size_t i;
    json_t *vm;
    json_array_foreach(arr, i, vm) {
        json_object_set_new(vm, "host", json_string(d->host_name));
        json_object_set_new(vm, "host_state", json_string("online"));
    }
    /* Every other host's VMs, from their documents: listed also while
     * their host is offline (with its state). */
    if (!host || !here) {
        int r = vo_cluster_add_vms(d, summary, host ? other.id : NULL, arr, &records);
        if (r < 0) {
            vo_cluster_host_clear(&other);
            json_decref(arr);
            vo_reply_errno(rep, r, "cannot read the other hosts' VMs");
            return;
        }
        vo_json_array_sort_by(arr, "name", "host", false);
    }
    vo_cluster_host_clear(&other);
    /* ?project=NAME: one project's VMs (every VM shows its project). */
    const char *project = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
                                                      "project");
    vo_vms_json_by_project(arr, project);
    /* A post-copy whose recovery failed: the host keeping its source. */
    vo_post_copy_paused_add(d, arr, records);
    json_decref(records);
    vo_reply_json(rep, 200, json_pack("{s:o}", "vms", arr));
}

void vo_api_vm_show(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
    if (!vm)
        return;
    rep->etag = vo_vm_rev(vm); /* before the document: never newer than it */
    /* One VM: its NICs with their DHCP addresses (lists leave those out). */
    json_t *doc = vo_vm_to_json(vm);
    json_object_set_new(doc, "nics", vo_vm_nics_json(req->d, vm));
    vo_vm_add_live_resources(vm, doc);
    /* What the guest agent says, asked now (bounded; never for lists). */
    json_object_set_new(doc, "guest", vo_vm_guest_json(vm));
    json_object_set_new(doc, "host", json_string(req->d->host_name));
    json_object_set_new(doc, "host_state", json_string("online"));
    /* A post-copy to here whose recovery failed: which host keeps its
     * source (POST /v1/vms/VM/migrate {"resume": true} retries it). */
    json_t *one = json_pack("[O]", doc);
    vo_post_copy_paused_add(req->d, one, NULL);
    json_decref(one);
    vo_reply_json(rep, 200, doc);
}

/* max_vcpus and max_memory_mib, where the body has them, within what any VM
 * may have (the rest, at least the value and within the host, is checked with
 * the spec). False with rep filled (400) when not. */
static bool maximums_in_range(VoRequest *req, VoReply *rep, json_int_t max_vcpus,
                              json_int_t max_memory)
{
    if (json_object_get(req->body, "max_vcpus") && (max_vcpus < 1 || max_vcpus > 4096)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "max_vcpus: %lld is out of range",
                       (long long)max_vcpus);
        return false;
    }
    if (json_object_get(req->body, "max_memory_mib") &&
        (max_memory < VO_VM_MIN_MEMORY_MIB || max_memory > (json_int_t)(1ULL << 40))) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "max_memory_mib: %lld is out of range",
                       (long long)max_memory);
        return false;
    }
    return true;
}

/* VM specs name volumes and images, never host paths (paths are resolved on
 * the host that runs the VM): a body giving one is refused, saying what to
 * give instead. False with rep filled (400) when it does. */
static bool no_host_paths_in_create(VoRequest *req, VoReply *rep)
{
    static const char *const path_keys[] = { "path", "disks", "disk", "kernel", "initrd" };
    for (size_t i = 0; req->body && i < ELEMENTSOF(path_keys); i++)
        if (json_object_get(req->body, path_keys[i])) {
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                           "%s: a VM is made from an image by name (\"image\": NAME: its disk, "
                           "kernel and initrd), never from host paths; add more disks by volume "
                           "(POST /v1/vms/{vm}/disks {\"volume\": \"POOL/NAME\"}), and make "
                           "a host file a volume or an image first (vireo volume import, vireo "
                           "image import)", path_keys[i]);
            return false;
        }
    const char *image = json_string_value(json_object_get(req->body, "image"));
    if (image && strchr(image, '/')) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "image: '%s' is a path; give an image's name (see: vireo image list; a "
                       "host file becomes one with vireo image import)", image);
        return false;
    }
    return true;
}

/* "boot": ["cdrom", "disk", "network"], each at most once (create and
 * edit): into ret (_VO_BOOT_MAX entries) and *ret_n, else a 400. */
static bool boot_order_valid(VoReply *rep, json_t *boot, VoBootDev *ret, size_t *ret_n)
{
    *ret_n = 0;
    if (!json_is_array(boot) || json_array_size(boot) == 0 ||
        json_array_size(boot) > _VO_BOOT_MAX) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "boot: a list of disk, cdrom, network "
                       "(each at most once)");
        return false;
    }
    size_t i;
    json_t *v;
    json_array_foreach(boot, i, v) {
        VoBootDev dev;
        if (vo_boot_dev_from_string(json_string_value(v), &dev) < 0) {
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "boot[%zu]: expected one of disk, "
                           "cdrom, network", i);
            return false;
        }
        for (size_t j = 0; j < *ret_n; j++)
            if (ret[j] == dev) {
                vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "boot: %s is listed twice",
                               vo_boot_dev_to_string(dev));
                return false;
            }
        ret[(*ret_n)++] = dev;
    }
    return true;
}

/* "blank": true (no image: an empty disk), "cdrom": "POOL/NAME" (an ISO
 * volume) or "" (an empty drive), "boot": ["cdrom", "disk", "network"]. */
static bool create_boot_args(VoRequest *req, VoReply *rep, VoVmCreateArgs *args)
{
    json_t *cdrom = json_object_get(req->body, "cdrom");
    json_t *boot = json_object_get(req->body, "boot");
    json_t *firmware = json_object_get(req->body, "firmware");
    json_t *secure_boot = json_object_get(req->body, "secure_boot");
    args->blank = json_is_true(json_object_get(req->body, "blank"));
    VoFirmware fw;
    if (firmware && (!json_is_string(firmware) ||
                     vo_firmware_from_string(json_string_value(firmware), &fw) < 0)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "firmware: expected \"bios\" or \"uefi\"");
        return false;
    }
    args->firmware = json_string_value(firmware);
    if (secure_boot && !json_is_boolean(secure_boot)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "secure_boot: expected true or false");
        return false;
    }
    args->secure_boot = json_is_true(secure_boot);
    json_t *display = json_object_get(req->body, "display");
    VoDisplay disp;
    if (display && (!json_is_string(display) ||
                    vo_display_from_string(json_string_value(display), &disp) < 0)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "display: expected \"vga\", \"virtio\" or \"none\"");
        return false;
    }
    args->display = json_string_value(display);
    /* Checked by vo_vm_create (cloud_init.FIELD: what to fix). */
    json_t *cloud_init = json_object_get(req->body, "cloud_init");
    args->cloud_init = json_is_null(cloud_init) ? NULL : cloud_init;
    if (cdrom && !json_is_string(cdrom)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "cdrom: expected \"POOL/NAME\" of an ISO "
                       "volume (or \"\" for an empty drive)");
        return false;
    }
    if (cdrom) {
        args->has_cdrom = true;
        const char *key = json_string_value(cdrom);
        args->cdrom = *key ? key : NULL;
    }
    return !boot || boot_order_valid(rep, boot, args->boot, &args->n_boot);
}

static void vm_create_here(VoRequest *req, VoReply *rep, VoPlaceChoice *choice, const char *name,
                           const char *image, const char *accel, const char *group,
                           json_int_t vcpus, json_int_t memory, json_int_t disk_size,
                           json_int_t max_vcpus, json_int_t max_memory, int autostart,
                           int full_clone, json_t *networks, const char *pool, int ha,
                           json_int_t ha_priority, const char *ha_group);

/* ha_priority in range, ha_group a name (or "" in an edit: none). */
static bool ha_fields_valid(VoReply *rep, json_int_t ha_priority, const char *ha_group)
{
    if (ha_priority < VO_VM_HA_PRIORITY_MIN || ha_priority > VO_VM_HA_PRIORITY_MAX) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "ha_priority: %lld is out of range (%d..%d; "
                       "higher is restarted first)", (long long)ha_priority,
                       VO_VM_HA_PRIORITY_MIN, VO_VM_HA_PRIORITY_MAX);
        return false;
    }
    if (ha_group && *ha_group && !vo_name_valid(ha_group)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "ha_group: '%s' is invalid: use 1-63 characters of a-z, 0-9 and '-', not "
                       "starting with '-'", ha_group);
        return false;
    }
    return true;
}

/* The firmware an image's VMs boot unless asked otherwise (its document's
 * "firmware"): BIOS for a blank VM, and when the image is not found (the
 * chosen host's create says so). *ret_pool: the shared pool the image is
 * kept in (malloc'd; NULL: a host's own image, copied to the chosen host). */
static VoFirmware image_firmware(VoDaemon *d, bool blank, const char *image, char **ret_pool)
{
    VoFirmware fw = VO_FIRMWARE_BIOS;
    VoImage *img = NULL;
    *ret_pool = NULL;
    if (!blank && d->cluster && vo_image_find_anywhere(d, image, &img) >= 0) {
        if (img->firmware)
            (void)vo_firmware_from_string(img->firmware, &fw);
        if (img->pool)
            *ret_pool = vo_strdup(img->pool);
    }
    vo_image_free(img);
    return fw;
}

/* key when it is "POOL/NAME", else NULL: the chosen host says what is
 * wrong with it (400), not placement (a pool of that name nowhere, 409). */
static const char *volume_key(const char *key)
{
    return key && strchr(key, '/') ? key : NULL;
}

/* The pools the chosen host must reach (cluster/placement.h): the pool of
 * the new disk and NVRAM, of an existing volume as its disk, of the ISO
 * and of the image. A host's own pool is found only on that host. */
static char **create_pools(const char *pool, const char *disk_volume, const char *cdrom,
                           const char *image_pool)
{
    const char *names[] = { pool, volume_key(disk_volume), volume_key(cdrom),
                            disk_volume ? NULL : image_pool /* the disk is not the image's */ };
    return vo_place_pools_needed(names, ELEMENTSOF(names), VO_DEFAULT_POOL, NULL, NULL);
}

void vo_api_vm_create(VoRequest *req, VoReply *rep)
{
    const char *name = NULL, *image = "default", *accel = "auto", *group = NULL, *host = NULL;
    const char *pool = NULL, *disk_volume = NULL; /* read again by vm_create_here */
    const char *project = NULL;                   /* this one too */
    json_int_t vcpus = 1, memory = 512, disk_size = 0, max_vcpus = 0, max_memory = 0;
    int autostart = 0, full_clone = 0, ha = 0;
    json_int_t ha_priority = 0;
    const char *ha_group = NULL;
    json_t *networks = NULL, *cdrom = NULL, *boot = NULL, *firmware = NULL, *secure_boot = NULL;
    json_t *display = NULL;
    json_t *cloud_init = NULL;
    json_t *macs = NULL; /* read by vm_create_here */
    int blank = 0;
    if (!no_host_paths_in_create(req, rep))
        return;
    if (!vo_request_unpack(req, rep,
                           "{s:s, s?s, s?I, s?I, s?I, s?I, s?I, s?s, s?b, s?b, s?o, s?s, s?s, s?s,"
                           " s?o, s?o, s?b, s?b, s?I, s?s, s?o, s?o, s?o, s?s, s?o, s?s, s?o}",
                           "name", &name, "image", &image, "vcpus", &vcpus, "memory_mib", &memory,
                           "max_vcpus", &max_vcpus, "max_memory_mib", &max_memory,
                           "disk_size_bytes", &disk_size, "accel", &accel, "autostart",
                           &autostart, "full_clone", &full_clone, "networks", &networks,
                           "group", &group, "host", &host, "pool", &pool, "cdrom", &cdrom,
                           "boot", &boot, "blank", &blank, "ha", &ha,
                           "ha_priority", &ha_priority, "ha_group", &ha_group, "firmware",
                           &firmware, "secure_boot", &secure_boot, "display", &display,
                           "disk_volume", &disk_volume, "cloud_init", &cloud_init,
                           "project", &project, "macs", &macs))
        return;
    (void)display; /* read by create_boot_args */
    (void)macs;
    /* Before placement: a document of the whole cluster. */
    if (project && !vo_api_project_named(req, rep, project))
        return;
    if (!ha_fields_valid(rep, ha_priority, ha_group))
        return;
    /* Where it goes (a cluster: the manager places it) is decided before the
     * limits of this host are looked at: they are the chosen host's to check. */
    VoPlaceAsk ask = { .group = group, .host = host, .project = project };
    if (req->d->cluster && (vcpus < 1 || vcpus > 4096 || memory < VO_VM_MIN_MEMORY_MIB ||
                            memory > (json_int_t)(1ULL << 40))) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s: %lld is out of range",
                       vcpus < 1 || vcpus > 4096 ? "vcpus" : "memory_mib",
                       (long long)(vcpus < 1 || vcpus > 4096 ? vcpus : memory));
        return;
    }
    if (vo_accel_from_string(accel, &ask.accel) < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "accel: '%s' is not one of auto, kvm, tcg",
                       accel);
        return;
    }
    if (group && !vo_name_valid(group)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "group: '%s' is invalid: use 1-63 characters of a-z, 0-9 and '-', not "
                       "starting with '-'", group);
        return;
    }
    if (group) {
        VoGroupPolicy policy;
        char *error = NULL;
        int r = vo_group_policy(req->d, group, &policy, &error);
        if (r < 0) {
            vo_reply_errno(rep, r == -ENOENT ? -EINVAL : r, error);
            free(error);
            return;
        }
    }
    ask.vcpus = (unsigned)vcpus;
    ask.memory_mib = (uint64_t)memory;
    /* A UEFI VM goes only where OVMF is: asked for, else the image's
     * preference (as the chosen host will apply it, vm_create_here), known
     * before a host is picked. */
    VoFirmware fw = VO_FIRMWARE_BIOS;
    _cleanup_free_ char *image_pool = NULL;
    VoFirmware image_fw = image_firmware(req->d, blank, image, &image_pool);
    if (!json_is_string(firmware))
        fw = image_fw;
    else
        (void)vo_firmware_from_string(json_string_value(firmware), &fw);
    ask.firmware = vo_place_firmware_needed(fw, json_is_true(secure_boot));
    /* The networks asked for must be on the host the manager chooses
     * (without any, the VM gets that host's default network, or QEMU's user
     * networking). A host named by the caller is not filtered on: its own
     * check answers (400, "network ... does not exist"), and a network made
     * there a moment ago may not be in its record yet. */
    size_t n_asked = json_is_array(networks) ? json_array_size(networks) : 0;
    const char **asked = vo_malloc0((n_asked + 1) * sizeof(char *));
    for (size_t i = 0; i < n_asked; i++)
        asked[i] = json_string_value(json_array_get(networks, i)); /* NULL: refused later */
    _cleanup_strv_ char **needed = vo_place_networks_needed(asked, n_asked);
    free(asked);
    ask.networks = host ? NULL : needed;
    /* The same for the pools the create names: a named host answers for
     * itself ("volume ... does not exist"). */
    const char *cdrom_key = json_string_value(cdrom);
    _cleanup_strv_ char **pools = create_pools(pool, disk_volume, cdrom_key, image_pool);
    ask.pools = host ? NULL : pools;
    /* A volume of a host's own pool: on its host, not on another host that
     * has a pool of that name. */
    const char *volumes[] = { volume_key(disk_volume), volume_key(cdrom_key) };
    ask.volumes = volumes;
    ask.n_volumes = ELEMENTSOF(volumes);
    VoPlaceChoice choice = { 0 };
    if (vo_api_vm_create_elsewhere(req, rep, &ask, &choice))
        return;
    vm_create_here(req, rep, &choice, name, image, accel, group, vcpus, memory, disk_size,
                   max_vcpus, max_memory, autostart, full_clone, networks, pool, ha,
                   ha_priority, ha_group);
}

/* The create, served on this host (standalone, or placed here). */
static void vm_create_here(VoRequest *req, VoReply *rep, VoPlaceChoice *choice, const char *name,
                           const char *image, const char *accel, const char *group,
                           json_int_t vcpus, json_int_t memory, json_int_t disk_size,
                           json_int_t max_vcpus, json_int_t max_memory, int autostart,
                           int full_clone, json_t *networks, const char *pool, int ha,
                           json_int_t ha_priority, const char *ha_group)
{
    bool created = false;
    const char *nets[VO_VM_MAX_NICS];
    size_t n_nets = 0;
    if (networks) {
        size_t i;
        json_t *v;
        if (!json_is_array(networks) || json_array_size(networks) == 0 ||
            json_array_size(networks) > VO_VM_MAX_NICS) {
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                           "networks: a list of 1 to %d network names ('user' for QEMU's own)",
                           VO_VM_MAX_NICS);
            goto done;
        }
        json_array_foreach(networks, i, v) {
            if (!json_is_string(v)) {
                vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "networks[%zu]: expected a string", i);
                goto done;
            }
            nets[n_nets++] = json_string_value(v);
        }
    }
    /* "macs": the NICs' MACs in order, null for a new one (vireod checks each). */
    const char *mac_list[VO_VM_MAX_NICS] = { NULL };
    size_t n_macs = 0;
    json_t *macs = json_object_get(req->body, "macs");
    if (macs) {
        size_t i;
        json_t *v;
        if (!json_is_array(macs) || json_array_size(macs) > VO_VM_MAX_NICS) {
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                           "macs: a list of at most %d MACs, one per NIC in order (null: a "
                           "new one)", VO_VM_MAX_NICS);
            goto done;
        }
        json_array_foreach(macs, i, v) {
            if (!json_is_string(v) && !json_is_null(v)) {
                vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                               "macs[%zu]: expected a MAC like 52:54:00:12:34:56, or null", i);
                goto done;
            }
            mac_list[n_macs++] = json_string_value(v);
        }
    }
    VoVmCreateArgs args = { .name = name, .image = image, .autostart = autostart, .ha = ha,
                            .full_clone = full_clone, .networks = networks ? nets : NULL,
                            .n_networks = n_nets, .pool = pool,
                            .macs = n_macs ? mac_list : NULL, .n_macs = n_macs,
                            .ha_priority = (int)ha_priority, .ha_group = ha_group };
    if (!create_boot_args(req, rep, &args))
        goto done;
    if (vcpus < 1 || vcpus > (json_int_t)req->d->limits.max_vcpus) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "vcpus: %lld is out of range (1..%u on this host)",
                       (long long)vcpus, req->d->limits.max_vcpus);
        goto done;
    }
    if (memory < VO_VM_MIN_MEMORY_MIB || memory > (json_int_t)req->d->limits.max_memory_mib) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "memory: %lld MiB is out of range (%d MiB..%llu MiB on this host)",
                       (long long)memory, VO_VM_MIN_MEMORY_MIB,
                       (unsigned long long)req->d->limits.max_memory_mib);
        goto done;
    }
    if (!maximums_in_range(req, rep, max_vcpus, max_memory))
        goto done;
    args.max_vcpus = (unsigned)max_vcpus;
    args.max_memory_mib = (uint64_t)max_memory;
    if (disk_size < 0 || disk_size > (json_int_t)(64ULL << 40)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "disk_size_bytes: out of range (up to 64 TiB)");
        goto done;
    }
    if (vo_accel_from_string(accel, &args.accel) < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "accel: '%s' is not one of auto, kvm, tcg",
                       accel);
        goto done;
    }
    args.group = group;
    args.vcpus = (unsigned)vcpus;
    args.memory_mib = (uint64_t)memory;
    args.disk_size_bytes = (uint64_t)disk_size;
    args.disk_volume = json_string_value(json_object_get(req->body, "disk_volume"));
    args.project = json_string_value(json_object_get(req->body, "project"));
    json_t *task = NULL, *vm = NULL;
    char *error = NULL;
    int64_t t0 = vo_now_us();
    int r = vo_vm_create(req->d, &args, &task, &vm, &error);
    log_debug("place-trace host create=%.3f", (vo_now_us() - t0) / 1e3);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        free(error);
        goto done;
    }
    /* Where it was made: in a cluster, the host the manager chose. */
    vo_reply_json(rep, 202, json_pack("{s:o, s:o, s:{s:s, s:s}}", "task", task, "vm", vm, "host",
                                      "id", req->d->host_id, "name", req->d->host_name));
    created = true;
done:
    vo_api_vm_create_done(req, rep, choice, created);
}

/* cpu_weight: an integer 1..10000 or 0 (the default); cpu_limit: cores,
 * 0.01..4096 or 0 (none). */
static bool cpu_fields_valid(VoReply *rep, json_t *weight, json_t *limit)
{
    json_int_t w = json_integer_value(weight);
    if (weight && (!json_is_integer(weight) ||
                   (w != 0 && (w < VO_VM_CPU_WEIGHT_MIN || w > VO_VM_CPU_WEIGHT_MAX)))) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "cpu_weight: expected an integer from %d "
                       "to %d, or 0 for the default (100)", VO_VM_CPU_WEIGHT_MIN,
                       VO_VM_CPU_WEIGHT_MAX);
        return false;
    }
    double l = json_number_value(limit);
    if (limit && (!json_is_number(limit) || (l != 0 && !(l >= VO_VM_CPU_LIMIT_MIN && l <= 4096)))) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "cpu_limit: expected a number of cores "
                       "from %.2f to 4096, or 0 for none", VO_VM_CPU_LIMIT_MIN);
        return false;
    }
    return true;
}

void vo_api_vm_edit(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    if (!vm)
        return;
    const char *name = NULL;
    json_int_t vcpus = 0, memory = 0, max_vcpus = 0, max_memory = 0;
    json_t *autostart = NULL, *ha = NULL, *ha_priority = NULL, *secure_boot = NULL;
    json_t *cpu_weight = NULL, *cpu_limit = NULL, *boot = NULL;
    const char *ha_group = NULL, *firmware = NULL, *display = NULL, *project = NULL;
    if (!vo_request_unpack(req, rep, "{s?s, s?I, s?I, s?I, s?I, s?o, s?o, s?o, s?s, s?s, s?o, s?s,"
                           " s?s, s?o, s?o, s?o}",
                           "name", &name, "vcpus", &vcpus, "memory_mib", &memory, "max_vcpus",
                           &max_vcpus, "max_memory_mib", &max_memory, "autostart", &autostart,
                           "ha", &ha, "ha_priority", &ha_priority, "ha_group", &ha_group,
                           "firmware", &firmware, "secure_boot", &secure_boot, "display",
                           &display, "project", &project, "cpu_weight", &cpu_weight, "cpu_limit",
                           &cpu_limit, "boot", &boot))
        return;
    /* The boot order, also of a running VM (its next start has it); null:
     * the default (disk, then the CD-ROM). */
    VoBootDev boot_order[_VO_BOOT_MAX];
    size_t n_boot = 0;
    if (boot && !json_is_null(boot) && !boot_order_valid(rep, boot, boot_order, &n_boot))
        return;
    if (project && !vo_api_project_named(req, rep, project))
        return;
    if (!cpu_fields_valid(rep, cpu_weight, cpu_limit))
        return;
    if (secure_boot && !json_is_boolean(secure_boot)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "secure_boot: expected true or false");
        return;
    }
    if (autostart && !json_is_boolean(autostart)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "autostart: expected true or false");
        return;
    }
    if (ha && !json_is_boolean(ha)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "ha: expected true or false");
        return;
    }
    if (ha_priority && !json_is_integer(ha_priority)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "ha_priority: expected an integer");
        return;
    }
    if (!ha_fields_valid(rep, ha_priority ? json_integer_value(ha_priority) : 0, ha_group))
        return;
    if (json_object_size(req->body) == 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "give at least one of name, vcpus, memory_mib, max_vcpus, "
                       "max_memory_mib, autostart, ha, ha_priority, ha_group, firmware, "
                       "secure_boot, display, project, cpu_weight, cpu_limit, boot");
        return;
    }
    /* 0 means "unchanged" below, so a 0 the user sent is refused here. */
    if (json_object_get(req->body, "vcpus") && vcpus < 1) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "vcpus: must be at least 1");
        return;
    }
    if (json_object_get(req->body, "memory_mib") && memory < VO_VM_MIN_MEMORY_MIB) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "memory_mib: must be at least %d",
                       VO_VM_MIN_MEMORY_MIB);
        return;
    }
    if (!maximums_in_range(req, rep, max_vcpus, max_memory))
        return;
    if (vcpus > 4096 || memory > (json_int_t)(1ULL << 40)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s: out of range",
                       vcpus > 4096 ? "vcpus" : "memory_mib");
        return;
    }
    VoVmEdit edit = { .name = name, .vcpus = (unsigned)vcpus, .memory_mib = (uint64_t)memory,
                      .max_vcpus = (unsigned)max_vcpus, .max_memory_mib = (uint64_t)max_memory,
                      .autostart = autostart ? json_is_true(autostart) : -1,
                      .ha = ha ? json_is_true(ha) : -1, .ha_priority_set = ha_priority != NULL,
                      .ha_priority = ha_priority ? (int)json_integer_value(ha_priority) : 0,
                      .ha_group = ha_group, .firmware = firmware,
                      .secure_boot_set = secure_boot != NULL,
                      .secure_boot = json_is_true(secure_boot), .display = display,
                      .project = project,
                      .cpu_weight_set = cpu_weight != NULL,
                      .cpu_weight = (unsigned)json_integer_value(cpu_weight),
                      .cpu_limit_set = cpu_limit != NULL,
                      .cpu_limit = json_number_value(cpu_limit),
                      .boot_set = boot != NULL, .n_boot = n_boot };
    memcpy(edit.boot, boot_order, sizeof(VoBootDev) * n_boot);
    /* Compared again under the VM's lock where the edit is saved (or, for a
     * live change, where the task starts it). */
    (void)vo_request_if_match(req, rep, &edit.if_match);
    char *error = NULL;
    /* vCPUs and memory of a running VM change live, in a task (hot-plug);
     * autostart given along is applied with it once the change was accepted
     * (a refused request changes nothing). */
    bool live = (vcpus || memory) && !name && !max_vcpus && !max_memory && !ha &&
                !cpu_weight && !cpu_limit && !boot &&
                !ha_priority && !ha_group && !firmware && !secure_boot && !display && !project &&
                vo_vm_is_active(vm);
    if (live) {
        json_t *task = NULL;
        int r = vo_vm_set_resources(req->d, vm, edit.vcpus, edit.memory_mib, edit.autostart,
                                    edit.if_match, &task, &error);
        vo_reply_task(rep, r, task, error);
        return;
    }
    int r = vo_vm_edit(req->d, vm, &edit, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else {
        rep->etag = vo_vm_rev(vm);
        vo_reply_json(rep, 200, vo_vm_to_json(vm));
    }
    if (r >= 0 && edit.name)
        vo_networks_refresh_hosts(req->d); /* DNS follows the new name */
    free(error);
}

void vo_api_vm_delete(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    if (!vm)
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_vm_delete(req->d, vm, vo_request_query_bool(req, "force"),
                         vo_request_query_bool(req, "keep_disks"), &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_vm_start(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    const char *once = NULL;
    if (!vm || !vo_request_unpack(req, rep, "{s?s}", "boot_once", &once))
        return;
    VoBootDev dev;
    if (once && vo_boot_dev_from_string(once, &dev) < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "boot_once: '%s' is not one of disk, "
                       "cdrom, network", once);
        return;
    }
    json_t *task = NULL;
    char *error = NULL;
    int r = once ? vo_vm_start_once(req->d, vm, dev, &task, &error)
                 : vo_vm_start(req->d, vm, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_vm_stop(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    int force = 0;
    json_int_t timeout = 30;
    if (!vm || !vo_request_unpack(req, rep, "{s?b, s?I}", "force", &force, "timeout_s", &timeout))
        return;
    if (timeout < 0 || timeout > 3600) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "timeout_s: must be 0..3600");
        return;
    }
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_vm_stop(req->d, vm, force, (int)timeout, &task, &error);
    vo_reply_task(rep, r, task, error);
}

typedef int (*SimpleOp)(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error);

static void simple_action(VoRequest *req, VoReply *rep, SimpleOp op)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    if (!vm || !vo_request_unpack(req, rep, "{}"))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = op(req->d, vm, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_vm_reboot(VoRequest *req, VoReply *rep) { simple_action(req, rep, vo_vm_reboot); }
void vo_api_vm_pause(VoRequest *req, VoReply *rep) { simple_action(req, rep, vo_vm_pause); }
void vo_api_vm_resume(VoRequest *req, VoReply *rep) { simple_action(req, rep, vo_vm_resume); }

void vo_api_vm_template(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    const char *image = NULL;
    if (!vm || !vo_request_unpack(req, rep, "{s:s}", "image", &image))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_vm_template(req->d, vm, image, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_vm_clone(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    const char *name = NULL, *pool = NULL;
    int full = 1;
    if (!vm || !vo_request_unpack(req, rep, "{s:s, s?b, s?s}", "name", &name, "full", &full,
                                  "pool", &pool))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_vm_clone(req->d, vm, name, full, pool, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_vm_disks_list(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm(req, rep);
    if (vm)
        vo_reply_json(rep, 200, json_pack("{s:o}", "disks", vo_vm_disks_json(vm)));
}

void vo_api_vm_disk_add(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    VoVmDiskAdd add = { 0 };
    json_int_t size = 0;
    if (!vm)
        return;
    const char *path = json_string_value(json_object_get(req->body, "path"));
    if (path) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "path: a VM's disks are volumes: give "
                       "\"volume\": \"POOL/NAME\" (a host file becomes a volume with vireo "
                       "volume import)");
        return;
    }
    if (!vo_request_unpack(req, rep, "{s?s, s?s, s?I, s?s}", "volume", &add.volume, "pool",
                           &add.pool, "size_bytes", &size, "format", &add.format))
        return;
    if (add.volume && add.volume[0] == '/') {
        /* Where the path is a volume's file, the message names that volume. */
        _cleanup_free_ char *key = vo_volume_key_of_path(req->d, add.volume);
        if (key)
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "volume: '%s' is a host path; give the "
                           "volume's name: \"%s\"", add.volume, key);
        else
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "volume: '%s' is a host path; give a "
                           "volume's name POOL/NAME (see: vireo volume list; a host file "
                           "becomes a volume with vireo volume import)", add.volume);
        return;
    }
    if (size < 0 || (add.volume && (size || add.pool || add.format))) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "give either volume (POOL/NAME) or size_bytes [pool, format], not both");
        return;
    }
    add.size_bytes = (uint64_t)size;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_vm_disk_add(req->d, vm, &add, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_vm_disk_remove(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    if (!vm)
        return;
    size_t index;
    if (!vo_request_index(req, rep, 1, "disk index", &index))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_vm_disk_remove(req->d, vm, index, &task, &error);
    vo_reply_task(rep, r, task, error);
}
