/* test-retention.c: the keep rules (conf/retention.c) against a year of
 * daily runs pruned after each run, as the scheduler does, compared with
 * the set worked out by hand (the rules as Proxmox's prune simulator
 * shows them) and with one prune of the whole year; local days; keep-all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/retention.h"

static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                     .tm_min = mi };
    return (int64_t)timegm(&tm);
}

static int cmp_time(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Keeps what the rules keep of times[0..*n) in place, sorted. */
static void prune(int64_t *times, size_t *n, const VoKeepRules *k)
{
    bool *keep = calloc(*n + 1, sizeof(bool));
    assert_int_equal(vo_retention_select(times, *n, k, keep), 0);
    size_t m = 0;
    for (size_t i = 0; i < *n; i++)
        if (keep[i])
            times[m++] = times[i];
    *n = m;
    free(keep);
    qsort(times, *n, sizeof(int64_t), cmp_time);
}

#define DAYS 365

static void test_year_of_daily_runs(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    VoKeepRules k = { .last = 3, .daily = 7, .weekly = 4, .monthly = 6 };
    int64_t *kept = calloc(DAYS + 1, sizeof(int64_t));
    int64_t *all = calloc(DAYS + 1, sizeof(int64_t));
    size_t n_kept = 0;
    int64_t day0 = utc(2026, 1, 1, 2, 0);
    for (int i = 0; i < DAYS; i++) {
        all[i] = day0 + (int64_t)i * 86400;
        kept[n_kept++] = all[i];
        prune(kept, &n_kept, &k);
        assert_true(n_kept <= 3 + 7 + 4 + 6);
    }
    /* By hand, pruned after each run (the scheduler's way, and the
     * simulator's): last 3 = Dec 29-31; daily 7 = Dec 22-28; weekly 4 = the
     * newest of ISO weeks 51, 50, 49, 48 (weeks 53 and 52 hold kept days):
     * Dec 20, 13, 6, Nov 29; monthly 6 = the newest item left of each month
     * not already holding one (November does). A month's last days were
     * pruned when they left the daily rule while the next month's days kept
     * their week covered, so each month keeps its last Sunday: Oct 25 back
     * to May 31. */
    const int64_t want[] = {
        utc(2026, 5, 31, 2, 0),  utc(2026, 6, 28, 2, 0),  utc(2026, 7, 26, 2, 0),
        utc(2026, 8, 30, 2, 0),  utc(2026, 9, 27, 2, 0),  utc(2026, 10, 25, 2, 0),
        utc(2026, 11, 29, 2, 0), utc(2026, 12, 6, 2, 0),  utc(2026, 12, 13, 2, 0),
        utc(2026, 12, 20, 2, 0), utc(2026, 12, 22, 2, 0), utc(2026, 12, 23, 2, 0),
        utc(2026, 12, 24, 2, 0), utc(2026, 12, 25, 2, 0), utc(2026, 12, 26, 2, 0),
        utc(2026, 12, 27, 2, 0), utc(2026, 12, 28, 2, 0), utc(2026, 12, 29, 2, 0),
        utc(2026, 12, 30, 2, 0), utc(2026, 12, 31, 2, 0),
    };
    size_t n_want = sizeof(want) / sizeof(want[0]);
    assert_int_equal(n_kept, n_want);
    for (size_t i = 0; i < n_want; i++)
        assert_int_equal(kept[i], want[i]);
    /* One prune of the whole year at once: the same but for the monthly
     * ones, which are then the months' last days (Oct 31 back to May 31). */
    const int64_t months_last[] = { utc(2026, 5, 31, 2, 0), utc(2026, 6, 30, 2, 0),
                                    utc(2026, 7, 31, 2, 0), utc(2026, 8, 31, 2, 0),
                                    utc(2026, 9, 30, 2, 0), utc(2026, 10, 31, 2, 0) };
    size_t n_all = DAYS;
    prune(all, &n_all, &k);
    assert_int_equal(n_all, n_want);
    assert_memory_equal(all, months_last, sizeof(months_last));
    assert_memory_equal(all + 6, want + 6, sizeof(want) - sizeof(months_last));
    free(kept);
    free(all);
}

static void test_last_and_keep_all(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    int64_t t[5] = { 50, 10, 40, 20, 30 };
    bool keep[5];
    VoKeepRules none = { 0 };
    assert_int_equal(vo_retention_select(t, 5, &none, keep), 0);
    for (int i = 0; i < 5; i++)
        assert_true(keep[i]);
    VoKeepRules last2 = { .last = 2 };
    assert_int_equal(vo_retention_select(t, 5, &last2, keep), 0);
    bool want[5] = { true, false, true, false, false };
    assert_memory_equal(keep, want, sizeof(want));
    /* Several runs in one day: keep-daily keeps the newest of that day only. */
    int64_t same_day[3] = { utc(2026, 3, 1, 1, 0), utc(2026, 3, 1, 13, 0),
                            utc(2026, 3, 1, 7, 0) };
    VoKeepRules daily = { .daily = 5 };
    assert_int_equal(vo_retention_select(same_day, 3, &daily, keep), 0);
    assert_false(keep[0]);
    assert_true(keep[1]);
    assert_false(keep[2]);
}

/* Periods are local: 23:30 UTC is the next day in Central Europe. */
static void test_local_days(void **state)
{
    (void)state;
    int64_t t[2] = { utc(2026, 6, 1, 10, 0), utc(2026, 6, 1, 23, 30) };
    bool keep[2];
    VoKeepRules daily1 = { .daily = 2 };
    setenv("TZ", "UTC", 1);
    tzset();
    assert_int_equal(vo_retention_select(t, 2, &daily1, keep), 0);
    assert_false(keep[0]); /* one UTC day: the older goes */
    assert_true(keep[1]);
    setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
    tzset();
    assert_int_equal(vo_retention_select(t, 2, &daily1, keep), 0);
    assert_true(keep[0]); /* June 1st and June 2nd local: both kept */
    assert_true(keep[1]);
    /* ISO weeks across a year's end: 2026-12-31 (Thu) and 2027-01-03 (Sun)
     * are both in week 53 of 2026. */
    int64_t w[2] = { utc(2026, 12, 31, 12, 0), utc(2027, 1, 3, 12, 0) };
    VoKeepRules weekly = { .weekly = 2 };
    assert_int_equal(vo_retention_select(w, 2, &weekly, keep), 0);
    assert_false(keep[0]);
    assert_true(keep[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_year_of_daily_runs),
        cmocka_unit_test(test_last_and_keep_all),
        cmocka_unit_test(test_local_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
