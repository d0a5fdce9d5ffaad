/* qemu-argv.c: VM spec -> QEMU argv, one small builder per part of the command
 * line, called in argv order by vo_qemu_build_argv. Devices are written as
 * JSON (-blockdev/-device '{...}') so the same properties can serve QMP
 * hot-plug later. */
#include "qemu/qemu-argv.h"

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

static void build_machine(char ***argv, const VoVmSpec *spec, VoAccel accel)
{
    push_opt(argv, "-name", "guest=%s,debug-threads=on", spec->name);
    push_opt(argv, "-uuid", "%s", spec->id);
    push_opt(argv, "-machine", "%s", spec->machine);
    push_opt(argv, "-accel", "%s", accel == VO_ACCEL_KVM ? "kvm" : "tcg");
    if (accel == VO_ACCEL_KVM) {
        push_opt(argv, "-cpu", "host");
    }
    push_opt(argv, "-m", "%llu", (unsigned long long)spec->memory_mib);
    push_opt(argv, "-smp", "%u", spec->vcpus);
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

/* QMP first, so the monitor exists before anything else can fail late. */
static void build_monitor_and_console(char ***argv, const VoQemuPaths *paths)
{
    push_opt(argv, "-chardev", "socket,id=charmonitor,path=%s,server=on,wait=off", paths->qmp_socket);
    push_opt(argv, "-mon", "chardev=charmonitor,id=monitor,mode=control");
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

static void build_disks(char ***argv, const VoVmSpec *spec)
{
    for (size_t i = 0; i < spec->n_disks; i++) {
        const VoDiskSpec *d = &spec->disks[i];
        char file_node[32], fmt_node[32], dev_id[32];
        snprintf(file_node, sizeof(file_node), "file-disk%u", d->slot);
        vo_qemu_disk_node(d->slot, fmt_node);
        snprintf(dev_id, sizeof(dev_id), "virtio-disk%u", d->slot);
        /* QEMU's image locking stays on, so two VMs can never open one writable
         * volume; only a volume marked shareable turns it off. */
        json_t *file = json_pack("{s:s, s:s, s:s, s:b, s:s}", "driver", "file", "filename",
                                 d->path, "node-name", file_node, "read-only", d->readonly,
                                 "discard", "unmap");
        if (d->shareable)
            json_object_set_new(file, "locking", json_string("off"));
        push_json(argv, "-blockdev", file);
        push_json(argv, "-blockdev",
                  json_pack("{s:s, s:s, s:s, s:b, s:s}", "driver",
                            vo_disk_format_to_string(d->format), "node-name", fmt_node, "file",
                            file_node, "read-only", d->readonly, "discard", "unmap"));
        json_t *dev = json_pack("{s:s, s:s, s:s}", "driver", "virtio-blk-pci", "id", dev_id,
                                "drive", fmt_node);
        /* Firmware boot tries the disks in order; direct kernel boot needs no bootindex. */
        if (!spec->kernel)
            json_object_set_new(dev, "bootindex", json_integer((json_int_t)i + 1));
        push_json(argv, "-device", dev);
    }
}

/* A NIC on a vireo network is a tap vireod opened and hands over as an fd
 * (vhost-net off: the host may lack it); "user" is QEMU's own NAT. */
static int build_nics(char ***argv, const VoVmSpec *spec, const VoQemuPaths *paths,
                      char **ret_error)
{
    for (size_t i = 0; i < spec->n_nics; i++) {
        const VoNicSpec *n = &spec->nics[i];
        char netdev_id[32], dev_id[32];
        snprintf(netdev_id, sizeof(netdev_id), "hostnet%u", n->slot);
        snprintf(dev_id, sizeof(dev_id), "net%u", n->slot);
        if (!strcmp(n->network, "user"))
            push_opt(argv, "-netdev", "user,id=%s", netdev_id);
        else if (paths->tap_fds && paths->tap_fds[i] >= 0)
            push_opt(argv, "-netdev", "tap,id=%s,fd=%d,vhost=off", netdev_id, paths->tap_fds[i]);
        else {
            if (ret_error)
                *ret_error = vo_asprintf("nics[%zu]: network '%s' needs a tap and none was given",
                                         i, n->network);
            return -EINVAL;
        }
        push_json(argv, "-device",
                  json_pack("{s:s, s:s, s:s, s:s}", "driver", "virtio-net-pci", "id", dev_id,
                            "netdev", netdev_id, "mac", n->mac));
    }
    return 0;
}

int vo_qemu_build_argv(const VoVmSpec *spec, const VoQemuCaps *caps, const VoQemuPaths *paths,
                       char ***ret_argv, char **ret_error)
{
    VoAccel accel;
    int r = vo_qemu_resolve_accel(spec, caps, &accel, ret_error);
    if (r < 0)
        return r;
    if (spec->n_disks == 0 && !spec->kernel) {
        if (ret_error)
            *ret_error = vo_strdup("nothing to boot: give the VM a disk or a kernel");
        return -EINVAL;
    }

    _cleanup_strv_ char **argv = NULL;
    vo_strv_push(&argv, vo_strdup(caps->binary));
    build_machine(&argv, spec, accel);
    build_defaults(&argv);
    build_monitor_and_console(&argv, paths);
    build_boot(&argv, spec);
    build_disks(&argv, spec);
    r = build_nics(&argv, spec, paths, ret_error);
    if (r < 0)
        return r;
    *ret_argv = TAKE_PTR(argv);
    return 0;
}
