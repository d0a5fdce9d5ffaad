/* net-plan.h: what a network needs on the host, as an ordered list of steps
 * (links, addresses, FDB entries, nftables, sysctl, dnsmasq) computed from
 * its spec, the host's kernel features and its existing links, plus the
 * teardown of what vireo made. Pure: vireod's executor carries the steps
 * out; each step renders as the equivalent shell command for logs and
 * golden tests. */
#pragma once

#include "network/net-spec.h"

/* Kernel features the executor probed (e.g. /sys/module, a test link). */
typedef struct {
    bool has_bridge;   /* module bridge */
    bool has_vlan;     /* module 8021q */
    bool has_vxlan;    /* module vxlan */
    bool has_nftables; /* module nf_tables (nat: also nft_masq) */
} VoHostCaps;

/* A link present on the host. alias is its IFLA_IFALIAS (NULL if none):
 * vireo marks every link it makes with vo_net_owner_alias(), and only such
 * links are ever reused or deleted. */
typedef struct {
    const char *name;
    bool is_bridge;
    const char *alias;
} VoHostLink;

/* The UDP port of cluster networks' VXLAN segments (the IANA port). */
#define VO_CLUSTER_VXLAN_PORT 4789

/* For cluster nat/isolated networks (spec cluster with a vni): this host's
 * cluster address (the tunnel's source) and the hosts' addresses (this
 * one's may be among them: skipped), one all-zeros FDB entry each (no
 * multicast, no learning). */
typedef struct {
    bool has_local;
    uint32_t local;
    const uint32_t *peers;
    size_t n_peers;
} VoNetPlanCluster;

typedef struct {
    VoHostCaps caps;
    const VoHostLink *links;
    size_t n_links;
    const char *dir; /* the network's own directory: dnsmasq and nft files */
    VoNetPlanCluster cluster;
} VoNetPlanInput;

typedef enum {
    VO_STEP_NFT,          /* write text to path, nft -f path (no path: text on stdin) */
    VO_STEP_LINK_ADD,     /* ip link add: a bridge, vlan or vxlan link */
    VO_STEP_LINK_ALIAS,   /* ip link set dev D alias A: vireo's ownership mark */
    VO_STEP_FDB_APPEND,   /* bridge fdb append 00:00:00:00:00:00 dev D dst R */
    VO_STEP_LINK_MASTER,  /* ip link set dev D master B */
    VO_STEP_ADDR,         /* ip address replace A/P broadcast X dev D */
    VO_STEP_LINK_UP,      /* ip link set dev D up */
    VO_STEP_SYSCTL,       /* sysctl -w key=value */
    VO_STEP_DNSMASQ_START,/* write text to path, run and supervise dnsmasq */
    VO_STEP_DNSMASQ_STOP, /* stop that dnsmasq */
    VO_STEP_LINK_DEL,     /* ip link del dev D */
    VO_STEP_FDB_DEL,      /* bridge fdb del 00:00:00:00:00:00 dev D dst R */
    VO_STEP_FDB_MAC,      /* bridge fdb replace MAC dev D dst R (one VM's host) */
    VO_STEP_FDB_MAC_DEL,  /* bridge fdb del MAC dev D */
} VoNetStepKind;

typedef enum { VO_LINK_BRIDGE, VO_LINK_VLAN, VO_LINK_VXLAN } VoLinkKind;

/* One step; which fields are set depends on kind (see above). */
typedef struct {
    VoNetStepKind kind;
    char *dev;         /* the link the step is about */
    VoLinkKind link;   /* LINK_ADD */
    char mac[18];      /* LINK_ADD bridge: a fixed MAC, "" for the kernel's choice;
                        * FDB_MAC(_DEL): the VM's MAC */
    char *uplink;      /* LINK_ADD vlan: the parent link */
    uint32_t id;       /* LINK_ADD: VLAN id or VNI */
    bool has_local;    /* LINK_ADD vxlan */
    uint32_t local;
    uint32_t port;     /* LINK_ADD vxlan: UDP destination port */
    char *master;      /* LINK_MASTER: the bridge */
    char *alias;       /* LINK_ALIAS */
    uint32_t addr;     /* ADDR: the address; FDB_APPEND, FDB_MAC: the remote */
    unsigned prefix;   /* ADDR */
    uint32_t broadcast;/* ADDR */
    char *key;         /* SYSCTL: "net.ipv4.ip_forward" */
    char *value;       /* SYSCTL */
    char *path;        /* NFT, DNSMASQ_*: the file (dnsmasq: its config) */
    char *text;        /* NFT, DNSMASQ_START: the file's contents */
} VoNetStep;

typedef struct {
    VoNetStep *steps;
    size_t n_steps;
} VoNetPlan;

VoNetPlan *vo_net_plan_free(VoNetPlan *p);
static inline void vo_net_plan_freep(VoNetPlan **p) { vo_net_plan_free(*p); }
#define _cleanup_net_plan_ __attribute__((cleanup(vo_net_plan_freep)))

/* "vireo-net:<name>". */
char *vo_net_owner_alias(const char *net_name);

/* The steps that bring network s up, in order. Links that exist and carry
 * s's owner alias are not created again (restarts are idempotent); every
 * other step is safe to repeat. Errors, each with a message:
 *  -EINVAL     s is invalid (vo_net_spec_validate's message)
 *  -EOPNOTSUPP the kernel lacks a feature; the message names the module
 *  -ENODEV     the bridge of a bridge network or a vlan uplink is missing
 *  -ENOTTY     the bridge of a bridge network is not a bridge
 *  -EEXIST     a link vireo would make exists and is not s's */
int vo_net_plan_setup(const VoNetSpec *s, const VoNetPlanInput *in, VoNetPlan **ret,
                      char **ret_error);

/* The reverse: stop dnsmasq, delete the links that exist and carry s's
 * owner alias, delete the nftables table. Never touches a link vireo did
 * not make (a bridge network's bridge, a vlan uplink), and leaves
 * net.ipv4.ip_forward as it is (other networks or the host may need it).
 * Files in in->dir are the caller's to remove. */
int vo_net_plan_teardown(const VoNetSpec *s, const VoNetPlanInput *in, VoNetPlan **ret);

/* The FDB changes that take a cluster network's VXLAN device from the
 * remotes it has (all-zeros entries, as vo_net_fdb_remotes reads them) to
 * want: an append per new peer, a delete per gone one, want's order. *want
 * may hold the host's own address (skipped) and duplicates. An empty plan
 * when nothing changes; -EINVAL when s is not a cluster nat/isolated
 * network. */
int vo_net_plan_fdb(const VoNetSpec *s, const uint32_t *have, size_t n_have,
                    const uint32_t *want, size_t n_want, uint32_t local, VoNetPlan **ret);

/* The all-zeros (flooding) entries' remotes in `bridge -j fdb show dev D`'s
 * output; *ret is malloc'd (NULL when none). -EINVAL on text that is not a
 * JSON array. */
int vo_net_fdb_parse_remotes(const char *json_text, uint32_t **ret, size_t *ret_n);

/* A unicast FDB entry of a VXLAN device: the VM with MAC is behind dst. */
typedef struct {
    char mac[18]; /* lower case */
    uint32_t dst;
} VoFdbEntry;

/* The per-MAC entries that take a cluster network's VXLAN device from have
 * (as vo_net_fdb_parse_macs reads them) to want (one per IPAM record of a
 * VM on another host: its MAC, its host's address), so that unicast to a
 * VM goes to its host only; the all-zeros entries (vo_net_plan_fdb) still
 * carry broadcast and unknown MACs. A replace per new or moved MAC, a delete
 * per MAC no longer wanted; want's entries for local (VMs of this host, the
 * bridge learns them) or 0, malformed MACs and repeats are skipped. -EINVAL
 * when s is not a cluster nat/isolated network. */
int vo_net_plan_fdb_macs(const VoNetSpec *s, const VoFdbEntry *have, size_t n_have,
                         const VoFdbEntry *want, size_t n_want, uint32_t local,
                         VoNetPlan **ret);
/* The unicast entries with a remote (not all-zeros) in `bridge -j fdb show
 * dev D`'s output; *ret malloc'd. -EINVAL on text that is not a JSON list. */
int vo_net_fdb_parse_macs(const char *json_text, VoFdbEntry **ret, size_t *ret_n);

/* "a\nb\n" -> "a; b" (the form nft takes on one command line), comment
 * lines dropped; NULL counts as empty. */
char *vo_net_join_lines(const char *text);

/* One step as a shell command line (no newline); a plan as lines. */
char *vo_net_step_render(const VoNetStep *st);
char *vo_net_plan_render(const VoNetPlan *p);

/* dnsmasq's configuration for s (NULL without dhcp). Files live in dir:
 * dnsmasq.conf, dnsmasq.pid, leases, hosts (the dhcp-hostsfile, lines
 * "MAC,NAME" written by vireod so guests get their VM's name in DNS). */
char *vo_net_dnsmasq_conf(const VoNetSpec *s, const char *dir);
/* Sets doc's read-only "gateway" (the bridge's address, as the setup plan
 * gives it: with a subnet) and "dhcp_range" {"start","end"} (what the
 * configuration above hands out: with DHCP, not on a cluster segment). */
void vo_net_addresses_to_json(const VoNetSpec *s, json_t *doc);
/* In a cluster (s->cluster with a vni) that configuration has no dynamic
 * range ("dhcp-range=NET,static,MASK"): DHCP answers only the MACs of the
 * hosts file, whose lines vireod writes as "MAC,IP,NAME" for the VMs this
 * host runs (their IPAM addresses), so two hosts never answer one VM. DNS
 * names of every VM in the cluster come from addn-hosts=DIR/cluster-hosts,
 * lines of vo_net_cluster_hosts_line. */
char *vo_net_cluster_hosts_line(const VoNetSpec *s, const char *ip, const char *vm_name);
char *vo_net_dhcp_host_line(const char *mac, const char *ip, const char *vm_name);
