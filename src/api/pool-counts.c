/* pool-counts.c: the volume count a user (or token) with roles only on some
 * projects reads in GET /v1/pools and GET /v1/pools/{pool} (docs/projects.md,
 * "Volumes and networks"): the volumes it may see there, as GET
 * /v1/volumes?pool= lists them to it (its projects' volumes, and the disks
 * of its projects' VMs), never the pool's all, which told how many volumes
 * other projects keep in it. A local pool of another host counts the
 * volumes of its projects that the store's project documents give to that
 * host; the disks that follow a VM there are that host's to count (GET
 * /v1/pools/{pool} is forwarded to it and counted there). A count that
 * cannot be read is null. */
#include <string.h>

#include "api/object-gate.h"
#include "daemon/cluster-view.h"
#include "daemon/object-projects.h"
#include "daemon/storage.h"
#include "util/util.h"

static bool visible(const VoPrincipal *p, json_t *project)
{
    return json_is_string(project) &&
           vo_principal_role_in(p, json_string_value(project)) >= VO_ROLE_VIEWER;
}

/* {pool: n} of the volumes of this host's pools (its local ones and the
 * shared ones it reaches) p may see; NULL when their projects cannot be read. */
static json_t *counts_here(VoDaemon *d, const VoPrincipal *p)
{
    json_t *list = vo_volumes_list_json(d, NULL);
    json_t *counts = NULL;
    if (vo_volumes_add_projects(d, list, NULL) >= 0) {
        counts = json_object();
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) {
            const char *pool = json_string_value(json_object_get(v, "pool"));
            if (!pool || !visible(p, json_object_get(v, "project")))
                continue;
            json_int_t n = json_integer_value(json_object_get(counts, pool));
            json_object_set_new(counts, pool, json_integer(n + 1));
        }
    }
    json_decref(list);
    return counts;
}

/* The volumes of host's local pool p may see, from the project documents
 * of that host's scope: -1 when they cannot be read. */
static json_int_t count_elsewhere(VoDaemon *d, const VoPrincipal *p, const char *host,
                                  const char *pool)
{
    VoClusterHost h = { 0 };
    json_t *map = NULL;
    if (vo_cluster_host_find(d, host, &h) < 0 ||
        vo_project_objects_of(d->store, "volume", h.id, &map) < 0) {
        vo_cluster_host_clear(&h);
        return -1;
    }
    vo_cluster_host_clear(&h);
    size_t len = strlen(pool);
    json_int_t n = 0;
    const char *key;
    json_t *project;
    json_object_foreach(map, key, project)
        if (!strncmp(key, pool, len) && key[len] == '/' && visible(p, project))
            n++;
    json_decref(map);
    return n;
}

/* Sets one pool's "volumes" (here: counts_here's answer, read once). */
static void count_pool(VoDaemon *d, const VoPrincipal *p, json_t *pool, json_t **here)
{
    const char *name = json_string_value(json_object_get(pool, "name"));
    const char *host = json_string_value(json_object_get(pool, "host"));
    if (!name || !json_object_get(pool, "volumes"))
        return;
    json_int_t n;
    if (json_is_true(json_object_get(pool, "shared")) || !host ||
        !strcmp(host, d->host_name ? d->host_name : "")) {
        if (!*here)
            *here = counts_here(d, p);
        n = *here ? json_integer_value(json_object_get(*here, name)) : -1;
    } else
        n = count_elsewhere(d, p, host, name);
    json_object_set_new(pool, "volumes", n < 0 ? json_null() : json_integer(n));
}

void vo_api_object_filter_pools(VoDaemon *d, const VoPrincipal *p, VoReply *rep,
                                const char *pattern)
{
    json_t *here = NULL;
    if (!strcmp(pattern, "/v1/pools")) {
        size_t i;
        json_t *pool;
        json_array_foreach(json_object_get(rep->json, "pools"), i, pool)
            count_pool(d, p, pool, &here);
    } else if (!strcmp(pattern, "/v1/pools/{pool}") && json_is_object(rep->json))
        count_pool(d, p, rep->json, &here);
    json_decref(here);
}
