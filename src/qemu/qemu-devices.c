/* qemu-devices.c: JSON properties of the QEMU objects behind a VM's disks
 * and NICs (see qemu-devices.h), shared by the command line and hot-plug. */
#include "qemu/qemu-devices.h"

#include <stdio.h>
#include <string.h>

#include "storage/iscsi-url.h"
#include "storage/rbd-disk.h"
#include "util/util.h"

/* First pcie.0 slot of the root ports: far above the slots QEMU hands out
 * automatically (from 1 up) to devices without an address. */
#define ROOT_PORT_FIRST_PCI_SLOT 0x10

void vo_qemu_disk_names(unsigned slot, VoQemuDiskNames *ret)
{
    snprintf(ret->file_node, sizeof(ret->file_node), "file-disk%u", slot);
    snprintf(ret->format_node, sizeof(ret->format_node), "disk%u", slot);
    snprintf(ret->device, sizeof(ret->device), "virtio-disk%u", slot);
    snprintf(ret->port, sizeof(ret->port), "rp-disk%u", slot);
}

void vo_qemu_nic_names(unsigned slot, VoQemuNicNames *ret)
{
    snprintf(ret->netdev, sizeof(ret->netdev), "hostnet%u", slot);
    snprintf(ret->device, sizeof(ret->device), "net%u", slot);
    snprintf(ret->port, sizeof(ret->port), "rp-net%u", slot);
}

bool vo_qemu_uses_root_ports(const VoVmSpec *spec)
{
    return !strcmp(spec->machine, "q35");
}

/* Root ports made beyond the highest slot in use, for hot-plug. Each port
 * costs boot time under TCG (the firmware and the guest kernel probe every
 * bridge: 6 ports add ~0.1 s to a ~4.9 s boot, 24 ports ~1.2 s; see
 * docs/benchmarks.md), so a VM gets a few spare ones and a restart gives it
 * fresh spares above whatever it has plugged by then. */
#define SPARE_DISK_PORTS 3
#define SPARE_NIC_PORTS 2

/* One more than the highest slot of the VM's NICs (nics) or disks; 0 for none. */
static unsigned slots_used(const VoVmSpec *spec, bool nics)
{
    size_t n = nics ? spec->n_nics : spec->n_disks;
    unsigned used = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned slot = nics ? spec->nics[i].slot : spec->disks[i].slot;
        if (slot + 1 > used)
            used = slot + 1;
    }
    return used;
}

/* Ports for slots 0..n-1: every slot up to the highest in use (used - 1)
 * plus the spares, at most max (or the highest slot in use, if above). A
 * contiguous range keeps the lowest free slot, which hot-plug takes, on a
 * port whenever any port is free. */
static unsigned port_count(unsigned used, unsigned spare, unsigned max)
{
    unsigned n = used + spare;
    return n > max ? (used > max ? used : max) : n;
}

/* Root port number p sits at function p % 8 of pcie.0 slot first + p / 8;
 * function 0 of each slot announces the others (multifunction). Its chassis
 * number (p + 1) is unique, as PCIe wants. No IO window is reserved: the
 * virtio devices behind PCIe ports are modern-only (no IO BAR), and two dozen
 * 4 KiB windows would exhaust the 64 KiB IO space. */
static json_t *root_port(const char *id, unsigned p, unsigned first_pci_slot)
{
    char addr[16];
    snprintf(addr, sizeof(addr), "0x%x.%x", first_pci_slot + p / 8, p % 8);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "driver", "pcie-root-port", "id", id, "bus",
                          "pcie.0", "addr", addr);
    if (p % 8 == 0)
        json_object_set_new(o, "multifunction", json_true());
    json_object_set_new(o, "chassis", json_integer((json_int_t)p + 1));
    json_object_set_new(o, "io-reserve", json_integer(0));
    return o;
}

json_t *vo_qemu_root_ports(const VoVmSpec *spec)
{
    json_t *ports = json_array();
    if (!vo_qemu_uses_root_ports(spec))
        return ports;
    unsigned n_disk = port_count(slots_used(spec, false), SPARE_DISK_PORTS, VO_VM_MAX_DISKS);
    unsigned n_nic = port_count(slots_used(spec, true), SPARE_NIC_PORTS, VO_VM_MAX_NICS);
    /* The NIC ports start on a fresh pcie.0 slot, so adding disk ports never
     * moves them. */
    unsigned nic_first = ROOT_PORT_FIRST_PCI_SLOT + (n_disk + 7) / 8;
    for (unsigned s = 0; s < n_disk; s++) {
        VoQemuDiskNames names;
        vo_qemu_disk_names(s, &names);
        json_array_append_new(ports, root_port(names.port, s, ROOT_PORT_FIRST_PCI_SLOT));
    }
    for (unsigned s = 0; s < n_nic; s++) {
        VoQemuNicNames names;
        vo_qemu_nic_names(s, &names);
        json_t *o = root_port(names.port, s, nic_first);
        /* Chassis numbers continue after the disks' ports. */
        json_object_set_new(o, "chassis", json_integer((json_int_t)(n_disk + s + 1)));
        json_array_append_new(ports, o);
    }
    return ports;
}

/* The secret object of the disk in slot: "sec-" and its file node. */
void vo_qemu_disk_secret_id(unsigned slot, char ret[40])
{
    VoQemuDiskNames names;
    vo_qemu_disk_names(slot, &names);
    snprintf(ret, 40, "sec-%s", names.file_node);
}

json_t *vo_qemu_disk_secret_props(const VoDiskSpec *disk)
{
    char id[40];
    vo_qemu_disk_secret_id(disk->slot, id);
    VoRbdDisk rbd;
    if (disk->path && vo_rbd_disk_of_path(disk->path, &rbd) > 0) { /* an RBD image's key */
        json_t *o = vo_rbd_disk_secret(&rbd, id);
        vo_rbd_disk_clear(&rbd);
        return o;
    }
    VoIscsiUrl u;
    if (!vo_iscsi_url_is(disk->path) || vo_iscsi_url_parse(disk->path, &u) < 0)
        return NULL;
    json_t *o = NULL;
    if (u.user && u.secret)
        o = json_pack("{s:s, s:s, s:s, s:s}", "qom-type", "secret", "id", id, "file", u.secret,
                      "format", "raw");
    vo_iscsi_url_clear(&u);
    return o;
}

/* Seconds an iSCSI request may wait for a lost target before it fails
 * (and the VM pauses: vo_qemu_disk_device_props). */
#define ISCSI_TIMEOUT_S 10

/* A LUN (an iSCSI pool's volume, its path an iscsi:// string): QEMU's own
 * initiator (libiscsi), the CHAP secret through -object secret. The iscsi
 * driver has no image locking: that a LUN is attached to one VM only is
 * vireo's rule (the attach claim), not QEMU's. */
static json_t *iscsi_file_props(const VoDiskSpec *disk, const VoQemuDiskNames *names)
{
    VoIscsiUrl u;
    char id[40];
    vo_qemu_disk_secret_id(disk->slot, id);
    json_t *o = vo_iscsi_url_parse(disk->path, &u) < 0 ? NULL : vo_iscsi_url_blockdev(&u, id);
    vo_iscsi_url_clear(&u);
    if (!o)
        return json_pack("{s:s, s:s}", "driver", "iscsi", "node-name", names->file_node);
    json_object_set_new(o, "node-name", json_string(names->file_node));
    json_object_set_new(o, "read-only", json_boolean(disk->readonly));
    json_object_set_new(o, "discard", json_string("unmap"));
    json_object_set_new(o, "timeout", json_integer(ISCSI_TIMEOUT_S));
    return o;
}

/* QEMU's image locking stays on, so two VMs can never open one writable
 * volume; only a volume marked shareable turns it off. */
json_t *vo_qemu_disk_file_props(const VoDiskSpec *disk)
{
    VoQemuDiskNames names;
    vo_qemu_disk_names(disk->slot, &names);
    if (vo_iscsi_url_is(disk->path))
        return iscsi_file_props(disk, &names);
    VoRbdDisk rbd;
    if (vo_rbd_disk_of_path(disk->path, &rbd) > 0) { /* a volume of an rbd pool */
        char secret[40];
        vo_qemu_disk_secret_id(disk->slot, secret);
        json_t *o = vo_rbd_disk_blockdev(&rbd, names.file_node, secret, disk->readonly);
        vo_rbd_disk_clear(&rbd);
        return o;
    }
    json_t *file = json_pack("{s:s, s:s, s:s, s:b, s:s}", "driver", "file", "filename",
                             disk->path, "node-name", names.file_node, "read-only", disk->readonly,
                             "discard", "unmap");
    if (disk->shareable)
        json_object_set_new(file, "locking", json_string("off"));
    return file;
}

void vo_qemu_lun_no_backing(json_t *format_props, const char *path, VoDiskFormat format)
{
    if (vo_iscsi_url_is(path) && format == VO_DISK_QCOW2)
        json_object_set_new(format_props, "backing", json_null());
}

json_t *vo_qemu_disk_format_props(const VoDiskSpec *disk)
{
    VoQemuDiskNames names;
    vo_qemu_disk_names(disk->slot, &names);
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:s}", "driver",
                          vo_disk_format_to_string(disk->format), "node-name", names.format_node,
                          "file", names.file_node, "read-only", disk->readonly, "discard",
                          "unmap");
    vo_qemu_lun_no_backing(o, disk->path, disk->format);
    return o;
}

json_t *vo_qemu_disk_device_props(const VoVmSpec *spec, size_t index)
{
    VoQemuDiskNames names;
    vo_qemu_disk_names(spec->disks[index].slot, &names);
    /* A write that finds the host out of space pauses the VM (BLOCK_IO_ERROR,
     * then STOP: the VM shows paused/io-error) instead of failing in the
     * guest; resuming retries it. Other errors reach the guest. */
    /* An iSCSI LUN whose target is lost: its requests time out
     * (ISCSI_TIMEOUT_S) and the VM pauses (io-error) until the target is
     * back and the VM is resumed, as a multipath device would queue. */
    bool lun = vo_iscsi_url_is(spec->disks[index].path);
    json_t *dev = json_pack("{s:s, s:s, s:s, s:s, s:s}", "driver", "virtio-blk-pci", "id",
                            names.device, "drive", names.format_node, "werror",
                            lun ? "stop" : "enospc", "rerror", lun ? "stop" : "report");
    if (vo_qemu_uses_root_ports(spec))
        json_object_set_new(dev, "bus", json_string(names.port));
    /* Firmware boot tries the devices in the VM's boot order, the disks in
     * order; direct kernel boot needs no bootindex. */
    int boot = vo_vm_spec_bootindex(spec, VO_BOOT_DISK, index);
    if (boot > 0)
        json_object_set_new(dev, "bootindex", json_integer(boot));
    return dev;
}

/* vhost-net is off: the host may lack it. */
json_t *vo_qemu_nic_netdev_props(const VoNicSpec *nic, const char *tap_fd)
{
    VoQemuNicNames names;
    vo_qemu_nic_names(nic->slot, &names);
    if (!tap_fd)
        return json_pack("{s:s, s:s}", "type", "user", "id", names.netdev);
    return json_pack("{s:s, s:s, s:s, s:b}", "type", "tap", "id", names.netdev, "fd", tap_fd,
                     "vhost", 0);
}

json_t *vo_qemu_nic_device_props(const VoVmSpec *spec, const VoNicSpec *nic)
{
    VoQemuNicNames names;
    vo_qemu_nic_names(nic->slot, &names);
    json_t *dev = json_pack("{s:s, s:s, s:s, s:s}", "driver", "virtio-net-pci", "id", names.device,
                            "netdev", names.netdev, "mac", nic->mac);
    if (vo_qemu_uses_root_ports(spec))
        json_object_set_new(dev, "bus", json_string(names.port));
    size_t index = 0;
    while (index < spec->n_nics && &spec->nics[index] != nic)
        index++;
    int boot = vo_vm_spec_bootindex(spec, VO_BOOT_NETWORK, index);
    if (boot > 0)
        json_object_set_new(dev, "bootindex", json_integer(boot));
    return dev;
}

char *vo_qemu_cdrom_filename(const char *path)
{
    VoRbdDisk rbd;
    int r = vo_rbd_disk_of_path(path, &rbd);
    if (r == 0)
        return vo_strdup(path);
    if (r < 0)
        return NULL;
    /* No node name: QEMU names the nodes, which go with the medium. */
    json_t *file = vo_rbd_disk_blockdev(&rbd, "", VO_QEMU_CDROM_SECRET, true);
    vo_rbd_disk_clear(&rbd);
    json_object_del(file, "node-name");
    json_object_del(file, "discard");
    json_t *top = json_pack("{s:o}", "file", file);
    _cleanup_free_ char *text = json_dumps(top, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(top);
    return vo_asprintf("json:%s", text);
}

json_t *vo_qemu_cdrom_secret_props(const char *path)
{
    VoRbdDisk rbd;
    if (vo_rbd_disk_of_path(path, &rbd) <= 0)
        return NULL;
    json_t *o = vo_rbd_disk_secret(&rbd, VO_QEMU_CDROM_SECRET);
    vo_rbd_disk_clear(&rbd);
    return o;
}

json_t *vo_qemu_cdrom_device_props(const VoVmSpec *spec)
{
    /* The ICH9's AHCI controller on q35 (ide.0-5), PIIX's IDE on pc (ide.0-1). */
    json_t *dev = json_pack("{s:s, s:s, s:s}", "driver", "ide-cd", "id", VO_QEMU_CDROM_ID, "bus",
                            "ide.1");
    if (spec->cdrom_path)
        json_object_set_new(dev, "drive", json_string(VO_QEMU_CDROM_DRIVE));
    int boot = vo_vm_spec_bootindex(spec, VO_BOOT_CDROM, 0);
    if (boot > 0)
        json_object_set_new(dev, "bootindex", json_integer(boot));
    return dev;
}
