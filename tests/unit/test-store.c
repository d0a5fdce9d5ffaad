/* test-store.c: the store contract (store-contract.c) on the SQLite backend,
 * then what only SQLite has: the file (WAL, persistence across reopen with
 * revisions continuing), several connections on one file, the schema v1
 * migration, automatic compaction, leases surviving a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

#include "state/store.h"
#include "store-contract.h"
#include "util/util.h"

/* ---- the contract on SQLite: one store at a time, in a fresh dir ---- */

typedef struct {
    char dir[64];
} SqliteBackend;

static int sqlite_open(void *userdata, VoStore **ret)
{
    SqliteBackend *b = userdata;
    strcpy(b->dir, "/tmp/vireo-test-store-XXXXXX");
    if (!mkdtemp(b->dir))
        return -errno;
    _cleanup_free_ char *path = vo_asprintf("%s/state.db", b->dir);
    return vo_store_open(path, ret);
}

static void sqlite_close(void *userdata, VoStore *s)
{
    SqliteBackend *b = userdata;
    vo_store_close(s);
    (void)vo_rm_rf(b->dir);
}

/* ---- SQLite only ---- */

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

static int64_t current_rev(VoStore *s)
{
    int64_t rev = -1;
    assert_int_equal(s->ops->revision(s, &rev), 0);
    return rev;
}

static void test_wal(void **state)
{
    Fixture *f = *state;
    assert_string_equal(f->store->ops->name, "sqlite");
    assert_int_equal(vo_store_put(f->store, "vms/a", "{}", VO_REV_NEW, NULL), 0);
    _cleanup_free_ char *wal = vo_asprintf("%s-wal", f->path);
    assert_int_equal(access(wal, F_OK), 0); /* journal_mode=WAL took effect */
}

static void test_persist(void **state)
{
    Fixture *f = *state;
    int64_t rev = 0, gone = 0;
    assert_int_equal(vo_store_put(f->store, "vms/a", "{\"name\":\"a\"}", VO_REV_NEW, &rev), 0);
    assert_int_equal(vo_store_put(f->store, "vms/a", "{\"name\":\"b\"}", rev, &rev), 0);
    assert_int_equal(vo_store_put(f->store, "gone", "1", VO_REV_NEW, &gone), 0);
    assert_int_equal(vo_store_delete(f->store, "gone", gone), 0);
    int64_t last = current_rev(f->store);
    f->store = vo_store_close(f->store);
    assert_null(f->store);

    assert_int_equal(vo_store_open(f->path, &f->store), 0);
    assert_int_equal(current_rev(f->store), last);
    assert_doc(f->store, "vms/a", "{\"name\":\"b\"}", rev);
    assert_int_equal(vo_store_get(f->store, "gone", NULL, NULL), -ENOENT);
    /* Revisions go on above the old ones, also for a re-created key. */
    int64_t again = 0;
    assert_int_equal(vo_store_put(f->store, "gone", "2", VO_REV_NEW, &again), 0);
    assert_int_equal(again, last + 1);
    assert_int_equal(vo_store_put(f->store, "gone", "3", gone, NULL), -ESTALE);

    /* The change log survives too: a watch from before the restart. */
    VoStoreWatch *w = NULL;
    VoStoreEvent *ev = NULL;
    size_t n = 0;
    assert_int_equal(f->store->ops->watch_open(f->store, "gone", gone - 1, &w), 0);
    assert_int_equal(f->store->ops->watch_next(w, 0, &ev, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ev[0].rev, gone);
    assert_int_equal(ev[1].kind, VO_STORE_DELETE);
    assert_int_equal(ev[2].rev, again);
    vo_store_events_free(ev, n);
    f->store->ops->watch_close(w);
}

#define N_THREADS 4
#define N_INCREMENTS 200

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
    int64_t start = 0;
    assert_int_equal(vo_store_put(f->store, "counter", "0", VO_REV_NEW, &start), 0);
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
    assert_doc(f->store, "counter", expect, start + N_THREADS * N_INCREMENTS);
    print_message("%s connection: %ld CAS retries\n", shared ? "shared" : "per-thread", retries);
}

static void test_concurrent_shared(void **state)
{
    run_counter(*state, true);
}

/* Same, with one connection per thread on the same file: each transaction
 * (BEGIN IMMEDIATE) reads and raises the revision in the file itself. */
static void test_concurrent_connections(void **state)
{
    run_counter(*state, false);
}

/* A state dir written by schema v1 (a revision per document) keeps working. */
static void test_migrate_v1(void **state)
{
    Fixture *f = *state;
    f->store = vo_store_close(f->store);
    assert_int_equal(vo_rm_rf(f->dir), 0);
    assert_int_equal(vo_mkdir_p(f->dir, 0700), 0);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL;"
                     "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     "CREATE TABLE documents (key TEXT PRIMARY KEY, rev INTEGER NOT NULL,"
                     "  value TEXT NOT NULL);"
                     "INSERT INTO meta VALUES ('schema_version', '1');"
                     "INSERT INTO documents VALUES ('vms/b', 7, '{\"name\":\"b\"}'),"
                     "  ('pools/default', 1, '{\"name\":\"default\"}'),"
                     "  ('vms/a', 3, '{\"name\":\"a\"}');",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(vo_store_open(f->path, &f->store), 0);
    VoStore *s = f->store;
    assert_int_equal(current_rev(s), 3);
    /* One revision each, in key order; the values untouched. */
    assert_doc(s, "pools/default", "{\"name\":\"default\"}", 1);
    assert_doc(s, "vms/a", "{\"name\":\"a\"}", 2);
    assert_doc(s, "vms/b", "{\"name\":\"b\"}", 3);
    int64_t rev = 0;
    assert_int_equal(vo_store_put(s, "vms/a", "{}", 2, &rev), 0);
    assert_int_equal(rev, 4);

    /* The change log starts after the migration. */
    VoStoreWatch *w = NULL;
    VoStoreEvent *ev = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->watch_open(s, "", 2, &w), 0);
    assert_int_equal(s->ops->watch_next(w, 0, &ev, &n), VO_STORE_ECOMPACTED);
    s->ops->watch_close(w);
    assert_int_equal(s->ops->watch_open(s, "", 3, &w), 0);
    assert_int_equal(s->ops->watch_next(w, 0, &ev, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ev[0].prev_value, "{\"name\":\"a\"}");
    vo_store_events_free(ev, n);
    s->ops->watch_close(w);

    /* Opened again: already v2, nothing changes. */
    f->store = vo_store_close(f->store);
    assert_int_equal(vo_store_open(f->path, &f->store), 0);
    assert_int_equal(current_rev(f->store), 4);
    assert_doc(f->store, "vms/b", "{\"name\":\"b\"}", 3);
}

static void test_unknown_schema(void **state)
{
    Fixture *f = *state;
    f->store = vo_store_close(f->store);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'", NULL,
                     NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(vo_store_open(f->path, &f->store), -EPROTONOSUPPORT);
    assert_null(f->store);
}

/* After keep + 600 writes the change log is compacted and holds the newest
 * keep revisions, all of them. */
static void check_compaction(VoStore *s, int64_t keep)
{
    int64_t rev = VO_REV_NEW;
    for (int i = 0; i < keep + 600; i++)
        assert_int_equal(vo_store_put(s, "k", "v", rev, &rev), 0);

    VoStoreWatch *w = NULL;
    VoStoreEvent *ev = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->watch_open(s, "", 0, &w), 0);
    assert_int_equal(s->ops->watch_next(w, 0, &ev, &n), VO_STORE_ECOMPACTED);
    s->ops->watch_close(w);

    /* The newest keep are all there. */
    assert_int_equal(s->ops->watch_open(s, "", rev - keep, &w), 0);
    size_t total = 0;
    int64_t last = rev - keep;
    for (;;) {
        assert_int_equal(s->ops->watch_next(w, 0, &ev, &n), 0);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            assert_int_equal(ev[i].rev, ++last);
        total += n;
        vo_store_events_free(ev, n);
    }
    assert_int_equal(total, (size_t)keep);
    s->ops->watch_close(w);
}

/* The change log keeps the newest VO_STORE_SQLITE_KEEP_CHANGES revisions. */
static void test_auto_compaction(void **state)
{
    Fixture *f = *state;
    check_compaction(f->store, VO_STORE_SQLITE_KEEP_CHANGES);
}

/* ... or as many as the store was opened to keep (vireod --event-history). */
static void test_auto_compaction_keeping(void **state)
{
    Fixture *f = *state;
    f->store = vo_store_close(f->store);
    VoStore *none = NULL;
    assert_int_equal(vo_store_open_keeping(f->path, -1, &none), -EINVAL);
    assert_null(none);
    assert_int_equal(vo_store_open_keeping(f->path, 150, &f->store), 0);
    check_compaction(f->store, 150);
}

/* A lease left by an earlier run gets a fresh TTL, then expires. */
static void test_lease_reopen(void **state)
{
    Fixture *f = *state;
    int64_t lease = 0;
    assert_int_equal(f->store->ops->lease_grant(f->store, 300, &lease), 0);
    assert_int_equal(vo_store_put_lease(f->store, "hosts/a", "1", VO_REV_NEW, lease, NULL), 0);
    int64_t rev = current_rev(f->store);
    f->store = vo_store_close(f->store);
    assert_int_equal(vo_store_open(f->path, &f->store), 0);
    VoStore *s = f->store;
    assert_int_equal(s->ops->lease_keepalive(s, lease), 0);

    VoStoreWatch *w = NULL;
    assert_int_equal(s->ops->watch_open(s, "hosts/", rev, &w), 0);
    VoStoreEvent *ev = NULL;
    size_t n = 0;
    int64_t give_up = vo_now_ms() + 20000;
    while (n == 0 && vo_now_ms() < give_up) {
        vo_store_events_free(ev, n);
        ev = NULL;
        assert_int_equal(s->ops->watch_next(w, 200, &ev, &n), 0);
    }
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].kind, VO_STORE_DELETE);
    assert_string_equal(ev[0].key, "hosts/a");
    vo_store_events_free(ev, n);
    s->ops->watch_close(w);
    assert_int_equal(s->ops->lease_keepalive(s, lease), -ENOENT);
}

int main(void)
{
    SqliteBackend sb = { 0 };
    VoStoreBackend b = { "sqlite", sqlite_open, sqlite_close, &sb };
    int failed = vo_store_contract_run(&b);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_compaction_keeping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_reopen, setup, teardown),
    };
    return failed + cmocka_run_group_tests_name("store (sqlite)", tests, NULL, NULL);
}
