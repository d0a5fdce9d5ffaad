/* rbd-export.h: an RBD image as of one of its snapshots, written into a new
 * qcow2 file (a backup's disk file, docs/backups-api.md): with from_snap NULL
 * every allocated extent (a full copy); with from_snap only the extents that
 * changed since that older snapshot (librbd's rbd_diff_iterate2), over a
 * backing file that holds the image as of from_snap. librbd reads the image;
 * QEMU (qemu-img create, qemu-io) writes the qcow2, so the file is QEMU's own
 * format and restores, verifies and rebases like every other backup file. */
#pragma once

#include <stdint.h>

#include "storage/rbd-client.h"

typedef struct {
    const char *image;     /* in conf's Ceph pool */
    const char *snap;      /* the snapshot exported */
    const char *from_snap; /* NULL: full; else only what changed since it */
    const char *target;    /* the new qcow2 file (its directory exists) */
    const char *backing;   /* with from_snap: target's backing file (as
                            * vo_img_create takes it, relative to target) */
    uint64_t rate;         /* bytes/s read at most; 0: no limit */
    void (*progress)(int percent, void *userdata);
    void *userdata;
} VoRbdExport;

/* Writes e->target (removed again on failure); *ret_size: the image's size
 * at the snapshot, *ret_changed: the bytes of the extents copied (may be
 * NULL). -ECANCELED when the calling thread's work was cancelled
 * (util/cancel.h). */
int vo_rbd_export_qcow2(const VoRbdConf *conf, const VoRbdExport *e, uint64_t *ret_size,
                        uint64_t *ret_changed, char **ret_error);
