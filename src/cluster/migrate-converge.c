/* migrate-converge.c: when a live migration's memory copy counts as not
 * converging, and the words of its abort (see migrate-converge.h). */
#include "cluster/migrate-converge.h"

#include <inttypes.h>

#include "util/util.h"

#define MIB (1024.0 * 1024.0)

bool vo_migrate_not_converging(const VoConvergeView *v)
{
    const VoHvMigrationProgress *p = v->progress;
    if (!p || (p->status != VO_HV_MIGRATION_SETUP && p->status != VO_HV_MIGRATION_ACTIVE))
        return false;
    if (p->switching && v->switching_ms < VO_MIGRATE_SWITCHOVER_GRACE_MS)
        return false;
    return v->elapsed_ms >= (int64_t)v->limit_s * 1000;
}

char *vo_migrate_not_converged_why(const VoConvergeView *v)
{
    static const VoHvMigrationProgress none = { 0 };
    const VoHvMigrationProgress *p = v->progress ? v->progress : &none;
    if (p->switching)
        return vo_asprintf("hung at its switch-over: past its %u s limit and %" PRId64 " s "
                           "there with the guest paused (the target stopped taking the "
                           "stream?)", v->limit_s, v->switching_ms / 1000);
    double bandwidth = v->elapsed_ms > 0
                           ? (double)p->transferred * 1000.0 / (double)v->elapsed_ms / MIB
                           : 0;
    /* QEMU measures the dirty rate at each pass's end: none before the
     * first pass over the memory ends. */
    uint64_t dirty = p->dirty_pages_rate * (p->page_size ? p->page_size : 4096);
    _cleanup_free_ char *rate = p->dirty_pages_rate || p->passes > 1
                                    ? vo_asprintf("%.1f MiB/s", (double)dirty / MIB)
                                    : vo_strdup("not measured yet (the first pass over the "
                                                "memory did not end)");
    return vo_asprintf("did not converge within %u s: dirty rate %s, bandwidth %.1f MiB/s "
                       "(%.1f MiB still to send; vCPUs throttled up to %u%% by %s)%s",
                       v->limit_s, rate, bandwidth, (double)p->remaining / MIB,
                       v->max_throttle, v->force ? "--force-converge" : "auto-converge",
                       v->force ? "" : "; --force-converge throttles harder, "
                                       "--converge-timeout gives it longer");
}

bool vo_migrate_stream_flows(const VoHvMigrationProgress *p)
{
    return (p->status == VO_HV_MIGRATION_SETUP || p->status == VO_HV_MIGRATION_ACTIVE) &&
           !p->post_copy_paused;
}

bool vo_migrate_post_copy_recoverable(const VoHvMigrationProgress *fin)
{
    return fin->status == VO_HV_MIGRATION_ACTIVE && fin->post_copy;
}
