/* libvirt-xml.c: a libvirt domain XML (virsh dumpxml) into an import plan:
 * name, memory, vCPUs, machine, firmware (os firmware='efi', a pflash
 * loader or an nvram: UEFI), file-backed disks and CD-ROMs, NICs (their
 * network or bridge name), display (vnc/spice/video). What vireo cannot map
 * is listed in the plan's warnings, never dropped silently. Pure; fuzzed by
 * tests/fuzz/fuzz-vm-import.c. */
#include <errno.h>
#include <libxml/parser.h>
#include <string.h>
#include <strings.h>

#include "conf/import-xml.h"
#include "util/util.h"

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list))
            return true;
    return false;
}

static int read_memory(VoImportPlan *p, xmlNode *dom, char **ret_error)
{
    xmlNode *mem = vo_import_xml_child(dom, "memory");
    _cleanup_free_ char *text = vo_import_xml_text(mem);
    _cleanup_free_ char *unit_name = vo_import_xml_attr(mem, "unit");
    return vo_import_memory("domain XML", text, unit_name, 1024, "KiB", &p->memory_mib,
                            ret_error);
}

static int read_os(VoImportPlan *p, xmlNode *dom, char **ret_error)
{
    xmlNode *os = vo_import_xml_child(dom, "os");
    xmlNode *type = vo_import_xml_child(os, "type");
    p->os_type = vo_import_xml_text(type);
    p->machine = vo_import_xml_attr(type, "machine");
    _cleanup_free_ char *arch = vo_import_xml_attr(type, "arch");
    if (arch && strcmp(arch, "x86_64") && strcmp(arch, "i686"))
        return vo_error_set(ret_error, -EINVAL, "domain XML: architecture '%.32s' is not x86 "
                            "(vireo runs x86_64 guests)", arch);
    if (p->os_type && strcmp(p->os_type, "hvm"))
        return vo_error_set(ret_error, -EINVAL, "domain XML: os type '%.32s' is not hvm (a "
                            "full virtual machine)", p->os_type);
    if (p->machine && !strstr(p->machine, "q35"))
        vo_import_warn(p, "machine '%.32s' becomes q35 (vireo's only machine type): the "
                       "guest sees a new chipset and its disks as virtio", p->machine);
    _cleanup_free_ char *firmware = vo_import_xml_attr(os, "firmware");
    xmlNode *loader = vo_import_xml_child(os, "loader");
    _cleanup_free_ char *loader_type = vo_import_xml_attr(loader, "type");
    _cleanup_free_ char *secure = vo_import_xml_attr(loader, "secure");
    p->uefi = (firmware && !strcmp(firmware, "efi")) ||
              (loader_type && !strcmp(loader_type, "pflash")) ||
              vo_import_xml_child(os, "nvram");
    if (p->uefi)
        vo_import_warn(p, "UEFI NVRAM: the VM gets a new NVRAM (boot entries made "
                      "in the old one are not carried over)");
    if (secure && !strcmp(secure, "yes"))
        vo_import_warn(p, "secure boot: not turned on (vireo vm create "
                      "--secure-boot makes a VM with it)");
    if (vo_import_xml_child(os, "kernel"))
        vo_import_warn(p, "direct kernel boot (os/kernel, initrd, cmdline) is not "
                      "imported: give --kernel-image IMAGE for an image's kernel");
    return 0;
}

static int read_disk(VoImportPlan *p, xmlNode *disk, char **ret_error)
{
    _cleanup_free_ char *type = vo_import_xml_attr(disk, "type");
    _cleanup_free_ char *device = vo_import_xml_attr(disk, "device");
    xmlNode *source = vo_import_xml_child(disk, "source");
    _cleanup_free_ char *file = vo_import_xml_attr(source, "file");
    _cleanup_free_ char *target = vo_import_xml_attr(vo_import_xml_child(disk, "target"), "dev");
    _cleanup_free_ char *format = vo_import_xml_attr(vo_import_xml_child(disk, "driver"), "type");
    bool cdrom = device && !strcmp(device, "cdrom");
    const char *what = target ? target : "?";
    if (device && strcmp(device, "disk") && !cdrom) {
        vo_import_warn(p, "disk %.32s: a %.32s device is not imported", what, device);
        return 0;
    }
    if (!type || strcmp(type, "file")) {
        vo_import_warn(p, "disk %.32s: a disk of type '%.32s' is not imported (only "
                      "file-backed disks are: copy the data into a volume, vireo volume import)",
                      what, type ? type : "?");
        return 0;
    }
    if (!file) {
        if (cdrom) {
            p->has_cdrom = true; /* an empty CD-ROM drive */
            return 0;
        }
        return vo_error_set(ret_error, -EINVAL, "domain XML: disk %.32s has no source file",
                            what);
    }
    if (file[0] != '/' || strstr(file, "/../") || strstr(file, "/./"))
        return vo_error_set(ret_error, -EINVAL, "domain XML: disk %.32s: source '%.64s' is not "
                            "an absolute, normalized path", what, file);
    if (format && strcmp(format, "qcow2") && strcmp(format, "raw") && strcmp(format, "vmdk") &&
        strcmp(format, "vdi") && strcmp(format, "vhdx") && strcmp(format, "vpc"))
        return vo_error_set(ret_error, -EINVAL, "domain XML: disk %.32s: format '%.32s' is not "
                            "one vireo imports (qcow2, raw, vmdk, vdi, vhdx, vpc)", what, format);
    return vo_import_plan_add_disk(p, (VoImportDisk){ .file = TAKE_PTR(file),
                                                      .format = TAKE_PTR(format), .cdrom = cdrom,
                                                      .readonly = cdrom ||
                                                                  vo_import_xml_child(disk, "readonly") },
                                   ret_error);
}

static int read_interface(VoImportPlan *p, xmlNode *nic, char **ret_error)
{
    _cleanup_free_ char *type = vo_import_xml_attr(nic, "type");
    xmlNode *source = vo_import_xml_child(nic, "source");
    _cleanup_free_ char *mac = vo_import_xml_attr(vo_import_xml_child(nic, "mac"), "address");
    _cleanup_free_ char *model = vo_import_xml_attr(vo_import_xml_child(nic, "model"), "type");
    char *network = NULL;
    if (type && !strcmp(type, "network"))
        network = vo_import_xml_attr(source, "network");
    else if (type && !strcmp(type, "bridge"))
        network = vo_import_xml_attr(source, "bridge");
    else if (!type || strcmp(type, "user"))
        vo_import_warn(p, "interface %.17s: type '%.32s' is mapped to a NIC on the "
                      "chosen network", mac ? mac : "?", type ? type : "?");
    if (model && strcmp(model, "virtio"))
        vo_import_warn(p, "interface %.17s: model '%.32s' becomes virtio-net",
                      mac ? mac : "?", model);
    return vo_import_plan_add_nic(p, (VoImportNic){ .network = network, .mac = TAKE_PTR(mac) },
                                  ret_error);
}

/* Devices vireo gives every VM its own way (its serial console, input,
 * controllers, balloon, guest-agent channel): nothing to carry over. */
static const char *const provided[] = { "emulator", "controller", "serial", "console", "input",
                                        "memballoon", "channel", NULL };

static int read_devices(VoImportPlan *p, xmlNode *dom, char **ret_error)
{
    xmlNode *devs = vo_import_xml_child(dom, "devices");
    int r = 0;
    for (xmlNode *c = devs ? devs->children : NULL; c && r >= 0; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        const char *n = (const char *)c->name;
        if (!strcmp(n, "disk"))
            r = read_disk(p, c, ret_error);
        else if (!strcmp(n, "interface"))
            r = read_interface(p, c, ret_error);
        else if (!strcmp(n, "graphics") || !strcmp(n, "video")) {
            _cleanup_free_ char *t = vo_import_xml_attr(c, "type");
            if (!t || strcmp(t, "none"))
                p->display = true;
        } else if (!in_list(n, provided))
            vo_import_warn(p, "device <%.32s> is not imported", n);
    }
    return r;
}

/* Top-level elements vireo needs nothing from (identity, lifecycle
 * actions, clock and features QEMU's q35 gives anyway). */
static const char *const ignorable[] = { "name", "uuid", "title", "description", "metadata",
                                         "memory", "currentMemory", "vcpu", "os", "devices",
                                         "features", "clock", "on_poweroff", "on_reboot",
                                         "on_crash", "pm", "seclabel", "resource", "genid",
                                         NULL };

int vo_libvirt_xml_parse(const char *xml, size_t len, VoImportPlan **ret, char **ret_error)
{
    xmlDoc *doc = vo_import_xml_read(xml, len, "domain XML", ret_error);
    if (!doc)
        return -EINVAL;
    _cleanup_import_plan_ VoImportPlan *p = vo_malloc0(sizeof(*p));
    xmlNode *dom = xmlDocGetRootElement(doc);
    int r = 0;
    if (strcmp((const char *)dom->name, "domain"))
        r = vo_error_set(ret_error, -EINVAL, "domain XML: the root element is '%.32s', not "
                         "domain", (const char *)dom->name);
    if (r >= 0) {
        p->name = vo_import_xml_child_text(dom, "name");
        _cleanup_free_ char *vcpu = vo_import_xml_child_text(dom, "vcpu");
        uint64_t n = 1;
        if (vcpu && (vo_import_parse_u64(vcpu, &n) < 0 || n < 1 || n > VO_IMPORT_MAX_VCPUS))
            r = vo_error_set(ret_error, -EINVAL, "domain XML: vcpu '%.32s' is not a count "
                             "from 1 to %d", vcpu, VO_IMPORT_MAX_VCPUS);
        p->vcpus = (unsigned)n;
    }
    if (r >= 0)
        r = read_memory(p, dom, ret_error);
    if (r >= 0)
        r = read_os(p, dom, ret_error);
    if (r >= 0)
        r = read_devices(p, dom, ret_error);
    for (xmlNode *c = dom->children; c && r >= 0; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !in_list((const char *)c->name, ignorable))
            vo_import_warn(p, "<%.32s> is not imported", (const char *)c->name);
    if (r >= 0)
        r = vo_import_plan_check(p, "domain XML", ret_error);
    xmlFreeDoc(doc);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(p);
    return 0;
}
