/* vm-mac-index.c: the VM service's part of the cluster's MAC index
 * (mac-claims.h): which index documents a VM's write puts, the one-time
 * fill at start of this host's VMs from before the index, and the entry of
 * a VM that comes to this host. */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "daemon/mac-claims.h"
#include "daemon/vm-internal.h"
#include "state/keys.h"
#include "state/relations.h"
#include "util/util.h"

void vo_vm_add_mac_index(json_t *want, const VoVmSpec *spec, json_t *have,
                         const VoMacClaims *claims)
{
    json_t *macs = json_object();
    vo_relations_add_macs(macs, spec);
    const char *key;
    json_t *text;
    /* Those it holds, and those it claimed for this write; never another's
     * (a MAC two VMs had before the index: logged at start, left to the
     * first). */
    json_object_foreach(macs, key, text)
        if ((have && json_object_get(have, key)) || vo_mac_claims_hold(claims, key))
            json_object_set(want, key, text);
    json_decref(macs);
}

json_t *vo_vm_mac_index_of(json_t *uses)
{
    json_t *out = json_object();
    const char *key;
    json_t *text;
    json_object_foreach(uses, key, text)
        if (!strncmp(key, VO_KEY_MAC_CLAIMS_PREFIX, strlen(VO_KEY_MAC_CLAIMS_PREFIX)))
            json_object_set(out, key, text);
    return out;
}

static int collect_text(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    json_object_set_new(userdata, key, json_string(value));
    return 0;
}

/* The index entry key read again after a take-over that did not happen:
 * 1 when it changed or went since it was read (stored updated: enter it
 * again), 0 when it is as read, or the store's -errno. */
static int read_again(VoDaemon *d, const char *key, json_t *stored)
{
    _cleanup_free_ char *now = NULL;
    int g = vo_store_get(d->store, key, &now, NULL);
    if (g == -ENOENT) { /* swept meanwhile (mac-ghosts.c) */
        json_object_del(stored, key);
        return 1;
    }
    if (g < 0)
        return g;
    if (!strcmp(now, json_string_value(json_object_get(stored, key)) ?: ""))
        return 0;
    json_object_set_new(stored, key, json_string(now));
    return 1;
}

/* One MAC of spec (key, its held form text) entered, as enter_macs says:
 * 0, 1 when its entry changed under it (read again: to be entered again),
 * -EAGAIN or the store's -errno. */
static int enter_mac(VoDaemon *d, const VoVmSpec *spec, const char *key, json_t *text,
                     json_t *stored, json_t *into)
{
    const char *mac = key + strlen(VO_KEY_MAC_CLAIMS_PREFIX);
    json_t *have = json_object_get(stored, key);
    int p = have ? -EEXIST : vo_store_put(d->store, key, json_string_value(text), VO_REV_NEW, NULL);
    if (p == -EEXIST && !have) { /* claimed meanwhile: read it */
        _cleanup_free_ char *now = NULL;
        int g = vo_store_get(d->store, key, &now, NULL);
        if (g >= 0)
            json_object_set_new(stored, key, json_string(now));
        else /* gone again, or unreadable: not known to be its own */
            p = g == -ENOENT ? -EAGAIN : g;
        have = json_object_get(stored, key);
    }
    if (p < 0 && p != -EEXIST) {
        log_warn("vm %s: cannot enter its MAC %s in the cluster's index: %s", spec->name, mac,
                 strerror(-p));
        return p;
    }
    json_t *doc = have ? json_loads(json_string_value(have), 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(doc, "vm_id"));
    const char *other = json_string_value(json_object_get(doc, "vm"));
    int r = 0, t = 0;
    if (!have || (id && !strcmp(id, spec->id))) /* entered now, or its own */
        json_object_set_new(into, key, json_string(have ? json_string_value(have)
                                                        : json_string_value(text)));
    else if (id && (t = vo_mac_ghost_take_over(d, key, json_string_value(text), 0, NULL)) > 0) {
        /* the other VM is gone (mac-ghosts.c): this one's now */
        json_object_set(stored, key, text);
        json_object_set(into, key, text);
    } else if (id && t == 0 && (r = read_again(d, key, stored)) != 0) {
        /* the entry changed or went since it was read (a sweep, a claim) */
    } else if (!id) { /* a claim in progress (or gone since): entered at a later start */
        log_warn("vm %s: its MAC %s is being given to VM '%s' at this moment: not entered "
                 "in the cluster's index yet", spec->name, mac, other ?: "?");
        r = -EAGAIN;
    } else if (t < 0)
        r = t;
    else
        log_warn("vm %s: its MAC %s is also VM '%s''s (given before MACs were indexed): "
                 "give one of them another MAC (vireo vm nic remove, vireo vm nic add)",
                 spec->name, mac, other ?: "?");
    if (r < 0 && r != -EAGAIN)
        log_warn("vm %s: cannot enter its MAC %s in the cluster's index: %s", spec->name, mac,
                 strerror(-r));
    json_decref(doc);
    return r;
}

/* spec's MACs entered in the index: each absent one created new in its
 * held form, and those the VM holds (entered now, or its own already) added
 * to into (its relations). stored: the index documents read (key: text),
 * updated with what a creation found. One another VM holds is logged and
 * left to it (a MAC two VMs had before the index), unless that VM is gone
 * (a ghost, taken over). -EAGAIN when one is being given to another VM at
 * this moment (a claim in progress: the VM is not in the index yet, so its
 * host must not be marked as indexed) or its entry keeps changing under
 * it, or the store's -errno. */
static int enter_macs(VoDaemon *d, const VoVmSpec *spec, json_t *stored, json_t *into)
{
    json_t *want = json_object();
    vo_relations_add_macs(want, spec);
    const char *key;
    json_t *text;
    int r = 0;
    json_object_foreach(want, key, text) {
        int e = enter_mac(d, spec, key, text, stored, into);
        if (e > 0) /* changed under it (swept, say): once more, as it is now */
            e = enter_mac(d, spec, key, text, stored, into);
        if (e != 0)
            r = r < 0 ? r : (e > 0 ? -EAGAIN : e);
    }
    json_decref(want);
    return r;
}

json_t *vo_vm_mac_index_enter(VoDaemon *d, const VoVmSpec *spec)
{
    json_t *want = json_object(), *stored = json_object(), *out = json_object();
    vo_relations_add_macs(want, spec);
    const char *key;
    json_t *text;
    json_object_foreach(want, key, text) {
        _cleanup_free_ char *now = NULL;
        if (vo_store_get(d->store, key, &now, NULL) >= 0)
            json_object_set_new(stored, key, json_string(now));
    }
    (void)enter_macs(d, spec, stored, out); /* what it cannot enter is logged */
    json_decref(stored);
    json_decref(want);
    return out;
}

/* The held claims of VMs of this host that have no document (orphans: the
 * relations stored of each VM id, vm-startup.c's load) go: a create cut short by
 * a crash after its first write. Each compared on the VM's document being
 * absent, as the rest of its relations. */
static void drop_orphans(VoDaemon *d, json_t *stored, json_t *orphans)
{
    if (!json_object_size(orphans)) /* the usual start: not a document parsed */
        return;
    const char *key;
    json_t *text;
    void *tmp;
    json_object_foreach_safe(stored, tmp, key, text) {
        json_t *doc = json_loads(json_string_value(text), 0, NULL);
        const char *id = json_string_value(json_object_get(doc, "vm_id"));
        bool orphan = id && json_object_get(orphans, id);
        _cleanup_vm_ VoVm *vm = orphan ? vo_vms_find(d, id) : NULL;
        if (orphan && !vm) {
            _cleanup_free_ char *vm_key = vo_key_vm(id);
            VoStoreCompare cmp = { .key = vm_key, .expected_rev = VO_REV_NEW };
            VoStoreOp op = { .kind = VO_STORE_DELETE, .key = key };
            int r = vo_store_txn(d->store, &cmp, 1, &op, 1, NULL, NULL);
            if (r < 0 && r != -EEXIST)
                log_warn("store: cannot free MAC %s of VM %s: %s",
                         key + strlen(VO_KEY_MAC_CLAIMS_PREFIX), id, strerror(-r));
            if (r >= 0)
                json_object_del(stored, key); /* free for the fill below */
        }
        json_decref(doc);
    }
}

void vo_vms_mac_index_fill(VoDaemon *d, json_t *orphans)
{
    json_t *stored = json_object();
    int r = vo_store_list(d->store, VO_KEY_MAC_CLAIMS_PREFIX, collect_text, stored);
    if (r < 0) {
        log_warn("store: cannot read the MAC index: %s (this host's VMs are entered at the "
                 "next start)", strerror(-r));
        json_decref(stored);
        return;
    }
    drop_orphans(d, stored, orphans);
    size_t n = 0;
    VoVm **vms = vo_vms_ref_all(d, &n);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&vms[i]->lock);
        int f = enter_macs(d, vms[i]->spec, stored, vms[i]->uses);
        pthread_mutex_unlock(&vms[i]->lock);
        r = r < 0 ? r : f;
        vo_vm_unref(vms[i]);
    }
    free(vms);
    json_decref(stored);
    if (r < 0)
        return;
    /* Its VMs are all in the index: a MAC asked for on another host is
     * checked with the index alone, not against their documents. */
    _cleanup_free_ char *mark = vo_asprintf(VO_KEY_MAC_INDEXED_PREFIX "%s", d->host_id);
    json_t *doc = json_pack("{s:s?}", "host_name", d->host_name);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    /* VO_REV_ANY: the mark is this host's alone, and says the same each time. */
    if ((r = vo_store_put(d->store, mark, text, VO_REV_ANY, NULL)) < 0)
        log_warn("store: cannot mark this host's VMs as in the MAC index: %s", strerror(-r));
}
