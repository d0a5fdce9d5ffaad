/* vm-spec.c: VM definitions: JSON <-> VoVmSpec and validation (see vm-spec.h). */
#include "conf/vm-spec.h"

#include <string.h>
#include <sys/random.h>

#include "conf/names.h"
#include "storage/iscsi-url.h"
#include "util/util.h"

static const char *const accel_names[] = { "auto", "kvm", "tcg" };
_Static_assert(ELEMENTSOF(accel_names) == _VO_ACCEL_MAX, "accel_names");
static const char *const disk_format_names[] = { "qcow2", "raw" };
_Static_assert(ELEMENTSOF(disk_format_names) == _VO_DISK_FORMAT_MAX, "disk_format_names");

static const char *const boot_names[] = { "disk", "cdrom", "network" };
_Static_assert(ELEMENTSOF(boot_names) == _VO_BOOT_MAX, "boot_names");

const char *vo_boot_dev_to_string(VoBootDev b)
{
    return b < _VO_BOOT_MAX ? boot_names[b] : NULL;
}

int vo_boot_dev_from_string(const char *s, VoBootDev *ret)
{
    for (size_t i = 0; s && i < ELEMENTSOF(boot_names); i++)
        if (!strcmp(s, boot_names[i])) {
            *ret = (VoBootDev)i;
            return 0;
        }
    return -EINVAL;
}

const char *vo_accel_to_string(VoAccel a)
{
    return a < _VO_ACCEL_MAX ? accel_names[a] : NULL;
}

int vo_accel_from_string(const char *s, VoAccel *ret)
{
    for (size_t i = 0; s && i < ELEMENTSOF(accel_names); i++)
        if (!strcmp(s, accel_names[i])) {
            *ret = (VoAccel)i;
            return 0;
        }
    return -EINVAL;
}

const char *vo_disk_format_to_string(VoDiskFormat f)
{
    return f < _VO_DISK_FORMAT_MAX ? disk_format_names[f] : NULL;
}

static int disk_format_from_string(const char *s, VoDiskFormat *ret)
{
    for (size_t i = 0; s && i < ELEMENTSOF(disk_format_names); i++)
        if (!strcmp(s, disk_format_names[i])) {
            *ret = (VoDiskFormat)i;
            return 0;
        }
    return -EINVAL;
}

static const char *const display_names[] = { "none", "vga", "virtio" };
_Static_assert(ELEMENTSOF(display_names) == _VO_DISPLAY_MAX, "display_names");

const char *vo_display_to_string(VoDisplay d)
{
    return d < _VO_DISPLAY_MAX ? display_names[d] : NULL;
}

int vo_display_from_string(const char *s, VoDisplay *ret)
{
    for (size_t i = 0; s && i < ELEMENTSOF(display_names); i++)
        if (!strcmp(s, display_names[i])) {
            *ret = (VoDisplay)i;
            return 0;
        }
    return -EINVAL;
}

static const char *const firmware_names[] = { "bios", "uefi" };
_Static_assert(ELEMENTSOF(firmware_names) == _VO_FIRMWARE_MAX, "firmware_names");

const char *vo_firmware_to_string(VoFirmware f)
{
    return f < _VO_FIRMWARE_MAX ? firmware_names[f] : NULL;
}

int vo_firmware_from_string(const char *s, VoFirmware *ret)
{
    for (size_t i = 0; s && i < ELEMENTSOF(firmware_names); i++)
        if (!strcmp(s, firmware_names[i])) {
            *ret = (VoFirmware)i;
            return 0;
        }
    return -EINVAL;
}

VoVmSpec *vo_vm_spec_free(VoVmSpec *s)
{
    if (!s)
        return NULL;
    free(s->id);
    free(s->name);
    free(s->image);
    free(s->machine);
    free(s->kernel_from.image);
    free(s->kernel_from.volume);
    free(s->initrd_from.image);
    free(s->initrd_from.volume);
    free(s->kernel);
    free(s->initrd);
    free(s->cmdline);
    free(s->group);
    free(s->project);
    free(s->cdrom);
    free(s->cdrom_path);
    free(s->nvram);
    free(s->nvram_path);
    free(s->cloud_init_path);
    vo_cloud_init_free(s->cloud_init);
    free(s->ha_group);
    for (size_t i = 0; i < s->n_disks; i++) {
        free(s->disks[i].path);
        free(s->disks[i].volume);
    }
    free(s->disks);
    for (size_t i = 0; i < s->n_nics; i++) {
        free(s->nics[i].mac);
        free(s->nics[i].network);
    }
    free(s->nics);
    free(s);
    return NULL;
}

typedef struct {
    const char *key;
    json_type type;
} KeyType;

static const char *type_name(json_type t)
{
    switch (t) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_REAL: return "a number";
    default: return "a value";
    }
}

/* Refuses unknown keys and wrongly typed values, naming the key, so the
 * messages say what to fix (jansson's own unpack errors do not name it). */
static int check_keys(json_t *obj, const KeyType *table, size_t n, const char *where,
                      char **ret_error)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        size_t i = 0;
        while (i < n && strcmp(table[i].key, key))
            i++;
        if (i == n)
            return vo_error_set(ret_error, -EINVAL, "%s%s: unknown key", where, key);
        json_type want = table[i].type, got = json_typeof(value);
        if (want == JSON_TRUE ? !json_is_boolean(value)
                              : want == JSON_REAL ? !json_is_number(value) : got != want)
            return vo_error_set(ret_error, -EINVAL, "%s%s: expected %s", where, key, type_name(want));
    }
    return 0;
}

static const KeyType spec_keys[] = {
    { "id", JSON_STRING },        { "name", JSON_STRING },    { "image", JSON_STRING },
    { "vcpus", JSON_INTEGER },    { "memory_mib", JSON_INTEGER }, { "accel", JSON_STRING },
    { "max_vcpus", JSON_INTEGER }, { "max_memory_mib", JSON_INTEGER },
    { "machine", JSON_STRING },   { "kernel", JSON_OBJECT },  { "initrd", JSON_OBJECT },
    { "cmdline", JSON_STRING },   { "disks", JSON_ARRAY },    { "nics", JSON_ARRAY },
    { "autostart", JSON_TRUE },   { "group", JSON_STRING },
    { "ha", JSON_TRUE },          { "ha_priority", JSON_INTEGER }, { "ha_group", JSON_STRING },
    { "cdrom", JSON_OBJECT },     { "boot", JSON_ARRAY },
    { "firmware", JSON_STRING },  { "secure_boot", JSON_TRUE }, { "nvram", JSON_STRING },
    { "display", JSON_STRING },
    { "cloud_init", JSON_OBJECT }, { "project", JSON_STRING },
    { "cpu_weight", JSON_INTEGER }, { "cpu_limit", JSON_REAL },
};
static const KeyType cdrom_keys[] = { { "volume", JSON_STRING } };
static const KeyType disk_keys[] = {
    { "format", JSON_STRING }, { "readonly", JSON_TRUE },
    { "volume", JSON_STRING }, { "shareable", JSON_TRUE }, { "owned", JSON_TRUE },
    { "slot", JSON_INTEGER },
};
static const KeyType boot_keys[] = { { "image", JSON_STRING }, { "volume", JSON_STRING } };
static const KeyType nic_keys[] = { { "mac", JSON_STRING }, { "network", JSON_STRING },
                                    { "slot", JSON_INTEGER } };

static int parse_disks(json_t *arr, VoVmSpec *s, char **ret_error)
{
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return vo_error_set(ret_error, -EINVAL, "disks: expected an array");
    if (json_array_size(arr) > VO_VM_MAX_DISKS)
        return vo_error_set(ret_error, -EINVAL, "disks: at most %d disks", VO_VM_MAX_DISKS);
    s->disks = vo_malloc0(sizeof(VoDiskSpec) * (json_array_size(arr) + 1));
    size_t i;
    json_t *d;
    json_array_foreach(arr, i, d) {
        const char *format = "qcow2", *volume = NULL;
        int readonly = 0, shareable = 0, owned = 0;
        json_int_t slot = (json_int_t)i;
        json_error_t jerr;
        _cleanup_free_ char *where = vo_asprintf("disks[%zu].", i);
        if (!json_is_object(d))
            return vo_error_set(ret_error, -EINVAL, "disks[%zu]: expected an object", i);
        if (json_object_get(d, "path"))
            return vo_error_set(ret_error, -EINVAL, "disks[%zu].path: a VM spec names volumes, "
                                "not host paths: give \"volume\": \"POOL/NAME\" (a file "
                                "becomes a volume by importing it into a pool)", i);
        int r = check_keys(d, disk_keys, ELEMENTSOF(disk_keys), where, ret_error);
        if (r < 0)
            return r;
        if (json_unpack_ex(d, &jerr, JSON_STRICT, "{s:s, s?s, s?b, s?b, s?b, s?I}", "volume",
                           &volume, "format", &format, "readonly", &readonly,
                           "shareable", &shareable, "owned", &owned, "slot", &slot) < 0)
            return vo_error_set(ret_error, -EINVAL, "disks[%zu]: %s", i, jerr.text);
        VoDiskSpec *disk = &s->disks[s->n_disks++];
        disk->readonly = readonly;
        disk->volume = vo_strdup(volume);
        disk->shareable = shareable;
        disk->owned = owned;
        disk->slot = slot >= 0 && slot < VO_VM_MAX_SLOTS ? (unsigned)slot : VO_VM_MAX_SLOTS;
        if (disk_format_from_string(format, &disk->format) < 0)
            return vo_error_set(ret_error, -EINVAL, "disks[%zu].format: '%s' is not qcow2 or raw", i, format);
    }
    return 0;
}

static int parse_nics(json_t *arr, VoVmSpec *s, char **ret_error)
{
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return vo_error_set(ret_error, -EINVAL, "nics: expected an array");
    if (json_array_size(arr) > VO_VM_MAX_NICS)
        return vo_error_set(ret_error, -EINVAL, "nics: at most %d NICs", VO_VM_MAX_NICS);
    s->nics = vo_malloc0(sizeof(VoNicSpec) * (json_array_size(arr) + 1));
    size_t i;
    json_t *n;
    json_array_foreach(arr, i, n) {
        const char *mac = NULL, *network = "user";
        json_int_t slot = (json_int_t)i;
        json_error_t jerr;
        _cleanup_free_ char *where = vo_asprintf("nics[%zu].", i);
        if (!json_is_object(n))
            return vo_error_set(ret_error, -EINVAL, "nics[%zu]: expected an object", i);
        int r = check_keys(n, nic_keys, ELEMENTSOF(nic_keys), where, ret_error);
        if (r < 0)
            return r;
        if (json_unpack_ex(n, &jerr, JSON_STRICT, "{s:s, s?s, s?I}", "mac", &mac, "network",
                           &network, "slot", &slot) < 0)
            return vo_error_set(ret_error, -EINVAL, "nics[%zu]: %s", i, jerr.text);
        VoNicSpec *nic = &s->nics[s->n_nics++];
        nic->mac = vo_strdup(mac);
        nic->network = vo_strdup(network);
        nic->slot = slot >= 0 && slot < VO_VM_MAX_SLOTS ? (unsigned)slot : VO_VM_MAX_SLOTS;
    }
    return 0;
}

static int parse_boot_file(json_t *doc, const char *key, VoBootFile *ret, char **ret_error)
{
    json_t *o = json_object_get(doc, key);
    if (!o)
        return 0;
    if (json_is_string(o))
        return vo_error_set(ret_error, -EINVAL, "%s: a VM spec names images and volumes, not "
                            "host paths: give {\"image\": NAME} (the image's %s) or "
                            "{\"volume\": \"POOL/NAME\"}", key, key);
    _cleanup_free_ char *where = vo_asprintf("%s.", key);
    int r = check_keys(o, boot_keys, ELEMENTSOF(boot_keys), where, ret_error);
    if (r < 0)
        return r;
    const char *image = json_string_value(json_object_get(o, "image"));
    const char *volume = json_string_value(json_object_get(o, "volume"));
    if (!image == !volume)
        return vo_error_set(ret_error, -EINVAL, "%s: give exactly one of image or volume", key);
    ret->image = vo_strdup(image);
    ret->volume = vo_strdup(volume);
    return 0;
}

/* "cdrom": {} (an empty drive) or {"volume": "POOL/NAME"}. */
static int parse_cdrom(json_t *doc, VoVmSpec *s, char **ret_error)
{
    json_t *o = json_object_get(doc, "cdrom");
    if (!o)
        return 0;
    int r = check_keys(o, cdrom_keys, ELEMENTSOF(cdrom_keys), "cdrom.", ret_error);
    if (r < 0)
        return r;
    s->has_cdrom = true;
    s->cdrom = vo_strdup(json_string_value(json_object_get(o, "volume")));
    return 0;
}

/* "boot": ["cdrom", "disk", "network"], each at most once. */
static int parse_boot(json_t *doc, VoVmSpec *s, char **ret_error)
{
    json_t *arr = json_object_get(doc, "boot");
    if (!arr)
        return 0;
    if (json_array_size(arr) == 0)
        return vo_error_set(ret_error, -EINVAL, "boot: give at least one of disk, cdrom, network");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        VoBootDev dev;
        if (vo_boot_dev_from_string(json_string_value(v), &dev) < 0)
            return vo_error_set(ret_error, -EINVAL, "boot[%zu]: expected one of disk, cdrom, "
                                "network", i);
        for (size_t j = 0; j < s->n_boot; j++)
            if (s->boot[j] == dev)
                return vo_error_set(ret_error, -EINVAL, "boot: %s is listed twice",
                                    vo_boot_dev_to_string(dev));
        s->boot[s->n_boot++] = dev;
    }
    return 0;
}

int vo_vm_spec_from_json(json_t *doc, VoVmSpec **ret, char **ret_error)
{
    const char *id = NULL, *name = NULL, *image = NULL, *accel = "auto", *machine = "q35";
    const char *cmdline = NULL;
    json_t *kernel = NULL, *initrd = NULL;
    json_int_t vcpus = 1, memory = 512, max_vcpus = -1, max_memory = -1;
    json_t *disks = NULL, *nics = NULL;
    int autostart = 0;
    json_error_t jerr;

    if (!json_is_object(doc))
        return vo_error_set(ret_error, -EINVAL, "VM spec must be a JSON object");
    _cleanup_vm_spec_ VoVmSpec *s = vo_malloc0(sizeof(*s));
    int r = parse_boot_file(doc, "kernel", &s->kernel_from, ret_error);
    if (r >= 0)
        r = parse_boot_file(doc, "initrd", &s->initrd_from, ret_error);
    if (r >= 0)
        r = check_keys(doc, spec_keys, ELEMENTSOF(spec_keys), "", ret_error);
    if (r >= 0)
        r = parse_cdrom(doc, s, ret_error);
    if (r >= 0)
        r = parse_boot(doc, s, ret_error);
    if (r < 0)
        return r;
    json_t *cdrom_o = NULL, *boot_o = NULL, *cloud_init = NULL;
    const char *group = NULL, *ha_group = NULL, *firmware = NULL, *nvram = NULL, *display = NULL;
    const char *project = NULL;
    int ha = 0, secure_boot = 0;
    json_int_t ha_priority = 0, cpu_weight = 0;
    double cpu_limit = 0;
    if (json_unpack_ex(doc, &jerr, JSON_STRICT,
                       "{s:s, s:s, s?s, s?I, s?I, s?I, s?I, s?s, s?s, s?o, s?o, s?s, s?o, s?o, s?b,"
                       " s?s, s?o, s?o, s?b, s?I, s?s, s?s, s?b, s?s, s?s, s?o, s?s, s?I, s?F}",
                       "id", &id, "name", &name, "image", &image, "vcpus", &vcpus, "memory_mib",
                       &memory, "max_vcpus", &max_vcpus, "max_memory_mib", &max_memory,
                       "accel", &accel, "machine", &machine, "kernel", &kernel,
                       "initrd", &initrd, "cmdline", &cmdline, "disks", &disks, "nics", &nics,
                       "autostart", &autostart, "group", &group, "cdrom", &cdrom_o, "boot",
                       &boot_o, "ha", &ha, "ha_priority", &ha_priority, "ha_group",
                       &ha_group, "firmware", &firmware, "secure_boot", &secure_boot, "nvram",
                       &nvram, "display", &display, "cloud_init", &cloud_init,
                       "project", &project, "cpu_weight", &cpu_weight, "cpu_limit", &cpu_limit) < 0)
        return vo_error_set(ret_error, -EINVAL, "%s", jerr.text);
    if (cpu_weight != 0 && (cpu_weight < VO_VM_CPU_WEIGHT_MIN || cpu_weight > VO_VM_CPU_WEIGHT_MAX))
        return vo_error_set(ret_error, -EINVAL, "cpu_weight: %lld is out of range (%d..%d)",
                            (long long)cpu_weight, VO_VM_CPU_WEIGHT_MIN, VO_VM_CPU_WEIGHT_MAX);
    if (cpu_limit != 0 && !(cpu_limit >= VO_VM_CPU_LIMIT_MIN && cpu_limit <= 4096))
        return vo_error_set(ret_error, -EINVAL, "cpu_limit: %g is out of range (%.2f..4096 "
                            "cores, or 0 for none)", cpu_limit, VO_VM_CPU_LIMIT_MIN);
    s->cpu_weight = (unsigned)cpu_weight;
    s->cpu_limit = cpu_limit;
    if (cloud_init && vo_cloud_init_from_json(cloud_init, &s->cloud_init, ret_error) < 0)
        return -EINVAL;
    if (ha_priority < VO_VM_HA_PRIORITY_MIN || ha_priority > VO_VM_HA_PRIORITY_MAX)
        return vo_error_set(ret_error, -EINVAL, "ha_priority: %lld is out of range (%d..%d)",
                            (long long)ha_priority, VO_VM_HA_PRIORITY_MIN,
                            VO_VM_HA_PRIORITY_MAX);
    if (ha_group && !vo_name_valid(ha_group))
        return vo_error_set(ret_error, -EINVAL, "ha_group: '%s' is not a valid group name",
                            ha_group);
    if (firmware && vo_firmware_from_string(firmware, &s->firmware) < 0)
        return vo_error_set(ret_error, -EINVAL, "firmware: '%s' is not one of bios, uefi",
                            firmware);
    if (display && vo_display_from_string(display, &s->display) < 0)
        return vo_error_set(ret_error, -EINVAL, "display: '%s' is not one of vga, virtio, none",
                            display);
    s->secure_boot = secure_boot;
    s->nvram = vo_strdup(nvram);
    s->ha = ha;
    s->ha_priority = (int)ha_priority;
    s->ha_group = vo_strdup(ha_group);
    /* The placement group: set at create, never changed. */
    if (group && !vo_name_valid(group))
        return vo_error_set(ret_error, -EINVAL, "group: '%s' is not a valid group name", group);
    s->group = vo_strdup(group);
    if (project && !vo_name_valid(project))
        return vo_error_set(ret_error, -EINVAL, "project: '%s' is not a valid project name",
                            project);
    /* "default" is stored as no project: the documents of VMs made before
     * projects and of VMs in "default" are the same. */
    s->project = project && strcmp(project, "default") ? vo_strdup(project) : NULL;

    s->id = vo_strdup(id);
    s->name = vo_strdup(name);
    s->image = vo_strdup(image);
    if (vcpus < 0 || vcpus > 4096)
        return vo_error_set(ret_error, -EINVAL, "vcpus: %lld is out of range", (long long)vcpus);
    s->vcpus = (unsigned)vcpus;
    if (memory < 0)
        return vo_error_set(ret_error, -EINVAL, "memory_mib: must not be negative");
    s->memory_mib = (uint64_t)memory;
    /* Absent: no hot-plug (the maximum is what the VM has). */
    if (max_vcpus == -1)
        max_vcpus = vcpus;
    if (max_vcpus < 0 || max_vcpus > 4096)
        return vo_error_set(ret_error, -EINVAL, "max_vcpus: %lld is out of range", (long long)max_vcpus);
    s->max_vcpus = (unsigned)max_vcpus;
    if (max_memory == -1)
        max_memory = memory;
    if (max_memory < 0)
        return vo_error_set(ret_error, -EINVAL, "max_memory_mib: must not be negative");
    s->max_memory_mib = (uint64_t)max_memory;
    if (vo_accel_from_string(accel, &s->accel) < 0)
        return vo_error_set(ret_error, -EINVAL, "accel: '%s' is not one of auto, kvm, tcg", accel);
    s->machine = vo_strdup(machine);
    s->cmdline = vo_strdup(cmdline);
    s->autostart = autostart;
    r = parse_disks(disks, s, ret_error);
    if (r < 0)
        return r;
    r = parse_nics(nics, s, ret_error);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(s);
    return 0;
}

static void set_opt_string(json_t *o, const char *key, const char *value)
{
    if (value)
        json_object_set_new(o, key, json_string(value));
}

static void set_boot_file(json_t *o, const char *key, const VoBootFile *f)
{
    if (f->image)
        json_object_set_new(o, key, json_pack("{s:s}", "image", f->image));
    else if (f->volume)
        json_object_set_new(o, key, json_pack("{s:s}", "volume", f->volume));
}

json_t *vo_vm_spec_to_json(const VoVmSpec *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "name", json_string(s->name));
    set_opt_string(o, "image", s->image);
    json_object_set_new(o, "vcpus", json_integer(s->vcpus));
    json_object_set_new(o, "memory_mib", json_integer((json_int_t)s->memory_mib));
    json_object_set_new(o, "max_vcpus", json_integer(s->max_vcpus));
    json_object_set_new(o, "max_memory_mib", json_integer((json_int_t)s->max_memory_mib));
    json_object_set_new(o, "accel", json_string(vo_accel_to_string(s->accel)));
    set_opt_string(o, "machine", s->machine);
    set_boot_file(o, "kernel", &s->kernel_from);
    set_boot_file(o, "initrd", &s->initrd_from);
    set_opt_string(o, "cmdline", s->cmdline);
    set_opt_string(o, "group", s->group);
    set_opt_string(o, "project", s->project);
    if (s->has_cdrom) {
        json_t *cd = json_object();
        set_opt_string(cd, "volume", s->cdrom);
        json_object_set_new(o, "cdrom", cd);
    }
    if (s->n_boot) {
        json_t *boot = json_array();
        for (size_t i = 0; i < s->n_boot; i++)
            json_array_append_new(boot, json_string(vo_boot_dev_to_string(s->boot[i])));
        json_object_set_new(o, "boot", boot);
    }
    if (s->firmware != VO_FIRMWARE_BIOS)
        json_object_set_new(o, "firmware", json_string(vo_firmware_to_string(s->firmware)));
    if (s->secure_boot)
        json_object_set_new(o, "secure_boot", json_true());
    set_opt_string(o, "nvram", s->nvram);
    if (s->display != VO_DISPLAY_NONE)
        json_object_set_new(o, "display", json_string(vo_display_to_string(s->display)));
    if (s->cloud_init)
        json_object_set_new(o, "cloud_init", vo_cloud_init_to_json(s->cloud_init));
    if (s->ha)
        json_object_set_new(o, "ha", json_true());
    if (s->ha_priority)
        json_object_set_new(o, "ha_priority", json_integer(s->ha_priority));
    set_opt_string(o, "ha_group", s->ha_group);
    if (s->cpu_weight)
        json_object_set_new(o, "cpu_weight", json_integer(s->cpu_weight));
    if (s->cpu_limit > 0)
        json_object_set_new(o, "cpu_limit", json_real(s->cpu_limit));
    json_t *disks = json_array();
    for (size_t i = 0; i < s->n_disks; i++) {
        json_t *disk = json_pack("{s:s, s:b}", "format",
                                 vo_disk_format_to_string(s->disks[i].format), "readonly",
                                 s->disks[i].readonly);
        if (s->disks[i].volume)
            json_object_set_new(disk, "volume", json_string(s->disks[i].volume));
        if (s->disks[i].shareable)
            json_object_set_new(disk, "shareable", json_true());
        if (s->disks[i].owned)
            json_object_set_new(disk, "owned", json_true());
        json_object_set_new(disk, "slot", json_integer(s->disks[i].slot));
        json_array_append_new(disks, disk);
    }
    json_object_set_new(o, "disks", disks);
    json_t *nics = json_array();
    for (size_t i = 0; i < s->n_nics; i++)
        json_array_append_new(nics, json_pack("{s:s, s:s, s:i}", "mac", s->nics[i].mac, "network",
                                              s->nics[i].network, "slot", (int)s->nics[i].slot));
    json_object_set_new(o, "nics", nics);
    json_object_set_new(o, "autostart", json_boolean(s->autostart));
    return o;
}

VoVmSpec *vo_vm_spec_copy(const VoVmSpec *s)
{
    json_t *j = vo_vm_spec_to_json(s);
    VoVmSpec *copy = NULL;
    if (vo_vm_spec_from_json(j, &copy, NULL) < 0)
        abort(); /* a spec we serialised ourselves always parses */
    json_decref(j);
    for (size_t i = 0; i < s->n_disks; i++)
        copy->disks[i].path = vo_strdup(s->disks[i].path);
    copy->kernel = vo_strdup(s->kernel);
    copy->initrd = vo_strdup(s->initrd);
    copy->cdrom_path = vo_strdup(s->cdrom_path);
    copy->nvram_path = vo_strdup(s->nvram_path);
    copy->cloud_init_path = vo_strdup(s->cloud_init_path);
    return copy;
}

/* "POOL/NAME", both valid names. */
static bool volume_key_valid(const char *key)
{
    const char *slash = strchr(key, '/');
    if (!slash || slash - key > 63)
        return false;
    char pool[64];
    memcpy(pool, key, (size_t)(slash - key));
    pool[slash - key] = 0;
    return vo_name_valid(pool) && vo_name_valid(slash + 1);
}

int vo_vm_spec_validate(const VoVmSpec *s, const VoHostLimits *limits, char **ret_error)
{
    if (!vo_uuid_valid(s->id))
        return vo_error_set(ret_error, -EINVAL, "id: '%s' is not a UUID", s->id);
    if (!vo_name_valid(s->name))
        return vo_error_set(ret_error, -EINVAL,
                    "name: '%s' is invalid: use 1-63 characters of a-z, 0-9 and '-', not "
                    "starting with '-'",
                    s->name);
    if (s->vcpus < 1 || s->vcpus > limits->max_vcpus)
        return vo_error_set(ret_error, -EINVAL, "vcpus: %u is out of range (1..%u on this host)", s->vcpus,
                    limits->max_vcpus);
    if (s->memory_mib < VO_VM_MIN_MEMORY_MIB || s->memory_mib > limits->max_memory_mib)
        return vo_error_set(ret_error, -EINVAL, "memory: %llu MiB is out of range (%d MiB..%llu MiB on this host)",
                    (unsigned long long)s->memory_mib, VO_VM_MIN_MEMORY_MIB,
                    (unsigned long long)limits->max_memory_mib);
    if (s->max_vcpus < s->vcpus || s->max_vcpus > limits->max_vcpus)
        return vo_error_set(ret_error, -EINVAL, "max_vcpus: %u is out of range (vcpus %u..%u on this host)",
                    s->max_vcpus, s->vcpus, limits->max_vcpus);
    if (s->max_memory_mib < s->memory_mib || s->max_memory_mib > limits->max_memory_mib)
        return vo_error_set(ret_error, -EINVAL,
                    "max_memory: %llu MiB is out of range (memory %llu MiB..%llu MiB on this host)",
                    (unsigned long long)s->max_memory_mib, (unsigned long long)s->memory_mib,
                    (unsigned long long)limits->max_memory_mib);
    if (vo_vm_spec_memory_hotplug(s) &&
        (s->memory_mib % VO_VM_MEMORY_BLOCK_MIB || s->max_memory_mib % VO_VM_MEMORY_BLOCK_MIB))
        return vo_error_set(ret_error, -EINVAL,
                    "memory and max_memory: with memory hot-plug both must be multiples of %d MiB "
                    "(got %llu MiB and %llu MiB)",
                    VO_VM_MEMORY_BLOCK_MIB, (unsigned long long)s->memory_mib,
                    (unsigned long long)s->max_memory_mib);
    if (strcmp(s->machine, "q35") && strcmp(s->machine, "pc"))
        return vo_error_set(ret_error, -EINVAL, "machine: '%s' is not q35 or pc", s->machine);
    bool kernel = vo_boot_file_set(&s->kernel_from);
    if ((vo_boot_file_set(&s->initrd_from) || s->cmdline) && !kernel)
        return vo_error_set(ret_error, -EINVAL, "initrd and cmdline need a kernel");
    if (s->n_disks == 0 && !kernel && !s->has_cdrom)
        return vo_error_set(ret_error, -EINVAL, "nothing to boot: give the VM a disk, a kernel "
                            "or a CD-ROM");
    if (s->secure_boot && s->firmware != VO_FIRMWARE_UEFI)
        return vo_error_set(ret_error, -EINVAL, "secure_boot: needs firmware uefi (SeaBIOS has "
                            "no secure boot): give --firmware uefi too");
    if (s->secure_boot && s->machine && strcmp(s->machine, "q35"))
        return vo_error_set(ret_error, -EINVAL, "secure_boot: needs machine q35 (SMM), not '%s'",
                            s->machine);
    if (s->nvram && s->firmware != VO_FIRMWARE_UEFI)
        return vo_error_set(ret_error, -EINVAL, "nvram: only a VM with firmware uefi has one");
    if (s->nvram && !volume_key_valid(s->nvram))
        return vo_error_set(ret_error, -EINVAL, "nvram: '%s' is not POOL/NAME", s->nvram);
    if (s->cdrom && !volume_key_valid(s->cdrom))
        return vo_error_set(ret_error, -EINVAL, "cdrom.volume: '%s' is not POOL/NAME", s->cdrom);
    for (size_t i = 0; i < s->n_boot; i++)
        if (s->boot[i] == VO_BOOT_CDROM && !s->has_cdrom)
            return vo_error_set(ret_error, -EINVAL, "boot: cdrom is listed but the VM has no "
                                "CD-ROM drive (give it one with --cdrom)");
    const VoBootFile *boot[] = { &s->kernel_from, &s->initrd_from };
    for (size_t i = 0; i < ELEMENTSOF(boot); i++) {
        const char *key = i ? "initrd" : "kernel";
        if (boot[i]->image && !vo_name_valid(boot[i]->image))
            return vo_error_set(ret_error, -EINVAL, "%s.image: '%s' is not an image name", key,
                                boot[i]->image);
        if (boot[i]->volume && !volume_key_valid(boot[i]->volume))
            return vo_error_set(ret_error, -EINVAL, "%s.volume: '%s' is not POOL/NAME", key,
                                boot[i]->volume);
    }
    for (size_t i = 0; i < s->n_disks; i++) {
        if (!s->disks[i].volume || !volume_key_valid(s->disks[i].volume))
            return vo_error_set(ret_error, -EINVAL, "disks[%zu].volume: '%s' is not POOL/NAME", i,
                                s->disks[i].volume ? s->disks[i].volume : "");
        if (s->disks[i].slot >= VO_VM_MAX_SLOTS)
            return vo_error_set(ret_error, -EINVAL, "disks[%zu].slot: must be 0..%d", i, VO_VM_MAX_SLOTS - 1);
        for (size_t j = 0; j < i; j++)
            if (s->disks[i].slot == s->disks[j].slot)
                return vo_error_set(ret_error, -EINVAL, "disks[%zu].slot: %u is used twice", i, s->disks[i].slot);
    }
    for (size_t i = 0; i < s->n_nics; i++) {
        if (!vo_mac_valid(s->nics[i].mac))
            return vo_error_set(ret_error, -EINVAL, "nics[%zu].mac: '%s' is not a unicast MAC like 52:54:00:12:34:56",
                        i, s->nics[i].mac);
        if (strcmp(s->nics[i].network, "user") && !vo_name_valid(s->nics[i].network))
            return vo_error_set(ret_error, -EINVAL, "nics[%zu].network: '%s' is not a network name or 'user'", i,
                        s->nics[i].network);
        if (s->nics[i].slot >= VO_VM_MAX_SLOTS)
            return vo_error_set(ret_error, -EINVAL, "nics[%zu].slot: must be 0..%d", i, VO_VM_MAX_SLOTS - 1);
        for (size_t j = 0; j < i; j++) {
            if (!strcasecmp(s->nics[i].mac, s->nics[j].mac))
                return vo_error_set(ret_error, -EINVAL, "nics[%zu].mac: %s is used twice", i, s->nics[i].mac);
            if (s->nics[i].slot == s->nics[j].slot)
                return vo_error_set(ret_error, -EINVAL, "nics[%zu].slot: %u is used twice", i, s->nics[i].slot);
        }
    }
    for (const char *p = s->cmdline; p && *p; p++)
        if (*p == '\n')
            return vo_error_set(ret_error, -EINVAL, "cmdline: must be one line");
    return 0;
}

size_t vo_vm_spec_boot_order(const VoVmSpec *s, VoBootDev ret[_VO_BOOT_MAX])
{
    if (s->n_boot) {
        memcpy(ret, s->boot, sizeof(VoBootDev) * s->n_boot);
        return s->n_boot;
    }
    ret[0] = VO_BOOT_DISK;
    ret[1] = VO_BOOT_CDROM;
    return 2;
}

/* Each class gets a band of bootindex values, in boot-list order. */
#define BOOT_BAND 64

int vo_vm_spec_bootindex(const VoVmSpec *s, VoBootDev dev, size_t index)
{
    if (s->kernel || vo_boot_file_set(&s->kernel_from))
        return -1;
    VoBootDev order[_VO_BOOT_MAX];
    size_t n = vo_vm_spec_boot_order(s, order);
    for (size_t i = 0; i < n; i++)
        if (order[i] == dev)
            return (int)(i * BOOT_BAND + index + 1);
    return -1;
}

unsigned vo_vm_spec_free_disk_slot(const VoVmSpec *s)
{
    for (unsigned slot = 0;; slot++) {
        size_t i = 0;
        while (i < s->n_disks && s->disks[i].slot != slot)
            i++;
        if (i == s->n_disks)
            return slot;
    }
}

unsigned vo_vm_spec_free_nic_slot(const VoVmSpec *s)
{
    for (unsigned slot = 0;; slot++) {
        size_t i = 0;
        while (i < s->n_nics && s->nics[i].slot != slot)
            i++;
        if (i == s->n_nics)
            return slot;
    }
}

int vo_mac_generate(char ret[18])
{
    uint8_t b[3];
    if (getrandom(b, sizeof(b), 0) != sizeof(b))
        return -errno;
    snprintf(ret, 18, "52:54:00:%02x:%02x:%02x", b[0], b[1], b[2]);
    return 0;
}

bool vo_mac_valid(const char *mac)
{
    if (!mac || strlen(mac) != 17)
        return false;
    for (int i = 0; i < 17; i++) {
        if (i % 3 == 2) {
            if (mac[i] != ':')
                return false;
        } else if (!strchr("0123456789abcdefABCDEF", mac[i]))
            return false;
    }
    /* The first octet's low bit marks multicast. */
    unsigned first = (unsigned)strtoul(mac, NULL, 16);
    return (first & 1) == 0;
}

bool vo_mac_is_zero(const char *mac)
{
    return mac && !strcmp(mac, "00:00:00:00:00:00");
}

/* ---- names <-> this host's paths ------------------------------------------- */

/* A path QEMU can be given in an option list: absolute, without ','. */
static bool qemu_path_ok(const char *path)
{
    return path && path[0] == '/' && !strchr(path, ',');
}

/* An iSCSI LUN (storage/iscsi-url.h): its string goes into QEMU's JSON
 * arguments piece by piece, never as a comma-separated option. */
static bool iscsi_path_ok(const char *path)
{
    VoIscsiUrl u;
    if (vo_iscsi_url_parse(path, &u) < 0)
        return false;
    bool ok = u.lun >= 0 && (!u.secret || !strchr(u.secret, ','));
    vo_iscsi_url_clear(&u);
    return ok;
}

static int resolve_boot_file(const VoBootFile *f, bool initrd, const VoSpecResolver *res,
                             char **ret, char **ret_error)
{
    const char *key = initrd ? "initrd" : "kernel";
    _cleanup_free_ char *error = NULL, *path = NULL;
    int r = f->image ? res->image_file(res->userdata, f->image, initrd, &path, &error)
                     : res->volume_path(res->userdata, f->volume, &path, &error);
    if (r < 0)
        return vo_error_set(ret_error, r, "%s (%s '%s'): %s", key, f->image ? "image" : "volume",
                            f->image ? f->image : f->volume, error ? error : strerror(-r));
    if (!qemu_path_ok(path))
        return vo_error_set(ret_error, -EINVAL, "%s: '%s' on this host is not an absolute path "
                            "without ','", key, path);
    *ret = TAKE_PTR(path);
    return 0;
}

int vo_vm_spec_resolve(const VoVmSpec *s, const VoSpecResolver *res, VoVmSpec **ret,
                       char **ret_error)
{
    _cleanup_vm_spec_ VoVmSpec *copy = vo_vm_spec_copy(s);
    vo_vm_spec_unresolve(copy);
    for (size_t i = 0; i < copy->n_disks; i++) {
        VoDiskSpec *disk = &copy->disks[i];
        _cleanup_free_ char *error = NULL;
        if (!disk->volume)
            return vo_error_set(ret_error, -EINVAL, "disk %zu names no volume", i);
        int r = res->volume_path(res->userdata, disk->volume, &disk->path, &error);
        if (r < 0)
            return vo_error_set(ret_error, r, "disk %zu (volume '%s'): %s", i, disk->volume,
                                error ? error : strerror(-r));
        if (!qemu_path_ok(disk->path) && !iscsi_path_ok(disk->path))
            return vo_error_set(ret_error, -EINVAL, "disk %zu (volume '%s'): its file '%s' is "
                                "not an absolute path without ','", i, disk->volume, disk->path);
    }
    int r = 0;
    if (copy->cdrom) {
        _cleanup_free_ char *error = NULL;
        r = res->volume_path(res->userdata, copy->cdrom, &copy->cdrom_path, &error);
        if (r < 0)
            return vo_error_set(ret_error, r, "cdrom (volume '%s'): %s", copy->cdrom,
                                error ? error : strerror(-r));
        if (!qemu_path_ok(copy->cdrom_path))
            return vo_error_set(ret_error, -EINVAL, "cdrom (volume '%s'): its file '%s' is not "
                                "an absolute path without ','", copy->cdrom, copy->cdrom_path);
    }
    if (copy->nvram) {
        _cleanup_free_ char *error = NULL;
        r = res->volume_path(res->userdata, copy->nvram, &copy->nvram_path, &error);
        if (r < 0)
            return vo_error_set(ret_error, r, "nvram (volume '%s'): %s", copy->nvram,
                                error ? error : strerror(-r));
        if (!qemu_path_ok(copy->nvram_path))
            return vo_error_set(ret_error, -EINVAL, "nvram (volume '%s'): its file '%s' is not "
                                "an absolute path without ','", copy->nvram, copy->nvram_path);
    }
    if (vo_boot_file_set(&copy->kernel_from))
        r = resolve_boot_file(&copy->kernel_from, false, res, &copy->kernel, ret_error);
    if (r >= 0 && vo_boot_file_set(&copy->initrd_from))
        r = resolve_boot_file(&copy->initrd_from, true, res, &copy->initrd, ret_error);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(copy);
    return 0;
}

void vo_vm_spec_unresolve(VoVmSpec *s)
{
    for (size_t i = 0; i < s->n_disks; i++)
        free(TAKE_PTR(s->disks[i].path));
    free(TAKE_PTR(s->kernel));
    free(TAKE_PTR(s->initrd));
    free(TAKE_PTR(s->cdrom_path));
    free(TAKE_PTR(s->nvram_path));
    free(TAKE_PTR(s->cloud_init_path));
}

/* The old-format kernel or initrd key of doc, upgraded. */
static void upgrade_boot_file(json_t *doc, const char *key, const VoSpecNamer *namer,
                              bool *ret_changed, char ***ret_problems)
{
    const char *path = json_string_value(json_object_get(doc, key));
    if (!path)
        return;
    *ret_changed = true;
    bool initrd = !strcmp(key, "initrd");
    _cleanup_free_ char *image = namer->image_of(namer->userdata, path, initrd);
    _cleanup_free_ char *volume = image ? NULL : namer->volume_of(namer->userdata, path);
    if (image)
        json_object_set_new(doc, key, json_pack("{s:s}", "image", image));
    else if (volume)
        json_object_set_new(doc, key, json_pack("{s:s}", "volume", volume));
    else {
        vo_strv_pushf(ret_problems, "%s '%s' is neither the %s of an image nor a volume's "
                      "file (make it part of an image with vireo image import and create the "
                      "VM again from that image)", key, path, key);
        json_object_del(doc, key);
        if (!initrd) { /* no kernel: initrd and cmdline go with it */
            json_object_del(doc, "initrd");
            json_object_del(doc, "cmdline");
        }
    }
}

int vo_vm_spec_upgrade_json(json_t *doc, const VoSpecNamer *namer, bool *ret_changed,
                            char ***ret_problems)
{
    *ret_changed = false;
    *ret_problems = NULL;
    if (!json_is_object(doc))
        return -EINVAL;
    upgrade_boot_file(doc, "kernel", namer, ret_changed, ret_problems);
    upgrade_boot_file(doc, "initrd", namer, ret_changed, ret_problems);
    json_t *disks = json_object_get(doc, "disks");
    for (size_t i = 0, orig = 0; json_is_array(disks) && i < json_array_size(disks); orig++) {
        json_t *disk = json_array_get(disks, i);
        /* Slots default to the position, which a disk taken out before would shift. */
        if (json_is_object(disk) && !json_object_get(disk, "slot"))
            json_object_set_new(disk, "slot", json_integer((json_int_t)orig));
        const char *path = json_string_value(json_object_get(disk, "path"));
        if (!path) {
            i++;
            continue;
        }
        *ret_changed = true;
        const char *named = json_string_value(json_object_get(disk, "volume"));
        _cleanup_free_ char *volume = namer->volume_of(namer->userdata, path);
        if (named && (!volume || strcmp(volume, named))) {
            /* The path is what QEMU was given: a volume that is another file
             * (or none) must not silently take its place. */
            if (volume)
                vo_strv_pushf(ret_problems, "disk %zu '%s' is the file of volume '%s', not "
                              "of its volume '%s' (create the VM again with the volume it "
                              "should use)", orig, path, volume, named);
            else
                vo_strv_pushf(ret_problems, "disk %zu '%s' is not the file of its volume '%s' "
                              "(that volume does not exist or is another file; create the VM "
                              "again with the volume it should use)", orig, path, named);
            json_array_remove(disks, i);
            continue;
        }
        if (!volume) {
            vo_strv_pushf(ret_problems, "disk %zu '%s' is no volume's file (import it "
                          "as a volume with vireo volume import and create the VM again "
                          "with it)", orig, path);
            json_array_remove(disks, i);
            continue;
        }
        if (!named)
            json_object_set_new(disk, "volume", json_string(volume));
        json_object_del(disk, "path");
        i++;
    }
    return 0;
}
