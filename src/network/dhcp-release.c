/* dhcp-release.c: a DHCPRELEASE for a lease of this host's dnsmasq
 * (dhcp-release.h; RFC 2131 section 4.4.6). dnsmasq forgets the lease when
 * the message names the server identifier of the interface it arrives on
 * and the client's hardware address and address match the lease. */
#include "network/dhcp-release.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "network/cidr.h"
#include "util/util.h"

#define BOOTREQUEST 1
#define HTYPE_ETHER 1
#define OPT_MESSAGE_TYPE 53
#define OPT_SERVER_ID 54
#define OPT_END 255
#define DHCPRELEASE 7
#define MAGIC_COOKIE 0x63825363u

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int vo_dhcp_release_packet(uint8_t buf[VO_DHCP_RELEASE_SIZE], const char *mac, uint32_t ip,
                           uint32_t server, uint32_t xid)
{
    unsigned int m[6];
    char end;
    if (!mac || sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &m[0], &m[1], &m[2], &m[3], &m[4],
                       &m[5], &end) != 6 || strlen(mac) != 17)
        return -EINVAL;
    memset(buf, 0, VO_DHCP_RELEASE_SIZE);
    buf[0] = BOOTREQUEST;
    buf[1] = HTYPE_ETHER;
    buf[2] = 6; /* hlen */
    put32(buf + 4, xid);
    put32(buf + 12, ip); /* ciaddr: the address released */
    for (int i = 0; i < 6; i++)
        buf[28 + i] = (uint8_t)m[i]; /* chaddr */
    put32(buf + 236, MAGIC_COOKIE);
    uint8_t *o = buf + 240;
    *o++ = OPT_MESSAGE_TYPE;
    *o++ = 1;
    *o++ = DHCPRELEASE;
    *o++ = OPT_SERVER_ID;
    *o++ = 4;
    put32(o, server);
    o += 4;
    *o = OPT_END;
    return 0;
}

int vo_dhcp_release_send(const char *ifname, const char *mac, const char *ip,
                         const char *server, char **ret_error)
{
    uint32_t a = 0, s = 0, xid = 0;
    uint8_t buf[VO_DHCP_RELEASE_SIZE];
    if (vo_ipv4_parse(ip, &a, NULL) < 0 || vo_ipv4_parse(server, &s, NULL) < 0 ||
        vo_dhcp_release_packet(buf, mac, a, s, xid) < 0)
        return vo_error_set(ret_error, -EINVAL, "bad lease to release (%s, %s, server %s)",
                            mac ? mac : "?", ip ? ip : "?", server ? server : "?");
    if (!ifname || strlen(ifname) >= IFNAMSIZ)
        return vo_error_set(ret_error, -EINVAL, "bad interface name");
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return vo_error_set(ret_error, -errno, "socket: %s", strerror(errno));
    /* To the server's own address on that interface: delivered locally
     * with the interface's index (what dnsmasq goes by). 127.0.0.1 bound to
     * the device, as dnsmasq's dhcp_release tool sends it, is not delivered
     * at all by recent kernels. */
    struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(67),
                               .sin_addr.s_addr = htonl(s) };
    int r = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname) + 1) < 0)
        r = vo_error_set(ret_error, -errno, "cannot bind to %s: %s", ifname, strerror(errno));
    else if (sendto(fd, buf, sizeof(buf), 0, (struct sockaddr *)&dst, sizeof(dst)) < 0)
        r = vo_error_set(ret_error, -errno, "cannot send the DHCP release on %s: %s", ifname,
                         strerror(errno));
    close(fd);
    return r;
}
