/* snapshot-rbd.c: RBD snapshots for VM snapshots (see snapshot-rbd.h). */
#include "daemon/snapshot-rbd.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "daemon/migrate-safe.h"
#include "daemon/storage.h"
#include "daemon/vm-rbd-images.h"
#include "storage/rbd-snap.h"
#include "util/util.h"

/* What a snapshot needs of a VM's disks, said when only some are RBD
 * images. */
#define SNAPSHOT_NEEDS \
    "a VM's snapshot needs all its disks in rbd pools (RBD snapshots) or all qcow2"

int vo_snapshot_rbd_check(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    VoVmRbdImage *disks = NULL;
    size_t n = 0;
    int r = vo_vm_rbd_images(d, spec, SNAPSHOT_NEEDS, &disks, &n, ret_error);
    vo_vm_rbd_images_free(disks, n);
    return r;
}

int vo_snapshot_rbd_create(VoDaemon *d, const VoVmSpec *spec, const char *tag,
                           VoHvInstance *pause, char **ret_error)
{
    VoVmRbdImage *disks = NULL;
    size_t n = 0, made = 0;
    int r = vo_vm_rbd_images(d, spec, SNAPSHOT_NEEDS, &disks, &n, ret_error);
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
    vo_vm_rbd_images_free(disks, n);
    return r;
}

int vo_snapshot_rbd_revert(VoDaemon *d, const VoVmSpec *spec, const char *tag, char **ret_error)
{
    return vo_vm_rbd_images_rollback(d, spec, SNAPSHOT_NEEDS, tag, ret_error);
}

int vo_snapshot_rbd_delete(VoDaemon *d, const VoVmSpec *spec, const char *tag, char **ret_error)
{
    return vo_vm_rbd_images_snap_remove(d, spec, SNAPSHOT_NEEDS, tag, ret_error);
}
