/* cidr.c: IPv4 address and CIDR arithmetic for virtual networks (see
 * cidr.h). */
#include "network/cidr.h"

#include <stdio.h>
#include <string.h>

#include "util/util.h"

/* A decimal number of 1..3 digits without a leading zero at s; returns the
 * digits consumed, 0 when there are none, -1 for a leading zero. */
static int parse_number(const char *s, unsigned *ret)
{
    int n = 0;
    unsigned v = 0;
    while (n < 4 && s[n] >= '0' && s[n] <= '9')
        v = v * 10 + (unsigned)(s[n++] - '0');
    if (n > 1 && s[0] == '0')
        return -1;
    *ret = v;
    return n;
}

/* Parses the dotted quad at the start of s, stops at *end. */
static int parse_quad(const char *s, const char *whole, const char *what, const char **end,
                      uint32_t *ret, char **ret_error)
{
    uint32_t addr = 0;
    for (int i = 0; i < 4; i++) {
        if (i > 0 && *s++ != '.')
            return vo_error_set(ret_error, -EINVAL, "'%s' is not %s", whole, what);
        unsigned v;
        int n = parse_number(s, &v);
        if (n < 0)
            return vo_error_set(ret_error, -EINVAL, "'%s': an octet has a leading zero (octal or decimal?)",
                        whole);
        if (n == 0)
            return vo_error_set(ret_error, -EINVAL, "'%s' is not %s", whole, what);
        if (v > 255)
            return vo_error_set(ret_error, -EINVAL, "'%s': octet %u is out of range (0..255)", whole, v);
        addr = addr << 8 | v;
        s += n;
    }
    *end = s;
    *ret = addr;
    return 0;
}

int vo_ipv4_parse(const char *s, uint32_t *ret, char **ret_error)
{
    static const char what[] = "an IPv4 address like 192.0.2.1";
    const char *end;
    if (!s)
        return vo_error_set(ret_error, -EINVAL, "missing IPv4 address");
    int r = parse_quad(s, s, what, &end, ret, ret_error);
    if (r < 0)
        return r;
    if (*end)
        return vo_error_set(ret_error, -EINVAL, "'%s' is not %s", s, what);
    return 0;
}

const char *vo_ipv4_format(uint32_t a, char buf[VO_IPV4_STRLEN])
{
    snprintf(buf, VO_IPV4_STRLEN, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
             a & 255);
    return buf;
}

uint32_t vo_cidr_netmask(unsigned prefix)
{
    return prefix == 0 ? 0 : prefix >= 32 ? UINT32_MAX : ~(UINT32_MAX >> prefix);
}

static int parse_cidr(const char *s, unsigned min, unsigned max, const char *range_note,
                      VoCidr *ret, char **ret_error)
{
    static const char what[] = "an IPv4 CIDR like 10.100.0.0/24";
    const char *end;
    uint32_t addr;
    unsigned prefix;
    if (!s)
        return vo_error_set(ret_error, -EINVAL, "missing IPv4 CIDR");
    int r = parse_quad(s, s, what, &end, &addr, ret_error);
    if (r < 0)
        return r;
    if (*end == '\0')
        return vo_error_set(ret_error, -EINVAL, "'%s' lacks a prefix length such as /24", s);
    if (*end != '/')
        return vo_error_set(ret_error, -EINVAL, "'%s' is not %s", s, what);
    int n = parse_number(end + 1, &prefix);
    if (n <= 0 || end[1 + n] != '\0')
        return vo_error_set(ret_error, -EINVAL, "'%s' is not %s", s, what);
    if (prefix < min || prefix > max)
        return vo_error_set(ret_error, -EINVAL, "'%s': prefix /%u is out of range%s (/%u../%u)", s, prefix,
                    range_note, min, max);
    if (addr & ~vo_cidr_netmask(prefix)) {
        char net[VO_IPV4_STRLEN];
        return vo_error_set(ret_error, -EINVAL, "'%s' has host bits set: did you mean %s/%u?", s,
                    vo_ipv4_format(addr & vo_cidr_netmask(prefix), net), prefix);
    }
    *ret = (VoCidr){ .addr = addr, .prefix = prefix };
    return 0;
}

int vo_cidr_parse(const char *s, VoCidr *ret, char **ret_error)
{
    return parse_cidr(s, 0, 32, "", ret, ret_error);
}

int vo_cidr_parse_subnet(const char *s, VoCidr *ret, char **ret_error)
{
    return parse_cidr(s, VO_SUBNET_MIN_PREFIX, VO_SUBNET_MAX_PREFIX, " for a VM network", ret,
                      ret_error);
}

const char *vo_cidr_format(VoCidr c, char buf[VO_CIDR_STRLEN])
{
    char a[VO_IPV4_STRLEN];
    snprintf(buf, VO_CIDR_STRLEN, "%s/%u", vo_ipv4_format(c.addr, a), c.prefix);
    return buf;
}

bool vo_cidr_contains(VoCidr c, uint32_t addr)
{
    uint32_t mask = vo_cidr_netmask(c.prefix);
    return (addr & mask) == (c.addr & mask);
}

bool vo_cidr_overlap(VoCidr a, VoCidr b)
{
    /* Two blocks overlap exactly when the wider one contains the other. */
    return a.prefix <= b.prefix ? vo_cidr_contains(a, b.addr) : vo_cidr_contains(b, a.addr);
}

uint32_t vo_cidr_broadcast(VoCidr c)
{
    return c.addr | ~vo_cidr_netmask(c.prefix);
}

uint32_t vo_cidr_gateway(VoCidr c)
{
    return c.addr + 1;
}

int vo_cidr_dhcp_range(VoCidr c, uint32_t *ret_start, uint32_t *ret_end)
{
    if (c.prefix > 29)
        return -ERANGE;
    *ret_start = c.addr + 2;
    *ret_end = vo_cidr_broadcast(c) - 2;
    return 0;
}

int vo_cidr_pick_subnet(VoCidr pool, const VoCidr *used, size_t n_used, VoCidr *ret)
{
    if (pool.prefix > VO_SUBNET_AUTO_PREFIX)
        return -EINVAL;
    uint64_t step = 1ULL << (32 - VO_SUBNET_AUTO_PREFIX);
    uint64_t end = (uint64_t)vo_cidr_broadcast(pool) + 1;
    for (uint64_t a = pool.addr; a < end; a += step) {
        VoCidr cand = { .addr = (uint32_t)a, .prefix = VO_SUBNET_AUTO_PREFIX };
        size_t i = 0;
        while (i < n_used && (used[i].prefix == 0 || !vo_cidr_overlap(cand, used[i])))
            i++;
        if (i == n_used) {
            *ret = cand;
            return 0;
        }
    }
    return -ENOSPC;
}
