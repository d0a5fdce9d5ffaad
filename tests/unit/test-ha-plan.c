/* test-ha-plan.c: HA recovery's pure parts (cluster/ha-plan.c): which VM
 * documents are restarted, their order, and the restart limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "cluster/ha-plan.h"

static json_t *doc(const char *text)
{
    json_t *d = json_loads(text, 0, NULL);
    assert_non_null(d);
    return d;
}

static void wanted_needs_ha_and_a_running_state(void **state)
{
    (void)state;
    const struct {
        const char *text;
        bool want;
    } cases[] = {
        { "{\"ha\":true,\"status\":{\"state\":\"running\"}}", true },
        { "{\"ha\":true,\"status\":{\"state\":\"paused\"}}", true },
        { "{\"ha\":true,\"status\":{\"state\":\"starting\"}}", true },
        { "{\"ha\":true,\"status\":{\"state\":\"stopped\"}}", false },
        { "{\"ha\":true,\"status\":{\"state\":\"crashed\"}}", false },
        /* Moved by a recovery to a host that died before starting it. */
        { "{\"ha\":true,\"ha_landed\":true,\"status\":{\"state\":\"crashed\"}}", true },
        { "{\"ha\":false,\"ha_landed\":true,\"status\":{\"state\":\"crashed\"}}", false },
        { "{\"ha\":true,\"ha_landed\":true,\"status\":{\"state\":\"stopped\"}}", false },
        { "{\"ha\":false,\"status\":{\"state\":\"running\"}}", false },
        { "{\"status\":{\"state\":\"running\"}}", false },
        { "{\"ha\":true}", false },
        { "{\"ha\":\"yes\",\"status\":{\"state\":\"running\"}}", false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *d = doc(cases[i].text);
        assert_int_equal(vo_ha_wanted(d), cases[i].want);
        json_decref(d);
    }
    json_t *d = doc("{\"ha\":true,\"ha_priority\":7}");
    assert_int_equal(vo_ha_priority(d), 7);
    json_decref(d);
    d = doc("{\"ha\":true}");
    assert_int_equal(vo_ha_priority(d), 0);
    json_decref(d);
}

static void order_is_priority_then_name(void **state)
{
    (void)state;
    VoHaCandidate c[] = {
        { .vm_id = "4", .name = "b", .priority = 0 },
        { .vm_id = "1", .name = "z", .priority = 10 },
        { .vm_id = "3", .name = "a", .priority = 0 },
        { .vm_id = "2", .name = "c", .priority = -5 },
        { .vm_id = "5", .name = "a", .priority = 0 },
    };
    vo_ha_order(c, 5);
    const char *want[] = { "1", "3", "5", "4", "2" };
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(c[i].vm_id, want[i]);
    vo_ha_order(c, 0); /* nothing to do */
}

static void limiter_allows_three_in_ten_minutes(void **state)
{
    (void)state;
    VoHaLimiter l = { 0 };
    int64_t next = -1;
    assert_true(vo_ha_limiter_allows(&l, "vm1", 1000, &next));
    assert_int_equal(next, 0);
    vo_ha_limiter_record(&l, "vm1", 1000);
    vo_ha_limiter_record(&l, "vm1", 2000);
    assert_true(vo_ha_limiter_allows(&l, "vm1", 3000, NULL));
    vo_ha_limiter_record(&l, "vm1", 3000);
    /* The fourth within the window: refused until the first leaves it. */
    assert_false(vo_ha_limiter_allows(&l, "vm1", 4000, &next));
    assert_int_equal(next, 1000 + VO_HA_WINDOW_MS);
    assert_false(vo_ha_limiter_allows(&l, "vm1", 1000 + VO_HA_WINDOW_MS - 1, NULL));
    assert_true(vo_ha_limiter_allows(&l, "vm1", 1000 + VO_HA_WINDOW_MS, NULL));
    /* Another VM has its own count. */
    assert_true(vo_ha_limiter_allows(&l, "vm2", 4000, NULL));
    /* A restart later replaces the oldest. */
    vo_ha_limiter_record(&l, "vm1", 1000 + VO_HA_WINDOW_MS);
    assert_false(vo_ha_limiter_allows(&l, "vm1", 2000 + VO_HA_WINDOW_MS - 1, NULL));
    assert_true(vo_ha_limiter_allows(&l, "vm1", 2000 + VO_HA_WINDOW_MS, NULL));
    vo_ha_limiter_clear(&l);
    assert_int_equal(l.n, 0);
}

/* A failed HA start is retried after 2, 4, 8 ... s (at most 60 s), while the
 * restart limit allows: the first start and two retries, then given up. */
static void retry_backs_off_within_the_restart_limit(void **state)
{
    (void)state;
    VoHaLimiter l = { 0 };
    vo_ha_limiter_record(&l, "vm1", 1000); /* the start that failed */
    assert_int_equal(vo_ha_retry_delay(&l, "vm1", 1, 1000), 2000);
    vo_ha_limiter_record(&l, "vm1", 3000); /* retry 1, failed */
    assert_int_equal(vo_ha_retry_delay(&l, "vm1", 2, 3000), 4000);
    vo_ha_limiter_record(&l, "vm1", 7000); /* retry 2, failed: 3 in the window */
    assert_int_equal(vo_ha_retry_delay(&l, "vm1", 3, 7000), -1);
    /* Once the window lets the oldest go, a later failure may retry again. */
    assert_int_equal(vo_ha_retry_delay(&l, "vm1", 3, 1000 + VO_HA_WINDOW_MS), 8000);
    /* The backoff stops doubling at its ceiling. */
    VoHaLimiter empty = { 0 };
    assert_int_equal(vo_ha_retry_delay(&empty, "vm2", 5, 0), 32000);
    assert_int_equal(vo_ha_retry_delay(&empty, "vm2", 6, 0), VO_HA_RETRY_MAX_MS);
    assert_int_equal(vo_ha_retry_delay(&empty, "vm2", 40, 0), VO_HA_RETRY_MAX_MS);
    vo_ha_limiter_clear(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wanted_needs_ha_and_a_running_state),
        cmocka_unit_test(order_is_priority_then_name),
        cmocka_unit_test(limiter_allows_three_in_ten_minutes),
        cmocka_unit_test(retry_backs_off_within_the_restart_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
