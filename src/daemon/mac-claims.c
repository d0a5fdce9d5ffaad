/* mac-claims.c: short claims on MAC addresses while an import keeps its
 * source's MACs (mac-claims.h). */
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
};

int vo_mac_claims_take(VoDaemon *d, const char *const *macs, size_t n, bool *held,
                       VoMacClaims **ret)
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
    json_t *doc = json_pack("{s:s?, s:s?}", "host", d->host_id, "host_name", d->host_name);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    for (size_t i = 0; i < n; i++) {
        if (!macs[i])
            continue;
        _cleanup_free_ char *key = vo_asprintf(VO_MAC_CLAIMS_PREFIX "%s", macs[i]);
        for (char *c = key + strlen(VO_MAC_CLAIMS_PREFIX); *c; c++)
            *c = (char)tolower((unsigned char)*c);
        r = vo_store_put_lease(d->store, key, text, VO_REV_NEW, lease, NULL);
        if (r == -EEXIST) /* another import's (or this one's, for a MAC twice) */
            continue;
        if (r < 0) {
            (void)d->store->ops->lease_revoke(d->store, lease);
            for (size_t k = 0; k < n; k++)
                held[k] = false;
            return r;
        }
        held[i] = true;
    }
    VoMacClaims *c = vo_malloc0(sizeof(*c));
    c->keeper = vo_lease_keeper_start(d->store, lease, MAC_CLAIM_TTL_MS);
    *ret = c;
    return 0;
}

void vo_mac_claims_release(VoMacClaims *c)
{
    if (!c)
        return;
    (void)vo_lease_keeper_stop(c->keeper);
    free(c);
}
