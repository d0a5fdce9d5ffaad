/* test-lease-keeper.c: the lease keeper (state/lease-keeper.h) on the SQLite
 * store: a lock on a short lease outlives many TTLs while kept, goes when
 * stopped, and a lease lost meanwhile is reported by confirm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "state/lease-keeper.h"
#include "state/store.h"
#include "util/util.h"

typedef struct {
    char dir[64];
    VoStore *store;
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-keeper-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    _cleanup_free_ char *path = vo_asprintf("%s/state.db", f->dir);
    return vo_store_open(path, &f->store) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    if (f->store)
        vo_store_close(f->store);
    int r = vo_rm_rf(f->dir);
    free(f);
    return r < 0 ? -1 : 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Without a keeper the lock goes within a few TTLs (what the keeper is for). */
static void test_unkept_lock_expires(void **state)
{
    Fixture *f = *state;
    int64_t lease = 0;
    assert_int_equal(f->store->ops->lease_grant(f->store, 300, &lease), 0);
    assert_int_equal(vo_store_put_lease(f->store, "lock", "me", VO_REV_NEW, lease, NULL), 0);
    int r = 0;
    for (int i = 0; i < 100 && (r = vo_store_get(f->store, "lock", NULL, NULL)) == 0; i++)
        sleep_ms(50);
    assert_int_equal(r, -ENOENT);
}

static void test_kept_lock_holds_then_goes(void **state)
{
    Fixture *f = *state;
    int64_t lease = 0;
    assert_int_equal(f->store->ops->lease_grant(f->store, 300, &lease), 0);
    assert_int_equal(vo_store_put_lease(f->store, "lock", "me", VO_REV_NEW, lease, NULL), 0);
    VoLeaseKeeper *k = vo_lease_keeper_start(f->store, lease, 300);
    assert_int_equal(vo_lease_keeper_lease(k), lease);
    for (int i = 0; i < 15; i++) { /* 5 TTLs */
        sleep_ms(100);
        assert_int_equal(vo_store_get(f->store, "lock", NULL, NULL), 0);
    }
    assert_int_equal(vo_lease_keeper_confirm(k), 0);
    assert_int_equal(vo_lease_keeper_stop(k), 0);
    assert_int_equal(vo_store_get(f->store, "lock", NULL, NULL), -ENOENT);
}

static void test_lost_lease_is_reported(void **state)
{
    Fixture *f = *state;
    int64_t lease = 0;
    assert_int_equal(f->store->ops->lease_grant(f->store, 60000, &lease), 0);
    assert_int_equal(vo_store_put_lease(f->store, "lock", "me", VO_REV_NEW, lease, NULL), 0);
    VoLeaseKeeper *k = vo_lease_keeper_start(f->store, lease, 60000);
    assert_int_equal(vo_lease_keeper_confirm(k), 0);
    /* Gone behind its back (an expiry while the store was unreachable). */
    assert_int_equal(f->store->ops->lease_revoke(f->store, lease), 0);
    assert_int_equal(vo_lease_keeper_confirm(k), -ENOENT);
    assert_int_equal(vo_lease_keeper_confirm(k), -ENOENT);
    assert_int_equal(vo_lease_keeper_stop(k), -ENOENT);
    vo_lease_keeper_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unkept_lock_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kept_lock_holds_then_goes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_lease_is_reported, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
