/* rbd-flatten.h: a linked clone's RBD image made whole, through librbd
 * (rbd_flatten_with_progress): the parent's data it still reads is copied
 * into it, so it no longer depends on the parent's snapshot. Online: when a
 * client holds the image's exclusive lock (a running VM's QEMU), librbd
 * hands the flatten to that client, which does it while the guest writes
 * on (Ceph's own way: the same as `rbd flatten` of an image in use). Then
 * the parent's snapshot is dealt with as rbd-flatten-plan.h says: a VM
 * clone's own snapshot is unprotected and removed; an image's base stays. */
#pragma once

#include <stdbool.h>

#include "storage/rbd-client.h"

typedef struct {
    char *parent;      /* "IMAGE@SNAP" it was a clone of, or NULL (it had none) */
    bool snap_removed; /* that snapshot was the clone's own and is gone */
    char *snap_kept;   /* why the snapshot stayed, or NULL */
    bool cancel_too_late; /* a cancel came, but the lock's holder flattened it all */
} VoRbdFlattened;

void vo_rbd_flattened_clear(VoRbdFlattened *f);

/* Whether image can be flattened whole: *ret_has_parent says whether it
 * is a clone at all; -EBUSY naming them when it is one with snapshots (a
 * VM's) and without Ceph's deep-flatten feature (made before vireo set it):
 * its snapshots would keep reading the parent, which could never be freed. */
int vo_rbd_flatten_check(const VoRbdConf *c, const char *image, bool *ret_has_parent,
                         char **ret_error);
/* Flattens image (checked as vo_rbd_flatten_check says first) (progress in
 * bytes of its size; may be NULL). An image without a parent is done at
 * once (f->parent NULL). 0 or -errno with *ret_error naming the image.
 * A cancel of the calling thread's work (util/cancel.h) stops a flatten
 * vireod does itself (no VM holds the image): librbd starts no more objects
 * once the progress callback says no, lets those in flight finish and
 * fails the flatten (-ECANCELED); the image stays a clone of its parent,
 * whole where objects were copied up already (which a clone may be). One
 * librbd handed to the lock's holder (a running VM's QEMU) cannot be
 * stopped: librbd ignores what the callback says of a remote flatten's
 * progress (ImageWatcher's AsyncProgressPayload); it runs to the end and
 * f->cancel_too_late says so. handed_over (may be NULL) is called, before
 * the flatten starts, when another client holds the image's exclusive lock
 * (the flatten will be that client's): the caller refuses cancels then. */
int vo_rbd_image_flatten(const VoRbdConf *c, const char *image, VoRbdProgressFn progress,
                         void (*handed_over)(void *userdata), void *userdata,
                         VoRbdFlattened *f, char **ret_error);
