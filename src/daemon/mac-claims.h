/* mac-claims.h: claims on MAC addresses, and with them the cluster's index
 * of the MACs its VMs hold (docs/internals.md, cluster/claims/macs/).
 * Every MAC a VM is given, asked for (a create's or NIC add's --mac, an
 * import keeping its source's) or generated, is claimed first: a document
 * cluster/claims/macs/<mac> created only when absent (in the store: the
 * cluster's on etcd), naming the VM and its host, on a 30 s lease kept
 * alive until the VM's document is written or the change failed, then
 * revoked. The VM's write compares each claim at the revision it was made
 * (vo_mac_claims_compares), so a claim whose lease lapsed meanwhile (the
 * host too slow to renew it), and which another may have taken since,
 * fails that write; and the same write puts the claim again without a
 * lease, as the VM's ({"vm": name, "vm_id": id}, state/relations.h's
 * vo_relations_add_macs). From then on it stays while a VM holds the MAC:
 * it goes with the NIC's removal or the VM's delete, and stays as it is
 * through a migration, a move or an HA restart (it names no host; the
 * new host enters those missing, vo_vm_mac_index_enter). So a
 * MAC is free in the whole cluster exactly when its claim can be made: one
 * key, no VM document read. Of two claiming one MAC, one holds it: an
 * import's other NIC gets a new MAC, a NIC add's or create's other is
 * refused (409), a generated MAC is drawn again. A vireod that dies
 * holding claims frees them when its lease expires. A held entry whose VM
 * is gone (an older host's delete, a crash: a "ghost") is taken over by the
 * claim that finds it and swept by the manager (mac-ghosts.c); a joiner's
 * VMs' MACs are checked by the member and entered by the join's copy
 * (cluster-admit.c, cluster-copy.c).
 *
 * VMs from before the index (or of a host whose vireod is older) are not in
 * it until their host's vireod starts and fills it in (vo_vms_mac_index_fill
 * at vm-startup.c's load), which then writes cluster/mac-indexed/<host-id>; a MAC asked
 * for is also looked for in the VM documents of each host without that
 * mark (vm-nics.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "daemon/daemon.h"
#include "state/keys.h"
#include "state/store.h"

#define VO_MAC_CLAIMS_PREFIX VO_KEY_MAC_CLAIMS_PREFIX

typedef struct VoMacClaims VoMacClaims;

/* Claims macs[0..n) for VM vm_name (NULL entries are skipped; compared in
 * lower case): held[i] true when the claim is this one's, false when
 * another holds that MAC (or the MAC was NULL). 0 with *ret (NULL when
 * nothing was to be claimed; end them with vo_mac_claims_release), or
 * -errno when the store failed (nothing held). */
int vo_mac_claims_take(VoDaemon *d, const char *const *macs, size_t n, const char *vm_name,
                       bool *held, VoMacClaims **ret);
/* Claims one more MAC in *c (made when NULL): 1 when held, 0 when another
 * holds it (a claim in progress or a VM's), or the store's -errno. */
int vo_mac_claims_add(VoDaemon *d, VoMacClaims **c, const char *mac, const char *vm_name);
/* The message ("mac: M is ...") of a MAC another holds, as its claim
 * says: the VM that has it and that VM's host, or the VM it is being given
 * to and the host giving it. */
char *vo_mac_claim_holder_message(VoDaemon *d, const char *mac);
/* A new random MAC (in 52:54:00, lower case) that taken(mac, userdata)
 * says is free here (may be NULL), claimed in *c (made when NULL) for VM
 * vm_name: drawn again while another holds it. 0 with ret, -EEXIST after
 * 16 draws, or the store's -errno. */
int vo_mac_claim_generated(VoDaemon *d, VoMacClaims **c, const char *vm_name,
                           bool (*taken)(const char *mac, void *userdata), void *userdata,
                           char ret[18]);
/* Whether mac's claim is a VM's own (it has the MAC), not one in progress. */
bool vo_mac_claim_is_a_vms(VoDaemon *d, const char *mac);
/* Whether c holds the claim key (a cluster/claims/macs/ key). */
bool vo_mac_claims_hold(const VoMacClaims *c, const char *key);
/* The claims held, each compared at the revision it was made, for the
 * write of the VM that gets the MACs (state/relations.h's claim_cmps):
 * their number, 0 for NULL. */
size_t vo_mac_claims_compares(const VoMacClaims *c, const VoStoreCompare **ret);
/* Ends the claims (NULL is fine): those its VM's write made permanent
 * stay. */
void vo_mac_claims_release(VoMacClaims *c);

/* Ghosts (mac-ghosts.c): held entries whose VM no longer exists (an older
 * host's delete, a crash). The held entry at key, when its VM is gone, is
 * put again as text on lease, in one transaction comparing the entry as read,
 * the VM's documents absent and its name's claim as read: 1 with *ret_rev
 * (taken over), 0 when its VM exists (or the entry changed or went), or the
 * store's -errno. */
int vo_mac_ghost_take_over(VoDaemon *d, const char *key, const char *text, int64_t lease,
                           int64_t *ret_rev);
/* The held entry at key removed when its VM is gone (as above): 1 when
 * removed (or gone already), 0 when its VM exists (or the entry changed),
 * or the store's -errno. A join's admission removes those on the joiner's
 * MACs (cluster-admit.c). */
int vo_mac_ghost_remove(VoDaemon *d, const char *key);
/* The manager's sweep, every VO_MAC_SWEEP_MS: the held entries after the
 * last one checked, at most VO_MAC_SWEEP_BATCH a round, each removed when
 * its VM is gone (as above); read from the sweep's copy of the index,
 * which a round brings up to date with the changes since the last
 * (mac-index-copy.h). The number removed, or the store's -errno. */
#define VO_MAC_SWEEP_MS 60000
#define VO_MAC_SWEEP_BATCH 32
int vo_mac_ghosts_sweep(VoDaemon *d);
/* Its thread (in a cluster; a round does nothing unless this host is the
 * manager): 0 or -errno; stop waits for its round. */
int vo_mac_ghosts_start(VoDaemon *d);
void vo_mac_ghosts_stop(void);
