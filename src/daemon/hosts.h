/* hosts.h: the hosts service: every vireod publishes its host's record in
 * the store under a lease it renews each second, so a host whose vireod
 * stops renewing (dead, cut off) shows offline within the lease's TTL; one
 * vireod holds the manager role through a key on its lease (the first to
 * create `cluster/manager` once it is gone). A standalone host is a cluster
 * of one: the same records, on SQLite. In a cluster the record lives on the
 * fence process's lease instead (daemon/fence.h, docs/ha.md): a vireod
 * crash keeps the host online; the manager key stays on vireod's own,
 * which a cluster's vireod holds only while it runs for or holds the role
 * (it watches `cluster/manager` and runs when the key is gone), so a host
 * that is not the manager renews no lease of vireod's.
 *
 * Keys (docs/internals.md, Key layout):
 *   cluster/members/<host-id>  {"id","name","address","joined_at",
 *                               "mem_ratio","cpu_ratio","maintenance"?}: the
 *                               host belongs
 *                               (kept while it is offline)
 *   cluster/hosts/<host-id>    its live record (lease-bound): facts, load,
 *                              its VMs' load ("vm_load", daemon/vm-load.h)
 *   cluster/manager            {"id","name","since"} (lease-bound) */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"

#define VO_HOST_LEASE_TTL_MS 6000
#define VO_HOST_RENEW_MS 1000
#define VO_HOST_REFRESH_MS 10000
/* The record's period while DRS is not off (d->drs_sampling). */
#define VO_HOST_DRS_REFRESH_MS 5000

/* Registers the host (its member document) and starts the thread that
 * keeps its record and runs for manager. 0 or -errno. */
int vo_hosts_start(VoDaemon *d);
/* Stops the thread and revokes the lease: the record and, when held, the
 * manager role go at once. */
void vo_hosts_stop(VoDaemon *d);
/* Makes the record be rewritten soon (VMs or pools changed). */
void vo_hosts_refresh(VoDaemon *d);
/* Rewrites the record now (a VM was created here: the manager that placed it
 * reads the record once this host answered). 0 or -errno. */
int vo_hosts_publish_now(VoDaemon *d);
/* Rewrites the record now from the caller's thread (a VM was just created
 * here, or a network made or deleted), with what the hosts thread last
 * read of the member document (no store read before the write: one etcd
 * round trip). *ret_rev: the revision of the write (the manager keeps the
 * create's room reserved until its snapshot holds it). 0, -ENOTCONN (no
 * lease now: the record is published once one is taken) or the store's
 * error. */
int vo_hosts_publish_created(VoDaemon *d, int64_t *ret_rev);
/* What placement filters on (the networks or pools of this host) changed
 * here: the record is rewritten before the caller answers (a VM created at
 * once after finds it), else (no lease now) soon. what names it in the
 * warning of a failed write. */
void vo_hosts_publish_changed(VoDaemon *d, const char *what);

/* Sets or clears "maintenance" in host_id's member document (any host may:
 * it is the cluster's; compared at the revision read, so two requests at
 * once both end with the flag as asked). The record of this host is
 * published again at once (its "state": "maintenance" or "online").
 * *ret_changed: whether this call changed it. 0, -ENOENT (no such member)
 * or the store's error. */
int vo_hosts_set_maintenance(VoDaemon *d, const char *host_id, bool on, bool *ret_changed);

/* Every member host with its state: {"hosts": [...]} sorted by name. */
json_t *vo_hosts_list_json(VoDaemon *d, int *ret_err);
/* One host by name or id; NULL with -ENOENT when none. */
json_t *vo_host_get_json(VoDaemon *d, const char *host, int *ret_err);
/* Whether this vireod holds the manager role now. */
bool vo_hosts_is_manager(VoDaemon *d);
