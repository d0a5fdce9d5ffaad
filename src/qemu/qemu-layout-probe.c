/* qemu-layout-probe.c: reads a running QEMU's hardware layout over QMP into
 * the VM's layout record (qemu-layout.h) and keeps the record in its run
 * dir. What QEMU decided itself is asked from it: the machine version behind
 * an alias (query-machines), the CPU model (query-hotpluggable-cpus), the
 * bus and address of every device with an id (query-pci), the vCPU devices
 * plugged and the virtio-mem size requested (qom-get). The root ports and
 * boot sizes never change after the start and stay as recorded. */
#include <stdio.h>
#include <string.h>

#include "qemu/qemu-argv.h"
#include "qemu/qemu-instance.h"
#include "util/util.h"

/* An alias ("q35") becomes the versioned machine it stands for. */
static int probe_machine(VoHvInstance *vm, VoQemuLayout *l, char **ret_error)
{
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

/* Records every device with an id on bus (name), and those behind bridges. */
static void walk_pci(VoQemuLayout *l, json_t *devices, const char *bus)
{
    size_t i;
    json_t *d;
    json_array_foreach(devices, i, d) {
        const char *id = json_string_value(json_object_get(d, "qdev_id"));
        char addr[16];
        snprintf(addr, sizeof(addr), "0x%x.%x",
                 (unsigned)json_integer_value(json_object_get(d, "slot")),
                 (unsigned)json_integer_value(json_object_get(d, "function")));
        if (id && *id)
            vo_qemu_layout_set_device(l, id, bus, addr);
        json_t *below = json_object_get(json_object_get(d, "pci_bridge"), "devices");
        if (id && *id && json_is_array(below))
            walk_pci(l, below, id);
    }
}

static int probe_devices(VoHvInstance *vm, VoQemuLayout *l, char **ret_error)
{
    json_t *buses = NULL;
    int r = vo_qemu_command(vm, "query-pci", NULL, &buses, ret_error);
    if (r < 0)
        return r;
    vo_qemu_layout_clear_devices(l);
    /* The root bus: pcie.0 on q35, pci.0 on the i440FX pc. */
    const char *root = strstr(l->machine, "q35") ? "pcie.0" : "pci.0";
    walk_pci(l, json_object_get(json_array_get(buses, 0), "devices"), root);
    json_decref(buses);
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
    int r = probe_machine(vm, l, ret_error);
    if (r >= 0)
        r = probe_vcpus(vm, l, ret_error);
    if (r >= 0)
        r = probe_devices(vm, l, ret_error);
    if (r >= 0)
        r = probe_virtio_mem(vm, l, ret_error);
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
