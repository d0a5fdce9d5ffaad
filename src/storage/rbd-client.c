/* rbd-client.c: librados/librbd calls for rbd pools (see rbd-client.h). */
#include "storage/rbd-client.h"
#include "storage/rbd-conn.h"
#include "storage/rbd-vm-clone.h"

#include <errno.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void vo_rbd_conn_close(VoRbdConn *c)
{
    if (c->io)
        rados_ioctx_destroy(c->io);
    if (c->cluster)
        rados_shutdown(c->cluster);
    *c = (VoRbdConn){ 0 };
}

int vo_rbd_conn_open(const VoRbdConf *conf, VoRbdConn *c, char **ret_error)
{
    *c = (VoRbdConn){ 0 };
    int r = rados_create(&c->cluster, conf->user);
    if (r < 0) {
        c->cluster = NULL;
        return vo_error_set(ret_error, r, "cannot set up a Ceph client: %s", strerror(-r));
    }
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", VO_RBD_TIMEOUT_S);
    /* No ceph.conf, no keyring file read: only what the pool records. */
    const char *opts[][2] = {
        { "mon_host", conf->monitors },     { "key", conf->key },
        { "client_mount_timeout", timeout }, { "rados_mon_op_timeout", timeout },
        { "rados_osd_op_timeout", timeout }, { "log_to_stderr", "false" },
        { "err_to_stderr", "false" },        { "log_file", "" },
        { "admin_socket", "" },
    };
    for (size_t i = 0; i < ELEMENTSOF(opts); i++)
        if ((r = rados_conf_set(c->cluster, opts[i][0], opts[i][1])) < 0) {
            vo_rbd_conn_close(c);
            return vo_error_set(ret_error, r, "cannot set up a Ceph client (%s): %s", opts[i][0],
                                strerror(-r));
        }
    r = rados_connect(c->cluster);
    if (r < 0) {
        vo_rbd_conn_close(c);
        if (r == -EACCES || r == -EPERM)
            return vo_error_set(ret_error, -EACCES, "Ceph at %s refused user client.%s: check "
                                "--user and --keyring", conf->monitors, conf->user);
        return vo_error_set(ret_error, r, "cannot reach Ceph monitors %s within %d s: %s",
                            conf->monitors, VO_RBD_TIMEOUT_S, strerror(-r));
    }
    c->connected = true;
    r = rados_ioctx_create(c->cluster, conf->pool, &c->io);
    if (r < 0) {
        c->io = NULL;
        vo_rbd_conn_close(c);
        if (r == -ENOENT)
            return vo_error_set(ret_error, -ENOENT, "Ceph at %s has no pool '%s'",
                                conf->monitors, conf->pool);
        return vo_error_set(ret_error, r, "cannot open Ceph pool '%s': %s", conf->pool,
                            strerror(-r));
    }
    return 0;
}

int vo_rbd_with_conn(const VoRbdConf *conf, VoRbdConnFn fn, const void *arg, char **ret_error)
{
    VoRbdConn c;
    int r = vo_rbd_conn_open(conf, &c, ret_error);
    if (r < 0)
        return r;
    r = fn(&c, conf, arg, ret_error);
    vo_rbd_conn_close(&c);
    return r;
}

static int list_pool(VoRbdConn *c, const VoRbdConf *conf, const void *arg, char **ret_error)
{
    (void)arg;
    size_t max = 0;
    /* Lists images: proves the user may read the pool (-ERANGE: some exist). */
    int r = rbd_list2(c->io, NULL, &max);
    if (r < 0 && r != -ERANGE)
        return vo_error_set(ret_error, r == -EPERM ? -EACCES : r,
                            "cannot list RBD images in Ceph pool '%s' as client.%s: %s",
                            conf->pool, conf->user, strerror(-r));
    return 0;
}

int vo_rbd_check(const VoRbdConf *conf, char **ret_error)
{
    return vo_rbd_with_conn(conf, list_pool, NULL, ret_error);
}

int vo_rbd_image_create(const VoRbdConf *conf, const char *image, uint64_t size,
                        char **ret_error)
{
    VoRbdConn c;
    int r = vo_rbd_conn_open(conf, &c, ret_error);
    if (r < 0)
        return r;
    int order = 0; /* default: 4 MiB objects; format 2, default features */
    r = rbd_create2(c.io, image, size, VO_RBD_FEATURES, &order);
    if (r < 0)
        r = vo_error_set(ret_error, r, "cannot create RBD image %s/%s: %s", conf->pool, image,
                         r == -EEXIST ? "it exists already" : strerror(-r));
    vo_rbd_conn_close(&c);
    return r;
}

int vo_rbd_snap_names(rbd_image_t img, char ***ret)
{
    /* Small at first, so that test_storage_rbd's images with two
     * snapshots take the growth path too. Bounded: snapshots made between
     * two calls make it ask again. */
    int max = 2, n = -ERANGE;
    for (int tries = 0; n == -ERANGE && tries < 8; tries++) {
        rbd_snap_info_t *snaps = vo_malloc0(sizeof(*snaps) * (size_t)max);
        n = rbd_snap_list(img, snaps, &max);
        char **names = NULL;
        for (int i = 0; i < n; i++)
            vo_strv_pushf(&names, "%s", snaps[i].name);
        if (n >= 0) {
            rbd_snap_list_end(snaps);
            *ret = names;
        }
        free(snaps);
    }
    return n;
}

/* Removes every snapshot of image (-EBUSY when one is protected). A VM
 * clone's (rbd-vm-clone.h) is unprotected first: one a crash left behind
 * its clone's removal has no clone; one that has a clone stays (-EBUSY). */
static int remove_snapshots(rados_ioctx_t io, const char *image)
{
    rbd_image_t img;
    int r = rbd_open(io, image, &img, NULL);
    if (r < 0)
        return r;
    _cleanup_strv_ char **names = NULL;
    int n = vo_rbd_snap_names(img, &names);
    for (int i = 0; i < n && r >= 0; i++) {
        if (!strncmp(names[i], VO_RBD_CLONE_SNAP_PREFIX, strlen(VO_RBD_CLONE_SNAP_PREFIX)))
            (void)rbd_snap_unprotect(img, names[i]);
        r = rbd_snap_remove(img, names[i]);
    }
    rbd_close(img);
    return n < 0 ? n : r;
}

int vo_rbd_image_remove(const VoRbdConf *conf, const char *image, char **ret_error)
{
    VoRbdConn c;
    int r = vo_rbd_conn_open(conf, &c, ret_error);
    if (r < 0)
        return r;
    /* A VM clone's linked disk: its snapshot of the source goes after it. */
    _cleanup_free_ char *clone_snap = vo_rbd_clone_snap_of(c.io, image);
    r = rbd_remove(c.io, image);
    /* A VM's snapshots (rbd-snap.h) go with its disk; protected ones stay. */
    if (r == -ENOTEMPTY && remove_snapshots(c.io, image) >= 0)
        r = rbd_remove(c.io, image);
    if (r >= 0 && clone_snap)
        vo_rbd_clone_snap_drop(c.io, clone_snap);
    if (r == -ENOENT)
        r = 0; /* gone already */
    else if (r < 0)
        r = vo_error_set(ret_error, r, "cannot remove RBD image %s/%s: %s", conf->pool, image,
                         r == -EBUSY ? "it is open (watched) by a client" : strerror(-r));
    vo_rbd_conn_close(&c);
    return r;
}

static int set_mark(rbd_image_t img, const void *volume)
{
    return rbd_metadata_set(img, VO_RBD_MARK_KEY, volume);
}

int vo_rbd_image_mark(const VoRbdConf *conf, const char *image, const char *volume,
                      char **ret_error)
{
    return vo_rbd_with_image(conf, image, set_mark, volume, "mark", ret_error);
}

int vo_rbd_image_marked(const VoRbdConf *conf, const char *image, const char *volume,
                        char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open_if(conf, &c, image, true, &img, ret_error);
    if (r <= 0)
        return r;
    char value[256] = "";
    size_t len = sizeof(value) - 1;
    int k = rbd_metadata_get(img, VO_RBD_MARK_KEY, value, &len);
    rbd_close(img);
    vo_rbd_conn_close(&c);
    return k >= 0 && !strcmp(value, volume) ? 1 : 0;
}

int vo_rbd_image_open_if(const VoRbdConf *conf, VoRbdConn *c, const char *image,
                         bool read_only, rbd_image_t *ret, char **ret_error)
{
    int r = vo_rbd_conn_open(conf, c, ret_error);
    if (r < 0)
        return r;
    r = read_only ? rbd_open_read_only(c->io, image, ret, NULL)
                  : rbd_open(c->io, image, ret, NULL);
    if (r < 0) {
        vo_rbd_conn_close(c);
        if (r == -ENOENT)
            return 0;
        return vo_error_set(ret_error, r, "cannot open RBD image %s/%s: %s", conf->pool, image,
                            strerror(-r));
    }
    return 1;
}

int vo_rbd_image_open(const VoRbdConf *conf, VoRbdConn *c, const char *image, rbd_image_t *ret,
                      char **ret_error)
{
    int r = vo_rbd_image_open_if(conf, c, image, false, ret, ret_error);
    if (r == 0)
        return vo_error_set(ret_error, -ENOENT, "RBD image %s/%s does not exist", conf->pool,
                            image);
    return r < 0 ? r : 0;
}

int vo_rbd_with_image(const VoRbdConf *conf, const char *image, VoRbdImageFn fn,
                      const void *arg, const char *what, char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open(conf, &c, image, &img, ret_error);
    if (r < 0)
        return r;
    r = fn(img, arg);
    rbd_close(img);
    vo_rbd_conn_close(&c);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot %s RBD image %s/%s: %s", what, conf->pool,
                            image, r == -EEXIST ? "it exists already" : strerror(-r));
    return r;
}

static int resize_to(rbd_image_t img, const void *size)
{
    return rbd_resize(img, *(const uint64_t *)size);
}

int vo_rbd_image_resize(const VoRbdConf *conf, const char *image, uint64_t size,
                        char **ret_error)
{
    return vo_rbd_with_image(conf, image, resize_to, &size, "resize", ret_error);
}

static int add_extent(uint64_t off, size_t len, int exists, void *userdata)
{
    (void)off;
    if (exists)
        *(uint64_t *)userdata += len;
    return 0;
}

int vo_rbd_image_usage(const VoRbdConf *conf, const char *image, uint64_t *ret_size,
                       uint64_t *ret_used, char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    /* Read-only: a read-write open of an image whose exclusive lock a
     * killed QEMU still holds waits on that owner (VO_RBD_TIMEOUT_S). */
    int r = vo_rbd_image_open_if(conf, &c, image, true, &img, ret_error);
    if (r == 0)
        return vo_error_set(ret_error, -ENOENT, "RBD image %s/%s does not exist", conf->pool,
                            image);
    if (r < 0)
        return r;
    uint64_t size = 0, used = 0;
    r = rbd_get_size(img, &size);
    /* Whole objects: with fast-diff, from the object map, not a scan. A
     * clone's own objects only (not its parent's), as for a qcow2 overlay. */
    if (r >= 0)
        r = rbd_diff_iterate2(img, NULL, 0, size, 0, 1, add_extent, &used);
    if (r < 0)
        r = vo_error_set(ret_error, r, "cannot measure RBD image %s/%s: %s", conf->pool, image,
                         strerror(-r));
    rbd_close(img);
    vo_rbd_conn_close(&c);
    *ret_size = size;
    *ret_used = used;
    return r;
}

int vo_rbd_pool_usage(const VoRbdConf *conf, uint64_t *ret_capacity, uint64_t *ret_available,
                      uint64_t *ret_used, char **ret_error)
{
    VoRbdConn c;
    int r = vo_rbd_conn_open(conf, &c, ret_error);
    if (r < 0)
        return r;
    struct rados_cluster_stat_t cs;
    struct rados_pool_stat_t ps;
    r = rados_cluster_stat(c.cluster, &cs);
    if (r >= 0)
        r = rados_ioctx_pool_stat(c.io, &ps);
    if (r < 0)
        r = vo_error_set(ret_error, r, "cannot read Ceph usage of pool '%s': %s", conf->pool,
                         strerror(-r));
    else {
        *ret_capacity = cs.kb * 1024;
        *ret_available = cs.kb_avail * 1024;
        *ret_used = ps.num_bytes;
    }
    vo_rbd_conn_close(&c);
    return r;
}
