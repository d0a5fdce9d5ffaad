/* cluster-storage-api.c: images and pools as a cluster shows them
 * (docs/cluster.md, "Images and pools"). Lists on any host name every
 * host's own images and local pools (read from the other hosts' documents
 * through the raw handle, h/<host-id>/images/ and h/<host-id>/pools/) with
 * their host, and shared ones once; another host's local pool is shown and
 * its volumes listed by that host (the request forwarded, as any door
 * forwards VM routes): "?host=NAME" picks the host when the name alone
 * does not. Standalone, nothing here changes an answer. */
#include <string.h>

#include "api/cluster-storage.h"
#include "api/forward.h"
#include "daemon/cluster-view.h"
#include "daemon/images.h"
#include "daemon/storage.h"
#include "util/time-format.h"
#include "util/util.h"

/* ---- images -------------------------------------------------------------- */

static int image_host(const VoClusterHost *h, const char *name, const char *value, void *userdata)
{
    json_t *by_name = userdata; /* name: {"hosts": [...], "doc": first document} */
    json_t *e = json_object_get(by_name, name);
    if (!e) {
        e = json_pack("{s:[], s:s}", "hosts", "doc", value);
        json_object_set_new(by_name, name, e);
    }
    json_array_append_new(json_object_get(e, "hosts"), json_string(h->name));
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

static void sort_strings(json_t *arr)
{
    size_t n = json_array_size(arr);
    json_t **items = vo_malloc0(sizeof(json_t *) * (n + 1));
    for (size_t i = 0; i < n; i++)
        items[i] = json_incref(json_array_get(arr, i));
    if (n)
        qsort(items, n, sizeof(json_t *), cmp_str);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, items[i]);
    free(items);
}

/* An image of other hosts only, as listed here: no files on this host yet. */
static json_t *elsewhere_view(VoDaemon *d, const char *name, const char *doc)
{
    VoImage *img = NULL;
    if (vo_image_from_doc(d, name, doc, &img) < 0)
        return NULL;
    json_t *o = vo_image_to_json(img);
    vo_image_free(img);
    json_object_set_new(o, "disk", json_null());
    json_object_set_new(o, "kernel", json_null());
    json_object_set_new(o, "initrd", json_null());
    return o;
}

static int cmp_image(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

int vo_api_cluster_images(VoDaemon *d, json_t *images, const char *only)
{
    if (!d->cluster_store)
        return 0;
    json_t *by_name = json_object();
    int r = vo_cluster_each_doc(d, "images", image_host, by_name);
    if (r < 0) {
        json_decref(by_name);
        return r;
    }
    size_t i;
    json_t *img;
    json_array_foreach(images, i, img) {
        const char *name = json_string_value(json_object_get(img, "name"));
        if (!json_is_null(json_object_get(img, "pool"))) {
            json_object_set_new(img, "hosts", json_null()); /* a shared pool's */
            continue;
        }
        json_t *e = json_object_get(by_name, name);
        json_t *hosts = e ? json_deep_copy(json_object_get(e, "hosts")) : json_array();
        json_array_append_new(hosts, json_string(d->host_name));
        sort_strings(hosts);
        json_object_set_new(img, "hosts", hosts);
        json_object_del(by_name, name);
    }
    const char *name;
    json_t *e;
    bool added = false;
    json_object_foreach(by_name, name, e) {
        if (only && strcmp(only, name))
            continue;
        json_t *o = elsewhere_view(d, name, json_string_value(json_object_get(e, "doc")));
        if (!o)
            continue;
        sort_strings(json_object_get(e, "hosts"));
        json_object_set(o, "hosts", json_object_get(e, "hosts"));
        json_array_append_new(images, o);
        added = true;
    }
    json_decref(by_name);
    if (added) { /* sorted by name again */
        size_t n = json_array_size(images);
        json_t **items = vo_malloc0(sizeof(json_t *) * (n + 1));
        for (i = 0; i < n; i++)
            items[i] = json_incref(json_array_get(images, i));
        qsort(items, n, sizeof(json_t *), cmp_image);
        json_array_clear(images);
        for (i = 0; i < n; i++)
            json_array_append_new(images, items[i]);
        free(items);
    }
    return 0;
}

/* ---- pools --------------------------------------------------------------- */

typedef struct {
    VoDaemon *d;
    json_t *arr;
    const char *only;      /* a pool name, or NULL: all */
    const char *host_id;   /* counting volumes: the host's */
    size_t volumes;
} PoolCtx;


static int pool_host(const VoClusterHost *h, const char *name, const char *value, void *userdata)
{
    PoolCtx *c = userdata;
    if (c->only && strcmp(c->only, name))
        return 0;
    json_t *doc = json_loads(value, 0, NULL);
    if (!json_is_object(doc) || json_is_true(json_object_get(doc, "shared")) ||
        !json_is_string(json_object_get(doc, "path"))) {
        json_decref(doc);
        return 0;
    }
    _cleanup_free_ char *prefix = vo_asprintf("h/%s/volumes/%s/", h->id, name);
    (void)vo_store_count(c->d->cluster_store, prefix, &c->volumes);
    json_int_t created = json_integer_value(json_object_get(doc, "created_at"));
    _cleanup_free_ char *reason = vo_asprintf("a local pool of host '%s' (vireo pool show %s "
                                              "--host %s)", h->name, name, h->name);
    json_t *o = json_pack("{s:s, s:O, s:O, s:n, s:n, s:n, s:I, s:o, s:b, s:n, s:s, s:b, s:s}",
                          "name", name, "type", json_object_get(doc, "type"), "path",
                          json_object_get(doc, "path"), "capacity_bytes", "allocation_bytes",
                          "available_bytes", "volumes", (json_int_t)c->volumes, "created_at",
                          vo_time_json(created), "shared", 0, "id", "host", h->name,
                          "reachable", 0, "reason", reason);
    json_decref(doc);
    if (o)
        json_array_append_new(c->arr, o);
    return 0;
}

static int cmp_pool(const void *a, const void *b)
{
    json_t *pa = *(json_t *const *)a, *pb = *(json_t *const *)b;
    int r = strcmp(json_string_value(json_object_get(pa, "name")),
                   json_string_value(json_object_get(pb, "name")));
    if (r)
        return r;
    const char *ha = json_string_value(json_object_get(pa, "host"));
    const char *hb = json_string_value(json_object_get(pb, "host"));
    return strcmp(ha ? ha : "", hb ? hb : "");
}

int vo_api_cluster_pools(VoDaemon *d, json_t *pools)
{
    if (!d->cluster_store)
        return 0;
    PoolCtx c = { .d = d, .arr = pools };
    int r = vo_cluster_each_doc(d, "pools", pool_host, &c);
    size_t n = json_array_size(pools);
    json_t **items = vo_malloc0(sizeof(json_t *) * (n + 1));
    for (size_t i = 0; i < n; i++)
        items[i] = json_incref(json_array_get(pools, i));
    if (n)
        qsort(items, n, sizeof(json_t *), cmp_pool);
    json_array_clear(pools);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(pools, items[i]);
    free(items);
    return r < 0 ? r : 0;
}

typedef struct {
    const char *pool;
    char **ids, **names;
} Owners;

static int pool_owner(const VoClusterHost *h, const char *name, const char *value, void *userdata)
{
    Owners *o = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    if (!strcmp(name, o->pool) && !json_is_true(json_object_get(doc, "shared"))) {
        vo_strv_pushf(&o->ids, "%s", h->id);
        vo_strv_pushf(&o->names, "%s", h->name);
    }
    json_decref(doc);
    return 0;
}

bool vo_api_pool_door(VoRequest *req, VoReply *rep, const char *pool)
{
    VoDaemon *d = req->d;
    if (!d->cluster_store ||
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, VO_FORWARDED_HEADER))
        return false;
    const char *host = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "host");
    if (host && (!strcmp(host, d->host_name ? d->host_name : "") || !strcmp(host, d->host_id)))
        return false;
    _cleanup_free_ char *host_id = NULL;
    if (!host) {
        if (!pool || vo_pool_exists(d, pool))
            return false; /* this host's, or a shared one */
        Owners o = { .pool = pool };
        int r = vo_cluster_each_doc(d, "pools", pool_owner, &o);
        size_t n = vo_strv_len(o.ids);
        if (r < 0)
            vo_reply_errno(rep, r, NULL);
        else if (n > 1) {
            _cleanup_free_ char *list = vo_strdup("");
            for (char **s = o.names; *s; s++) {
                char *more = vo_asprintf("%s%s%s", list, *list ? ", " : "", *s);
                free(list);
                list = more;
            }
            vo_reply_error(rep, VO_ERR_CONFLICT, "pool '%s' is a local pool of several hosts "
                           "(%s): say which with ?host=NAME (vireo ... --host NAME)", pool, list);
        } else if (n == 1)
            host_id = vo_strdup(o.ids[0]);
        vo_strv_free(o.ids);
        vo_strv_free(o.names);
        if (!host_id)
            return r < 0 || n > 1;
    }
    VoClusterHost h = { 0 };
    int r = host_id ? vo_cluster_host_get(d, host_id, &h) : vo_cluster_host_find(d, host, &h);
    if (r == -ENOENT) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "host '%s' is not a host of the cluster (vireo "
                       "host list)", host ? host : host_id);
        return true;
    }
    if (r < 0) {
        vo_reply_errno(rep, r, NULL);
        return true;
    }
    if (!strcmp(h.id, d->host_id)) {
        vo_cluster_host_clear(&h);
        return false;
    }
    if (!h.online || !h.url)
        vo_reply_error(rep, VO_ERR_UNAVAILABLE, "host '%s' is offline: its local pools are "
                       "served by it alone; retry when it is back (vireo host list)", h.name);
    else
        vo_api_forward(req, rep, &d->peer_tls, h.url, h.principal_members);
    vo_cluster_host_clear(&h);
    return true;
}
