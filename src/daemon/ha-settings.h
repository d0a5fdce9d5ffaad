/* ha-settings.h: the cluster's HA setting, the restart limit (docs/ha.md,
 * "The restart limit"): at most max_restarts HA starts of one VM within
 * window_minutes, then it is held back (left where it was, or crashed)
 * with the reason. One document for the whole cluster, read by the
 * manager's recovery rounds and each host's retries as they go: a change
 * takes effect at their next round, with no restart. The pure decisions
 * taking the limit are cluster/ha-plan.h's.
 *
 * Key: cluster/ha {"max_restarts": 1..100, "window_minutes": 1..10080}
 * in the cluster's store (etcd); a standalone host keeps it in its SQLite
 * store, and `vireo cluster init` carries it into the new cluster (a
 * joining host takes the cluster's). Absent or damaged: the defaults
 * (VO_HA_LIMIT_DEFAULT, 3 within 10 minutes). */
#pragma once

#include <jansson.h>

#include "cluster/ha-plan.h"
#include "daemon/daemon.h"

#define VO_HA_SETTINGS_KEY "cluster/ha"

/* The limit stored now (defaults when absent or damaged). 0, or the
 * store's error (*ret then the defaults). */
int vo_ha_limit_get(VoDaemon *d, VoHaLimit *ret);
/* The same for the recovery's and the retries' rounds (any thread): a copy
 * kept while the host's cluster/ watch saw no change of cluster/ha
 * (cluster-follow.h), read again at least every
 * VO_CLUSTER_FOLLOW_RECHECK_MS and after a set on this host. A store that
 * cannot be read gives the last limit read (the defaults before any). */
VoHaLimit vo_ha_limit_followed(VoDaemon *d);

/* GET /v1/cluster/ha: {"max_restarts", "window_minutes"}. */
int vo_ha_settings_show(VoDaemon *d, json_t **ret, char **ret_error);
/* PATCH /v1/cluster/ha: body {"max_restarts"?, "window_minutes"?} (at
 * least one; the other kept). *ret: the settings now. -EINVAL naming the
 * field, or the store's error. */
int vo_ha_settings_set(VoDaemon *d, json_t *body, json_t **ret, char **ret_error);
