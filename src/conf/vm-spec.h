/* vm-spec.h: a VM's definition (what the user asked for): C struct, JSON
 * conversion and validation. No I/O here; drivers never see json_t. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/cloud-init.h"

typedef enum { VO_ACCEL_AUTO, VO_ACCEL_KVM, VO_ACCEL_TCG, _VO_ACCEL_MAX } VoAccel;
const char *vo_accel_to_string(VoAccel a);
int vo_accel_from_string(const char *s, VoAccel *ret);

typedef enum { VO_DISK_QCOW2, VO_DISK_RAW, _VO_DISK_FORMAT_MAX } VoDiskFormat;
const char *vo_disk_format_to_string(VoDiskFormat f);

/* A spec as stored and shown names what a VM uses, never host paths: disks
 * by volume ("pool/name"), a direct-boot kernel and initrd by the image they
 * come from (or by volume). The host that runs the VM resolves the names into
 * paths (vo_vm_spec_resolve); only that resolved copy has the path fields set,
 * and only it goes to the hypervisor driver. */
typedef struct {
    char *path;    /* resolved copies only: the volume's file on this host */
    VoDiskFormat format;
    bool readonly;
    char *volume;  /* "pool/name" */
    bool shareable; /* may be attached to several VMs (QEMU's image lock is off) */
    bool owned;     /* made for this VM: deleted with it (unless keep_disks) */
    unsigned slot;  /* stable number naming its QEMU nodes and device; kept across
                     * hot-plug and unplug of other disks (default: its index) */
} VoDiskSpec;

typedef struct {
    char *mac;     /* "52:54:00:xx:xx:xx" */
    char *network; /* a vireo network's name, or "user" (QEMU user-mode networking) */
    unsigned slot; /* stable number naming its QEMU netdev and device (default: its index) */
} VoNicSpec;

/* Where a direct-boot kernel (initrd) comes from: the kernel (initrd) of
 * image, or the file of volume; at most one is set. */
typedef struct {
    char *image;
    char *volume;
} VoBootFile;

static inline bool vo_boot_file_set(const VoBootFile *f) { return f->image || f->volume; }

/* What firmware boot tries, in the order of a VM's boot list. */
typedef enum { VO_BOOT_DISK, VO_BOOT_CDROM, VO_BOOT_NETWORK, _VO_BOOT_MAX } VoBootDev;
const char *vo_boot_dev_to_string(VoBootDev b);
int vo_boot_dev_from_string(const char *s, VoBootDev *ret);

/* The firmware a VM boots (when it has no direct-boot kernel): SeaBIOS, or
 * OVMF (UEFI) with the VM's own NVRAM volume. */
typedef enum { VO_FIRMWARE_BIOS, VO_FIRMWARE_UEFI, _VO_FIRMWARE_MAX } VoFirmware;
const char *vo_firmware_to_string(VoFirmware f);
int vo_firmware_from_string(const char *s, VoFirmware *ret);

/* A VM's display (graphical console): none (serial only), a standard VGA
 * or a virtio-vga adapter; with one, QEMU serves it over VNC on a Unix
 * socket in the run dir (never a TCP port). */
typedef enum { VO_DISPLAY_NONE, VO_DISPLAY_VGA, VO_DISPLAY_VIRTIO, _VO_DISPLAY_MAX } VoDisplay;
const char *vo_display_to_string(VoDisplay d);
int vo_display_from_string(const char *s, VoDisplay *ret);

/* Debian's ovmf package: the 4 MiB code (read-only pflash) and the template
 * of a VM's NVRAM (copied into the VM's NVRAM volume at create); with secure
 * boot the code that enforces it (needs SMM) and vars with Microsoft's keys
 * enrolled. */
#define VO_OVMF_DIR "/usr/share/OVMF"
#define VO_OVMF_CODE VO_OVMF_DIR "/OVMF_CODE_4M.fd"
#define VO_OVMF_VARS VO_OVMF_DIR "/OVMF_VARS_4M.fd"
#define VO_OVMF_CODE_SECBOOT VO_OVMF_DIR "/OVMF_CODE_4M.secboot.fd"
#define VO_OVMF_VARS_MS VO_OVMF_DIR "/OVMF_VARS_4M.ms.fd"

typedef struct {
    char *id;
    char *name;
    char *image;   /* image it was created from, informational; may be NULL */
    unsigned vcpus;
    uint64_t memory_mib;
    /* What a running VM may grow to (hot-plug); equal to vcpus / memory_mib
     * (the default) when it may not. Set while the VM is stopped. */
    unsigned max_vcpus;
    uint64_t max_memory_mib;
    VoAccel accel;
    char *machine; /* "q35" */
    VoBootFile kernel_from; /* direct kernel boot when set */
    VoBootFile initrd_from;
    char *kernel;  /* resolved copies only: the kernel's (initrd's) file on this host */
    char *initrd;
    char *cmdline;
    VoDiskSpec *disks;
    size_t n_disks;
    VoNicSpec *nics;
    size_t n_nics;
    /* A CD-ROM drive (SATA on q35): has_cdrom; cdrom, the ISO volume
     * ("pool/name") in it, or NULL when it is empty; cdrom_path: resolved
     * copies only. */
    bool has_cdrom;
    char *cdrom;
    char *cdrom_path;
    /* Firmware boot order ("boot": ["cdrom", "disk", "network"]); n_boot 0:
     * the default (disks, then the CD-ROM). */
    VoBootDev boot[_VO_BOOT_MAX];
    size_t n_boot;
    /* Firmware ("firmware": "uefi"; absent: bios). UEFI: nvram, the VM's
     * NVRAM volume ("pool/name", qcow2 so internal snapshots include it; made
     * by the create task, so NULL before); nvram_path: resolved copies only.
     * secure_boot: OVMF's secure-boot code, q35 with SMM. */
    VoFirmware firmware;
    bool secure_boot;
    char *nvram;
    char *nvram_path;
    /* "display": "vga" | "virtio" (absent: none). */
    VoDisplay display;
    /* cloud-init (NULL: none): the settings of the NoCloud seed vireod makes
     * and attaches as a second, read-only CD-ROM ("cidata");
     * cloud_init_path: resolved copies only, the seed ISO in the VM's state. */
    VoCloudInit *cloud_init;
    char *cloud_init_path;
    bool autostart;
    char *group;   /* the placement group it belongs to (cluster/groups/<name>), or NULL */
    char *project; /* the project it counts against (docs/projects.md); NULL: "default" */
    /* High availability (docs/ha.md): restarted on another host when its
     * host dies; higher ha_priority first; ha_group: a placement group whose
     * policy holds where it is restarted (NULL: its own group's). */
    bool ha;
    int ha_priority;
    char *ha_group;
    /* Its QEMU's cgroup (docs/security.md): CPU weight (1..10000, cgroup
     * v2's scale; 0: the default, 100) and CPU limit in cores (0: none);
     * both change live. */
    unsigned cpu_weight;
    double cpu_limit;
} VoVmSpec;

/* The project a VM counts against: its own, or "default". */
static inline const char *vo_vm_spec_project(const VoVmSpec *s)
{
    return s->project ? s->project : "default";
}
#define VO_VM_CPU_WEIGHT_MIN 1
#define VO_VM_CPU_WEIGHT_MAX 10000
#define VO_VM_CPU_LIMIT_MIN 0.01

#define VO_VM_HA_PRIORITY_MIN -1000
#define VO_VM_HA_PRIORITY_MAX 1000

typedef struct {
    unsigned max_vcpus;
    uint64_t max_memory_mib;
} VoHostLimits;

#define VO_VM_MIN_MEMORY_MIB 32
/* Hot-pluggable memory comes in blocks of this size (virtio-mem's default
 * block on x86), so with memory hot-plug both sizes are multiples of it. */
#define VO_VM_MEMORY_BLOCK_MIB 2
#define VO_VM_MAX_DISKS 16
#define VO_VM_MAX_NICS 8
/* Disk and NIC slots are below this. */
#define VO_VM_MAX_SLOTS 32

VoVmSpec *vo_vm_spec_free(VoVmSpec *s);
static inline void vo_vm_spec_freep(VoVmSpec **s) { vo_vm_spec_free(*s); }
#define _cleanup_vm_spec_ __attribute__((cleanup(vo_vm_spec_freep)))

/* Parse a spec document. Unknown keys and wrong types are refused, and so
 * are host paths (a disk's "path", a kernel or initrd given as a string).
 * On error returns -EINVAL and *ret_error (malloc'd) says what to fix. */
int vo_vm_spec_from_json(json_t *doc, VoVmSpec **ret, char **ret_error);
/* New reference. Never has a path, even for a resolved spec. */
json_t *vo_vm_spec_to_json(const VoVmSpec *s);
/* A deep copy (resolved paths included when s has them). */
VoVmSpec *vo_vm_spec_copy(const VoVmSpec *s);

/* Turns names into this host's paths. Each returns 0 with *ret_path
 * (malloc'd), or -errno with *ret_error saying what is missing. */
typedef struct {
    int (*volume_path)(void *userdata, const char *key, char **ret_path, char **ret_error);
    /* The kernel (initrd when initrd) of image. */
    int (*image_file)(void *userdata, const char *image, bool initrd, char **ret_path,
                      char **ret_error);
    void *userdata;
} VoSpecResolver;

/* A copy of s with every disk's path and the kernel and initrd filled in by
 * res; *ret_error names the disk or boot file that could not be resolved.
 * A path QEMU cannot take (relative, or with a ',') is refused too. */
int vo_vm_spec_resolve(const VoVmSpec *s, const VoSpecResolver *res, VoVmSpec **ret,
                       char **ret_error);
/* Drops the resolved paths (what a resolved copy has beyond the spec). */
void vo_vm_spec_unresolve(VoVmSpec *s);

/* Names for the host paths in a spec document written before specs named
 * volumes and images (vireod up to 0.x stored paths). Each returns a
 * malloc'd name, or NULL when path has none. */
typedef struct {
    /* "POOL/NAME" of the volume whose file path is. */
    char *(*volume_of)(void *userdata, const char *path);
    /* The image whose kernel (initrd when initrd) path is. */
    char *(*image_of)(void *userdata, const char *path, bool initrd);
    void *userdata;
} VoSpecNamer;

/* Upgrades spec document doc in place: a disk's "path" goes (its "volume"
 * stays when namer gives that volume for the path; a disk without one gets
 * the volume namer gives), a kernel or initrd path becomes {"image": NAME}
 * (or {"volume": KEY}). What has no name, and a disk whose path is not its
 * volume's file, is taken out of doc (a disk, the kernel/initrd, with cmdline
 * when the kernel goes) and each is described in *ret_problems (strv, NULL
 * when none).
 * *ret_changed: doc was in the old format. -EINVAL when doc is not an object. */
int vo_vm_spec_upgrade_json(json_t *doc, const VoSpecNamer *namer, bool *ret_changed,
                            char ***ret_problems);

/* Checks values against the rules and host limits; -EINVAL with a message. */
int vo_vm_spec_validate(const VoVmSpec *s, const VoHostLimits *limits, char **ret_error);

/* Whether a VM started from s has hot-pluggable vCPUs: any but vCPU 0 can be
 * unplugged and it can grow to max_vcpus (also after a restart with vcpus
 * raised to max_vcpus). Whether it has hot-pluggable memory above its boot
 * size (every VM has a balloon for memory below it). */
static inline bool vo_vm_spec_vcpu_hotplug(const VoVmSpec *s) { return s->max_vcpus > 1; }
static inline bool vo_vm_spec_memory_hotplug(const VoVmSpec *s)
{
    return s->max_memory_mib > s->memory_mib;
}

/* The firmware boot order of s (its boot list, or the default), filled into
 * ret; returns how many. */
size_t vo_vm_spec_boot_order(const VoVmSpec *s, VoBootDev ret[_VO_BOOT_MAX]);
/* The bootindex of the device of class dev (its index-th of that class), or
 * -1 when firmware should not boot it (direct kernel boot, or dev is not in
 * the boot list). */
int vo_vm_spec_bootindex(const VoVmSpec *s, VoBootDev dev, size_t index);

/* The lowest slot no disk (NIC) of s uses. */
unsigned vo_vm_spec_free_disk_slot(const VoVmSpec *s);
unsigned vo_vm_spec_free_nic_slot(const VoVmSpec *s);

/* A locally administered unicast MAC in QEMU's 52:54:00 prefix. */
int vo_mac_generate(char ret[18]);
bool vo_mac_valid(const char *mac);
/* 00:00:00:00:00:00: no address (QEMU treats it as unset). Refused where a
 * user gives a MAC, still loaded from documents that have it. */
bool vo_mac_is_zero(const char *mac);
