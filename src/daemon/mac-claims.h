/* mac-claims.h: short claims on MAC addresses while an import keeps its
 * source's MACs. The check that a kept MAC is free reads the VMs' documents
 * (this host's, and in a cluster the other hosts'); two imports of one
 * source at the same moment would both find it free before either VM is
 * written. Each import claims the MACs it keeps first: a document
 * cluster/claims/macs/<mac> created only when absent (in the store: the
 * cluster's on etcd), on a lease kept alive until the import's VM document
 * is written or the import failed, then revoked. Of two imports claiming
 * one MAC, one holds it; the other's NIC gets a new MAC. One that starts
 * after the claim went finds the first VM's document. A vireod that dies
 * holding claims frees them when its lease expires. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "daemon/daemon.h"

#define VO_MAC_CLAIMS_PREFIX "cluster/claims/macs/"

typedef struct VoMacClaims VoMacClaims;

/* Claims macs[0..n) (NULL entries are skipped; compared in lower case):
 * held[i] true when the claim is this import's, false when another import
 * holds that MAC (or the MAC was NULL). 0 with *ret (NULL when nothing
 * was to be claimed; end them with vo_mac_claims_release), or -errno when
 * the store failed (nothing held). */
int vo_mac_claims_take(VoDaemon *d, const char *const *macs, size_t n, bool *held,
                       VoMacClaims **ret);
/* Ends the claims (NULL is fine). */
void vo_mac_claims_release(VoMacClaims *c);
