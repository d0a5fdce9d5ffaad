/* qemu-caps.h: what the host offers QEMU (is KVM really usable, which binary)
 * and the run-time paths of one VM; the inputs qemu_build_argv needs besides
 * the spec, so that the argv builder itself stays pure. */
#pragma once

#include <stdbool.h>

typedef struct {
    const char *binary;   /* "qemu-system-x86_64" */
    bool kvm_usable;      /* /dev/kvm opens and the CPU has vmx/svm */
    /* The unprivileged user QEMU drops to once it has opened what its
     * command line names (-run-with user=), with its seccomp sandbox on;
     * NULL: QEMU runs as vireod does, unconfined (qemu-confine.h). */
    const char *run_as;
} VoQemuCaps;

typedef struct {
    const char *qmp_socket;
    /* A second QMP monitor that only the daemon's event loop reads (QEMU
     * sends every event to every monitor); NULL: none. */
    const char *events_socket;
    const char *console_socket;
    /* The guest agent's virtio-serial channel (qemu-agent.h); NULL: none. */
    const char *agent_socket;
    /* QEMU's VNC server of a VM with a display; NULL: none even so. */
    const char *vnc_socket;
    /* Beside it, a VNC server that asks for a one-time password; NULL: none. */
    const char *vnc_ticket_socket;
    const char *pidfile;
    /* Per NIC (spec->nics order): the fd number QEMU will have for its tap,
     * or -1 for a user-mode NIC. NULL when the VM has only user-mode NICs. */
    const int *tap_fds;
} VoQemuPaths;

/* KVM is usable only when dev_path opens read-write and cpuinfo_path lists the
 * vmx or svm flag. A paravirtual /dev/kvm (PVM) without those flags runs guests
 * far slower than TCG, so it does not count. *ret_reason (may be NULL) gets a
 * malloc'd explanation when KVM is not usable. */
bool vo_qemu_kvm_usable(const char *dev_path, const char *cpuinfo_path, char **ret_reason);

/* The machine types in the text of `qemu-system-x86_64 -machine help`
 * (the first word of each line after the heading: "pc-q35-10.0", "q35"),
 * as a sorted strv. Pure. */
char **vo_qemu_machines_parse(const char *help_text);
/* Runs `binary -machine help` (bounded) and parses it; an empty strv when
 * it cannot be run. */
char **vo_qemu_machines_probe(const char *binary);

/* The version in the text of `qemu-system-x86_64 --version` (its first
 * line, "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-1)"): "10.0.2",
 * malloc'd, or NULL when the text has none. Pure. */
char *vo_qemu_version_parse(const char *version_text);
/* Runs `binary --version` (bounded) and parses it; NULL when it cannot be
 * run or says no version. */
char *vo_qemu_version_probe(const char *binary);
