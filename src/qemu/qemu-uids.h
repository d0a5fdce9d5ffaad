/* qemu-uids.h: a uid of its own for each VM's QEMU (vireod --qemu-uid-range,
 * docs/security.md): picked from the range at a start, free when no process
 * runs as it and no QEMU holds its lock. The VM's uid is
 * remembered by its run state: its QEMU's command line (-run-with
 * user=UID:GID) and the owner of RUN/vms/ID/qemu/. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The default range (65536 uids, 0x70000000-0x7000ffff): above the
 * subordinate uids useradd hands out (100000-600100000 by default), above
 * systemd's dynamic users (61184-65519) and its container range
 * (524288-1879048191), below systemd's foreign range (2147352576-). */
#define VO_QEMU_UID_FIRST 1879048192u
#define VO_QEMU_UID_LAST 1879113727u

/* Machine-wide: the file UID in it is read-locked by the QEMU of that uid
 * (the lock's fd is passed to it), so a QEMU still root, before it dropped
 * to its uid, holds the uid too, for every vireod of the machine. */
#define VO_QEMU_UID_LOCK_DIR "/run/lock/vireo-qemu-uids"

/* The directory of a VM's run dir its QEMU owns (its uid, 0700). */
#define VO_QEMU_OWN_DIR "qemu"

/* Parses "FIRST-LAST" (1 <= FIRST <= LAST < 2^31-1). 0, or -EINVAL. */
int vo_qemu_uid_range_parse(const char *text, uid_t *ret_first, uid_t *ret_last);

/* The lowest uid of first..last not among used[0..n_used). 0, or -EBUSY
 * with *ret_error ("no free uid ...") when every one is used. */
int vo_qemu_uid_pick(uid_t first, uid_t last, const uid_t *used, size_t n_used, uid_t *ret,
                     char **ret_error);

/* A free uid of first..last for a QEMU about to start: not one any process
 * of the machine runs as (real, effective, saved, fs; zombies aside), nor
 * one whose lock file (lock_dir/UID, VO_QEMU_UID_LOCK_DIR) a QEMU of any
 * vireod holds (it may still be root). lock_dir is made when missing and
 * must be the caller's user's alone (0700), else -EPERM. *ret_lock_fd
 * holds the uid's lock: the caller passes it to the QEMU (which keeps it,
 * and the uid, until it exits) and closes its copy once the QEMU is gone
 * and so is what it left under its uid (its own dir). 0, or -errno with
 * *ret_error (-EBUSY: the range is full). */
int vo_qemu_uid_claim(const char *lock_dir, uid_t first, uid_t last, uid_t *ret,
                      int *ret_lock_fd, char **ret_error);

/* A read lock of uid's file in lock_dir (as a claim's, shared with the
 * QEMU's own): the uid stays taken while the returned fd is open. An fd, or
 * -errno with *ret_error. */
int vo_qemu_uid_hold(const char *lock_dir, uid_t uid, char **ret_error);

/* The uid of "-run-with user=UID:GID" in a QEMU's recorded command line
 * (qemu.argv's text); false when it names no numeric uid. */
bool vo_qemu_uid_from_argv(const char *argv_text, uid_t *ret);
