/* dhcp-release.h: tells a host's dnsmasq to forget a lease at once (a
 * DHCPRELEASE sent as if from the client, the way dnsmasq's dhcp_release
 * tool does): used when a VM migrated to another host, whose dnsmasq now
 * serves its address. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define VO_DHCP_RELEASE_SIZE 300 /* a BOOTP message of the minimum size */

/* Builds the DHCPRELEASE of the lease of ip (host order) to MAC "aa:bb:..",
 * addressed to the server whose identifier is server (host order), into
 * buf (VO_DHCP_RELEASE_SIZE bytes). -EINVAL for a malformed MAC. */
int vo_dhcp_release_packet(uint8_t buf[VO_DHCP_RELEASE_SIZE], const char *mac, uint32_t ip,
                           uint32_t server, uint32_t xid);

/* Sends it to the DHCP server of this network namespace on interface
 * ifname (the network's bridge, where dnsmasq serves the lease): to
 * server:67 (the bridge's own address), bound to that device, so dnsmasq
 * sees it arrive there.
 * ip and server: dotted quads. 0 or -errno with *ret_error. */
int vo_dhcp_release_send(const char *ifname, const char *mac, const char *ip,
                         const char *server, char **ret_error);
