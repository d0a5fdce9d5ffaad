/* qemu-argv.c: VM spec -> QEMU argv, one small builder per part of the command
 * line, called in argv order by vo_qemu_build_argv. Disks and NICs are
 * written as JSON (-blockdev/-netdev/-device '{...}') built by qemu-devices.c,
 * which QMP hot-plug uses too. */
#include "qemu/qemu-argv.h"
#include "qemu/qemu-agent.h"
#include "qemu/qemu-devices.h"
#include "qemu/qemu-layout.h"

#include <string.h>

#include "util/util.h"

int vo_qemu_resolve_accel(const VoVmSpec *spec, const VoQemuCaps *caps, VoAccel *ret,
                          char **ret_error)
{
    switch (spec->accel) {
    case VO_ACCEL_KVM:
        if (!caps->kvm_usable) {
            if (ret_error)
                *ret_error = vo_strdup("accel: kvm was requested but KVM is not usable on this "
                                       "host; use accel auto or tcg");
            return -ENODEV;
        }
        *ret = VO_ACCEL_KVM;
        return 0;
    case VO_ACCEL_TCG:
        *ret = VO_ACCEL_TCG;
        return 0;
    default:
        *ret = caps->kvm_usable ? VO_ACCEL_KVM : VO_ACCEL_TCG;
        return 0;
    }
}

void vo_qemu_disk_node(unsigned slot, char ret[32])
{
    snprintf(ret, 32, "disk%u", slot);
}

/* Adds "-opt" and its printf-formatted value. */
static void push_opt(char ***argv, const char *opt, const char *fmt, ...) _printf_(3, 4);
static void push_opt(char ***argv, const char *opt, const char *fmt, ...)
{
    va_list ap;
    vo_strv_push(argv, vo_strdup(opt));
    va_start(ap, fmt);
    vo_strv_push(argv, vo_vasprintf(fmt, ap));
    va_end(ap);
}

char *vo_qemu_escape_commas(const char *s)
{
    char *out = vo_malloc0(strlen(s) * 2 + 1), *o = out;
    for (; *s; s++) {
        *o++ = *s;
        if (*s == ',')
            *o++ = ',';
    }
    return out;
}

/* Adds "-opt" then the JSON text of props (stolen). */
static void push_json(char ***argv, const char *opt, json_t *props)
{
    vo_strv_push(argv, vo_strdup(opt));
    char *s = json_dumps(props, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        abort();
    vo_strv_push(argv, s);
    json_decref(props);
}

static void build_machine(char ***argv, const VoVmSpec *spec, const VoQemuLayout *layout)
{
    push_opt(argv, "-name", "guest=%s,debug-threads=on", spec->name);
    push_opt(argv, "-uuid", "%s", spec->id);
    /* UEFI: OVMF's code and the VM's NVRAM are the machine's two flash
     * chips (build_firmware); secure boot needs SMM. */
    if (spec->firmware == VO_FIRMWARE_UEFI)
        push_opt(argv, "-machine", "%s,pflash0=%s,pflash1=%s%s", layout->machine,
                 VO_QEMU_FW_CODE_NODE, VO_QEMU_FW_VARS_NODE, spec->secure_boot ? ",smm=on" : "");
    else
        push_opt(argv, "-machine", "%s", layout->machine);
    push_opt(argv, "-accel", "%s", layout->accel == VO_ACCEL_KVM ? "kvm" : "tcg");
    if (layout->cpu)
        push_opt(argv, "-cpu", "%s", layout->cpu);
    /* With hot-plug, memory beyond the boot size lives in a virtio-mem device
     * (build_hotplug_resources) inside maxmem.
     *
     * TCG and a second RAM block: QEMU (10.0, and upstream as of late 2025)
     * loses TCG's writes to the boot memory during a migration when another
     * RAM block comes first in its RAM address space, as the virtio-mem
     * device's backend does (-object backends are made before the machine's
     * RAM). Its bitmap sync for a block whose start and size are multiples of
     * 256 KiB (migration/ram.c's fast path) clears the block's dirty bits but
     * re-arms the vCPUs' TLB write tracking at the block's offset taken as a
     * RAM address, which is the other block's: a vCPU keeps writing the boot
     * memory through TLB entries that no longer mark pages dirty, and a page
     * sent while the guest runs is not sent again (an idle vCPU, that never
     * switches page tables, keeps such entries for the whole migration);
     * a boot memory larger than the other block fails an assertion there
     * (tlb_reset_dirty_range_all: the range spans two blocks) and QEMU
     * aborts. A layout without the padding is refused as a migration
     * source (qemu_migrate_prepare).
     * A boot size that is not a multiple of 256 KiB takes QEMU's per-page
     * path, which re-arms the right pages (boot_pad_kib; the virtio-mem
     * block, at RAM address 0, is right in the fast path). */
    if (layout->max_memory_mib > layout->boot_memory_mib && layout->boot_pad_kib)
        push_opt(argv, "-m", "%lluk,maxmem=%lluk",
                 (unsigned long long)((layout->boot_memory_mib << 10) + layout->boot_pad_kib),
                 (unsigned long long)((layout->max_memory_mib << 10) + layout->boot_pad_kib));
    else if (layout->max_memory_mib > layout->boot_memory_mib)
        push_opt(argv, "-m", "%llu,maxmem=%lluM", (unsigned long long)layout->boot_memory_mib,
                 (unsigned long long)layout->max_memory_mib);
    else
        push_opt(argv, "-m", "%llu", (unsigned long long)layout->boot_memory_mib);
    /* With hot-plug (max_vcpus > 1) only vCPU 0 is a boot CPU; the others
     * are CPU devices (build_hotplug_resources), so any but vCPU 0 can be
     * unplugged, also after a restart. One socket of max_vcpus cores: vCPU k
     * is core k. */
    if (layout->vcpu_hotplug)
        push_opt(argv, "-smp", "1,sockets=1,cores=%u,threads=1,maxcpus=%u", layout->max_vcpus,
                 layout->max_vcpus);
    else
        push_opt(argv, "-smp", "%u", layout->vcpus);
}

/* Nothing implicit: no default devices, no user config, no display. vCPUs
 * start stopped (-S) so the console is attached before the guest's first byte;
 * vireod continues the VM over QMP. */
static void build_defaults(char ***argv)
{
    static const char *const fixed[] = { "-S", "-nodefaults", "-no-user-config", "-display",
                                         "none", "-msg", "timestamp=on" };
    for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
        vo_strv_push(argv, vo_strdup(fixed[i]));
}

/* Least privilege: QEMU opens its command line's files, sockets and /dev/kvm
 * as root, then becomes run_as (uid, gid and groups; no capabilities) with
 * a seccomp filter that refuses obsolete system calls, spawning programs
 * and changing scheduling or resource limits. elevateprivileges stays
 * "allow": QEMU 10 installs the filter before its own setuid of -run-with,
 * which "deny" (and "children") kill with SIGSYS; after the switch no id is
 * root and no capability is left, so there is nothing to regain. */
static void build_confinement(char ***argv, const VoQemuCaps *caps)
{
    if (!caps->run_as)
        return;
    push_opt(argv, "-run-with", "user=%s", caps->run_as);
    push_opt(argv, "-sandbox", "%s",
             "on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny");
}

/* QMP first, so the monitor exists before anything else can fail late. */
static void build_monitor_and_console(char ***argv, const VoQemuPaths *paths)
{
    push_opt(argv, "-chardev", "socket,id=charmonitor,path=%s,server=on,wait=off", paths->qmp_socket);
    push_opt(argv, "-mon", "chardev=charmonitor,id=monitor,mode=control");
    if (paths->events_socket) {
        push_opt(argv, "-chardev", "socket,id=charevents,path=%s,server=on,wait=off",
                 paths->events_socket);
        push_opt(argv, "-mon", "chardev=charevents,id=events,mode=control");
    }
    push_opt(argv, "-chardev", "socket,id=charserial0,path=%s,server=on,wait=off",
                  paths->console_socket);
    push_opt(argv, "-serial", "chardev:charserial0");
    push_opt(argv, "-pidfile", "%s", paths->pidfile);
}

static void build_boot(char ***argv, const VoVmSpec *spec)
{
    if (!spec->kernel) {
        /* Firmware boot: only devices with a bootindex, in that order. */
        push_opt(argv, "-boot", "strict=on");
        return;
    }
    push_opt(argv, "-kernel", "%s", spec->kernel);
    if (spec->initrd) {
        push_opt(argv, "-initrd", "%s", spec->initrd);
    }
    /* The guest learns its VM's name (vireo's image sets its hostname from it). */
    push_opt(argv, "-append", "%s%svireo.hostname=%s", spec->cmdline ? spec->cmdline : "",
             spec->cmdline ? " " : "", spec->name);
}

/* UEFI: OVMF's code, read-only raw, and the VM's NVRAM volume (qcow2, so
 * snapshot-save includes it) as the flash chips -machine names. */
static int build_firmware(char ***argv, const VoVmSpec *spec, char **ret_error)
{
    if (spec->firmware != VO_FIRMWARE_UEFI)
        return 0;
    if (!spec->nvram_path)
        return vo_error_set(ret_error, -EINVAL, "firmware uefi: the VM has no NVRAM volume "
                            "(nvram)");
    const char *code = spec->secure_boot ? VO_OVMF_CODE_SECBOOT : VO_OVMF_CODE;
    push_json(argv, "-blockdev",
              json_pack("{s:s, s:s, s:s, s:b}", "driver", "file", "filename", code, "node-name",
                        "file-" VO_QEMU_FW_CODE_NODE, "read-only", true));
    push_json(argv, "-blockdev",
              json_pack("{s:s, s:s, s:s, s:b}", "driver", "raw", "node-name",
                        VO_QEMU_FW_CODE_NODE, "file", "file-" VO_QEMU_FW_CODE_NODE, "read-only",
                        true));
    push_json(argv, "-blockdev",
              json_pack("{s:s, s:s, s:s, s:b}", "driver", "file", "filename", spec->nvram_path,
                        "node-name", "file-" VO_QEMU_FW_VARS_NODE, "read-only", false));
    push_json(argv, "-blockdev",
              json_pack("{s:s, s:s, s:s, s:b}", "driver", "qcow2", "node-name",
                        VO_QEMU_FW_VARS_NODE, "file", "file-" VO_QEMU_FW_VARS_NODE, "read-only",
                        false));
    /* Secure boot: only code running in SMM may write the flash. */
    if (spec->secure_boot)
        push_opt(argv, "-global", "%s", "driver=cfi.pflash01,property=secure,value=on");
    return 0;
}

/* On q35 every disk and NIC slot gets a PCIe root port of its own, used or
 * not, so that a disk or NIC can be hot-plugged into it later. */
static void build_root_ports(char ***argv, const VoQemuLayout *layout)
{
    size_t i;
    json_t *port;
    json_array_foreach(layout->root_ports, i, port)
        push_json(argv, "-device", json_deep_copy(port));
}

/* A device (props, stolen) where the layout says it sits, if it says. */
static json_t *placed(json_t *props, const VoQemuLayout *layout)
{
    const VoQemuDeviceAddr *at =
        vo_qemu_layout_device(layout, json_string_value(json_object_get(props, "id")) ?: "");
    if (at) {
        json_object_set_new(props, "bus", json_string(at->bus));
        json_object_set_new(props, "addr", json_string(at->addr));
    }
    return props;
}

static void build_disks(char ***argv, const VoVmSpec *spec, const VoQemuLayout *layout)
{
    for (size_t i = 0; i < spec->n_disks; i++) {
        json_t *secret = vo_qemu_disk_secret_props(&spec->disks[i]);
        if (secret) /* an RBD key, an iSCSI CHAP secret: by file, never in argv */
            push_json(argv, "-object", secret);
        push_json(argv, "-blockdev", vo_qemu_disk_file_props(&spec->disks[i]));
        push_json(argv, "-blockdev", vo_qemu_disk_format_props(&spec->disks[i]));
        push_json(argv, "-device", placed(vo_qemu_disk_device_props(spec, i), layout));
    }
}

/* The CD-ROM drive and its medium (read-only raw ISO), when the VM has one. */
static void build_cdrom(char ***argv, const VoVmSpec *spec)
{
    if (!spec->has_cdrom)
        return;
    if (spec->cdrom_path) {
        json_t *secret = vo_qemu_cdrom_secret_props(spec->cdrom_path);
        if (secret) /* an ISO on an rbd pool: its key by file, never in argv */
            push_json(argv, "-object", secret);
        _cleanup_free_ char *file = vo_qemu_cdrom_filename(spec->cdrom_path);
        _cleanup_free_ char *escaped = vo_qemu_escape_commas(file ? file : spec->cdrom_path);
        push_opt(argv, "-drive", "if=none,id=%s,media=cdrom,readonly=on,format=raw,file=%s",
                 VO_QEMU_CDROM_DRIVE, escaped);
    }
    push_json(argv, "-device", vo_qemu_cdrom_device_props(spec));
}

/* The cloud-init NoCloud seed (volume label cidata), when the VM has
 * cloud-init settings: a second read-only CD-ROM apart from the user's
 * drive (ide.1): on q35 AHCI port 2; on pc PIIX's primary channel (ide.0;
 * it has no ide.2, and QEMU would refuse to start). Firmware never boots it.
 * A migration's destination has the drive the source has (the layout's
 * seed_drive): empty after the settings went while it ran, absent when
 * they came to a VM started without them. */
static void build_cidata(char ***argv, const VoVmSpec *spec, const VoQemuLayout *layout)
{
    if (layout->seed_drive == VO_QEMU_SEED_NONE ||
        (layout->seed_drive == VO_QEMU_SEED_AS_SPEC && !spec->cloud_init_path))
        return;
    if (layout->seed_drive == VO_QEMU_SEED_EMPTY)
        push_opt(argv, "-drive", "if=none,id=%s,media=cdrom,readonly=on", VO_QEMU_CIDATA_DRIVE);
    else
        push_opt(argv, "-drive", "if=none,id=%s,media=cdrom,readonly=on,format=raw,file=%s",
                 VO_QEMU_CIDATA_DRIVE, spec->cloud_init_path);
    const char *bus = spec->machine && !strcmp(spec->machine, "pc") ? "ide.0" : "ide.2";
    push_json(argv, "-device", json_pack("{s:s, s:s, s:s, s:s}", "driver", "ide-cd", "id",
                                         VO_QEMU_CIDATA_ID, "bus", bus, "drive",
                                         VO_QEMU_CIDATA_DRIVE));
}

/* A NIC on a vireo network is a tap vireod opened and hands over as an fd;
 * "user" is QEMU's own NAT. */
static int build_nics(char ***argv, const VoVmSpec *spec, const VoQemuLayout *layout,
                      const VoQemuPaths *paths, char **ret_error)
{
    for (size_t i = 0; i < spec->n_nics; i++) {
        const VoNicSpec *n = &spec->nics[i];
        char fd[16];
        if (!strcmp(n->network, "user"))
            push_json(argv, "-netdev", vo_qemu_nic_netdev_props(n, NULL));
        else if (paths->tap_fds && paths->tap_fds[i] >= 0) {
            snprintf(fd, sizeof(fd), "%d", paths->tap_fds[i]);
            push_json(argv, "-netdev", vo_qemu_nic_netdev_props(n, fd));
        } else {
            if (ret_error)
                *ret_error = vo_asprintf("nics[%zu]: network '%s' needs a tap and none was given",
                                         i, n->network);
            return -EINVAL;
        }
        push_json(argv, "-device", placed(vo_qemu_nic_device_props(spec, n), layout));
    }
    return 0;
}

const char *vo_qemu_cpu_type(VoAccel accel)
{
    return accel == VO_ACCEL_KVM ? "host-x86_64-cpu" : "qemu64-x86_64-cpu";
}

void vo_qemu_vcpu_id(unsigned index, char ret[32])
{
    snprintf(ret, 32, "vcpu%u", index);
}

/* Hot-plug: the vCPUs beyond vCPU 0 as CPU devices; the memory between the
 * boot size and max_memory as a virtio-mem device (empty at a plain start);
 * and, on every VM, a balloon to hand memory below the boot size back to the
 * host. Cold-plugged, so they sit on the root bus. */
static void build_hotplug_resources(char ***argv, const VoQemuLayout *layout)
{
    _cleanup_free_ char *cpu_type = layout->cpu ? vo_asprintf("%s-x86_64-cpu", layout->cpu)
                                                : vo_strdup(vo_qemu_cpu_type(layout->accel));
    for (size_t i = 0; layout->vcpu_hotplug && i < layout->n_vcpu_devices; i++) {
        char id[32];
        unsigned k = layout->vcpu_devices[i];
        vo_qemu_vcpu_id(k, id);
        push_json(argv, "-device",
                  json_pack("{s:s, s:s, s:i, s:i, s:i}", "driver", cpu_type, "id", id,
                            "socket-id", 0, "core-id", (int)k, "thread-id", 0));
    }
    push_json(argv, "-device",
              placed(json_pack("{s:s, s:s}", "driver", "virtio-balloon-pci", "id",
                               VO_QEMU_BALLOON_ID), layout));
    if (layout->max_memory_mib <= layout->boot_memory_mib)
        return;
    json_int_t hotplug_bytes =
        (json_int_t)((layout->max_memory_mib - layout->boot_memory_mib) << 20);
    push_json(argv, "-object",
              json_pack("{s:s, s:s, s:I}", "qom-type", "memory-backend-ram", "id",
                        VO_QEMU_HOTPLUG_MEMDEV, "size", hotplug_bytes));
    push_json(argv, "-device",
              placed(json_pack("{s:s, s:s, s:s, s:I}", "driver", "virtio-mem-pci", "id",
                               VO_QEMU_VIRTIO_MEM_ID, "memdev", VO_QEMU_HOTPLUG_MEMDEV,
                               "requested-size", (json_int_t)layout->virtio_mem_requested),
                     layout));
}

/* The guest agent's channel: a virtio-serial controller with one port named
 * org.qemu.guest_agent.0, backed by a Unix socket vireod connects to. */
static void build_agent_channel(char ***argv, const VoQemuPaths *paths, const VoQemuLayout *layout)
{
    if (!paths->agent_socket)
        return;
    push_opt(argv, "-chardev", "socket,id=charagent0,path=%s,server=on,wait=off",
             paths->agent_socket);
    push_json(argv, "-device", placed(json_pack("{s:s, s:s}", "driver", "virtio-serial-pci", "id",
                                                VO_QEMU_SERIAL_ID), layout));
    push_json(argv, "-device",
              json_pack("{s:s, s:s, s:s, s:s}", "driver", "virtserialport", "bus",
                        VO_QEMU_SERIAL_ID ".0", "chardev", "charagent0", "name",
                        VO_QEMU_AGENT_PORT));
}

/* A display: its adapter (placed by QEMU after every device with a fixed
 * address, so the rest of the layout is unchanged) and the VNC server on a
 * Unix socket in the run dir (QEMU 10: -vnc unix:PATH), never on TCP; a
 * migrated VM keeps the adapter's address (the layout's).
 * share=ignore: several viewers at once (the CLI's, the web UI's). A second
 * VNC server on its own socket asks for a password (VNC authentication):
 * none is set at start, so it admits nobody until vireod issues a one-time
 * password on it (set_password, display VO_QEMU_VNC_TICKET_ID) for a viewer
 * off loopback (vireo console --vnc --listen ADDR). */
static void build_display(char ***argv, const VoVmSpec *spec, const VoQemuPaths *paths,
                          const VoQemuLayout *layout)
{
    if (spec->display == VO_DISPLAY_NONE || !paths->vnc_socket)
        return;
    push_json(argv, "-device",
              placed(json_pack("{s:s, s:s}", "driver",
                               spec->display == VO_DISPLAY_VIRTIO ? "virtio-vga" : "VGA", "id",
                               VO_QEMU_DISPLAY_ID), layout));
    push_opt(argv, "-vnc", "unix:%s,share=ignore", paths->vnc_socket);
    if (paths->vnc_ticket_socket)
        push_opt(argv, "-vnc", "unix:%s,share=ignore,password=on,id=" VO_QEMU_VNC_TICKET_ID,
                 paths->vnc_ticket_socket);
}

int vo_qemu_build_argv(const VoVmSpec *spec, const VoQemuCaps *caps, const VoQemuPaths *paths,
                       char ***ret_argv, char **ret_error)
{
    VoAccel accel;
    int r = vo_qemu_resolve_accel(spec, caps, &accel, ret_error);
    if (r < 0)
        return r;
    _cleanup_layout_ VoQemuLayout *layout = vo_qemu_layout_from_spec(spec, accel);
    return vo_qemu_build_argv_layout(spec, caps, paths, layout, false, ret_argv, ret_error);
}

int vo_qemu_build_argv_layout(const VoVmSpec *spec, const VoQemuCaps *caps,
                              const VoQemuPaths *paths, const VoQemuLayout *layout,
                              bool incoming, char ***ret_argv, char **ret_error)
{
    if (layout->accel == VO_ACCEL_KVM && !caps->kvm_usable)
        return vo_error_set(ret_error, -ENODEV, "the VM runs with KVM and KVM is not usable "
                            "on this host: it cannot move here");
    if (spec->n_disks == 0 && !spec->kernel && !spec->cdrom_path) {
        if (ret_error)
            *ret_error = vo_strdup("nothing to boot: give the VM a disk, a kernel or a CD-ROM");
        return -EINVAL;
    }
    int r = vo_qemu_layout_check_spec(layout, spec, ret_error);
    if (r < 0)
        return r;

    _cleanup_strv_ char **argv = NULL;
    vo_strv_push(&argv, vo_strdup(caps->binary));
    build_machine(&argv, spec, layout);
    build_defaults(&argv);
    build_confinement(&argv, caps);
    build_monitor_and_console(&argv, paths);
    build_boot(&argv, spec);
    r = build_firmware(&argv, spec, ret_error);
    if (r < 0)
        return r;
    build_root_ports(&argv, layout);
    build_disks(&argv, spec, layout);
    build_cdrom(&argv, spec);
    build_cidata(&argv, spec, layout);
    r = build_nics(&argv, spec, layout, paths, ret_error);
    if (r < 0)
        return r;
    build_hotplug_resources(&argv, layout);
    build_agent_channel(&argv, paths, layout);
    build_display(&argv, spec, paths, layout);
    /* A migration destination: QEMU waits for migrate-incoming to say where
     * the state comes from (its vCPUs stay stopped: -S). */
    if (incoming)
        push_opt(&argv, "-incoming", "%s", "defer");
    *ret_argv = TAKE_PTR(argv);
    return 0;
}
