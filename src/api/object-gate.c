/* object-gate.c: what a user (or token) with roles only on some projects
 * may do with volumes and networks (docs/projects.md, "Volumes and
 * networks"), beside project-gate.c's VMs: a volume of a project where it
 * has no role answers 404, as one that does not exist, and so does a
 * volume of no project (an admin's: a project's user neither sees nor
 * attaches it); a network of no project is shared: it reads and a VM of
 * its projects may use it, but only the cluster's admins change it; a
 * create names a project where it has the route's role; a move between
 * projects needs the admin role on the whole cluster. Pools are read by
 * all. */
#include <string.h>

#include "api/handlers.h"
#include "api/object-gate.h"
#include "daemon/networks.h"
#include "daemon/object-projects.h"
#include "daemon/storage.h"
#include "storage/volume-path.h"
#include "util/util.h"

#define VOLUME_ROUTE "/v1/pools/{pool}/volumes/{volume}"
#define NETWORK_ROUTE "/v1/networks/{network}"

static bool refuse(VoReply *rep, const VoPrincipal *p, const char *what, const char *project,
                   VoRole needed)
{
    char who[128];
    vo_principal_describe(p, who, sizeof(who));
    VoRole has = project ? vo_principal_role_in(p, project) : p->role;
    if (project)
        vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "%s needs the %s role on project '%s'; "
                       "%s has %s", what, vo_role_name(needed), project, who,
                       vo_role_name(has));
    else
        vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "%s needs the %s role on the cluster; %s "
                       "has %s", what, vo_role_name(needed), who, vo_role_name(has));
    return false;
}

static bool not_found(VoReply *rep, const char *kind, const char *name)
{
    vo_reply_error(rep, VO_ERR_NOT_FOUND, "%s '%s' does not exist", kind, name);
    return false;
}

/* A create (or a clone) in the body's "project": the route's role there. */
static bool creates_in(VoRequest *req, VoReply *rep, const VoPrincipal *p, const char *what)
{
    const char *project = json_string_value(json_object_get(req->body, "project"));
    if (!project || vo_principal_role_in(p, project) < p->needed)
        return refuse(rep, p, what, project, p->needed);
    return true;
}

/* Whether key ("pool/name") is a volume this principal may see: one of a
 * project where it has a role (a volume of another host's local pool:
 * that host's gate decides, the request is forwarded to it). */
static bool volume_visible(VoDaemon *d, const VoPrincipal *p, const char *key, char **ret_project,
                           bool *ret_elsewhere)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    *ret_project = NULL;
    *ret_elsewhere = false;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return true; /* the handler says what is wrong with it */
    if (!vo_pool_exists(d, pool)) {
        *ret_elsewhere = d->cluster_store != NULL;
        return *ret_elsewhere;
    }
    if (vo_volume_project_seen(d, key, ret_project) < 0)
        return false;
    return *ret_project && vo_principal_role_in(p, *ret_project) >= VO_ROLE_VIEWER;
}

/* What only the cluster's admins may ask of a create, as it reaches the
 * host itself: a volume imported from a path on the host (any file vireod
 * reads, another project's volume file too, then downloaded), a network on
 * a host bridge, an uplink or a tunnel, or with a bridge name of its own
 * (another project's or the host's segment). */
static bool reaches_host(VoRequest *req, VoReply *rep, const VoPrincipal *p, bool network)
{
    json_t *b = req->body;
    if (!network && json_object_get(b, "import_path"))
        return !refuse(rep, p, "importing a volume from a path on the host (import_path)", NULL,
                       VO_ROLE_ADMIN);
    const char *type = json_string_value(json_object_get(b, "type"));
    if (network && ((type && strcmp(type, "nat") && strcmp(type, "isolated")) ||
                    json_object_get(b, "bridge") || json_object_get(b, "uplink")))
        return !refuse(rep, p, "a network on a host bridge or interface (type bridge, vlan, "
                       "vxlan, or bridge, uplink)", NULL, VO_ROLE_ADMIN);
    return false;
}

static bool volume_gate(VoRequest *req, VoReply *rep, const VoPrincipal *p, const char *pattern)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", req->params[0], req->params[1]);
    _cleanup_free_ char *project = NULL;
    bool elsewhere;
    if (!volume_visible(req->d, p, key, &project, &elsewhere))
        return not_found(rep, "volume", key);
    if (elsewhere)
        return true;
    _cleanup_free_ char *what = vo_asprintf("%s %s", req->method, pattern);
    if (vo_principal_role_in(p, project) < p->needed)
        return refuse(rep, p, what, project, p->needed);
    if (!strcmp(pattern, VOLUME_ROUTE) && json_object_get(req->body, "project"))
        return refuse(rep, p, "moving a volume between projects", NULL, VO_ROLE_ADMIN);
    if (!strcmp(pattern, VOLUME_ROUTE "/clone"))
        return creates_in(req, rep, p, "cloning a volume");
    return true;
}

static bool network_gate(VoRequest *req, VoReply *rep, const VoPrincipal *p)
{
    const char *name = req->params[0];
    if (!vo_network_exists(req->d, name))
        return true; /* the handler answers 404 */
    _cleanup_free_ char *project = NULL;
    if (vo_network_project(req->d, name, &project) < 0)
        return not_found(rep, "network", name);
    bool read = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    if (!project) /* shared: read by all, changed by the cluster's admins */
        return read || refuse(rep, p, "changing a network of no project", NULL, p->needed);
    VoRole role = vo_principal_role_in(p, project);
    if (role < VO_ROLE_VIEWER)
        return not_found(rep, "network", name);
    if (!strcmp(req->method, "PATCH"))
        return refuse(rep, p, "moving a network between projects", NULL, VO_ROLE_ADMIN);
    if (role < p->needed) {
        _cleanup_free_ char *what = vo_asprintf("%s " NETWORK_ROUTE, req->method);
        return refuse(rep, p, what, project, p->needed);
    }
    return true;
}

int vo_api_object_gate(VoRequest *req, VoReply *rep, const VoPrincipal *p, const char *pattern)
{
    if (!strncmp(pattern, VOLUME_ROUTE, strlen(VOLUME_ROUTE)))
        return volume_gate(req, rep, p, pattern);
    if (!strcmp(pattern, "/v1/pools/{pool}/volumes") && !strcmp(req->method, "POST"))
        return creates_in(req, rep, p, "creating a volume") && !reaches_host(req, rep, p, false);
    if (!strcmp(pattern, "/v1/networks") && !strcmp(req->method, "POST"))
        return creates_in(req, rep, p, "creating a network") && !reaches_host(req, rep, p, true);
    if (!strcmp(pattern, NETWORK_ROUTE))
        return network_gate(req, rep, p);
    return -1;
}

bool vo_api_object_gate_volume_of_vm(VoRequest *req, VoReply *rep, const VoPrincipal *p,
                                     const char *field)
{
    const char *key = json_string_value(json_object_get(req->body, field));
    _cleanup_free_ char *project = NULL;
    bool elsewhere;
    if (key && !volume_visible(req->d, p, key, &project, &elsewhere))
        return not_found(rep, "volume", key);
    return true;
}

/* Whether network name is one p may see: of no project (shared), or of
 * one where it has a role (one that does not exist: the handler says so). */
static bool network_visible(VoDaemon *d, const VoPrincipal *p, const char *name)
{
    _cleanup_free_ char *project = NULL;
    if (!vo_network_exists(d, name))
        return true;
    if (vo_network_project(d, name, &project) < 0)
        return false;
    return !project || vo_principal_role_in(p, project) >= VO_ROLE_VIEWER;
}

bool vo_api_object_gate_network_of_vm(VoRequest *req, VoReply *rep, const VoPrincipal *p,
                                      const char *field)
{
    json_t *named = json_object_get(req->body, field);
    size_t i;
    json_t *one;
    if (json_is_string(named))
        return network_visible(req->d, p, json_string_value(named)) ||
               not_found(rep, "network", json_string_value(named));
    json_array_foreach(named, i, one)
        if (json_is_string(one) && !network_visible(req->d, p, json_string_value(one)))
            return not_found(rep, "network", json_string_value(one));
    return true;
}

/* Keeps the items of arr of a project where p has a role (and, with
 * shared, those of no project). */
static void keep_visible(const VoPrincipal *p, json_t *arr, bool shared)
{
    for (size_t i = 0; i < json_array_size(arr);) {
        const char *project = json_string_value(json_object_get(json_array_get(arr, i),
                                                                "project"));
        if (project ? vo_principal_role_in(p, project) >= VO_ROLE_VIEWER : shared)
            i++;
        else
            json_array_remove(arr, i);
    }
}

void vo_api_object_filter(const VoPrincipal *p, VoReply *rep, const char *pattern)
{
    if (!strcmp(pattern, "/v1/volumes"))
        keep_visible(p, json_object_get(rep->json, "volumes"), false);
    else if (!strcmp(pattern, "/v1/networks"))
        keep_visible(p, json_object_get(rep->json, "networks"), true);
}
