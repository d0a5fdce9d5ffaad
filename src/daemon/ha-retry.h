/* ha-retry.h: an HA start that failed is tried again (docs/ha.md, "When a
 * restart's start fails"). A fenced host's own restart of the HA VMs its
 * fence killed, and the first start of a VM that HA recovery moved to this
 * host, are followed here: when the start task fails, the start is tried
 * again after a backoff (cluster/ha-plan.h: 2, 4, 8 ... s), each attempt
 * counted against the restart limit; past it the VM is left `crashed` with
 * the reason. Before each attempt the VM must still be this host's (its
 * document in the store), HA, stopped by that failure (not started, stopped
 * or deleted by a user meanwhile); while the host is fenced the attempt
 * waits (tried once it is not). Each retry and
 * the give-up are recorded as tasks of kind "ha" (events). The bookkeeping
 * is partly this host's memory, but each HA start is counted in the VM's
 * document ("ha_restarts", cluster/ha-plan.h): a vireod restart neither
 * resets the restart limit nor drops a VM whose HA start had failed (it is
 * followed again at start, resume_pending). */
#pragma once

#include <stdbool.h>

#include "daemon/daemon.h"


#define VO_HA_RETRY_PERIOD_MS 250

/* In a cluster: starts the thread that retries. 0 or -errno. */
int vo_ha_retry_start(VoDaemon *d);
void vo_ha_retry_stop(VoDaemon *d);

/* Follows the start task task_id of an HA restart of VM vm_id (its name
 * for the messages; the start already counted, by the manager's move or
 * vo_ha_retry_count_start): tried again if it fails. No-op when the
 * retrier does not run. */
void vo_ha_retry_follow(VoDaemon *d, const char *vm_id, const char *name, const char *task_id);
/* An HA restart's start was refused before any task (why): tried again
 * after the backoff, or given up when the restart limit allows no more. */
void vo_ha_retry_failed(VoDaemon *d, const char *vm_id, const char *name, const char *why);

/* vm's HA start was refused before any task (why): marked in its document
 * ("ha_start_failed", as a failed start task marks it), so the retries and
 * a vireod restart take it up; follow: not followed yet (the first start of
 * a VM HA recovery moved here), tried again after the backoff from here.
 * An HA start whose caller follows it already passes false. */
void vo_ha_retry_refused(VoDaemon *d, VoVm *vm, bool follow, const char *why);

/* vm, an HA VM, was recorded crashed here by a path that may run before
 * the fence and this retrier do (a migration's recovery at vireod's start:
 * a late take-back whose source QEMU is gone, both sides of a migration
 * gone): its restart is queued here and made by the retrier's next round
 * once it runs, through vo_vm_ha_restart_here (counted against the restart
 * limit: past it, left crashed with again_why; what: how it crashed, for
 * the log). Before each try it is checked as a retry is: while this host
 * is fenced (or the store cannot be read) it waits; a VM no longer this
 * host's, no longer HA or no longer crashed (a user started or deleted it)
 * is dropped. A VM not HA or not crashed, or whose followed HA start is
 * still under way (the fenced host's own restart of it), or once vireod
 * stops (logged: left crashed): nothing queued. */
void vo_ha_retry_restart_crashed(VoDaemon *d, VoVm *vm, const char *what, const char *again_why);

/* Whether an HA start of VM vm_id this retrier follows is still queued or
 * running (its task: vo_ha_retry_follow). */
bool vo_ha_retry_start_under_way(VoDaemon *d, const char *vm_id);

/* Counts one HA start of vm (a fenced host's own restart, a retry) in its
 * document's "ha_restarts" (saved now): true; false, counting nothing,
 * when the restart limit allows no more starts. Takes vm->lock. */
bool vo_ha_retry_count_start(VoVm *vm);
/* Leaves the VM crashed with the restart limit's reason (recorded as an
 * "ha" task): failures, its failed HA starts (0: it was restarted the
 * limit's number of times), why the last one failed or stopped. */
void vo_ha_retry_give_up(VoDaemon *d, const char *vm_id, const char *name, unsigned failures,
                         const char *why);
