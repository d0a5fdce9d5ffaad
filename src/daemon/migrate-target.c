/* migrate-target.c: the manager's choice of a migration target (see
 * migrate-target.h): the VM's needs from its document, the hosts from the
 * store as placement reads them (place-snapshot.c), the source excluded,
 * the group's members but the VM itself, then the pure vo_place. Kept apart
 * from cluster-place.c (the creates' path and its reservations). */
#include "daemon/migrate-target.h"

#include <string.h>

#include "api/forward.h"
#include "api/vm-place-api.h"
#include "cluster/peer-client.h"
#include "cluster/place-network-projects.h"
#include "cluster/place-snapshot.h"
#include "cluster/placement.h"
#include "daemon/cluster-place.h"
#include "daemon/groups.h"
#include "daemon/hosts.h"
#include "daemon/storage.h"
#include "util/util.h"
#include "state/store-json.h"

#define MEMBERS_PREFIX "cluster/members/"
#define RECORDS_PREFIX "cluster/hosts/"
/* The manager reads the store and answers at once; a margin over a slow store. */
#define ASK_TIMEOUT_MS 30000

/* The VM's document {"spec","status"} on its host. */
static int read_vm(VoDaemon *d, const char *vm_id, const char *source, json_t **ret,
                   char **ret_error)
{
    _cleanup_free_ char *text = NULL;
    int r;
    if (!strcmp(source, d->host_id)) {
        _cleanup_free_ char *key = vo_asprintf("vms/%s", vm_id);
        r = vo_store_get(d->store, key, &text, NULL);
    } else if (d->cluster_store) {
        _cleanup_free_ char *key = vo_asprintf("h/%s/vms/%s", source, vm_id);
        r = vo_store_get(d->cluster_store, key, &text, NULL);
    } else
        r = -ENOENT;
    if (r == -ENOENT)
        return vo_error_set(ret_error, -ENOENT, "no VM %s on host %s", vm_id, source);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read VM %s: %s", vm_id, strerror(-r));
    *ret = json_loads(text, 0, NULL);
    if (!json_is_object(*ret) || !json_is_object(json_object_get(*ret, "spec"))) {
        json_decref(*ret);
        return vo_error_set(ret_error, -EIO, "the document of VM %s is damaged", vm_id);
    }
    return 0;
}

/* The networks of the VM's NICs a target must have (placement.h). */
static char **nic_networks(const VoVmSpec *spec)
{
    const char **names = vo_malloc0((spec->n_nics + 1) * sizeof(char *));
    for (size_t i = 0; i < spec->n_nics; i++)
        names[i] = spec->nics[i].network;
    char **v = vo_place_networks_needed(names, spec->n_nics);
    free(names);
    return v;
}

/* Whether volumes of pool are copied into the target's default pool by a
 * move (a local pool: this host's own) rather than reached where they are. */
static bool copied_by_move(const char *pool, void *userdata)
{
    _cleanup_free_ char *path = NULL, *error = NULL;
    bool reachable = false;
    return vo_shared_pool_path(userdata, pool, &path, &reachable, &error) < 0;
}

/* copied_by_move, noting whether any pool was copied. */
typedef struct {
    VoDaemon *d;
    bool any;
} CopySeen;

static bool copied_noting(const char *pool, void *userdata)
{
    CopySeen *seen = userdata;
    bool copied = copied_by_move(pool, seen->d);
    seen->any |= copied;
    return copied;
}

char **vo_migrate_pools_needed(VoDaemon *d, const VoVmSpec *spec, const char *pool)
{
    const char **names = vo_malloc0((spec->n_disks + 5) * sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < spec->n_disks; i++)
        names[n++] = spec->disks[i].volume;
    names[n++] = spec->cdrom;
    names[n++] = spec->nvram;
    names[n++] = spec->kernel_from.volume;
    names[n++] = spec->initrd_from.volume;
    CopySeen seen = { .d = d };
    char **v = vo_place_pools_needed(names, n, pool ? pool : VO_DEFAULT_POOL, copied_noting, &seen);
    /* --pool is where copied volumes go: a VM with nothing to copy (every
     * disk on a shared pool) does not need it on its target (the
     * migration's own check asks for it only then). */
    if (pool && !seen.any) {
        vo_strv_free(v);
        v = vo_place_pools_needed(names, n, VO_DEFAULT_POOL, copied_by_move, d);
    }
    free(names);
    return v;
}

/* A running VM under kvm runs with CPU model host: only a host with the
 * source's model and flags can take it (cluster/migrate-compat.h checks it
 * again with the VM's layout). */
static void cpu_needs(VoPlaceRequest *req, const VoPlaceSnapshot *snap, const char *source,
                      json_t *vm_doc)
{
    const char *state = json_string_value(json_object_get(json_object_get(vm_doc, "status"),
                                                          "state"));
    if (!state || (strcmp(state, "running") && strcmp(state, "paused")))
        return;
    for (size_t i = 0; i < snap->n_hosts; i++) {
        const VoPlaceHost *h = &snap->hosts[i];
        if (strcmp(h->id, source) || h->state == VO_HOST_OFFLINE || h->accel != VO_ACCEL_KVM ||
            req->accel == VO_ACCEL_TCG)
            continue;
        req->accel = VO_ACCEL_KVM;
        req->cpu_model = vo_strdup("host");
        req->cpu_host_model = vo_strdup(h->cpu_model);
        req->cpu_flags = vo_malloc0(sizeof(char *));
        for (size_t k = 0; h->cpu_flags && h->cpu_flags[k]; k++)
            vo_strv_push(&req->cpu_flags, vo_strdup(h->cpu_flags[k]));
    }
}

/* The snapshot of every member host (records read as placement reads them). */
static int read_snapshot(VoDaemon *d, VoPlaceSnapshot *ret, char **ret_error)
{
    VoPlacePolicy policy;
    json_t *members = json_object(), *records = json_object();
    int r = vo_placement_policy_get(d, &policy);
    if (r >= 0)
        r = vo_store_list_objects(d->store, MEMBERS_PREFIX, members);
    if (r >= 0)
        r = vo_store_list_objects(d->store, RECORDS_PREFIX, records);
    if (r < 0) {
        json_decref(members);
        json_decref(records);
        return vo_error_set(ret_error, r, "cannot read the hosts: %s", strerror(-r));
    }
    size_t n = json_object_size(members), i = 0;
    VoPlaceHostDocs *docs = vo_malloc0((n + 1) * sizeof(*docs));
    const char *id;
    json_t *m;
    json_object_foreach(members, id, m)
        docs[i++] = (VoPlaceHostDocs){ .member = m, .record = json_object_get(records, id) };
    char **warnings = NULL;
    r = vo_place_snapshot_build(docs, n, policy, NULL, ret, &warnings, ret_error);
    for (char **w = warnings; w && *w; w++)
        log_warn("migration target: %s", *w);
    vo_strv_free(warnings);
    free(docs);
    json_decref(members);
    json_decref(records);
    return r;
}

/* The group's hosts, the VM itself left out (it leaves its host). */
static int group_hosts(VoDaemon *d, VoPlaceRequest *req, const char *group, const char *vm_id,
                       char **ret_error)
{
    char *error = NULL;
    int r = vo_group_policy(d, group, &req->group_policy, &error);
    if (r == -ENOENT) { /* a group gone: no rule left to keep */
        free(error);
        return 0;
    }
    if (r < 0) {
        *ret_error = error;
        return r;
    }
    json_t *members = NULL;
    r = vo_group_members(d, group, &members);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read group '%s': %s", group, strerror(-r));
    const char *key;
    json_t *doc;
    void *tmp;
    json_object_foreach_safe(members, tmp, key, doc) {
        const char *vm = json_string_value(json_object_get(doc, "vm"));
        const char *slash = strrchr(key, '/');
        if ((vm && !strcmp(vm, vm_id)) || (slash && !strcmp(slash + 1, vm_id)))
            json_object_del(members, key);
    }
    req->group = vo_strdup(group);
    vo_place_group_hosts(members, NULL, group, &req->group_hosts, &req->n_group_hosts);
    json_decref(members);
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(x ? x : "", y ? y : "");
}

static json_t *answer(const VoPlaceSnapshot *snap, const VoPlaceRequest *req,
                      const VoPlaceResult *res)
{
    size_t n = snap->n_hosts;
    json_t **items = vo_malloc0((n + 1) * sizeof(json_t *));
    for (size_t i = 0; i < n; i++) {
        const VoPlaceHost *h = &snap->hosts[i];
        items[i] = json_pack("{s:s, s:s, s:b}", "id", h->id, "name", h->name, "fits",
                             res->verdicts[i].why == VO_PLACE_FITS);
        char *reason = vo_place_reason(snap, req, res, i);
        if (reason)
            json_object_set_new(items[i], "reason", json_string(reason));
        free(reason);
    }
    qsort(items, n, sizeof(json_t *), name_cmp);
    json_t *hosts = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(hosts, items[i]);
    free(items);
    json_t *host = json_null();
    if (res->host >= 0)
        host = json_pack("{s:s, s:s}", "id", snap->hosts[res->host].id, "name",
                         snap->hosts[res->host].name);
    return json_pack("{s:o, s:o}", "host", host, "hosts", hosts);
}

static int place(VoDaemon *d, const char *vm_id, const char *source_host_id,
                 const char *group, const char *pool, json_t **ret, char **ret_error);

int vo_migrate_target_place(VoDaemon *d, const char *vm_id, const char *source_host_id,
                            const char *pool, json_t **ret, char **ret_error)
{
    return place(d, vm_id, source_host_id, NULL, pool, ret, ret_error);
}

int vo_migrate_target_place_group(VoDaemon *d, const char *vm_id, const char *source_host_id,
                                  const char *group, json_t **ret, char **ret_error)
{
    return place(d, vm_id, source_host_id, group, NULL, ret, ret_error);
}

/* The target of the VM with placement's rules: group (NULL: the VM's
 * own), its copied volumes into the target's pool (NULL: default). */
static int place(VoDaemon *d, const char *vm_id, const char *source_host_id,
                 const char *group, const char *pool, json_t **ret, char **ret_error)
{
    *ret = NULL;
    json_t *doc = NULL;
    int r = read_vm(d, vm_id, source_host_id, &doc, ret_error);
    if (r < 0)
        return r;
    VoVmSpec *spec = NULL;
    _cleanup_free_ char *spec_error = NULL;
    r = vo_vm_spec_from_json(json_object_get(doc, "spec"), &spec, &spec_error);
    if (r < 0) {
        json_decref(doc);
        return vo_error_set(ret_error, -EIO, "the definition of VM %s cannot be read: %s",
                            vm_id, spec_error);
    }
    VoPlaceRequest req = { .vcpus = spec->vcpus, .memory_mib = spec->memory_mib,
                           .accel = spec->accel == VO_ACCEL_KVM ? VO_ACCEL_KVM : VO_ACCEL_AUTO };
    req.pools = vo_migrate_pools_needed(d, spec, pool);
    /* A UEFI VM only where OVMF is (an HA restart or DRS must not pick a
     * host that cannot boot it; cluster/migrate-compat.h refuses it too). */
    req.firmware = vo_place_firmware_needed(spec->firmware, spec->secure_boot);
    req.networks = nic_networks(spec);
    vo_strv_push(&req.exclude, vo_strdup(source_host_id));
    VoPlaceSnapshot snap = { 0 };
    VoPlaceResult res = { .host = -1, .pinned = -1 };
    if (!group)
        group = spec->group;
    r = group ? group_hosts(d, &req, group, vm_id, ret_error) : 0;
    if (r >= 0)
        r = read_snapshot(d, &snap, ret_error);
    if (r >= 0) {
        cpu_needs(&req, &snap, source_host_id, doc);
        /* A host's own network of a NIC's name, of another project than
         * the VM's, is not the VM's (cluster/migrate-compat.h refuses a
         * migration to it): the host is taken as without it, so an HA
         * restart (which has no such check) or a migration without --to
         * does not pick it. Projects that cannot be read: none dropped. */
        json_t *owners = NULL;
        if (req.networks && vo_cluster_network_owners_read(d, &owners) < 0)
            owners = NULL;
        vo_place_drop_foreign_networks(&snap, req.networks, owners, vo_vm_spec_project(spec));
        json_decref(owners);
        r = vo_place(&snap, &req, &res);
    }
    if (r >= 0) {
        *ret = answer(&snap, &req, &res);
        if (res.host < 0) {
            char *words = vo_place_reasons_format(&snap, &req, &res);
            r = vo_error_set(ret_error, -EBUSY, "VM %s has no host to move to (%s)", spec->name,
                             words);
            free(words);
        }
    }
    vo_place_result_clear(&res);
    vo_place_snapshot_clear(&snap);
    vo_place_request_clear(&req);
    vo_vm_spec_free(spec);
    json_decref(doc);
    return r;
}

/* Asks the manager at url (another host) over the peer API. */
static int ask_manager(VoDaemon *d, const char *url, const char *vm_id, const char *source,
                       const char *pool, json_t **ret, char **ret_error)
{
    _cleanup_free_ char *path = vo_asprintf("/v1/vms/%s/migrate-target", vm_id);
    /* "pool" only when named: a manager of an older vireod refuses it */
    json_t *body = json_pack("{s:s, s:s*}", "source", source, "pool", pool);
    _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    const char *headers[] = { "Content-Type: application/json", VO_PLACE_HEADER ": 1",
                              VO_FORWARDED_HEADER ": 1", NULL };
    VoPeerResponse resp = { 0 };
    int r = vo_peer_request(&d->peer_tls, url, "POST", path, headers, text, strlen(text),
                            ASK_TIMEOUT_MS, &resp);
    if (r < 0) {
        r = vo_error_set(ret_error, r, "the manager did not answer: %s",
                         resp.error ? resp.error : strerror(-r));
        vo_peer_response_clear(&resp);
        return r;
    }
    json_t *doc = resp.body ? json_loads(resp.body, 0, NULL) : NULL;
    if (resp.status == 200 && json_is_object(doc)) {
        *ret = doc;
        vo_peer_response_clear(&resp);
        return 0;
    }
    const char *message = json_string_value(
        json_object_get(json_object_get(doc, "error"), "message"));
    /* A 400 to "pool": a manager of an older vireod, whose peer route
     * knows no such field (this one's takes every field sent here). */
    if (pool && resp.status == 400) {
        json_decref(doc);
        vo_peer_response_clear(&resp);
        return vo_error_set(ret_error, -ENOTSUP, "the manager runs an older vireod, which "
                            "cannot choose a target with pool '%s': upgrade it, or name the "
                            "target", pool);
    }
    r = resp.status == 409 ? -EBUSY : resp.status == 404 ? -ENOENT
        : resp.status == 503 ? -EAGAIN : resp.status == 400 ? -EINVAL : -EIO;
    r = vo_error_set(ret_error, r, "%s", message ? message : "the manager's answer is not one");
    if (r == -EBUSY && json_is_object(doc)) /* the hosts' reasons, for the caller */
        *ret = json_pack("{s:n, s:O}", "host", "hosts",
                         json_object_get(json_object_get(doc, "error"), "hosts")
                             ?: json_array());
    json_decref(doc);
    vo_peer_response_clear(&resp);
    return r;
}

int vo_migrate_target_json(VoDaemon *d, const char *vm_id, const char *source_host_id,
                           const char *pool, json_t **ret, char **ret_error)
{
    *ret = NULL;
    if (!d->cluster || vo_hosts_is_manager(d))
        return vo_migrate_target_place(d, vm_id, source_host_id, pool, ret, ret_error);
    char *id = NULL, *url = NULL;
    int r = vo_cluster_manager(d, &id, &url, ret_error);
    if (r == -ENOENT)
        r = -EAGAIN; /* between two managers: try again */
    else if (r >= 0 && !strcmp(id, d->host_id)) /* the role just came here */
        r = vo_migrate_target_place(d, vm_id, source_host_id, pool, ret, ret_error);
    else if (r >= 0)
        r = ask_manager(d, url, vm_id, source_host_id, pool, ret, ret_error);
    free(id);
    free(url);
    return r;
}

int vo_migrate_pick_target(VoDaemon *d, const char *vm_id, const char *source_host_id,
                           const char *pool, char **ret_host_id, char **ret_error)
{
    *ret_host_id = NULL;
    json_t *doc = NULL;
    int r = vo_migrate_target_json(d, vm_id, source_host_id, pool, &doc, ret_error);
    if (r == -ENOTSUP && pool) {
        /* A manager of an older vireod: asked as before, it picks with the
         * default pool, and the move's own checks refuse a target without
         * pool (vo_migrate_check_local_disks), as they did then. */
        if (ret_error) {
            free(*ret_error);
            *ret_error = NULL;
        }
        r = vo_migrate_target_json(d, vm_id, source_host_id, NULL, &doc, ret_error);
    }
    if (r >= 0) {
        const char *id = json_string_value(json_object_get(json_object_get(doc, "host"), "id"));
        if (id)
            *ret_host_id = vo_strdup(id);
        else
            r = vo_error_set(ret_error, -EIO, "the manager named no target host");
    }
    json_decref(doc);
    return r;
}
