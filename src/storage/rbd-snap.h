/* rbd-snap.h: RBD snapshots of one image through librbd, for VM snapshots
 * of disks in rbd pools. A snapshot of an image that a running QEMU holds
 * (exclusive-lock) is made by that QEMU's librbd on request (librbd passes
 * it on to the lock's owner). Functions return 0 or -errno with
 * *ret_error naming the image and snapshot. */
#pragma once

#include "storage/rbd-client.h"

/* Snapshots are made on an image opened ahead (connected, open): a running
 * VM's snapshot opens its disks before it pauses the VM, so the pause lasts
 * the snapshots only, not the connects. */
typedef struct VoRbdOpenImage VoRbdOpenImage;
int vo_rbd_open_image(const VoRbdConf *c, const char *image, VoRbdOpenImage **ret,
                      char **ret_error);
int vo_rbd_open_snap_create(VoRbdOpenImage *o, const char *snap, char **ret_error);
/* Removes snapshot snap of o, left by a create that did not finish (a
 * crash, or its document not saved): 1 when there was one, 0 when not. */
int vo_rbd_open_snap_remove_stale(VoRbdOpenImage *o, const char *snap, char **ret_error);
VoRbdOpenImage *vo_rbd_open_image_close(VoRbdOpenImage *o);
/* 1 when image has snapshot snap, 0 when not, -errno when it cannot be read. */
int vo_rbd_snap_exists(const VoRbdConf *c, const char *image, const char *snap,
                       char **ret_error);
/* The image's data back as at snap (no client may have it open). */
int vo_rbd_snap_rollback(const VoRbdConf *c, const char *image, const char *snap,
                         char **ret_error);
/* 0 also when there is no such snapshot. */
int vo_rbd_snap_remove(const VoRbdConf *c, const char *image, const char *snap,
                       char **ret_error);
/* Removes every snapshot of image whose name starts with prefix, but keep
 * (may be NULL); 0 also when the image is gone. */
int vo_rbd_snap_prune(const VoRbdConf *c, const char *image, const char *prefix,
                      const char *keep, char **ret_error);
