/* test-migrate-converge.c: when a live migration counts as not converging
 * (cluster/migrate-converge.c): before and at its limit, in each QEMU
 * status, at its switch-over however late but not when hung there; and the abort's words (the
 * measured bandwidth, QEMU's dirty rate or none yet, the throttle, the
 * hint that --force-converge drops). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/migrate-converge.h"
#include "util/util.h"

#define MiB (1024ull * 1024ull)

/* 20 s into a copy at 1 MiB/s of a guest dirtying 2560 pages (10 MiB) a
 * second: 20 MiB sent, 61.25 MiB left, third pass, throttled 30%. */
static VoHvMigrationProgress busy(void)
{
    return (VoHvMigrationProgress){ .status = VO_HV_MIGRATION_ACTIVE, .transferred = 20 * MiB,
                                    .remaining = 61 * MiB + MiB / 4, .total = 256 * MiB,
                                    .dirty_pages_rate = 2560, .page_size = 4096, .passes = 3,
                                    .throttle_pct = 30 };
}

static void test_the_limit(void **state)
{
    (void)state;
    VoHvMigrationProgress p = busy();
    VoConvergeView v = { .progress = &p, .elapsed_ms = 19999, .limit_s = 20 };
    assert_false(vo_migrate_not_converging(&v));
    v.elapsed_ms = 20000; /* at the limit: aborted */
    assert_true(vo_migrate_not_converging(&v));
    v.elapsed_ms = 600000;
    assert_true(vo_migrate_not_converging(&v));
    v.limit_s = 600; /* the default: ten minutes */
    v.elapsed_ms = 599999;
    assert_false(vo_migrate_not_converging(&v));
    /* Forced convergence changes the throttle, not the limit. */
    v.force = true;
    v.elapsed_ms = 600000;
    assert_true(vo_migrate_not_converging(&v));
}

static void test_only_while_copying(void **state)
{
    (void)state;
    VoHvMigrationProgress p = busy();
    VoConvergeView v = { .progress = &p, .elapsed_ms = 30000, .limit_s = 20 };
    /* Still setting up (a TLS handshake, a slow start): counts. */
    p.status = VO_HV_MIGRATION_SETUP;
    assert_true(vo_migrate_not_converging(&v));
    /* At the switch-over it converged, however late: not aborted there... */
    p.status = VO_HV_MIGRATION_ACTIVE;
    p.switching = true;
    v.switching_ms = 0;
    assert_false(vo_migrate_not_converging(&v));
    v.switching_ms = VO_MIGRATE_SWITCHOVER_GRACE_MS - 1;
    assert_false(vo_migrate_not_converging(&v));
    /* ...unless it hangs there (the guest paused): still bounded. */
    v.switching_ms = VO_MIGRATE_SWITCHOVER_GRACE_MS;
    assert_true(vo_migrate_not_converging(&v));
    _cleanup_free_ char *hung = vo_migrate_not_converged_why(&v);
    assert_string_equal(hung, "hung at its switch-over: past its 20 s limit and 60 s there "
                              "with the guest paused (the target stopped taking the stream?)");
    /* Hung there but within its limit: the limit still comes first. */
    v.elapsed_ms = 19999;
    assert_false(vo_migrate_not_converging(&v));
    v.elapsed_ms = 30000;
    v.switching_ms = 0;
    p.switching = false;
    /* Ended: nothing to abort. */
    const VoHvMigrationStatus ended[] = { VO_HV_MIGRATION_NONE, VO_HV_MIGRATION_COMPLETED,
                                          VO_HV_MIGRATION_FAILED, VO_HV_MIGRATION_CANCELLING,
                                          VO_HV_MIGRATION_CANCELLED };
    for (size_t i = 0; i < ELEMENTSOF(ended); i++) {
        p.status = ended[i];
        assert_false(vo_migrate_not_converging(&v));
    }
    v.progress = NULL; /* no answer yet */
    assert_false(vo_migrate_not_converging(&v));
}

static void test_the_words(void **state)
{
    (void)state;
    VoHvMigrationProgress p = busy();
    VoConvergeView v = { .progress = &p, .elapsed_ms = 20000, .limit_s = 20,
                         .max_throttle = 30 };
    _cleanup_free_ char *why = vo_migrate_not_converged_why(&v);
    assert_string_equal(why, "did not converge within 20 s: dirty rate 10.0 MiB/s, bandwidth "
                             "1.0 MiB/s (61.2 MiB still to send; vCPUs throttled up to 30% by "
                             "auto-converge); --force-converge throttles harder, "
                             "--converge-timeout gives it longer");
    /* Forced: says so, and no hint to force it. */
    v.force = true;
    v.max_throttle = 99;
    _cleanup_free_ char *forced = vo_migrate_not_converged_why(&v);
    assert_string_equal(forced, "did not converge within 20 s: dirty rate 10.0 MiB/s, "
                                "bandwidth 1.0 MiB/s (61.2 MiB still to send; vCPUs throttled "
                                "up to 99% by --force-converge)");
}

static void test_first_pass_not_ended(void **state)
{
    (void)state;
    /* QEMU measures the dirty rate at a pass's end: in the first pass
     * it has none, which is not "0 MiB/s". */
    VoHvMigrationProgress p = { .status = VO_HV_MIGRATION_ACTIVE, .transferred = 5 * MiB,
                                .remaining = 251 * MiB, .passes = 1 };
    VoConvergeView v = { .progress = &p, .elapsed_ms = 10000, .limit_s = 10 };
    _cleanup_free_ char *why = vo_migrate_not_converged_why(&v);
    assert_non_null(strstr(why, "dirty rate not measured yet (the first pass over the memory "
                                "did not end), bandwidth 0.5 MiB/s (251.0 MiB still to send; "
                                "vCPUs throttled up to 0% by auto-converge)"));
    /* A page size QEMU did not say counts as 4 KiB. */
    p.dirty_pages_rate = 256;
    p.passes = 2;
    _cleanup_free_ char *measured = vo_migrate_not_converged_why(&v);
    assert_non_null(strstr(measured, "dirty rate 1.0 MiB/s, bandwidth 0.5 MiB/s"));
    /* No time elapsed (a limit of 0 is refused at the API): no division. */
    v.elapsed_ms = 0;
    _cleanup_free_ char *instant = vo_migrate_not_converged_why(&v);
    assert_non_null(strstr(instant, "bandwidth 0.0 MiB/s"));
}

/* The destination's watcher: a stream set up, copying, in post-copy or
 * recovering it flows; a post-copy whose stream broke (postcopy-paused on
 * this side) does not, nor does one that ended. */
static void test_stream_flows(void **state)
{
    (void)state;
    VoHvMigrationProgress p = busy();
    assert_true(vo_migrate_stream_flows(&p));
    p.status = VO_HV_MIGRATION_SETUP;
    assert_true(vo_migrate_stream_flows(&p));
    p = (VoHvMigrationProgress){ .status = VO_HV_MIGRATION_ACTIVE, .post_copy = true };
    assert_true(vo_migrate_stream_flows(&p));
    p.post_copy_recovering = true;
    assert_true(vo_migrate_stream_flows(&p));
    p.post_copy_recovering = false;
    p.post_copy_paused = true;
    assert_false(vo_migrate_stream_flows(&p));
    static const VoHvMigrationStatus ended[] = { VO_HV_MIGRATION_NONE,
                                                 VO_HV_MIGRATION_COMPLETED,
                                                 VO_HV_MIGRATION_FAILED,
                                                 VO_HV_MIGRATION_CANCELLING,
                                                 VO_HV_MIGRATION_CANCELLED };
    for (size_t i = 0; i < ELEMENTSOF(ended); i++) {
        p = (VoHvMigrationProgress){ .status = ended[i] };
        assert_false(vo_migrate_stream_flows(&p));
    }
}

/* The source's wait for post-copy's end failed: recovered when QEMU still
 * has it in post-copy (broken, being mended, or silent: a link dropping
 * packets leaves it postcopy-active with no page sent for minutes), not
 * when it failed, was cancelled or QEMU did not answer. */
static void test_post_copy_recoverable(void **state)
{
    (void)state;
    VoHvMigrationProgress p = { .status = VO_HV_MIGRATION_ACTIVE, .post_copy = true };
    assert_true(vo_migrate_post_copy_recoverable(&p)); /* stalled, still postcopy-active */
    p.post_copy_paused = true;
    assert_true(vo_migrate_post_copy_recoverable(&p));
    p.post_copy_paused = false;
    p.post_copy_recovering = true;
    assert_true(vo_migrate_post_copy_recoverable(&p));
    static const VoHvMigrationStatus ended[] = { VO_HV_MIGRATION_NONE,
                                                 VO_HV_MIGRATION_FAILED,
                                                 VO_HV_MIGRATION_CANCELLING,
                                                 VO_HV_MIGRATION_CANCELLED };
    for (size_t i = 0; i < ELEMENTSOF(ended); i++) {
        p = (VoHvMigrationProgress){ .status = ended[i] };
        assert_false(vo_migrate_post_copy_recoverable(&p));
    }
    p = (VoHvMigrationProgress){ 0 }; /* QEMU did not answer */
    assert_false(vo_migrate_post_copy_recoverable(&p));
    p = busy(); /* pre-copy */
    assert_false(vo_migrate_post_copy_recoverable(&p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_limit),
        cmocka_unit_test(test_only_while_copying),
        cmocka_unit_test(test_the_words),
        cmocka_unit_test(test_first_pass_not_ended),
        cmocka_unit_test(test_stream_flows),
        cmocka_unit_test(test_post_copy_recoverable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
