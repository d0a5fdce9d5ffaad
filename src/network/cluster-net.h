/* cluster-net.h: the pure choices behind cluster networks: which VNI a new
 * cluster nat/isolated network tries (claimed in the store as
 * cluster/vnis/<vni>), and which address IPAM gives a new NIC (claimed as
 * cluster/ipam/<network>/<ip>). Both are retried by the caller when the
 * claim finds the key taken (another host was faster). No I/O. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "network/cidr.h"

/* Cluster VNIs come from the upper half of the 24-bit space, so they never
 * meet the small VNIs operators give standalone vxlan networks by hand. */
#define VO_CLUSTER_VNI_FIRST 8388608u /* 0x800000 */
#define VO_CLUSTER_VNI_LAST 16777215u

/* The VNI for network name: its name's hash placed in the cluster range,
 * then the next ones (wrapping) past those in used[]. -ENOSPC when every one
 * is used. */
int vo_cluster_vni_pick(const char *net_name, const uint32_t *used, size_t n_used,
                        uint32_t *ret);

/* The lowest address of subnet's DHCP range (vo_cidr_dhcp_range: never the
 * network, gateway, broadcast or the last host) not in used[]. -ENOSPC when
 * all are used; -ERANGE when the subnet has no range. */
int vo_ipam_pick(VoCidr subnet, const uint32_t *used, size_t n_used, uint32_t *ret);
