/* project-gate.c: what a user (or token) with a role only on some projects
 * may reach (docs/projects.md, "Roles on a project"). The route check
 * (access-check.c) let the request through on a project role; here the
 * object decides: a VM of a project where it has no role is answered 404,
 * as if it did not exist (it learns nothing of other projects), one where
 * its role falls short of the route's 403 naming both; a create in a
 * project, or a VM's move to one, needs the route's role there; a task
 * reads when it asked for it or it is of a VM of its projects (else 404);
 * lists keep only the objects of its projects. The Unix socket's root and
 * cluster peers never pass here; a user's request a peer forwarded does
 * (X-Vireo-Principal), on the host that has the object. */
#include <string.h>

#include "api/access.h"
#include "api/handlers.h"
#include "api/object-gate.h"
#include "cluster/any-door.h"
#include "daemon/cluster-view.h"
#include "daemon/vms.h"
#include "jobs/tasks.h"
#include "util/sha256.h"
#include "util/util.h"

static bool refuse_role(VoReply *rep, const VoPrincipal *p, const char *what,
                        const char *project, VoRole has)
{
    char who[128];
    vo_principal_describe(p, who, sizeof(who));
    vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "%s needs the %s role on project '%s'; %s has "
                   "%s", what, vo_role_name(p->needed), project, who, vo_role_name(has));
    return false;
}

/* The project of the VM with id vm_id, wherever it is: this host's, or
 * another host's last document (an offline host's too); NULL when no host
 * has it. By id only: a task's target_id is not always a VM's (a host
 * evacuation's is the host's id, a DRS note's "cluster"), and a VM named
 * so must not lend its project to it. */
static char *project_of_vm(VoDaemon *d, const char *vm_id)
{
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    _cleanup_free_ char *id = vm ? vo_vm_id(vm) : NULL;
    if (id && !strcmp(id, vm_id))
        return vo_vm_project(vm);
    _cleanup_free_ char *host = NULL, *doc = NULL;
    if (vo_cluster_locate_vm(d, vm_id, &host, &doc) <= 0 || !doc)
        return NULL;
    json_t *o = json_loads(doc, 0, NULL);
    const char *doc_id = json_string_value(json_object_get(json_object_get(o, "spec"), "id"));
    bool same = doc_id && !strcmp(doc_id, vm_id);
    json_decref(o);
    return same ? vo_vm_doc_project(doc) : NULL;
}

/* A task (its document) by id: one this principal asked for, or one of a
 * VM (its target_id) of a project where it has a role. */
static bool task_visible(VoDaemon *d, const VoPrincipal *p, json_t *task)
{
    char who[128];
    vo_principal_describe(p, who, sizeof(who));
    const char *by = json_string_value(json_object_get(json_object_get(task, "requested_by"),
                                                       "who"));
    const char *vm_id = json_string_value(json_object_get(task, "target_id"));
    if (by && !strcmp(by, who))
        return true;
    _cleanup_free_ char *project = vm_id ? project_of_vm(d, vm_id) : NULL;
    return project && vo_principal_role_in(p, project) >= VO_ROLE_VIEWER;
}

bool vo_api_project_gate_task(VoRequest *req, VoReply *rep, json_t *task)
{
    const VoPrincipal *p = vo_access_current();
    if (!task || !vo_principal_scoped(p) || task_visible(req->d, p, task))
        return true; /* none: the handler (or the any door) answers 404 */
    vo_reply_error(rep, VO_ERR_NOT_FOUND, "task '%s' does not exist", req->params[0]);
    return false;
}

bool vo_api_project_gate_vm(VoRequest *req, VoReply *rep, const char *pattern,
                            const char *project)
{
    const VoPrincipal *p = vo_access_current();
    if (!vo_principal_scoped(p))
        return true;
    VoRole role = project ? vo_principal_role_in(p, project) : VO_ROLE_NONE;
    if (role < VO_ROLE_VIEWER) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "VM '%s' does not exist", req->params[0]);
        return false;
    }
    if (role < p->needed) {
        _cleanup_free_ char *what = vo_asprintf("%s %s", req->method, pattern);
        return refuse_role(rep, p, what, project, role);
    }
    /* A move to another project: the edit's role there too. */
    const char *to = !strcmp(pattern, "/v1/vms/{vm}") && !strcmp(req->method, "PATCH")
                         ? json_string_value(json_object_get(req->body, "project"))
                         : NULL;
    if (to && (role = vo_principal_role_in(p, to)) < p->needed)
        return refuse_role(rep, p, "moving a VM", to, role);
    /* A volume it attaches: one it may see (object-gate.c). */
    if (!strcmp(req->method, "POST") && (!strcmp(pattern, "/v1/vms/{vm}/disks") ||
                                         !strcmp(pattern, "/v1/vms/{vm}/cdrom")))
        return vo_api_object_gate_volume_of_vm(req, rep, p, "volume");
    /* A network it joins: one it may see. */
    if (!strcmp(req->method, "POST") && !strcmp(pattern, "/v1/vms/{vm}/nics"))
        return vo_api_object_gate_network_of_vm(req, rep, p, "network");
    return true;
}

bool vo_api_project_gate(VoRequest *req, VoReply *rep, const char *pattern)
{
    const VoPrincipal *p = vo_access_current();
    if (!vo_principal_scoped(p))
        return true;
    if (!strncmp(pattern, "/v1/vms/{vm}", 12)) {
        _cleanup_vm_ VoVm *vm = vo_vms_find(req->d, req->params[0]);
        /* Another host's VM (or none): the any door forwards the request
         * with its principal to the VM's host, whose gate decides; one of
         * an offline host is checked on its last document by this same
         * gate (any-door-api.c), so every host answers alike. */
        if (!vm && req->d->cluster_store)
            return true;
        _cleanup_free_ char *project = vm ? vo_vm_project(vm) : NULL;
        return vo_api_project_gate_vm(req, rep, pattern, project);
    }
    int object = vo_api_object_gate(req, rep, p, pattern);
    if (object >= 0)
        return object;
    if (!strcmp(pattern, "/v1/tasks/{id}")) {
        json_t *task = vo_tasks_get_json(req->d->tasks, req->params[0]);
        bool pass = vo_api_project_gate_task(req, rep, task);
        json_decref(task);
        if (!pass)
            return false;
    }
    if (!strcmp(pattern, "/v1/vms") && strcmp(req->method, "GET")) {
        const char *project = json_string_value(json_object_get(req->body, "project"));
        project = project ? project : "default";
        VoRole role = vo_principal_role_in(p, project);
        if (role < p->needed)
            return refuse_role(rep, p, "creating a VM", project, role);
        return vo_api_object_gate_volume_of_vm(req, rep, p, "disk_volume") &&
               vo_api_object_gate_volume_of_vm(req, rep, p, "cdrom") &&
               vo_api_object_gate_network_of_vm(req, rep, p, "networks");
    }
    if (!strcmp(pattern, "/v1/projects/{project}") &&
        vo_principal_role_in(p, req->params[0]) < VO_ROLE_VIEWER) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "project '%s' does not exist", req->params[0]);
        return false;
    }
    return true;
}

/* Keeps the items of rep->json's array key whose field names a project the
 * principal has a role on. */
static void keep_visible(const VoPrincipal *p, json_t *arr, const char *field)
{
    for (size_t i = 0; i < json_array_size(arr);) {
        const char *project = json_string_value(json_object_get(json_array_get(arr, i), field));
        if (vo_principal_role_in(p, project ? project : "default") >= VO_ROLE_VIEWER)
            i++;
        else
            json_array_remove(arr, i);
    }
}

/* Whether GET pattern's answer is cut to its caller: a scoped caller's
 * lists keep its projects' objects, the pools count its volumes. */
static bool cut_to_caller(const char *pattern)
{
    static const char *const cut[] = { "/v1/vms", "/v1/projects", "/v1/pools",
                                       "/v1/pools/{pool}", "/v1/volumes", "/v1/networks" };
    for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++)
        if (!strcmp(pattern, cut[i]))
            return true;
    return false;
}

/* The ETag of a scoped caller's cut answer names its view: a digest of who
 * asked and of what it was answered, so another caller's ETag (the
 * cluster's admin's, "<revision>", or another project user's) never
 * matches it, while the revision stays first for If-Match. */
static void name_the_view(const VoPrincipal *p, VoReply *rep)
{
    if (rep->etag <= 0)
        return;
    char who[128];
    vo_principal_describe(p, who, sizeof(who));
    _cleanup_free_ char *body = json_dumps(rep->json, JSON_COMPACT | JSON_SORT_KEYS);
    _cleanup_free_ char *view = vo_asprintf("%s\n%s", who, body ? body : "");
    char digest[VO_SHA256_HEX_LEN + 1];
    vo_sha256_data(view, strlen(view), digest);
    snprintf(rep->etag_view, sizeof(rep->etag_view), "%.16s", digest);
}

void vo_api_project_filter(VoRequest *req, VoReply *rep, const char *pattern)
{
    if (strcmp(req->method, "GET") || !cut_to_caller(pattern))
        return;
    const VoPrincipal *p = vo_access_current();
    if (!vo_principal_scoped(p) || rep->status != 200)
        return;
    if (!strcmp(pattern, "/v1/vms"))
        keep_visible(p, json_object_get(rep->json, "vms"), "project");
    else if (!strcmp(pattern, "/v1/projects"))
        keep_visible(p, json_object_get(rep->json, "projects"), "name");
    else if (!strcmp(pattern, "/v1/pools") || !strcmp(pattern, "/v1/pools/{pool}"))
        vo_api_object_filter_pools(req->d, p, rep, pattern);
    else
        vo_api_object_filter(p, rep, pattern);
    name_the_view(p, rep);
}
