/* migrate-compat.h: may a VM move to a host? The checks made before
 * anything moves (a live migration or a cold move): the target is online,
 * not in maintenance, not fenced and not the source; it runs the same
 * accelerator; its CPU can run the VM's (a VM with CPU model "host" only on
 * an identical host: same model, same flags; a named model: every flag it
 * needs); it has the VM's machine type, OVMF for a UEFI VM (the record's
 * "firmware"), every network of its NICs (of the VM's project or of
 * none), and
 * memory and vCPUs free for it under its overcommit ratios (placement's
 * arithmetic). Every reason is collected, not just the first. Pure: no I/O,
 * no daemon. docs/internals.md, Migration checks. */
#pragma once

#include <jansson.h>

#include "conf/vm-spec.h"

typedef struct {
    /* cluster/hosts/<id> documents (placement.h's host document plus
     * "machines": the QEMU machine types the host has, and "firmware":
     * what its VMs can boot, "bios", "uefi", "uefi-secure-boot"). target NULL: the
     * target has no live record (offline). */
    json_t *source_record;
    json_t *target_record;
    const VoVmSpec *spec;
    /* The driver's layout JSON text of the running VM (its keys "accel",
     * "cpu", "machine" and "cpu_flags" are read when present), or NULL for
     * a stopped VM (then the spec's machine and accelerator count, and the
     * CPU is chosen at its next start). */
    const char *layout;
    /* NULL-terminated names of the networks the target has (NULL: none). */
    const char *const *target_networks;
    /* Parallel to target_networks: the project each belongs to ("" for
     * none), or NULL when not known. A VM uses networks of its own project
     * or of none (docs/projects.md). */
    const char *const *target_network_projects;
} VoMigrateCompat;

/* 0: the VM may go. -EXDEV: it may not; *ret_reasons (malloc'd) = every
 * reason, "; "-joined, each naming what differs. -EINVAL: c is unusable
 * (no spec, a layout that is not a JSON object), *ret_reasons says why. */
int vo_migrate_compat_check(const VoMigrateCompat *c, char **ret_reasons);
