/* migrate-converge.h: is a live migration's memory copy "not converging"?
 * The source asks this at each query of the migration (daemon/migrate.c);
 * when the answer is yes it aborts the migration as a cancel does and the
 * task fails with the words made here. Pure: no I/O, no clock (the caller
 * passes the elapsed time). docs/cluster.md, "Live migration"; unit test:
 * tests/unit/test-migrate-converge.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "hypervisor/driver.h"

/* How long a migration may sit at its switch-over (QEMU's pre-switchover
 * or device: the source's vCPUs stopped) once past its limit before it is
 * aborted all the same: a switch-over takes well under a second (the
 * downtime limit), so one still there after this is hung (a destination
 * that stopped reading), not converging late. */
#define VO_MIGRATE_SWITCHOVER_GRACE_MS 60000

typedef struct {
    const VoHvMigrationProgress *progress; /* the last query's answer */
    int64_t elapsed_ms;    /* since the memory copy started (the disk phase not counted) */
    int64_t switching_ms;  /* since the queries first saw it at its switch-over (0: not there) */
    unsigned limit_s;      /* --converge-timeout: the memory copy's time limit */
    unsigned max_throttle; /* the highest vCPU throttle seen so far (percent) */
    bool force;            /* --force-converge: the harder throttle is on */
} VoConvergeView;

/* True when the migration is still copying memory (set-up or active, not
 * ended) and has used up its limit: the caller aborts it. A migration that
 * reached its switch-over converged, however late: it is aborted only once
 * it has also sat there VO_MIGRATE_SWITCHOVER_GRACE_MS (hung, its guest
 * paused). One that ended (completed, failed, cancelled) is not judged. */
bool vo_migrate_not_converging(const VoConvergeView *v);

/* Why (malloc'd): "did not converge within N s: dirty rate X MiB/s,
 * bandwidth Y MiB/s (Z MiB still to send; vCPUs throttled up to P% by
 * auto-converge); --force-converge throttles harder, --converge-timeout
 * gives it longer". The bandwidth is what was really sent per second over
 * the memory copy (bytes transferred / elapsed); the dirty rate is QEMU's
 * last measure, or "not measured yet" before its first pass ended. At a
 * hung switch-over: "hung at its switch-over: past its N s limit and
 * S s there with the guest paused (...)". */
char *vo_migrate_not_converged_why(const VoConvergeView *v);

/* Whether a migration's stream is moving, as the destination's watcher of
 * an incoming VM reads its own side (daemon/migrate-incoming.c): set up or
 * under way, a post-copy recovery too. Not a post-copy whose stream broke
 * (paused: nothing flows until a recovery), nor one that ended: such an
 * incoming VM counts as forgotten once its source is also silent. */
bool vo_migrate_stream_flows(const VoHvMigrationProgress *p);

/* Whether a post-copy that stopped short (the source's wait for its end
 * failed, daemon/migrate.c) is to be recovered (daemon/migrate-resume.c):
 * QEMU still has it in post-copy, its stream broken (paused), being
 * mended (recovering) or gone silent (a link that drops packets without a
 * reset: no page for minutes, QEMU not noticing; the recovery pauses it on
 * purpose). Not one that failed or was cancelled, nor a QEMU that does
 * not answer (fin zeroed): nothing to recover there. */
bool vo_migrate_post_copy_recoverable(const VoHvMigrationProgress *fin);
