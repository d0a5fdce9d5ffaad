/* networks-internal.h: what networks.c shares with networks-cluster.c: the
 * registry's network record and the steps both use. Not for other files. */
#pragma once

#include <sys/types.h>

#include "daemon/networks.h"
#include "network/net-plan.h"
#include "network/net-spec.h"

#define DNSMASQ_RESTARTS_PER_MINUTE 5

struct VoNetwork {
    VoDaemon *d;
    VoNetSpec *spec;
    char *dir;          /* RUN/networks/NAME: dnsmasq config, leases, hosts, nft */
    char *error;        /* why it is not up, or NULL */
    pid_t dnsmasq_pid;
    int dnsmasq_pidfd;  /* watched on the loop; -1 when none */
    bool stopping;      /* deleting: do not restart dnsmasq */
    bool deleting;      /* a delete is checking the VMs or tearing down: no new NIC */
    bool creating;      /* being brought up: no NIC yet, no delete */
    unsigned attaching; /* NIC adds and VM creates between check and commit */
    bool moving;        /* a move to another project is checking the VMs: no new NIC */
    bool dnsmasq_starting; /* no pidfile yet: a SIGHUP would kill it */
    bool hup_pending;      /* hosts changed while it was starting */
    int64_t restart_times[DNSMASQ_RESTARTS_PER_MINUTE];
    unsigned n_restarts;
    int64_t rev; /* of its document (written once, at create) */
    /* Cluster networks: MACs whose IPAM claim is made and whose VM has not
     * recorded its NIC yet (networks-cluster.c keeps their addresses). */
    char **claimed_macs;
};

/* networks.c. Caller holds networks_lock. */
VoNetwork *vo_network_find_locked(VoDaemon *d, const char *name);
/* Runs n's setup (up) or teardown plan. */
int vo_network_apply(VoNetwork *n, bool up, char **ret_error);
/* Sends dnsmasq a SIGHUP (now, or once it is ready). Caller holds
 * networks_lock. */
void vo_network_hup_locked(VoNetwork *n);
/* Registers and brings up a cluster network this host does not have yet
 * (its own document networks/<name> too); 0 or -errno with a message. */
int vo_network_adopt(VoDaemon *d, VoNetSpec *spec, char **ret_error);
/* Tears down and forgets a cluster network the cluster deleted. */
int vo_network_drop(VoDaemon *d, const char *name, char **ret_error);
/* Writes text to path (0644) unless it holds it already: 1 written, 0 the
 * same, or -errno. */
int vo_net_write_if_changed(const char *path, const char *text);

/* networks-cluster.c */
/* A cluster: this vireod has a cluster address. */
bool vo_net_cluster_mode(VoDaemon *d);
/* The VXLAN source and the member hosts' addresses for a plan (free *peers). */
void vo_net_cluster_plan_input(VoDaemon *d, VoNetPlanCluster *ret);
/* Publishes a new cluster network (cluster/networks/<name>, VNI claimed in
 * the same transaction for nat/isolated: s->vni set). -EEXIST when the
 * cluster has one of that name. It is marked "creating" by this host (no
 * other host adopts it, no NIC claims an address on it); *ret_rev is the
 * document's revision. publish_final unmarks it, unpublish (create failed)
 * removes it, both compared with that revision. */
int vo_net_cluster_publish(VoDaemon *d, VoNetSpec *s, int64_t *ret_rev, char **ret_error);
int vo_net_cluster_publish_final(VoDaemon *d, const VoNetSpec *s, int64_t rev,
                                 char **ret_error);
void vo_net_cluster_unpublish(VoDaemon *d, const VoNetSpec *s, int64_t rev);
/* The cluster side of a delete: marks the cluster document deleting (NIC
 * claims on every host fail from then on), refuses (-EBUSY, naming the VM
 * and host) while any host's NIC holds an IPAM record, else deletes the
 * document and the VNI. */
int vo_net_cluster_unpublish_checked(VoDaemon *d, const VoNetSpec *s, char **ret_error);
/* IPAM claim of a NIC on a cluster network (cluster/ipam/<net>/<ip>),
 * compared with the cluster document: refused once it is being deleted. */
int vo_net_cluster_claim(VoDaemon *d, const VoNetSpec *s, const char *vm_id,
                         const char *vm_name, const char *mac, char **ret_error);
/* This host's NICs (relations) against the IPAM records: records made,
 * taken over (a VM that moved here) and dropped; then each cluster
 * network's hosts files (DHCP for this host's VMs, DNS for all). */
void vo_net_cluster_refresh(VoDaemon *d, json_t *nics);
/* A cluster network's IPAM records: [{"ip","mac","vm","name","host"}]
 * (host: its name), empty when none or the store cannot be read. */
json_t *vo_net_cluster_addresses(VoDaemon *d, const char *name);
/* The IPAM address of mac on cluster network name, or NULL (malloc'd). */
char *vo_net_cluster_address_of(VoDaemon *d, const char *name, const char *mac);
/* The thread that follows cluster/networks/, the members and IPAM. */
void vo_net_cluster_start(VoDaemon *d);
void vo_net_cluster_stop(VoDaemon *d);
