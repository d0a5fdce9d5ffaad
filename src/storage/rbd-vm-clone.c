/* rbd-vm-clone.c: a VM clone's disks inside the Ceph pool (rbd-vm-clone.h). */
#include "storage/rbd-vm-clone.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/rbd-conn.h"
#include "util/util.h"

int vo_rbd_image_copy(const VoRbdConf *conf, const char *src, const char *dst, char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open_if(conf, &c, src, true, &img, ret_error);
    if (r == 0)
        return vo_error_set(ret_error, -ENOENT, "RBD image %s/%s does not exist", conf->pool,
                            src);
    if (r < 0)
        return r;
    /* Copied under another name, renamed once whole: a vireod that dies
     * midway leaves that one (no volume's: '.' is not allowed in volume
     * names), which the next copy to dst removes, never dst itself. */
    _cleanup_free_ char *part = vo_asprintf("%s" VO_RBD_COPY_SUFFIX, dst);
    (void)rbd_remove(c.io, part);
    rbd_image_options_t opts;
    rbd_image_options_create(&opts);
    (void)rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FEATURES, VO_RBD_FEATURES);
    r = rbd_copy3(img, c.io, part, opts);
    rbd_image_options_destroy(opts);
    rbd_close(img);
    if (r >= 0)
        r = rbd_rename(c.io, part, dst);
    if (r < 0) {
        (void)rbd_remove(c.io, part); /* a half copy */
        r = vo_error_set(ret_error, r, "cannot copy RBD image %s/%s to %s: %s", conf->pool, src,
                         dst, r == -EEXIST ? "that name exists already" : strerror(-r));
    }
    vo_rbd_conn_close(&c);
    return r;
}

/* A snapshot snap of img left by a linked clone a crash cut short (made,
 * its clone not; or its clone removed, it not): stale, it goes. One with a
 * clone (dst exists) cannot be unprotected and stays: the create then says
 * the name exists. */
static void drop_leftover(rbd_image_t img, const char *snap)
{
    bool exists = false;
    if (rbd_snap_exists(img, snap, &exists) < 0 || !exists)
        return;
    int r = rbd_snap_unprotect(img, snap);
    if (r >= 0 || r == -EINVAL) /* -EINVAL: not protected */
        (void)rbd_snap_remove(img, snap);
}

int vo_rbd_image_clone_linked(const VoRbdConf *conf, const char *src, const char *dst,
                              char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open(conf, &c, src, &img, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *snap = vo_asprintf(VO_RBD_CLONE_SNAP_PREFIX "%s", dst);
    drop_leftover(img, snap);
    const char *step = "snapshot";
    bool made = (r = rbd_snap_create(img, snap)) >= 0;
    if (r >= 0) {
        step = "protect the snapshot of";
        r = rbd_snap_protect(img, snap);
    }
    if (r >= 0) {
        step = "clone";
        int order = 0;
        r = rbd_clone(c.io, src, snap, c.io, dst, VO_RBD_FEATURES, &order);
    }
    if (r < 0 && made) { /* nothing stays of a clone that failed */
        (void)rbd_snap_unprotect(img, snap);
        (void)rbd_snap_remove(img, snap);
    }
    rbd_close(img);
    vo_rbd_conn_close(&c);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot %s RBD image %s/%s (for %s): %s", step,
                            conf->pool, src, dst,
                            r == -EEXIST ? "that name exists already" : strerror(-r));
    return 0;
}

char *vo_rbd_clone_snap_of(void *io, const char *image)
{
    rbd_image_t img;
    if (rbd_open_read_only((rados_ioctx_t)io, image, &img, NULL) < 0)
        return NULL;
    rbd_linked_image_spec_t parent = { 0 };
    rbd_snap_spec_t snap = { 0 };
    char *spec = NULL;
    if (rbd_get_parent(img, &parent, &snap) >= 0) {
        if (snap.name && !strncmp(snap.name, VO_RBD_CLONE_SNAP_PREFIX,
                                  strlen(VO_RBD_CLONE_SNAP_PREFIX)))
            spec = vo_asprintf("%s@%s", parent.image_name, snap.name);
        rbd_linked_image_spec_cleanup(&parent);
        rbd_snap_spec_cleanup(&snap);
    }
    rbd_close(img);
    return spec;
}

void vo_rbd_clone_snap_drop(void *io, const char *spec)
{
    const char *at = strchr(spec, '@');
    _cleanup_free_ char *image = vo_asprintf("%.*s", (int)(at - spec), spec);
    rbd_image_t img;
    int r = rbd_open((rados_ioctx_t)io, image, &img, NULL);
    if (r >= 0) {
        r = rbd_snap_unprotect(img, at + 1);
        if (r >= 0 || r == -EINVAL) /* -EINVAL: not protected */
            r = rbd_snap_remove(img, at + 1);
        rbd_close(img);
    }
    if (r < 0 && r != -ENOENT)
        log_warn("rbd: kept snapshot %s of a linked clone removed: %s", spec, strerror(-r));
}
