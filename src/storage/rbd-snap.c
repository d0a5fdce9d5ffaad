/* rbd-snap.c: RBD snapshots of one image (see rbd-snap.h). */
#include "storage/rbd-snap.h"

#include <errno.h>
#include <string.h>

#include "storage/rbd-conn.h"
#include "util/util.h"

typedef int (*SnapFn)(rbd_image_t img, const char *snap);

/* Opens image, runs fn on it with snap, closes; verb names it in errors. */
static int with_image(const VoRbdConf *conf, const char *image, const char *snap, SnapFn fn,
                      const char *verb, char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open(conf, &c, image, &img, ret_error);
    if (r < 0)
        return r;
    r = fn(img, snap);
    rbd_close(img);
    vo_rbd_conn_close(&c);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot %s snapshot %s of RBD image %s/%s: %s", verb,
                            snap, conf->pool, image,
                            r == -EEXIST ? "it exists already" : strerror(-r));
    return 0;
}

int vo_rbd_snap_create(const VoRbdConf *c, const char *image, const char *snap,
                       char **ret_error)
{
    return with_image(c, image, snap, rbd_snap_create, "make", ret_error);
}

int vo_rbd_snap_rollback(const VoRbdConf *c, const char *image, const char *snap,
                         char **ret_error)
{
    return with_image(c, image, snap, rbd_snap_rollback, "roll back to", ret_error);
}

static int remove_if_there(rbd_image_t img, const char *snap)
{
    int r = rbd_snap_remove(img, snap);
    return r == -ENOENT ? 0 : r;
}

int vo_rbd_snap_remove(const VoRbdConf *c, const char *image, const char *snap,
                       char **ret_error)
{
    return with_image(c, image, snap, remove_if_there, "remove", ret_error);
}

int vo_rbd_snap_exists(const VoRbdConf *conf, const char *image, const char *snap,
                       char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open(conf, &c, image, &img, ret_error);
    if (r < 0)
        return r;
    bool exists = false;
    r = rbd_snap_exists(img, snap, &exists);
    rbd_close(img);
    vo_rbd_conn_close(&c);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot list the snapshots of RBD image %s/%s: %s",
                            conf->pool, image, strerror(-r));
    return exists ? 1 : 0;
}
