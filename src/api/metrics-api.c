/* metrics-api.c: monitoring routes (docs/monitoring.md): a VM's history
 * (GET /v1/vms/{vm}/metrics: in a cluster the any door forwards it to the
 * VM's host), a host's (GET /v1/hosts/{host}/metrics: another host's is
 * forwarded to it) and the Prometheus text of this host (GET /metrics). */
#include <string.h>

#include "api/forward.h"
#include "api/handlers.h"
#include "daemon/cluster-view.h"
#include "daemon/metrics.h"
#include "daemon/vms.h"
#include "util/util.h"

/* ?range=, "1h" when absent; NULL with rep filled (400) when bad. */
static const char *range_arg(VoRequest *req, VoReply *rep)
{
    const char *range = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "range");
    if (!range)
        return "1h";
    if (strcmp(range, "1h") && strcmp(range, "1d") && strcmp(range, "30d")) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "range '%s' is not one of 1h (10 s steps), 1d (1 min steps) or 30d "
                       "(30 min steps)", range);
        return NULL;
    }
    return range;
}

void vo_api_vm_metrics(VoRequest *req, VoReply *rep)
{
    const char *range = range_arg(req, rep);
    if (!range)
        return;
    _cleanup_vm_ VoVm *vm = vo_vms_find(req->d, req->params[0]);
    if (!vm) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "VM '%s' does not exist", req->params[0]);
        return;
    }
    _cleanup_free_ char *id = vo_vm_id(vm), *name = vo_vm_name(vm);
    json_t *j = NULL;
    int r = vo_metrics_vm_json(id, range, &j);
    /* The VM's name, not what the path said (its name or its id). */
    if (r == -ENOENT) /* not sampled yet: an empty history */
        j = json_pack("{s:s, s:s, s:s, s:b, s:[], s:{}}", "id", id, "name", name, "range",
                      range, "running", false, "timestamps", "series");
    else if (!strcmp(json_string_value(json_object_get(j, "name")) ?: "", ""))
        /* read from its file, not sampled yet since vireod started */
        json_object_set_new(j, "name", json_string(name));
    json_object_set_new(j, "host", json_string(req->d->host_name));
    vo_reply_json(rep, 200, j);
}

void vo_api_host_metrics(VoRequest *req, VoReply *rep)
{
    VoDaemon *d = req->d;
    const char *range = range_arg(req, rep);
    if (!range)
        return;
    const char *host = req->params[0];
    bool here = !strcmp(host, d->host_id) || !strcmp(host, d->host_name);
    bool forwarded = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 VO_FORWARDED_HEADER) != NULL;
    if (!here && d->cluster_store && !forwarded) {
        VoClusterHost h = { 0 };
        int r = vo_cluster_host_find(d, host, &h);
        if (r == -ENOENT)
            vo_reply_error(rep, VO_ERR_NOT_FOUND, "host '%s' does not exist", host);
        else if (r < 0)
            vo_reply_errno(rep, r, "cannot read the hosts");
        else if (!h.online || !h.url)
            vo_reply_error(rep, VO_ERR_UNAVAILABLE,
                           "host '%s' is offline: its metrics are kept by it alone; retry when "
                           "it is back (vireo host list)", h.name);
        else
            vo_api_forward(req, rep, &d->peer_tls, h.url, h.principal_members);
        vo_cluster_host_clear(&h);
        return;
    }
    if (!here) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "host '%s' does not exist", host);
        return;
    }
    json_t *j = NULL;
    int r = vo_metrics_host_json(range, &j);
    if (r < 0) {
        vo_reply_errno(rep, r, "no monitoring history yet");
        return;
    }
    vo_reply_json(rep, 200, j);
}

void vo_api_prometheus(VoRequest *req, VoReply *rep)
{
    rep->status = 200;
    rep->text = vo_metrics_prometheus();
    rep->text_len = strlen(rep->text);
    rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
