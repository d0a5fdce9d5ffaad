/* metrics.h: monitoring (docs/monitoring.md): a thread samples this host
 * and each of its running VMs every interval (default 10 s, vireod
 * --metrics-interval), keeps their history (metrics/rrd.h) in
 * STATE/metrics/{host,vms/<vm-id>}.rrd, and answers the API's metrics
 * routes and the Prometheus text. A VM's history goes when the VM leaves
 * this host (deleted, or moved to another host, which starts its own). Its
 * lock is a leaf: held by no one taking another lock. */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"

#define VO_METRICS_INTERVAL_MS 10000

/* Starts the sampler (interval_ms > 0). 0 or -errno. */
int vo_metrics_start(VoDaemon *d, int interval_ms);
void vo_metrics_stop(void);
/* A VM left the registry: its history goes at once (the sampler wakes). */
void vo_metrics_wake(void);

/* The history of the VM with this id (range "1h", "1d" or "30d"), with
 * "id", "name", "interval" and the series; -ENOENT when it has none yet
 * (never sampled). */
int vo_metrics_vm_json(const char *vm_id, const char *range, json_t **ret);
/* This host's, the same way. */
int vo_metrics_host_json(const char *range, json_t **ret);
/* Prometheus text exposition format (version 0.0.4) of the last samples:
 * caller frees. */
char *vo_metrics_prometheus(void);
