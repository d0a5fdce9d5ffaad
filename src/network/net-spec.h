/* net-spec.h: a virtual network's definition: C struct, strict JSON
 * conversion, validation, conflicts with other networks, and the names of
 * the host interfaces vireo makes for it. No I/O here. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "network/cidr.h"

typedef enum {
    VO_NET_NAT,      /* bridge + gateway + DHCP/DNS + masquerade */
    VO_NET_ISOLATED, /* bridge + gateway + DHCP/DNS, no forwarding */
    VO_NET_BRIDGE,   /* an existing host bridge; vireo makes only taps */
    VO_NET_VLAN,     /* bridge with an 802.1Q sub-interface of an uplink */
    VO_NET_VXLAN,    /* bridge with a VXLAN device towards static remotes */
    _VO_NET_TYPE_MAX
} VoNetType;
const char *vo_net_type_to_string(VoNetType t);
int vo_net_type_from_string(const char *s, VoNetType *ret);

#define VO_IFNAME_MAX 15 /* Linux IFNAMSIZ minus the NUL */
#define VO_IFNAME_SIZE 16
#define VO_VLAN_ID_MAX 4094
#define VO_VNI_MAX 16777215
#define VO_VXLAN_PORT_DEFAULT 4789
#define VO_VXLAN_MAX_REMOTES 64

typedef struct {
    char *name;
    VoNetType type;
    bool has_subnet;   /* required for nat/isolated; optional for vlan/vxlan */
    VoCidr subnet;
    bool dhcp;         /* dnsmasq serves the subnet; needs has_subnet */
    char *bridge;      /* bridge: the host's bridge; others: the one vireo makes */
    char *uplink;      /* vlan */
    uint32_t vlan_id;  /* vlan: 1..4094 */
    uint32_t vni;      /* vxlan: 1..16777215 */
    uint32_t *remotes; /* vxlan: >= 1, no duplicates */
    size_t n_remotes;
    bool has_local;    /* vxlan: source address of the tunnel */
    uint32_t local;
    uint32_t port;     /* vxlan: UDP port, 1..65535 */
    bool cluster;      /* nat, isolated, bridge: a cluster network (exists on every
                        * host; cluster/networks/<name> is its definition) */
    /* vni (above) of a cluster nat/isolated network: its VXLAN segment between
     * the hosts, allocated by the cluster (cluster/vnis/<vni>). */
} VoNetSpec;

VoNetSpec *vo_net_spec_free(VoNetSpec *s);
static inline void vo_net_spec_freep(VoNetSpec **s) { vo_net_spec_free(*s); }
#define _cleanup_net_spec_ __attribute__((cleanup(vo_net_spec_freep)))

/* Parses a network document. Unknown keys, wrong types and keys that do not
 * belong to the network's type are refused, naming the key. Fills defaults:
 * dhcp (true for nat/isolated, has_subnet for vlan/vxlan), port 4789, and
 * the generated bridge name. A missing nat/isolated subnet stays unset for
 * the caller to pick (vo_cidr_pick_subnet). -EINVAL with *ret_error. */
int vo_net_spec_from_json(json_t *doc, VoNetSpec **ret, char **ret_error);
/* New reference; the generated bridge name is included so it never changes. */
json_t *vo_net_spec_to_json(const VoNetSpec *s);
VoNetSpec *vo_net_spec_copy(const VoNetSpec *s);

/* A cluster's nat/isolated segment: its DHCP hands out only the addresses
 * the cluster's IPAM assigned (a static range). */
bool vo_net_spec_cluster_segment(const VoNetSpec *s);

/* Checks the values (name rules, ranges, required keys per type, interface
 * name lengths). -EINVAL with a message naming the key. */
int vo_net_spec_validate(const VoNetSpec *s, char **ret_error);

/* Checks s against the host's other networks: same name, overlapping
 * subnets, the same bridge made twice, the same VNI, the same VLAN
 * sub-interface. Entries equal to s (same pointer) are skipped. -EEXIST
 * with a message naming the other network. */
int vo_net_spec_check_conflicts(const VoNetSpec *s, const VoNetSpec *const *others, size_t n,
                                char **ret_error);

/* Interface names. 1..15 characters of [a-zA-Z0-9_.-], not "." or "..". */
bool vo_ifname_valid(const char *name);

/* "vbr-<name>" when that fits in 15 characters, else "vbr-" + the first 6
 * characters + "-" + 4 hex digits of an FNV-1a hash of the whole name, e.g.
 * "vbr-produc-3f2a" for "production-frontend". Persisted in the spec, so
 * the scheme may change without renaming existing bridges. */
void vo_net_bridge_name(const char *net_name, char ret[VO_IFNAME_SIZE]);

/* The fixed, locally administered MAC of the bridge vireo makes for a
 * network ("02:76:69:" + 3 bytes of the name's hash): the guests' gateway
 * MAC, the same on every host of a cluster (an anycast gateway). */
void vo_net_bridge_mac(const char *net_name, char ret[18]);

/* FNV-1a of a network's name: the stable hash behind generated names. */
uint32_t vo_net_name_hash(const char *net_name);

/* "<uplink>.<id>"; -ENAMETOOLONG with a message naming it past 15. */
int vo_net_vlan_ifname(const char *uplink, uint32_t vlan_id, char ret[VO_IFNAME_SIZE],
                       char **ret_error);

/* "vx<vni>", e.g. "vx42" (at most "vx16777215"). */
void vo_net_vxlan_ifname(uint32_t vni, char ret[VO_IFNAME_SIZE]);

/* A VM NIC's tap: "vt" + the first 8 hex digits of the VM's UUID (its
 * first group; `vireo vm show` prints the id) + "n" + the NIC's slot, e.g.
 * "vt6f1c1c9en0" for the NIC in slot 0 of VM 6f1c1c9e-5b7e-...; at most 13
 * characters. -EINVAL for a malformed id or a slot above 99. */
int vo_net_tap_name(const char *vm_id, unsigned nic_slot, char ret[VO_IFNAME_SIZE]);
