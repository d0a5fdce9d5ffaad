/* store-contract.c: the store contract (store.h) as cmocka tests that take
 * the backend from a VoStoreBackend: conditions, global never-reused
 * revisions, transactions, listing, watches (order, resume, concurrent
 * writers, wake, close), leases and compaction. Waits are bounded; no test
 * asserts on timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "store-contract.h"
#include "util/util.h"

static const VoStoreBackend *backend;

/* A wait for something the store must do by itself gives up after this. */
#define WAIT_MS 20000

static int setup(void **state)
{
    VoStore *s = NULL;
    if (backend->open(backend->userdata, &s) < 0)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    if (*state)
        backend->close(backend->userdata, *state);
    return 0;
}

static int64_t current_rev(VoStore *s)
{
    int64_t rev = -1;
    assert_int_equal(s->ops->revision(s, &rev), 0);
    return rev;
}

static void assert_doc(VoStore *s, const char *key, const char *value, int64_t rev)
{
    _cleanup_free_ char *v = NULL;
    int64_t got_rev = 0;
    assert_int_equal(vo_store_get(s, key, &v, &got_rev), 0);
    assert_string_equal(v, value);
    assert_int_equal(got_rev, rev);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- conditions and revisions ---- */

static void test_put_conditions(void **state)
{
    VoStore *s = *state;
    int64_t r1 = 0, r2 = 0, rev = 0;
    assert_int_equal(vo_store_put(s, "vms/a", "{\"n\":1}", VO_REV_NEW, &r1), 0);
    assert_true(r1 > 0);
    assert_doc(s, "vms/a", "{\"n\":1}", r1);
    assert_int_equal(vo_store_put(s, "vms/a", "{\"n\":2}", VO_REV_NEW, &rev), -EEXIST);
    assert_int_equal(vo_store_put(s, "vms/a", "{\"n\":2}", r1, &r2), 0);
    assert_int_equal(r2, r1 + 1);

    /* A writer still holding r1 (or a future revision) loses. */
    rev = 42;
    assert_int_equal(vo_store_put(s, "vms/a", "\"stale\"", r1, &rev), -ESTALE);
    assert_int_equal(vo_store_put(s, "vms/a", "\"stale\"", r2 + 1, &rev), -ESTALE);
    assert_int_equal(rev, 42);
    assert_doc(s, "vms/a", "{\"n\":2}", r2);

    assert_int_equal(vo_store_put(s, "vms/none", "1", r2, &rev), -ENOENT);
    assert_int_equal(vo_store_put(s, "vms/a", "1", -2, &rev), -EINVAL);

    /* VO_REV_ANY creates and overwrites. */
    assert_int_equal(vo_store_put(s, "any", "1", VO_REV_ANY, &rev), 0);
    assert_int_equal(vo_store_put(s, "any", "2", VO_REV_ANY, &rev), 0);
    assert_doc(s, "any", "2", rev);

    char *v = NULL;
    assert_int_equal(vo_store_get(s, "vms/missing", &v, &rev), -ENOENT);
    assert_null(v);
    assert_int_equal(vo_store_get(s, "vms/a", NULL, NULL), 0);
}

static void test_delete_conditions(void **state)
{
    VoStore *s = *state;
    int64_t rev = 0;
    assert_int_equal(vo_store_put(s, "k", "1", VO_REV_NEW, &rev), 0);
    int64_t first = rev;
    assert_int_equal(vo_store_put(s, "k", "2", rev, &rev), 0);
    assert_int_equal(vo_store_delete(s, "k", first), -ESTALE);
    assert_doc(s, "k", "2", rev);
    assert_int_equal(vo_store_delete(s, "k", VO_REV_NEW), -EINVAL);
    assert_int_equal(vo_store_delete(s, "k", rev), 0);
    assert_int_equal(vo_store_get(s, "k", NULL, NULL), -ENOENT);
    assert_int_equal(vo_store_delete(s, "k", rev), -ENOENT);
    assert_int_equal(vo_store_delete(s, "k", VO_REV_ANY), -ENOENT);

    assert_int_equal(vo_store_put(s, "k", "3", VO_REV_NEW, &rev), 0);
    assert_int_equal(vo_store_delete(s, "k", VO_REV_ANY), 0);
    assert_int_equal(vo_store_get(s, "k", NULL, NULL), -ENOENT);
}

/* One counter for the store; a deleted and re-created key never gets a
 * revision back, so a writer holding the old one loses (ABA). */
static void test_revisions_global(void **state)
{
    VoStore *s = *state;
    int64_t base = current_rev(s), ra = 0, rb = 0, ra2 = 0, rev = 0;
    assert_int_equal(vo_store_put(s, "a", "1", VO_REV_NEW, &ra), 0);
    assert_int_equal(ra, base + 1);
    assert_int_equal(vo_store_put(s, "b", "1", VO_REV_NEW, &rb), 0);
    assert_int_equal(rb, base + 2);
    assert_int_equal(current_rev(s), rb);

    assert_int_equal(vo_store_delete(s, "a", ra), 0);
    assert_int_equal(current_rev(s), base + 3);
    assert_int_equal(vo_store_put(s, "a", "1", VO_REV_NEW, &ra2), 0);
    assert_int_equal(ra2, base + 4);
    assert_true(ra2 != ra);
    assert_int_equal(vo_store_put(s, "a", "stale", ra, &rev), -ESTALE);
    assert_int_equal(vo_store_delete(s, "a", ra), -ESTALE);
    assert_doc(s, "a", "1", ra2);

    /* Failed writes do not raise the revision. */
    assert_int_equal(vo_store_put(s, "b", "x", VO_REV_NEW, &rev), -EEXIST);
    assert_int_equal(current_rev(s), ra2);
}

/* ---- transactions ---- */

static void test_txn(void **state)
{
    VoStore *s = *state;
    int64_t ra = 0, rb = 0, rev = 0;
    assert_int_equal(vo_store_put(s, "vms/a", "a1", VO_REV_NEW, &ra), 0);
    assert_int_equal(vo_store_put(s, "volumes/b", "b1", VO_REV_NEW, &rb), 0);

    /* The third compare fails: nothing is written, its index is reported. */
    VoStoreCompare cmps[] = { { "vms/a", ra }, { "volumes/b", rb }, { "volumes/c", 7 } };
    VoStoreOp ops[] = {
        { VO_STORE_PUT, "vms/a", "a2", 0 },
        { VO_STORE_DELETE, "volumes/b", NULL, 0 },
        { VO_STORE_PUT, "volumes/c", "c1", 0 },
    };
    size_t failed = 99;
    assert_int_equal(vo_store_txn(s, cmps, 3, ops, 3, &rev, &failed), -ENOENT);
    assert_int_equal(failed, 2);
    assert_doc(s, "vms/a", "a1", ra);
    assert_doc(s, "volumes/b", "b1", rb);
    assert_int_equal(vo_store_get(s, "volumes/c", NULL, NULL), -ENOENT);
    assert_int_equal(current_rev(s), rb);

    cmps[2].expected_rev = VO_REV_NEW;
    cmps[0].expected_rev = ra + 100;
    assert_int_equal(vo_store_txn(s, cmps, 3, ops, 3, &rev, &failed), -ESTALE);
    assert_int_equal(failed, 0);
    cmps[0].expected_rev = ra;
    cmps[2].key = "vms/a";
    cmps[2].expected_rev = VO_REV_NEW;
    assert_int_equal(vo_store_txn(s, cmps, 3, ops, 3, &rev, &failed), -EEXIST);
    assert_int_equal(failed, 2);
    assert_int_equal(current_rev(s), rb);

    /* All compares hold: every write lands at one new revision. */
    cmps[2].key = "volumes/c";
    assert_int_equal(vo_store_txn(s, cmps, 3, ops, 3, &rev, &failed), 0);
    assert_int_equal(rev, rb + 1);
    assert_doc(s, "vms/a", "a2", rev);
    assert_doc(s, "volumes/c", "c1", rev);
    assert_int_equal(vo_store_get(s, "volumes/b", NULL, NULL), -ENOENT);
    assert_int_equal(current_rev(s), rev);

    /* Compares only, or ops only. */
    int64_t rev2 = 0;
    VoStoreCompare now = { "vms/a", rev };
    assert_int_equal(vo_store_txn(s, &now, 1, NULL, 0, &rev2, NULL), 0);
    assert_int_equal(rev2, rev);
    VoStoreOp put_d = { VO_STORE_PUT, "d", "d1", 0 };
    assert_int_equal(vo_store_txn(s, NULL, 0, &put_d, 1, &rev2, NULL), 0);
    assert_int_equal(rev2, rev + 1);

    /* Bad requests: VO_REV_ANY in a compare, one key written twice. */
    VoStoreCompare any = { "d", VO_REV_ANY };
    assert_int_equal(vo_store_txn(s, &any, 1, &put_d, 1, &rev, NULL), -EINVAL);
    VoStoreOp twice[] = { { VO_STORE_PUT, "e", "1", 0 }, { VO_STORE_DELETE, "e", NULL, 0 } };
    assert_int_equal(vo_store_txn(s, NULL, 0, twice, 2, &rev, NULL), -EINVAL);
    assert_int_equal(vo_store_get(s, "e", NULL, NULL), -ENOENT);
    assert_int_equal(current_rev(s), rev2);
}

/* ---- listing ---- */

typedef struct {
    char *keys[16];
    int64_t revs[16];
    size_t n;
    size_t stop_after;
    VoStore *delete_from;
} ListResult;

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    ListResult *res = userdata;
    if (res->n >= ELEMENTSOF(res->keys) || strcmp(key, value) != 0)
        return -EBADMSG;
    res->revs[res->n] = rev;
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
    VoStore *s = *state;
    /* Stored in scrambled order; "vms-x/", "vmsx/" and "vms" are neighbours
     * that must not match "vms/"; "vms/\xff..." checks the range end. */
    static const char *const keys[] = { "vmsx/a", "vms/c", "vms",     "vms-x/a", "vms/a", "vmr/z",
                                        "vms/b/1", "vms/\xff\xff", "vms0", "vmt" };
    int64_t revs[ELEMENTSOF(keys)];
    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        assert_int_equal(vo_store_put(s, keys[i], keys[i], VO_REV_NEW, &revs[i]), 0);

    ListResult res = { 0 };
    int64_t at = 0;
    assert_int_equal(s->ops->list(s, "vms/", collect, &res, &at), 0);
    assert_int_equal(at, current_rev(s));
    assert_int_equal(res.n, 4);
    assert_string_equal(res.keys[0], "vms/a");
    assert_int_equal(res.revs[0], revs[4]);
    assert_string_equal(res.keys[1], "vms/b/1");
    assert_string_equal(res.keys[2], "vms/c");
    assert_int_equal(res.revs[2], revs[1]);
    assert_string_equal(res.keys[3], "vms/\xff\xff");
    list_result_clear(&res);

    assert_int_equal(vo_store_list(s, "vms/\xff", collect, &res), 0);
    assert_int_equal(res.n, 1);
    list_result_clear(&res);

    assert_int_equal(vo_store_list(s, "nothing/", collect, &res), 0);
    assert_int_equal(res.n, 0);

    assert_int_equal(vo_store_list(s, "", collect, &res), 0);
    assert_int_equal(res.n, ELEMENTSOF(keys));
    assert_string_equal(res.keys[0], "vmr/z");
    assert_string_equal(res.keys[ELEMENTSOF(keys) - 1], "vmt");
    list_result_clear(&res);

    /* A non-zero return stops the walk and is passed through. */
    res.stop_after = 2;
    assert_int_equal(vo_store_list(s, "vms/", collect, &res), 7);
    assert_int_equal(res.n, 2);
    list_result_clear(&res);

    /* Deleting each document from inside its callback. */
    res.delete_from = s;
    assert_int_equal(vo_store_list(s, "vms/", collect, &res), 0);
    assert_int_equal(res.n, 4);
    list_result_clear(&res);
    assert_int_equal(vo_store_list(s, "vms/", collect, &res), 0);
    assert_int_equal(res.n, 0);
    assert_int_equal(vo_store_get(s, "vmsx/a", NULL, NULL), 0);
    assert_int_equal(vo_store_get(s, "vms-x/a", NULL, NULL), 0);
}

/* ---- watches ---- */

typedef struct {
    VoStoreEvent *ev;
    size_t n, cap;
} Events;

static void events_clear(Events *e)
{
    vo_store_events_free(e->ev, e->n);
    *e = (Events){ 0 };
}

/* Reads until e holds want events (bounded); returns watch_next's error. */
/* Reads events until want arrived or none came for WAIT_MS. */
static int read_events(VoStoreWatch *w, const VoStoreOps *ops, Events *e, size_t want)
{
    int64_t give_up = vo_now_ms() + WAIT_MS;
    while (e->n < want && vo_now_ms() < give_up) {
        VoStoreEvent *ev = NULL;
        size_t n = 0;
        int r = ops->watch_next(w, 200, &ev, &n);
        if (r < 0)
            return r;
        /* Bounded by a stall, not a total: writers under load (etcd on a
         * busy machine) may need longer than WAIT_MS for all of it. */
        if (n > 0)
            give_up = vo_now_ms() + WAIT_MS;
        for (size_t i = 0; i < n; i++) {
            if (e->n == e->cap) {
                e->cap = e->cap ? e->cap * 2 : 64;
                e->ev = realloc(e->ev, e->cap * sizeof(*e->ev));
                assert_non_null(e->ev);
            }
            e->ev[e->n++] = ev[i];
        }
        free(ev); /* the strings moved to e */
    }
    return 0;
}

static void assert_event(const VoStoreEvent *ev, int64_t rev, VoStoreOpKind kind, const char *key,
                         const char *value, const char *prev)
{
    assert_int_equal(ev->rev, rev);
    assert_int_equal(ev->kind, kind);
    assert_string_equal(ev->key, key);
    if (value)
        assert_string_equal(ev->value, value);
    else
        assert_null(ev->value);
    if (prev)
        assert_string_equal(ev->prev_value, prev);
    else
        assert_null(ev->prev_value);
}

static void test_watch_from_rev(void **state)
{
    VoStore *s = *state;
    const VoStoreOps *ops = s->ops;
    int64_t r0 = 0, r1 = 0, r2 = 0, r3 = 0, r4 = 0, r5 = 0;
    assert_int_equal(vo_store_put(s, "vms/a", "a0", VO_REV_NEW, &r0), 0);
    assert_int_equal(vo_store_put(s, "vms/a", "a1", r0, &r1), 0);
    assert_int_equal(vo_store_put(s, "vms-x/z", "z", VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_put(s, "vms/b", "b1", VO_REV_NEW, &r2), 0);
    assert_int_equal(vo_store_delete(s, "vms/a", r1), 0);
    r3 = current_rev(s);

    /* A watch from r0 sees every change to vms/ after it, with prev_value. */
    VoStoreWatch *w = NULL;
    assert_int_equal(ops->watch_open(s, "vms/", r0, &w), 0);
    Events e = { 0 };
    assert_int_equal(read_events(w, ops, &e, 3), 0);
    assert_int_equal(e.n, 3);
    assert_event(&e.ev[0], r1, VO_STORE_PUT, "vms/a", "a1", "a0");
    assert_event(&e.ev[1], r2, VO_STORE_PUT, "vms/b", "b1", NULL);
    assert_event(&e.ev[2], r3, VO_STORE_DELETE, "vms/a", NULL, "a1");
    events_clear(&e);

    /* Nothing more for now: a bounded wait returns no events. */
    VoStoreEvent *ev = NULL;
    size_t n = 99;
    assert_int_equal(ops->watch_next(w, 50, &ev, &n), 0);
    assert_int_equal(n, 0);
    vo_store_events_free(ev, n);

    /* Later changes, one transaction of two keys (one revision). */
    VoStoreOp two[] = { { VO_STORE_PUT, "vms/c", "c1", 0 }, { VO_STORE_PUT, "vms/d", "d1", 0 },
                        { VO_STORE_PUT, "other/x", "x", 0 } };
    assert_int_equal(vo_store_txn(s, NULL, 0, two, 3, &r4, NULL), 0);
    assert_int_equal(vo_store_put(s, "vms/c", "c2", r4, &r5), 0);
    assert_int_equal(read_events(w, ops, &e, 3), 0);
    assert_int_equal(e.n, 3);
    assert_event(&e.ev[0], r4, VO_STORE_PUT, "vms/c", "c1", NULL);
    assert_event(&e.ev[1], r4, VO_STORE_PUT, "vms/d", "d1", NULL);
    assert_event(&e.ev[2], r5, VO_STORE_PUT, "vms/c", "c2", "c1");
    events_clear(&e);
    ops->watch_close(w);

    /* A watch from the current revision sees nothing old. */
    assert_int_equal(ops->watch_open(s, "", r5, &w), 0);
    assert_int_equal(ops->watch_next(w, 0, &ev, &n), 0);
    assert_int_equal(n, 0);
    vo_store_events_free(ev, n);
    ops->watch_close(w);
}

/* A client that saw up to some revision and watches again from it misses
 * nothing and sees nothing twice. */
static void test_watch_resume(void **state)
{
    VoStore *s = *state;
    const VoStoreOps *ops = s->ops;
    int64_t start = current_rev(s), rev = VO_REV_NEW;
    for (int i = 0; i < 10; i++) {
        _cleanup_free_ char *v = vo_asprintf("%d", i);
        assert_int_equal(vo_store_put(s, "tasks/t", v, rev, &rev), 0);
    }
    VoStoreWatch *w = NULL;
    assert_int_equal(ops->watch_open(s, "tasks/", start, &w), 0);
    Events e = { 0 };
    assert_int_equal(read_events(w, ops, &e, 4), 0);
    assert_true(e.n >= 4);
    int64_t seen = e.ev[3].rev;
    events_clear(&e);
    ops->watch_close(w);

    for (int i = 10; i < 15; i++) {
        _cleanup_free_ char *v = vo_asprintf("%d", i);
        assert_int_equal(vo_store_put(s, "tasks/t", v, rev, &rev), 0);
    }
    assert_int_equal(ops->watch_open(s, "tasks/", seen, &w), 0);
    assert_int_equal(read_events(w, ops, &e, 11), 0);
    assert_int_equal(e.n, 11);
    for (size_t i = 0; i < e.n; i++) {
        _cleanup_free_ char *v = vo_asprintf("%zu", i + 4);
        assert_int_equal(e.ev[i].rev, seen + 1 + (int64_t)i);
        assert_string_equal(e.ev[i].value, v);
    }
    events_clear(&e);
    ops->watch_close(w);
}

#define N_WRITERS 4
#define N_WRITES 150

typedef struct {
    VoStore *s;
    int id;
    int error;
} Writer;

static void *writer(void *userdata)
{
    Writer *wr = userdata;
    _cleanup_free_ char *key = vo_asprintf("w/%d", wr->id);
    int64_t rev = VO_REV_NEW;
    for (int i = 0; i < N_WRITES && wr->error == 0; i++) {
        _cleanup_free_ char *v = vo_asprintf("%d", i);
        wr->error = vo_store_put(wr->s, key, v, rev, &rev);
        /* A shared key too, written with CAS retries. */
        for (int tries = 0; wr->error == 0; tries++) {
            _cleanup_free_ char *old = NULL;
            int64_t orev = VO_REV_NEW;
            int r = vo_store_get(wr->s, "w-shared", &old, &orev);
            if (r < 0 && r != -ENOENT) {
                wr->error = r;
                break;
            }
            r = vo_store_put(wr->s, "w-shared", v, orev, NULL);
            if (r == 0)
                break;
            if (r != -ESTALE && r != -EEXIST)
                wr->error = r;
        }
    }
    return NULL;
}

/* Writers in several threads, one watcher: every change exactly once, in
 * revision order, each writer's values in its own order. */
static void test_watch_concurrent(void **state)
{
    VoStore *s = *state;
    const VoStoreOps *ops = s->ops;
    VoStoreWatch *w = NULL;
    assert_int_equal(ops->watch_open(s, "w/", current_rev(s), &w), 0);
    pthread_t th[N_WRITERS];
    Writer wr[N_WRITERS];
    for (int i = 0; i < N_WRITERS; i++) {
        wr[i] = (Writer){ s, i, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, writer, &wr[i]), 0);
    }
    Events e = { 0 };
    int r = read_events(w, ops, &e, N_WRITERS * N_WRITES);
    for (int i = 0; i < N_WRITERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(wr[i].error, 0);
    }
    assert_int_equal(r, 0);
    assert_int_equal(e.n, N_WRITERS * N_WRITES);
    int next[N_WRITERS] = { 0 };
    for (size_t i = 0; i < e.n; i++) {
        if (i > 0)
            assert_true(e.ev[i].rev > e.ev[i - 1].rev);
        int id = atoi(e.ev[i].key + 2);
        assert_true(id >= 0 && id < N_WRITERS);
        assert_int_equal(atoi(e.ev[i].value), next[id]);
        if (next[id] == 0)
            assert_null(e.ev[i].prev_value);
        else
            assert_int_equal(atoi(e.ev[i].prev_value), next[id] - 1);
        next[id]++;
    }
    /* Nothing twice: no further events are pending. */
    VoStoreEvent *ev = NULL;
    size_t n = 99;
    assert_int_equal(ops->watch_next(w, 0, &ev, &n), 0);
    assert_int_equal(n, 0);
    vo_store_events_free(ev, n);
    events_clear(&e);
    ops->watch_close(w);
}

typedef struct {
    VoStoreWatch *w;
    const VoStoreOps *ops;
    int result;
    size_t n;
} Blocked;

static void *blocked_next(void *userdata)
{
    Blocked *b = userdata;
    VoStoreEvent *ev = NULL;
    /* Far longer than the test runner's timeout: only a wake (or the store
     * closing) ends this in time. */
    b->result = b->ops->watch_next(b->w, 600000, &ev, &b->n);
    if (b->result == 0)
        vo_store_events_free(ev, b->n);
    return NULL;
}

static void test_watch_wake(void **state)
{
    VoStore *s = *state;
    VoStoreWatch *w = NULL;
    assert_int_equal(s->ops->watch_open(s, "nothing/", current_rev(s), &w), 0);
    Blocked b = { w, s->ops, -1, 99 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, blocked_next, &b), 0);
    sleep_ms(50); /* not needed for correctness: a wake before the wait counts too */
    s->ops->watch_wake(w);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(b.result, 0);
    assert_int_equal(b.n, 0);
    s->ops->watch_close(w);
}

/* Closing the store ends a blocked watch_next with -ECANCELED. */
static void test_watch_close_store(void **state)
{
    VoStore *s = *state;
    VoStoreWatch *w = NULL;
    assert_int_equal(s->ops->watch_open(s, "", current_rev(s), &w), 0);
    Blocked b = { w, s->ops, 0, 0 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, blocked_next, &b), 0);
    sleep_ms(50);
    const VoStoreOps *ops = s->ops;
    backend->close(backend->userdata, s);
    *state = NULL;
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(b.result, -ECANCELED);
    VoStoreEvent *ev = NULL;
    size_t n = 0;
    assert_int_equal(ops->watch_next(w, 0, &ev, &n), -ECANCELED);
    ops->watch_close(w);
}

/* ---- leases ---- */

static void test_lease_expiry(void **state)
{
    VoStore *s = *state;
    const VoStoreOps *ops = s->ops;
    int64_t lease = 0, rev = 0, start = current_rev(s);
    assert_int_equal(ops->lease_grant(s, 0, &lease), -EINVAL);
    assert_int_equal(ops->lease_grant(s, 200, &lease), 0);
    assert_int_equal(vo_store_put_lease(s, "hosts/a", "alive", VO_REV_NEW, lease, &rev), 0);
    assert_int_equal(vo_store_put_lease(s, "hosts/b", "alive", VO_REV_NEW, lease, &rev), 0);
    assert_int_equal(vo_store_put(s, "hosts/c", "static", VO_REV_NEW, NULL), 0);

    /* Nobody keeps it alive: both keys go, as deletes in the change log. */
    VoStoreWatch *w = NULL;
    assert_int_equal(ops->watch_open(s, "hosts/", start, &w), 0);
    Events e = { 0 };
    assert_int_equal(read_events(w, ops, &e, 5), 0);
    assert_int_equal(e.n, 5);
    assert_int_equal(e.ev[3].kind, VO_STORE_DELETE);
    assert_int_equal(e.ev[4].kind, VO_STORE_DELETE);
    assert_string_equal(e.ev[3].key, "hosts/a");
    assert_string_equal(e.ev[4].key, "hosts/b");
    assert_string_equal(e.ev[3].prev_value, "alive");
    assert_int_equal(e.ev[3].rev, e.ev[4].rev); /* one transaction */
    events_clear(&e);
    ops->watch_close(w);

    assert_int_equal(vo_store_get(s, "hosts/a", NULL, NULL), -ENOENT);
    assert_int_equal(vo_store_get(s, "hosts/b", NULL, NULL), -ENOENT);
    assert_int_equal(vo_store_get(s, "hosts/c", NULL, NULL), 0);
    assert_int_equal(ops->lease_keepalive(s, lease), -ENOENT);
    assert_true(vo_store_put_lease(s, "hosts/a", "late", VO_REV_NEW, lease, &rev) < 0);
    assert_int_equal(vo_store_get(s, "hosts/a", NULL, NULL), -ENOENT);
}

/* A put on a lease that is not (or no longer) there writes nothing and says
 * so with -EKEYEXPIRED, not -ENOENT (that means a compare found no key) and
 * without naming a compare. */
static void test_lease_unknown(void **state)
{
    VoStore *s = *state;
    const VoStoreOps *ops = s->ops;
    int64_t lease = 0, rev = 0, before = current_rev(s);
    const int64_t never = 0x7ffffff0;
    assert_int_equal(vo_store_put_lease(s, "hosts/a", "1", VO_REV_NEW, never, &rev),
                     -EKEYEXPIRED);
    VoStoreCompare cmp = { "hosts/b", VO_REV_NEW };
    VoStoreOp put[] = { { VO_STORE_PUT, "hosts/b", "1", 0 },
                        { VO_STORE_PUT, "hosts/c", "1", never } };
    size_t failed = 7;
    assert_int_equal(vo_store_txn(s, &cmp, 1, put, 2, &rev, &failed), -EKEYEXPIRED);
    assert_int_equal(failed, 7);
    assert_int_equal(current_rev(s), before);
    assert_int_equal(vo_store_get(s, "hosts/b", NULL, NULL), -ENOENT);
    /* A revoked lease is gone too. */
    assert_int_equal(ops->lease_grant(s, 600000, &lease), 0);
    assert_int_equal(ops->lease_revoke(s, lease), 0);
    assert_int_equal(vo_store_put_lease(s, "hosts/a", "1", VO_REV_NEW, lease, &rev),
                     -EKEYEXPIRED);
    assert_int_equal(vo_store_get(s, "hosts/a", NULL, NULL), -ENOENT);
}

static void test_lease_keepalive(void **state)
{
    VoStore *s = *state;
    const VoStoreOps *ops = s->ops;
    int64_t lease = 0;
    assert_int_equal(ops->lease_grant(s, 1000, &lease), 0);
    assert_int_equal(vo_store_put_lease(s, "hosts/a", "alive", VO_REV_NEW, lease, NULL), 0);
    /* 3 TTLs of renewals every tenth of the TTL: a keepalive that arrives
     * after the lease expired would answer -ENOENT. */
    for (int i = 0; i < 30; i++) {
        assert_int_equal(ops->lease_keepalive(s, lease), 0);
        sleep_ms(100);
    }
    assert_int_equal(ops->lease_keepalive(s, lease), 0);
    assert_int_equal(vo_store_get(s, "hosts/a", NULL, NULL), 0);
    assert_int_equal(ops->lease_revoke(s, lease), 0);
}

static void test_lease_revoke(void **state)
{
    VoStore *s = *state;
    const VoStoreOps *ops = s->ops;
    int64_t lease = 0, other = 0, rev = 0;
    assert_int_equal(ops->lease_grant(s, 600000, &lease), 0);
    assert_int_equal(ops->lease_grant(s, 600000, &other), 0);
    assert_true(lease != other);
    assert_int_equal(vo_store_put_lease(s, "locks/a", "1", VO_REV_NEW, lease, NULL), 0);
    assert_int_equal(vo_store_put_lease(s, "locks/b", "1", VO_REV_NEW, lease, &rev), 0);
    assert_int_equal(vo_store_put_lease(s, "locks/c", "1", VO_REV_NEW, other, NULL), 0);
    int64_t before = current_rev(s);
    assert_int_equal(ops->lease_revoke(s, lease), 0);
    assert_int_equal(current_rev(s), before + 1);
    assert_int_equal(vo_store_get(s, "locks/a", NULL, NULL), -ENOENT);
    assert_int_equal(vo_store_get(s, "locks/b", NULL, NULL), -ENOENT);
    assert_int_equal(vo_store_get(s, "locks/c", NULL, NULL), 0);
    assert_int_equal(ops->lease_revoke(s, lease), -ENOENT);
    assert_int_equal(ops->lease_keepalive(s, lease), -ENOENT);

    /* A key put again without the lease no longer belongs to it. */
    int64_t rc = 0;
    assert_int_equal(vo_store_get(s, "locks/c", NULL, &rc), 0);
    assert_int_equal(vo_store_put(s, "locks/c", "2", rc, NULL), 0);
    assert_int_equal(ops->lease_revoke(s, other), 0);
    assert_int_equal(vo_store_get(s, "locks/c", NULL, NULL), 0);
}

/* ---- compaction ---- */

static void test_compaction(void **state)
{
    VoStore *s = *state;
    const VoStoreOps *ops = s->ops;
    int64_t start = current_rev(s), rev = VO_REV_NEW, mid = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(vo_store_put(s, "k", "v", rev, &rev), 0);
        if (i == 4)
            mid = rev;
    }
    int64_t compacted = -1;
    assert_int_equal(ops->compacted(s, &compacted), 0);
    assert_true(compacted >= 0 && compacted <= start);
    assert_true(ops->compact(s, rev + 5) < 0); /* the future */
    assert_int_equal(ops->compact(s, mid), 0);
    /* The compaction point: the oldest revision a watch resumes after. */
    assert_int_equal(ops->compacted(s, &compacted), 0);
    assert_int_equal(compacted, mid);

    VoStoreWatch *w = NULL;
    VoStoreEvent *ev = NULL;
    size_t n = 0;
    /* A watch that needs revisions at or below mid learns they are gone. */
    assert_int_equal(ops->watch_open(s, "", start, &w), 0);
    assert_int_equal(ops->watch_next(w, 0, &ev, &n), VO_STORE_ECOMPACTED);
    ops->watch_close(w);
    w = NULL;
    int r = ops->watch_open(s, "", mid - 1, &w);
    if (r == 0) {
        assert_int_equal(ops->watch_next(w, 0, &ev, &n), VO_STORE_ECOMPACTED);
        ops->watch_close(w);
    } else {
        assert_int_equal(r, VO_STORE_ECOMPACTED);
    }

    /* From mid itself every later change is still there. */
    assert_int_equal(ops->watch_open(s, "", mid, &w), 0);
    Events e = { 0 };
    assert_int_equal(read_events(w, ops, &e, 5), 0);
    assert_int_equal(e.n, 5);
    assert_int_equal(e.ev[0].rev, mid + 1);
    assert_int_equal(e.ev[4].rev, rev);
    events_clear(&e);
    ops->watch_close(w);

    /* Documents are untouched; compacting again (or lower) is harmless. */
    assert_doc(s, "k", "v", rev);
    assert_int_equal(ops->compact(s, mid - 1), 0);
    assert_int_equal(ops->compacted(s, &compacted), 0);
    assert_int_equal(compacted, mid);
}

/* A watch of a narrow prefix behind many changes of other keys (more than a
 * backend reads at a time): exactly its own changes, in order, a
 * transaction's together; keys that only share the prefix's letters (no
 * '/' boundary) are not its. */
static void test_watch_narrow_prefix(void **state)
{
    VoStore *s = *state;
    const VoStoreOps *ops = s->ops;
    int64_t start = current_rev(s), ra = 0, rtx = 0, rd = 0;
    assert_int_equal(vo_store_put(s, "w/a", "1", VO_REV_NEW, &ra), 0);
    for (int i = 0; i < 700; i++) {
        static const char *const others[] = { "x/%d", "w-x/%d", "v/%d", "wz%d", "w%d" };
        _cleanup_free_ char *key = vo_asprintf(others[i % 5], i);
        assert_int_equal(vo_store_put(s, key, "o", VO_REV_NEW, NULL), 0);
    }
    VoStoreCompare cmp = { "w/b", VO_REV_NEW };
    VoStoreOp txn[] = { { VO_STORE_PUT, "w/b", "2", 0 }, { VO_STORE_PUT, "w/c", "3", 0 },
                        { VO_STORE_PUT, "x/q", "4", 0 } };
    assert_int_equal(vo_store_txn(s, &cmp, 1, txn, 3, &rtx, NULL), 0);
    for (int i = 0; i < 300; i++) {
        _cleanup_free_ char *key = vo_asprintf("y/%d", i);
        assert_int_equal(vo_store_put(s, key, "o", VO_REV_NEW, NULL), 0);
    }
    assert_int_equal(vo_store_delete(s, "w/a", ra), 0);
    rd = current_rev(s);

    VoStoreWatch *w = NULL;
    assert_int_equal(ops->watch_open(s, "w/", start, &w), 0);
    Events e = { 0 };
    assert_int_equal(read_events(w, ops, &e, 4), 0);
    assert_int_equal(e.n, 4);
    assert_event(&e.ev[0], ra, VO_STORE_PUT, "w/a", "1", NULL);
    assert_event(&e.ev[1], rtx, VO_STORE_PUT, "w/b", "2", NULL);
    assert_event(&e.ev[2], rtx, VO_STORE_PUT, "w/c", "3", NULL);
    assert_event(&e.ev[3], rd, VO_STORE_DELETE, "w/a", NULL, "1");
    events_clear(&e);
    /* Caught up: nothing more, at once. */
    VoStoreEvent *ev = NULL;
    size_t n = 7;
    assert_int_equal(ops->watch_next(w, 0, &ev, &n), 0);
    assert_int_equal(n, 0);
    free(ev);
    ops->watch_close(w);

    /* A prefix that is not a whole segment is a string prefix all the same. */
    assert_int_equal(ops->watch_open(s, "w-", start, &w), 0);
    assert_int_equal(read_events(w, ops, &e, 140), 0);
    assert_int_equal(e.n, 140);
    for (size_t i = 0; i < e.n; i++)
        assert_true(!strncmp(e.ev[i].key, "w-x/", 4));
    events_clear(&e);
    ops->watch_close(w);
}

int vo_store_contract_run(const VoStoreBackend *b)
{
    backend = b;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_conditions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_conditions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revisions_global, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_from_rev, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_wake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_close_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_narrow_prefix, setup, teardown),
    };
    char name[64];
    snprintf(name, sizeof(name), "store contract (%s)", b->name);
    return _cmocka_run_group_tests(name, tests, ELEMENTSOF(tests), NULL, NULL);
}
