/* cidr.h: IPv4 addresses and CIDR blocks for virtual networks: strict
 * parsing with messages, formatting, overlap, the addresses a network hands
 * out (gateway, DHCP range) and automatic subnet choice. Pure computation. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VO_IPV4_STRLEN 16 /* "255.255.255.255" + NUL */
#define VO_CIDR_STRLEN 19 /* "255.255.255.255/32" + NUL */

/* Prefix lengths a VM network may use: /31 and /32 leave no room for a
 * gateway and guests, anything wider than /8 is surely a typo. */
#define VO_SUBNET_MIN_PREFIX 8
#define VO_SUBNET_MAX_PREFIX 30

/* Where automatically chosen subnets come from, and their size. */
#define VO_SUBNET_POOL_DEFAULT "10.100.0.0/16"
#define VO_SUBNET_AUTO_PREFIX 24

/* Addresses are in host byte order. addr is the network address: a VoCidr
 * never has host bits set. */
typedef struct {
    uint32_t addr;
    unsigned prefix;
} VoCidr;

/* Dotted quad, exactly four decimal octets 0..255 without leading zeros
 * ("010" could mean octal to inet_aton), no spaces. -EINVAL with a message. */
int vo_ipv4_parse(const char *s, uint32_t *ret, char **ret_error);
const char *vo_ipv4_format(uint32_t addr, char buf[VO_IPV4_STRLEN]);

/* "A.B.C.D/P" with P in 0..32 (host routes, pools). Host bits must be zero:
 * the message suggests the network address. -EINVAL with a message. */
int vo_cidr_parse(const char *s, VoCidr *ret, char **ret_error);
/* The same for a VM network's subnet: P in VO_SUBNET_MIN_PREFIX..MAX. */
int vo_cidr_parse_subnet(const char *s, VoCidr *ret, char **ret_error);
const char *vo_cidr_format(VoCidr c, char buf[VO_CIDR_STRLEN]);

uint32_t vo_cidr_netmask(unsigned prefix);
bool vo_cidr_contains(VoCidr c, uint32_t addr);
bool vo_cidr_overlap(VoCidr a, VoCidr b);
uint32_t vo_cidr_broadcast(VoCidr c);
/* The first host: the bridge's address and the guests' router. */
uint32_t vo_cidr_gateway(VoCidr c);
/* DHCP hands out the second host .. the last host minus one (the last host
 * stays free for a static use). -ERANGE when that is empty (a /30). */
int vo_cidr_dhcp_range(VoCidr c, uint32_t *ret_start, uint32_t *ret_end);

/* The first /24 of pool that overlaps none of used[] (existing networks'
 * subnets and the host's routes). Entries with prefix 0 (default routes)
 * are ignored: they say nothing about which subnets are taken.
 * -EINVAL when pool is narrower than a /24, -ENOSPC when all are taken. */
int vo_cidr_pick_subnet(VoCidr pool, const VoCidr *used, size_t n_used, VoCidr *ret);
