/* ha-retry.h: an HA start that failed is tried again (docs/ha.md, "When a
 * restart's start fails"). A fenced host's own restart of the HA VMs its
 * fence killed, and the first start of a VM that HA recovery moved to this
 * host, are followed here: when the start task fails, the start is tried
 * again after a backoff (cluster/ha-plan.h: 2, 4, 8 ... s), each attempt
 * counted against the restart limit; past it the VM is left `crashed` with
 * the reason. Before each attempt the VM must still be this host's (its
 * document in the store), HA, stopped by that failure (not started, stopped
 * or deleted by a user meanwhile), and the host not fenced. Each retry and
 * the give-up are recorded as tasks of kind "ha" (events). The bookkeeping
 * is this host's memory: a vireod restart forgets it. */
#pragma once

#include "daemon/daemon.h"

#define VO_HA_RETRY_PERIOD_MS 250

/* In a cluster: starts the thread that retries. 0 or -errno. */
int vo_ha_retry_start(VoDaemon *d);
void vo_ha_retry_stop(VoDaemon *d);

/* Follows the start task task_id of an HA restart of VM vm_id (its name
 * for the messages): counted against the restart limit, tried again if it
 * fails. No-op when the retrier does not run. */
void vo_ha_retry_follow(VoDaemon *d, const char *vm_id, const char *name, const char *task_id);
/* An HA restart's start was refused before any task (why): counted, and
 * tried again after the backoff. */
void vo_ha_retry_failed(VoDaemon *d, const char *vm_id, const char *name, const char *why);
