/* test-vm-reset-group.c: which resets vireo counts (daemon/vm-reset-group.c):
 * a SeaBIOS reboot's two RESETs ~40 ms apart count once; a reset a second
 * or more after the first of a group counts again, so a reset loop counts
 * about once a second; the group is measured from its first reset, not the
 * last; a clock set back starts a new group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "daemon/vm-reset-group.h"

#define MS 1000 /* µs */
#define T0 ((int64_t)1796000000 * 1000000) /* some wall time, µs */

static void test_a_reboot_counts_once(void **state)
{
    int64_t group = 0;
    assert_true(vo_reset_counts(&group, T0));
    assert_int_equal(group, T0);
    assert_false(vo_reset_counts(&group, T0 + 40 * MS)); /* SeaBIOS's second */
    assert_int_equal(group, T0);
    assert_false(vo_reset_counts(&group, T0));           /* the same instant */
    assert_true(vo_reset_counts(&group, T0 + 5000 * MS)); /* the next reboot */
    assert_int_equal(group, T0 + 5000 * MS);
}

static void test_the_group_ends_a_second_after_its_first(void **state)
{
    int64_t group = 0;
    assert_true(vo_reset_counts(&group, T0));
    assert_false(vo_reset_counts(&group, T0 + VO_RESET_GROUP_US - 1));
    assert_true(vo_reset_counts(&group, T0 + VO_RESET_GROUP_US));
}

static void test_a_reset_loop_counts_about_once_a_second(void **state)
{
    /* A reset every 40 ms for 10 s: 10 counted, measured from each group's
     * first (a group that followed its last reset would never end). */
    int64_t group = 0;
    unsigned counted = 0;
    for (int64_t t = 0; t < 10000 * MS; t += 40 * MS)
        counted += vo_reset_counts(&group, T0 + t);
    assert_int_equal(counted, 10);
}

static void test_a_clock_set_back_starts_a_new_group(void **state)
{
    int64_t group = 0;
    assert_true(vo_reset_counts(&group, T0));
    assert_true(vo_reset_counts(&group, T0 - 10 * MS));
    assert_int_equal(group, T0 - 10 * MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_reboot_counts_once),
        cmocka_unit_test(test_the_group_ends_a_second_after_its_first),
        cmocka_unit_test(test_a_reset_loop_counts_about_once_a_second),
        cmocka_unit_test(test_a_clock_set_back_starts_a_new_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
