/* cluster-address.c: this host's addresses, for the cluster address: the
 * default one (of the default route's interface) and the check that an
 * address given is one of the host's own. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "daemon/cluster.h"
#include "util/util.h"

/* The interface of the IPv4 default route (/proc/net/route), or "". */
static void default_route_interface(char ret[IF_NAMESIZE + 1])
{
    ret[0] = 0;
    FILE *f = fopen("/proc/net/route", "re");
    if (!f)
        return;
    char line[512], ifname[64];
    unsigned long dest, gw, mask;
    unsigned flags;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%63s %lx %lx %x %*d %*d %*d %lx", ifname, &dest, &gw, &flags, &mask) ==
                5 &&
            dest == 0 && mask == 0 && (flags & 1) && strlen(ifname) <= IF_NAMESIZE) {
            strcpy(ret, ifname);
            break;
        }
    fclose(f);
}

int vo_cluster_default_address(char **ret, char **ret_error)
{
    char ifname[IF_NAMESIZE + 1];
    default_route_interface(ifname);
    if (!ifname[0])
        return vo_error_set(ret_error, -EINVAL,
                            "this host has no default route to take the cluster address from; "
                            "give one with --address IP");
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) < 0)
        return vo_error_set(ret_error, -errno, "cannot list the addresses: %s", strerror(errno));
    int r = vo_error_set(ret_error, -EINVAL,
                         "interface %s of the default route has no IPv4 address; give one "
                         "with --address IP", ifname);
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !strcmp(i->ifa_name, ifname)) {
            char buf[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf, sizeof(buf));
            free(*ret_error);
            *ret_error = NULL;
            *ret = vo_strdup(buf);
            r = 0;
            break;
        }
    freeifaddrs(ifs);
    return r;
}

bool vo_cluster_address_is_local(const char *address)
{
    unsigned char want[16], have[16];
    int family = strchr(address, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(family, address, want) != 1)
        return false;
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) < 0)
        return false;
    bool found = false;
    for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != family)
            continue;
        if (family == AF_INET)
            memcpy(have, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
        else
            memcpy(have, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
        found = !memcmp(want, have, family == AF_INET ? 4 : 16);
    }
    freeifaddrs(ifs);
    return found;
}
