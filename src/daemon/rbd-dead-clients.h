/* rbd-dead-clients.h: a VM's QEMU that is killed (vm stop --force, a
 * crash) leaves its RBD images watched until Ceph's watch timeout (about
 * 30 s), so removing them fails with "open by a client" meanwhile. vireod
 * learns each QEMU's own Ceph client addresses when it starts it (the
 * watchers of its disks that were not there before the launch), and
 * remembers them as dead once it has reaped that QEMU. A remove that finds
 * the image watched blocklists only those addresses (a process that is
 * gone: never a live client, whose address differs by its nonce) and
 * tries again. */
#pragma once

#include "conf/vm-spec.h"
#include "daemon/daemon.h"
#include "storage/rbd-client.h"

/* The watcher addresses of spec's RBD disks that are not shareable (an
 * empty list when none), or NULL: no RBD disks, or the cluster cannot be
 * asked. */
char **vo_rbd_clients_watching(VoDaemon *d, const VoVmSpec *spec);
/* After its QEMU started (or a disk was plugged into it): adds to
 * run_dir/rbd-clients the addresses that watch spec's disks now and did
 * not in before (NULL, unknown: nothing is recorded). */
void vo_rbd_clients_record(VoDaemon *d, const VoVmSpec *spec, char *const *before,
                           const char *run_dir);
/* Its QEMU was reaped: the addresses of run_dir/rbd-clients are dead ones
 * (for VO_RBD_DEAD_CLIENT_MS), and the file goes. No Ceph call. */
void vo_rbd_clients_exited(const char *run_dir);
#define VO_RBD_DEAD_CLIENT_MS (5 * 60 * 1000)
/* Every watcher of image is a dead QEMU's (above), and there is one: each
 * blocklisted, then waited for (bounded: 5 s) until Ceph has dropped their
 * watches, so that a read-write open need not wait on the dead lock owner
 * (VO_RBD_TIMEOUT_S). True when that went through. */
bool vo_rbd_break_dead_watchers(const VoRbdConf *c, const char *image);
/* vo_rbd_image_remove; first, when the image is watched by dead QEMUs
 * (above) only, those are blocklisted and their watches waited out
 * (bounded: 5 s). */
int vo_rbd_remove_past_dead(const VoRbdConf *c, const char *image, char **ret_error);
