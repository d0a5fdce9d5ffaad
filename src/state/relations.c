/* relations.c: the relation documents (uses/...) a VM's definition implies,
 * their transaction with the VM's document, and the reads the services
 * below the VM answer "in use" with (see relations.h). */
#include "state/relations.h"

#include <string.h>

#include "state/keys.h"
#include "util/util.h"

static void set_doc(json_t *out, char *key, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        abort();
    json_object_set_new(out, key, json_string(text));
    free(text);
    free(key);
    json_decref(doc);
}

static void add_volume(json_t *out, const char *volume, const VoVmSpec *spec, bool active)
{
    if (!volume)
        return;
    set_doc(out, vo_asprintf("uses/volumes/%s/%s", volume, spec->id),
            json_pack("{s:s, s:s, s:b}", "vm", spec->id, "name", spec->name, "active", active));
}

static void add_image(json_t *out, const char *image, const VoVmSpec *spec)
{
    if (!image)
        return;
    set_doc(out, vo_asprintf("uses/images/%s/%s", image, spec->id),
            json_pack("{s:s, s:s}", "vm", spec->id, "name", spec->name));
}

json_t *vo_relations_of_vm(const VoVmSpec *spec, bool active)
{
    json_t *out = json_object();
    for (size_t i = 0; i < spec->n_disks; i++)
        add_volume(out, spec->disks[i].volume, spec, active);
    add_volume(out, spec->kernel_from.volume, spec, active);
    add_volume(out, spec->cdrom, spec, active);
    add_volume(out, spec->nvram, spec, active);
    add_volume(out, spec->initrd_from.volume, spec, active);
    add_image(out, spec->image, spec);
    add_image(out, spec->kernel_from.image, spec);
    add_image(out, spec->initrd_from.image, spec);
    /* One document per network, with the MACs of every NIC on it. */
    for (size_t i = 0; i < spec->n_nics; i++) {
        const char *net = spec->nics[i].network;
        bool seen = !strcmp(net, "user");
        for (size_t k = 0; k < i && !seen; k++)
            seen = !strcmp(spec->nics[k].network, net);
        if (seen)
            continue;
        json_t *macs = json_array();
        for (size_t k = i; k < spec->n_nics; k++)
            if (!strcmp(spec->nics[k].network, net))
                json_array_append_new(macs, json_string(spec->nics[k].mac));
        set_doc(out, vo_asprintf("uses/networks/%s/%s", net, spec->id),
                json_pack("{s:s, s:s, s:b, s:o}", "vm", spec->id, "name", spec->name, "active",
                          active, "macs", macs));
    }
    return out;
}

void vo_relations_add_group(json_t *want, const VoVmSpec *spec, const char *host_id)
{
    if (!spec->group)
        return;
    set_doc(want, vo_asprintf("cluster/group-members/%s/%s", spec->group, spec->id),
            json_pack("{s:s, s:s, s:s}", "vm", spec->id, "name", spec->name, "host",
                      host_id ? host_id : ""));
}

void vo_relations_add_macs(json_t *want, const VoVmSpec *spec)
{
    for (size_t i = 0; i < spec->n_nics; i++)
        if (spec->nics[i].mac)
            set_doc(want, vo_key_mac_claim(spec->nics[i].mac),
                    json_pack("{s:s, s:s}", "vm", spec->name, "vm_id", spec->id));
}

void vo_relations_add_project(json_t *want, const VoVmSpec *spec, const char *host_id,
                              int64_t disk_bytes)
{
    unsigned vcpus = spec->max_vcpus > spec->vcpus ? spec->max_vcpus : spec->vcpus;
    uint64_t memory = spec->max_memory_mib > spec->memory_mib ? spec->max_memory_mib
                                                              : spec->memory_mib;
    set_doc(want, vo_asprintf(VO_KEY_PROJECT_USAGE_PREFIX "%s/%s", vo_vm_spec_project(spec),
                              spec->id),
            json_pack("{s:s, s:s, s:s, s:i, s:I, s:I}", "vm", spec->id, "name", spec->name,
                      "host", host_id ? host_id : "", "vcpus", (int)vcpus, "memory_mib",
                      (json_int_t)memory, "disk_bytes", (json_int_t)disk_bytes));
}

int vo_relations_commit(VoStore *s, const VoRelationsTxn *t, int64_t *ret_rev)
{
    size_t max = 1 + (t->have ? json_object_size(t->have) : 0) +
                 (t->want ? json_object_size(t->want) : 0);
    for (char *const *k = t->also_delete; k && *k; k++)
        max++;
    max += 3; /* the name claim and its release, the project */
    VoStoreOp *ops = vo_malloc0(sizeof(*ops) * max);
    size_t n = 0;
    if (t->vm_doc)
        ops[n++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = t->vm_key, .value = t->vm_doc };
    else if (t->delete_vm)
        ops[n++] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = t->vm_key };
    const char *key;
    json_t *text;
    /* Only what changed: a state change rewrites the documents that carry
     * "active", a rename all of them, anything else none. */
    json_object_foreach(t->want, key, text) {
        json_t *old = t->have ? json_object_get(t->have, key) : NULL;
        if (!old || strcmp(json_string_value(old), json_string_value(text)))
            ops[n++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = key,
                                    .value = json_string_value(text) };
    }
    json_object_foreach(t->have, key, text)
        if (!t->want || !json_object_get(t->want, key))
            ops[n++] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = key };
    for (char *const *k = t->also_delete; k && *k; k++) {
        bool dup = false; /* a key appears at most once in a transaction */
        for (size_t i = 0; i < n && !dup; i++)
            dup = !strcmp(ops[i].key, *k);
        if (!dup)
            ops[n++] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = *k };
    }
    if (t->claim_key)
        ops[n++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = t->claim_key,
                                .value = t->claim_value };
    if (t->project_key && t->project_doc)
        ops[n++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = t->project_key,
                                .value = t->project_doc };
    if (t->release_key) {
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = !strcmp(ops[i].key, t->release_key);
        if (!dup)
            ops[n++] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = t->release_key };
    }
    /* The relation documents need no compare of their own: only the VM
     * service writes them, always with the VM's document compared. A name
     * claim is compared on being new: one VM per name in the whole store
     * (the cluster's, on etcd). */
    VoStoreCompare *cmps = vo_malloc0(sizeof(*cmps) *
                                      (4 + t->n_object_cmps + t->n_claim_cmps));
    cmps[0] = (VoStoreCompare){ .key = t->vm_key, .expected_rev = t->vm_rev };
    size_t n_cmps = 1, claim_at = 0, group_at = 0, project_at = 0;
    if (t->claim_key) {
        claim_at = n_cmps;
        cmps[n_cmps++] = (VoStoreCompare){ .key = t->claim_key, .expected_rev = VO_REV_NEW };
    }
    /* A group joined is compared at the revision read: a delete marks it
     * first (groups.c), so the join or the delete loses. */
    if (t->group_key) {
        group_at = n_cmps;
        cmps[n_cmps++] = (VoStoreCompare){ .key = t->group_key, .expected_rev = t->group_rev };
    }
    /* A project's quota checked: the project's document as read, and put
     * again (a new revision), so two changes checked against the same use
     * never both commit (projects.c). */
    if (t->project_key) {
        project_at = n_cmps;
        cmps[n_cmps++] = (VoStoreCompare){ .key = t->project_key,
                                           .expected_rev = t->project_rev };
    }
    /* The objects it comes to use, as their project was read: a move on
     * another host and this save never both commit. */
    size_t objects_at = n_cmps;
    for (size_t i = 0; i < t->n_object_cmps; i++)
        cmps[n_cmps++] = t->object_cmps[i];
    /* The short claims it rests on, still the ones made (not lapsed). */
    size_t claims_at = n_cmps;
    for (size_t i = 0; i < t->n_claim_cmps; i++)
        cmps[n_cmps++] = t->claim_cmps[i];
    int64_t rev = 0;
    size_t failed = 0;
    int r = vo_store_txn(s, cmps, n_cmps, ops, n, &rev, &failed);
    if (r == -EEXIST && claim_at && failed == claim_at)
        r = -ENOTUNIQ;
    else if ((r == -ESTALE || r == -ENOENT) && group_at && failed == group_at)
        r = -EIDRM;
    else if ((r == -ESTALE || r == -ENOENT || r == -EEXIST) && project_at &&
             failed == project_at)
        r = -EXDEV;
    else if ((r == -ESTALE || r == -ENOENT || r == -EEXIST) && t->n_claim_cmps &&
             failed >= claims_at)
        r = VO_RELATIONS_ECLAIM;
    else if ((r == -ESTALE || r == -ENOENT || r == -EEXIST) && t->n_object_cmps &&
             failed >= objects_at)
        r = VO_RELATIONS_EOBJECT;
    free(ops);
    free(cmps);
    if (r >= 0 && ret_rev)
        *ret_rev = rev;
    return r;
}

/* The VM id a relation key ends with. */
static const char *vm_of_key(const char *key)
{
    const char *slash = strrchr(key, '/');
    return slash ? slash + 1 : key;
}

static int collect_by_vm(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    json_t *all = userdata;
    const char *id = vm_of_key(key);
    json_t *mine = json_object_get(all, id);
    if (!mine) {
        mine = json_object();
        json_object_set_new(all, id, mine);
    }
    json_object_set_new(mine, key, json_string(value));
    return 0;
}

int vo_relations_by_vm(VoStore *s, json_t **ret)
{
    json_t *all = json_object();
    int r = vo_store_list(s, VO_KEY_USES_PREFIX, collect_by_vm, all);
    if (r < 0) {
        json_decref(all);
        return r;
    }
    *ret = all;
    return 0;
}

void vo_relation_user_clear(VoRelationUser *u)
{
    free(u->vm_id);
    free(u->name);
    *u = (VoRelationUser){ 0 };
}

int vo_relation_first_user(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)key;
    (void)rev;
    VoRelationUser *u = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "vm"));
    const char *name = json_string_value(json_object_get(doc, "name"));
    bool active = json_is_true(json_object_get(doc, "active"));
    /* The first one, or the first active one after it: "is it in use by a
     * running VM" holds for a shared volume when any of its VMs runs. */
    if (id && name && (!u->vm_id || (active && !u->active))) {
        vo_relation_user_clear(u);
        u->vm_id = vo_strdup(id);
        u->name = vo_strdup(name);
        u->active = active;
    }
    json_decref(doc);
    return u->active ? 1 : 0; /* stops the walk at an active one */
}

static int user_under(VoStore *s, char *prefix, VoRelationUser *ret)
{
    *ret = (VoRelationUser){ 0 };
    int r = vo_store_list(s, prefix, vo_relation_first_user, ret);
    free(prefix);
    return r < 0 ? r : ret->vm_id ? 1 : 0;
}

int vo_relations_volume_user(VoStore *s, const char *volume, VoRelationUser *ret)
{
    return user_under(s, vo_key_uses_volume_prefix(volume), ret);
}

int vo_relations_network_user(VoStore *s, const char *network, VoRelationUser *ret)
{
    return user_under(s, vo_key_uses_network_prefix(network), ret);
}


int vo_relations_image_users(VoStore *s, const char *image)
{
    _cleanup_free_ char *prefix = vo_key_uses_image_prefix(image);
    size_t n = 0;
    int r = vo_store_count(s, prefix, &n);
    return r < 0 ? r : (int)n;
}

static int add_nics(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    json_t *arr = userdata;
    /* uses/networks/<network>/<vm-id> */
    const char *net = key + strlen("uses/networks/");
    const char *end = strrchr(net, '/');
    json_t *doc = json_loads(value, 0, NULL);
    const char *name = json_string_value(json_object_get(doc, "name"));
    size_t i;
    json_t *mac;
    if (end && name)
        json_array_foreach(json_object_get(doc, "macs"), i, mac)
            if (json_is_string(mac))
                json_array_append_new(arr, json_pack("{s:s%, s:s, s:s, s:s}", "network", net,
                                                     (size_t)(end - net), "mac",
                                                     json_string_value(mac), "name", name,
                                                     "vm", end + 1));
    json_decref(doc);
    return 0;
}

json_t *vo_relations_network_nics(VoStore *s)
{
    json_t *arr = json_array();
    if (vo_store_list(s, "uses/networks/", add_nics, arr) < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}
