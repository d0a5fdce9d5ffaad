/* vm-rbd-images.h: the RBD images behind a VM's disks and UEFI NVRAM, for
 * the code that works on them image by image: VM snapshots
 * (snapshot-rbd.c), backups (backup-rbd.c) and the rollback of a restore
 * cut short (vm-rbd-restore-undo.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "conf/vm-spec.h"
#include "daemon/daemon.h"
#include "daemon/storage-rbd.h"

/* One RBD image of a VM: a disk's (spec->disks[i], in their order) or,
 * last, its NVRAM's. */
typedef struct {
    VoRbdPool pool;
    char *image;
    const char *volume; /* "pool/name", the spec's */
    bool nvram;
} VoVmRbdImage;

/* 1 with *ret (*ret_n of them: vo_vm_rbd_images_free) when every disk of
 * spec and its NVRAM is in an rbd pool, 0 when none is, -EINVAL with
 * *ret_error naming a volume when only some are ("needs" says what needs
 * them all alike, e.g. "a VM's snapshot needs all its disks in rbd pools
 * (RBD snapshots) or all qcow2"), -errno when a pool's settings cannot be
 * read. Reads local state only. */
int vo_vm_rbd_images(VoDaemon *d, const VoVmSpec *spec, const char *needs, VoVmRbdImage **ret,
                     size_t *ret_n, char **ret_error);
void vo_vm_rbd_images_free(VoVmRbdImage *images, size_t n);
/* Rolls every image of spec back to its RBD snapshot tag (an NVRAM image
 * without it is left as it is; a disk without it: -ENOENT, nothing rolled
 * back). No RBD image at all: -EINVAL. needs as for vo_vm_rbd_images. */
int vo_vm_rbd_images_rollback(VoDaemon *d, const VoVmSpec *spec, const char *needs,
                              const char *tag, char **ret_error);
/* Removes the RBD snapshot tag of every image of spec (those that have it). */
int vo_vm_rbd_images_snap_remove(VoDaemon *d, const VoVmSpec *spec, const char *needs,
                                 const char *tag, char **ret_error);
