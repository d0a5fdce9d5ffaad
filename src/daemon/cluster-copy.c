/* cluster-copy.c: moving a host's documents between its SQLite store and
 * etcd (cluster init and join: in; leave: out), in transactions etcd takes
 * (at most 128 keys, well under its 1.5 MiB request limit), and deleting a
 * namespace. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf/vm-spec.h"
#include "daemon/cluster.h"
#include "daemon/pool-names.h"
#include "state/keys.h"
#include "util/util.h"

#define BATCH_KEYS VO_STORE_ETCD_MAX_TXN_OPS
#define BATCH_BYTES (512 * 1024)

typedef struct {
    char **keys, **values; /* strv, the same length */
} Docs;

static void docs_clear(Docs *docs)
{
    vo_strv_free(docs->keys);
    vo_strv_free(docs->values);
    *docs = (Docs){ 0 };
}

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    Docs *docs = userdata;
    vo_strv_pushf(&docs->keys, "%s", key);
    vo_strv_pushf(&docs->values, "%s", value);
    return 0;
}

/* Keys of the hosts service bound to a lease: a copy would outlive it. */
static bool lease_bound(const char *key)
{
    return !strncmp(key, "cluster/hosts/", 14) || !strcmp(key, "cluster/manager");
}

/* A host's own pool's document "pools/<name>": its name, else NULL. */
static const char *own_pool_name(const char *key)
{
    if (strncmp(key, "pools/", 6) != 0 || !key[6] || strchr(key + 6, '/'))
        return NULL;
    return key + 6;
}

/* Writes ops in transactions, each op's key required new (create_only) or
 * unconditionally. With pool_guards, the transaction that writes a host's
 * own pool also compares the cluster's shared pool of its name and that
 * name's claim absent (pool-names.h), so a shared pool made (or being
 * made) since the admission checked the names fails the copy. */
static int write_batches(VoStore *to, VoStoreOp *ops, size_t n, bool create_only,
                         bool pool_guards, char **ret_error)
{
    VoStoreCompare *cmps = vo_malloc0(sizeof(*cmps) * (BATCH_KEYS + 1));
    /* Of each compare: the op it is for, and which key (0: the op's own,
     * 1: the shared pool's, 2: the claim). */
    size_t *cmp_op = vo_malloc0(sizeof(*cmp_op) * (BATCH_KEYS + 1));
    int *cmp_kind = vo_malloc0(sizeof(*cmp_kind) * (BATCH_KEYS + 1));
    char **guard_keys = NULL; /* owned: the compares' keys of shared pools and claims */
    int r = 0;
    for (size_t i = 0; i < n && r >= 0;) {
        size_t k = 0, bytes = 0, nc = 0;
        while (i + k < n && k < BATCH_KEYS &&
               (k == 0 || bytes + strlen(ops[i + k].value ? ops[i + k].value : "") < BATCH_BYTES)) {
            const char *pool = pool_guards ? own_pool_name(ops[i + k].key) : NULL;
            if (nc + (create_only ? 1 : 0) + (pool ? 2 : 0) > BATCH_KEYS)
                break;
            bytes += strlen(ops[i + k].key) + strlen(ops[i + k].value ? ops[i + k].value : "");
            if (create_only) {
                cmp_op[nc] = k, cmp_kind[nc] = 0;
                cmps[nc++] = (VoStoreCompare){ ops[i + k].key, VO_REV_NEW };
            }
            if (pool) {
                char *shared = vo_pool_name_shared_key(pool), *claim = vo_pool_name_claim_key(pool);
                vo_strv_push(&guard_keys, shared);
                vo_strv_push(&guard_keys, claim);
                cmp_op[nc] = k, cmp_kind[nc] = 1;
                cmps[nc++] = (VoStoreCompare){ shared, VO_REV_NEW };
                cmp_op[nc] = k, cmp_kind[nc] = 2;
                cmps[nc++] = (VoStoreCompare){ claim, VO_REV_NEW };
            }
            k++;
        }
        size_t failed = 0;
        r = vo_store_txn(to, cmps, nc, ops + i, k, NULL, &failed);
        if (r == -EEXIST && failed < nc && cmp_kind[failed] != 0) {
            const char *name = own_pool_name(ops[i + cmp_op[failed]].key);
            r = vo_error_set(ret_error, r, "pool name '%s' is taken: the cluster has a shared "
                             "pool '%s'%s: delete this host's pool (and make it again under "
                             "another name) first", name, name,
                             cmp_kind[failed] == 2 ? " (being created now)" : "");
        } else if (r == -EEXIST &&
                   !strncmp(ops[i + (failed < nc ? cmp_op[failed] : 0)].key,
                            VO_KEY_MAC_CLAIMS_PREFIX, strlen(VO_KEY_MAC_CLAIMS_PREFIX))) {
            const char *key = ops[i + (failed < nc ? cmp_op[failed] : 0)].key;
            /* given since the admission, or a member that does not check MACs */
            r = vo_error_set(ret_error, r, "MAC %s of a VM of this host is another VM's in the "
                             "cluster: give this VM another MAC (vireo vm nic remove, vireo vm "
                             "nic add), then join", key + strlen(VO_KEY_MAC_CLAIMS_PREFIX));
        } else if (r == -EEXIST)
            r = vo_error_set(ret_error, r, "the cluster already has a document %s",
                             ops[i + (failed < nc ? cmp_op[failed] : 0)].key);
        else if (r < 0)
            r = vo_error_set(ret_error, r, "cannot copy the documents: %s",
                             r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
        i += k;
    }
    vo_strv_free(guard_keys);
    free(cmp_kind);
    free(cmp_op);
    free(cmps);
    return r;
}

/* The name record of a VM document "vms/<id>" (NULL for other keys). */
static char *vm_name_record(const char *key, const char *value, const char *host_id,
                            char **ret_key)
{
    if (strncmp(key, "vms/", 4) != 0 || strchr(key + 4, '/'))
        return NULL;
    json_t *doc = json_loads(value, 0, NULL);
    const char *name = json_string_value(json_object_get(json_object_get(doc, "spec"), "name"));
    char *text = NULL;
    if (name) {
        *ret_key = vo_asprintf("cluster/names/vms/%s", name);
        json_t *rec = json_pack("{s:s, s:s}", "vm", key + 4, "host", host_id);
        text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(rec);
    }
    json_decref(doc);
    return text;
}

/* The MAC index's held entries of a VM document "vms/<id>" (mac-claims.h:
 * {"vm", "vm_id"}, as the VM's own write puts them), pushed to *extra as
 * key and value, each MAC once (seen: a MAC two VMs had before the index
 * goes to the first). Created new with the copy: one another VM of the
 * cluster holds fails it (the join is undone). */
static void vm_mac_records(const char *key, const char *value, json_t *seen, char ***extra)
{
    if (strncmp(key, "vms/", 4) != 0 || strchr(key + 4, '/'))
        return;
    json_t *doc = json_loads(value, 0, NULL), *spec = json_object_get(doc, "spec"), *nic;
    const char *name = json_string_value(json_object_get(spec, "name"));
    size_t i;
    json_array_foreach(json_object_get(spec, "nics"), i, nic) {
        const char *mac = json_string_value(json_object_get(nic, "mac"));
        if (!name || !mac || !vo_mac_valid(mac))
            continue;
        char *mac_key = vo_key_mac_claim(mac);
        if (json_object_get(seen, mac_key)) {
            free(mac_key);
            continue;
        }
        json_object_set_new(seen, mac_key, json_true());
        json_t *held = json_pack("{s:s, s:s}", "vm", name, "vm_id", key + 4);
        vo_strv_push(extra, mac_key);
        vo_strv_push(extra, json_dumps(held, JSON_COMPACT | JSON_SORT_KEYS));
        json_decref(held);
    }
    json_decref(doc);
}

int vo_cluster_copy_in(VoStore *from, VoStore *to, const char *host_id, bool with_cluster,
                       char **ret_error)
{
    Docs docs = { 0 };
    int r = vo_store_list(from, "", collect, &docs);
    if (r < 0) {
        docs_clear(&docs);
        return vo_error_set(ret_error, r, "cannot read the documents: %s", strerror(-r));
    }
    size_t n = vo_strv_len(docs.keys);
    char **extra = NULL; /* name records, then MAC entries: keys and values, owned */
    char **macs = NULL;
    json_t *seen = json_object();
    /* A join enters its VMs' MACs in the cluster's index (cluster init
     * copies its own index, under cluster/, as it is). */
    for (size_t i = 0; i < n && !with_cluster; i++)
        vm_mac_records(docs.keys[i], docs.values[i], seen, &macs);
    json_decref(seen);
    VoStoreOp *ops = vo_malloc0(sizeof(*ops) * (2 * n + vo_strv_len(macs) / 2 + 1));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *key = docs.keys[i];
        if (lease_bound(key) || (!with_cluster && !strncmp(key, "cluster/", 8)) ||
            !strncmp(key, "cluster/names/", 14))
            continue;
        ops[k++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = key, .value = docs.values[i] };
    }
    size_t n_docs = k;
    for (size_t i = 0; i < n_docs; i++) {
        char *name_key = NULL;
        char *rec = vm_name_record(ops[i].key, ops[i].value, host_id, &name_key);
        if (!rec)
            continue;
        vo_strv_push(&extra, name_key);
        vo_strv_push(&extra, rec);
    }
    /* The MAC entries after the name records, in this batch or a later
     * one: the joiner is no member yet, so its VMs exist for the MAC
     * index's ghost test (mac-ghosts.c) by their name records alone; an
     * entry written before its VM's name record could be swept (or taken
     * over) as a ghost's meanwhile. */
    for (size_t i = 0; macs && macs[i]; i++)
        vo_strv_push(&extra, TAKE_PTR(macs[i]));
    free(macs);
    for (size_t i = 0; extra && extra[i]; i += 2)
        ops[k++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = extra[i], .value = extra[i + 1] };
    r = write_batches(to, ops, k, true, true, ret_error);
    if (r >= 0)
        log_info("copied %zu documents into etcd", n_docs);
    free(ops);
    vo_strv_free(extra);
    docs_clear(&docs);
    return r;
}

int vo_cluster_copy_out(VoStore *from, VoStore *to, char **ret_error)
{
    Docs docs = { 0 };
    int r = vo_store_list(from, "", collect, &docs);
    if (r < 0) {
        docs_clear(&docs);
        return vo_error_set(ret_error, r, "cannot read this host's documents from etcd: %s",
                            r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
    }
    size_t n = vo_strv_len(docs.keys);
    VoStoreOp *ops = vo_malloc0(sizeof(*ops) * (n + 1));
    for (size_t i = 0; i < n; i++)
        ops[i] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = docs.keys[i], .value = docs.values[i] };
    r = write_batches(to, ops, n, true, false, ret_error);
    free(ops);
    docs_clear(&docs);
    return r;
}

int vo_cluster_delete_prefix(VoStore *s, const char *prefix)
{
    Docs docs = { 0 };
    int r = vo_store_list(s, prefix, collect, &docs);
    size_t n = vo_strv_len(docs.keys);
    VoStoreOp *ops = vo_malloc0(sizeof(*ops) * (n + 1));
    for (size_t i = 0; i < n; i++)
        ops[i] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = docs.keys[i] };
    for (size_t i = 0; r >= 0 && i < n; i += BATCH_KEYS)
        r = vo_store_txn(s, NULL, 0, ops + i, n - i < BATCH_KEYS ? n - i : BATCH_KEYS, NULL,
                         NULL);
    free(ops);
    docs_clear(&docs);
    return r;
}

/* Keys and the revisions they were read at: deleted at those, so a
 * record another host took over since stays. */
typedef struct {
    char **keys;
    int64_t *revs;
    size_t n;
} KeysRead;

static void keys_read_add(KeysRead *k, const char *key, int64_t rev)
{
    vo_strv_pushf(&k->keys, "%s", key);
    k->revs = realloc(k->revs, sizeof(*k->revs) * (k->n + 1));
    if (!k->revs)
        abort();
    k->revs[k->n++] = rev;
}

/* Deletes each at its revision (gone or changed since: left); frees k. */
static int keys_read_delete(VoStore *raw, KeysRead *k, int r)
{
    for (size_t i = 0; r >= 0 && i < k->n; i++) {
        r = vo_store_delete(raw, k->keys[i], k->revs[i]);
        if (r == -ENOENT || r == -ESTALE)
            r = 0;
    }
    vo_strv_free(k->keys);
    free(k->revs);
    *k = (KeysRead){ 0 };
    return r;
}

typedef struct {
    const char *host;
    KeysRead found;
} HostRecords;

static int collect_host_record(const char *key, const char *value, int64_t rev, void *userdata)
{
    HostRecords *h = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *host = json_string_value(json_object_get(doc, "host"));
    if (host && !strcmp(host, h->host))
        keys_read_add(&h->found, key, rev);
    json_decref(doc);
    return 0;
}

int vo_cluster_forget_records(VoStore *raw, const char *host_id)
{
    /* cluster/pool-kept/: its kept rbd intents (pool-kept.h), which would
     * otherwise refuse a shared pool's delete, naming a host long gone. */
    static const char *const prefixes[] = { "cluster/names/vms/", "cluster/group-members/",
                                            "cluster/ipam/", "cluster/project-usage/",
                                            "cluster/pool-kept/", NULL };
    HostRecords h = { .host = host_id };
    int r = 0;
    for (size_t p = 0; r >= 0 && prefixes[p]; p++)
        r = vo_store_list(raw, prefixes[p], collect_host_record, &h);
    return keys_read_delete(raw, &h.found, r);
}

/* The VM ids a host's namespace names: of its VM documents (vms/<id>) and
 * of its relations (uses/.../<id>: also those of a VM without a document,
 * a create cut short, whose held claims the host's start would have
 * deleted). */
typedef struct {
    size_t prefix_len;
    bool last; /* the id is the key's last part (uses/), else its first (vms/) */
    json_t *ids;
} VmIds;

static int collect_vm_id(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)value;
    (void)rev;
    VmIds *v = userdata;
    const char *rest = key + v->prefix_len;
    const char *id = v->last ? strrchr(rest, '/') : NULL;
    id = id ? id + 1 : rest;
    size_t len = v->last ? strlen(id) : strcspn(id, "/");
    if (len)
        json_object_setn_new(v->ids, id, len, json_true());
    return 0;
}

/* The held claims (cluster/claims/macs/, "vm_id") of the VMs in ids. */
typedef struct {
    json_t *ids;
    KeysRead found;
} HeldClaims;

static int collect_held(const char *key, const char *value, int64_t rev, void *userdata)
{
    HeldClaims *h = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "vm_id"));
    if (id && json_object_get(h->ids, id))
        keys_read_add(&h->found, key, rev);
    json_decref(doc);
    return 0;
}

int vo_cluster_forget_macs(VoStore *raw, const char *host_id)
{
    /* First its mark: a host with this id that (re)joins is not in the
     * index until its start fills it in, and its documents must be read
     * meanwhile. VO_REV_ANY: the mark is the host's alone, which is gone. */
    _cleanup_free_ char *mark = vo_asprintf(VO_KEY_MAC_INDEXED_PREFIX "%s", host_id);
    int r = vo_store_delete(raw, mark, VO_REV_ANY);
    if (r < 0 && r != -ENOENT)
        return r;
    _cleanup_free_ char *vms = vo_asprintf("h/%s/vms/", host_id);
    _cleanup_free_ char *uses = vo_asprintf("h/%s/" VO_KEY_USES_PREFIX, host_id);
    VmIds v = { .prefix_len = strlen(vms), .ids = json_object() };
    r = vo_store_list(raw, vms, collect_vm_id, &v);
    v.prefix_len = strlen(uses);
    v.last = true;
    if (r >= 0)
        r = vo_store_list(raw, uses, collect_vm_id, &v);
    /* One read of the index, each claim deleted at the revision read: one
     * another VM took over since stays. */
    HeldClaims h = { .ids = v.ids };
    if (r >= 0 && json_object_size(v.ids))
        r = vo_store_list(raw, VO_KEY_MAC_CLAIMS_PREFIX, collect_held, &h);
    r = keys_read_delete(raw, &h.found, r);
    json_decref(v.ids);
    return r;
}
