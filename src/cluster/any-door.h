/* any-door.h: the pure parts of "any host serves the whole cluster"
 * (docs/internals.md, "Any door"): which routes name an object another
 * host may own (a VM, a task), what to do with such a request, the keys of
 * the raw etcd handle (h/<host-id>/<key>, cluster/hosts/<id>) as event
 * kinds and objects, and another host's VM document as the API shows a VM.
 * No daemon, no I/O: unit-tested. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What object a route's first {placeholder} names. */
typedef enum {
    VO_ROUTE_OWNER_NONE, /* nothing another host owns (or a cluster-wide list) */
    VO_ROUTE_OWNER_VM,   /* /v1/vms/{vm}[/...] */
    VO_ROUTE_OWNER_TASK, /* /v1/tasks/{id}[/...] */
} VoRouteOwner;

VoRouteOwner vo_route_owner(const char *pattern);

/* What a request for an object does. */
typedef enum {
    VO_DOOR_LOCAL,        /* served here (its handler answers, 404 included) */
    VO_DOOR_FORWARD,      /* forwarded to the host that has it */
    VO_DOOR_OFFLINE_DOC,  /* its host is offline: its last document, marked so */
    VO_DOOR_OFFLINE,      /* its host is offline: 503 naming the host */
} VoDoorAction;

typedef struct {
    VoRouteOwner owner;
    bool clustered;  /* this host is a cluster member */
    bool forwarded;  /* the request carries X-Vireo-Forwarded */
    bool here;       /* this host has the object */
    bool found;      /* another host has it (its documents say so) */
    bool online;     /* that host's record is there */
    bool show;       /* GET of the object itself (not a sub-resource) */
} VoDoorFacts;

VoDoorAction vo_door_decide(const VoDoorFacts *f);

/* A raw-handle key "h/<host-id>/<rest>": the host id (a span of key) and
 * rest. False for any other key (cluster/..., or a malformed one). */
bool vo_cluster_key_split(const char *key, const char **ret_host, size_t *ret_host_len,
                          const char **ret_rest);

/* The event a raw-handle key makes: a host's document (kind and id as
 * util/sse.h maps its own key, host = its host id), a host's live
 * record "cluster/hosts/<id>" or its member document "cluster/members/<id>"
 * (its name, address, ratios and the maintenance flag, kept while it is
 * offline: kind "host" too, id and host = the host id).
 * host_buf gets the host id (NUL-terminated); false for keys that make no
 * event (other cluster/ keys, bookkeeping) or a host id longer than
 * host_size - 1. */
bool vo_cluster_key_object(const char *key, char *host_buf, size_t host_size,
                           const char **ret_kind, const char **ret_id);

/* A VM's document {"spec", "status"} (as the VM service stores it) as GET
 * /v1/vms shows a VM (summary: the listing's fields), with "host" (host_name)
 * and "host_state". now_ms: wall clock, for uptime. NULL when the document
 * is not a VM's. */
json_t *vo_vm_doc_to_api(const char *doc_text, bool summary, const char *host_name,
                         const char *host_state, int64_t now_ms);

/* The project of a VM's document {"spec", ...} (malloc'd): its
 * spec.project, "default" when it names none; NULL when doc_text is not a
 * VM's document (none yet, or unreadable). */
char *vo_vm_doc_project(const char *doc_text);

/* Sorts arr (of objects) by the string at key, then at key2 (may be NULL),
 * ascending, or descending with newest_first; missing strings sort as "". */
void vo_json_array_sort_by(json_t *arr, const char *key, const char *key2, bool descending);
