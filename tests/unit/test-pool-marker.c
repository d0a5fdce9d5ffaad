/* test-pool-marker.c: a shared pool's marker file (storage/pool-marker.c):
 * written exclusively, read back, and every reachability verdict with its
 * reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/pool-marker.h"
#include "util/util.h"

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/vireo-marker-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return vo_strdup(tmpl);
}

static void rmdir_all(const char *dir)
{
    _cleanup_free_ char *marker = vo_asprintf("%s/%s", dir, VO_POOL_MARKER_FILE);
    (void)unlink(marker);
    assert_int_equal(rmdir(dir), 0);
}

#define assert_contains(s, needle)                                                    \
    do {                                                                              \
        if (!(s) || !strstr((s), (needle)))                                           \
            fail_msg("'%s' does not mention '%s'", (s) ? (s) : "(null)", (needle));    \
    } while (0)

static void test_write_read(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    char *error = NULL;
    assert_int_equal(vo_pool_marker_write(dir, "id-1", "nfs", &error), 0);
    assert_null(error);
    char *id = NULL, *name = NULL;
    assert_int_equal(vo_pool_marker_read(dir, &id, &name), 0);
    assert_string_equal(id, "id-1");
    assert_string_equal(name, "nfs");
    free(id);
    free(name);
    char *reason = NULL;
    assert_int_equal(vo_pool_marker_check(dir, "id-1", &reason), VO_POOL_REACHABLE);
    assert_null(reason);
    rmdir_all(dir);
}

static void test_write_exclusive(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    char *error = NULL;
    assert_int_equal(vo_pool_marker_write(dir, "id-1", "first", &error), 0);
    /* A second pool on the same directory is refused, naming the first. */
    assert_int_equal(vo_pool_marker_write(dir, "id-2", "second", &error), -EEXIST);
    assert_contains(error, "'first'");
    assert_contains(error, "id-1");
    free(error);
    error = NULL;
    char *id = NULL, *name = NULL;
    assert_int_equal(vo_pool_marker_read(dir, &id, &name), 0);
    assert_string_equal(id, "id-1"); /* untouched */
    free(id);
    free(name);
    /* Removal only of one's own marker. */
    vo_pool_marker_remove(dir, "id-2");
    assert_int_equal(vo_pool_marker_read(dir, &id, &name), 0);
    free(id);
    free(name);
    vo_pool_marker_remove(dir, "id-1");
    assert_int_equal(vo_pool_marker_read(dir, &id, &name), -ENOENT);
    rmdir_all(dir);
}

static void test_reasons(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    char *reason = NULL;
    /* No marker: not the shared directory here. */
    assert_int_equal(vo_pool_marker_check(dir, "id-1", &reason), VO_POOL_NO_MARKER);
    assert_contains(reason, "no pool marker");
    free(reason);
    /* Another pool's marker. */
    char *error = NULL;
    assert_int_equal(vo_pool_marker_write(dir, "id-9", "other", &error), 0);
    assert_int_equal(vo_pool_marker_check(dir, "id-1", &reason), VO_POOL_OTHER_MARKER);
    assert_contains(reason, "another pool ('other', id id-9)");
    free(reason);
    /* Garbage in the marker. */
    _cleanup_free_ char *marker = vo_asprintf("%s/%s", dir, VO_POOL_MARKER_FILE);
    assert_int_equal(vo_write_file_atomic(marker, "nope", 4), 0);
    assert_int_equal(vo_pool_marker_check(dir, "id-1", &reason), VO_POOL_BAD_MARKER);
    assert_contains(reason, "not a vireo pool marker");
    free(reason);
    assert_int_equal(vo_pool_marker_write(dir, "id-1", "x", &error), -EEXIST);
    assert_contains(error, "not a pool marker");
    free(error);
    /* A file where the directory should be, and nothing at all. */
    assert_int_equal(vo_pool_marker_check(marker, "id-1", &reason), VO_POOL_NO_PATH);
    assert_contains(reason, "missing or not a directory");
    free(reason);
    rmdir_all(dir);
    assert_int_equal(vo_pool_marker_check(dir, "id-1", &reason), VO_POOL_NO_PATH);
    assert_contains(reason, dir);
    free(reason);
    assert_string_equal(vo_pool_reach_to_string(VO_POOL_OTHER_MARKER), "other-pool");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_read),
        cmocka_unit_test(test_write_exclusive),
        cmocka_unit_test(test_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
