/* fence.h: vireod's side of the host's fence process (docs/ha.md): it
 * starts vireo-fence in its own session when the host is in a cluster, or
 * adopts the one that runs (RUN/fence.pid checked against /proc), and
 * starts it again within about a second when it dies; it tells the fence
 * which QEMUs to kill (RUN/fence/ha/<vm-id> for each running HA VM); it
 * reads the fence's lease (the host record lives on it) and whether the
 * host fenced itself (RUN/fenced). Files: fence/fence-state.h. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "daemon/vms.h"

/* vireod --fence-watchdog DEV: the fence it starts pets DEV (argv kept). */
void vo_fence_set_watchdog(const char *device);
/* In a cluster: adopts or starts the fence and supervises it (a thread).
 * Standalone: stops a fence left from a cluster this host left. Also drops
 * RUN/fence/ha files whose QEMU is gone. 0 or -errno. */
int vo_fence_start(VoDaemon *d);
/* Stops the supervision; the fence keeps running (VMs outlive vireod). */
void vo_fence_stop(VoDaemon *d);

/* The fence's lease while it is confirmed (now before its confirmed_until):
 * 0 and *ret_lease; -ENOENT when the fence holds none (yet, or any more). */
int vo_fence_lease(VoDaemon *d, int64_t *ret_lease);
/* Whether the host fenced itself (RUN/fenced exists); *ret_why (may be
 * NULL) says why and when, malloc'd. *ret_lease (may be NULL): the lease it
 * lost. */
bool vo_fence_is_fenced(VoDaemon *d, char **ret_why, int64_t *ret_lease);
/* Refuses a VM start on a fenced host: 0, or -VO_EFENCED with *ret_error
 * saying why (the API's 409 fenced). */
int vo_fence_check_start(VoDaemon *d, char **ret_error);
/* Ends the fenced state: RUN/fenced removed (vireod reconciled on a new
 * lease), unless it names another lost lease than `lost` by now (the fence
 * fenced again meanwhile: that one stands). */
void vo_fence_clear(VoDaemon *d, int64_t lost);
/* The VM ids RUN/fenced says the fence killed (NULL-terminated, malloc'd;
 * empty when not fenced). */
char **vo_fence_killed_vms(VoDaemon *d);

/* An HA VM's QEMU runs only under a confirmed lease and on the fence's kill
 * list (docs/ha.md "Fencing"). Before the launch: waits up to timeout_ms for
 * the fence to hold a confirmed lease: 0 and *ret_lease; -VO_EFENCED with
 * *ret_error when the host is fenced or holds none in time. */
int vo_fence_ha_lease_wait(VoDaemon *d, const char *vm_name, int timeout_ms, int64_t *ret_lease,
                           char **ret_error);
/* After the QEMU (pid) was put on the kill list: whether the lease checked
 * before the launch is still the fence's, still confirmed, and the host not
 * fenced. Then a fencing to come kills it; otherwise the fence may have
 * fenced before it was listed, and the caller must kill it. Standalone, or
 * not an HA VM: true. */
bool vo_fence_ha_covered(VoVm *vm, int64_t lease);

/* Writes or removes RUN/fence/ha/<vm-id> after a VM's state or "ha"
 * changed: present while an HA VM's QEMU runs. Caller holds vm->lock. */
void vo_fence_vm_sync(VoVm *vm);
