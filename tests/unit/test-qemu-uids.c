/* test-qemu-uids.c: per-VM QEMU uids (qemu/qemu-uids.h): the lowest free
 * uid of the range, used ones skipped, an exhausted range refused with a
 * message naming it; the option's range; the uid on a recorded command
 * line (what a restarted vireod re-attaches with). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qemu/qemu-uids.h"

static void test_pick_lowest_free(void **state)
{
    (void)state;
    uid_t uid = 0;
    char *error = NULL;
    assert_int_equal(vo_qemu_uid_pick(5000, 5009, NULL, 0, &uid, &error), 0);
    assert_int_equal(uid, 5000);
    assert_null(error);
}

static void test_pick_skips_used(void **state)
{
    (void)state;
    /* Unsorted, with duplicates (a process's real and effective uid). */
    const uid_t used[] = { 5001, 5000, 5003, 5000, 4000, 5001 };
    uid_t uid = 0;
    char *error = NULL;
    assert_int_equal(vo_qemu_uid_pick(5000, 5009, used, 6, &uid, &error), 0);
    assert_int_equal(uid, 5002);
}

static void test_pick_exhausted(void **state)
{
    (void)state;
    const uid_t used[] = { 5002, 5000, 5001 };
    uid_t uid = 77;
    char *error = NULL;
    assert_int_equal(vo_qemu_uid_pick(5000, 5002, used, 3, &uid, &error), -EBUSY);
    assert_int_equal(uid, 77);
    assert_non_null(error);
    assert_non_null(strstr(error, "no free uid for QEMU in --qemu-uid-range 5000-5002"));
    assert_non_null(strstr(error, "all 3 are in use"));
    free(error);
    /* The last one left is found. */
    const uid_t most[] = { 5000, 5001 };
    assert_int_equal(vo_qemu_uid_pick(5000, 5002, most, 2, &uid, NULL), 0);
    assert_int_equal(uid, 5002);
}

static void test_range_parse(void **state)
{
    (void)state;
    uid_t first = 0, last = 0;
    assert_int_equal(vo_qemu_uid_range_parse("1879048192-1879113727", &first, &last), 0);
    assert_int_equal(first, 1879048192u);
    assert_int_equal(last, 1879113727u);
    assert_int_equal(vo_qemu_uid_range_parse("7-7", &first, &last), 0);
    const char *bad[] = { "", "7", "7-", "-7", "8-7", "0-5", "a-b", "5-6x", "5--6",
                          "1-2147483647", "1-99999999999" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vo_qemu_uid_range_parse(bad[i], &first, &last), -EINVAL);
}

static void test_uid_from_argv(void **state)
{
    (void)state;
    uid_t uid = 0;
    assert_true(vo_qemu_uid_from_argv("qemu\n-run-with\nuser=1879048193:995\n-S\n", &uid));
    assert_int_equal(uid, 1879048193u);
    assert_false(vo_qemu_uid_from_argv("qemu\n-run-with\nuser=vireo-qemu\n-S\n", &uid));
    assert_false(vo_qemu_uid_from_argv("qemu\n-S\n", &uid));
    assert_false(vo_qemu_uid_from_argv(NULL, &uid));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_lowest_free),
        cmocka_unit_test(test_pick_skips_used),
        cmocka_unit_test(test_pick_exhausted),
        cmocka_unit_test(test_range_parse),
        cmocka_unit_test(test_uid_from_argv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
