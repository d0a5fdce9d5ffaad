/* networks.h: virtual networks inside vireod: the registry (documents
 * networks/NAME), bringing each network's host plumbing up from its plan at
 * start and on create (idempotently), tearing it down on delete, and the
 * dnsmasq vireod runs and restarts for each network with DHCP. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"

#define VO_DEFAULT_NETWORK "default"

/* Loads the networks, creates "default" (nat, subnet picked) when missing,
 * and brings every network up. A network that cannot come up is kept with
 * its error (and logged); vireod still starts. */
int vo_networks_load(VoDaemon *d);
/* At shutdown: forget them; dnsmasq and the plumbing stay for the VMs. */
void vo_networks_release_all(VoDaemon *d);

json_t *vo_networks_list_json(VoDaemon *d);
/* The names of this host's networks a VM's NIC can use now (made, not in
 * error), sorted: what the host record publishes for placement. */
json_t *vo_networks_usable_json(VoDaemon *d);
int vo_network_get_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error);
/* Creates from the API body; nothing stays behind when it fails. */
int vo_network_create(VoDaemon *d, json_t *body, json_t **ret, char **ret_error);
/* Refused (-EBUSY) while a VM's NIC uses it or a claim holds it. */
/* expected > 0: the network's revision the caller read (If-Match), compared
 * under the networks lock before anything changes (-VO_EIFMATCH, 412). */
int vo_network_delete(VoDaemon *d, const char *name, int64_t expected, char **ret_error);

bool vo_network_exists(VoDaemon *d, const char *name);
/* Whether network name is a cluster network (on every host). */
bool vo_network_is_cluster(VoDaemon *d, const char *name);
/* Whether network name of this host is gone: 1 (neither in the registry,
 * also while being made, nor in the store), 0, or the store's error. */
int vo_network_gone_here(VoDaemon *d, const char *name);
/* For a NIC add or a VM create: holds network name ("user": nothing to
 * hold) so it cannot be deleted until vo_network_release, which the caller
 * calls once the VM's definition names it (or it failed). -ENOENT when it
 * does not exist, -EBUSY while it is being deleted. */
int vo_network_claim(VoDaemon *d, const char *name, char **ret_error);
void vo_network_release(VoDaemon *d, const char *name);
/* Marks it moving to another project (a NIC add, which checks its project
 * then records its VM, is refused meanwhile) until vo_network_release_move:
 * -ENOENT, or -EBUSY while a NIC is being added. */
int vo_network_claim_move(VoDaemon *d, const char *name, char **ret_error);
void vo_network_release_move(VoDaemon *d, const char *name);
/* The same for one NIC (what VM creates and NIC adds use). On a cluster
 * network it also records the NIC's address in the store (IPAM:
 * cluster/ipam/<network>/<ip>), compared with the cluster's document so a
 * delete on another host refuses it or is refused; -EBUSY when the
 * network is being deleted, -ENOSPC when the subnet is full. */
int vo_network_claim_nic(VoDaemon *d, const char *name, const char *vm_id, const char *vm_name,
                         const char *mac, char **ret_error);
void vo_network_release_nic(VoDaemon *d, const char *name, const char *mac);
/* The bridge a NIC on network name is plugged into (malloc'd). */
int vo_network_bridge(VoDaemon *d, const char *name, char **ret_bridge, char **ret_error);
/* The address DHCP gave mac on network, or NULL (malloc'd). */
char *vo_network_lease_ip(VoDaemon *d, const char *name, const char *mac);
/* The address of mac on network: its DHCP lease here, or (a cluster
 * network) the address the cluster's IPAM gave it, which a VM keeps when
 * it moves to another host and that host's dnsmasq has not leased it yet
 * (the guest renews later). NULL when neither (malloc'd). */
char *vo_network_nic_ip(VoDaemon *d, const char *name, const char *mac);
/* This host's dnsmasq forgets the leases of spec's NICs at once (a VM that
 * migrated to another host, whose dnsmasq serves its addresses now). Best
 * effort: logged, never fails. */
void vo_network_forget_leases(VoDaemon *d, const VoVmSpec *spec);
/* Rewrites each network's DHCP hosts file (MAC,VM-NAME, so VMs resolve by
 * name) from the VMs' NICs and tells dnsmasq. */
void vo_networks_refresh_hosts(VoDaemon *d);
