/* backup-rbd.c: backups of VMs whose disks are RBD images (see
 * backup-rbd.h): the instant (RBD snapshots, as a VM snapshot makes them),
 * the export of each disk from its snapshot, the pruning of older backup
 * snapshots, and a restore over the VM (behind an undo snapshot).
 * backups.c and backup-restore.c call these under the VM's job lock. */
#include "daemon/backup-rbd.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/migrate-safe.h"
#include "daemon/rbd-dead-clients.h"
#include "daemon/snapshot-rbd.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "daemon/vm-pause-mark.h"
#include "daemon/vm-rbd-images.h"
#include "storage/qemu-img.h"
#include "storage/rbd-export.h"
#include "storage/rbd-snap.h"
#include "util/util.h"

/* The RBD images of spec's disks, then of its NVRAM: all of them (a
 * backup takes a VM's disks all from rbd pools or all from files). */
static int images_of(VoDaemon *d, const VoVmSpec *spec, VoVmRbdImage **ret, size_t *ret_n,
                     char **ret_error)
{
    int r = vo_vm_rbd_images(d, spec, "a backup takes a VM's disks all from rbd pools (RBD "
                             "snapshots) or all from files", ret, ret_n, ret_error);
    if (r == 0)
        r = vo_error_set(ret_error, -EINVAL, "VM '%s' has no disk in an rbd pool", spec->name);
    return r < 0 ? r : 0;
}

static size_t n_images(const VoVmSpec *spec)
{
    return spec->n_disks + (spec->nvram ? 1 : 0);
}

static const char *volume_of(const VoVmSpec *spec, size_t i)
{
    return i < spec->n_disks ? spec->disks[i].volume : spec->nvram;
}

int vo_backup_rbd_check(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    const char *rbd = NULL, *other = NULL;
    for (size_t i = 0; i < n_images(spec); i++) {
        const char *key = volume_of(spec, i);
        const char *slash = key ? strchr(key, '/') : NULL;
        _cleanup_free_ char *pool = slash ? vo_asprintf("%.*s", (int)(slash - key), key) : NULL;
        if (pool && vo_pool_is_rbd(d, pool))
            rbd = rbd ? rbd : key;
        else
            other = other ? other : key ? key : "?";
    }
    if (rbd && other)
        return vo_error_set(ret_error, -EINVAL, "volume '%s' of VM '%s' is not in an rbd pool "
                            "but '%s' is: a backup takes a VM's disks all from rbd pools (RBD "
                            "snapshots) or all from files", other, spec->name, rbd);
    return rbd ? 1 : 0;
}

int vo_backup_rbd_sizes(VoDaemon *d, const VoVmSpec *spec, uint64_t *sizes, char **ret_error)
{
    VoVmRbdImage *imgs = NULL;
    size_t n_imgs = 0;
    int r = images_of(d, spec, &imgs, &n_imgs, ret_error);
    for (size_t i = 0; r >= 0 && i < spec->n_disks; i++) {
        VoRbdConf c = vo_rbd_pool_conf(&imgs[i].pool);
        uint64_t used = 0;
        r = vo_rbd_image_usage(&c, imgs[i].image, &sizes[i], &used, ret_error);
    }
    vo_vm_rbd_images_free(imgs, n_imgs);
    return r < 0 ? r : 0;
}

/* Whether every disk has a file in the previous backup and its snapshot
 * from; else *ret_why says which does not. */
static bool can_build_on(const VoVmSpec *spec, const VoVmRbdImage *imgs,
                         const VoHvBackupPlan *plan, const char *from, char **ret_why)
{
    for (size_t i = 0; i < spec->n_disks; i++) {
        if (!plan->disks[i].parent_path) {
            *ret_why = vo_asprintf("the disk in slot %u is not in the previous backup",
                                   plan->disks[i].slot);
            return false;
        }
        VoRbdConf c = vo_rbd_pool_conf(&imgs[i].pool);
        _cleanup_free_ char *error = NULL;
        int r = vo_rbd_snap_exists(&c, imgs[i].image, from, &error);
        if (r < 0)
            *ret_why = vo_asprintf("the previous backup's RBD snapshot of volume '%s' cannot "
                                   "be read: %s", imgs[i].volume, error);
        else if (r == 0)
            *ret_why = vo_asprintf("volume '%s' no longer has the previous backup's RBD "
                                   "snapshot %s", imgs[i].volume, from);
        if (r <= 0)
            return false;
    }
    return true;
}

/* Progress of image i of n, as a share of the whole. */
typedef struct {
    const VoHvBackupPlan *plan;
    size_t i, n;
} Share;

static void report_share(int percent, void *userdata)
{
    const Share *s = userdata;
    if (s->plan->progress)
        s->plan->progress((int)((s->i * 100 + (size_t)percent) / s->n), s->plan->userdata);
}

int vo_backup_rbd_take(VoDaemon *d, const VoVmSpec *spec, VoHvInstance *pause,
                       const char *id, const char *parent_id, const VoHvBackupPlan *plan,
                       const char *nvram_target, VoHvBackupResult *ret, char **ret_error)
{
    VoVmRbdImage *imgs = NULL;
    size_t n_imgs = 0;
    int r = images_of(d, spec, &imgs, &n_imgs, ret_error);
    ret->jobs_failed = true; /* until the snapshots are made: nothing changed */
    if (r < 0)
        return r;
    _cleanup_free_ char *tag = vo_asprintf(BACKUP_RBD_SNAP_PREFIX "%s", id);
    _cleanup_free_ char *from = parent_id ? vo_asprintf(BACKUP_RBD_SNAP_PREFIX "%s",
                                                        parent_id) : NULL;
    bool incremental = plan->incremental && from &&
                       can_build_on(spec, imgs, plan, from, &ret->reason);

    /* The instant: every disk's snapshot with the VM paused (its QEMU's
     * disks drained), its file systems frozen around it; the marker lets a
     * vireod that dies in between undo both at its next start. */
    if (pause)
        vo_snapshot_mark(d, spec->id, spec->name, true, true);
    if (plan->quiesce)
        plan->quiesce(true, plan->userdata);
    r = vo_snapshot_rbd_create(d, spec, tag, pause, ret_error);
    if (plan->quiesce)
        plan->quiesce(false, plan->userdata);
    if (pause)
        vo_snapshot_unmark(d, spec->id);

    /* The copies, from the snapshots, while the VM runs on. */
    size_t n = spec->n_disks + (spec->nvram && nvram_target ? 1 : 0);
    for (size_t i = 0; r >= 0 && i < n; i++) {
        bool nvram = i == spec->n_disks;
        Share share = { plan, i, n };
        VoRbdExport e = { .image = imgs[i].image, .snap = tag,
                          .from_snap = incremental && !nvram ? from : NULL,
                          .target = nvram ? nvram_target : plan->disks[i].target_path,
                          .backing = nvram ? NULL : plan->disks[i].parent_path,
                          .rate = plan->speed, .progress = report_share, .userdata = &share };
        VoRbdConf c = vo_rbd_pool_conf(&imgs[i].pool);
        uint64_t size = 0, copied = 0;
        r = vo_rbd_export_qcow2(&c, &e, &size, &copied, ret_error);
        if (r >= 0)
            log_info("vm %s: backup %s: %s/%s@%s exported (%s, %llu of %llu bytes)", spec->name,
                     id, imgs[i].pool.pool, imgs[i].image, tag,
                     e.from_snap ? "changes since the previous backup" : "full",
                     (unsigned long long)copied, (unsigned long long)size);
    }
    if (r < 0) { /* nothing of it stays: the previous backup's snapshot is the base still */
        _cleanup_free_ char *ignored = NULL;
        if (vo_snapshot_rbd_delete(d, spec, tag, &ignored) < 0)
            log_warn("vm %s: kept RBD snapshots %s (the next backup removes them): %s",
                     spec->name, tag, ignored);
    } else
        ret->jobs_failed = false;
    ret->incremental = incremental;
    vo_vm_rbd_images_free(imgs, n_imgs);
    return r;
}

void vo_backup_rbd_prune(VoDaemon *d, const VoVmSpec *spec, const char *keep)
{
    VoVmRbdImage *imgs = NULL;
    size_t n_imgs = 0;
    _cleanup_free_ char *error = NULL;
    if (images_of(d, spec, &imgs, &n_imgs, &error) < 0) {
        log_warn("vm %s: cannot look for old backup snapshots: %s", spec->name, error);
        return;
    }
    _cleanup_free_ char *tag = keep ? vo_asprintf(BACKUP_RBD_SNAP_PREFIX "%s", keep) : NULL;
    for (size_t i = 0; i < n_imgs; i++) {
        VoRbdConf c = vo_rbd_pool_conf(&imgs[i].pool);
        _cleanup_free_ char *why = NULL;
        if (vo_rbd_snap_prune(&c, imgs[i].image, BACKUP_RBD_SNAP_PREFIX, tag, &why) < 0)
            log_warn("vm %s: cannot remove old backup snapshots of %s/%s: %s", spec->name,
                     imgs[i].pool.pool, imgs[i].image, why);
    }
    vo_vm_rbd_images_free(imgs, n_imgs);
}

/* Writes backup chain layers (qcow2 files, top first) over image img,
 * resized first to the backup's size. Each layer's backing is pinned by
 * name (vo_img_chain_spec): a header changed after the caller's check
 * never makes qemu-img read another file into the VM's disk. */
static int restore_image(const VoVmRbdImage *img, char *const *layers, char **ret_error)
{
    uint64_t size = 0;
    int r = vo_storage_rbd_chain_size(layers, &size, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *chain = vo_img_chain_spec(layers, vo_strv_len(layers));
    if (!chain)
        return vo_error_set(ret_error, -EINVAL, "invalid backup chain of %s", layers[0]);
    VoRbdConf c = vo_rbd_pool_conf(&img->pool);
    r = vo_rbd_image_resize(&c, img->image, size, ret_error);
    if (r >= 0)
        r = vo_storage_rbd_write(&img->pool, img->image, chain, NULL, size, NULL, NULL,
                                 ret_error);
    return r;
}

int vo_backup_rbd_restore_over(VoDaemon *d, VoVm *vm, const VoVmSpec *spec,
                               char **const *sources, char **ret_error)
{
    VoVmRbdImage *imgs = NULL;
    size_t n_imgs = 0;
    int r = images_of(d, spec, &imgs, &n_imgs, ret_error);
    if (r < 0)
        return r;
    /* A VM stopped with --force a moment ago: its QEMU's watches and
     * exclusive locks would hold the snapshots and writes until they expire. */
    for (size_t i = 0; i < n_imgs; i++) {
        VoRbdConf c = vo_rbd_pool_conf(&imgs[i].pool);
        (void)vo_rbd_break_dead_watchers(&c, imgs[i].image);
    }
    /* The way back first, on every image (a restore a crash cut short is
     * rolled back before; a snapshot left otherwise is replaced), then the
     * mark in the VM's document. A mark that cannot be written (the store
     * may hold it all the same: an unknown outcome) keeps the snapshots, so
     * a rollback it asks for later finds them. */
    r = vo_vm_rbd_undo_cut_short(vm, spec, ret_error);
    if (r >= 0)
        r = vo_snapshot_rbd_create(d, spec, BACKUP_RBD_UNDO_SNAP, NULL, ret_error);
    bool undo = r >= 0;
    if (undo && (r = vo_vm_rbd_undo_mark(vm, true, ret_error)) < 0)
        undo = false;
    for (size_t i = 0; r >= 0 && i < n_imgs; i++) {
        if (!sources[i])
            continue;
        r = restore_image(&imgs[i], sources[i], ret_error);
        if (r >= 0 && vo_migrate_fault("rbd-restore-fail-after-write"))
            r = vo_error_set(ret_error, -EIO, "test fault after writing %s/%s",
                             imgs[i].pool.pool, imgs[i].image);
        if (r >= 0 && vo_migrate_fault("rbd-restore-exit-after-write")) /* test: vireod dies */
            _exit(70);
        if (r >= 0)
            log_info("vm %s: restore: %s written over %s/%s", spec->name, sources[i][0],
                     imgs[i].pool.pool, imgs[i].image);
    }
    /* Every disk written: the mark goes. When it cannot (the store does
     * not answer), the disks go back as a failure would take them: a mark
     * left would roll a restore reported done back at the next start. */
    if (r >= 0 && undo && (r = vo_vm_rbd_undo_mark(vm, false, ret_error)) < 0)
        log_error("vm %s: restore written, but its mark cannot be cleared: rolling the disks "
                  "back", spec->name);
    if (r < 0 && undo) { /* the mark stands: set, not cleared */
        _cleanup_free_ char *why = NULL;
        if (vo_snapshot_rbd_revert(d, spec, BACKUP_RBD_UNDO_SNAP, &why) < 0) {
            /* Kept: the only copy of what the VM's disks held. */
            log_error("vm %s: cannot roll the disks back after a failed restore (rbd snap "
                      "rollback to %s does it by hand; the VM's start tries again): %s",
                      spec->name, BACKUP_RBD_UNDO_SNAP, why);
            undo = false; /* the mark stays: the disks are half-made */
        } else {
            log_info("vm %s: restore failed; every disk rolled back", spec->name);
            _cleanup_free_ char *ignored = NULL;
            if (vo_vm_rbd_undo_mark(vm, false, &ignored) < 0)
                undo = false; /* the mark stays, its snapshots too: the start clears it */
        }
    }
    if (undo) {
        _cleanup_free_ char *why = NULL;
        if (vo_snapshot_rbd_delete(d, spec, BACKUP_RBD_UNDO_SNAP, &why) < 0)
            log_warn("vm %s: kept RBD snapshots %s (the next restore replaces them): %s",
                     spec->name, BACKUP_RBD_UNDO_SNAP, why);
    }
    vo_vm_rbd_images_free(imgs, n_imgs);
    return r;
}
