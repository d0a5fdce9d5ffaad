/* qcow2-fit.c: the largest qcow2 virtual size that fits a room (see
 * qcow2-fit.h), from `qemu-img measure`. */
#include "storage/qcow2-fit.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "util/spawn.h"
#include "util/util.h"

#define MEASURE_TIMEOUT_MS (60 * 1000)

static uint64_t round_up(uint64_t n, uint64_t to)
{
    return (n + to - 1) / to * to;
}

uint64_t vo_qcow2_bitmap_room(uint64_t size)
{
    uint64_t bits = round_up(round_up(size, VO_QCOW2_CLUSTER) / VO_QCOW2_CLUSTER / 8,
                             VO_QCOW2_CLUSTER);
    return 2 * (bits + 2 * VO_QCOW2_CLUSTER) + VO_QCOW2_CLUSTER;
}

/* The fully allocated size of a qcow2 image of virtual size `size`. */
static int measure(uint64_t size, uint64_t *ret, char **ret_error)
{
    _cleanup_free_ char *arg = vo_asprintf("%llu", (unsigned long long)size);
    char *argv[] = { "qemu-img", "measure", "--output=json", "-O", "qcow2", "--size", arg, NULL };
    _cleanup_free_ char *out = NULL, *err = NULL;
    int r = vo_spawn_wait_split(argv, MEASURE_TIMEOUT_MS, &out, &err);
    if (r < 0)
        return vo_error_set(ret_error, r, "qemu-img measure: %s",
                            err && *err ? err : strerror(-r));
    json_t *doc = json_loads(out ? out : "", 0, NULL);
    json_t *full = json_object_get(doc, "fully-allocated");
    r = json_is_integer(full) && json_integer_value(full) > 0 ? 0 : -EIO;
    if (r == 0)
        *ret = (uint64_t)json_integer_value(full);
    else
        vo_error_set(ret_error, r, "qemu-img measure said no fully allocated size: %s",
                     out ? out : "");
    json_decref(doc);
    return r;
}

int vo_qcow2_fit(uint64_t room, uint64_t *ret_size, char **ret_error)
{
    /* Each step takes off what the last one was over by: the metadata grows
     * with the size, so the first guess (the whole room) is over, the
     * second (less the first's metadata) fits or is over by a cluster or
     * two, and the size only shrinks. */
    uint64_t size = room / VO_QCOW2_CLUSTER * VO_QCOW2_CLUSTER;
    for (int step = 0; step < 64 && size > 0; step++) {
        uint64_t full = 0;
        int r = measure(size, &full, ret_error);
        if (r < 0)
            return r;
        uint64_t need = full + vo_qcow2_bitmap_room(size);
        if (need <= room) {
            *ret_size = size;
            return 0;
        }
        uint64_t over = round_up(need - room, VO_QCOW2_CLUSTER);
        size = over < size ? size - over : 0;
    }
    return vo_error_set(ret_error, -ENOSPC, "no qcow2 image fits in %llu bytes",
                        (unsigned long long)room);
}
