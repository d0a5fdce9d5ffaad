/* rbd-clone.h: linked clones in an rbd pool, through librbd. A vireo image's
 * disk is imported once into the Ceph pool as a base RBD image with one
 * protected snapshot (VO_RBD_BASE_SNAP); each VM disk made from the image is
 * an RBD clone of that snapshot (copy-on-write: it holds only its changes).
 * Functions return 0 or -errno with *ret_error naming the image. */
#pragma once

#include <stdint.h>

#include "storage/rbd-client.h"

#define VO_RBD_BASE_SNAP "base"
/* Base images are named PREFIX + the vireo image's name: '.' is not allowed
 * in volume names, so a base never takes a volume's name. */
#define VO_RBD_BASE_PREFIX "vireo.image."

/* 1 when image exists with a protected snapshot VO_RBD_BASE_SNAP (a base
 * ready to clone), 0 when not (missing, or left half-made). */
int vo_rbd_base_ready(const VoRbdConf *c, const char *image, char **ret_error);
/* Snapshots image (filled) as VO_RBD_BASE_SNAP, protects the snapshot and
 * renames the image to base: -EEXIST when base exists already (another
 * maker won; the caller removes image). */
int vo_rbd_base_seal(const VoRbdConf *c, const char *image, const char *base,
                     char **ret_error);
/* A clone `child` of base@VO_RBD_BASE_SNAP, grown to size when that is larger. */
int vo_rbd_clone(const VoRbdConf *c, const char *base, const char *child, uint64_t size,
                 char **ret_error);
/* Removes base (its snapshot unprotected and removed, then the image); 0
 * when it does not exist; -EBUSY, naming them, while clones of it exist. */
int vo_rbd_base_remove(const VoRbdConf *c, const char *base, char **ret_error);
/* The names of the pool's images that start with prefix (a NULL-ended strv). */
int vo_rbd_list_prefixed(const VoRbdConf *c, const char *prefix, char ***ret_names,
                         char **ret_error);
/* "POOL/IMAGE@SNAP" of the image a clone was made from; NULL when image is no clone. */
char *vo_rbd_image_parent(const VoRbdConf *c, const char *image);
