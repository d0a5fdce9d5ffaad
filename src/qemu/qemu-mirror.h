/* qemu-mirror.h: the QEMU driver's live migration of local disks (see
 * driver.h, mirror_*): NBD exports on the destination, blockdev-mirror on
 * the source, the mirrors' completion at the switch-over and their cancel. */
#pragma once

#include "hypervisor/driver.h"

typedef struct VoQemuMirror VoQemuMirror; /* the source's mirrors under way */

/* The driver ops (each takes the VM's qmp_lock). */
int vo_qemu_mirror_export(VoHvInstance *vm, const VoHvMirrorPlan *plan, char **ret_error);
int vo_qemu_mirror_start(VoHvInstance *vm, const VoHvMirrorPlan *plan, char **ret_error);
int vo_qemu_mirror_query(VoHvInstance *vm, VoHvMirrorProgress *ret);

/* Hooks of the migrate_* ops (qemu-migrate.c); caller holds qmp_lock.
 * check_ready: 0 without mirrors or when every one is ready, -EBUSY (with
 * a message) before. switchover: at pre-switchover, completes the ready
 * mirrors, then migrate-continue; on failure the migration is cancelled.
 * complete: the same without the continue (post-copy: its caller
 * continues once the ownership switched), on failure cancelled too.
 * cancel: cancels the mirrors and drops the NBD nodes (none: 0); without a
 * mirror of this instance, those an earlier vireod left (found by name).
 * stop_server: the destination's NBD server stops (none: 0). */
int vo_qemu_mirror_check_ready(VoHvInstance *vm, char **ret_error);
int vo_qemu_mirror_switchover(VoHvInstance *vm, char **ret_error);
int vo_qemu_mirror_complete(VoHvInstance *vm, char **ret_error);
int vo_qemu_mirror_cancel(VoHvInstance *vm, char **ret_error);
int vo_qemu_mirror_stop_server(VoHvInstance *vm, char **ret_error);
void vo_qemu_mirror_free(VoQemuMirror *m);
