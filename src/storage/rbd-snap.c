/* rbd-snap.c: RBD snapshots of one image (see rbd-snap.h). */
#include "storage/rbd-snap.h"

#include <errno.h>
#include <string.h>

#include "storage/rbd-conn.h"
#include "util/util.h"

/* Runs fn(img, snap) on image; verb names it in errors. */
static int with_image(const VoRbdConf *conf, const char *image, const char *snap,
                      VoRbdImageFn fn, const char *verb, char **ret_error)
{
    _cleanup_free_ char *what = vo_asprintf("%s snapshot %s of", verb, snap);
    return vo_rbd_with_image(conf, image, fn, snap, what, ret_error);
}

static int snap_rollback(rbd_image_t img, const void *snap)
{
    return rbd_snap_rollback(img, snap);
}

static int snap_exists(rbd_image_t img, const void *snap)
{
    bool exists = false;
    int r = rbd_snap_exists(img, snap, &exists);
    return r < 0 ? r : exists;
}

int vo_rbd_snap_rollback(const VoRbdConf *c, const char *image, const char *snap,
                         char **ret_error)
{
    return with_image(c, image, snap, snap_rollback, "roll back to", ret_error);
}

static int remove_if_there(rbd_image_t img, const void *snap)
{
    int r = rbd_snap_remove(img, snap);
    return r == -ENOENT ? 0 : r;
}

int vo_rbd_snap_remove(const VoRbdConf *c, const char *image, const char *snap,
                       char **ret_error)
{
    return with_image(c, image, snap, remove_if_there, "remove", ret_error);
}

int vo_rbd_snap_exists(const VoRbdConf *c, const char *image, const char *snap,
                       char **ret_error)
{
    return with_image(c, image, snap, snap_exists, "look for", ret_error);
}

typedef struct {
    const char *image, *prefix, *keep;
} Prune;

static int prune(rbd_image_t img, const void *arg)
{
    const Prune *p = arg;
    _cleanup_strv_ char **names = NULL;
    int n = vo_rbd_snap_names(img, &names), r = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i];
        if (strncmp(name, p->prefix, strlen(p->prefix)) || (p->keep && !strcmp(name, p->keep)))
            continue;
        int k = rbd_snap_remove(img, name);
        if (k < 0 && k != -ENOENT)
            r = k;
        else
            log_debug("rbd: removed snapshot %s@%s", p->image, name);
    }
    return n < 0 ? n : r;
}

int vo_rbd_snap_prune(const VoRbdConf *c, const char *image, const char *prefix,
                      const char *keep, char **ret_error)
{
    Prune p = { image, prefix, keep };
    _cleanup_free_ char *what = vo_asprintf("remove the %s* snapshots of", prefix);
    int r = vo_rbd_with_image(c, image, prune, &p, what, ret_error);
    return r == -ENOENT ? 0 : r;
}

struct VoRbdOpenImage {
    VoRbdConn conn;
    rbd_image_t img;
    char *pool, *image;
};

int vo_rbd_open_image(const VoRbdConf *c, const char *image, VoRbdOpenImage **ret,
                      char **ret_error)
{
    VoRbdOpenImage *o = vo_malloc0(sizeof(*o));
    int r = vo_rbd_image_open(c, &o->conn, image, &o->img, ret_error);
    if (r < 0) {
        free(o);
        return r;
    }
    o->pool = vo_strdup(c->pool);
    o->image = vo_strdup(image);
    *ret = o;
    return 0;
}

int vo_rbd_open_snap_create(VoRbdOpenImage *o, const char *snap, char **ret_error)
{
    int r = rbd_snap_create(o->img, snap);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot make snapshot %s of RBD image %s/%s: %s", snap,
                            o->pool, o->image, r == -EEXIST ? "it exists already" : strerror(-r));
    return 0;
}

int vo_rbd_open_snap_remove_stale(VoRbdOpenImage *o, const char *snap, char **ret_error)
{
    int r = rbd_snap_remove(o->img, snap);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot remove leftover snapshot %s of RBD image "
                            "%s/%s: %s", snap, o->pool, o->image, strerror(-r));
    return 1;
}

VoRbdOpenImage *vo_rbd_open_image_close(VoRbdOpenImage *o)
{
    if (o) {
        rbd_close(o->img);
        vo_rbd_conn_close(&o->conn);
        free(o->pool);
        free(o->image);
        free(o);
    }
    return NULL;
}
