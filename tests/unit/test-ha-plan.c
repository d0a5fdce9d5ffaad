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

/* The product's default limit: 3 HA restarts within 10 minutes. */
static const VoHaLimit DEF = { .max_restarts = VO_HA_MAX_RESTARTS_DEFAULT,
                               .window_ms = VO_HA_WINDOW_MINUTES_DEFAULT * 60000LL };
#define W (10 * 60 * 1000LL)

/* The restart limit counts the restarts the VM's document keeps
 * ("ha_restarts"): a new manager, or a restarted vireod, reads the same. */
static void restarts_allow_three_in_ten_minutes(void **state)
{
    (void)state;
    int64_t next = -1;
    assert_true(vo_ha_restarts_allow(NULL, 1000, &DEF, &next)); /* an older document */
    assert_int_equal(next, 0);
    json_t *r0 = json_array();
    json_t *r1 = vo_ha_restarts_add(r0, 1000);
    json_t *r2 = vo_ha_restarts_add(r1, 2000);
    assert_true(vo_ha_restarts_allow(r2, 3000, &DEF, NULL));
    json_t *r3 = vo_ha_restarts_add(r2, 3000);
    assert_int_equal(vo_ha_restarts_recent(r3, 3000, &DEF), 3);
    /* The fourth within the window: refused until the first leaves it. */
    assert_false(vo_ha_restarts_allow(r3, 4000, &DEF, &next));
    assert_int_equal(next, 1000 + W);
    assert_false(vo_ha_restarts_allow(r3, 1000 + W - 1, &DEF, NULL));
    assert_true(vo_ha_restarts_allow(r3, 1000 + W, &DEF, NULL));
    /* The same list parsed back from a document's text counts the same. */
    char *text = json_dumps(r3, JSON_COMPACT);
    json_t *parsed = json_loads(text, 0, NULL);
    assert_false(vo_ha_restarts_allow(parsed, 4000, &DEF, NULL));
    free(text);
    /* A restart later: the oldest has left the window (still kept: a
     * longer window set later counts it). */
    json_t *r4 = vo_ha_restarts_add(r3, 1000 + W);
    assert_int_equal(json_array_size(r4), 4);
    assert_int_equal(vo_ha_restarts_recent(r4, 1000 + W, &DEF), 3);
    assert_false(vo_ha_restarts_allow(r4, 2000 + W - 1, &DEF, NULL));
    assert_true(vo_ha_restarts_allow(r4, 2000 + W, &DEF, NULL));
    /* Junk in the field counts as no restart; a time a little ahead of the
     * clock (another host's) counts as now, so a skew frees no budget; one
     * more than a window ahead is no restart's. */
    json_t *junk = json_pack("[s, n, {}, I]", "x", (json_int_t)(5000 + W));
    assert_int_equal(vo_ha_restarts_recent(junk, 5000, &DEF), 0);
    json_t *ahead = json_pack("[I, I, I]", (json_int_t)65000, (json_int_t)65000,
                              (json_int_t)65000);
    assert_false(vo_ha_restarts_allow(ahead, 5000, &DEF, &next));
    assert_int_equal(next, 5000 + W);
    assert_true(vo_ha_restarts_allow(ahead, 65000 + W, &DEF, NULL));
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
    assert_int_equal(vo_ha_retry_delay(r, 1, 1000, &DEF), 2000);
    next = vo_ha_restarts_add(r, 3000); /* retry 1, failed */
    json_decref(r);
    r = next;
    assert_int_equal(vo_ha_retry_delay(r, 2, 3000, &DEF), 4000);
    next = vo_ha_restarts_add(r, 7000); /* retry 2, failed: 3 in the window */
    json_decref(r);
    r = next;
    assert_int_equal(vo_ha_retry_delay(r, 3, 7000, &DEF), -1);
    /* Once the window lets the oldest go, a later failure may retry again. */
    assert_int_equal(vo_ha_retry_delay(r, 3, 1000 + W, &DEF), 8000);
    /* The backoff stops doubling at its ceiling. */
    assert_int_equal(vo_ha_retry_delay(NULL, 5, 0, &DEF), 32000);
    assert_int_equal(vo_ha_retry_delay(NULL, 6, 0, &DEF), VO_HA_RETRY_MAX_MS);
    assert_int_equal(vo_ha_retry_delay(NULL, 40, 0, &DEF), VO_HA_RETRY_MAX_MS);
    json_decref(r);
}


/* The cluster's setting: a limit of 1 within 1 minute holds a VM back
 * after one restart, for that window only. */
static void limit_of_one_in_one_minute(void **state)
{
    (void)state;
    const VoHaLimit one = { .max_restarts = 1, .window_ms = 60000 };
    int64_t next = -1;
    assert_true(vo_ha_restarts_allow(NULL, 1000, &one, &next));
    json_t *r1 = vo_ha_restarts_add(NULL, 1000);
    assert_int_equal(json_array_size(r1), 1);
    assert_false(vo_ha_restarts_allow(r1, 2000, &one, &next));
    assert_int_equal(next, 61000);
    assert_true(vo_ha_restarts_allow(r1, 61000, &one, NULL));
    /* The failed start is the one allowed: no retry. */
    assert_int_equal(vo_ha_retry_delay(r1, 1, 2000, &one), -1);
    assert_int_equal(vo_ha_retry_delay(r1, 1, 61000, &one), 2000);
    /* A later restart: only it counts, the one before is kept. */
    json_t *r2 = vo_ha_restarts_add(r1, 61000);
    assert_int_equal(json_array_size(r2), 2);
    assert_int_equal(json_integer_value(json_array_get(r2, 1)), 61000);
    assert_int_equal(vo_ha_restarts_recent(r2, 61000, &one), 1);
    json_decref(r1);
    json_decref(r2);
}

/* A larger limit (5 within an hour): the fifth restart is allowed, the
 * sixth waits for the first to leave the hour; the list keeps 5. */
static void limit_of_five_in_an_hour(void **state)
{
    (void)state;
    const VoHaLimit five = { .max_restarts = 5, .window_ms = 3600000 };
    json_t *r = json_array();
    for (int i = 0; i < 5; i++) {
        assert_true(vo_ha_restarts_allow(r, 1000 + i * 600000LL, &five, NULL));
        json_t *next = vo_ha_restarts_add(r, 1000 + i * 600000LL);
        json_decref(r);
        r = next;
    }
    assert_int_equal(json_array_size(r), 5);
    int64_t next = 0;
    assert_false(vo_ha_restarts_allow(r, 2400000, &five, &next));
    assert_int_equal(next, 1000 + 3600000);
    /* Within the default's 10 minutes only the last of them lies. */
    assert_int_equal(vo_ha_restarts_recent(r, 2401000, &DEF), 1);
    assert_true(vo_ha_restarts_allow(r, 2401000, &DEF, NULL));
    /* The backoff is the same whatever the limit. */
    assert_int_equal(vo_ha_retry_delay(r, 3, 1000 + 3600000, &five), 8000);
    json_decref(r);
}

/* The setting changed while VMs hold counts made under the old one: a
 * lower limit holds back a VM with more recent restarts until enough of
 * them left the window; a larger one lets it go at once. */
static void limit_changed_over_a_kept_count(void **state)
{
    (void)state;
    json_t *r3 = json_pack("[I, I, I]", (json_int_t)1000, (json_int_t)2000, (json_int_t)3000);
    const VoHaLimit one = { .max_restarts = 1, .window_ms = W };
    const VoHaLimit two = { .max_restarts = 2, .window_ms = W };
    const VoHaLimit four = { .max_restarts = 4, .window_ms = W };
    int64_t next = 0;
    assert_false(vo_ha_restarts_allow(r3, 4000, &one, &next));
    assert_int_equal(next, 3000 + W); /* all three must go */
    assert_false(vo_ha_restarts_allow(r3, 4000, &two, &next));
    assert_int_equal(next, 2000 + W);
    assert_true(vo_ha_restarts_allow(r3, 4000, &four, NULL));
    json_t *r = vo_ha_restarts_add(r3, 4000);
    assert_int_equal(json_array_size(r), 4);
    json_decref(r);
    /* A shorter window lets the older ones go sooner. */
    const VoHaLimit short_window = { .max_restarts = 3, .window_ms = 60000 };
    assert_true(vo_ha_restarts_allow(r3, 61000, &short_window, NULL));
    assert_false(vo_ha_restarts_allow(r3, 60999, &short_window, &next));
    assert_int_equal(next, 61000);
    json_decref(r3);
}

/* What a VM's document keeps does not depend on the limit in force: a VM
 * restarted 3 times, 11 minutes apart, under the default (3 within 10
 * minutes; each start allowed) is held back once the window is raised to
 * an hour (3 within it). It kept only the starts within the window in
 * force at its last start: the hour saw 1 and let it go. */
static void a_raised_limit_counts_the_starts_made_under_a_lower_one(void **state)
{
    (void)state;
    const VoHaLimit hour = { .max_restarts = 3, .window_ms = 6 * W };
    json_t *r = NULL;
    for (int i = 0; i < 3; i++) {
        int64_t at = 1000 + i * (W + 60000);
        assert_true(vo_ha_restarts_allow(r, at, &DEF, NULL));
        json_t *next = vo_ha_restarts_add(r, at);
        json_decref(r);
        r = next;
    }
    int64_t now = 1000 + 2 * (W + 60000) + 60000, next = 0;
    assert_true(vo_ha_restarts_allow(r, now, &DEF, NULL));
    assert_int_equal(vo_ha_restarts_recent(r, now, &hour), 3);
    assert_false(vo_ha_restarts_allow(r, now, &hour, &next));
    assert_int_equal(next, 1000 + 6 * W); /* when the first leaves the hour */
    json_decref(r);

    /* The most any setting counts is kept, never more: 100 within a week. */
    r = json_array();
    for (int i = 0; i < VO_HA_MAX_RESTARTS_MAX + 5; i++) {
        json_t *more = vo_ha_restarts_add(r, 1000 + i * 1000LL);
        json_decref(r);
        r = more;
    }
    assert_int_equal(json_array_size(r), VO_HA_MAX_RESTARTS_MAX);
    assert_int_equal(json_integer_value(json_array_get(r, 0)), 6000);
    json_t *later = vo_ha_restarts_add(r, 1000 + VO_HA_WINDOW_MINUTES_MAX * 60000LL + 50000);
    assert_int_equal(json_array_size(later), 55); /* the 54 within the week, and it */
    json_decref(later);
    json_decref(r);
}

/* The messages name the limit as set. */
static void limit_text_names_the_numbers(void **state)
{
    (void)state;
    char *t = vo_ha_limit_text(&DEF);
    assert_string_equal(t, "at most 3 HA restarts within 10 minutes");
    free(t);
    const VoHaLimit one = { .max_restarts = 1, .window_ms = 60000 };
    t = vo_ha_limit_text(&one);
    assert_string_equal(t, "at most 1 HA restart within 1 minute");
    free(t);
    t = vo_ha_times_text(1);
    assert_string_equal(t, "1 time");
    free(t);
    t = vo_ha_times_text(3);
    assert_string_equal(t, "3 times");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wanted_needs_ha_and_a_running_state),
        cmocka_unit_test(order_is_priority_then_name),
        cmocka_unit_test(restarts_allow_three_in_ten_minutes),
        cmocka_unit_test(retry_backs_off_within_the_restart_limit),
        cmocka_unit_test(a_raised_limit_counts_the_starts_made_under_a_lower_one),
        cmocka_unit_test(limit_of_one_in_one_minute),
        cmocka_unit_test(limit_of_five_in_an_hour),
        cmocka_unit_test(limit_changed_over_a_kept_count),
        cmocka_unit_test(limit_text_names_the_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
