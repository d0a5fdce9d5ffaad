/* rbd-export.c: an RBD snapshot into a qcow2 file (see rbd-export.h). The
 * extents rbd_diff_iterate2 reports (rounded out to 64 KiB, the qcow2
 * cluster, and merged) are read from the snapshot in chunks of 4 MiB; each
 * chunk goes to a scratch file beside the target, and qemu-io writes a batch
 * of them into the qcow2 ("write -s FILE OFFSET LEN"). A chunk of zeros is
 * not copied into a full export (the new file reads zero there) and goes as
 * zeros ("write -z": the clusters marked zero, no data) into an incremental
 * one, whose backing file would otherwise show through (a discarded extent
 * reads back as zeros, so it goes the same way). */
#include "storage/rbd-export.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/extents.h"
#include "storage/qemu-img.h"
#include "storage/rbd-conn.h"
#include "util/cancel.h"
#include "util/spawn.h"
#include "util/util.h"

#define CLUSTER (64u << 10)
#define CHUNK (4u << 20)
#define BATCH 16 /* chunks per qemu-io run: at most 64 MiB of scratch files */
#define QEMU_IO_TIMEOUT_MS (10 * 60 * 1000)

static int add_extent(uint64_t offset, size_t len, int exists, void *arg)
{
    (void)exists; /* a discarded extent reads back as zeros: copied as such */
    return vo_extents_add(arg, offset, len);
}

/* One qemu-io run's commands and the scratch files they read. */
typedef struct {
    const char *target;
    char **argv;
    char **files;
} Batch;

static void batch_reset(Batch *b)
{
    for (char **f = b->files; f && *f; f++)
        (void)unlink(*f);
    vo_strv_free(TAKE_PTR(b->files));
    vo_strv_free(TAKE_PTR(b->argv));
}

static int batch_flush(Batch *b, char **ret_error)
{
    if (!b->argv) {
        batch_reset(b);
        return 0;
    }
    _cleanup_strv_ char **argv = NULL;
    vo_strv_pushf(&argv, "qemu-io");
    vo_strv_pushf(&argv, "-f");
    vo_strv_pushf(&argv, "qcow2");
    for (char **c = b->argv; *c; c++) {
        vo_strv_pushf(&argv, "-c");
        vo_strv_pushf(&argv, "%s", *c);
    }
    vo_strv_pushf(&argv, "%s", b->target);
    _cleanup_free_ char *out = NULL;
    int r = vo_spawn_wait(argv, QEMU_IO_TIMEOUT_MS, &out);
    batch_reset(b);
    if (r < 0)
        return vo_error_set(ret_error, r, "qemu-io could not write %s: %s", b->target,
                            out && *out ? out : strerror(-r));
    return 0;
}

static int write_file(const char *path, const char *buf, size_t len)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return 0;
}

static bool all_zero(const char *buf, size_t len)
{
    return len == 0 || (buf[0] == 0 && !memcmp(buf, buf + 1, len - 1));
}

/* Sleeps as long as reading done bytes since started_us ran ahead of rate. */
static void throttle(uint64_t rate, uint64_t done, int64_t started_us)
{
    if (!rate)
        return;
    int64_t due = started_us + (int64_t)(done * 1000000 / rate);
    int64_t now = vo_now_us();
    if (due > now)
        usleep((useconds_t)(due - now));
}

/* Copies every range of rs from img into e->target (created already). */
static int copy_ranges(rbd_image_t img, const VoRbdExport *e, const VoExtents *rs, uint64_t total,
                       char **ret_error)
{
    if (strpbrk(e->target, " \t\n"))
        return vo_error_set(ret_error, -EINVAL, "cannot write %s: qemu-io takes no file name "
                            "with white space (move the backup pool)", e->target);
    _cleanup_free_ char *buf = vo_malloc0(CHUNK);
    Batch b = { .target = e->target };
    uint64_t done = 0;
    int64_t started = vo_now_us();
    int r = 0;
    for (size_t i = 0; i < rs->n && r >= 0; i++)
        for (uint64_t off = rs->v[i].start; off < rs->v[i].end && r >= 0;) {
            size_t len = (size_t)(rs->v[i].end - off < CHUNK ? rs->v[i].end - off : CHUNK);
            if (vo_cancelled()) {
                r = vo_error_set(ret_error, -ECANCELED, "cancelled");
                break;
            }
            ssize_t got = rbd_read(img, off, len, buf);
            if (got != (ssize_t)len) {
                r = vo_error_set(ret_error, got < 0 ? (int)got : -EIO, "cannot read RBD image "
                                 "%s at %llu: %s", e->image, (unsigned long long)off,
                                 got < 0 ? strerror((int)-got) : "short read");
                break;
            }
            if (!all_zero(buf, len)) {
                char *file = vo_asprintf("%s.chunk%zu", e->target, vo_strv_len(b.files));
                vo_strv_push(&b.files, file);
                if ((r = write_file(file, buf, len)) < 0) {
                    vo_error_set(ret_error, r, "cannot write %s: %s", file, strerror(-r));
                    break;
                }
                vo_strv_pushf(&b.argv, "write -q -s %s %llu %zu", file,
                              (unsigned long long)off, len);
            } else if (e->from_snap) /* over a backing file: zeros must be written */
                vo_strv_pushf(&b.argv, "write -q -z %llu %zu", (unsigned long long)off, len);
            off += len;
            done += len;
            if (vo_strv_len(b.argv) >= BATCH)
                r = batch_flush(&b, ret_error);
            if (e->progress)
                e->progress((int)(done * 100 / (total ? total : 1)), e->userdata);
            throttle(e->rate, done, started);
        }
    if (r >= 0)
        r = batch_flush(&b, ret_error);
    batch_reset(&b);
    return r;
}

int vo_rbd_export_qcow2(const VoRbdConf *conf, const VoRbdExport *e, uint64_t *ret_size,
                        uint64_t *ret_changed, char **ret_error)
{
    VoRbdConn c;
    int r = vo_rbd_conn_open(conf, &c, ret_error);
    if (r < 0)
        return r;
    rbd_image_t img;
    r = rbd_open_read_only(c.io, e->image, &img, e->snap);
    if (r < 0) {
        vo_rbd_conn_close(&c);
        return vo_error_set(ret_error, r, "cannot open RBD image %s/%s at snapshot %s: %s",
                            conf->pool, e->image, e->snap, strerror(-r));
    }
    VoExtents rs = { .cluster = CLUSTER };
    r = rbd_get_size(img, &rs.size);
    /* Parent extents included (a linked clone's data is partly its base's);
     * exact extents, not whole objects, so an incremental is what changed. */
    if (r >= 0)
        r = rbd_diff_iterate2(img, e->from_snap, 0, rs.size, 1, 0, add_extent, &rs);
    if (r < 0)
        vo_error_set(ret_error, r, "cannot list the extents of RBD image %s/%s@%s%s%s: %s",
                     conf->pool, e->image, e->snap, e->from_snap ? " since " : "",
                     e->from_snap ? e->from_snap : "", strerror(-r));
    uint64_t total = r >= 0 ? vo_extents_merge(&rs) : 0;
    if (r >= 0)
        r = vo_img_create(e->target, "qcow2", rs.size, e->from_snap ? e->backing : NULL,
                          "qcow2", ret_error);
    bool made = r >= 0;
    if (r >= 0)
        r = copy_ranges(img, e, &rs, total, ret_error);
    rbd_close(img);
    vo_rbd_conn_close(&c);
    if (r < 0 && made)
        (void)unlink(e->target);
    if (r >= 0) {
        *ret_size = rs.size;
        if (ret_changed)
            *ret_changed = total;
    }
    vo_extents_clear(&rs);
    return r < 0 ? r : 0;
}
