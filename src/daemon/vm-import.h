/* vm-import.h: a VM from an OVA (OVF descriptor plus disks) or from a
 * libvirt domain XML: checked at once (the descriptor parsed, names, pool,
 * networks), then a task converts the disks into volumes and defines the
 * VM, stopped; a failure leaves no volume and no VM. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"

typedef struct {
    const char *source;       /* "ova" | "libvirt" */
    const char *path;         /* the OVA or domain XML on this host (absolute) */
    const char *name;         /* NULL: the descriptor's */
    const char *pool;         /* NULL: "default" */
    const char *network;      /* every NIC on it; NULL: by the source's names */
    const char *kernel_image; /* direct boot with this image's kernel, initrd, cmdline */
    const char *ca;           /* an OVA's signer is checked against this CA bundle (PEM,
                               * absolute path on the host); NULL: the system's store */
} VoVmImportArgs;

/* 0 with *ret_task and *ret_plan ({"name", "vcpus", "memory_mib",
 * "firmware", "disks", "nics", "warnings", and "cdrom" when the VM gets a
 * drive: {"source", "pool"} of the ISO imported into it, {} when empty;
 * "signed_by": the signer's subject of a signed OVA}),
 * or -errno with *ret_error. */
int vo_vm_import(VoDaemon *d, const VoVmImportArgs *args, json_t **ret_task, json_t **ret_plan,
                 char **ret_error);
