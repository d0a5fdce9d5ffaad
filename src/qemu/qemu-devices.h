/* qemu-devices.h: the QEMU objects of a VM's disks and NICs (block nodes,
 * netdevs, devices and the PCIe root ports they plug into) as JSON
 * properties. The command line (qemu-argv.c) and hot-plug over QMP
 * (qemu-hotplug.c) both build them here, so a hot-plugged device is exactly
 * the one a start would make. Pure: no I/O. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "conf/vm-spec.h"

/* QEMU ids of the disk in a slot: "file-disk<slot>", "disk<slot>",
 * "virtio-disk<slot>" and its root port "rp-disk<slot>". */
typedef struct {
    char file_node[32], format_node[32], device[32], port[32];
} VoQemuDiskNames;
void vo_qemu_disk_names(unsigned slot, VoQemuDiskNames *ret);

/* QEMU ids of the NIC in a slot: "hostnet<slot>", "net<slot>", "rp-net<slot>". */
typedef struct {
    char netdev[32], device[32], port[32];
} VoQemuNicNames;
void vo_qemu_nic_names(unsigned slot, VoQemuNicNames *ret);

/* Whether the VM's disks and NICs sit on PCIe root ports of their own (q35),
 * rather than on the legacy PCI bus (pc, with ACPI hot-plug). */
bool vo_qemu_uses_root_ports(const VoVmSpec *spec);

/* The root ports of a q35 VM: one per disk slot from 0 up to a few above
 * the highest in use (at most VO_VM_MAX_DISKS), the same for NICs (at most
 * VO_VM_MAX_NICS), packed as multifunction devices on pcie.0 from slot 0x10
 * on. An array of device properties (new reference); empty for pc. */
json_t *vo_qemu_root_ports(const VoVmSpec *spec);

/* Block nodes of a disk: the file (protocol) node and the format node on it. */
json_t *vo_qemu_disk_file_props(const VoDiskSpec *disk);
/* A disk whose file needs a secret (an RBD image: its key, storage/rbd-disk.h;
 * an iSCSI LUN with CHAP: its secret): the -object secret (file=) its file
 * node names, NULL for other disks; and its id ("sec-" and the file node). */
json_t *vo_qemu_disk_secret_props(const VoDiskSpec *disk);
void vo_qemu_disk_secret_id(unsigned slot, char ret[40]);
/* A LUN's qcow2 layer opens no backing file ("backing": null): a LUN is
 * never a linked clone, and a backing name in its header (anyone on the SAN
 * can write one) would make QEMU read a file of this host into the guest. */
void vo_qemu_lun_no_backing(json_t *format_props, const char *path, VoDiskFormat format);
json_t *vo_qemu_disk_format_props(const VoDiskSpec *disk);
/* The virtio-blk device of spec->disks[index], on its root port on q35. */
json_t *vo_qemu_disk_device_props(const VoVmSpec *spec, size_t index);

/* The backend of a NIC: a tap given as an fd (tap_fd: the fd number on the
 * command line, or the name it was passed under with QMP getfd), or QEMU's
 * user-mode NAT when tap_fd is NULL. */
json_t *vo_qemu_nic_netdev_props(const VoNicSpec *nic, const char *tap_fd);
/* The virtio-net device of a NIC, on its root port on q35. */
json_t *vo_qemu_nic_device_props(const VoVmSpec *spec, const VoNicSpec *nic);

/* The CD-ROM drive: a SATA (AHCI) CD on q35. Its medium is a legacy -drive
 * (a BlockBackend named VO_QEMU_CDROM_DRIVE) so that QMP media changes
 * (blockdev-change-medium, eject) can replace it; an empty drive has none. */
#define VO_QEMU_CDROM_ID "cdrom0"
#define VO_QEMU_CDROM_DRIVE "drive-cdrom0"
/* The cloud-init seed's CD-ROM (qemu-argv.c). */
#define VO_QEMU_CIDATA_ID "cidata0"
#define VO_QEMU_CIDATA_DRIVE "drive-cidata0"
json_t *vo_qemu_cdrom_device_props(const VoVmSpec *spec);
/* An ISO on an rbd pool (its path storage/rbd-disk.h's) is opened through
 * QEMU's rbd driver, read-only (no exclusive lock: many VMs may read one
 * ISO), its key handed over by the secret object VO_QEMU_CDROM_SECRET. */
#define VO_QEMU_CDROM_SECRET "sec-cdrom0"
/* The filename the CD-ROM's medium path is opened by: path itself for a
 * file, a "json:" pseudo-filename of a raw node on the rbd node for an RBD
 * image. NULL when path's rbd pool conf is unreadable. */
char *vo_qemu_cdrom_filename(const char *path);
/* The -object secret (file=) of an RBD medium's key; NULL for a file. */
json_t *vo_qemu_cdrom_secret_props(const char *path);
