/* qemu-backup.h: backups of a VM's disks through QEMU's block layer (QMP
 * blockdev-backup jobs with persistent dirty bitmaps), either in the VM's own
 * QEMU or, for a VM that is not running, in a qemu-storage-daemon started for
 * the purpose. The plan and result types are the driver's (driver.h). */
#pragma once

#include <pthread.h>

#include "hypervisor/driver.h"
#include "qmp/qmp.h"

/* The persistent dirty bitmap each qcow2 disk carries is named this prefix
 * and the VM's id (VoHvBackupPlan.bitmap), so a volume moved to another VM
 * never passes for that VM's backup state. */
#define VO_BACKUP_BITMAP_PREFIX "vireo-backup-"
/* In the work dir while a qemu-storage-daemon serves a backup. */
#define VO_BACKUP_QSD_PIDFILE "backup-qsd.pid"

/* Runs a backup plan on a QMP monitor whose disk nodes are named by
 * vo_qemu_disk_node(slot). lock (may be NULL) is taken around each command,
 * not across the whole job, so others can use the monitor meanwhile. */
int vo_qemu_backup_over_qmp(VoQmp *qmp, pthread_mutex_t *lock, const VoHvBackupPlan *plan,
                            VoHvBackupResult *ret, char **ret_error);

/* The same for a VM that is not running: starts qemu-storage-daemon on the
 * plan's disks (sockets and log in plan->work_dir), runs the plan, and quits
 * it cleanly so the bitmaps are written; kills it by PID on any failure. */
int vo_qemu_backup_offline(const VoHvBackupPlan *plan, VoHvBackupResult *ret, char **ret_error);

/* At vireod start: kills a qemu-storage-daemon that a backup in work_dir
 * left running when vireod died (its pidfile says which; checked against
 * /proc so a reused pid is never hit). */
void vo_qemu_backup_kill_leftover(const char *work_dir);
