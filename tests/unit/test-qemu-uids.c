/* test-qemu-uids.c: per-VM QEMU uids (qemu/qemu-uids.h): the lowest free
 * uid of the range, used ones skipped, an exhausted range refused with a
 * message naming it; the option's range; the uid on a recorded command
 * line (what a restarted vireod re-attaches with); a claim's lock (held
 * while its fd lives) and a lock dir another user could write refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* A range no process runs as (above the default one and the e2e tests'). */
#define CLAIM_FIRST 1879300000u
#define CLAIM_LAST 1879300002u

static char *temp_lock_dir(char tmpl[64])
{
    strcpy(tmpl, "/tmp/test-qemu-uids.XXXXXX");
    assert_non_null(mkdtemp(tmpl));
    char *dir = malloc(strlen(tmpl) + 8);
    strcpy(dir, tmpl);
    strcat(dir, "/locks");
    return dir;
}

static void remove_lock_dir(const char *tmpl, const char *dir)
{
    char path[128];
    const char *names[] = { ".claim", "1879300000", "1879300001", "1879300002" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        (void)unlink(path);
    }
    (void)rmdir(dir);
    (void)rmdir(tmpl);
}

static void test_claim_held_while_fd_lives(void **state)
{
    (void)state;
    char tmpl[64];
    char *dir = temp_lock_dir(tmpl);
    uid_t a = 0, b = 0, c = 0;
    int fa = -1, fb = -1, fc = -1;
    assert_int_equal(vo_qemu_uid_claim(dir, CLAIM_FIRST, CLAIM_LAST, &a, &fa, NULL), 0);
    assert_int_equal(a, CLAIM_FIRST);
    /* Its lock held: the next claim skips it. */
    assert_int_equal(vo_qemu_uid_claim(dir, CLAIM_FIRST, CLAIM_LAST, &b, &fb, NULL), 0);
    assert_int_equal(b, CLAIM_FIRST + 1);
    /* Its last fd closed (its QEMU gone): free again. */
    close(fa);
    assert_int_equal(vo_qemu_uid_claim(dir, CLAIM_FIRST, CLAIM_LAST, &c, &fc, NULL), 0);
    assert_int_equal(c, CLAIM_FIRST);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    close(fb);
    close(fc);
    remove_lock_dir(tmpl, dir);
    free(dir);
}

static void test_claim_refuses_dir_others_write(void **state)
{
    (void)state;
    char tmpl[64];
    char *dir = temp_lock_dir(tmpl);
    /* Made first by someone else (/run/lock is everyone's): writable by
     * others, or owned by another user. */
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    uid_t uid = 0;
    int fd = -1;
    char *error = NULL;
    assert_int_equal(vo_qemu_uid_claim(dir, CLAIM_FIRST, CLAIM_LAST, &uid, &fd, &error),
                     -EPERM);
    assert_int_equal(fd, -1);
    assert_non_null(error);
    assert_non_null(strstr(error, dir));
    assert_non_null(strstr(error, "remove it"));
    free(error);
    error = NULL;
    if (geteuid() == 0) {
        assert_int_equal(chmod(dir, 0700), 0);
        assert_int_equal(chown(dir, 65534, 65534), 0);
        assert_int_equal(vo_qemu_uid_claim(dir, CLAIM_FIRST, CLAIM_LAST, &uid, &fd, &error),
                         -EPERM);
        free(error);
    }
    remove_lock_dir(tmpl, dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_lowest_free),
        cmocka_unit_test(test_pick_skips_used),
        cmocka_unit_test(test_pick_exhausted),
        cmocka_unit_test(test_range_parse),
        cmocka_unit_test(test_uid_from_argv),
        cmocka_unit_test(test_claim_held_while_fd_lives),
        cmocka_unit_test(test_claim_refuses_dir_others_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
