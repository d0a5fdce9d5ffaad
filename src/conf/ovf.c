/* ovf.c: an OVF descriptor (DMTF DSP0243, as VMware, VirtualBox and others
 * export it) into an import plan: the VM's name, vCPUs, memory, disks (with
 * their file in the OVA and capacity), NICs, firmware and OS type. Parsed by
 * local element names, so any namespace prefix works. Pure; fuzzed by
 * tests/fuzz/fuzz-vm-import.c. */
#include <errno.h>
#include <libxml/parser.h>
#include <string.h>
#include <strings.h>

#include "conf/import-xml.h"
#include "util/util.h"

/* CIM resource types (RASD ResourceType) vireo maps. */
enum {
    RT_CPU = 3,
    RT_MEMORY = 4,
    RT_IDE = 5,
    RT_SCSI = 6,
    RT_ETHERNET = 10,
    RT_FLOPPY = 14,
    RT_CDROM = 15,
    RT_DVD = 16,
    RT_DISK = 17,
    RT_USB = 23,
    RT_VIDEO = 24,
    RT_SOUND = 35,
    RT_SATA = 20,
};

typedef struct {
    char **ids, **hrefs;          /* References/File */
    char **disk_ids, **disk_files, **disk_formats;
    uint64_t *disk_caps;
    size_t n_disks;
} OvfRefs;

static void refs_clear(OvfRefs *r)
{
    vo_strv_free(r->ids);
    vo_strv_free(r->hrefs);
    vo_strv_free(r->disk_ids);
    vo_strv_free(r->disk_files);
    vo_strv_free(r->disk_formats);
    free(r->disk_caps);
}

static const char *lookup(char **keys, char **values, const char *key)
{
    for (size_t i = 0; keys && keys[i]; i++)
        if (!strcmp(keys[i], key))
            return values[i];
    return NULL;
}

/* "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
 * and the like: what qemu-img is told the file is (NULL: it probes). */
static const char *format_of(const char *uri)
{
    if (!uri)
        return NULL;
    if (strcasestr(uri, "vmdk"))
        return "vmdk";
    if (strcasestr(uri, "qcow"))
        return "qcow2";
    if (strcasestr(uri, "vhdx"))
        return "vhdx";
    if (strcasestr(uri, "vhd"))
        return "vpc";
    if (strcasestr(uri, "vdi"))
        return "vdi";
    if (strcasestr(uri, "raw"))
        return "raw";
    return NULL;
}

static int read_references(xmlNode *env, OvfRefs *refs, char **ret_error)
{
    xmlNode *sec = vo_import_xml_child(env, "References");
    for (xmlNode *f = vo_import_xml_child(sec, "File"); f; f = vo_import_xml_next(f)) {
        _cleanup_free_ char *id = vo_import_xml_attr(f, "id");
        _cleanup_free_ char *href = vo_import_xml_attr(f, "href");
        if (!id || !href)
            return vo_error_set(ret_error, -EINVAL, "OVF: a File reference without id or href");
        if (!vo_import_file_name_valid(href))
            return vo_error_set(ret_error, -EINVAL, "OVF: file '%.64s' is not a plain file name "
                                "in the OVA (a path or URL is refused)", href);
        if (vo_strv_len(refs->ids) >= VO_IMPORT_MAX_FILES)
            return vo_error_set(ret_error, -EINVAL, "OVF: more than %d files",
                                VO_IMPORT_MAX_FILES);
        vo_strv_push(&refs->ids, TAKE_PTR(id));
        vo_strv_push(&refs->hrefs, TAKE_PTR(href));
    }
    xmlNode *disks = vo_import_xml_child(env, "DiskSection");
    for (xmlNode *k = vo_import_xml_child(disks, "Disk"); k; k = vo_import_xml_next(k)) {
        _cleanup_free_ char *id = vo_import_xml_attr(k, "diskId");
        _cleanup_free_ char *ref = vo_import_xml_attr(k, "fileRef");
        _cleanup_free_ char *cap = vo_import_xml_attr(k, "capacity");
        _cleanup_free_ char *units = vo_import_xml_attr(k, "capacityAllocationUnits");
        _cleanup_free_ char *fmt = vo_import_xml_attr(k, "format");
        if (!id)
            return vo_error_set(ret_error, -EINVAL, "OVF: a Disk without diskId");
        if (refs->n_disks >= VO_IMPORT_MAX_DISKS)
            return vo_error_set(ret_error, -EINVAL, "OVF: more than %d disks",
                                VO_IMPORT_MAX_DISKS);
        const char *href = ref ? lookup(refs->ids, refs->hrefs, ref) : NULL;
        if (ref && !href)
            return vo_error_set(ret_error, -EINVAL, "OVF: disk '%.64s' refers to file '%.64s', "
                                "which References does not list", id, ref);
        uint64_t value = 0, bytes = 0;
        uint64_t unit = units ? vo_import_unit_bytes(units) : 1;
        if (!cap || vo_import_parse_u64(cap, &value) < 0 || !unit ||
            vo_import_scale(value, unit, 1, &bytes) < 0 || bytes > VO_IMPORT_MAX_DISK_BYTES)
            return vo_error_set(ret_error, -EINVAL, "OVF: disk '%.64s': capacity '%.32s' (%.32s) "
                                "is not a size up to 64 TiB", id, cap ? cap : "",
                                units ? units : "bytes");
        vo_strv_push(&refs->disk_ids, TAKE_PTR(id));
        vo_strv_pushf(&refs->disk_files, "%s", href ? href : "");
        vo_strv_pushf(&refs->disk_formats, "%s", format_of(fmt) ? format_of(fmt) : "");
        refs->disk_caps = realloc(refs->disk_caps, sizeof(uint64_t) * (refs->n_disks + 1));
        if (!refs->disk_caps)
            abort();
        refs->disk_caps[refs->n_disks++] = bytes;
    }
    return 0;
}

/* "ovf:/disk/ID" (or "/disk/ID") names a Disk of DiskSection; a CD-ROM's
 * "ovf:/file/ID" names a File of References (its ISO) directly. */
static int disk_item(VoImportPlan *p, const OvfRefs *refs, const char *host, bool cdrom,
                     char **ret_error)
{
    const char *slash = host ? strrchr(host, '/') : NULL;
    if (cdrom && slash && strstr(host, "file/")) {
        const char *href = lookup(refs->ids, refs->hrefs, slash + 1);
        if (!href)
            return vo_error_set(ret_error, -EINVAL, "OVF: CD-ROM item refers to file '%.64s', "
                                "which References does not list", host);
        return vo_import_plan_add_disk(p, (VoImportDisk){ .file = vo_strdup(href), .cdrom = true,
                                                          .readonly = true },
                                       ret_error);
    }
    if (!host || !slash || !strstr(host, "disk/"))
        return vo_error_set(ret_error, -EINVAL, "OVF: a disk item without a HostResource "
                            "naming ovf:/disk/ID");
    for (size_t i = 0; i < refs->n_disks; i++)
        if (!strcmp(refs->disk_ids[i], slash + 1)) {
            if (!*refs->disk_files[i])
                return vo_error_set(ret_error, -EINVAL, "OVF: disk '%.64s' has no file (an "
                                    "empty disk to create is not supported)", slash + 1);
            return vo_import_plan_add_disk(
                p, (VoImportDisk){ .file = vo_strdup(refs->disk_files[i]),
                                   .format = *refs->disk_formats[i]
                                                 ? vo_strdup(refs->disk_formats[i]) : NULL,
                                   .capacity_bytes = refs->disk_caps[i], .cdrom = cdrom,
                                   .readonly = cdrom },
                ret_error);
        }
    return vo_error_set(ret_error, -EINVAL, "OVF: item refers to disk '%.64s', which "
                        "DiskSection does not list", host);
}

static int hardware_item(VoImportPlan *p, const OvfRefs *refs, xmlNode *item, char **ret_error)
{
    _cleanup_free_ char *type_text = vo_import_xml_child_text(item, "ResourceType");
    _cleanup_free_ char *qty_text = vo_import_xml_child_text(item, "VirtualQuantity");
    _cleanup_free_ char *units = vo_import_xml_child_text(item, "AllocationUnits");
    _cleanup_free_ char *element = vo_import_xml_child_text(item, "ElementName");
    uint64_t type = 0, qty = 0;
    if (vo_import_parse_u64(type_text, &type) < 0)
        return vo_error_set(ret_error, -EINVAL, "OVF: an Item without a numeric ResourceType");
    switch (type) {
    case RT_CPU:
        if (vo_import_parse_u64(qty_text, &qty) < 0 || qty < 1 || qty > VO_IMPORT_MAX_VCPUS)
            return vo_error_set(ret_error, -EINVAL, "OVF: %.32s vCPUs is not a count from 1 to "
                                "%d", qty_text ? qty_text : "(none)", VO_IMPORT_MAX_VCPUS);
        p->vcpus = (unsigned)qty;
        return 0;
    case RT_MEMORY:
        return vo_import_memory("OVF", qty_text, units, 1ULL << 20, "MB", &p->memory_mib,
                                ret_error);
    case RT_DISK:
    case RT_CDROM:
    case RT_DVD: {
        _cleanup_free_ char *host = vo_import_xml_child_text(item, "HostResource");
        if (!host && type != RT_DISK) {
            p->has_cdrom = true; /* an empty CD-ROM drive */
            return 0;
        }
        return disk_item(p, refs, host, type != RT_DISK, ret_error);
    }
    case RT_ETHERNET: {
        _cleanup_free_ char *conn = vo_import_xml_child_text(item, "Connection");
        _cleanup_free_ char *mac = vo_import_xml_child_text(item, "Address");
        return vo_import_plan_add_nic(p, (VoImportNic){ .network = TAKE_PTR(conn),
                                                        .mac = TAKE_PTR(mac) }, ret_error);
    }
    case RT_VIDEO:
        p->display = true;
        return 0;
    case RT_IDE:
    case RT_SCSI:
    case RT_SATA:
        return 0; /* controllers: vireo picks its own (virtio) */
    default:
        vo_import_warn(p, "OVF item '%.64s' (resource type %llu) is not mapped",
                      element ? element : "?", (unsigned long long)type);
        return 0;
    }
}

/* VMware states the firmware as <vmw:Config vmw:key="firmware" vmw:value="efi"/>;
 * VirtualBox as <vbox:Machine><Hardware><BIOS>... or Firmware type="EFI". */
static void read_firmware(VoImportPlan *p, xmlNode *hw)
{
    for (xmlNode *c = vo_import_xml_child(hw, "Config"); c; c = vo_import_xml_next(c)) {
        _cleanup_free_ char *key = vo_import_xml_attr(c, "key");
        _cleanup_free_ char *value = vo_import_xml_attr(c, "value");
        if (key && value && !strcmp(key, "firmware"))
            p->uefi = !strcasecmp(value, "efi");
    }
}

int vo_ovf_parse(const char *xml, size_t len, VoImportPlan **ret, char **ret_error)
{
    xmlDoc *doc = vo_import_xml_read(xml, len, "OVF descriptor", ret_error);
    if (!doc)
        return -EINVAL;
    _cleanup_import_plan_ VoImportPlan *p = vo_malloc0(sizeof(*p));
    OvfRefs refs = { 0 };
    int r = 0;
    xmlNode *env = xmlDocGetRootElement(doc);
    xmlNode *vs = vo_import_xml_child(env, "VirtualSystem");
    if (strcmp((const char *)env->name, "Envelope"))
        r = vo_error_set(ret_error, -EINVAL, "OVF: the root element is '%.32s', not Envelope",
                         (const char *)env->name);
    else if (!vs)
        r = vo_error_set(ret_error, -EINVAL, "OVF: no VirtualSystem (a VirtualSystemCollection "
                         "of several VMs is not supported)");
    if (r >= 0)
        r = read_references(env, &refs, ret_error);
    if (r >= 0) {
        p->name = vo_import_xml_child_text(vs, "Name");
        if (!p->name)
            p->name = vo_import_xml_attr(vs, "id");
        xmlNode *os = vo_import_xml_child(vs, "OperatingSystemSection");
        p->os_type = vo_import_xml_attr(os, "osType");
        if (!p->os_type)
            p->os_type = vo_import_xml_child_text(os, "Description");
        xmlNode *hw = vo_import_xml_child(vs, "VirtualHardwareSection");
        if (!hw)
            r = vo_error_set(ret_error, -EINVAL, "OVF: no VirtualHardwareSection");
        for (xmlNode *it = vo_import_xml_child(hw, "Item"); it && r >= 0;
             it = vo_import_xml_next(it))
            r = hardware_item(p, &refs, it, ret_error);
        /* OVF 2.0 writes storage as StorageItem, NICs as EthernetPortItem. */
        for (xmlNode *it = vo_import_xml_child(hw, "StorageItem"); it && r >= 0;
             it = vo_import_xml_next(it))
            r = hardware_item(p, &refs, it, ret_error);
        for (xmlNode *it = vo_import_xml_child(hw, "EthernetPortItem"); it && r >= 0;
             it = vo_import_xml_next(it))
            r = hardware_item(p, &refs, it, ret_error);
        if (r >= 0)
            read_firmware(p, hw);
    }
    if (r >= 0 && !p->vcpus)
        p->vcpus = 1;
    if (r >= 0 && !p->memory_mib)
        r = vo_error_set(ret_error, -EINVAL, "OVF: no memory item (ResourceType 4)");
    if (r >= 0 && p->n_disks == 0)
        r = vo_error_set(ret_error, -EINVAL, "OVF: the VM has no disk");
    if (r >= 0)
        r = vo_import_plan_check(p, "OVF", ret_error);
    refs_clear(&refs);
    xmlFreeDoc(doc);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(p);
    return 0;
}
