/* host-api.c: /v1/host (this host), /v1/hosts (every host of the cluster),
 * a host's maintenance and evacuation, and /v1/tasks. */
#include <string.h>

#include "api/forward.h"
#include "api/handlers.h"
#include "cluster/any-door.h"
#include "conf/names.h"
#include "daemon/cluster-view.h"
#include "daemon/hosts.h"
#include "daemon/maintenance.h"
#include "util/util.h"

void vo_api_host_show(VoRequest *req, VoReply *rep)
{
    VoDaemon *d = req->d;
    char hostname[256] = "";
    gethostname(hostname, sizeof(hostname) - 1);
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:b}", "version", VIREO_VERSION, "hostname",
                          hostname, "driver", d->driver->name, "cpus", (int)d->limits.max_vcpus,
                          "memory_mib", (json_int_t)d->limits.max_memory_mib, "kvm_usable",
                          d->driver->kvm_usable);
    json_object_set_new(o, "kvm_reason",
                        d->driver->kvm_reason ? json_string(d->driver->kvm_reason) : json_null());
    json_object_set_new(o, "qemu_version", d->hv_version ? json_string(d->hv_version) : json_null());
    json_object_set_new(o, "id", json_string(d->host_id));
    json_object_set_new(o, "name", json_string(d->host_name));
    json_object_set_new(o, "manager", json_boolean(vo_hosts_is_manager(d)));
    vo_reply_json(rep, 200, o);
}

void vo_api_hosts_list(VoRequest *req, VoReply *rep)
{
    int r = 0;
    json_t *list = vo_hosts_list_json(req->d, &r);
    if (!list)
        vo_reply_errno(rep, r, "cannot read the hosts");
    else
        vo_reply_json(rep, 200, list);
}

void vo_api_host_get(VoRequest *req, VoReply *rep)
{
    int r = 0;
    json_t *host = vo_host_get_json(req->d, req->params[0], &r);
    if (host)
        vo_reply_json(rep, 200, host);
    else if (r == -ENOENT)
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "host '%s' does not exist", req->params[0]);
    else
        vo_reply_errno(rep, r, "cannot read the hosts");
}

void vo_api_tasks_list(VoRequest *req, VoReply *rep)
{
    VoDaemon *d = req->d;
    json_t *arr = vo_tasks_list_json(d->tasks);
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t)
        json_object_set_new(t, "host", json_string(d->host_name));
    /* In a cluster, the other hosts' tasks too (their operation documents). */
    int r = vo_cluster_add_tasks(d, arr);
    if (r < 0) {
        json_decref(arr);
        vo_reply_errno(rep, r, "cannot read the other hosts' tasks");
        return;
    }
    if (d->cluster_store) /* newest first, as one host lists them */
        vo_json_array_sort_by(arr, "created_at", "id", true);
    vo_reply_json(rep, 200, json_pack("{s:o}", "tasks", arr));
}

void vo_api_task_show(VoRequest *req, VoReply *rep)
{
    /* An operation kept in the store has a revision (its events' ids), read
     * before the document so that it is never newer than what is shown. */
    _cleanup_free_ char *key = vo_asprintf("operations/%s", req->params[0]);
    int64_t rev = vo_api_key_rev(req->d, key);
    json_t *t = vo_tasks_get_json(req->d->tasks, req->params[0]);
    if (!t) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "task '%s' does not exist", req->params[0]);
        return;
    }
    rep->etag = rev;
    json_object_set_new(t, "host", json_string(req->d->host_name));
    vo_reply_json(rep, 200, t);
}

/* DELETE /v1/tasks/{id} and POST /v1/tasks/{id}/cancel: 200 {"task"} when it
 * was queued (cancelled now), 202 {"task"} when it runs (it stops soon: follow
 * the task), 404 unknown, 409 finished or not cancellable. */
void vo_api_task_cancel(VoRequest *req, VoReply *rep)
{
    if (!vo_request_unpack(req, rep, "{}"))
        return;
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_tasks_cancel_at(req->d->tasks, req->params[0], want, &task, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, r == 0 ? 200 : 202, json_pack("{s:o}", "task", task));
    free(error);
}

/* ---- maintenance (daemon/maintenance.h) ------------------------------------ */

/* Whether the request is this host's to serve: 1 (it names this host), 0
 * (answered: forwarded to the host, or an error), or 2 with *ret_other (an
 * offline host, or a forwarded request for another host: only its flag can
 * be set here). */
static int host_route(VoRequest *req, VoReply *rep, VoClusterHost *ret_other)
{
    VoDaemon *d = req->d;
    const char *host = req->params[0];
    if (!strcmp(host, d->host_id) || !strcmp(host, d->host_name))
        return 1;
    VoClusterHost h = { 0 };
    int r = d->cluster_store ? vo_cluster_host_find(d, host, &h) : -ENOENT;
    if (r == -ENOENT) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "host '%s' does not exist (vireo host list)",
                       host);
        return 0;
    }
    if (r < 0) {
        vo_reply_errno(rep, r, "cannot read the hosts");
        return 0;
    }
    if (!strcmp(h.id, d->host_id)) {
        vo_cluster_host_clear(&h);
        return 1;
    }
    bool forwarded = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 VO_FORWARDED_HEADER) != NULL;
    if (h.online && h.url && !forwarded) { /* the host moves its own VMs */
        vo_api_forward(req, rep, &d->peer_tls, h.url, h.principal_members);
        vo_cluster_host_clear(&h);
        return 0;
    }
    *ret_other = h;
    return 2;
}

/* The evacuation's fields: "pool" (where local disks go on each target;
 * absent: NULL) and "verify_memory" (each live migration compares guest
 * RAM, as POST /v1/vms/{vm}/migrate's field); else false with 400 answered. */
static bool evacuate_args_ok(VoReply *rep, json_t *pool, json_t *verify, VoEvacuateArgs *ret)
{
    *ret = (VoEvacuateArgs){ .pool = json_string_value(pool),
                             .verify_memory = json_is_true(verify) };
    if (verify && !json_is_boolean(verify)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "verify_memory: must be true or false "
                       "(each live migration compares the guest RAM of both sides before "
                       "its switch)");
        return false;
    }
    if (!pool || (ret->pool && vo_name_valid(ret->pool)))
        return true;
    if (ret->pool)
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "pool: '%s' is not a pool name (the pool "
                       "on each target host that local disks go to; default: its "
                       "'default')", ret->pool);
    else
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "pool: a pool name is needed (the pool on "
                       "each target host that local disks go to)");
    return false;
}

void vo_api_host_maintenance(VoRequest *req, VoReply *rep)
{
    VoDaemon *d = req->d;
    json_t *on_json = NULL, *pool_json = NULL, *verify_json = NULL;
    VoEvacuateArgs args;
    if (!vo_request_unpack(req, rep, "{s?o, s?o, s?o}", "on", &on_json, "pool", &pool_json,
                           "verify_memory", &verify_json) ||
        !evacuate_args_ok(rep, pool_json, verify_json, &args))
        return;
    if (!json_is_boolean(on_json)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "on: true (enter maintenance: the "
                       "host's VMs move away) or false (leave it) is needed");
        return;
    }
    bool on = json_is_true(on_json);
    if (!on && (pool_json || args.verify_memory)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s: only with \"on\": true (how the "
                       "host's VMs move away); leaving maintenance moves nothing",
                       pool_json ? "pool" : "verify_memory");
        return;
    }
    VoClusterHost other = { 0 };
    int where = host_route(req, rep, &other);
    if (where == 0)
        return;
    char *error = NULL;
    json_t *task = NULL;
    int r;
    if (where == 2 || !on) { /* the flag alone */
        const char *id = where == 2 ? other.id : d->host_id;
        const char *name = where == 2 ? other.name : d->host_name;
        bool changed = false;
        r = vo_hosts_set_maintenance(d, id, on, &changed);
        if (r < 0)
            vo_reply_errno(rep, r, "cannot change the host's maintenance");
        else {
            json_t *o = json_pack("{s:s, s:b, s:b, s:n}", "host", name, "maintenance", on,
                                  "changed", changed, "task");
            if (where == 2 && on)
                json_object_set_new(o, "message",
                                    json_string("the host is offline: its VMs were not moved; "
                                                "they move when it is back (vireo host "
                                                "evacuate)"));
            if (!on && changed)
                log_info("host %s: maintenance off", name);
            vo_reply_json(rep, 200, o);
        }
        vo_cluster_host_clear(&other);
        return;
    }
    r = vo_host_evacuate(d, true, &args, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_host_evacuate(VoRequest *req, VoReply *rep)
{
    VoDaemon *d = req->d;
    json_t *pool_json = NULL, *verify_json = NULL;
    VoEvacuateArgs args;
    if (!vo_request_unpack(req, rep, "{s?o, s?o}", "pool", &pool_json, "verify_memory",
                           &verify_json) ||
        !evacuate_args_ok(rep, pool_json, verify_json, &args))
        return;
    VoClusterHost other = { 0 };
    int where = host_route(req, rep, &other);
    if (where == 0)
        return;
    if (where == 2) {
        vo_reply_error(rep, VO_ERR_UNAVAILABLE, "host '%s' is offline: only it can move its "
                       "VMs; retry when it is back (vireo host list)", other.name);
        vo_cluster_host_clear(&other);
        return;
    }
    char *error = NULL;
    json_t *task = NULL;
    int r = vo_host_evacuate(d, false, &args, &task, &error);
    vo_reply_task(rep, r, task, error);
}
