/* cluster-view.c: reading the other hosts of the cluster (cluster-view.h). */
#include "daemon/cluster-view.h"

#include <errno.h>
#include <string.h>

#include "api/access.h"
#include "cluster/any-door.h"
#include "cluster/cluster-config.h"
#include "daemon/vms.h"
#include "state/keys.h"
#include "util/util.h"
#include "state/store-json.h"

#define MEMBERS_PREFIX "cluster/members/"
#define RECORDS_PREFIX "cluster/hosts/"

void vo_cluster_host_clear(VoClusterHost *h)
{
    free(h->id);
    free(h->name);
    free(h->url);
    *h = (VoClusterHost){ 0 };
}

static json_t *get_json(VoStore *s, const char *key, int *ret_err)
{
    _cleanup_free_ char *text = NULL;
    int r = vo_store_get(s, key, &text, NULL);
    *ret_err = r;
    if (r < 0)
        return NULL;
    json_t *doc = json_loads(text, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        *ret_err = -EBADMSG;
        return NULL;
    }
    return doc;
}

char *vo_host_name_of(VoDaemon *d, const char *host_id)
{
    _cleanup_free_ char *key = vo_asprintf(MEMBERS_PREFIX "%s", host_id);
    int r;
    json_t *doc = get_json(d->store, key, &r);
    char *name = vo_strdup(json_string_value(json_object_get(doc, "name")));
    json_decref(doc);
    return name;
}

/* A member document as a VoClusterHost (online unknown yet). */
static void host_from_member(json_t *doc, const char *id, VoClusterHost *ret)
{
    const char *name = json_string_value(json_object_get(doc, "name"));
    const char *address = json_string_value(json_object_get(doc, "address"));
    json_int_t port = json_integer_value(json_object_get(doc, "api_port"));
    ret->id = vo_strdup(id);
    ret->name = vo_strdup(name ? name : id);
    ret->url = address ? vo_cluster_url(address, port > 0 && port < 65536 ? (int)port
                                                                           : VO_CLUSTER_API_PORT)
                       : NULL;
}

/* What h's live record (NULL: none, the host is offline) says of it. */
static void host_from_record(json_t *record, VoClusterHost *h)
{
    h->online = record != NULL;
    /* What it understands of a forwarded request's principal: a host that
     * does not say is older (it refuses members it does not know). */
    h->principal_members = vo_principal_members_parse(json_object_get(record,
                                                                      "principal_members"));
}

static int host_online(VoDaemon *d, VoClusterHost *h)
{
    _cleanup_free_ char *key = vo_asprintf(RECORDS_PREFIX "%s", h->id), *text = NULL;
    int r = vo_store_get(d->store, key, &text, NULL);
    json_t *record = r >= 0 ? json_loads(text, 0, NULL) : NULL;
    if (r >= 0 && !record)
        record = json_object(); /* there (online), though not readable */
    host_from_record(record, h);
    json_decref(record);
    return r == -ENOENT ? 0 : r;
}

int vo_cluster_host_get(VoDaemon *d, const char *host_id, VoClusterHost *ret)
{
    *ret = (VoClusterHost){ 0 };
    _cleanup_free_ char *key = vo_asprintf(MEMBERS_PREFIX "%s", host_id);
    int r;
    json_t *doc = get_json(d->store, key, &r);
    if (!doc)
        return r;
    host_from_member(doc, host_id, ret);
    json_decref(doc);
    r = host_online(d, ret);
    if (r < 0)
        vo_cluster_host_clear(ret);
    return r;
}

/* Every member: {id: member document}. */
static int members(VoDaemon *d, json_t **ret)
{
    json_t *all = json_object();
    int r = vo_store_list_objects(d->store, MEMBERS_PREFIX, all);
    if (r < 0) {
        json_decref(all);
        return r;
    }
    *ret = all;
    return 0;
}

/* The hosts (of members, {id: doc}) whose documents hold volume key: their
 * number, the first's id in *holder (when NULL there), or the store's
 * error. */
static int volume_holders(VoDaemon *d, json_t *members, const char *key, char **holder)
{
    int n = 0;
    const char *id;
    json_t *doc;
    json_object_foreach(members, id, doc) {
        _cleanup_free_ char *doc_key = vo_asprintf("h/%s/volumes/%s", id, key);
        int r = vo_store_get(d->cluster_store, doc_key, NULL, NULL);
        if (r == -ENOENT)
            continue;
        if (r < 0)
            return r;
        if (!*holder)
            *holder = vo_strdup(id);
        n++;
    }
    return n;
}

char *vo_cluster_own_volumes_host(VoDaemon *d, const char *const *keys, size_t n)
{
    json_t *all = NULL;
    char *host = NULL;
    for (size_t i = 0; d->cluster_store && i < n; i++) {
        if (!keys[i] || vo_volume_is_shared(d, keys[i]))
            continue;
        if (!all && members(d, &all) < 0)
            break;
        char *holder = NULL;
        bool ok = volume_holders(d, all, keys[i], &holder) == 1 &&
                  (!host || !strcmp(host, holder));
        free(host);
        host = ok ? holder : NULL;
        if (!ok) {
            free(holder);
            break;
        }
    }
    json_decref(all);
    return host;
}

int vo_cluster_host_find(VoDaemon *d, const char *name, VoClusterHost *ret)
{
    *ret = (VoClusterHost){ 0 };
    json_t *all = NULL;
    int r = members(d, &all);
    if (r < 0)
        return r;
    const char *id;
    json_t *doc;
    r = -ENOENT;
    json_object_foreach(all, id, doc) {
        const char *n = json_string_value(json_object_get(doc, "name"));
        if ((n && !strcmp(n, name)) || !strcmp(id, name)) {
            host_from_member(doc, id, ret);
            r = host_online(d, ret);
            if (r < 0)
                vo_cluster_host_clear(ret);
            break;
        }
    }
    json_decref(all);
    return r;
}

/* The ids of the other members, NULL-terminated. */
static int other_ids(VoDaemon *d, char ***ret)
{
    json_t *all = NULL;
    int r = members(d, &all);
    if (r < 0)
        return r;
    char **ids = NULL;
    const char *id;
    json_t *doc;
    json_object_foreach(all, id, doc)
        if (strcmp(id, d->host_id))
            vo_strv_push(&ids, vo_strdup(id));
    json_decref(all);
    *ret = ids;
    return 0;
}

int vo_cluster_locate_vm(VoDaemon *d, const char *name_or_id, char **ret_host, char **ret_doc)
{
    *ret_host = *ret_doc = NULL;
    if (!d->cluster_store)
        return 0;
    /* By name: its claim says where. */
    _cleanup_free_ char *claim_key = vo_key_vm_name(name_or_id);
    int r;
    json_t *claim = get_json(d->store, claim_key, &r);
    if (r < 0 && r != -ENOENT && r != -EBADMSG)
        return r;
    const char *host = json_string_value(json_object_get(claim, "host"));
    const char *vm = json_string_value(json_object_get(claim, "vm"));
    _cleanup_free_ char *host_id = vo_strdup(host), *vm_id = vo_strdup(vm);
    json_decref(claim);
    if (host_id && vm_id && strcmp(host_id, d->host_id)) {
        _cleanup_free_ char *key = vo_asprintf("h/%s/vms/%s", host_id, vm_id);
        r = vo_store_get(d->cluster_store, key, ret_doc, NULL);
        if (r < 0 && r != -ENOENT)
            return r;
        *ret_host = TAKE_PTR(host_id);
        return 1;
    }
    /* By id: the other hosts' documents. */
    _cleanup_strv_ char **ids = NULL;
    r = other_ids(d, &ids);
    if (r < 0)
        return r;
    for (char **id = ids; id && *id; id++) {
        _cleanup_free_ char *key = vo_asprintf("h/%s/vms/%s", *id, name_or_id);
        r = vo_store_get(d->cluster_store, key, ret_doc, NULL);
        if (r == -ENOENT)
            continue;
        if (r < 0)
            return r;
        *ret_host = vo_strdup(*id);
        return 1;
    }
    return 0;
}

int vo_cluster_locate_task(VoDaemon *d, const char *id, char **ret_host, char **ret_doc)
{
    *ret_host = NULL;
    if (ret_doc)
        *ret_doc = NULL;
    if (!d->cluster_store || strchr(id, '/'))
        return 0;
    _cleanup_strv_ char **ids = NULL;
    int r = other_ids(d, &ids);
    if (r < 0)
        return r;
    for (char **h = ids; h && *h; h++) {
        _cleanup_free_ char *key = vo_asprintf("h/%s/operations/%s", *h, id);
        r = vo_store_get(d->cluster_store, key, ret_doc, NULL);
        if (r == -ENOENT)
            continue;
        if (r < 0)
            return r;
        *ret_host = vo_strdup(*h);
        return 1;
    }
    return 0;
}

typedef struct {
    const VoClusterHost *h;
    size_t prefix_len;
    VoClusterDocFn fn;
    void *userdata;
} EachDoc;

static int each_doc_one(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    EachDoc *e = userdata;
    const char *name = key + e->prefix_len;
    if (!*name || strchr(name, '/')) /* not a document of sub itself */
        return 0;
    return e->fn(e->h, name, value, e->userdata);
}

/* vo_cluster_each_doc, or for only_host alone (when not NULL), without the
 * hosts that have a document skip_marked<host-id> (when not NULL). The
 * hosts' live records are read once (one range read, not one read per
 * host) and handed out in *ret_records ({host id: record}) when it is not
 * NULL (NULL there when standalone or on an error). */
static int each_host_doc_but(VoDaemon *d, const char *only_host, const char *skip_marked,
                             const char *sub, VoClusterDocFn fn, void *userdata,
                             json_t **ret_records)
{
    if (ret_records)
        *ret_records = NULL;
    if (!d->cluster_store)
        return 0;
    json_t *all = NULL, *records = json_object();
    int r = members(d, &all);
    if (r >= 0)
        r = vo_store_list_objects(d->store, RECORDS_PREFIX, records);
    if (r < 0) {
        json_decref(all);
        json_decref(records);
        return r;
    }
    const char *id;
    json_t *doc;
    json_object_foreach(all, id, doc) {
        if (!strcmp(id, d->host_id) || (only_host && strcmp(id, only_host)))
            continue;
        if (skip_marked) {
            _cleanup_free_ char *mark = vo_asprintf("%s%s", skip_marked, id), *text = NULL;
            r = vo_store_get(d->cluster_store, mark, &text, NULL);
            if (r >= 0)
                continue;
            if (r != -ENOENT)
                break;
        }
        VoClusterHost h = { 0 };
        host_from_member(doc, id, &h);
        host_from_record(json_object_get(records, id), &h);
        _cleanup_free_ char *prefix = vo_asprintf("h/%s/%s/", id, sub);
        EachDoc e = { .h = &h, .prefix_len = strlen(prefix), .fn = fn, .userdata = userdata };
        r = vo_store_list(d->cluster_store, prefix, each_doc_one, &e);
        vo_cluster_host_clear(&h);
        if (r < 0)
            break;
    }
    json_decref(all);
    if (r >= 0 && ret_records)
        *ret_records = records;
    else
        json_decref(records);
    return r < 0 ? r : 0;
}

static int each_host_doc(VoDaemon *d, const char *only_host, const char *sub, VoClusterDocFn fn,
                         void *userdata)
{
    return each_host_doc_but(d, only_host, NULL, sub, fn, userdata, NULL);
}

int vo_cluster_each_doc(VoDaemon *d, const char *sub, VoClusterDocFn fn, void *userdata)
{
    return each_host_doc(d, NULL, sub, fn, userdata);
}

int vo_cluster_each_doc_unmarked(VoDaemon *d, const char *mark_prefix, const char *sub,
                                 VoClusterDocFn fn, void *userdata)
{
    return each_host_doc_but(d, NULL, mark_prefix, sub, fn, userdata, NULL);
}

typedef struct {
    json_t *arr;
    bool summary;
    int64_t now;
} AddVms;

static int add_vm(const VoClusterHost *h, const char *name, const char *value, void *userdata)
{
    (void)name;
    AddVms *a = userdata;
    json_t *o = vo_vm_doc_to_api(value, a->summary, h->name, h->online ? "online" : "offline",
                                 a->now);
    if (o)
        json_array_append_new(a->arr, o);
    return 0;
}

static int add_task(const VoClusterHost *h, const char *name, const char *value,
                    void *userdata)
{
    (void)name;
    json_t *arr = userdata;
    json_t *o = json_loads(value, 0, NULL);
    if (json_is_object(o)) {
        json_object_set_new(o, "host", json_string(h->name));
        json_array_append_new(arr, o);
    } else
        json_decref(o);
    return 0;
}

int vo_cluster_add_vms(VoDaemon *d, bool summary, const char *only_host, json_t *arr,
                       json_t **ret_records)
{
    AddVms a = { .arr = arr, .summary = summary, .now = vo_wall_ms() };
    return each_host_doc_but(d, only_host, NULL, "vms", add_vm, &a, ret_records);
}

int vo_cluster_add_tasks(VoDaemon *d, json_t *arr)
{
    return each_host_doc(d, NULL, "operations", add_task, arr);
}
