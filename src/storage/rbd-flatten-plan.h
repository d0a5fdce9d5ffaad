/* rbd-flatten-plan.h: what `vireo volume flatten` decides before and after
 * librbd's flatten (daemon/storage-flatten.c does the work): which volumes
 * may be flattened, what becomes of the parent's snapshot once its clone no
 * longer needs it, and librbd's progress in bytes. Pure functions: no Ceph
 * and no store needed to test them. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* What is known of a volume when its flatten is asked. */
typedef struct {
    const char *key;       /* "POOL/NAME" */
    const char *pool_type; /* "dir", "rbd", "iscsi", ... */
    const char *content;   /* "iso", or NULL for a disk */
    const char *backing;   /* the volume it is a linked clone of (vm clone --linked), or NULL */
    const char *image;     /* the vireo image whose base it clones, or NULL */
    bool has_parent;       /* Ceph says the RBD image has a parent (rbd pools only) */
} VoFlattenVolume;

/* 0 when v can be flattened: an rbd pool's volume that is a linked clone
 * (vireo's record or Ceph says so: one flattened by hand with `rbd flatten`
 * only has its record cleared). Otherwise -EINVAL with *ret_error naming
 * the volume and saying what to do instead. */
int vo_flatten_check(const VoFlattenVolume *v, char **ret_error);

typedef enum {
    VO_FLATTEN_SNAP_DROP,      /* a VM clone's own snapshot (vireo.clone.NAME): removed */
    VO_FLATTEN_SNAP_KEEP_BASE, /* an image's base (vireo.image.IMAGE@base): kept for the
                                * image's other and later VMs; goes with the image */
    VO_FLATTEN_SNAP_KEEP,      /* anything else (made outside vireo): never touched */
} VoFlattenSnap;

/* What becomes of snapshot parent_image@snap once the clone made of it is
 * flattened (clone_name: the clone's image). A VM clone's snapshot is named
 * for its clone, so no other clone of vireo's reads it. */
VoFlattenSnap vo_flatten_parent_snap(const char *parent_image, const char *snap,
                                     const char *clone_name);
/* librbd reports a flatten's progress in objects (done of total): the bytes
 * of an image of size that this is (never more than size). */
uint64_t vo_rbd_progress_bytes(uint64_t done, uint64_t total, uint64_t size);
