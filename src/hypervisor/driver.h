/* driver.h: the one interface vireod uses to run VMs. The QEMU driver is the
 * real one; the fake driver (in memory, deterministic, with injectable faults)
 * serves control-plane tests and scale simulations. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/vm-spec.h"

typedef struct VoHvDriver VoHvDriver;
typedef struct VoHvInstance VoHvInstance; /* a running VM, driver-private */

typedef struct {
    pid_t pid;
    VoAccel accel; /* the accelerator in use */
    bool paused;
} VoHvInfo;

struct VoHvDriver {
    const char *name;
    /* Launches the VM with its vCPUs stopped (so the console can be attached
     * before the first byte); vo continues it with ->resume. */
    /* tap_fds: per NIC, an open tap for a NIC on a vireo network, -1 for a
     * user-mode NIC (NULL: none); the driver hands them to the VM. */
    int (*start)(VoHvDriver *d, const VoVmSpec *spec, const char *run_dir, const int *tap_fds,
                 VoHvInstance **ret, char **ret_error);
    /* Re-attaches to a VM started by an earlier vireod; -ESRCH when it is gone. */
    int (*attach)(VoHvDriver *d, const VoVmSpec *spec, const char *run_dir, VoHvInstance **ret);
    int (*info)(VoHvInstance *vm, VoHvInfo *ret);
    int (*pause)(VoHvInstance *vm);
    int (*resume)(VoHvInstance *vm);
    int (*powerdown)(VoHvInstance *vm); /* ACPI power button */
    int (*reset)(VoHvInstance *vm);
    int (*kill)(VoHvInstance *vm);      /* immediate stop */
    /* Grows the disk in slot (VoDiskSpec.slot) while the VM runs (the guest
     * sees it at once); -EOPNOTSUPP when the driver cannot. */
    int (*resize_disk)(VoHvInstance *vm, unsigned slot, uint64_t size);
    /* Internal snapshots of a running VM, every disk of spec at the same
     * instant: op "save" (with the memory state in the boot disk), "load" or
     * "delete" of tag. */
    int (*snapshot)(VoHvInstance *vm, const char *op, const char *tag, const VoVmSpec *spec,
                    char **ret_error);
    /* An fd that turns readable once the VM is gone (a pidfd for QEMU). */
    int (*exit_fd)(VoHvInstance *vm);
    /* After exit_fd turned readable: was it a clean shutdown, and why did it end. */
    void (*reap)(VoHvInstance *vm, bool *ret_clean, char **ret_reason);
    /* Unix socket of the serial console, or NULL when the driver has none. */
    const char *(*console_socket)(VoHvInstance *vm);
    void (*release)(VoHvInstance *vm);
    bool kvm_usable;
    char *kvm_reason;
};

int vo_qemu_driver_new(VoHvDriver **ret);
int vo_fake_driver_new(VoHvDriver **ret);
