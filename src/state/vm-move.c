/* vm-move.c: the ownership switch of a live migration or a cold move
 * (vm-move.h). Reads
 * what the VM has in the source host's namespace and in the cluster's,
 * then writes the move as one transaction with a compare per document. */
#include "state/vm-move.h"

#include <jansson.h>
#include <string.h>

#include "state/keys.h"
#include "state/project-objects.h"
#include "util/util.h"

typedef struct {
    char *key;   /* raw-handle key */
    char *value;
    int64_t rev;
} Doc;

typedef struct {
    const char *vm_id;
    Doc *docs;
    size_t n;
} Docs;

static void docs_add(Docs *ds, const char *key, const char *value, int64_t rev)
{
    ds->docs = realloc(ds->docs, sizeof(Doc) * (ds->n + 1));
    if (!ds->docs)
        abort();
    ds->docs[ds->n++] = (Doc){ .key = vo_strdup(key), .value = vo_strdup(value), .rev = rev };
}

static void docs_clear(Docs *ds)
{
    for (size_t i = 0; i < ds->n; i++) {
        free(ds->docs[i].key);
        free(ds->docs[i].value);
    }
    free(ds->docs);
    ds->docs = NULL;
    ds->n = 0;
}

/* Keys whose last component is the VM's id (uses/.../<id>, group members). */
static int collect_ending(const char *key, const char *value, int64_t rev, void *userdata)
{
    Docs *ds = userdata;
    const char *slash = strrchr(key, '/');
    if (slash && !strcmp(slash + 1, ds->vm_id))
        docs_add(ds, key, value, rev);
    return 0;
}

static int collect_all(const char *key, const char *value, int64_t rev, void *userdata)
{
    docs_add(userdata, key, value, rev);
    return 0;
}

/* Address records whose "vm" is the VM. */
static int collect_ipam(const char *key, const char *value, int64_t rev, void *userdata)
{
    Docs *ds = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *vm = json_string_value(json_object_get(doc, "vm"));
    if (vm && !strcmp(vm, ds->vm_id))
        docs_add(ds, key, value, rev);
    json_decref(doc);
    return 0;
}

static int get_one(VoStore *raw, const char *key, Docs *ds)
{
    _cleanup_free_ char *value = NULL;
    int64_t rev = 0;
    int r = vo_store_get(raw, key, &value, &rev);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    docs_add(ds, key, value, rev);
    return 0;
}

/* value with "host" set to host (malloc'd text); NULL when not an object. */
static char *with_host(const char *value, const char *host)
{
    json_t *doc = json_loads(value, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    json_object_set_new(doc, "host", json_string(host));
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

/* The key of a moved document under the destination: rel (the key without
 * the source's prefix) with a moved volume's relation renamed
 * (uses/volumes/<from>/<vm> -> uses/volumes/<to>/<vm>). */
static char *moved_key(const char *dst, const char *rel, const VoVolumeMove *vols, size_t n_vols)
{
    for (size_t i = 0; i < n_vols; i++) {
        _cleanup_free_ char *from = vo_asprintf("uses/volumes/%s/", vols[i].from);
        if (!strncmp(rel, from, strlen(from)))
            return vo_asprintf("%suses/volumes/%s/%s", dst, vols[i].to, rel + strlen(from));
    }
    return vo_asprintf("%s%s", dst, rel);
}

/* The VM document with its volume references (disks, kernel, initrd,
 * nvram) renamed as vols say (malloc'd), or a copy when none changes. */
static char *with_volumes(const char *value, const VoVolumeMove *vols, size_t n_vols)
{
    json_t *doc = n_vols ? json_loads(value, 0, NULL) : NULL;
    json_t *spec = json_object_get(doc, "spec");
    if (!json_is_object(spec)) {
        json_decref(doc);
        return vo_strdup(value);
    }
    json_t *refs[64];
    size_t n = 0;
    json_t *disk;
    size_t i;
    json_array_foreach(json_object_get(spec, "disks"), i, disk)
        if (n < ELEMENTSOF(refs) - 2)
            refs[n++] = disk;
    refs[n++] = json_object_get(spec, "kernel");
    refs[n++] = json_object_get(spec, "initrd");
    for (size_t k = 0; k < n; k++) {
        const char *v = json_string_value(json_object_get(refs[k], "volume"));
        for (size_t j = 0; v && j < n_vols; j++)
            if (!strcmp(v, vols[j].from)) {
                json_object_set_new(refs[k], "volume", json_string(vols[j].to));
                break;
            }
    }
    /* The UEFI NVRAM is a string of its own ("nvram": "POOL/NAME"). */
    const char *nvram = json_string_value(json_object_get(spec, "nvram"));
    for (size_t j = 0; nvram && j < n_vols; j++)
        if (!strcmp(nvram, vols[j].from)) {
            json_object_set_new(spec, "nvram", json_string(vols[j].to));
            break;
        }
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

/* A volume document with "pool" and "name" of key to ("pool/name"),
 * without "backing" and "image" when flatten (the copy stands alone). */
static char *volume_renamed(const char *value, const char *to, bool flatten)
{
    json_t *doc = json_loads(value, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    size_t plen = strcspn(to, "/");
    json_object_set_new(doc, "pool", json_stringn(to, plen));
    json_object_set_new(doc, "name", json_string(to[plen] ? to + plen + 1 : ""));
    if (flatten) {
        json_object_del(doc, "backing");
        json_object_del(doc, "image");
    }
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

/* The move marks (state/project-objects.h) the switch compares absent:
 * those of the objects the VM uses whose project move looks for their
 * users host by host, so could miss a VM that moves between two hosts
 * meanwhile (from one not looked at yet to one looked at): a shared pool's
 * volume, a cluster network, and a local volume that moves with the VM.
 * A local volume or network that stays has no such look (the VM leaves
 * it behind only by a move that carries its disks). own: the VM's
 * documents (keys under src); adds the marks' keys to ret, each with
 * the object's words ("volume 'p/n'") for a refusal. */
static int marks_to_compare(VoStore *raw, const Docs *own, const char *src,
                            const char *src_host, const VoVolumeMove *vols, size_t n_vols,
                            Docs *ret)
{
    static const char volumes[] = "uses/volumes/", networks[] = "uses/networks/";
    for (size_t i = 0; i < n_vols; i++) {
        VoProjectObject o = { .kind = "volume", .scope = src_host, .id = vols[i].from };
        _cleanup_free_ char *mark = vo_project_object_mark_key(&o);
        _cleanup_free_ char *what = vo_asprintf("volume '%s'", vols[i].from);
        docs_add(ret, mark, what, VO_REV_NEW);
    }
    for (size_t i = 0; i < own->n; i++) {
        const char *rel = own->docs[i].key + strlen(src);
        bool volume = !strncmp(rel, volumes, strlen(volumes));
        if (!volume && strncmp(rel, networks, strlen(networks)))
            continue;
        const char *id = rel + strlen(volume ? volumes : networks);
        const char *end = strrchr(id, '/');
        if (!end)
            continue;
        _cleanup_free_ char *object = vo_asprintf("%.*s", (int)(end - id), id);
        bool carried = false;
        for (size_t j = 0; j < n_vols; j++)
            carried |= volume && !strcmp(vols[j].from, object);
        if (carried)
            continue;
        /* The pool's or network's cluster document says which are shared. */
        _cleanup_free_ char *doc = volume
            ? vo_asprintf("cluster/pools/%.*s", (int)strcspn(object, "/"), object)
            : vo_asprintf("cluster/networks/%s", object);
        int r = vo_store_get(raw, doc, NULL, NULL);
        if (r == -ENOENT)
            continue;
        if (r < 0)
            return r;
        VoProjectObject o = { .kind = volume ? "volume" : "network",
                              .scope = volume ? "shared" : "cluster", .id = object };
        _cleanup_free_ char *mark = vo_project_object_mark_key(&o);
        _cleanup_free_ char *what = vo_asprintf("%s '%s'", o.kind, object);
        docs_add(ret, mark, what, VO_REV_NEW);
    }
    return 0;
}

/* One attempt; *ret_host_changed when only the destination's live record
 * (rewritten every few seconds) failed its compare. */
/* The VM document of a VM whose host died, as it lands on the
 * destination: not running (its QEMU went with its host), why, and what HA
 * recovery says of it (malloc'd; NULL when not a VM document). */
static char *landed_from_down(const char *value, const VoVmMoveDown *down)
{
    json_t *doc = json_loads(value, 0, NULL);
    json_t *status = json_object_get(doc, "status");
    if (!json_is_object(status)) {
        json_decref(doc);
        return NULL;
    }
    json_object_set_new(status, "state", json_string("crashed"));
    json_object_set_new(status, "exit_reason", json_string(down->exit_reason));
    json_object_del(status, "started_at");
    json_object_del(status, "state_reason");
    if (down->ha_state)
        json_object_set_new(doc, "ha_state", json_string(down->ha_state));
    if (down->ha_restarts)
        json_object_set(doc, "ha_restarts", down->ha_restarts);
    /* Landed, not started yet: its new host's first save (the start's)
     * drops the mark. A new host that dies before that leaves an HA VM to
     * restart again although it is "crashed" (cluster/ha-plan.h). */
    json_object_set_new(doc, "ha_landed", json_true());
    /* A failed HA start's mark (cluster/ha-plan.h) is its old host's, whose
     * retries followed it: the new host's first start is an HA start of its
     * own (a failure marks it again there). Carried along, the manager's
     * follow of a failed hand-over took it for that host's and left it. */
    json_object_del(doc, "ha_start_failed");
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

/* Whether a VM document says its VM is not running (crashed, stopped). */
static bool not_running(const char *value)
{
    json_t *doc = json_loads(value, 0, NULL);
    const char *state = json_string_value(json_object_get(json_object_get(doc, "status"),
                                                          "state"));
    bool r = state && (!strcmp(state, "crashed") || !strcmp(state, "stopped"));
    json_decref(doc);
    return r;
}

static int move_once(VoStore *raw, const char *vm_id, const char *src_host, const char *dst_host,
                     int64_t vm_rev, const VoVolumeMove *vols, size_t n_vols,
                     const VoVmMoveDown *down, int64_t *ret_rev, bool *ret_host_changed,
                     char **ret_error)
{
    Docs volumes = { .vm_id = vm_id };
    /* The moved volumes' project documents follow them to dst's scope. */
    VoProjectObjectCarry *carries = vo_malloc0(sizeof(*carries) * (n_vols + 1));
    Docs own = { .vm_id = vm_id }, shared = { .vm_id = vm_id }, marks = { .vm_id = vm_id };
    _cleanup_free_ char *src = vo_asprintf("h/%s/", src_host);
    _cleanup_free_ char *dst = vo_asprintf("h/%s/", dst_host);
    _cleanup_free_ char *vm_key = vo_asprintf("%svms/%s", src, vm_id);
    _cleanup_free_ char *dst_vm_key = vo_asprintf("%svms/%s", dst, vm_id);
    _cleanup_free_ char *value = NULL, *uses = NULL, *snaps = NULL, *current = NULL;
    _cleanup_free_ char *base = NULL, *claim = NULL;
    _cleanup_free_ char *live_key = vo_asprintf("cluster/hosts/%s", dst_host);
    _cleanup_free_ char *src_live_key = vo_asprintf("cluster/hosts/%s", src_host);
    int64_t rev = 0, live_rev = 0;
    VoStoreCompare *cmps = NULL;
    VoStoreOp *ops = NULL;
    char **texts = NULL;
    size_t n_cmps = 0, n_ops = 0, n_texts = 0;
    int r = vo_store_get(raw, vm_key, &value, &rev);
    if (r < 0) {
        r = vo_error_set(ret_error, r, "the VM's document %s cannot be read: %s", vm_key,
                         strerror(-r));
        goto out;
    }
    if (vm_rev > 0 && rev != vm_rev) {
        r = vo_error_set(ret_error, -ESTALE, "the VM's document changed during the migration "
                         "(revision %lld, expected %lld)", (long long)rev, (long long)vm_rev);
        goto out;
    }
    docs_add(&own, vm_key, value, rev);
    /* A destination that died since it prepared is not given the VM: its
     * live record (on its lease) must be there, unchanged, at the commit. */
    {
        _cleanup_free_ char *live = NULL;
        r = vo_store_get(raw, live_key, &live, &live_rev);
        if (r == -ENOENT) {
            r = vo_error_set(ret_error, -EHOSTDOWN, "host %s is not online (its live record "
                             "%s is gone)", dst_host, live_key);
            goto out;
        }
        if (r < 0)
            goto read_failed;
    }
    /* From a dead host: its live record must be gone (and stay gone until
     * the commit: compared in the transaction). */
    if (down && down->src_fenced && !not_running(value)) {
        r = vo_error_set(ret_error, -EBUSY, "VM %s runs on host %s (or is starting)", vm_id,
                         src_host);
        goto out;
    }
    if (down && !down->src_fenced) {
        _cleanup_free_ char *live = NULL;
        r = vo_store_get(raw, src_live_key, &live, NULL);
        if (r >= 0) {
            r = vo_error_set(ret_error, -EBUSY, "host %s is online (its live record %s "
                             "exists): its VMs are its own", src_host, src_live_key);
            goto out;
        }
        if (r != -ENOENT)
            goto read_failed;
    }
    uses = vo_asprintf("%suses/", src);
    snaps = vo_asprintf("%ssnapshots/%s/", src, vm_id);
    current = vo_asprintf("%ssnapshot-current/%s", src, vm_id);
    base = vo_asprintf("%sbackup-base/%s", src, vm_id);
    if ((r = vo_store_list(raw, uses, collect_ending, &own)) < 0 ||
        (r = vo_store_list(raw, snaps, collect_all, &own)) < 0 ||
        (r = get_one(raw, current, &own)) < 0 || (r = get_one(raw, base, &own)) < 0)
        goto read_failed;
    for (size_t i = 0; i < n_vols; i++) {
        _cleanup_free_ char *vkey = vo_asprintf("%svolumes/%s", src, vols[i].from);
        size_t before = volumes.n;
        if ((r = get_one(raw, vkey, &volumes)) < 0)
            goto read_failed;
        if (volumes.n == before) {
            r = vo_error_set(ret_error, -ENOENT, "volume '%s' has no document on the source",
                             vols[i].from);
            goto out;
        }
        VoProjectObject from = { .kind = "volume", .scope = src_host, .id = vols[i].from };
        VoProjectObject to = { .kind = "volume", .scope = dst_host, .id = vols[i].to };
        if ((r = vo_project_object_carry_read(raw, &from, &to, dst_host, &carries[i])) < 0)
            goto read_failed;
    }

    if ((r = marks_to_compare(raw, &own, src, src_host, vols, n_vols, &marks)) < 0)
        goto read_failed;

    json_t *doc = json_loads(value, 0, NULL);
    const char *name = json_string_value(json_object_get(json_object_get(doc, "spec"), "name"));
    claim = name ? vo_key_vm_name(name) : NULL;
    json_decref(doc);
    if (claim) {
        size_t before = shared.n;
        if ((r = get_one(raw, claim, &shared)) < 0)
            goto read_failed;
        if (shared.n > before) { /* only a claim this VM holds */
            json_t *c = json_loads(shared.docs[before].value, 0, NULL);
            const char *holder = json_string_value(json_object_get(c, "vm"));
            bool ours = holder && !strcmp(holder, vm_id);
            json_decref(c);
            if (!ours) {
                free(shared.docs[before].key);
                free(shared.docs[before].value);
                shared.n--;
            }
        }
    }
    if ((r = vo_store_list(raw, "cluster/group-members/", collect_ending, &shared)) < 0 ||
        (r = vo_store_list(raw, "cluster/project-usage/", collect_ending, &shared)) < 0 ||
        (r = vo_store_list(raw, "cluster/ipam/", collect_ipam, &shared)) < 0)
        goto read_failed;

    /* Only the volumes in a project carry documents: one of none must not
     * make a move that fitted before no longer fit in a transaction. */
    size_t n_carried = 0;
    for (size_t i = 0; i < n_vols; i++)
        n_carried += carries[i].found;
    size_t n_total_cmps = own.n + shared.n + 3 + 2 * n_vols +
                          VO_PROJECT_OBJECT_CARRY_CMPS * n_carried + marks.n;
    size_t n_total_ops = 2 * own.n + shared.n + 2 * n_vols +
                         VO_PROJECT_OBJECT_CARRY_OPS * n_carried;
    if (n_total_cmps > VO_STORE_ETCD_MAX_TXN_OPS || n_total_ops > VO_STORE_ETCD_MAX_TXN_OPS) {
        r = vo_error_set(ret_error, -E2BIG, "the VM has %zu documents to move, more than one "
                         "transaction holds (%d writes)", own.n + shared.n,
                         VO_STORE_ETCD_MAX_TXN_OPS);
        goto out;
    }
    cmps = vo_malloc0(sizeof(*cmps) * n_total_cmps);
    ops = vo_malloc0(sizeof(*ops) * n_total_ops);
    texts = vo_malloc0(sizeof(char *) * (2 * own.n + shared.n + 2 * n_vols + 2));
    cmps[n_cmps++] = (VoStoreCompare){ .key = dst_vm_key, .expected_rev = VO_REV_NEW };
    cmps[n_cmps++] = (VoStoreCompare){ .key = live_key, .expected_rev = live_rev };
    if (down && !down->src_fenced) /* index 2: the source stays down */
        cmps[n_cmps++] = (VoStoreCompare){ .key = src_live_key, .expected_rev = VO_REV_NEW };
    else if (down && down->src_record_rev > 0) /* index 2: the source stays fenced */
        cmps[n_cmps++] = (VoStoreCompare){ .key = src_live_key,
                                           .expected_rev = down->src_record_rev };
    for (size_t i = 0; i < own.n; i++) {
        char *moved = moved_key(dst, own.docs[i].key + strlen(src), vols, n_vols);
        texts[n_texts++] = moved;
        const char *text = own.docs[i].value;
        if (i == 0 && n_vols) /* the VM's document: its volume references */
            text = texts[n_texts++] = with_volumes(text, vols, n_vols);
        if (i == 0 && down) {
            char *landed = landed_from_down(text, down);
            if (!landed) {
                r = vo_error_set(ret_error, -EINVAL, "%s is not a VM document", vm_key);
                goto out;
            }
            text = texts[n_texts++] = landed;
        }
        cmps[n_cmps++] = (VoStoreCompare){ .key = own.docs[i].key,
                                           .expected_rev = own.docs[i].rev };
        ops[n_ops++] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = own.docs[i].key };
        ops[n_ops++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = moved, .value = text };
    }
    for (size_t i = 0; i < volumes.n; i++) {
        char *to_key = vo_asprintf("%svolumes/%s", dst, vols[i].to);
        texts[n_texts++] = to_key;
        char *text = volume_renamed(volumes.docs[i].value, vols[i].to, vols[i].flatten);
        if (!text) {
            r = vo_error_set(ret_error, -EINVAL, "%s is not a volume document",
                             volumes.docs[i].key);
            goto out;
        }
        texts[n_texts++] = text;
        cmps[n_cmps++] = (VoStoreCompare){ .key = volumes.docs[i].key,
                                           .expected_rev = volumes.docs[i].rev };
        cmps[n_cmps++] = (VoStoreCompare){ .key = to_key, .expected_rev = VO_REV_NEW };
        ops[n_ops++] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = volumes.docs[i].key };
        ops[n_ops++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = to_key, .value = text };
    }
    for (size_t i = 0; i < n_vols; i++)
        vo_project_object_carry_add(&carries[i], cmps, &n_cmps, ops, &n_ops);
    for (size_t i = 0; i < shared.n; i++) {
        char *text = with_host(shared.docs[i].value, dst_host);
        if (!text)
            continue; /* not a document of ours to rewrite */
        texts[n_texts++] = text;
        cmps[n_cmps++] = (VoStoreCompare){ .key = shared.docs[i].key,
                                           .expected_rev = shared.docs[i].rev };
        ops[n_ops++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = shared.docs[i].key,
                                    .value = text };
    }
    size_t marks_at = n_cmps;
    for (size_t i = 0; i < marks.n; i++)
        cmps[n_cmps++] = (VoStoreCompare){ .key = marks.docs[i].key, .expected_rev = VO_REV_NEW };
    size_t failed = 0;
    r = vo_store_txn(raw, cmps, n_cmps, ops, n_ops, ret_rev, &failed);
    if (r == -EEXIST && failed >= marks_at && failed < n_cmps) {
        r = vo_error_set(ret_error, -EBUSY, "%s is being moved to another project (on this "
                         "or another host); the VM stays on host %s: try again when that "
                         "move is done", marks.docs[failed - marks_at].value, src_host);
    } else if ((r == -ESTALE || r == -ENOENT) && failed == 1) {
        *ret_host_changed = r == -ESTALE; /* rewritten: try again */
        if (r == -ENOENT)
            r = -EHOSTDOWN;
        vo_error_set(ret_error, r, "host %s %s during the switch", dst_host,
                     r == -ESTALE ? "renewed its live record" : "went offline");
    } else if (r == -EEXIST && down && !down->src_fenced && failed == 2)
        r = vo_error_set(ret_error, -EBUSY, "host %s came back online during the switch: "
                         "its VMs are its own", src_host);
    else if ((r == -ESTALE || r == -ENOENT) && down && down->src_fenced &&
             down->src_record_rev > 0 && failed == 2)
        r = vo_error_set(ret_error, -EBUSY, "host %s rewrote its record during the switch "
                         "(its fenced state ended, or it went down): the VM stays there",
                         src_host);
    else if (r == -EEXIST && failed > 0 && failed < n_cmps)
        vo_error_set(ret_error, r, "the destination already has %s", cmps[failed].key);
    else if (r == -EEXIST)
        vo_error_set(ret_error, r, "the destination already has a document of VM %s", vm_id);
    else if (r == -ESTALE || r == -ENOENT)
        vo_error_set(ret_error, r, "%s changed during the migration", cmps[failed].key);
    else if (r < 0)
        vo_error_set(ret_error, r, "the ownership transaction failed: %s", strerror(-r));
    goto out;

read_failed:
    vo_error_set(ret_error, r, "cannot read the VM's documents: %s", strerror(-r));
out:
    for (size_t i = 0; i < n_texts; i++)
        free(texts[i]);
    free(texts);
    free(cmps);
    free(ops);
    docs_clear(&own);
    docs_clear(&shared);
    docs_clear(&marks);
    docs_clear(&volumes);
    for (size_t i = 0; i < n_vols; i++)
        vo_project_object_carry_clear(&carries[i]);
    free(carries);
    return r;
}

int vo_vm_move_txn(VoStore *raw, const char *vm_id, const char *src_host, const char *dst_host,
                   int64_t vm_rev, int64_t *ret_rev, char **ret_error)
{
    return vo_vm_move_volumes_txn(raw, vm_id, src_host, dst_host, vm_rev, NULL, 0, ret_rev,
                                  ret_error);
}

static int move_retrying(VoStore *raw, const char *vm_id, const char *src_host,
                         const char *dst_host, int64_t vm_rev, const VoVolumeMove *vols,
                         size_t n_vols, const VoVmMoveDown *down, int64_t *ret_rev,
                         char **ret_error)
{
    for (int i = 0;; i++) {
        bool host_changed = false;
        int r = move_once(raw, vm_id, src_host, dst_host, vm_rev, vols, n_vols, down, ret_rev,
                          &host_changed, ret_error);
        if (r >= 0 || !host_changed || i >= 4)
            return r;
        if (ret_error) {
            free(*ret_error);
            *ret_error = NULL;
        }
    }
}

int vo_vm_move_volumes_txn(VoStore *raw, const char *vm_id, const char *src_host,
                           const char *dst_host, int64_t vm_rev, const VoVolumeMove *vols,
                           size_t n_vols, int64_t *ret_rev, char **ret_error)
{
    return move_retrying(raw, vm_id, src_host, dst_host, vm_rev, vols, n_vols, NULL, ret_rev,
                         ret_error);
}

int vo_vm_move_from_down_txn(VoStore *raw, const char *vm_id, const char *down_host,
                             const char *dst_host, int64_t vm_rev, const VoVmMoveDown *down,
                             int64_t *ret_rev, char **ret_error)
{
    return move_retrying(raw, vm_id, down_host, dst_host, vm_rev, NULL, 0, down, ret_rev,
                         ret_error);
}
