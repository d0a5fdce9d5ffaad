/* drs-settings.h: the cluster's DRS documents (docs/drs.md) and what the
 * API does with them, on any host: the settings (mode, level), the
 * manager's status with its recommendations, the move under way, and each
 * VM's last move (for the cooldown a new manager keeps). The balancing loop
 * itself is daemon/drs.h.
 *
 * Keys (etcd, d->cluster_store):
 *   cluster/drs                 {"mode": "off|manual|auto", "level": 1..5}
 *                               (absent: off, VO_DRS_LEVEL_DEFAULT)
 *   cluster/drs/status          the manager's last round (GET /v1/cluster/drs)
 *   cluster/drs/moving          the one DRS migration under way (auto or an
 *                               applied recommendation): {"vm","vm_id","from",
 *                               "from_id","to","to_id","task","by","at"}
 *   cluster/drs/moved/<vm-id>   {"at": wall ms, "to": host id}: its last live
 *                               migration (DRS or not); after failed DRS
 *                               moves also {"failures": n, "retry_after":
 *                               wall ms} (vo_drs_note_failed) */
#pragma once

#include <jansson.h>

#include "cluster/drs.h"
#include "daemon/daemon.h"

#define VO_DRS_SETTINGS_KEY "cluster/drs"
#define VO_DRS_STATUS_KEY "cluster/drs/status"
#define VO_DRS_MOVING_KEY "cluster/drs/moving"
#define VO_DRS_MOVED_PREFIX "cluster/drs/moved/"

/* The settings document (drs-config.c). */

/* -ENOTCONN with "not in a cluster" in *ret_error on a standalone host. */
int vo_drs_need_cluster(VoDaemon *d, char **ret_error);
/* The settings (defaults when absent or damaged). 0, -ENOTCONN standalone,
 * or the store's error. */
int vo_drs_settings_get(VoDaemon *d, VoDrsSettings *ret);
/* The same for the balancing loop's rounds (one thread): a copy kept while
 * the host's cluster/ watch saw no change of cluster/drs
 * (cluster-follow.h), read again at least every
 * VO_CLUSTER_FOLLOW_RECHECK_MS. */
int vo_drs_settings_followed(VoDaemon *d, VoDrsSettings *ret);
/* {"mode", "level", "threshold"}: the settings as the API shows them. */
json_t *vo_drs_settings_json(const VoDrsSettings *s);
/* PUT /v1/cluster/drs: body {"mode"?, "level"?} (at least one; the other
 * kept as stored when the set is written: a field another host set
 * meanwhile holds). *ret: the settings now. -EINVAL naming the field,
 * -ENOTCONN ("not in a cluster"), -ESTALE (changed under each of
 * VO_SETTINGS_PUT_TRIES tries), or the store's error. */
int vo_drs_settings_set(VoDaemon *d, json_t *body, json_t **ret, char **ret_error);

/* The other documents (drs-settings.c). */
/* GET /v1/cluster/drs: {"mode","level","threshold","status": the manager's
 * last round or null}. */
int vo_drs_show(VoDaemon *d, json_t **ret, char **ret_error);
/* GET /v1/cluster/recommendations: {"mode", "recommendations": [...]}. */
int vo_drs_recommendations(VoDaemon *d, json_t **ret, char **ret_error);
/* POST /v1/cluster/recommendations/ID/apply: starts that live migration
 * (the VM's host's task, *ret_task). -ENOENT (no such recommendation),
 * -EBUSY (a DRS move is under way; the VM is no longer on that host; a
 * host is offline, fenced or in maintenance: HA recovery and maintenance
 * come first, as for the balancing loop's own moves). */
int vo_drs_apply(VoDaemon *d, const char *id, json_t **ret_task, char **ret_error);

/* Starts the live migration of vm_id from from_id (its host) to to_id
 * through the VM's host (vo_vm_migrate here, its POST /v1/vms/{vm}/migrate
 * there), recorded in cluster/drs/moving first (one at a time: -EBUSY when
 * one is there). info: what the moving document carries besides (names,
 * numbers; borrowed). 0 with *ret_task (the migration task) or -errno. */
int vo_drs_start_move(VoDaemon *d, const char *vm_id, const char *from_id, const char *to_id,
                      json_t *info, json_t **ret_task, char **ret_error);

/* After a live migration of vm_id to to_id succeeded (migrate.c): its time
 * in cluster/drs/moved/<vm-id>. Failures are logged only. */
void vo_drs_note_moved(VoDaemon *d, const char *vm_id, const char *to_id);

/* After a DRS move of vm_id failed (or could not start): its failures in
 * cluster/drs/moved/<vm-id> ("failures", "retry_after": wall ms) so the
 * balancing loop does not propose it again before then (vo_drs_backoff_ms;
 * a success, vo_drs_note_moved, starts afresh). Returns the backoff (ms).
 * Store failures are logged only. */
int64_t vo_drs_note_failed(VoDaemon *d, const char *vm_id);
