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

/* What one answer's counts read, each once: this host's volumes, and the
 * project documents of each other host whose local pools it lists. */
typedef struct {
    const char *only; /* GET /v1/pools/{pool}: that pool's volumes only */
    bool here_read;
    json_t *here;      /* {pool: n}; NULL when it cannot be read */
    json_t *elsewhere; /* {host: {"pool/volume": project} or null} */
} PoolCounts;

/* {pool: n} of the volumes of this host's pools (its local ones and the
 * shared ones it reaches; only's alone when set) p may see; NULL when
 * their projects cannot be read. */
static json_t *counts_here(VoDaemon *d, const VoPrincipal *p, const char *only)
{
    json_t *list = vo_volumes_list_json(d, only);
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

/* The volumes' projects of host's local pools ({"pool/volume": project}),
 * from the project documents of that host's scope; NULL when they cannot
 * be read. */
static json_t *projects_of_host(VoDaemon *d, const char *host)
{
    VoClusterHost h = { 0 };
    json_t *map = NULL;
    if (vo_cluster_host_find(d, host, &h) < 0 ||
        vo_project_objects_of(d->store, "volume", h.id, &map) < 0)
        map = NULL;
    vo_cluster_host_clear(&h);
    return map;
}

/* The volumes of host's local pool p may see: -1 when they cannot be read. */
static json_int_t count_elsewhere(VoDaemon *d, const VoPrincipal *p, PoolCounts *c,
                                  const char *host, const char *pool)
{
    if (!c->elsewhere)
        c->elsewhere = json_object();
    json_t *map = json_object_get(c->elsewhere, host);
    if (!map) {
        map = projects_of_host(d, host);
        json_object_set_new(c->elsewhere, host, map ? map : json_null());
        map = json_object_get(c->elsewhere, host);
    }
    if (!json_is_object(map))
        return -1;
    size_t len = strlen(pool);
    json_int_t n = 0;
    const char *key;
    json_t *project;
    json_object_foreach(map, key, project)
        if (!strncmp(key, pool, len) && key[len] == '/' && visible(p, project))
            n++;
    return n;
}

/* Sets one pool's "volumes". */
static void count_pool(VoDaemon *d, const VoPrincipal *p, json_t *pool, PoolCounts *c)
{
    const char *name = json_string_value(json_object_get(pool, "name"));
    const char *host = json_string_value(json_object_get(pool, "host"));
    if (!name || !json_object_get(pool, "volumes"))
        return;
    json_int_t n;
    if (json_is_true(json_object_get(pool, "shared")) || !host ||
        !strcmp(host, d->host_name ? d->host_name : "")) {
        if (!c->here_read) {
            c->here = counts_here(d, p, c->only);
            c->here_read = true;
        }
        n = c->here ? json_integer_value(json_object_get(c->here, name)) : -1;
    } else
        n = count_elsewhere(d, p, c, host, name);
    json_object_set_new(pool, "volumes", n < 0 ? json_null() : json_integer(n));
}

void vo_api_object_filter_pools(VoDaemon *d, const VoPrincipal *p, VoReply *rep,
                                const char *pattern)
{
    PoolCounts c = { 0 };
    if (!strcmp(pattern, "/v1/pools")) {
        size_t i;
        json_t *pool;
        json_array_foreach(json_object_get(rep->json, "pools"), i, pool)
            count_pool(d, p, pool, &c);
    } else if (!strcmp(pattern, "/v1/pools/{pool}") && json_is_object(rep->json)) {
        c.only = json_string_value(json_object_get(rep->json, "name"));
        count_pool(d, p, rep->json, &c);
    }
    json_decref(c.here);
    json_decref(c.elsewhere);
}
