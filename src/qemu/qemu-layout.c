/* qemu-layout.c: the hardware layout record of a QEMU VM (see qemu-layout.h):
 * built from a spec for a plain start, converted to and from its JSON, kept
 * in the run dir. */
#include "qemu/qemu-layout.h"

#include <stdlib.h>
#include <string.h>

#include "qemu/qemu-devices.h"
#include "util/util.h"

static void device_clear(VoQemuDeviceAddr *d)
{
    free(d->id);
    free(d->bus);
    free(d->addr);
}

void vo_qemu_layout_clear_devices(VoQemuLayout *l)
{
    for (size_t i = 0; i < l->n_devices; i++)
        device_clear(&l->devices[i]);
    free(l->devices);
    l->devices = NULL;
    l->n_devices = 0;
}

VoQemuLayout *vo_qemu_layout_free(VoQemuLayout *l)
{
    if (!l)
        return NULL;
    free(l->machine);
    free(l->cpu);
    free(l->vcpu_devices);
    json_decref(l->root_ports);
    vo_qemu_layout_clear_devices(l);
    free(l);
    return NULL;
}

VoQemuLayout *vo_qemu_layout_from_spec(const VoVmSpec *spec, VoAccel accel)
{
    VoQemuLayout *l = vo_malloc0(sizeof(*l));
    l->machine = vo_strdup(spec->machine);
    l->cpu = accel == VO_ACCEL_KVM ? vo_strdup("host") : NULL;
    l->accel = accel;
    l->vcpu_hotplug = vo_vm_spec_vcpu_hotplug(spec);
    l->vcpus = spec->vcpus;
    l->max_vcpus = spec->max_vcpus;
    if (l->vcpu_hotplug && spec->vcpus > 1) {
        l->vcpu_devices = vo_malloc0(sizeof(unsigned) * spec->vcpus);
        for (unsigned k = 1; k < spec->vcpus; k++)
            l->vcpu_devices[l->n_vcpu_devices++] = k;
    }
    l->boot_memory_mib = spec->memory_mib;
    l->max_memory_mib = vo_vm_spec_memory_hotplug(spec) ? spec->max_memory_mib : spec->memory_mib;
    if (accel == VO_ACCEL_TCG && l->max_memory_mib > l->boot_memory_mib)
        l->boot_pad_kib = VO_QEMU_TCG_BOOT_PAD_KIB;
    l->root_ports = vo_qemu_root_ports(spec);
    return l;
}

VoQemuLayout *vo_qemu_layout_copy(const VoQemuLayout *l)
{
    VoQemuLayout *c = vo_malloc0(sizeof(*c));
    *c = *l;
    c->machine = vo_strdup(l->machine);
    c->cpu = l->cpu ? vo_strdup(l->cpu) : NULL;
    c->vcpu_devices = vo_malloc0(sizeof(unsigned) * (l->n_vcpu_devices + 1));
    memcpy(c->vcpu_devices, l->vcpu_devices ?: c->vcpu_devices,
           sizeof(unsigned) * l->n_vcpu_devices);
    c->root_ports = json_deep_copy(l->root_ports);
    c->devices = NULL;
    c->n_devices = 0;
    for (size_t i = 0; i < l->n_devices; i++)
        vo_qemu_layout_set_device(c, l->devices[i].id, l->devices[i].bus, l->devices[i].addr);
    return c;
}

const VoQemuDeviceAddr *vo_qemu_layout_device(const VoQemuLayout *l, const char *id)
{
    for (size_t i = 0; i < l->n_devices; i++)
        if (!strcmp(l->devices[i].id, id))
            return &l->devices[i];
    return NULL;
}

void vo_qemu_layout_set_device(VoQemuLayout *l, const char *id, const char *bus, const char *addr)
{
    VoQemuDeviceAddr *d = (VoQemuDeviceAddr *)vo_qemu_layout_device(l, id);
    if (!d) {
        VoQemuDeviceAddr *grown = realloc(l->devices, sizeof(*grown) * (l->n_devices + 1));
        if (!grown)
            abort();
        l->devices = grown;
        d = &l->devices[l->n_devices++];
        *d = (VoQemuDeviceAddr){ .id = vo_strdup(id) };
    } else {
        free(d->bus);
        free(d->addr);
    }
    d->bus = vo_strdup(bus);
    d->addr = vo_strdup(addr);
}

json_t *vo_qemu_layout_to_json(const VoQemuLayout *l)
{
    json_t *vcpus = json_array(), *devices = json_array();
    for (size_t i = 0; i < l->n_vcpu_devices; i++)
        json_array_append_new(vcpus, json_integer(l->vcpu_devices[i]));
    for (size_t i = 0; i < l->n_devices; i++)
        json_array_append_new(devices, json_pack("{s:s, s:s, s:s}", "id", l->devices[i].id, "bus",
                                                 l->devices[i].bus, "addr", l->devices[i].addr));
    json_t *doc = json_pack(
        "{s:i, s:s, s:s, s:{s:b, s:i, s:i, s:o}, s:{s:I, s:I, s:I}, s:O, s:o}", "version",
        VO_QEMU_LAYOUT_VERSION, "machine", l->machine, "accel", vo_accel_to_string(l->accel),
        "vcpus", "hotplug", l->vcpu_hotplug, "boot", (int)l->vcpus, "max", (int)l->max_vcpus,
        "devices", vcpus, "memory", "boot_mib", (json_int_t)l->boot_memory_mib, "max_mib",
        (json_int_t)l->max_memory_mib, "virtio_mem_requested", (json_int_t)l->virtio_mem_requested,
        "root_ports", l->root_ports, "devices", devices);
    if (!doc)
        abort();
    if (l->cpu)
        json_object_set_new(doc, "cpu", json_string(l->cpu));
    if (l->boot_pad_kib) /* absent in the layouts of older vireods: 0 */
        json_object_set_new(json_object_get(doc, "memory"), "boot_pad_kib",
                            json_integer((json_int_t)l->boot_pad_kib));
    if (l->assumed)
        json_object_set_new(doc, "assumed", json_true());
    if (l->seed_drive != VO_QEMU_SEED_AS_SPEC)
        json_object_set_new(doc, "seed_drive",
                            json_string(l->seed_drive == VO_QEMU_SEED_EMPTY ? "empty" : "none"));
    return doc;
}

static int parse_vcpus(VoQemuLayout *l, json_t *list, char **ret_error)
{
    size_t i;
    json_t *v;
    l->vcpu_devices = vo_malloc0(sizeof(unsigned) * (json_array_size(list) + 1));
    json_array_foreach(list, i, v) {
        json_int_t k = json_integer_value(v);
        if (!json_is_integer(v) || k < 1 || k >= (json_int_t)l->max_vcpus ||
            (i > 0 && (unsigned)k <= l->vcpu_devices[i - 1]))
            return vo_error_set(ret_error, -EINVAL,
                                "layout: vcpus.devices[%zu] must be a vCPU index from 1 to %u, "
                                "ascending", i, l->max_vcpus - 1);
        l->vcpu_devices[l->n_vcpu_devices++] = (unsigned)k;
    }
    return 0;
}

static int parse_devices(VoQemuLayout *l, json_t *list, char **ret_error)
{
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) {
        const char *id = NULL, *bus = NULL, *addr = NULL;
        json_error_t jerr;
        if (json_unpack_ex(d, &jerr, JSON_STRICT, "{s:s, s:s, s:s}", "id", &id, "bus", &bus,
                           "addr", &addr) < 0)
            return vo_error_set(ret_error, -EINVAL, "layout: devices[%zu]: %s", i, jerr.text);
        if (vo_qemu_layout_device(l, id))
            return vo_error_set(ret_error, -EINVAL, "layout: device %s is listed twice", id);
        vo_qemu_layout_set_device(l, id, bus, addr);
    }
    return 0;
}

int vo_qemu_layout_from_json(json_t *doc, VoQemuLayout **ret, char **ret_error)
{
    int version = 0, hotplug = 0, boot_vcpus = 0, max_vcpus = 0, assumed = 0;
    const char *machine = NULL, *cpu = NULL, *accel = NULL, *seed = NULL;
    json_int_t boot_mib = 0, max_mib = 0, requested = 0, pad_kib = 0;
    json_t *vcpus = NULL, *ports = NULL, *devices = NULL;
    json_error_t jerr;
    if (json_unpack_ex(doc, &jerr, JSON_STRICT,
                       "{s:i, s:s, s?s, s:s, s:{s:b, s:i, s:i, s:o}, s:{s:I, s:I, s:I, s?I}, s:o, "
                       "s:o, s?b, s?s}",
                       "version", &version, "machine", &machine, "cpu", &cpu, "accel", &accel,
                       "vcpus", "hotplug", &hotplug, "boot", &boot_vcpus, "max", &max_vcpus,
                       "devices", &vcpus, "memory", "boot_mib", &boot_mib, "max_mib", &max_mib,
                       "virtio_mem_requested", &requested, "boot_pad_kib", &pad_kib, "root_ports",
                       &ports, "devices", &devices, "assumed", &assumed, "seed_drive",
                       &seed) < 0)
        return vo_error_set(ret_error, -EINVAL, "layout: %s", jerr.text);
    if (version != VO_QEMU_LAYOUT_VERSION)
        return vo_error_set(ret_error, -EINVAL, "layout: version %d is not %d (a newer vireo?)",
                            version, VO_QEMU_LAYOUT_VERSION);
    _cleanup_layout_ VoQemuLayout *l = vo_malloc0(sizeof(*l));
    if (vo_accel_from_string(accel, &l->accel) < 0 || l->accel == VO_ACCEL_AUTO)
        return vo_error_set(ret_error, -EINVAL, "layout: accel must be kvm or tcg, not '%s'", accel);
    if (!*machine || boot_vcpus < 1 || max_vcpus < boot_vcpus || boot_mib < VO_VM_MIN_MEMORY_MIB ||
        max_mib < boot_mib || requested < 0 || (uint64_t)requested > (uint64_t)(max_mib - boot_mib) << 20 ||
        pad_kib < 0 || pad_kib >= 1024 || pad_kib % 8 || (pad_kib && pad_kib % 256 == 0))
        return vo_error_set(ret_error, -EINVAL, "layout: machine, vCPU or memory sizes out of range");
    if (!json_is_array(vcpus) || !json_is_array(ports) || !json_is_array(devices))
        return vo_error_set(ret_error, -EINVAL,
                            "layout: vcpus.devices, root_ports and devices must be arrays");
    l->machine = vo_strdup(machine);
    l->cpu = cpu ? vo_strdup(cpu) : NULL;
    l->vcpu_hotplug = hotplug;
    l->vcpus = (unsigned)boot_vcpus;
    l->max_vcpus = (unsigned)max_vcpus;
    l->boot_memory_mib = (uint64_t)boot_mib;
    l->max_memory_mib = (uint64_t)max_mib;
    l->virtio_mem_requested = (uint64_t)requested;
    l->boot_pad_kib = (uint64_t)pad_kib;
    l->assumed = assumed;
    if (seed && strcmp(seed, "empty") && strcmp(seed, "none"))
        return vo_error_set(ret_error, -EINVAL, "layout: seed_drive must be empty or none, not "
                            "'%.32s'", seed);
    l->seed_drive = !seed ? VO_QEMU_SEED_AS_SPEC
                    : !strcmp(seed, "empty") ? VO_QEMU_SEED_EMPTY : VO_QEMU_SEED_NONE;
    size_t i;
    json_t *port;
    json_array_foreach(ports, i, port)
        if (!json_is_object(port) ||
            strcmp(json_string_value(json_object_get(port, "driver")) ?: "", "pcie-root-port") ||
            !json_is_string(json_object_get(port, "id")))
            return vo_error_set(ret_error, -EINVAL,
                                "layout: root_ports[%zu] is not a pcie-root-port with an id", i);
    l->root_ports = json_incref(ports);
    int r = parse_vcpus(l, vcpus, ret_error);
    if (r >= 0)
        r = parse_devices(l, devices, ret_error);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(l);
    return 0;
}

char *vo_qemu_layout_to_text(const VoQemuLayout *l)
{
    json_t *doc = vo_qemu_layout_to_json(l);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!text)
        abort();
    return text;
}

int vo_qemu_layout_from_text(const char *text, VoQemuLayout **ret, char **ret_error)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return vo_error_set(ret_error, -EINVAL, "layout: not JSON: %s", jerr.text);
    int r = vo_qemu_layout_from_json(doc, ret, ret_error);
    json_decref(doc);
    return r;
}

int vo_qemu_layout_save(const VoQemuLayout *l, const char *run_dir)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", run_dir, VO_QEMU_LAYOUT_FILE);
    _cleanup_free_ char *text = vo_qemu_layout_to_text(l);
    /* Not fsynced: it describes a running QEMU, which a vireod restart
     * finds by the rename alone and a power cut ends; a migration's
     * prepare writes it. */
    return vo_write_run_file_atomic(path, text, strlen(text));
}

int vo_qemu_layout_load(const char *run_dir, VoQemuLayout **ret, char **ret_error)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", run_dir, VO_QEMU_LAYOUT_FILE);
    _cleanup_free_ char *text = NULL;
    int r = vo_read_file(path, 1 << 20, &text, NULL);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read %s: %s", path, strerror(-r));
    return vo_qemu_layout_from_text(text, ret, ret_error);
}

/* Whether the layout has device id (or nothing, before it was probed). */
static bool has_device(const VoQemuLayout *l, const char *id)
{
    return l->n_devices == 0 || vo_qemu_layout_device(l, id);
}

int vo_qemu_layout_check_spec(const VoQemuLayout *l, const VoVmSpec *spec, char **ret_error)
{
    bool disk_in_spec[VO_VM_MAX_SLOTS] = { 0 }, nic_in_spec[VO_VM_MAX_SLOTS] = { 0 };
    for (size_t i = 0; i < spec->n_disks; i++) {
        VoQemuDiskNames names;
        vo_qemu_disk_names(spec->disks[i].slot, &names);
        if (!has_device(l, names.device))
            return vo_error_set(ret_error, -EINVAL, "disk slot %u is not in the VM's layout "
                                "(the spec and the running VM differ)", spec->disks[i].slot);
        disk_in_spec[spec->disks[i].slot % VO_VM_MAX_SLOTS] = true;
    }
    for (size_t i = 0; i < spec->n_nics; i++) {
        VoQemuNicNames names;
        vo_qemu_nic_names(spec->nics[i].slot, &names);
        if (!has_device(l, names.device))
            return vo_error_set(ret_error, -EINVAL, "NIC slot %u is not in the VM's layout "
                                "(the spec and the running VM differ)", spec->nics[i].slot);
        nic_in_spec[spec->nics[i].slot % VO_VM_MAX_SLOTS] = true;
    }
    for (size_t i = 0; i < l->n_devices; i++) {
        unsigned slot;
        char tail;
        if (sscanf(l->devices[i].id, "virtio-disk%u%c", &slot, &tail) == 1 &&
            (slot >= VO_VM_MAX_SLOTS || !disk_in_spec[slot]))
            return vo_error_set(ret_error, -EINVAL, "the VM's layout has disk slot %u, which "
                                "the spec lacks (the spec and the running VM differ)", slot);
        if (sscanf(l->devices[i].id, "net%u%c", &slot, &tail) == 1 &&
            (slot >= VO_VM_MAX_SLOTS || !nic_in_spec[slot]))
            return vo_error_set(ret_error, -EINVAL, "the VM's layout has NIC slot %u, which "
                                "the spec lacks (the spec and the running VM differ)", slot);
    }
    return 0;
}
