/* any-door.c: the pure parts of serving the whole cluster from any host
 * (see any-door.h). */
#include "cluster/any-door.h"

#include <string.h>

#include "cluster/ha-plan.h"
#include "conf/cloud-init.h"
#include "util/sse.h"
#include "util/time-format.h"
#include "util/util.h"

#define HOST_RECORDS_PREFIX "cluster/hosts/"
#define HOST_MEMBERS_PREFIX "cluster/members/"

/* Whether pattern is prefix followed by its end or a '/'. */
static bool under(const char *pattern, const char *prefix)
{
    size_t n = strlen(prefix);
    return !strncmp(pattern, prefix, n) && (pattern[n] == '\0' || pattern[n] == '/');
}

VoRouteOwner vo_route_owner(const char *pattern)
{
    if (!pattern)
        return VO_ROUTE_OWNER_NONE;
    if (under(pattern, "/v1/vms/{vm}"))
        return VO_ROUTE_OWNER_VM;
    if (under(pattern, "/v1/tasks/{id}"))
        return VO_ROUTE_OWNER_TASK;
    return VO_ROUTE_OWNER_NONE;
}

VoDoorAction vo_door_decide(const VoDoorFacts *f)
{
    /* A forwarded request is always answered here: the host that forwarded
     * it found the object on this one; forwarding again could loop. */
    if (f->owner == VO_ROUTE_OWNER_NONE || !f->clustered || f->forwarded || f->here ||
        !f->found)
        return VO_DOOR_LOCAL;
    if (f->online)
        return VO_DOOR_FORWARD;
    return f->show && f->owner == VO_ROUTE_OWNER_VM ? VO_DOOR_OFFLINE_DOC : VO_DOOR_OFFLINE;
}

bool vo_cluster_key_split(const char *key, const char **ret_host, size_t *ret_host_len,
                          const char **ret_rest)
{
    if (!key || strncmp(key, "h/", 2))
        return false;
    const char *host = key + 2, *slash = strchr(host, '/');
    if (!slash || slash == host || !slash[1])
        return false;
    *ret_host = host;
    *ret_host_len = (size_t)(slash - host);
    *ret_rest = slash + 1;
    return true;
}

bool vo_cluster_key_object(const char *key, char *host_buf, size_t host_size,
                           const char **ret_kind, const char **ret_id)
{
    const char *host, *rest;
    size_t n;
    size_t records = strlen(HOST_RECORDS_PREFIX), members = strlen(HOST_MEMBERS_PREFIX);
    size_t skip = !key                                             ? 0
                  : !strncmp(key, HOST_RECORDS_PREFIX, records) ? records
                  : !strncmp(key, HOST_MEMBERS_PREFIX, members) ? members
                                                                  : 0;
    if (skip) {
        const char *id = key + skip;
        n = strlen(id);
        if (!n || strchr(id, '/') || n >= host_size)
            return false;
        memcpy(host_buf, id, n + 1);
        *ret_kind = "host";
        *ret_id = id;
        return true;
    }
    if (!vo_cluster_key_split(key, &host, &n, &rest) || n >= host_size ||
        !vo_sse_key_object(rest, ret_kind, ret_id))
        return false;
    memcpy(host_buf, host, n);
    host_buf[n] = '\0';
    return true;
}

/* HA's fields, at the document's top (daemon/vm-save.c), as a local VM's
 * view shows them (daemon/vm-json.c): above all ha_state, the manager's
 * word on a VM of an offline host ("restart limit: ... left where it was"),
 * which only this view shows while that host is away. */
static void add_ha_fields(json_t *o, json_t *doc)
{
    json_t *state = json_object_get(doc, "ha_state");
    if (json_is_string(state))
        json_object_set(o, "ha_state", state);
    json_t *restarts = json_object_get(doc, VO_HA_RESTARTS_FIELD);
    if (json_array_size(restarts))
        json_object_set_new(o, VO_HA_RESTARTS_FIELD, vo_ha_restarts_json(restarts));
    if (json_is_true(json_object_get(doc, VO_HA_START_FAILED_FIELD)))
        json_object_set_new(o, VO_HA_START_FAILED_FIELD, json_true());
}

json_t *vo_vm_doc_to_api(const char *doc_text, bool summary, const char *host_name,
                         const char *host_state, int64_t now_ms)
{
    json_t *doc = doc_text ? json_loads(doc_text, 0, NULL) : NULL;
    json_t *spec = json_object_get(doc, "spec"), *status = json_object_get(doc, "status");
    const char *state = json_string_value(json_object_get(status, "state"));
    if (!json_is_object(spec) || !state || !json_is_string(json_object_get(spec, "id")) ||
        !json_is_string(json_object_get(spec, "name"))) {
        json_decref(doc);
        return NULL;
    }
    json_t *o;
    if (summary) {
        /* As a local VM's summary (daemon/vm-json.c): its project too, which
         * the project gate's list filter and ?project= read (absent:
         * "default"). */
        static const char *const fields[] = { "id", "name", "vcpus", "memory_mib", "accel",
                                              "autostart", "ha", "project" };
        o = json_object();
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
            json_t *v = json_object_get(spec, fields[i]);
            if (v)
                json_object_set(o, fields[i], v);
        }
    } else {
        o = json_deep_copy(spec);
        vo_cloud_init_json_redact(json_object_get(o, "cloud_init"));
    }
    json_object_set_new(o, "state", json_string(state));
    json_int_t created = json_integer_value(json_object_get(status, "created_at"));
    json_int_t started = json_integer_value(json_object_get(status, "started_at"));
    bool up = !strcmp(state, "running") || !strcmp(state, "paused");
    if (!summary && created)
        json_object_set_new(o, "created_at", vo_time_json(created));
    if (up && started > 0) {
        if (!summary)
            json_object_set_new(o, "started_at", vo_time_json(started));
        json_object_set_new(o, "uptime_s",
                            json_integer(now_ms > started ? (now_ms - started) / 1000 : 0));
    }
    static const char *const kept[] = { "exit_reason", "state_reason" };
    for (size_t i = 0; !summary && i < ELEMENTSOF(kept); i++) {
        json_t *v = json_object_get(status, kept[i]);
        if (json_is_string(v))
            json_object_set(o, kept[i], v);
    }
    if (!summary)
        add_ha_fields(o, doc);
    if (host_name)
        json_object_set_new(o, "host", json_string(host_name));
    if (host_state)
        json_object_set_new(o, "host_state", json_string(host_state));
    json_decref(doc);
    return o;
}

char *vo_vm_doc_project(const char *doc_text)
{
    json_t *doc = doc_text ? json_loads(doc_text, 0, NULL) : NULL;
    json_t *spec = json_object_get(doc, "spec");
    json_t *project = json_object_get(spec, "project");
    char *out = NULL;
    if (json_is_object(spec) && (!project || json_is_string(project)))
        out = vo_strdup(project ? json_string_value(project) : "default");
    json_decref(doc);
    return out;
}

typedef struct {
    json_t *item;
    const char *a, *b;
    size_t index; /* the sort is stable: equal items keep their order */
} SortItem;

static int sort_asc(const void *x, const void *y)
{
    const SortItem *p = x, *q = y;
    int c = strcmp(p->a, q->a);
    if (!c)
        c = strcmp(p->b, q->b);
    return c ? c : (p->index > q->index) - (p->index < q->index);
}

static int sort_desc(const void *x, const void *y)
{
    const SortItem *p = x, *q = y;
    int c = strcmp(q->a, p->a);
    if (!c)
        c = strcmp(q->b, p->b);
    return c ? c : (p->index > q->index) - (p->index < q->index);
}

void vo_json_array_sort_by(json_t *arr, const char *key, const char *key2, bool descending)
{
    size_t n = json_array_size(arr);
    if (n < 2)
        return;
    SortItem *items = vo_malloc0(sizeof(SortItem) * n);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        const char *a = json_string_value(json_object_get(o, key));
        const char *b = key2 ? json_string_value(json_object_get(o, key2)) : NULL;
        items[i] = (SortItem){ json_incref(o), a ? a : "", b ? b : "", i };
    }
    qsort(items, n, sizeof(SortItem), descending ? sort_desc : sort_asc);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, items[i].item);
    free(items);
}
