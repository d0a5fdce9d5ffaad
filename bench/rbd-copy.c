/* rbd-copy.c: one full copy of an RBD image, timed: vireo's object copy
 * (vo_rbd_image_copy, what `vm clone` of an rbd disk does) or librbd's own
 * rbd_copy3 (what `rbd cp` does), into a new image of the same pool with
 * vireo's features. Run by bench/rbd-copy (which starts the Ceph and
 * writes the images), not by hand:
 *   rbd-copy vireo|librbd MONITORS POOL USER KEY SRC DST
 * prints the seconds the copy took; DST is left for the caller to remove. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "storage/rbd-conn.h"
#include "storage/rbd-vm-clone.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int librbd_copy(const VoRbdConf *conf, const char *src, const char *dst,
                       char **ret_error)
{
    VoRbdConn c;
    rbd_image_t img;
    int r = vo_rbd_image_open_if(conf, &c, src, true, &img, ret_error);
    if (r <= 0)
        return r < 0 ? r : -ENOENT;
    rbd_image_info_t info;
    if ((r = rbd_stat(img, &info, sizeof(info))) >= 0) {
        rbd_image_options_t opts;
        rbd_image_options_create(&opts);
        (void)rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FEATURES, VO_RBD_FEATURES);
        (void)rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_ORDER, (uint64_t)info.order);
        r = rbd_copy3(img, c.io, dst, opts);
        rbd_image_options_destroy(opts);
    }
    rbd_close(img);
    vo_rbd_conn_close(&c);
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 8 || (strcmp(argv[1], "vireo") && strcmp(argv[1], "librbd"))) {
        fprintf(stderr, "usage: rbd-copy vireo|librbd MONITORS POOL USER KEY SRC DST\n");
        return 2;
    }
    VoRbdConf conf = { .monitors = argv[2], .pool = argv[3], .user = argv[4], .key = argv[5] };
    char *error = NULL;
    double t0 = now();
    int r = !strcmp(argv[1], "vireo")
                ? vo_rbd_image_copy(&conf, argv[6], argv[7], NULL, NULL, &error)
                : librbd_copy(&conf, argv[6], argv[7], &error);
    double t = now() - t0;
    if (r < 0) {
        fprintf(stderr, "rbd-copy: %s\n", error ? error : strerror(-r));
        return 1;
    }
    printf("%.3f\n", t);
    return 0;
}
