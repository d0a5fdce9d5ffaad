/* rbd-client.h: what vireod asks of a Ceph cluster for an rbd pool, through
 * librados and librbd: connect (bounded by a timeout), check the pool, make,
 * remove, resize and measure RBD images (thin), and the cluster's and pool's
 * usage. Each call opens its own connection and closes it. Functions return
 * 0 or -errno with *ret_error naming the cluster, pool or image. */
#pragma once

#include <stdint.h>

typedef struct {
    const char *monitors; /* "IP[:PORT][,...]" */
    const char *pool;     /* the Ceph pool */
    const char *user;     /* cephx id, without "client." */
    const char *key;      /* its cephx key (base64) */
} VoRbdConf;

/* Progress of a long image operation (a copy, a flatten): bytes done of total. */
typedef void (*VoRbdProgressFn)(uint64_t done, uint64_t total, void *userdata);

/* Seconds a connect, a monitor command or an OSD operation may take. */
#define VO_RBD_TIMEOUT_S 10

/* Connects and checks that the pool exists and can be listed. */
int vo_rbd_check(const VoRbdConf *c, char **ret_error);
int vo_rbd_image_create(const VoRbdConf *c, const char *image, uint64_t size, char **ret_error);
int vo_rbd_image_remove(const VoRbdConf *c, const char *image, char **ret_error);
int vo_rbd_image_resize(const VoRbdConf *c, const char *image, uint64_t size,
                        char **ret_error);
/* The mark vireo writes on an image it made for a volume (image metadata
 * VO_RBD_MARK_KEY = "POOL/NAME", the volume's key), so that a sweep after a
 * crash removes only an image vireo made for that volume, never one that
 * was in the way (another client's). */
#define VO_RBD_MARK_KEY "vireo.volume"
int vo_rbd_image_mark(const VoRbdConf *c, const char *image, const char *volume,
                      char **ret_error);
/* 1 when image carries volume's mark, 0 when not (or there is no image). */
int vo_rbd_image_marked(const VoRbdConf *c, const char *image, const char *volume,
                        char **ret_error);
/* Virtual size and bytes allocated (objects written) of an image. */
int vo_rbd_image_usage(const VoRbdConf *c, const char *image, uint64_t *ret_size,
                       uint64_t *ret_used, char **ret_error);
/* The cluster's raw capacity and free bytes, and the bytes the pool holds. */
int vo_rbd_pool_usage(const VoRbdConf *c, uint64_t *ret_capacity, uint64_t *ret_available,
                      uint64_t *ret_used, char **ret_error);
