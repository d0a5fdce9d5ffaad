/* test-fault-file.c: the test-only fault files (util/fault-file.c): "N ERR"
 * counted down and removed with the last, the errno names; and the store's
 * fault point on them (state/store-fault.c): a put of the faulted key fails
 * writing nothing, other keys and the next put go through; a lost@ put is
 * applied and answered ETIMEDOUT; a put held by put@KEY.hold waits, its
 * .held file made, until the file goes. The daemon's fault points
 * (util/test-hold.c) are off with $VIREO_FAKE_FAULTS unset or empty. */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "state/store.h"
#include "util/fault-file.h"
#include "util/test-hold.h"
#include "util/util.h"

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/vireo-faults-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return vo_strdup(tmpl);
}

static void put_file(const char *dir, const char *name, const char *text)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, name);
    assert_int_equal(vo_write_file_atomic(path, text, strlen(text)), 0);
}

static bool has_file(const char *dir, const char *name)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void test_counted(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    assert_int_equal(vo_fault_file_take(dir, "op"), 0); /* none */
    put_file(dir, "op", "2 ENOSPC\n");
    assert_int_equal(vo_fault_file_take(dir, "op"), -ENOSPC);
    assert_true(has_file(dir, "op"));
    assert_int_equal(vo_fault_file_take(dir, "op"), -ENOSPC);
    assert_false(has_file(dir, "op"));
    assert_int_equal(vo_fault_file_take(dir, "op"), 0);
    put_file(dir, "op", "EBUSY\n"); /* no count: once */
    assert_int_equal(vo_fault_file_take(dir, "op"), -EBUSY);
    assert_int_equal(vo_fault_file_take(dir, "op"), 0);
    put_file(dir, "op", "1 SOMETHING\n"); /* an unknown name: EIO */
    assert_int_equal(vo_fault_file_take(dir, "op"), -EIO);
    assert_false(has_file(dir, "op"));
    assert_int_equal(rmdir(dir), 0);
}

static void test_store_fault(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir(), *faults = vo_asprintf("%s/faults", dir);
    _cleanup_free_ char *db = vo_asprintf("%s/store.db", dir);
    assert_int_equal(mkdir(faults, 0700), 0);
    VoStore *s = NULL;
    assert_int_equal(vo_store_open(db, &s), 0);
    /* Off without the variable: the file is not even looked at. */
    put_file(faults, "put@vms+a", "1 EIO\n");
    assert_int_equal(vo_store_put(s, "vms/b", "{}", VO_REV_NEW, NULL), 0);
    assert_int_equal(setenv("VIREO_TEST_STORE_FAULTS", faults, 1), 0);
    int64_t rev = 0;
    assert_int_equal(vo_store_put(s, "vms/a", "{}", VO_REV_NEW, &rev), -EIO);
    assert_int_equal(vo_store_get(s, "vms/a", NULL, NULL), -ENOENT); /* nothing written */
    assert_int_equal(vo_store_put(s, "vms/b", "{\"x\":1}", VO_REV_ANY, NULL), 0);
    assert_int_equal(vo_store_put(s, "vms/a", "{}", VO_REV_NEW, &rev), 0); /* used up */
    put_file(faults, "delete@vms+a", "1 ETIMEDOUT\n");
    assert_int_equal(vo_store_delete(s, "vms/a", rev), -ETIMEDOUT);
    assert_int_equal(vo_store_get(s, "vms/a", NULL, NULL), 0);
    assert_int_equal(vo_store_delete(s, "vms/a", rev), 0);
    /* lost@: the write lands, then is answered as the file says. */
    put_file(faults, "lost@put@vms+a", "1 ETIMEDOUT\n");
    assert_int_equal(vo_store_put(s, "vms/a", "{}", VO_REV_NEW, NULL), VO_STORE_EUNKNOWN);
    assert_false(has_file(faults, "lost@put@vms+a"));
    assert_int_equal(vo_store_get(s, "vms/a", NULL, NULL), 0);
    assert_int_equal(unsetenv("VIREO_TEST_STORE_FAULTS"), 0);
    vo_store_close(s);
    assert_int_equal(rmdir(faults), 0);
    _cleanup_free_ char *rm = vo_asprintf("rm -rf '%s'", dir);
    assert_int_equal(system(rm), 0);
}

typedef struct {
    VoStore *s;
    int r;
} HeldPut;

static void *held_put(void *userdata)
{
    HeldPut *h = userdata;
    h->r = vo_store_put(h->s, "vms/a", "{}", VO_REV_NEW, NULL);
    return NULL;
}

static void test_store_hold(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir(), *faults = vo_asprintf("%s/faults", dir);
    _cleanup_free_ char *db = vo_asprintf("%s/store.db", dir);
    assert_int_equal(mkdir(faults, 0700), 0);
    VoStore *s = NULL;
    assert_int_equal(vo_store_open(db, &s), 0);
    assert_int_equal(setenv("VIREO_TEST_STORE_FAULTS", faults, 1), 0);
    put_file(faults, "put@vms+a.hold", "");
    HeldPut h = { .s = s, .r = 1 };
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, held_put, &h), 0);
    for (int i = 0; i < 3000 && !has_file(faults, "put@vms+a.held"); i++)
        (void)poll(NULL, 0, 10);
    assert_true(has_file(faults, "put@vms+a.held"));
    /* Held: nothing written, and other keys go through meanwhile. */
    assert_int_equal(vo_store_put(s, "vms/b", "{}", VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_get(s, "vms/a", NULL, NULL), -ENOENT);
    _cleanup_free_ char *hold = vo_asprintf("%s/put@vms+a.hold", faults);
    assert_int_equal(unlink(hold), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(h.r, 0);
    assert_int_equal(vo_store_get(s, "vms/a", NULL, NULL), 0);
    assert_int_equal(unsetenv("VIREO_TEST_STORE_FAULTS"), 0);
    vo_store_close(s);
    _cleanup_free_ char *rm = vo_asprintf("rm -rf '%s'", dir);
    assert_int_equal(system(rm), 0);
}

/* The daemon's fault points: an empty $VIREO_FAKE_FAULTS is off too (it
 * would name files from the root: "/<op>"). */
static void test_daemon_fault_point(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    put_file(dir, "op", "3 EBUSY\n");
    assert_int_equal(unsetenv("VIREO_FAKE_FAULTS"), 0);
    assert_int_equal(vo_test_fault("op"), 0);
    assert_int_equal(setenv("VIREO_FAKE_FAULTS", dir, 1), 0);
    assert_int_equal(vo_test_fault("op"), -EBUSY);
    /* Set empty: "/" + the op, here the same file from the root. */
    _cleanup_free_ char *from_root = vo_asprintf("%s/op", dir + 1);
    assert_int_equal(setenv("VIREO_FAKE_FAULTS", "", 1), 0);
    assert_int_equal(vo_test_fault(from_root), 0);
    assert_int_equal(unsetenv("VIREO_FAKE_FAULTS"), 0);
    assert_true(has_file(dir, "op")); /* 2 left: untouched */
    _cleanup_free_ char *rm = vo_asprintf("rm -rf '%s'", dir);
    assert_int_equal(system(rm), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counted),
        cmocka_unit_test(test_store_fault),
        cmocka_unit_test(test_store_hold),
        cmocka_unit_test(test_daemon_fault_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
