/* qemu-stats.c: the QEMU driver's stats op (qemu-stats.h): CPU time and
 * resident memory from /proc (qemu-load.h's parsers), the balloon's actual
 * and the disks' counters from QMP (query-balloon, query-blockstats), asked
 * only when the monitor is free this instant and then briefly, as the load
 * op does: the sampler holds the VM's job lock meanwhile. */
#include "qemu/qemu-stats.h"


#include "qemu/qemu-instance.h"
#include "qemu/qemu-load.h"
#include "util/cgroup.h"
#include "util/util.h"

#define STATS_TIMEOUT_MS 500

static uint64_t stat_u64(const json_t *stats, const char *key)
{
    json_t *v = json_object_get(stats, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

int vo_qemu_blockstats_sum(const json_t *answer, VoHvStats *ret)
{
    if (!json_is_array(answer))
        return -EINVAL;
    ret->rd_bytes = ret->wr_bytes = ret->rd_ops = ret->wr_ops = 0;
    size_t i;
    json_t *dev;
    json_array_foreach(answer, i, dev) {
        json_t *s = json_object_get(dev, "stats");
        if (!json_is_object(s))
            continue;
        ret->rd_bytes += stat_u64(s, "rd_bytes");
        ret->wr_bytes += stat_u64(s, "wr_bytes");
        ret->rd_ops += stat_u64(s, "rd_operations");
        ret->wr_ops += stat_u64(s, "wr_operations");
    }
    ret->have_disk = true;
    return 0;
}

int vo_qemu_stats(VoHvInstance *vm, VoHvStats *ret)
{
    *ret = (VoHvStats){ 0 };
    int r = vo_qemu_proc_usage(vm, &ret->cpu_ns, &ret->rss_bytes);
    if (r < 0)
        return r;
    /* Its cgroup's CPU time, when it has one: all it ran, threads that
     * ended included. */
    VoCgroupStats cg;
    if (vm->cgroup && vo_cgroup_stats(vm->driver->cgroups, vm->cgroup, &cg) >= 0 && cg.cpu_usec)
        ret->cpu_ns = cg.cpu_usec * 1000;
    if (pthread_mutex_trylock(&vm->qmp_lock) != 0)
        return 0;
    json_t *balloon = NULL, *blocks = NULL;
    if (vm->qmp) {
        if (vo_qmp_execute(vm->qmp, "query-balloon", NULL, STATS_TIMEOUT_MS, &balloon, NULL) < 0)
            balloon = NULL;
        if (vo_qmp_execute(vm->qmp, "query-blockstats", NULL, STATS_TIMEOUT_MS, &blocks, NULL) < 0)
            blocks = NULL;
    }
    pthread_mutex_unlock(&vm->qmp_lock);
    json_t *actual = json_object_get(balloon, "actual");
    if (json_is_integer(actual) && json_integer_value(actual) > 0) {
        ret->balloon_bytes = (uint64_t)json_integer_value(actual);
        ret->have_balloon = true;
    }
    (void)vo_qemu_blockstats_sum(blocks, ret);
    json_decref(balloon);
    json_decref(blocks);
    return 0;
}
