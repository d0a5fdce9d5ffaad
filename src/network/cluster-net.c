/* cluster-net.c: VNI and address choice for cluster networks (see
 * cluster-net.h). */
#include "network/cluster-net.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "network/net-spec.h"

static bool in_set(const uint32_t *set, size_t n, uint32_t v)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == v)
            return true;
    return false;
}

int vo_cluster_vni_pick(const char *net_name, const uint32_t *used, size_t n_used,
                        uint32_t *ret)
{
    const uint32_t span = VO_CLUSTER_VNI_LAST - VO_CLUSTER_VNI_FIRST + 1;
    uint32_t start = vo_net_name_hash(net_name) % span;
    /* At most n_used + 1 candidates need looking at. */
    for (size_t i = 0; i <= n_used && i < span; i++) {
        uint32_t vni = VO_CLUSTER_VNI_FIRST + (uint32_t)((start + i) % span);
        if (!in_set(used, n_used, vni)) {
            *ret = vni;
            return 0;
        }
    }
    return -ENOSPC;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int vo_ipam_pick(VoCidr subnet, const uint32_t *used, size_t n_used, uint32_t *ret)
{
    uint32_t lo, hi;
    if (vo_cidr_dhcp_range(subnet, &lo, &hi) < 0)
        return -ERANGE;
    /* Sorted, the first gap at or after lo is the answer. */
    uint32_t *sorted = malloc(sizeof(uint32_t) * (n_used + 1));
    if (!sorted)
        abort();
    for (size_t i = 0; i < n_used; i++)
        sorted[i] = used[i];
    qsort(sorted, n_used, sizeof(uint32_t), cmp_u32);
    uint64_t want = lo;
    for (size_t i = 0; i < n_used && want <= hi; i++)
        if (sorted[i] == want)
            want++;
    free(sorted);
    if (want > hi)
        return -ENOSPC;
    *ret = (uint32_t)want;
    return 0;
}
