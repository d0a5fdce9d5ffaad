/* rbd-flatten.c: a linked clone's RBD image made whole (rbd-flatten.h). */
#include "storage/rbd-flatten.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/rbd-conn.h"
#include "storage/rbd-flatten-plan.h"
#include "util/cancel.h"
#include "util/test-hold.h"
#include "util/util.h"

void vo_rbd_flattened_clear(VoRbdFlattened *f)
{
    free(f->parent);
    free(f->snap_kept);
    *f = (VoRbdFlattened){ 0 };
}

typedef struct {
    uint64_t size;
    VoRbdProgressFn fn;
    void *userdata;
    const VoCancel *cancel; /* the caller's: librbd calls back on threads of its own */
} Progress;

/* librbd's progress (objects done of total) as bytes of the image's size;
 * -ECANCELED once the caller's work is cancelled (librbd starts no more). */
static int on_progress(uint64_t done, uint64_t total, void *ptr)
{
    Progress *p = ptr;
    if (p->fn)
        p->fn(vo_rbd_progress_bytes(done, total, p->size), p->size, p->userdata);
    vo_test_hold("rbd_flatten_progress"); /* tests cancel or migrate midway */
    return vo_cancel_is_requested(p->cancel) ? -ECANCELED : 0;
}

/* Whether another client (a running VM's QEMU) holds img's exclusive
 * lock: librbd then hands the flatten to it. */
static bool lock_held_elsewhere(rbd_image_t img)
{
    char *owners[4];
    size_t n = sizeof(owners) / sizeof(owners[0]);
    rbd_lock_mode_t mode;
    int r = rbd_lock_get_owners(img, &mode, owners, &n);
    if (r >= 0)
        rbd_lock_get_owners_cleanup(owners, n);
    return (r >= 0 && n > 0) || r == -ERANGE; /* -ERANGE: more than four */
}

/* The clone's own snapshot snap of parent goes: nobody else reads it. */
static void drop_snap(rados_ioctx_t io, const char *parent, const char *snap,
                      VoRbdFlattened *f)
{
    rbd_image_t img;
    int r = rbd_open(io, parent, &img, NULL);
    if (r >= 0) {
        r = rbd_snap_unprotect(img, snap);
        if (r >= 0 || r == -EINVAL) /* -EINVAL: not protected */
            r = rbd_snap_remove(img, snap);
        rbd_close(img);
    }
    if (r >= 0 || r == -ENOENT)
        f->snap_removed = true;
    else /* -EBUSY: a clone made of it by hand */
        f->snap_kept = vo_asprintf("cannot remove it: %s", strerror(-r));
}

/* vo_rbd_flatten_check on an open image. */
static int check_open(rbd_image_t img, const VoRbdConf *conf, const char *image,
                      char **ret_error)
{
    uint64_t features = 0;
    int r = rbd_get_features(img, &features);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read RBD image %s/%s: %s", conf->pool, image,
                            strerror(-r));
    if (features & RBD_FEATURE_DEEP_FLATTEN)
        return 0;
    _cleanup_strv_ char **names = NULL;
    int n = vo_rbd_snap_names(img, &names);
    if (n < 0)
        return vo_error_set(ret_error, n, "cannot list the snapshots of RBD image %s/%s: %s",
                            conf->pool, image, strerror(-n));
    if (n == 0)
        return 0;
    _cleanup_free_ char *list = vo_strv_join(names, ", ");
    return vo_error_set(ret_error, -EBUSY, "RBD image %s/%s has %d snapshot(s) (%s) and was "
                        "made without Ceph's deep-flatten feature (vireo sets it on images it "
                        "makes since): a flatten would leave them reading the parent, which "
                        "could never be freed; delete its VM's snapshots first (vireo snapshot "
                        "delete VM NAME), then flatten", conf->pool, image, n, list);
}

int vo_rbd_flatten_check(const VoRbdConf *conf, const char *image, bool *ret_has_parent,
                         char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    *ret_has_parent = false;
    int r = vo_rbd_image_open_if(conf, &c, image, true, &img, ret_error);
    if (r <= 0)
        return r; /* no image: the plan says no clone */
    rbd_linked_image_spec_t parent = { 0 };
    rbd_snap_spec_t snap = { 0 };
    if ((r = rbd_get_parent(img, &parent, &snap)) >= 0) {
        *ret_has_parent = true;
        rbd_linked_image_spec_cleanup(&parent);
        rbd_snap_spec_cleanup(&snap);
        r = check_open(img, conf, image, ret_error);
    } else if (r == -ENOENT)
        r = 0;
    else
        r = vo_error_set(ret_error, r, "cannot read the parent of RBD image %s/%s: %s",
                         conf->pool, image, strerror(-r));
    rbd_close(img);
    vo_rbd_conn_close(&c);
    return r;
}

int vo_rbd_image_flatten(const VoRbdConf *conf, const char *image, VoRbdProgressFn progress,
                         void (*handed_over)(void *userdata), void *userdata,
                         VoRbdFlattened *f, char **ret_error)
{
    *f = (VoRbdFlattened){ 0 };
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open(conf, &c, image, &img, ret_error);
    if (r < 0)
        return r;
    rbd_linked_image_spec_t parent = { 0 };
    rbd_snap_spec_t snap = { 0 };
    bool has_parent = (r = rbd_get_parent(img, &parent, &snap)) >= 0;
    Progress p = { .fn = progress, .userdata = userdata, .cancel = vo_cancel_current() };
    _cleanup_free_ char *refused = NULL;
    if (!has_parent && r == -ENOENT) /* no parent: whole already */
        r = 0;
    else if (has_parent && (r = check_open(img, conf, image, &refused)) >= 0 &&
             (r = rbd_get_size(img, &p.size)) >= 0) {
        if (handed_over && lock_held_elsewhere(img))
            handed_over(userdata);
        if ((r = rbd_flatten_with_progress(img, on_progress, &p)) >= 0 && progress)
            progress(p.size, p.size, userdata); /* librbd's last report: the last object begun */
    }
    rbd_close(img);
    if (r >= 0 && has_parent && vo_cancel_is_requested(p.cancel))
        f->cancel_too_late = true;
    if (r >= 0 && has_parent) {
        f->parent = vo_asprintf("%s@%s", parent.image_name, snap.name);
        bool same_pool = parent.pool_name && !strcmp(parent.pool_name, conf->pool);
        switch (vo_flatten_parent_snap(parent.image_name, snap.name, image)) {
        case VO_FLATTEN_SNAP_DROP:
            if (same_pool)
                drop_snap(c.io, parent.image_name, snap.name, f);
            else
                f->snap_kept = vo_strdup("in another Ceph pool");
            break;
        case VO_FLATTEN_SNAP_KEEP_BASE:
            f->snap_kept = vo_strdup("the image's base: kept for the image's other VMs, "
                                     "removed with the image");
            break;
        case VO_FLATTEN_SNAP_KEEP:
            f->snap_kept = vo_strdup("not made by vireo for this clone");
            break;
        }
    }
    if (has_parent) {
        rbd_linked_image_spec_cleanup(&parent);
        rbd_snap_spec_cleanup(&snap);
    }
    vo_rbd_conn_close(&c);
    if (refused) /* check_open said why */
        *ret_error = TAKE_PTR(refused);
    else if (r == -ECANCELED)
        return vo_error_set(ret_error, r, "the flatten of RBD image %s/%s was cancelled: it "
                            "stays a clone (the objects copied so far stay copied)",
                            conf->pool, image);
    else if (r < 0)
        return vo_error_set(ret_error, r, "cannot flatten RBD image %s/%s: %s", conf->pool,
                            image, strerror(-r));
    return r < 0 ? r : 0;
}
