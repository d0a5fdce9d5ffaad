/* extents.c: cluster-rounded, merged byte ranges of an image (see
 * extents.h). */
#include "storage/extents.h"

#include <errno.h>
#include <stdlib.h>

int vo_extents_add(VoExtents *x, uint64_t offset, uint64_t len)
{
    if (offset >= x->size || len == 0)
        return 0;
    uint64_t end = len > x->size - offset ? x->size : offset + len;
    /* Rounded out; an end rounded past the image's end is its end. */
    uint64_t start = offset / x->cluster * x->cluster;
    uint64_t up = end % x->cluster ? x->cluster - end % x->cluster : 0;
    end = x->size - end > up ? end + up : x->size;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        VoExtent *v = realloc(x->v, sizeof(VoExtent) * cap);
        if (!v)
            return -ENOMEM;
        x->v = v;
        x->cap = cap;
    }
    x->v[x->n++] = (VoExtent){ start, end };
    return 0;
}

static int extent_cmp(const void *a, const void *b)
{
    uint64_t p = ((const VoExtent *)a)->start, q = ((const VoExtent *)b)->start;
    return p < q ? -1 : p > q;
}

uint64_t vo_extents_merge(VoExtents *x)
{
    if (!x->n)
        return 0;
    qsort(x->v, x->n, sizeof(VoExtent), extent_cmp);
    size_t k = 0;
    for (size_t i = 1; i < x->n; i++) {
        if (x->v[i].start <= x->v[k].end) {
            if (x->v[i].end > x->v[k].end)
                x->v[k].end = x->v[i].end;
        } else
            x->v[++k] = x->v[i];
    }
    x->n = k + 1;
    uint64_t total = 0;
    for (size_t i = 0; i < x->n; i++)
        total += x->v[i].end - x->v[i].start;
    return total;
}

void vo_extents_clear(VoExtents *x)
{
    free(x->v);
    *x = (VoExtents){ 0 };
}
