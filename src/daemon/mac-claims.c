/* mac-claims.c: claims on MAC addresses, the cluster's index of the MACs
 * in use (mac-claims.h). */
#include "daemon/mac-claims.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/vm-spec.h"
#include "daemon/cluster-view.h"
#include "state/lease-keeper.h"
#include "state/store.h"
#include "util/util.h"

#define MAC_CLAIM_TTL_MS 30000

struct VoMacClaims {
    VoLeaseKeeper *keeper; /* NULL until the first claim */
    VoStoreCompare *cmps;  /* each claim held, at the revision it was made */
    size_t n, cap;
};

static void claims_free(VoMacClaims *c)
{
    for (size_t i = 0; i < c->n; i++)
        free((char *)c->cmps[i].key);
    free(c->cmps);
    free(c);
}

int vo_mac_claims_add(VoDaemon *d, VoMacClaims **c, const char *mac, const char *vm_name)
{
    if (!*c)
        *c = vo_malloc0(sizeof(**c));
    VoMacClaims *m = *c;
    int r;
    if (!m->keeper) {
        int64_t lease = 0;
        if ((r = d->store->ops->lease_grant(d->store, MAC_CLAIM_TTL_MS, &lease)) < 0)
            return r;
        m->keeper = vo_lease_keeper_start(d->store, lease, MAC_CLAIM_TTL_MS);
    }
    json_t *doc = json_pack("{s:s?, s:s?, s:s?}", "host", d->host_id, "host_name", d->host_name,
                            "vm", vm_name);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    char *key = vo_key_mac_claim(mac);
    int64_t rev = 0;
    int64_t lease = vo_lease_keeper_lease(m->keeper);
    r = vo_store_put_lease(d->store, key, text, VO_REV_NEW, lease, &rev);
    if (r == -EEXIST && !vo_mac_claims_hold(m, key)) /* a ghost's (mac-ghosts.c) is taken over */
        r = vo_mac_ghost_take_over(d, key, text, lease, &rev) > 0 ? 0 : -EEXIST;
    if (r < 0) { /* -EEXIST: another's (or this one's, for a MAC twice) */
        free(key);
        return r == -EEXIST ? 0 : r;
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 4;
        m->cmps = realloc(m->cmps, sizeof(*m->cmps) * m->cap);
        if (!m->cmps)
            abort();
    }
    m->cmps[m->n++] = (VoStoreCompare){ .key = key, .expected_rev = rev };
    return 1;
}

int vo_mac_claims_take(VoDaemon *d, const char *const *macs, size_t n, const char *vm_name,
                       bool *held, VoMacClaims **ret)
{
    *ret = NULL;
    for (size_t i = 0; i < n; i++)
        held[i] = false;
    for (size_t i = 0; i < n; i++) {
        if (!macs[i])
            continue;
        int r = vo_mac_claims_add(d, ret, macs[i], vm_name);
        if (r < 0) {
            vo_mac_claims_release(TAKE_PTR(*ret));
            for (size_t k = 0; k < n; k++)
                held[k] = false;
            return r;
        }
        held[i] = r > 0;
    }
    return 0;
}

char *vo_mac_claim_holder_message(VoDaemon *d, const char *mac)
{
    /* Who holds it, as its claim says (it may have gone meanwhile). */
    _cleanup_free_ char *key = vo_key_mac_claim(mac), *text = NULL;
    json_t *doc = vo_store_get(d->store, key, &text, NULL) >= 0 ? json_loads(text, 0, NULL)
                                                                 : NULL;
    const char *vm = json_string_value(json_object_get(doc, "vm"));
    const char *host = json_string_value(json_object_get(doc, "host_name"));
    char *msg;
    const char *vm_id = json_string_value(json_object_get(doc, "vm_id"));
    if (vm && vm_id) { /* a VM's own: it has the MAC; its host, as its name's claim says */
        _cleanup_free_ char *name_key = vo_key_vm_name(vm), *name_text = NULL;
        json_t *claim = vo_store_get(d->store, name_key, &name_text, NULL) >= 0
                            ? json_loads(name_text, 0, NULL)
                            : NULL;
        const char *host_id = json_string_value(json_object_get(claim, "host"));
        bool same = !strcmp(json_string_value(json_object_get(claim, "vm")) ?: "", vm_id);
        _cleanup_free_ char *on = same && host_id ? vo_host_name_of(d, host_id) : NULL;
        msg = vo_asprintf("mac: %s is already used by VM '%s'%s%s%s: give another MAC, or none "
                          "for a new one", mac, vm, on ? " on host '" : "", on ? on : "",
                          on ? "'" : "");
        json_decref(claim);
    } else
        msg = vo_asprintf("mac: %s is being given to %s%s%s%s%s%s at this moment: give another "
                          "MAC, or none for a new one", mac, vm ? "VM '" : "another VM",
                          vm ? vm : "", vm ? "'" : "", host ? " on host '" : "",
                          host ? host : "", host ? "'" : "");
    json_decref(doc);
    return msg;
}

/* Tests: the next MAC drawn, from $VIREO_FAKE_FAULTS/mac-draws (one per
 * line, each taken once; the file goes with the last), so that a draw
 * another VM holds can be forced. false: none (any real host: one getenv). */
static bool test_draw(char ret[18])
{
    const char *dir = getenv("VIREO_FAKE_FAULTS");
    if (!dir)
        return false;
    _cleanup_free_ char *path = vo_asprintf("%s/mac-draws", dir), *text = NULL;
    if (vo_read_file(path, 4096, &text, NULL) < 0)
        return false;
    char *rest = strchr(text, '\n');
    if (rest)
        *rest++ = '\0';
    if (!vo_mac_valid(text))
        return false;
    memcpy(ret, text, 18);
    if (rest && *rest)
        (void)vo_write_file_atomic(path, rest, strlen(rest));
    else
        (void)unlink(path);
    return true;
}

int vo_mac_claim_generated(VoDaemon *d, VoMacClaims **c, const char *vm_name,
                           bool (*taken)(const char *mac, void *userdata), void *userdata,
                           char ret[18])
{
    for (int attempt = 0; attempt < 16; attempt++) {
        if ((!test_draw(ret) && vo_mac_generate(ret) < 0) || (taken && taken(ret, userdata)))
            continue;
        int r = vo_mac_claims_add(d, c, ret, vm_name);
        if (r != 0)
            return r < 0 ? r : 0;
    }
    return -EEXIST;
}

bool vo_mac_claim_is_a_vms(VoDaemon *d, const char *mac)
{
    _cleanup_free_ char *key = vo_key_mac_claim(mac), *text = NULL;
    json_t *doc = vo_store_get(d->store, key, &text, NULL) >= 0 ? json_loads(text, 0, NULL)
                                                                 : NULL;
    bool vms = json_object_get(doc, "vm_id") != NULL;
    json_decref(doc);
    return vms;
}

bool vo_mac_claims_hold(const VoMacClaims *c, const char *key)
{
    for (size_t i = 0; c && i < c->n; i++)
        if (!strcmp(c->cmps[i].key, key))
            return true;
    return false;
}

size_t vo_mac_claims_compares(const VoMacClaims *c, const VoStoreCompare **ret)
{
    *ret = c ? c->cmps : NULL;
    return c ? c->n : 0;
}

void vo_mac_claims_release(VoMacClaims *c)
{
    if (!c)
        return;
    (void)vo_lease_keeper_stop(c->keeper);
    claims_free(c);
}
