/* place-snapshot.c: placement's snapshot from member documents, live
 * records and the manager's reservations; group member counts (see
 * place-snapshot.h). */
#include "cluster/place-snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* The keys of a record that are placement's host document. */
static const char *const host_keys[] = {
    "id",        "name",       "state",     "accel",     "cpu_model",
    "cpu_flags", "pools",      "memory_mib", "cpus",     "mem_ratio",
    "cpu_ratio", "committed_memory_mib", "committed_vcpus", "load",
    "firmware",  "networks",
};

static void offline_host(VoPlaceHost *h, const char *id, const char *name)
{
    *h = (VoPlaceHost){ .id = vo_strdup(id), .name = vo_strdup(name), .state = VO_HOST_OFFLINE,
                        .accel = VO_ACCEL_TCG, .cpu_model = vo_strdup(""), .memory_mib = 1,
                        .cpus = 1, .mem_ratio = 1, .cpu_ratio = 1 };
}

static void add_warning(char ***w, char *text)
{
    size_t n = vo_strv_len(*w);
    *w = realloc(*w, (n + 2) * sizeof(char *));
    if (!*w)
        abort();
    (*w)[n] = text;
    (*w)[n + 1] = NULL;
}

int vo_place_snapshot_build(const VoPlaceHostDocs *docs, size_t n, VoPlacePolicy policy,
                            const VoPlaceReservations *res, VoPlaceSnapshot *ret,
                            char ***ret_warnings, char **ret_error)
{
    VoPlaceSnapshot s = { .hosts = vo_malloc0((n + 1) * sizeof(VoPlaceHost)), .policy = policy };
    char **warnings = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(docs[i].member, "id"));
        const char *name = json_string_value(json_object_get(docs[i].member, "name"));
        if (!id || !name || !*id || !*name) {
            vo_place_snapshot_clear(&s);
            vo_strv_free(warnings);
            *ret = (VoPlaceSnapshot){ 0 };
            return vo_error_set(ret_error, -EINVAL, "member document %zu: no id or name", i);
        }
        VoPlaceHost *h = &s.hosts[s.n_hosts++];
        if (!docs[i].record) {
            offline_host(h, id, name);
            continue;
        }
        json_t *doc = json_object();
        for (size_t k = 0; k < ELEMENTSOF(host_keys); k++) {
            json_t *v = json_object_get(docs[i].record, host_keys[k]);
            if (v)
                json_object_set(doc, host_keys[k], v);
        }
        json_object_set_new(doc, "id", json_string(id));
        json_object_set_new(doc, "name", json_string(name));
        char *error = NULL;
        if (vo_place_host_from_json(doc, h, &error) < 0) {
            add_warning(&warnings, vo_asprintf("host %s: its record is unusable, taken as "
                                               "offline: %s", name, error));
            free(error);
            offline_host(h, id, name);
        }
        json_decref(doc);
    }
    for (size_t k = 0; res && k < res->n; k++)
        for (size_t i = 0; i < s.n_hosts; i++)
            if (!strcmp(s.hosts[i].id, res->items[k].host_id)) {
                s.hosts[i].committed_memory_mib += res->items[k].memory_mib;
                s.hosts[i].committed_vcpus += res->items[k].vcpus;
                break;
            }
    *ret = s;
    if (ret_warnings)
        *ret_warnings = warnings;
    else
        vo_strv_free(warnings);
    return 0;
}

static int cmp_group_host(const void *a, const void *b)
{
    return strcmp(((const VoPlaceGroupHost *)a)->host_id, ((const VoPlaceGroupHost *)b)->host_id);
}

static void count_host(VoPlaceGroupHost **g, size_t *n, const char *host)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*g)[i].host_id, host)) {
            (*g)[i].count++;
            return;
        }
    *g = realloc(*g, (*n + 1) * sizeof(**g));
    if (!*g)
        abort();
    (*g)[(*n)++] = (VoPlaceGroupHost){ .host_id = vo_strdup(host), .count = 1 };
}

void vo_place_group_hosts(json_t *members, const VoPlaceReservations *res, const char *group,
                          VoPlaceGroupHost **ret, size_t *ret_n)
{
    VoPlaceGroupHost *g = NULL;
    size_t n = 0;
    const char *key;
    json_t *doc;
    json_object_foreach(members, key, doc) {
        const char *host = json_string_value(json_object_get(doc, "host"));
        if (host && *host)
            count_host(&g, &n, host);
    }
    for (size_t k = 0; res && group && k < res->n; k++)
        if (res->items[k].group &&
            !strcmp(res->items[k].group, group))
            count_host(&g, &n, res->items[k].host_id);
    if (n > 1)
        qsort(g, n, sizeof(*g), cmp_group_host);
    *ret = g;
    *ret_n = n;
}

void vo_place_group_hosts_free(VoPlaceGroupHost *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(g[i].host_id);
    free(g);
}

static void reservation_free(VoPlaceReservation *r)
{
    free(r->host_id);
    free(r->group);
}

/* The docs entry of host id, or NULL. */
static const VoPlaceHostDocs *docs_of(const VoPlaceHostDocs *docs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        const char *m = json_string_value(json_object_get(docs[i].member, "id"));
        if (m && !strcmp(m, id))
            return &docs[i];
    }
    return NULL;
}

void vo_place_reservations_prune(VoPlaceReservations *r, const VoPlaceHostDocs *docs, size_t n,
                                 int64_t now_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        VoPlaceReservation *x = &r->items[i];
        const VoPlaceHostDocs *h = docs_of(docs, n, x->host_id);
        bool done = now_ms >= x->expires_ms || !h || !h->record;
        if (done)
            reservation_free(x);
        else
            r->items[k++] = *x;
    }
    r->n = k;
}

uint64_t vo_place_reservation_add(VoPlaceReservations *r, const char *host_id, const char *group,
                                  uint64_t memory_mib, unsigned vcpus, int64_t now_ms)
{
    r->items = realloc(r->items, (r->n + 1) * sizeof(*r->items));
    if (!r->items)
        abort();
    uint64_t id = ++r->next_id;
    r->items[r->n++] = (VoPlaceReservation){ .id = id, .host_id = vo_strdup(host_id),
                                             .group = vo_strdup(group), .memory_mib = memory_mib,
                                             .vcpus = vcpus,
                                             .expires_ms = now_ms + VO_PLACE_RESERVATION_TTL_MS };
    return id;
}

void vo_place_reservation_drop(VoPlaceReservations *r, uint64_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].id == id) {
            reservation_free(&r->items[i]);
            memmove(&r->items[i], &r->items[i + 1], (r->n - i - 1) * sizeof(*r->items));
            r->n--;
            return;
        }
}

void vo_place_reservation_settle(VoPlaceReservations *r, uint64_t id, int64_t rev)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].id == id)
            r->items[i].settle_rev = rev > 0 ? rev : 1;
}

int64_t vo_place_reservations_settled(VoPlaceReservations *r, int64_t rev)
{
    size_t k = 0;
    int64_t left = 0;
    for (size_t i = 0; i < r->n; i++) {
        VoPlaceReservation *x = &r->items[i];
        if (x->settle_rev > 0 && x->settle_rev <= rev) {
            reservation_free(x);
            continue;
        }
        if (x->settle_rev > left && x->settle_rev < INT64_MAX)
            left = x->settle_rev;
        r->items[k++] = *x;
    }
    r->n = k;
    return left;
}

void vo_place_reservations_clear(VoPlaceReservations *r)
{
    for (size_t i = 0; i < r->n; i++)
        reservation_free(&r->items[i]);
    free(r->items);
    *r = (VoPlaceReservations){ 0 };
}

int64_t vo_place_record_rev_parse(const char *text)
{
    if (!text || *text < '1' || *text > '9')
        return 0;
    int64_t v = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - (*p - '0')) / 10)
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v;
}
