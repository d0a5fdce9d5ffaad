/* test-backup.c: unit tests for the pure parts of backups: backup ids (made
 * from a VM name and a time; never able to leave their pool directory), the
 * disk file names a record may give (never able to leave their backup) and
 * the sha256 of a file recorded for verification (also read at a limited
 * rate, and stopped by a cancel). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <string.h>

#include "storage/backup-id.h"
#include "util/cancel.h"
#include "util/sha256.h"
#include "util/util.h"

static void test_id_make(void **state)
{
    /* 2026-11-22T03:41:22Z */
    _cleanup_free_ char *id = vo_backup_id_make("web1", 1795318882000LL, 0x12abcd);
    assert_string_equal(id, "web1-20261122-034122-abcd");
    assert_true(vo_backup_id_valid(id));
    char name[64];
    memset(name, 'a', 63);
    name[63] = 0;
    _cleanup_free_ char *longest = vo_backup_id_make(name, 0, 0);
    assert_int_equal(strlen(longest), 63 + 21);
    assert_true(vo_backup_id_valid(longest));
}

static void test_id_valid(void **state)
{
    static const char *const good[] = { "a", "web1-20261122-034122-abcd", "0", "a-" };
    static const char *const bad[] = { "", "-a", "..", ".", "a/b", "../x", "a.b", "A", "a b",
                                       "a%2fb", "a\\b", "\xc3\xa9", NULL };
    for (size_t i = 0; i < ELEMENTSOF(good); i++)
        assert_true(vo_backup_id_valid(good[i]));
    for (size_t i = 0; bad[i]; i++)
        assert_false(vo_backup_id_valid(bad[i]));
    assert_false(vo_backup_id_valid(NULL));
    char too_long[VO_BACKUP_ID_MAX + 2];
    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = 0;
    assert_false(vo_backup_id_valid(too_long));
    too_long[VO_BACKUP_ID_MAX] = 0;
    assert_true(vo_backup_id_valid(too_long));
}

static void test_file_valid(void **state)
{
    static const char *const good[] = { "disk0.qcow2", "disk12.qcow2", "disk4294967295.qcow2" };
    static const char *const bad[] = { "", "disk.qcow2", "../../x.qcow2", "disk0.qcow2/..",
                                       "../disk0.qcow2", "/disk0.qcow2", "disk0.raw",
                                       "disk-1.qcow2", "disk0.qcow2.", "Disk0.qcow2",
                                       "disk12345678901.qcow2", "disk0/.qcow2", "disk0.qcow2\n",
                                       NULL };
    for (size_t i = 0; i < ELEMENTSOF(good); i++)
        assert_true(vo_backup_file_valid(good[i]));
    for (size_t i = 0; bad[i]; i++)
        assert_false(vo_backup_file_valid(bad[i]));
    assert_false(vo_backup_file_valid(NULL));
}

static void test_sha256_file(void **state)
{
    char path[] = "/tmp/vireo-test-sha256-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    close(fd);
    char sum[VO_SHA256_HEX_LEN + 1];
    assert_int_equal(vo_sha256_file(path, sum), 0);
    /* FIPS 180-2's example for "abc". */
    assert_string_equal(sum, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    fd = open(path, O_WRONLY | O_TRUNC);
    close(fd);
    assert_int_equal(vo_sha256_file(path, sum), 0);
    assert_string_equal(sum, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    unlink(path);
    assert_int_equal(vo_sha256_file(path, sum), -ENOENT);
}

static void test_sha256_file_limited(void **state)
{
    char path[] = "/tmp/vireo-test-sha256-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    /* 64 KiB of a pattern: read in several paced chunks at 256 KiB/s. */
    char block[4096];
    for (size_t i = 0; i < sizeof(block); i++)
        block[i] = (char)(i * 7);
    for (int i = 0; i < 16; i++)
        assert_int_equal(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
    close(fd);
    char fast[VO_SHA256_HEX_LEN + 1], paced[VO_SHA256_HEX_LEN + 1];
    assert_int_equal(vo_sha256_file(path, fast), 0);
    assert_int_equal(vo_sha256_file_limited(path, 256 << 10, paced), 0);
    assert_string_equal(fast, paced);
    /* The thread's work cancelled: it stops, paced or not. */
    VoCancel *c = vo_cancel_new();
    assert_non_null(c);
    vo_cancel_set_current(c);
    assert_int_equal(vo_sha256_file_limited(path, 256 << 10, paced), 0);
    vo_cancel_request(c);
    assert_int_equal(vo_sha256_file_limited(path, 1, paced), -ECANCELED);
    assert_int_equal(vo_sha256_file(path, paced), -ECANCELED);
    vo_cancel_set_current(NULL);
    vo_cancel_free(c);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_make),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_file_valid),
        cmocka_unit_test(test_sha256_file),
        cmocka_unit_test(test_sha256_file_limited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
