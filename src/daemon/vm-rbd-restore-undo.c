/* vm-rbd-restore-undo.c: the way back from a restore over a VM's RBD disks
 * that a crash cut short (see vm-rbd-restore-undo.h). */
#include "daemon/vm-rbd-restore-undo.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/vm-internal.h"
#include "daemon/vm-rbd-images.h"
#include "util/util.h"

/* What the rollback needs of a VM's disks, said when only some are RBD
 * images (a disk added after the restore was cut short). */
#define UNDO_NEEDS "rolling back a restore over a VM needs all its disks in rbd pools"

/* STATE/vms/ID/rbd-restore-undo: there from the undo snapshots' making
 * until every disk is the backup's or rolled back, so a crash in between
 * (the disks part backup, part not) is told at the VM's next start. */
char *vo_vm_rbd_undo_mark(VoDaemon *d, const VoVmSpec *spec)
{
    _cleanup_free_ char *dir = vo_vm_state_dir(d, spec->id);
    (void)mkdir(dir, 0700);
    return vo_asprintf("%s/" BACKUP_RBD_UNDO_MARK, dir);
}

int vo_vm_rbd_undo_cut_short(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    _cleanup_free_ char *mark = vo_vm_rbd_undo_mark(d, spec);
    if (access(mark, F_OK) < 0)
        return 0;
    _cleanup_free_ char *why = NULL;
    if (vo_vm_rbd_images_rollback(d, spec, UNDO_NEEDS, BACKUP_RBD_UNDO_SNAP, &why) < 0)
        return vo_error_set(ret_error, -EBUSY, "VM '%s': a restore over its disks was cut "
                            "short and they cannot be rolled back (rbd snap rollback to %s "
                            "by hand, then remove %s): %s", spec->name, BACKUP_RBD_UNDO_SNAP,
                            mark, why);
    log_warn("vm %s: a restore over its disks was cut short: every disk rolled back to %s",
             spec->name, BACKUP_RBD_UNDO_SNAP);
    free(TAKE_PTR(why));
    if (vo_vm_rbd_images_snap_remove(d, spec, UNDO_NEEDS, BACKUP_RBD_UNDO_SNAP, &why) < 0)
        log_warn("vm %s: kept RBD snapshots %s: %s", spec->name, BACKUP_RBD_UNDO_SNAP, why);
    (void)unlink(mark);
    return 1;
}
