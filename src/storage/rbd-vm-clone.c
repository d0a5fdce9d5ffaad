/* rbd-vm-clone.c: a VM clone's disks inside the Ceph pool (rbd-vm-clone.h). */
#include "storage/rbd-vm-clone.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/rbd-conn.h"
#include "util/cancel.h"
#include "util/test-hold.h"
#include "util/util.h"

/* True when the n bytes at p are all zero (a hole the copy skips). */
static bool all_zero(const char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/* Objects a copy keeps in flight (librbd aio reads and writes), as
 * rbd_copy3 keeps rbd_concurrent_management_ops (10): one at a time, each
 * object waits for its read's and its write's round trips to the OSDs,
 * which a network makes the copy's time (docs/benchmarks.md, "RBD full
 * copy"). */
#define COPY_IN_FLIGHT 8

/* One object of the copy: read into buf, then (when not all zero) written. */
typedef struct {
    char *buf;
    uint64_t ofs;
    size_t len;
    rbd_completion_t c; /* the read's, then the write's; NULL once done */
    bool writing;
} CopySlot;

typedef struct {
    rbd_image_t img, out;
    uint64_t size, chunk, next; /* next: the offset of the next object to read */
    CopySlot slots[COPY_IN_FLIGHT];
    unsigned head, busy; /* the oldest busy slot; how many are busy */
    bool stopping;       /* an error or a cancel: no more writes begin */
} Copy;

static int start_read(Copy *k)
{
    CopySlot *s = &k->slots[(k->head + k->busy) % COPY_IN_FLIGHT];
    s->ofs = k->next;
    s->len = (size_t)(k->size - k->next < k->chunk ? k->size - k->next : k->chunk);
    s->writing = false;
    int r = rbd_aio_create_completion(NULL, NULL, &s->c);
    if (r < 0) {
        s->c = NULL;
        return r;
    }
    r = rbd_aio_read2(k->img, s->ofs, s->len, s->buf, s->c,
                      LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL);
    if (r < 0) {
        rbd_aio_release(s->c);
        s->c = NULL;
        return r;
    }
    k->next += s->len;
    k->busy++;
    return 0;
}

/* s's read or write has completed (its completion released): a read with
 * data starts its write (unless stopping); 0, or the error of either. */
static int slot_completed(Copy *k, CopySlot *s)
{
    ssize_t n = rbd_aio_get_return_value(s->c); /* a write's: 0 */
    rbd_aio_release(s->c);
    s->c = NULL;
    if (n >= 0 && !s->writing && (size_t)n != s->len) /* a hole reads zeros: never short */
        n = -EIO;
    if (n < 0 || s->writing || k->stopping || all_zero(s->buf, s->len))
        return n < 0 ? (int)n : 0;
    s->writing = true;
    int r = rbd_aio_create_completion(NULL, NULL, &s->c);
    if (r < 0) {
        s->c = NULL;
        return r;
    }
    if ((r = rbd_aio_write2(k->out, s->ofs, s->len, s->buf, s->c, 0)) < 0) {
        rbd_aio_release(s->c);
        s->c = NULL;
    }
    return r;
}

/* Handles every busy slot whose read or write completed (a read's write
 * starts at once, whatever older objects still wait for), waiting for the
 * oldest when none did; then frees the done slots at the head (in order).
 * How many were freed, or the first error (its slot done too). */
static int copy_step(Copy *k)
{
    int r = 0;
    bool any = false;
    for (unsigned i = 0; i < k->busy; i++) {
        CopySlot *s = &k->slots[(k->head + i) % COPY_IN_FLIGHT];
        if (s->c && rbd_aio_is_complete(s->c)) {
            int e = slot_completed(k, s);
            if (e < 0 && r >= 0) { /* the copy fails: no more writes begin */
                r = e;
                k->stopping = true;
            }
            any = true;
        }
    }
    if (!any) {
        CopySlot *s = &k->slots[k->head]; /* busy and not done: it is waited on */
        rbd_aio_wait_for_complete(s->c);
        r = slot_completed(k, s);
    }
    int freed = 0;
    while (k->busy && !k->slots[k->head].c) {
        k->head = (k->head + 1) % COPY_IN_FLIGHT;
        k->busy--;
        freed++;
    }
    return r < 0 ? r : freed;
}

/* Copies img's data into the new image out (of img's size), an object at a
 * time, COPY_IN_FLIGHT objects at once (reads and writes): zeros are not
 * written (the copy stays thin). Progress counts the objects done in order
 * (all before an offset). Stops at a cancel of the calling thread's work
 * (-ECANCELED), after the objects in flight are done. */
static int copy_data(rbd_image_t img, rbd_image_t out, uint64_t size, uint64_t chunk,
                     VoRbdProgressFn progress, void *userdata)
{
    Copy k = { .img = img, .out = out, .size = size, .chunk = chunk };
    for (unsigned i = 0; i < COPY_IN_FLIGHT; i++)
        k.slots[i].buf = vo_malloc0(chunk);
    int r = 0;
    while (r >= 0 && (k.next < size || k.busy)) {
        if (vo_cancelled())
            r = -ECANCELED;
        while (r >= 0 && k.next < size && k.busy < COPY_IN_FLIGHT)
            r = start_read(&k);
        if (r < 0 || !k.busy)
            break;
        int freed = copy_step(&k);
        if (freed < 0)
            r = freed;
        else if (freed && progress)
            progress(k.busy ? k.slots[k.head].ofs : k.next, size, userdata);
        if (freed > 0)
            vo_test_hold("rbd_copy_chunk"); /* tests cancel a copy midway */
    }
    k.stopping = true;
    for (unsigned i = 0; i < k.busy; i++) { /* an error or a cancel: what is in flight ends first */
        CopySlot *s = &k.slots[(k.head + i) % COPY_IN_FLIGHT];
        if (s->c) {
            rbd_aio_wait_for_complete(s->c);
            (void)slot_completed(&k, s);
        }
    }
    for (unsigned i = 0; i < COPY_IN_FLIGHT; i++)
        free(k.slots[i].buf);
    return r < 0 ? r : rbd_flush(out);
}

/* A new image part holding img's data (its size, object size and vireo's
 * features). */
static int copy_into(rados_ioctx_t io, rbd_image_t img, const char *part,
                     VoRbdProgressFn progress, void *userdata)
{
    rbd_image_info_t info;
    int r = rbd_stat(img, &info, sizeof(info));
    if (r < 0)
        return r;
    rbd_image_options_t opts;
    rbd_image_options_create(&opts);
    (void)rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FEATURES, VO_RBD_FEATURES);
    (void)rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_ORDER, (uint64_t)info.order);
    r = rbd_create4(io, part, info.size, opts);
    rbd_image_options_destroy(opts);
    rbd_image_t out;
    if (r >= 0 && (r = rbd_open(io, part, &out, NULL)) >= 0) {
        r = copy_data(img, out, info.size, info.obj_size, progress, userdata);
        int k = rbd_close(out);
        r = r < 0 ? r : k;
    }
    return r;
}

int vo_rbd_image_copy(const VoRbdConf *conf, const char *src, const char *dst,
                      VoRbdProgressFn progress, void *userdata, char **ret_error)
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
    r = copy_into(c.io, img, part, progress, userdata);
    rbd_close(img);
    if (r >= 0)
        r = rbd_rename(c.io, part, dst);
    if (r < 0) {
        (void)rbd_remove(c.io, part); /* a half copy, or a cancelled one */
        r = r == -ECANCELED
                ? vo_error_set(ret_error, r, "the copy of RBD image %s/%s was cancelled (its "
                               "partial copy removed)", conf->pool, src)
                : vo_error_set(ret_error, r, "cannot copy RBD image %s/%s to %s: %s",
                               conf->pool, src, dst,
                               r == -EEXIST ? "that name exists already" : strerror(-r));
    }
    vo_rbd_conn_close(&c);
    return r;
}

int vo_rbd_image_copy_part_remove(const VoRbdConf *conf, const char *dst, char **ret_error)
{
    VoRbdConn c;
    int r = vo_rbd_conn_open(conf, &c, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *part = vo_asprintf("%s" VO_RBD_COPY_SUFFIX, dst);
    r = rbd_remove(c.io, part);
    vo_rbd_conn_close(&c);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot remove RBD image %s/%s (a copy cut short): "
                            "%s", conf->pool, part,
                            r == -EBUSY ? "it is open (watched) by a client" : strerror(-r));
    return 1;
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
