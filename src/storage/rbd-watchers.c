/* rbd-watchers.c: an RBD image's watchers and the client blocklist through
 * librbd/librados (see rbd-watchers.h). */
#include "storage/rbd-watchers.h"

#include <errno.h>
#include <string.h>

#include "storage/rbd-conn.h"
#include "util/util.h"

#define MAX_WATCHERS 64

int vo_rbd_watchers(const VoRbdConf *conf, const char *image, char ***ret, char **ret_error)
{
    *ret = NULL;
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open_if(conf, &c, image, true, &img, ret_error);
    if (r <= 0)
        return r;
    rbd_image_watcher_t w[MAX_WATCHERS];
    size_t n = MAX_WATCHERS;
    r = rbd_watchers_list(img, w, &n);
    if (r >= 0) {
        for (size_t i = 0; i < n; i++)
            vo_strv_pushf(ret, "%s", w[i].addr);
        rbd_watchers_list_cleanup(w, n);
        r = (int)n;
    } else
        r = vo_error_set(ret_error, r, "cannot list the watchers of RBD image %s/%s: %s",
                         conf->pool, image, strerror(-r));
    rbd_close(img);
    vo_rbd_conn_close(&c);
    return r;
}

int vo_rbd_blocklist(const VoRbdConf *conf, const char *addr, uint32_t expire_s,
                     char **ret_error)
{
    VoRbdConn c;
    int r = vo_rbd_conn_open(conf, &c, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *copy = vo_strdup(addr); /* librados takes a char * */
    r = rados_blocklist_add(c.cluster, copy, expire_s);
    if (r < 0)
        r = vo_error_set(ret_error, r, "cannot blocklist Ceph client %s: %s", addr,
                         strerror(-r));
    vo_rbd_conn_close(&c);
    return r;
}
