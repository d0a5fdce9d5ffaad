/* mac-claims.c: short claims on MAC addresses while a VM is given a MAC
 * asked for (mac-claims.h). */
#include "daemon/mac-claims.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "state/lease-keeper.h"
#include "state/store.h"
#include "util/util.h"

#define MAC_CLAIM_TTL_MS 30000

struct VoMacClaims {
    VoLeaseKeeper *keeper;
    VoStoreCompare *cmps; /* each claim held, at the revision it was made */
    size_t n;
};

static char *claim_key(const char *mac)
{
    char *key = vo_asprintf(VO_MAC_CLAIMS_PREFIX "%s", mac);
    for (char *c = key + strlen(VO_MAC_CLAIMS_PREFIX); *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return key;
}

static void claims_free(VoMacClaims *c)
{
    for (size_t i = 0; i < c->n; i++)
        free((char *)c->cmps[i].key);
    free(c->cmps);
    free(c);
}

int vo_mac_claims_take(VoDaemon *d, const char *const *macs, size_t n, const char *vm_name,
                       bool *held, VoMacClaims **ret)
{
    size_t wanted = 0;
    for (size_t i = 0; i < n; i++) {
        held[i] = false;
        wanted += macs[i] != NULL;
    }
    *ret = NULL;
    if (!wanted) /* nothing to claim: no lease either */
        return 0;
    int64_t lease = 0;
    int r = d->store->ops->lease_grant(d->store, MAC_CLAIM_TTL_MS, &lease);
    if (r < 0)
        return r;
    json_t *doc = json_pack("{s:s?, s:s?, s:s?}", "host", d->host_id, "host_name", d->host_name,
                            "vm", vm_name);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    VoMacClaims *c = vo_malloc0(sizeof(*c));
    c->cmps = vo_malloc0(sizeof(*c->cmps) * n);
    for (size_t i = 0; i < n; i++) {
        if (!macs[i])
            continue;
        char *key = claim_key(macs[i]);
        int64_t rev = 0;
        r = vo_store_put_lease(d->store, key, text, VO_REV_NEW, lease, &rev);
        if (r == -EEXIST) { /* another's (or this one's, for a MAC twice) */
            free(key);
            continue;
        }
        if (r < 0) {
            free(key);
            (void)d->store->ops->lease_revoke(d->store, lease);
            for (size_t k = 0; k < n; k++)
                held[k] = false;
            claims_free(c);
            return r;
        }
        held[i] = true;
        c->cmps[c->n++] = (VoStoreCompare){ .key = key, .expected_rev = rev };
    }
    c->keeper = vo_lease_keeper_start(d->store, lease, MAC_CLAIM_TTL_MS);
    *ret = c;
    return 0;
}

int vo_mac_claim_one(VoDaemon *d, const char *mac, const char *vm_name, VoMacClaims **ret,
                     char **ret_error)
{
    bool held = false;
    const char *macs[1] = { mac };
    int r = vo_mac_claims_take(d, macs, 1, vm_name, &held, ret);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot claim MAC %s in the store: %s", mac,
                            strerror(-r));
    if (held)
        return 0;
    vo_mac_claims_release(TAKE_PTR(*ret));
    /* Who holds it, as its claim says (it may have gone meanwhile). */
    _cleanup_free_ char *key = claim_key(mac), *text = NULL;
    json_t *doc = vo_store_get(d->store, key, &text, NULL) >= 0 ? json_loads(text, 0, NULL)
                                                                 : NULL;
    const char *vm = json_string_value(json_object_get(doc, "vm"));
    const char *host = json_string_value(json_object_get(doc, "host_name"));
    r = vo_error_set(ret_error, -EEXIST, "mac: %s is being given to %s%s%s%s%s%s at this "
                     "moment: give another MAC, or none for a new one", mac,
                     vm ? "VM '" : "another VM", vm ? vm : "", vm ? "'" : "",
                     host ? " on host '" : "", host ? host : "", host ? "'" : "");
    json_decref(doc);
    return r;
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
