/* vm-rbd-restore-undo.c: the way back from a restore over a VM's RBD disks
 * that a crash cut short (see vm-rbd-restore-undo.h). */
#include "daemon/vm-rbd-restore-undo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/vm-internal.h"
#include "daemon/vm-rbd-images.h"
#include "storage/rbd-snap.h"
#include "util/util.h"

/* What the rollback needs of a VM's disks, said when only some are RBD
 * images (a disk added after the restore was cut short). */
#define UNDO_NEEDS "rolling back a restore over a VM needs all its disks in rbd pools"

int vo_vm_rbd_undo_mark(VoVm *vm, bool on, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    bool was = vm->rbd_restore_undo;
    vm->rbd_restore_undo = on;
    int r = vo_vm_save(vm);
    if (r < 0) {
        vm->rbd_restore_undo = was;
        r = vo_error_set(ret_error, r, "VM '%s': cannot %s the mark of a restore over its "
                         "disks in its document: %s", vm->spec->name, on ? "write" : "clear",
                         strerror(-r));
    }
    pthread_mutex_unlock(&vm->lock);
    return r;
}

/* How many of spec's RBD images have the undo snapshot, or -errno. */
static int images_with_undo(VoDaemon *d, const VoVmSpec *spec)
{
    VoVmRbdImage *imgs = NULL;
    size_t n = 0;
    _cleanup_free_ char *error = NULL;
    int r = vo_vm_rbd_images(d, spec, UNDO_NEEDS, &imgs, &n, &error);
    int found = 0;
    for (size_t i = 0; r > 0 && i < n; i++) {
        VoRbdConf c = vo_rbd_pool_conf(&imgs[i].pool);
        int k = vo_rbd_snap_exists(&c, imgs[i].image, BACKUP_RBD_UNDO_SNAP, &error);
        if (k < 0)
            r = k;
        else
            found += k > 0;
    }
    vo_vm_rbd_images_free(imgs, n);
    return r < 0 ? r : found;
}

int vo_vm_rbd_undo_cut_short(VoVm *vm, const VoVmSpec *spec, char **ret_error)
{
    VoDaemon *d = vm->d;
    pthread_mutex_lock(&vm->lock);
    bool marked = vm->rbd_restore_undo;
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *dir = vo_vm_state_dir(d, spec->id);
    _cleanup_free_ char *file = vo_asprintf("%s/" BACKUP_RBD_UNDO_MARK, dir);
    bool old_mark = access(file, F_OK) == 0; /* an older vireod's */
    if (!marked && !old_mark)
        return 0;
    _cleanup_free_ char *why = NULL;
    int r = vo_vm_rbd_images_rollback(d, spec, UNDO_NEEDS, BACKUP_RBD_UNDO_SNAP, &why);
    /* vireo removes the snapshots only once the mark is cleared: none left
     * means an operator rolled back and removed them by hand. */
    bool by_hand = r == -ENOENT && images_with_undo(d, spec) == 0;
    if (r < 0 && !by_hand)
        return vo_error_set(ret_error, -EBUSY, "VM '%s': a restore over its disks was cut "
                            "short and they cannot be rolled back (by hand: rbd snap rollback "
                            "to %s, then rbd snap rm of it, on every disk): %s", spec->name,
                            BACKUP_RBD_UNDO_SNAP, why);
    if (by_hand)
        log_warn("vm %s: a restore over its disks was cut short, and none has RBD snapshot "
                 "%s any more (rolled back and removed by hand): mark cleared", spec->name,
                 BACKUP_RBD_UNDO_SNAP);
    else
        log_warn("vm %s: a restore over its disks was cut short: every disk rolled back to %s",
                 spec->name, BACKUP_RBD_UNDO_SNAP);
    /* The mark goes first: a snapshot left is replaced by the next
     * restore, a mark left without its snapshots would be cleared as done
     * by hand. A mark that cannot be cleared fails the start; the next
     * one rolls back again (to the same snapshots). */
    if (marked && (r = vo_vm_rbd_undo_mark(vm, false, ret_error)) < 0)
        return r;
    (void)unlink(file);
    free(TAKE_PTR(why));
    if (!by_hand &&
        vo_vm_rbd_images_snap_remove(d, spec, UNDO_NEEDS, BACKUP_RBD_UNDO_SNAP, &why) < 0)
        log_warn("vm %s: kept RBD snapshots %s: %s", spec->name, BACKUP_RBD_UNDO_SNAP, why);
    return 1;
}
