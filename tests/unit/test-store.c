/* test-store.c: unit tests for the SQLite document store (src/state/store.c):
 * CAS semantics, prefix listing, persistence and concurrent CAS writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <string.h>

#include "state/store.h"
#include "util/util.h"

typedef struct {
    char dir[64];
    char *path;
    VoStore *store;
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-store-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    f->path = vo_asprintf("%s/state.db", f->dir);
    *state = f;
    return vo_store_open(f->path, &f->store) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    vo_store_close(f->store);
    int r = vo_rm_rf(f->dir);
    free(f->path);
    free(f);
    return r < 0 ? -1 : 0;
}

static void assert_doc(VoStore *s, const char *key, const char *value, int64_t rev)
{
    _cleanup_free_ char *v = NULL;
    int64_t got_rev = 0;
    assert_int_equal(vo_store_get(s, key, &v, &got_rev), 0);
    assert_string_equal(v, value);
    assert_int_equal(got_rev, rev);
}

static void test_create_get(void **state)
{
    Fixture *f = *state;
    int64_t rev = 0;
    assert_int_equal(vo_store_put(f->store, "vms/a", "{\"n\":1}", VO_REV_NEW, &rev), 0);
    assert_int_equal(rev, 1);
    assert_doc(f->store, "vms/a", "{\"n\":1}", 1);

    _cleanup_free_ char *wal = vo_asprintf("%s-wal", f->path);
    assert_int_equal(access(wal, F_OK), 0); /* journal_mode=WAL took effect */

    char *v = NULL;
    assert_int_equal(vo_store_get(f->store, "vms/missing", &v, &rev), -ENOENT);
    assert_null(v);
}

static void test_new_on_existing(void **state)
{
    Fixture *f = *state;
    int64_t rev = 0;
    assert_int_equal(vo_store_put(f->store, "k", "1", VO_REV_NEW, &rev), 0);
    assert_int_equal(vo_store_put(f->store, "k", "2", VO_REV_NEW, &rev), -EEXIST);
    assert_doc(f->store, "k", "1", 1);
}

static void test_cas(void **state)
{
    Fixture *f = *state;
    int64_t rev = 0;
    assert_int_equal(vo_store_put(f->store, "k", "\"v1\"", VO_REV_NEW, &rev), 0);
    assert_int_equal(vo_store_put(f->store, "k", "\"v2\"", 1, &rev), 0);
    assert_int_equal(rev, 2);
    assert_int_equal(vo_store_put(f->store, "k", "\"v3\"", 2, &rev), 0);
    assert_int_equal(rev, 3);

    /* A writer still holding revision 1 (or a future one) must lose. */
    rev = 42;
    assert_int_equal(vo_store_put(f->store, "k", "\"stale\"", 1, &rev), -ESTALE);
    assert_int_equal(vo_store_put(f->store, "k", "\"stale\"", 4, &rev), -ESTALE);
    assert_int_equal(rev, 42);
    assert_doc(f->store, "k", "\"v3\"", 3);

    assert_int_equal(vo_store_put(f->store, "nokey", "1", 1, &rev), -ENOENT);
    assert_int_equal(vo_store_put(f->store, "k", "1", -2, &rev), -EINVAL);
}

static void test_rev_any(void **state)
{
    Fixture *f = *state;
    int64_t rev = 0;
    for (int64_t i = 1; i <= 5; i++) {
        assert_int_equal(vo_store_put(f->store, "k", "{}", VO_REV_ANY, &rev), 0);
        assert_int_equal(rev, i);
    }
    assert_int_equal(vo_store_put(f->store, "k", "[]", 5, NULL), 0);
    assert_doc(f->store, "k", "[]", 6);
}

static void test_delete(void **state)
{
    Fixture *f = *state;
    int64_t rev = 0;
    assert_int_equal(vo_store_put(f->store, "k", "1", VO_REV_NEW, &rev), 0);
    assert_int_equal(vo_store_put(f->store, "k", "2", rev, &rev), 0);
    assert_int_equal(vo_store_delete(f->store, "k", 1), -ESTALE);
    assert_doc(f->store, "k", "2", 2);
    assert_int_equal(vo_store_delete(f->store, "k", VO_REV_NEW), -EINVAL);
    assert_int_equal(vo_store_delete(f->store, "k", 2), 0);
    assert_int_equal(vo_store_get(f->store, "k", NULL, NULL), -ENOENT);
    assert_int_equal(vo_store_delete(f->store, "k", 2), -ENOENT);
    assert_int_equal(vo_store_delete(f->store, "k", VO_REV_ANY), -ENOENT);

    assert_int_equal(vo_store_put(f->store, "k", "3", VO_REV_NEW, &rev), 0);
    assert_int_equal(rev, 1);
    assert_int_equal(vo_store_delete(f->store, "k", VO_REV_ANY), 0);
    assert_int_equal(vo_store_get(f->store, "k", NULL, NULL), -ENOENT);
}

typedef struct {
    char *keys[16];
    size_t n;
    size_t stop_after;
    VoStore *delete_from;
} ListResult;

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    ListResult *res = userdata;
    if (res->n >= ELEMENTSOF(res->keys) || rev != 1 || strcmp(key, value) != 0)
        return -EBADMSG;
    res->keys[res->n++] = vo_strdup(key);
    /* Callbacks may call back into the store. */
    if (res->delete_from && vo_store_delete(res->delete_from, key, rev) < 0)
        return -EIO;
    return res->n == res->stop_after ? 7 : 0;
}

static void list_result_clear(ListResult *res)
{
    for (size_t i = 0; i < res->n; i++)
        free(res->keys[i]);
    *res = (ListResult){ 0 };
}

static void test_list(void **state)
{
    Fixture *f = *state;
    /* Stored in scrambled order; "vmsx/" and "vms" are neighbours that must not
     * match "vms/", "vms/\xff..." checks the range end at the top byte value. */
    static const char *const keys[] = { "vmsx/a", "vms/c", "vms", "vms/a", "vmr/z",
                                        "vms/b/1", "vms/\xff\xff", "vms0", "vmt" };
    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        assert_int_equal(vo_store_put(f->store, keys[i], keys[i], VO_REV_NEW, NULL), 0);

    ListResult res = { 0 };
    assert_int_equal(vo_store_list(f->store, "vms/", collect, &res), 0);
    assert_int_equal(res.n, 4);
    assert_string_equal(res.keys[0], "vms/a");
    assert_string_equal(res.keys[1], "vms/b/1");
    assert_string_equal(res.keys[2], "vms/c");
    assert_string_equal(res.keys[3], "vms/\xff\xff");
    list_result_clear(&res);

    assert_int_equal(vo_store_list(f->store, "vms/\xff", collect, &res), 0);
    assert_int_equal(res.n, 1);
    list_result_clear(&res);

    assert_int_equal(vo_store_list(f->store, "nothing/", collect, &res), 0);
    assert_int_equal(res.n, 0);

    assert_int_equal(vo_store_list(f->store, "", collect, &res), 0);
    assert_int_equal(res.n, ELEMENTSOF(keys));
    assert_string_equal(res.keys[0], "vmr/z");
    assert_string_equal(res.keys[ELEMENTSOF(keys) - 1], "vmt");
    list_result_clear(&res);

    /* A non-zero return stops the walk and is passed through. */
    res.stop_after = 2;
    assert_int_equal(vo_store_list(f->store, "vms/", collect, &res), 7);
    assert_int_equal(res.n, 2);
    list_result_clear(&res);

    /* Deleting each document from inside its callback. */
    res.delete_from = f->store;
    assert_int_equal(vo_store_list(f->store, "vms/", collect, &res), 0);
    assert_int_equal(res.n, 4);
    list_result_clear(&res);
    assert_int_equal(vo_store_list(f->store, "vms/", collect, &res), 0);
    assert_int_equal(res.n, 0);
    assert_int_equal(vo_store_get(f->store, "vmsx/a", NULL, NULL), 0);
}

static void test_persist(void **state)
{
    Fixture *f = *state;
    int64_t rev = 0;
    assert_int_equal(vo_store_put(f->store, "vms/a", "{\"name\":\"a\"}", VO_REV_NEW, &rev), 0);
    assert_int_equal(vo_store_put(f->store, "vms/a", "{\"name\":\"b\"}", rev, &rev), 0);
    assert_int_equal(vo_store_put(f->store, "gone", "1", VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_delete(f->store, "gone", 1), 0);
    f->store = vo_store_close(f->store);
    assert_null(f->store);

    assert_int_equal(vo_store_open(f->path, &f->store), 0);
    assert_doc(f->store, "vms/a", "{\"name\":\"b\"}", 2);
    assert_int_equal(vo_store_get(f->store, "gone", NULL, NULL), -ENOENT);
    assert_int_equal(vo_store_put(f->store, "vms/a", "{}", 2, &rev), 0);
    assert_int_equal(rev, 3);
}

#define N_THREADS 4
#define N_INCREMENTS 250

typedef struct {
    VoStore *store; /* shared, or NULL to open a connection of its own */
    const char *path;
    int error;
    long retries;
} Worker;

static int increment(VoStore *s, long *retries)
{
    for (;;) {
        _cleanup_free_ char *v = NULL, *nv = NULL;
        int64_t rev;
        int r = vo_store_get(s, "counter", &v, &rev);
        if (r < 0)
            return r;
        nv = vo_asprintf("%lld", strtoll(v, NULL, 10) + 1);
        r = vo_store_put(s, "counter", nv, rev, NULL);
        if (r != -ESTALE)
            return r;
        (*retries)++;
    }
}

static void *worker(void *userdata)
{
    Worker *w = userdata;
    VoStore *s = w->store;
    if (!s && (w->error = vo_store_open(w->path, &s)) < 0)
        return NULL;
    for (int i = 0; i < N_INCREMENTS && w->error == 0; i++)
        w->error = increment(s, &w->retries);
    if (!w->store)
        vo_store_close(s);
    return NULL;
}

/* cmocka asserts are not thread-safe: workers only record errors. */
static void run_counter(Fixture *f, bool shared)
{
    assert_int_equal(vo_store_put(f->store, "counter", "0", VO_REV_NEW, NULL), 0);
    pthread_t th[N_THREADS];
    Worker w[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (Worker){ .store = shared ? f->store : NULL, .path = f->path };
        assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    }
    long retries = 0;
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].error, 0);
        retries += w[i].retries;
    }
    _cleanup_free_ char *expect = vo_asprintf("%d", N_THREADS * N_INCREMENTS);
    assert_doc(f->store, "counter", expect, N_THREADS * N_INCREMENTS + 1);
    print_message("%s connection: %ld CAS retries\n", shared ? "shared" : "per-thread", retries);
}

static void test_concurrent_shared(void **state)
{
    run_counter(*state, true);
}

/* Same, with one connection per thread on the same file: SQLite's own locking
 * (WAL, busy timeout) has to keep the single-statement CAS writes atomic. */
static void test_concurrent_connections(void **state)
{
    run_counter(*state, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_on_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rev_any, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_connections, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
