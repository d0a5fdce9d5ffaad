/* drs.h: the manager's balancing loop (docs/drs.md). On every host of a
 * cluster a thread reads the DRS settings each VO_DRS_ROUND_MS (so the host
 * publishes its record, with its VMs' load, every VO_HOST_DRS_REFRESH_MS
 * while DRS is not off); on the confirmed manager it also runs a round: it
 * builds the planner's input (cluster/drs.h) from the hosts' records and the
 * VM documents, skips while a host is offline (HA recovery first), in
 * maintenance or fenced, or while a DRS move is under way, and turns the
 * planner's move into a recommendation (manual) or a live migration (auto,
 * one at a time). Each decision is an event (a task of kind "drs"); the
 * round's numbers go to cluster/drs/status (daemon/drs-settings.h). */
#pragma once

#include "daemon/daemon.h"

/* In a cluster: starts the loop's thread. 0 or -errno. */
int vo_drs_start(VoDaemon *d);
void vo_drs_stop(VoDaemon *d);

/* Why balancing waits now (malloc'd), or NULL: a host offline (HA recovery
 * first), fenced or in maintenance, or the hosts cannot be read. The loop
 * skips its rounds for it; applying a recommendation is refused for it. */
char *vo_drs_paused_reason(VoDaemon *d);
