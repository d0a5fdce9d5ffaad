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

typedef struct {
    const VoHvMigrationProgress *progress; /* the last query's answer */
    int64_t elapsed_ms;    /* since the memory copy started (the disk phase not counted) */
    unsigned limit_s;      /* --converge-timeout: the memory copy's time limit */
    unsigned max_throttle; /* the highest vCPU throttle seen so far (percent) */
    bool force;            /* --force-converge: the harder throttle is on */
} VoConvergeView;

/* True when the migration is still copying memory (set-up or active, not
 * at its switch-over, not ended) and has used up its limit: the caller
 * aborts it. A migration that reached its switch-over converged, however
 * late; one that ended (completed, failed, cancelled) is not judged. */
bool vo_migrate_not_converging(const VoConvergeView *v);

/* Why (malloc'd): "did not converge within N s: dirty rate X MiB/s,
 * bandwidth Y MiB/s (Z MiB still to send; vCPUs throttled up to P% by
 * auto-converge); --force-converge throttles harder, --converge-timeout
 * gives it longer". The bandwidth is what was really sent per second over
 * the memory copy (bytes transferred / elapsed); the dirty rate is QEMU's
 * last measure, or "not measured yet" before its first pass ended. */
char *vo_migrate_not_converged_why(const VoConvergeView *v);
