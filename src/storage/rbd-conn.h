/* rbd-conn.h: one librados connection to an rbd pool's Ceph pool, shared by
 * the rbd-client*.c files (image, base-and-clone and snapshot calls). Each
 * public call opens one and closes it before it returns. */
#pragma once

#include <rados/librados.h>
#include <rbd/librbd.h>
#include <stdbool.h>

#include "storage/rbd-client.h"

/* What every image vireo makes has (clones too). deep-flatten (Ceph's
 * default too): a clone's flatten also frees its snapshots from the parent
 * (rbd-flatten.h); without it they would keep reading the parent. */
#define VO_RBD_FEATURES                                                                   \
    (RBD_FEATURE_LAYERING | RBD_FEATURE_EXCLUSIVE_LOCK | RBD_FEATURE_OBJECT_MAP |          \
     RBD_FEATURE_FAST_DIFF | RBD_FEATURE_DEEP_FLATTEN)

typedef struct {
    rados_t cluster;
    rados_ioctx_t io;
    bool connected;
} VoRbdConn;

/* Connects (bounded by VO_RBD_TIMEOUT_S) and opens the pool's I/O context. */
int vo_rbd_conn_open(const VoRbdConf *conf, VoRbdConn *c, char **ret_error);
void vo_rbd_conn_close(VoRbdConn *c);
/* Connects, runs fn(c, conf, arg, ret_error) and closes: fn's result. */
typedef int (*VoRbdConnFn)(VoRbdConn *c, const VoRbdConf *conf, const void *arg,
                           char **ret_error);
int vo_rbd_with_conn(const VoRbdConf *conf, VoRbdConnFn fn, const void *arg, char **ret_error);
/* Connects and opens image: 1, or 0 (connection closed) when there is no
 * such image (read_only: rbd_open_read_only). */
int vo_rbd_image_open_if(const VoRbdConf *conf, VoRbdConn *c, const char *image,
                         bool read_only, rbd_image_t *ret, char **ret_error);
/* Opens image, runs fn(img, arg) and closes it: fn's result; when that is
 * negative, *ret_error says "cannot WHAT RBD image POOL/IMAGE: why". */
typedef int (*VoRbdImageFn)(rbd_image_t img, const void *arg);
int vo_rbd_with_image(const VoRbdConf *conf, const char *image, VoRbdImageFn fn,
                      const void *arg, const char *what, char **ret_error);
/* Connects and opens image (closed with rbd_close, then vo_rbd_conn_close). */
int vo_rbd_image_open(const VoRbdConf *conf, VoRbdConn *c, const char *image, rbd_image_t *ret,
                      char **ret_error);
/* The names of image's snapshots, however many (rbd_snap_list asks for a
 * larger array when they do not fit): their count, or -errno. */
int vo_rbd_snap_names(rbd_image_t img, char ***ret);
