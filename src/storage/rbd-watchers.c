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

typedef struct {
    const char *addr;
    uint32_t expire_s;
} Blocklist;

static int blocklist(VoRbdConn *c, const VoRbdConf *conf, const void *arg, char **ret_error)
{
    (void)conf;
    const Blocklist *b = arg;
    _cleanup_free_ char *copy = vo_strdup(b->addr); /* librados takes a char * */
    int r = rados_blocklist_add(c->cluster, copy, b->expire_s);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot blocklist Ceph client %s: %s", b->addr,
                            strerror(-r));
    return 0;
}

int vo_rbd_blocklist(const VoRbdConf *conf, const char *addr, uint32_t expire_s,
                     char **ret_error)
{
    Blocklist b = { .addr = addr, .expire_s = expire_s };
    return vo_rbd_with_conn(conf, blocklist, &b, ret_error);
}
