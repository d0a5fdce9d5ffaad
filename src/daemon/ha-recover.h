/* ha-recover.h: the manager's HA recovery loop (docs/ha.md, "HA VMs and
 * recovery"): while this host holds the manager role, every
 * VO_HA_RECOVER_PERIOD_MS it looks for member hosts without a live record
 * (down), and restarts their HA VMs that were running on the other hosts:
 * placed (the down host excluded, ha_group's policy held), moved by
 * vo_vm_move_from_down_txn (which fails if the host came back), registered
 * and started by the chosen host (peer calls, made off the round by up to
 * 4 worker threads per chosen host: a host that does not answer holds up
 * only its own hand-overs, a call it does not answer no other). A hand-over that fails is followed: handed over
 * again while the VM waits there unstarted, placed again elsewhere when
 * that host fenced itself, while its record still says so (docs/ha.md). */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"

#define VO_HA_RECOVER_PERIOD_MS 250

/* In a cluster: starts the loop's thread. 0 or -errno. */
int vo_ha_recover_start(VoDaemon *d);
void vo_ha_recover_stop(VoDaemon *d);

/* Records one HA step: logged, and a task of kind "ha" on this host (shown in
 * the task list and the event stream) with result (taken) and its message. */
void vo_ha_note(VoDaemon *d, const char *target, const char *target_id, json_t *result,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
