/* qemu-argv.h: turns a VM spec into QEMU's command line. Pure: no filesystem,
 * clock or fd access; everything it needs comes in through the arguments. */
#pragma once

#include <stdbool.h>

#include "conf/vm-spec.h"
#include "qemu/qemu-caps.h"

/* The accelerator a spec gets on a host: auto means KVM when usable, else TCG.
 * -ENODEV with a message when kvm is demanded but not usable. */
int vo_qemu_resolve_accel(const VoVmSpec *spec, const VoQemuCaps *caps, VoAccel *ret,
                          char **ret_error);

/* Builds the NULL-terminated argv (argv[0] is caps->binary). Returns 0, or a
 * negative errno with *ret_error (malloc'd) explaining what in the spec to fix. */
int vo_qemu_build_argv(const VoVmSpec *spec, const VoQemuCaps *caps, const VoQemuPaths *paths,
                       char ***ret_argv, char **ret_error);

/* The same from a recorded hardware layout (qemu-layout.h): the machine
 * version, CPU model, vCPU and memory shape, root ports and device addresses
 * come from the layout, the disks and NICs from spec (which must match it).
 * incoming: a migration destination (-incoming defer). vo_qemu_build_argv
 * is this with the layout a plain start of spec makes. */
typedef struct VoQemuLayout VoQemuLayout;
int vo_qemu_build_argv_layout(const VoVmSpec *spec, const VoQemuCaps *caps,
                              const VoQemuPaths *paths, const VoQemuLayout *layout,
                              bool incoming, char ***ret_argv, char **ret_error);

/* The node name of the format layer of the disk in slot (what QMP block
 * commands address). */
void vo_qemu_disk_node(unsigned slot, char ret[32]);

/* Hot-plug of vCPUs and memory: the QEMU CPU type for an accelerator, the
 * device id of vCPU index (vCPU 0 is the boot CPU and has none), and the ids
 * of the virtio-mem device, its memory backend and the balloon. */
const char *vo_qemu_cpu_type(VoAccel accel);
/* s with each comma doubled: QEMU's option syntax for a comma in a value. */
char *vo_qemu_escape_commas(const char *s);
void vo_qemu_vcpu_id(unsigned index, char ret[32]);
#define VO_QEMU_VIRTIO_MEM_ID "virtio-mem0"
#define VO_QEMU_HOTPLUG_MEMDEV "mem-hotplug0"
#define VO_QEMU_BALLOON_ID "balloon0"
/* The virtio-serial controller of the guest agent's channel. */
#define VO_QEMU_SERIAL_ID "vserial0"
/* The display adapter of a VM with a display (spec->display). */
#define VO_QEMU_DISPLAY_ID "video0"
/* Its VNC server's Unix socket, in the VM's run dir. */
#define VO_QEMU_VNC_SOCKET "vnc.sock"
/* The password-protected VNC server: its socket and its QMP display id. */
#define VO_QEMU_VNC_TICKET_SOCKET "vnc-ticket.sock"
#define VO_QEMU_VNC_TICKET_ID "vnc-ticket"
/* UEFI: the block nodes of OVMF's code and of the VM's NVRAM (pflash0, pflash1). */
#define VO_QEMU_FW_CODE_NODE "fw-code"
#define VO_QEMU_FW_VARS_NODE "fw-vars"
