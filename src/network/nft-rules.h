/* nft-rules.h: the nftables ruleset text of nat and isolated networks, for
 * `nft -f`, and the text that removes it. Deterministic, no I/O. */
#pragma once

#include "network/net-spec.h"

/* One table per network, "inet vireo-<name>". Own tables (not one shared
 * "vireo" table with per-network chains) because then each network's rules
 * are created, replaced and deleted as one unit without reading or editing
 * what other networks put there, and deleting a network cannot leave a
 * stray chain or jump behind. */
char *vo_nft_table_name(const char *net_name);

/* A cluster nat/isolated network (cluster, vni) adds "bridge vireo-<name>",
 * rules on its VXLAN port that keep the anycast gateway (same IP and MAC on
 * every host) and DHCP local to each host (nft-rules.c, bridge_table).
 * The whole table, preceded by "add table; delete table" so that applying
 * it replaces an old copy atomically (nft -f is one transaction): applying
 * it twice leaves one set of rules. NULL for types without rules (bridge,
 * vlan, vxlan). */
char *vo_nft_ruleset(const VoNetSpec *s);

/* Deletes the table; succeeds whether or not it exists. NULL likewise. */
char *vo_nft_delete(const VoNetSpec *s);
