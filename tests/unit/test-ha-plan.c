/* test-ha-plan.c: HA recovery's pure parts (cluster/ha-plan.c): which VM
 * documents are restarted, their order, and the restart limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <string.h>
#include <stdlib.h>

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
        /* Its HA start failed on a host that died before trying again. */
        { "{\"ha\":true,\"ha_start_failed\":true,\"status\":{\"state\":\"stopped\"}}", true },
        { "{\"ha\":true,\"ha_start_failed\":true,\"status\":{\"state\":\"crashed\"}}", true },
        { "{\"ha\":false,\"ha_start_failed\":true,\"status\":{\"state\":\"stopped\"}}", false },
        { "{\"ha\":true,\"ha_start_failed\":false,\"status\":{\"state\":\"stopped\"}}", false },
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

/* The restart limit counts the restarts the VM's document keeps
 * ("ha_restarts"): a new manager, or a restarted vireod, reads the same. */
static void restarts_allow_three_in_ten_minutes(void **state)
{
    (void)state;
    int64_t next = -1;
    assert_true(vo_ha_restarts_allow(NULL, 1000, &next)); /* an older document */
    assert_int_equal(next, 0);
    json_t *r0 = json_array();
    json_t *r1 = vo_ha_restarts_add(r0, 1000);
    json_t *r2 = vo_ha_restarts_add(r1, 2000);
    assert_true(vo_ha_restarts_allow(r2, 3000, NULL));
    json_t *r3 = vo_ha_restarts_add(r2, 3000);
    assert_int_equal(vo_ha_restarts_recent(r3, 3000), 3);
    /* The fourth within the window: refused until the first leaves it. */
    assert_false(vo_ha_restarts_allow(r3, 4000, &next));
    assert_int_equal(next, 1000 + VO_HA_WINDOW_MS);
    assert_false(vo_ha_restarts_allow(r3, 1000 + VO_HA_WINDOW_MS - 1, NULL));
    assert_true(vo_ha_restarts_allow(r3, 1000 + VO_HA_WINDOW_MS, NULL));
    /* The same list parsed back from a document's text counts the same. */
    char *text = json_dumps(r3, JSON_COMPACT);
    json_t *parsed = json_loads(text, 0, NULL);
    assert_false(vo_ha_restarts_allow(parsed, 4000, NULL));
    free(text);
    /* A restart later replaces the oldest; the list never grows past the limit. */
    json_t *r4 = vo_ha_restarts_add(r3, 1000 + VO_HA_WINDOW_MS);
    assert_int_equal(json_array_size(r4), VO_HA_MAX_RESTARTS);
    assert_int_equal(json_integer_value(json_array_get(r4, 0)), 2000);
    assert_false(vo_ha_restarts_allow(r4, 2000 + VO_HA_WINDOW_MS - 1, NULL));
    assert_true(vo_ha_restarts_allow(r4, 2000 + VO_HA_WINDOW_MS, NULL));
    /* Junk in the field counts as no restart; a time a little ahead of the
     * clock (another host's) counts as now, so a skew frees no budget; one
     * more than a window ahead is no restart's. */
    json_t *junk = json_pack("[s, n, {}, I]", "x", (json_int_t)(5000 + VO_HA_WINDOW_MS));
    assert_int_equal(vo_ha_restarts_recent(junk, 5000), 0);
    json_t *ahead = json_pack("[I, I, I]", (json_int_t)65000, (json_int_t)65000,
                              (json_int_t)65000);
    assert_false(vo_ha_restarts_allow(ahead, 5000, &next));
    assert_int_equal(next, 5000 + VO_HA_WINDOW_MS);
    assert_true(vo_ha_restarts_allow(ahead, 65000 + VO_HA_WINDOW_MS, NULL));
    json_decref(r0); json_decref(r1); json_decref(r2); json_decref(r3); json_decref(r4);
    json_decref(parsed); json_decref(junk); json_decref(ahead);
}

/* A failed HA start is retried after 2, 4, 8 ... s (at most 60 s), while the
 * restart limit allows: the first start and two retries, then given up. */
static void retry_backs_off_within_the_restart_limit(void **state)
{
    (void)state;
    json_t *r = json_array(), *next;
    next = vo_ha_restarts_add(r, 1000); /* the start that failed */
    json_decref(r);
    r = next;
    assert_int_equal(vo_ha_retry_delay(r, 1, 1000), 2000);
    next = vo_ha_restarts_add(r, 3000); /* retry 1, failed */
    json_decref(r);
    r = next;
    assert_int_equal(vo_ha_retry_delay(r, 2, 3000), 4000);
    next = vo_ha_restarts_add(r, 7000); /* retry 2, failed: 3 in the window */
    json_decref(r);
    r = next;
    assert_int_equal(vo_ha_retry_delay(r, 3, 7000), -1);
    /* Once the window lets the oldest go, a later failure may retry again. */
    assert_int_equal(vo_ha_retry_delay(r, 3, 1000 + VO_HA_WINDOW_MS), 8000);
    /* The backoff stops doubling at its ceiling. */
    assert_int_equal(vo_ha_retry_delay(NULL, 5, 0), 32000);
    assert_int_equal(vo_ha_retry_delay(NULL, 6, 0), VO_HA_RETRY_MAX_MS);
    assert_int_equal(vo_ha_retry_delay(NULL, 40, 0), VO_HA_RETRY_MAX_MS);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wanted_needs_ha_and_a_running_state),
        cmocka_unit_test(order_is_priority_then_name),
        cmocka_unit_test(restarts_allow_three_in_ten_minutes),
        cmocka_unit_test(retry_backs_off_within_the_restart_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
