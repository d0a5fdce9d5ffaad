/* test-rbd-failure.c: a failed Ceph call's kind and its retry delay
 * (storage/rbd-failure.c): no Ceph needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>

#include "storage/rbd-failure.h"

static void failures_are_told_apart(void **state)
{
    (void)state;
    const int unreachable[] = { ETIMEDOUT, ENOTCONN, ESHUTDOWN, ECONNREFUSED, EHOSTUNREACH };
    for (size_t i = 0; i < sizeof(unreachable) / sizeof(*unreachable); i++) {
        assert_int_equal(vo_rbd_failure_kind(-unreachable[i]), VO_RBD_FAIL_UNREACHABLE);
        assert_int_equal(vo_rbd_failure_kind(unreachable[i]), VO_RBD_FAIL_UNREACHABLE);
    }
    assert_int_equal(vo_rbd_failure_kind(-EBUSY), VO_RBD_FAIL_BUSY);
    /* A refused or unreadable key, a bad setting, anything unknown: the
     * same answer next time. -ENOENT too: an image that does not exist is
     * done (0) before it gets here, so it is the Ceph pool that is missing
     * (renamed, the image maybe still in it): never taken for the image
     * gone, which would drop its intent and leave the image unseen. */
    const int permanent[] = { EACCES, EPERM, EINVAL, EIO, ENOTEMPTY, ENOENT, 9999 };
    for (size_t i = 0; i < sizeof(permanent) / sizeof(*permanent); i++)
        assert_int_equal(vo_rbd_failure_kind(-permanent[i]), VO_RBD_FAIL_PERMANENT);
    assert_string_equal(vo_rbd_failure_name(VO_RBD_FAIL_UNREACHABLE), "unreachable");
    assert_string_equal(vo_rbd_failure_name(VO_RBD_FAIL_BUSY), "busy");
    assert_string_equal(vo_rbd_failure_name(VO_RBD_FAIL_PERMANENT), "permanent");
}

static void retries_wait_by_kind(void **state)
{
    (void)state;
    /* Ceph not answering: at each check (the checks are paced already). */
    assert_int_equal(vo_rbd_retry_delay_ms(VO_RBD_FAIL_UNREACHABLE, 1), 0);
    assert_int_equal(vo_rbd_retry_delay_ms(VO_RBD_FAIL_UNREACHABLE, 50), 0);
    /* Busy: doubling from 30 s, at most 10 min (no overflow however many). */
    assert_int_equal(vo_rbd_retry_delay_ms(VO_RBD_FAIL_BUSY, 1), 30000);
    assert_int_equal(vo_rbd_retry_delay_ms(VO_RBD_FAIL_BUSY, 2), 60000);
    assert_int_equal(vo_rbd_retry_delay_ms(VO_RBD_FAIL_BUSY, 3), 120000);
    assert_int_equal(vo_rbd_retry_delay_ms(VO_RBD_FAIL_BUSY, 6), 600000);
    assert_int_equal(vo_rbd_retry_delay_ms(VO_RBD_FAIL_BUSY, 4000000000u), 600000);
    /* Permanent: hourly, however many tries. */
    assert_int_equal(vo_rbd_retry_delay_ms(VO_RBD_FAIL_PERMANENT, 1), 3600000);
    assert_int_equal(vo_rbd_retry_delay_ms(VO_RBD_FAIL_PERMANENT, 100), 3600000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(failures_are_told_apart),
        cmocka_unit_test(retries_wait_by_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
