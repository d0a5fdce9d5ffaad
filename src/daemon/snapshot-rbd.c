/* snapshot-rbd.c: RBD snapshots for VM snapshots (see snapshot-rbd.h). */
#include "daemon/snapshot-rbd.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "daemon/migrate-safe.h"
#include "daemon/storage.h"
#include "storage/rbd-snap.h"
#include "util/util.h"

typedef struct {
    VoRbdPool pool;
    char *image;
    const char *volume; /* "pool/name" (the spec's) */
    bool nvram;
} RbdDisk;

static void rbd_disks_free(RbdDisk *disks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        vo_rbd_pool_clear(&disks[i].pool);
        free(disks[i].image);
    }
    free(disks);
}

/* The RBD images of spec's disks and NVRAM: 1 with *ret (n in *ret_n) when
 * all are RBD images, 0 when none is, -errno when some are or a pool's
 * settings cannot be read. */
static int rbd_disks(VoDaemon *d, const VoVmSpec *spec, RbdDisk **ret, size_t *ret_n,
                     char **ret_error)
{
    size_t n = spec->n_disks + (spec->nvram ? 1 : 0), found = 0;
    RbdDisk *disks = vo_malloc0(sizeof(*disks) * (n ? n : 1));
    const char *other = NULL;
    int r = 0;
    for (size_t i = 0; i < n && r >= 0; i++) {
        RbdDisk *k = &disks[found];
        k->nvram = i == spec->n_disks;
        k->volume = k->nvram ? spec->nvram : spec->disks[i].volume;
        r = vo_volume_rbd_image(d, k->volume, &k->pool, &k->image, ret_error);
        if (r > 0)
            found++;
        else if (r == 0 && !other)
            other = k->volume ? k->volume : "?";
    }
    if (r >= 0 && found > 0 && other)
        r = vo_error_set(ret_error, -EINVAL, "volume '%s' of VM '%s' is not in an rbd pool: a "
                         "VM's snapshot needs all its disks in rbd pools (RBD snapshots) or "
                         "all qcow2", other, spec->name);
    if (r < 0 || found == 0) {
        rbd_disks_free(disks, found);
        return r < 0 ? r : 0;
    }
    *ret = disks;
    *ret_n = found;
    return 1;
}

int vo_snapshot_rbd_check(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    RbdDisk *disks = NULL;
    size_t n = 0;
    int r = rbd_disks(d, spec, &disks, &n, ret_error);
    rbd_disks_free(disks, n);
    return r;
}

int vo_snapshot_rbd_create(VoDaemon *d, const VoVmSpec *spec, const char *tag,
                           VoHvInstance *pause, char **ret_error)
{
    RbdDisk *disks = NULL;
    size_t n = 0, made = 0;
    int r = rbd_disks(d, spec, &disks, &n, ret_error);
    if (r <= 0)
        return r < 0 ? r : vo_error_set(ret_error, -EINVAL, "VM '%s' has no RBD disks",
                                        spec->name);
    /* Connected and open before the pause: the pause lasts the snapshots. */
    VoRbdOpenImage **open = vo_malloc0(sizeof(*open) * n);
    for (size_t i = 0; i < n && r >= 0; i++) {
        VoRbdConf c = vo_rbd_pool_conf(&disks[i].pool);
        r = vo_rbd_open_image(&c, disks[i].image, &open[i], ret_error);
        /* The caller found no snapshot of this name under the VM's job
         * lock: one on the disk is a leftover of a create that crashed or
         * failed after its RBD snapshots (it would make this one fail). */
        if (r >= 0 && (r = vo_rbd_open_snap_remove_stale(open[i], tag, ret_error)) > 0) {
            log_warn("vm %s: removed leftover RBD snapshot %s/%s@%s", spec->name,
                     disks[i].pool.pool, disks[i].image, tag);
            r = 0;
        }
    }
    int64_t paused_at = vo_now_us();
    bool paused = false;
    if (r >= 0 && pause) {
        r = d->driver->pause(pause);
        if (r < 0)
            r = vo_error_set(ret_error, r, "cannot pause VM '%s' for the instant: %s",
                             spec->name, strerror(-r));
        paused = r >= 0;
    }
    for (; r >= 0 && made < n; made++)
        if ((r = vo_rbd_open_snap_create(open[made], tag, ret_error)) < 0)
            break;
    if (paused && vo_migrate_fault("rbd-snapshot-exit-in-pause")) /* test: vireod dies here */
        _exit(70);
    if (paused) {
        int k = d->driver->resume(pause);
        if (k < 0)
            log_error("vm %s: cannot resume it after its RBD snapshot %s: %s", spec->name, tag,
                      strerror(-k));
        log_info("vm %s: paused %lld ms for RBD snapshot %s of %zu disk(s)", spec->name,
                 (long long)(vo_now_us() - paused_at) / 1000, tag, n);
    }
    for (size_t i = 0; i < n; i++)
        open[i] = vo_rbd_open_image_close(open[i]);
    free(open);
    for (size_t i = 0; r < 0 && i < made; i++) { /* all or nothing */
        VoRbdConf c = vo_rbd_pool_conf(&disks[i].pool);
        _cleanup_free_ char *ignored = NULL;
        if (vo_rbd_snap_remove(&c, disks[i].image, tag, &ignored) < 0)
            log_warn("vm %s: kept RBD snapshot %s/%s@%s: %s", spec->name, disks[i].pool.pool,
                     disks[i].image, tag, ignored);
    }
    rbd_disks_free(disks, n);
    return r;
}

int vo_snapshot_rbd_revert(VoDaemon *d, const VoVmSpec *spec, const char *tag, char **ret_error)
{
    RbdDisk *disks = NULL;
    size_t n = 0;
    int r = rbd_disks(d, spec, &disks, &n, ret_error);
    if (r <= 0)
        return r < 0 ? r : vo_error_set(ret_error, -EINVAL, "VM '%s' has no RBD disks",
                                        spec->name);
    bool *has = vo_malloc0(sizeof(bool) * n);
    for (size_t i = 0; i < n && r >= 0; i++) {
        VoRbdConf c = vo_rbd_pool_conf(&disks[i].pool);
        r = vo_rbd_snap_exists(&c, disks[i].image, tag, ret_error);
        has[i] = r > 0;
        if (r == 0 && !disks[i].nvram)
            r = vo_error_set(ret_error, -ENOENT, "volume '%s' has no snapshot '%s' (added "
                             "after it was taken?): nothing was reverted", disks[i].volume, tag);
    }
    for (size_t i = 0; i < n && r >= 0; i++)
        if (has[i]) {
            VoRbdConf c = vo_rbd_pool_conf(&disks[i].pool);
            r = vo_rbd_snap_rollback(&c, disks[i].image, tag, ret_error);
        }
    free(has);
    rbd_disks_free(disks, n);
    return r < 0 ? r : 0;
}

int vo_snapshot_rbd_delete(VoDaemon *d, const VoVmSpec *spec, const char *tag, char **ret_error)
{
    RbdDisk *disks = NULL;
    size_t n = 0;
    int r = rbd_disks(d, spec, &disks, &n, ret_error);
    for (size_t i = 0; r > 0 && i < n; i++) {
        VoRbdConf c = vo_rbd_pool_conf(&disks[i].pool);
        int k = vo_rbd_snap_remove(&c, disks[i].image, tag, ret_error);
        if (k < 0)
            r = k;
    }
    rbd_disks_free(disks, n);
    return r < 0 ? r : 0;
}
