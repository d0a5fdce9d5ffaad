/* qemu-layout-probe.c: reads a running QEMU's hardware layout over QMP into
 * the VM's layout record (qemu-layout.h) and keeps the record in its run
 * dir. What QEMU decided itself is asked from it: the machine version behind
 * an alias (query-machines; not asked once versioned), the CPU model
 * (query-hotpluggable-cpus), the bus and address of every PCI device with
 * an id but the root ports (QOM),
 * the vCPU devices plugged and the virtio-mem size requested (qom-get),
 * whether the cloud-init seed drive, when QOM lists one, holds a medium
 * (query-block). The
 * root ports and boot sizes never change after the start and stay as
 * recorded. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu/qemu-argv.h"
#include "qemu/qemu-devices.h"
#include "qemu/qemu-instance.h"
#include "util/util.h"

/* Whether machine is a versioned x86 machine ("pc-q35-10.0",
 * "pc-i440fx-9.2"): what an alias stands for, never an alias itself. */
static bool machine_versioned(const char *machine)
{
    return !strncmp(machine, "pc-q35-", 7) || !strncmp(machine, "pc-i440fx-", 10);
}

/* An alias ("q35") becomes the versioned machine it stands for. A machine
 * versioned already (a migrated VM's, or one probed before) is not asked
 * about: query-machines' answer is the largest of the layout read, which a
 * migration's prepare waits for. */
static int probe_machine(VoHvInstance *vm, VoQemuLayout *l, char **ret_error)
{
    if (l->machine && machine_versioned(l->machine))
        return 0;
    json_t *machines = NULL;
    int r = vo_qemu_command(vm, "query-machines", NULL, &machines, ret_error);
    if (r < 0)
        return r;
    size_t i;
    json_t *m;
    json_array_foreach(machines, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *alias = json_string_value(json_object_get(m, "alias"));
        if (name && alias && !strcmp(alias, l->machine)) {
            free(l->machine);
            l->machine = vo_strdup(name);
            break;
        }
    }
    json_decref(machines);
    return 0;
}

/* The CPU model and, with vCPU hot-plug, which vCPU devices are plugged. */
static int probe_vcpus(VoHvInstance *vm, VoQemuLayout *l, char **ret_error)
{
    json_t *slots = NULL;
    int r = vo_qemu_command(vm, "query-hotpluggable-cpus", NULL, &slots, ret_error);
    if (r < 0)
        return r;
    size_t i, n = 0;
    json_t *slot;
    unsigned *plugged = vo_malloc0(sizeof(unsigned) * (json_array_size(slots) + 1));
    json_array_foreach(slots, i, slot) {
        const char *type = json_string_value(json_object_get(slot, "type"));
        const char *path = json_string_value(json_object_get(slot, "qom-path"));
        size_t len = type ? strlen(type) : 0;
        if (len > 11 && !strcmp(type + len - 11, "-x86_64-cpu")) {
            free(l->cpu);
            l->cpu = vo_asprintf("%.*s", (int)(len - 11), type);
        }
        unsigned k;
        char tail;
        if (path && sscanf(path, "/machine/peripheral/vcpu%u%c", &k, &tail) == 1 && k > 0)
            plugged[n++] = k;
    }
    json_decref(slots);
    /* QEMU lists the slots highest first; the record keeps them ascending. */
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0 && plugged[b - 1] > plugged[b]; b--) {
            unsigned t = plugged[b];
            plugged[b] = plugged[b - 1];
            plugged[b - 1] = t;
        }
    free(l->vcpu_devices);
    l->vcpu_devices = plugged;
    l->n_vcpu_devices = l->vcpu_hotplug ? n : 0;
    return 0;
}

/* The names of QEMU's PCI device types (qom-list-types), to tell the PCI
 * devices among the devices with an id (vCPUs, serial ports are not). */
static int pci_types(VoHvInstance *vm, json_t **ret_types, char **ret_error)
{
    json_t *args = json_pack("{s:s, s:b}", "implements", "pci-device", "abstract", 0),
           *list = NULL;
    int r = vo_qemu_command(vm, "qom-list-types", args, &list, ret_error);
    json_decref(args);
    if (r < 0)
        return r;
    json_t *types = json_object();
    size_t i;
    json_t *type;
    json_array_foreach(list, i, type)
        json_object_set_new(types, json_string_value(json_object_get(type, "name")) ?: "",
                            json_true());
    json_decref(list);
    *ret_types = types;
    return 0;
}

/* Where the PCI device with id sits: its bus is the last part of its
 * parent_bus' QOM path ("/machine/q35/pcie.0", "/machine/peripheral/rp-disk0/
 * rp-disk0"), its address the devfn QEMU gave it. */
static int probe_device(VoHvInstance *vm, VoQemuLayout *l, const char *id, char **ret_error)
{
    _cleanup_free_ char *path = vo_asprintf("/machine/peripheral/%s", id);
    json_t *bus = NULL, *devfn = NULL;
    json_t *args = json_pack("{s:s, s:s}", "path", path, "property", "parent_bus");
    int r = vo_qemu_command(vm, "qom-get", args, &bus, ret_error);
    json_object_set_new(args, "property", json_string("addr"));
    if (r >= 0)
        r = vo_qemu_command(vm, "qom-get", args, &devfn, ret_error);
    json_decref(args);
    const char *bus_path = json_string_value(bus);
    const char *bus_name = bus_path ? strrchr(bus_path, '/') : NULL;
    if (r >= 0 && (!bus_name || !bus_name[1] || !json_is_integer(devfn)))
        r = vo_error_set(ret_error, -EPROTO, "QEMU did not say where device %s sits", id);
    if (r >= 0) {
        char addr[16];
        unsigned f = (unsigned)json_integer_value(devfn);
        snprintf(addr, sizeof(addr), "0x%x.%x", (f >> 3) & 0x1f, f & 7);
        vo_qemu_layout_set_device(l, id, bus_name + 1, addr);
    }
    json_decref(bus);
    json_decref(devfn);
    return r;
}

static int compare_device_ids(const void *a, const void *b)
{
    return strcmp(((const VoQemuDeviceAddr *)a)->id, ((const VoQemuDeviceAddr *)b)->id);
}

/* Whether id is one of the record's root ports: the command line puts each at
 * the bus and address root_ports gives (here and on a destination), so QEMU
 * is not asked where they sit (two round trips each, half a VM's devices). */
static bool is_root_port(const VoQemuLayout *l, const char *id)
{
    size_t i;
    json_t *port;
    json_array_foreach(l->root_ports, i, port)
        if (!strcmp(json_string_value(json_object_get(port, "id")) ?: "", id))
            return true;
    return false;
}

/* Every PCI device with an id, from QOM: what QEMU built, whatever the guest
 * did. query-pci is not used: it lists a bridge's devices only once the
 * guest's firmware or kernel numbered its secondary bus, so right after a
 * start or a reset it misses every disk and NIC behind q35's root ports. */
static int probe_devices_once(VoHvInstance *vm, VoQemuLayout *l, json_t *types,
                              bool *ret_seed_drive, char **ret_error)
{
    json_t *children = NULL, *args = json_pack("{s:s}", "path", "/machine/peripheral");
    int r = vo_qemu_command(vm, "qom-list", args, &children, ret_error);
    json_decref(args);
    if (r < 0)
        return r;
    vo_qemu_layout_clear_devices(l);
    size_t i;
    json_t *child;
    json_array_foreach(children, i, child) {
        const char *name = json_string_value(json_object_get(child, "name"));
        const char *type = json_string_value(json_object_get(child, "type")) ?: "";
        size_t len = strlen(type);
        if (!name || strncmp(type, "child<", 6) || type[len - 1] != '>')
            continue;
        if (!strcmp(name, VO_QEMU_CIDATA_ID))
            *ret_seed_drive = true;
        _cleanup_free_ char *type_name = vo_asprintf("%.*s", (int)(len - 7), type + 6);
        if (json_object_get(types, type_name) && !is_root_port(l, name) &&
            (r = probe_device(vm, l, name, ret_error)) < 0)
            break;
    }
    json_decref(children);
    if (r >= 0 && l->n_devices > 1) /* QOM's order is a hash table's: the record's is by id */
        qsort(l->devices, l->n_devices, sizeof(*l->devices), compare_device_ids);
    return r;
}

static int probe_devices(VoHvInstance *vm, VoQemuLayout *l, bool *ret_seed_drive,
                         char **ret_error)
{
    json_t *types = NULL;
    _cleanup_free_ char *error = NULL;
    int r = pci_types(vm, &types, ret_error);
    if (r >= 0)
        r = probe_devices_once(vm, l, types, ret_seed_drive, &error);
    /* Once more if a device went between the list and its questions (an
     * unplug the guest completed late: QEMU no longer finds it). Any other
     * failure, such as a monitor that does not answer, is not waited for
     * twice. */
    if (r == -EIO && error && strstr(error, "DeviceNotFound: "))
        r = probe_devices_once(vm, l, types, ret_seed_drive, ret_error);
    else if (r < 0 && error && ret_error)
        *ret_error = TAKE_PTR(error);
    json_decref(types);
    return r;
}

/* Whether the seed drive the VM has (QOM listed it) differs from its
 * spec's (see VoQemuSeedDrive): a drive without a medium is "empty"; one
 * with its seed is as the spec says. No drive (nothing asked): "none" stays
 * when vo_qemu_seed_change set it (settings without a drive to take them),
 * else it is as the spec says (none). */
static int probe_seed_drive(VoHvInstance *vm, VoQemuLayout *l, bool has_drive, char **ret_error)
{
    if (!has_drive)
        return 0;
    json_t *blocks = NULL;
    int r = vo_qemu_command(vm, "query-block", NULL, &blocks, ret_error);
    if (r < 0)
        return r;
    size_t i;
    json_t *b;
    json_array_foreach(blocks, i, b)
        if (!strcmp(json_string_value(json_object_get(b, "device")) ?: "", VO_QEMU_CIDATA_DRIVE))
            l->seed_drive = json_object_get(b, "inserted") ? VO_QEMU_SEED_AS_SPEC
                                                           : VO_QEMU_SEED_EMPTY;
    json_decref(blocks);
    return 0;
}

static int probe_virtio_mem(VoHvInstance *vm, VoQemuLayout *l, char **ret_error)
{
    if (l->max_memory_mib <= l->boot_memory_mib)
        return 0;
    json_t *args = json_pack("{s:s, s:s}", "path", "/machine/peripheral/" VO_QEMU_VIRTIO_MEM_ID,
                             "property", "requested-size"), *size = NULL;
    int r = vo_qemu_command(vm, "qom-get", args, &size, ret_error);
    json_decref(args);
    if (r >= 0)
        l->virtio_mem_requested = (uint64_t)json_integer_value(size);
    json_decref(size);
    return r;
}

int vo_qemu_layout_refresh(VoHvInstance *vm, char **ret_error)
{
    VoQemuLayout *l = vm->layout;
    bool seed_drive = false;
    int r = probe_machine(vm, l, ret_error);
    if (r >= 0)
        r = probe_vcpus(vm, l, ret_error);
    if (r >= 0)
        r = probe_devices(vm, l, &seed_drive, ret_error);
    if (r >= 0)
        r = probe_virtio_mem(vm, l, ret_error);
    if (r >= 0)
        r = probe_seed_drive(vm, l, seed_drive, ret_error);
    if (r < 0)
        return r;
    r = vo_qemu_layout_save(l, vm->run_dir);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot save the layout in %s: %s", vm->run_dir,
                            strerror(-r));
    return 0;
}

void vo_qemu_layout_changed(VoHvInstance *vm)
{
    if (!vm->layout)
        return;
    _cleanup_free_ char *error = NULL;
    if (vo_qemu_layout_refresh(vm, &error) < 0)
        log_warn("the hardware layout of the VM in %s was not updated: %s", vm->run_dir, error);
}
