/* qemu-layout.h: the hardware layout a QEMU VM was started with and has now
 * (resolved machine version, CPU model, vCPU and memory hot-plug shape, the
 * PCIe root ports, and the bus and address of every device vireo named), as
 * a record the argv builder can start an identical VM from: a migration
 * destination after any number of hot-plugs. The record is JSON, kept in the
 * VM's run dir (layout.json, next to the QMP socket) and handed to a
 * destination as is. The struct, its JSON and its file live here (pure but
 * for load/save); reading it from a running QEMU is qemu-layout-probe.c. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/vm-spec.h"

#define VO_QEMU_LAYOUT_VERSION 1
#define VO_QEMU_LAYOUT_FILE "layout.json"

/* The cloud-init seed drive a running VM has, where it may differ from what
 * its spec would make (qemu-argv.c's build_cidata: a drive with the seed
 * when the spec has cloud-init settings, none when not): settings dropped
 * while it runs eject the seed and leave the drive empty; settings given to
 * a VM started without them find no drive to put the seed in. */
typedef enum {
    VO_QEMU_SEED_AS_SPEC = 0, /* as the spec says (also layouts of older vireods) */
    VO_QEMU_SEED_EMPTY,       /* a seed drive without a medium */
    VO_QEMU_SEED_NONE,        /* no seed drive, whatever the spec says */
} VoQemuSeedDrive;

/* Where QEMU put a device: its bus ("pcie.0", "pci.0" or a root port's id)
 * and address on it ("0x3.0": slot.function). */
typedef struct {
    char *id, *bus, *addr;
} VoQemuDeviceAddr;

struct VoQemuLayout {
    char *machine;        /* "pc-q35-10.0" once resolved by QEMU; the spec's alias before */
    char *cpu;            /* CPU model ("host", "qemu64"); NULL: the machine's default */
    VoAccel accel;        /* kvm or tcg */
    bool vcpu_hotplug;    /* -smp 1,maxcpus=max_vcpus plus vCPU devices */
    unsigned vcpus;       /* without vCPU hot-plug: -smp vcpus */
    unsigned max_vcpus;
    unsigned *vcpu_devices; /* with it: the vCPU devices plugged (indexes >= 1), ascending */
    size_t n_vcpu_devices;
    uint64_t boot_memory_mib, max_memory_mib; /* -m boot,maxmem=max (equal: no virtio-mem) */
    /* KiB QEMU's boot memory has beyond boot_memory_mib (both of -m's sizes
     * grow by it): VO_QEMU_TCG_BOOT_PAD_KIB on a TCG VM with virtio-mem, so
     * that QEMU tracks TCG's writes to it during a migration (qemu-argv.c,
     * "TCG and a second RAM block"); 0 otherwise, and in layouts of VMs
     * started before it existed. Not counted as the VM's memory. */
    uint64_t boot_pad_kib;
    uint64_t virtio_mem_requested;            /* bytes the virtio-mem device was asked for */
    json_t *root_ports;   /* the pcie-root-port devices, properties as on the command line */
    VoQemuDeviceAddr *devices; /* every device with an id QEMU placed; empty until probed */
    size_t n_devices;
    /* "seed_drive" in the JSON, only when not as the spec says (so that an
     * older vireo, which refuses the key, refuses only a layout it would
     * have started wrong): probed (an empty drive), or set when settings
     * found no drive (vo_qemu_seed_change). */
    VoQemuSeedDrive seed_drive;
    /* Not recorded at start but made from the spec at a re-attach (a QEMU
     * started by a vireod before layouts): boot sizes and root ports may
     * differ from the QEMU's, so no destination is started from it. */
    bool assumed;
};
typedef struct VoQemuLayout VoQemuLayout;

/* See boot_pad_kib: any size that is not a multiple of 256 KiB (QEMU's
 * 64-page bitmap words) will do; 8 KiB is QEMU's -m granularity. */
#define VO_QEMU_TCG_BOOT_PAD_KIB 8

VoQemuLayout *vo_qemu_layout_free(VoQemuLayout *l);
static inline void vo_qemu_layout_freep(VoQemuLayout **l) { vo_qemu_layout_free(*l); }
#define _cleanup_layout_ __attribute__((cleanup(vo_qemu_layout_freep)))

VoQemuLayout *vo_qemu_layout_copy(const VoQemuLayout *l);

/* What a plain start of spec with accelerator accel makes (no device
 * addresses yet: QEMU picks those). */
VoQemuLayout *vo_qemu_layout_from_spec(const VoVmSpec *spec, VoAccel accel);

/* JSON of a layout (new reference) and back: unknown keys, wrong types or
 * another version are refused with -EINVAL and a message. */
json_t *vo_qemu_layout_to_json(const VoQemuLayout *l);
int vo_qemu_layout_from_json(json_t *doc, VoQemuLayout **ret, char **ret_error);
/* The same from and to JSON text. */
char *vo_qemu_layout_to_text(const VoQemuLayout *l);
int vo_qemu_layout_from_text(const char *text, VoQemuLayout **ret, char **ret_error);

/* The layout file in a run dir (written without an fsync: see util.h). */
int vo_qemu_layout_save(const VoQemuLayout *l, const char *run_dir);
int vo_qemu_layout_load(const char *run_dir, VoQemuLayout **ret, char **ret_error);

/* Where the device with QEMU id sits, or NULL when the layout does not say. */
const VoQemuDeviceAddr *vo_qemu_layout_device(const VoQemuLayout *l, const char *id);
/* Records (or replaces) where device id sits. */
void vo_qemu_layout_set_device(VoQemuLayout *l, const char *id, const char *bus, const char *addr);
void vo_qemu_layout_clear_devices(VoQemuLayout *l);

/* Whether spec's disks and NICs are the devices the layout has (once probed):
 * -EINVAL with a message naming the first disk or NIC slot that differs. */
int vo_qemu_layout_check_spec(const VoQemuLayout *l, const VoVmSpec *spec, char **ret_error);
