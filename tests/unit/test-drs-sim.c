/* test-drs-sim.c: a small run of the DRS simulation (bench/drs-sim-model.c):
 * the planner, run every 10 s as the manager runs it over two simulated
 * hours of changing load, lowers the imbalance, never moves a VM within its
 * cooldown, never onto a host without room or next to a member of its
 * spread group, and does nothing with DRS off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>

#include "../../bench/drs-sim-model.h"

static void check_rules(const VoDrsSimResult *r)
{
    assert_int_equal(r->cooldown_violations, 0);
    assert_int_equal(r->room_violations, 0);
    assert_int_equal(r->spread_violations, 0);
    assert_int_equal(r->planner_errors, 0);
    assert_true(r->max_moves <= r->allowed_moves);
    if (r->min_gap_s >= 0)
        assert_true(r->min_gap_s >= VO_DRS_COOLDOWN_MS / 1000.0);
}

static void small_cluster_evens_out(void **state)
{
    (void)state;
    VoDrsSimConfig c;
    vo_drs_sim_config_default(&c);
    c.hosts = 10;
    c.vms = 200;
    c.hours = 2;
    VoDrsSimResult on, off;
    assert_int_equal(vo_drs_sim_run(&c, &on), 0);
    c.mode = VO_DRS_OFF;
    assert_int_equal(vo_drs_sim_run(&c, &off), 0);

    assert_int_equal(on.rounds, 720);
    assert_true(on.imb_start > on.threshold); /* random placement: uneven */
    assert_true(on.imb_start == off.imb_start); /* the same cluster and loads */
    assert_true(on.migrations > 0);
    check_rules(&on);
    /* It falls, and stays lower than without DRS. */
    assert_true(on.imb_end < on.imb_start);
    assert_true(on.imb_median < off.imb_median);
    assert_true(on.imbalance_hour[1] < off.imbalance_hour[1]);
    assert_true(on.imb_median < 1.5 * on.threshold);

    assert_int_equal(off.migrations, 0);
    check_rules(&off);
    vo_drs_sim_result_clear(&on);
    vo_drs_sim_result_clear(&off);
}

/* Aggressive (level 5) over 6 hours: without the cooldown these seeds move
 * some VM again within 10 minutes (seen by disabling it in drs.c); with it,
 * VMs move more than once, never sooner. */
static void cooldown_holds_over_a_busy_run(void **state)
{
    (void)state;
    VoDrsSimConfig c;
    vo_drs_sim_config_default(&c);
    c.hosts = 10;
    c.vms = 200;
    c.hours = 6;
    c.level = VO_DRS_LEVEL_MAX;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        c.seed = seed;
        VoDrsSimResult r;
        assert_int_equal(vo_drs_sim_run(&c, &r), 0);
        check_rules(&r);
        assert_true(r.max_moves >= 2);
        assert_true(r.min_gap_s >= VO_DRS_COOLDOWN_MS / 1000.0);
        vo_drs_sim_result_clear(&r);
    }
}

static void bad_config_is_refused(void **state)
{
    (void)state;
    VoDrsSimConfig c;
    vo_drs_sim_config_default(&c);
    VoDrsSimResult r;
    c.hosts = 1;
    assert_int_equal(vo_drs_sim_run(&c, &r), -EINVAL);
    vo_drs_sim_config_default(&c);
    c.hours = 0;
    assert_int_equal(vo_drs_sim_run(&c, &r), -EINVAL);
    vo_drs_sim_config_default(&c);
    c.level = 0;
    assert_int_equal(vo_drs_sim_run(&c, &r), -EINVAL);
    /* More VMs than the hosts hold. */
    vo_drs_sim_config_default(&c);
    c.hosts = 2;
    c.vms = 5000;
    assert_int_equal(vo_drs_sim_run(&c, &r), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_cluster_evens_out),
        cmocka_unit_test(cooldown_holds_over_a_busy_run),
        cmocka_unit_test(bad_config_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
