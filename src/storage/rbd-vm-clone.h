/* rbd-vm-clone.h: a VM clone's disks in an rbd pool (vm clone), through
 * librbd, inside the Ceph pool: a full copy of an image (rbd_copy), or a
 * linked clone: a snapshot of the source image (VO_RBD_CLONE_SNAP_PREFIX +
 * the clone's name), protected, and an RBD clone of it; the source image
 * stays writable (its running VM writes past the snapshot). The snapshot
 * goes when its clone's image is removed (vo_rbd_clone_snap_drop).
 * Functions return 0 or -errno with *ret_error naming the images. */
#pragma once

#include "storage/rbd-client.h"

/* '.' is not allowed in vireo's snapshot names: never a VM snapshot's. */
#define VO_RBD_CLONE_SNAP_PREFIX "vireo.clone."

/* A full copy is made as dst + this, then renamed dst. */
#define VO_RBD_COPY_SUFFIX ".copy"

/* A new image dst holding what src holds now (src read, not changed; the
 * data only: no parent, snapshots or metadata), object by object (8 in flight) with
 * progress (bytes of src's size; may be NULL); a copy to dst a crash cut
 * short (dst + VO_RBD_COPY_SUFFIX) is removed first. A cancel of the
 * calling thread's work (util/cancel.h) stops it: -ECANCELED, and the
 * partial copy is removed, as after any failure. */
int vo_rbd_image_copy(const VoRbdConf *c, const char *src, const char *dst,
                      VoRbdProgressFn progress, void *userdata, char **ret_error);
/* After a crash: removes the partial copy to dst (dst + VO_RBD_COPY_SUFFIX)
 * a copy cut short left. 1 when removed, 0 when there was none, -errno
 * (*ret_error) when Ceph refuses (-EBUSY: still open by a client). */
int vo_rbd_image_copy_part_remove(const VoRbdConf *c, const char *dst, char **ret_error);
/* A new image dst, an RBD clone of src@VO_RBD_CLONE_SNAP_PREFIX+dst (that
 * snapshot made and protected first, one of that name a crash left without
 * a clone replaced; removed again when the clone fails). */
int vo_rbd_image_clone_linked(const VoRbdConf *c, const char *src, const char *dst,
                              char **ret_error);
/* Caller is about to remove image (open in io): the "IMAGE@SNAP" of the
 * clone snapshot it was made from, or NULL (no parent, or another's). */
char *vo_rbd_clone_snap_of(void *io, const char *image);
/* Unprotects and removes parent snapshot spec ("IMAGE@SNAP", from
 * vo_rbd_clone_snap_of) once its clone is gone; failures are logged. */
void vo_rbd_clone_snap_drop(void *io, const char *spec);
