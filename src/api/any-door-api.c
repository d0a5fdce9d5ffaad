/* any-door-api.c: any host answers for the whole cluster (docs/internals.md,
 * "Any door"). Before a route's handler runs, a request for a VM or task
 * this host does not have is looked up in the other hosts' documents and
 * forwarded to the host that has it (mutual TLS, api/forward.h); one that
 * was forwarded already is always served here. One place for every route
 * with {vm} or a task {id}: no handler knows of it. */
#include <string.h>

#include "api/access.h"
#include "api/forward.h"
#include "api/handlers.h"
#include "cluster/any-door.h"
#include "daemon/cluster-view.h"
#include "daemon/vms.h"
#include "util/util.h"

/* A forward that failed (502) names the host, not only its address. */
static void name_the_host(VoReply *rep, const VoClusterHost *h, const char *what,
                          const char *key)
{
    if (rep->status != 502 || !rep->json)
        return;
    const char *msg = json_string_value(json_object_get(json_object_get(rep->json, "error"),
                                                        "message"));
    _cleanup_free_ char *why = vo_strdup(msg ? msg : "no answer");
    vo_reply_error(rep, VO_ERR_BAD_GATEWAY,
                   "host '%s', which has %s '%s', cannot be reached (%s); its %ss are served "
                   "by it alone: retry when it is back (vireo host list)",
                   h->name, what, key, why, what);
}

/* An offline host's VM or task is checked here, on its last document, by
 * the project gate that its own host would run (project-gate.c): one the
 * principal may not see is answered as one that does not exist (404), a
 * role too low on its project 403, as its host would; only who may act on
 * it hears that its host is offline. False with rep filled when refused. */
static bool offline_gate(VoRequest *req, VoReply *rep, const char *pattern, VoRouteOwner owner,
                         const char *doc)
{
    if (owner == VO_ROUTE_OWNER_VM) {
        _cleanup_free_ char *project = vo_vm_doc_project(doc);
        return vo_api_project_gate_vm(req, rep, pattern, project);
    }
    if (strcmp(pattern, "/v1/tasks/{id}"))
        return true; /* the gate reads tasks by id only (vo_access_route_scoped) */
    json_t *task = doc ? json_loads(doc, 0, NULL) : NULL;
    /* An unreadable document is seen by no principal the gate checks. */
    if (!task)
        task = json_object();
    bool pass = vo_api_project_gate_task(req, rep, task);
    json_decref(task);
    return pass;
}

bool vo_api_any_door(VoRequest *req, VoReply *rep, const char *pattern)
{
    VoDaemon *d = req->d;
    VoDoorFacts f = { .owner = vo_route_owner(pattern), .clustered = d->cluster_store != NULL };
    if (f.owner == VO_ROUTE_OWNER_NONE || !f.clustered)
        return false;
    f.forwarded = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                              VO_FORWARDED_HEADER) != NULL;
    if (f.forwarded)
        return false;
    const char *key = req->params[0];
    const char *what = f.owner == VO_ROUTE_OWNER_VM ? "VM" : "task";
    _cleanup_free_ char *host_id = NULL, *doc = NULL;
    int r;
    if (f.owner == VO_ROUTE_OWNER_VM) {
        _cleanup_vm_ VoVm *vm = vo_vms_find(d, key);
        f.here = vm != NULL;
        /* The project gate found none here a moment ago and left it to
         * this door (project-gate.c); one that came meanwhile (a create,
         * a migration or HA restart landing here) is served here by its
         * handler: the gate's check first. */
        _cleanup_free_ char *project = vm ? vo_vm_project(vm) : NULL;
        if (vm && !vo_api_project_gate_vm(req, rep, pattern, project))
            return true;
        r = f.here ? 0 : vo_cluster_locate_vm(d, key, &host_id, &doc);
    } else {
        json_t *t = vo_tasks_get_json(d->tasks, key);
        f.here = t != NULL;
        json_decref(t);
        r = f.here ? 0 : vo_cluster_locate_task(d, key, &host_id, &doc);
    }
    if (r < 0) {
        vo_reply_errno(rep, r, NULL);
        return true;
    }
    f.found = r > 0;
    VoClusterHost h = { 0 };
    if (f.found) {
        r = vo_cluster_host_get(d, host_id, &h);
        if (r == -ENOENT) /* a host removed from the cluster: nobody has it */
            f.found = false;
        else if (r < 0) {
            vo_reply_errno(rep, r, NULL);
            return true;
        }
        f.online = h.online && h.url;
    }
    f.show = !strcmp(req->method, "GET") && !strcmp(pattern, "/v1/vms/{vm}");
    VoDoorAction action = vo_door_decide(&f);
    if ((action == VO_DOOR_OFFLINE_DOC || action == VO_DOOR_OFFLINE) &&
        !offline_gate(req, rep, pattern, f.owner, doc)) {
        vo_cluster_host_clear(&h);
        return true;
    }
    switch (action) {
    case VO_DOOR_LOCAL:
        vo_cluster_host_clear(&h);
        return false;
    case VO_DOOR_FORWARD:
        log_debug("%s %s: forwarded to host %s (%s)", req->method, req->path, h.name, h.url);
        vo_api_forward(req, rep, &d->peer_tls, h.url, h.principal_members);
        /* Unreachable: its gate did not answer, this one does (as offline). */
        if (rep->status == 502 && rep->json && !offline_gate(req, rep, pattern, f.owner, doc))
            break;
        name_the_host(rep, &h, what, key);
        break;
    case VO_DOOR_OFFLINE_DOC: {
        json_t *o = vo_vm_doc_to_api(doc, false, h.name, "offline", vo_wall_ms());
        if (o)
            vo_reply_json(rep, 200, o);
        else
            vo_reply_error(rep, VO_ERR_UNAVAILABLE,
                           "VM '%s' is on host '%s', which is offline, and is still being "
                           "created there; retry when the host is back (vireo host list)", key,
                           h.name);
        break;
    }
    case VO_DOOR_OFFLINE:
        vo_reply_error(rep, VO_ERR_UNAVAILABLE,
                       "%s '%s' is on host '%s', which is offline (its record lapsed): only "
                       "that host can act on it; retry when it is back (vireo host list)",
                       what, key, h.name);
        break;
    }
    vo_cluster_host_clear(&h);
    return true;
}
