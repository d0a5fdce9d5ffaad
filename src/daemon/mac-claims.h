/* mac-claims.h: short claims on MAC addresses while a VM is given a MAC
 * asked for: an import keeping its source's MACs, a NIC added with --mac.
 * The check that such a MAC is free reads the VMs' documents (this host's,
 * and in a cluster the other hosts'); two such changes at the same moment
 * (on two hosts) would both find it free before either VM is written. Each
 * claims the MACs first: a document cluster/claims/macs/<mac> created only
 * when absent (in the store: the cluster's on etcd), naming the VM and its
 * host, on a lease kept alive until the VM's document is written or the
 * change failed, then revoked. Of two claiming one MAC, one holds it: an
 * import's other NIC gets a new MAC, a NIC add's other is refused (409).
 * One that starts after the claim went finds the first VM's document. The
 * VM's write compares each claim at the revision it was made
 * (vo_mac_claims_compares), so a claim whose lease lapsed meanwhile (the
 * host too slow to renew it), and which another may have taken since, fails
 * that write. A vireod that dies holding claims frees them when its lease
 * expires. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "daemon/daemon.h"
#include "state/store.h"

#define VO_MAC_CLAIMS_PREFIX "cluster/claims/macs/"

typedef struct VoMacClaims VoMacClaims;

/* Claims macs[0..n) for VM vm_name (NULL entries are skipped; compared in
 * lower case): held[i] true when the claim is this one's, false when
 * another holds that MAC (or the MAC was NULL). 0 with *ret (NULL when
 * nothing was to be claimed; end them with vo_mac_claims_release), or
 * -errno when the store failed (nothing held). */
int vo_mac_claims_take(VoDaemon *d, const char *const *macs, size_t n, const char *vm_name,
                       bool *held, VoMacClaims **ret);
/* Claims one MAC for VM vm_name: 0 with *ret, -EEXIST when another holds
 * it (*ret_error names the MAC, the VM it is being given to and its host),
 * or -errno when the store failed. */
int vo_mac_claim_one(VoDaemon *d, const char *mac, const char *vm_name, VoMacClaims **ret,
                     char **ret_error);
/* The claims held, each compared at the revision it was made, for the
 * write of the VM that gets the MACs (state/relations.h's claim_cmps):
 * their number, 0 for NULL. */
size_t vo_mac_claims_compares(const VoMacClaims *c, const VoStoreCompare **ret);
/* Ends the claims (NULL is fine). */
void vo_mac_claims_release(VoMacClaims *c);
