/* qemu-confine.h: QEMU as an unprivileged user (docs/security.md): the user
 * (made when missing), what of the VM's run dir it owns, and the files and
 * secrets QMP names after QEMU dropped to it, handed over by vireod (fds in
 * an fdset, secrets as data) since QEMU can no longer open them itself. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "qemu/qemu-instance.h"

/* The default user; vireod --qemu-user root (or "") turns confinement off. */
#define VO_QEMU_DEFAULT_USER "vireo-qemu"

/* The uid and gid of user name; a missing one is made (a system user and
 * group, no home, no shell) when create. 0, or -errno with *ret_error. */
int vo_qemu_user_resolve(const char *name, bool create, uid_t *ret_uid, gid_t *ret_gid,
                         char **ret_error);

/* Whether the user (uid, gid) may walk down to path: every directory on the
 * way searchable by it. false names the first one that is not in
 * *ret_blocked (malloc'd). */
bool vo_qemu_path_reachable(const char *path, uid_t uid, gid_t gid, char **ret_blocked);

/* Gives path (a VM's run dir, a certificate copy) to the driver's QEMU user,
 * with mode (-ELOOP, nothing changed, when path is a symlink); nothing when QEMU is not confined (d NULL or without
 * qemu_user). 0 or -errno. */
int vo_qemu_give(const VoHvDriver *d, const char *path, mode_t mode);

/* Shares a VM's run dir with the driver's QEMU user: root's, QEMU's group,
 * 01770. QEMU makes files in it (screendumps, sockets); the sticky bit
 * keeps what root made there (the QMP socket, pidfile, qemu.argv) from
 * being renamed or replaced by it, or by another VM's QEMU (all share the
 * user). With per-VM uids (d->qemu_uid_first) 0710: QEMU's group may only
 * pass through to the VM's own dir (vo_qemu_own_dir_make). Nothing when
 * QEMU is not confined. 0 or -errno. */
int vo_qemu_share_dir(const VoHvDriver *d, const char *path);

/* A directory made at path, 0700, root's, and an fd of it (opened without
 * following a symlink, checked to be the one just made), or -errno (-EEXIST
 * when path is there). For what vireod makes in a directory a QEMU may
 * write in, through the fd. */
int vo_qemu_mkdir_fresh(const char *path);

/* With per-VM uids: RUN/vms/ID/qemu (VO_QEMU_OWN_DIR) made afresh, owned by
 * uid and QEMU's group, 0700: where that VM's QEMU alone writes after its
 * start. Its path in *ret_path. 0, or -errno with *ret_error. */
int vo_qemu_own_dir_make(const VoHvDriver *d, const char *run_dir, uid_t uid, char **ret_path,
                         char **ret_error);

/* The VM's own dir removed (its QEMU gone), following no symlink in it. */
void vo_qemu_own_dir_remove(const char *run_dir);

/* For a confined vm, rewrites props (a blockdev-add's or object-add's
 * arguments, in place): each {"driver":"file","filename":P} anywhere in it
 * gets /dev/fdset/N of P opened by vireod (read-only, and read-write unless
 * the node is read-only), and a secret object's "file" becomes its data.
 * Caller holds qmp_lock. Nothing for an unconfined vm. 0, or -errno with
 * *ret_error. */
int vo_qemu_confine_props(VoHvInstance *vm, json_t *props, char **ret_error);

/* The name under which a confined vm's QEMU opens path: /dev/fdset/N of
 * path opened by vireod (read-only, and read-write unless readonly), or path
 * itself for an unconfined vm. Caller holds qmp_lock. */
int vo_qemu_confine_path(VoHvInstance *vm, const char *path, bool readonly, char **ret_path,
                         char **ret_error);

/* vo_qemu_confine_props for the arguments of cmd when it opens files or
 * reads secrets (blockdev-add, object-add); nothing for other commands. */
int vo_qemu_confine_command(VoHvInstance *vm, const char *cmd, json_t *args, char **ret_error);

/* cmd with args run over vm's QMP (caller holds qmp_lock): files and
 * secrets handed over first (vo_qemu_confine_command), and after a command
 * that may have left an fdset unused (blockdev-del, eject, a medium change,
 * a refused blockdev-add) every fdset no block node uses removed, so QEMU
 * keeps no fd of a file it let go. 0, or -errno with *ret_error (QEMU's
 * error text when it refused). */
int vo_qemu_confine_execute(VoHvInstance *vm, const char *cmd, json_t *args, json_t **ret,
                            char **ret_error);

/* vireod's start: QEMU's user (user NULL, "" or "root": unconfined; made
 * when missing; -errno when it cannot be) and its cgroups under
 * cgroup_base (NULL or "off": none; a host without usable cgroups gets a
 * warning and none), both logged. run_dir: VMs' run dirs are below it (a
 * warning when QEMU's user cannot reach it). */
int vo_qemu_confine_setup(VoHvDriver *d, const char *user, const char *cgroup_base,
                          const char *run_dir);
