/* test-cron.c: the cron parser (conf/cron.c): fields, ranges, steps, lists,
 * names, refusals with the field named; and due times in a zone with
 * daylight saving (a POSIX TZ rule, no tzdata needed): a skipped time runs
 * once after the gap, a repeated one once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/cron.h"

/* Central Europe: CET, CEST from the last Sunday of March 02:00 to the last
 * Sunday of October 03:00. In 2026: 29 March and 25 October. */
#define TZ_CET "CET-1CEST,M3.5.0,M10.5.0/3"

static void use_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

static VoCron parse_ok(const char *text)
{
    VoCron c;
    char *error = NULL;
    int r = vo_cron_parse(text, &c, &error);
    if (r < 0)
        fail_msg("'%s': %s", text, error);
    free(error);
    return c;
}

static void assert_refused(const char *text, const char *words)
{
    VoCron c;
    char *error = NULL;
    assert_int_equal(vo_cron_parse(text, &c, &error), -EINVAL);
    assert_non_null(error);
    if (!strstr(error, words))
        fail_msg("'%s': message '%s' lacks '%s'", text, error, words);
    free(error);
}

static time_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                     .tm_min = mi };
    return timegm(&tm);
}

static time_t next(const VoCron *c, time_t after)
{
    time_t t = 0;
    assert_int_equal(vo_cron_next(c, after, &t), 0);
    return t;
}

static void test_fields(void **state)
{
    (void)state;
    VoCron c = parse_ok("*/15 1-3,22 1 jan-mar mon");
    assert_int_equal(c.minutes, 1ull | 1ull << 15 | 1ull << 30 | 1ull << 45);
    assert_int_equal(c.hours, 1u << 1 | 1u << 2 | 1u << 3 | 1u << 22);
    assert_int_equal(c.mdays, 1u << 1);
    assert_int_equal(c.months, 1u << 1 | 1u << 2 | 1u << 3);
    assert_int_equal(c.wdays, 1u << 1);
    assert_true(c.day_or);
    c = parse_ok("5/20 0-10/5 * * 7");
    assert_int_equal(c.minutes, 1ull << 5 | 1ull << 25 | 1ull << 45);
    assert_int_equal(c.hours, 1u << 0 | 1u << 5 | 1u << 10);
    assert_int_equal(c.wdays, 1u << 0); /* 7 is Sunday */
    assert_false(c.day_or);
    c = parse_ok("  0   2  *  *  SAT,sun ");
    assert_int_equal(c.wdays, 1u << 0 | 1u << 6);
    c = parse_ok("0 0 * * 5-7");
    assert_int_equal(c.wdays, 1u << 5 | 1u << 6 | 1u << 0);
}

static void test_refused(void **state)
{
    (void)state;
    assert_refused("* * * *", "4 fields");
    assert_refused("* * * * * *", "more than 5");
    assert_refused("60 * * * *", "minute '60'");
    assert_refused("* 24 * * *", "hour '24'");
    assert_refused("* * 0 * *", "day of month '0'");
    assert_refused("* * * 13 *", "month '13'");
    assert_refused("* * * * 8", "day of week '8'");
    assert_refused("5-1 * * * *", "start is after its end");
    assert_refused("*/0 * * * *", "step must be");
    assert_refused("*/ * * * *", "needs a number");
    assert_refused("1,,2 * * * *", "minute '1,,2'");
    assert_refused("1x * * * *", "unexpected 'x'");
    assert_refused("* * * foo *", "or a name");
    assert_refused("0 0 30 2 *", "never due");
    assert_refused("0 0 31 4,6,9,11 *", "never due");
    assert_refused("@daily", "1 fields");
    assert_refused(NULL, "5 fields");
    char longer[VO_CRON_MAX_LEN + 10];
    memset(longer, '1', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    assert_refused(longer, "at most");
}

static void test_next_utc(void **state)
{
    (void)state;
    use_tz("UTC");
    VoCron c = parse_ok("30 2 * * *");
    assert_int_equal(next(&c, utc(2026, 12, 6, 1, 0)), utc(2026, 12, 6, 2, 30));
    assert_int_equal(next(&c, utc(2026, 12, 6, 2, 30)), utc(2026, 12, 7, 2, 30));
    c = parse_ok("*/10 * * * *");
    assert_int_equal(next(&c, utc(2026, 12, 6, 1, 0)), utc(2026, 12, 6, 1, 10));
    assert_int_equal(next(&c, utc(2026, 12, 6, 1, 59) + 30), utc(2026, 12, 6, 2, 0));
    c = parse_ok("0 0 29 2 *"); /* leap days only */
    assert_int_equal(next(&c, utc(2026, 1, 1, 0, 0)), utc(2028, 2, 29, 0, 0));
    /* Both day fields restricted: either matches (the 13th or a Friday). */
    c = parse_ok("0 12 13 * fri");
    assert_int_equal(next(&c, utc(2026, 12, 6, 0, 0)), utc(2026, 12, 11, 12, 0)); /* Friday */
    assert_int_equal(next(&c, utc(2026, 12, 11, 12, 0)), utc(2026, 12, 13, 12, 0));
    /* Only one restricted: both must hold (a Sunday in December). */
    c = parse_ok("0 9 * 12 0");
    assert_int_equal(next(&c, utc(2026, 12, 6, 9, 0)), utc(2026, 12, 13, 9, 0));
    /* Across a year's end. */
    c = parse_ok("0 0 1 1 *");
    assert_int_equal(next(&c, utc(2026, 12, 6, 0, 0)), utc(2027, 1, 1, 0, 0));
}

/* Spring: 2026-03-29 02:00 CET becomes 03:00 CEST (01:00 UTC). */
static void test_dst_gap(void **state)
{
    (void)state;
    use_tz(TZ_CET);
    VoCron c = parse_ok("30 2 * * *");
    time_t t = next(&c, utc(2026, 3, 28, 12, 0));
    assert_int_equal(t, utc(2026, 3, 29, 1, 0)); /* 02:30 does not exist: at 03:00 CEST */
    assert_int_equal(next(&c, t), utc(2026, 3, 30, 0, 30)); /* 02:30 CEST next day */
    /* Every quarter hour of the skipped hour: one run at 03:00, then 03:15. */
    c = parse_ok("*/15 2,3 * * *");
    t = next(&c, utc(2026, 3, 29, 0, 50));
    assert_int_equal(t, utc(2026, 3, 29, 1, 0));
    assert_int_equal(next(&c, t), utc(2026, 3, 29, 1, 15));
}

/* Autumn: 2026-10-25 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:xx twice. */
static void test_dst_repeat(void **state)
{
    (void)state;
    use_tz(TZ_CET);
    VoCron c = parse_ok("30 2 * * *");
    time_t t = next(&c, utc(2026, 10, 24, 12, 0));
    assert_int_equal(t, utc(2026, 10, 25, 0, 30)); /* the first 02:30 (CEST) */
    assert_int_equal(next(&c, t), utc(2026, 10, 26, 1, 30)); /* not the second one */
    /* Hourly: 02:00 CEST, then 03:00 CET; the repeated 02:00 CET is skipped. */
    c = parse_ok("0 * * * *");
    t = next(&c, utc(2026, 10, 24, 23, 30));
    assert_int_equal(t, utc(2026, 10, 25, 0, 0));
    t = next(&c, t);
    assert_int_equal(t, utc(2026, 10, 25, 2, 0));
    /* Asked from inside the second 02:xx: nothing runs again before 03:00. */
    assert_int_equal(next(&c, utc(2026, 10, 25, 1, 10)), utc(2026, 10, 25, 2, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_next_utc),
        cmocka_unit_test(test_dst_gap),
        cmocka_unit_test(test_dst_repeat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
