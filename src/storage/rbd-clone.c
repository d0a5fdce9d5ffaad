/* rbd-clone.c: base images and their clones in an rbd pool (see rbd-clone.h). */
#include "storage/rbd-clone.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/rbd-conn.h"
#include "util/util.h"

int vo_rbd_base_ready(const VoRbdConf *conf, const char *image, char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open_if(conf, &c, image, true, &img, ret_error);
    if (r <= 0)
        return r;
    int protected = 0;
    r = rbd_snap_is_protected(img, VO_RBD_BASE_SNAP, &protected);
    rbd_close(img);
    vo_rbd_conn_close(&c);
    if (r == -ENOENT) /* no snapshot */
        r = protected = 0;
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read RBD image %s/%s: %s", conf->pool, image,
                            strerror(-r));
    return protected ? 1 : 0;
}

int vo_rbd_base_seal(const VoRbdConf *conf, const char *image, const char *base,
                     char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open(conf, &c, image, &img, ret_error);
    if (r < 0)
        return r;
    const char *step = "snapshot";
    r = rbd_snap_create(img, VO_RBD_BASE_SNAP);
    if (r >= 0) {
        step = "protect the snapshot of";
        r = rbd_snap_protect(img, VO_RBD_BASE_SNAP);
    }
    rbd_close(img);
    if (r >= 0) {
        step = "rename";
        r = rbd_rename(c.io, image, base);
    }
    vo_rbd_conn_close(&c);
    if (r == -EEXIST && !strcmp(step, "rename"))
        return vo_error_set(ret_error, r, "RBD image %s/%s exists already", conf->pool, base);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot %s RBD image %s/%s: %s", step, conf->pool,
                            image, strerror(-r));
    return 0;
}

int vo_rbd_clone(const VoRbdConf *conf, const char *base, const char *child, uint64_t size,
                 char **ret_error)
{
    VoRbdConn c;
    int r = vo_rbd_conn_open(conf, &c, ret_error);
    if (r < 0)
        return r;
    int order = 0;
    r = rbd_clone(c.io, base, VO_RBD_BASE_SNAP, c.io, child, VO_RBD_FEATURES, &order);
    if (r < 0) {
        vo_rbd_conn_close(&c);
        return vo_error_set(ret_error, r, "cannot clone RBD image %s/%s@%s as %s: %s",
                            conf->pool, base, VO_RBD_BASE_SNAP, child,
                            r == -EEXIST ? "that name exists already" : strerror(-r));
    }
    rbd_image_t img;
    uint64_t now = 0;
    r = rbd_open(c.io, child, &img, NULL);
    if (r >= 0) {
        r = rbd_get_size(img, &now);
        if (r >= 0 && size > now)
            r = rbd_resize(img, size);
        rbd_close(img);
    }
    if (r < 0) {
        (void)rbd_remove(c.io, child);
        r = vo_error_set(ret_error, r, "cannot grow RBD clone %s/%s to %llu bytes: %s",
                         conf->pool, child, (unsigned long long)size, strerror(-r));
    }
    vo_rbd_conn_close(&c);
    return r;
}

/* Caller has img open at the base snapshot: "POOL/NAME, ..." of its clones. */
static char *children_of(rbd_image_t img)
{
    rbd_linked_image_spec_t kids[16];
    size_t n = ELEMENTSOF(kids);
    int r = rbd_list_children3(img, kids, &n);
    if (r < 0)
        return vo_asprintf("(%s)", r == -ERANGE ? "more than 16" : strerror(-r));
    char *list = vo_strdup("");
    for (size_t i = 0; i < n; i++) {
        char *more = vo_asprintf("%s%s%s/%s", list, i ? ", " : "", kids[i].pool_name,
                                 kids[i].image_name);
        free(list);
        list = more;
    }
    rbd_linked_image_spec_list_cleanup(kids, n);
    return list;
}

int vo_rbd_base_remove(const VoRbdConf *conf, const char *base, char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open_if(conf, &c, base, false, &img, ret_error);
    if (r <= 0)
        return r;
    int protected = 0;
    r = rbd_snap_is_protected(img, VO_RBD_BASE_SNAP, &protected);
    if (r == -ENOENT) /* no snapshot: left half-made */
        r = protected = 0;
    if (r >= 0 && protected)
        r = rbd_snap_unprotect(img, VO_RBD_BASE_SNAP);
    if (r == -EBUSY && rbd_snap_set(img, VO_RBD_BASE_SNAP) >= 0) {
        _cleanup_free_ char *kids = children_of(img);
        rbd_close(img);
        vo_rbd_conn_close(&c);
        return vo_error_set(ret_error, -EBUSY, "RBD image %s/%s has clones: %s", conf->pool,
                            base, kids);
    }
    if (r >= 0 && (r = rbd_snap_remove(img, VO_RBD_BASE_SNAP)) == -ENOENT)
        r = 0;
    rbd_close(img);
    if (r >= 0)
        r = rbd_remove(c.io, base);
    vo_rbd_conn_close(&c);
    if (r < 0 && r != -ENOENT)
        return vo_error_set(ret_error, r, "cannot remove RBD image %s/%s: %s", conf->pool, base,
                            strerror(-r));
    return 0;
}

int vo_rbd_list_prefixed(const VoRbdConf *conf, const char *prefix, char ***ret_names,
                         char **ret_error)
{
    VoRbdConn c;
    int r = vo_rbd_conn_open(conf, &c, ret_error);
    if (r < 0)
        return r;
    size_t n = 64;
    rbd_image_spec_t *specs = NULL;
    for (int tries = 0; tries < 4; tries++) {
        free(specs);
        specs = vo_malloc0(sizeof(*specs) * n);
        r = rbd_list2(c.io, specs, &n);
        if (r != -ERANGE)
            break;
    }
    char **names = NULL;
    if (r >= 0) {
        for (size_t i = 0; i < n; i++)
            if (!strncmp(specs[i].name, prefix, strlen(prefix)))
                vo_strv_pushf(&names, "%s", specs[i].name);
        rbd_image_spec_list_cleanup(specs, n);
    }
    free(specs);
    vo_rbd_conn_close(&c);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot list RBD images in Ceph pool '%s': %s",
                            conf->pool, strerror(-r));
    *ret_names = names;
    return 0;
}

char *vo_rbd_image_parent(const VoRbdConf *conf, const char *image)
{
    VoRbdConn c;
    rbd_image_t img;
    _cleanup_free_ char *ignored = NULL;
    if (vo_rbd_conn_open(conf, &c, &ignored) < 0)
        return NULL;
    char *parent = NULL;
    if (rbd_open_read_only(c.io, image, &img, NULL) >= 0) {
        rbd_linked_image_spec_t spec;
        rbd_snap_spec_t snap;
        if (rbd_get_parent(img, &spec, &snap) >= 0) {
            parent = vo_asprintf("%s/%s@%s", spec.pool_name, spec.image_name, snap.name);
            rbd_linked_image_spec_cleanup(&spec);
            rbd_snap_spec_cleanup(&snap);
        }
        rbd_close(img);
    }
    vo_rbd_conn_close(&c);
    return parent;
}
