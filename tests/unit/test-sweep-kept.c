/* test-sweep-kept.c: the intents the start-up sweep kept while Ceph did
 * not answer (daemon/sweep-kept.c), on a real SQLite store, the work of one
 * intent (sweep.c's vo_sweep_intent, a Ceph call) stubbed to hold until the
 * test lets it go: a create of a name that is not kept never waits on a try
 * under way (it would wait out Ceph's timeout); one of a kept name waits for
 * it and finds the intent finished, tried once, or is refused at once when
 * that try failed; while Ceph does not answer it is refused (-EBUSY, the
 * name still kept) and finishes it once it does. The retry policy by the
 * failure's kind (storage/rbd-failure.h), and a deleted pool's intents
 * (not dropped under a try of one). A shared pool's kept intents as the
 * cluster sees them (daemon/pool-kept.c): listed and refusing a delete on
 * another host, a delete racing a newly kept one losing, a publish the
 * store refused made at the next check, and a delete in a cluster of more
 * hosts than etcd takes compares in one transaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/pool-kept.h"
#include "daemon/sweep-kept.h"
#include "util/util.h"

/* The stub: each call counted, held until released (or hold_ms passed:
 * timed_out), then answers answer. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int calls;
    bool entered, released, timed_out;
    int answer;
} stub = { .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER };

#define HOLD_MS 3000

int vo_sweep_intent(VoDaemon *d, const char *key, const char *text, VoSweepTry *t)
{
    (void)d, (void)key, (void)text;
    pthread_mutex_lock(&stub.lock);
    stub.calls++;
    stub.entered = true;
    pthread_cond_broadcast(&stub.changed);
    struct timespec until = vo_deadline_ms(CLOCK_REALTIME, HOLD_MS);
    while (!stub.released &&
           pthread_cond_timedwait(&stub.changed, &stub.lock, &until) == 0)
        ;
    stub.timed_out = !stub.released;
    int r = stub.answer;
    pthread_mutex_unlock(&stub.lock);
    if (r < 0) { /* as sweep.c says it: where, and why */
        const char *pool = key + strlen("intents/volumes/"); /* POOL/NAME */
        t->pool = vo_asprintf("%.*s", (int)strcspn(pool, "/"), pool);
        t->error = vo_asprintf("stub: %s", r == -EAGAIN ? "Ceph does not answer" : strerror(-r));
    }
    return r;
}

static void stub_reset(int answer, bool released)
{
    pthread_mutex_lock(&stub.lock);
    stub.calls = 0;
    stub.entered = stub.timed_out = false;
    stub.released = released;
    stub.answer = answer;
    pthread_mutex_unlock(&stub.lock);
}

static void stub_release(void)
{
    pthread_mutex_lock(&stub.lock);
    stub.released = true;
    pthread_cond_broadcast(&stub.changed);
    pthread_mutex_unlock(&stub.lock);
}

static void stub_wait_entered(void)
{
    pthread_mutex_lock(&stub.lock);
    struct timespec until = vo_deadline_ms(CLOCK_REALTIME, HOLD_MS);
    while (!stub.entered && pthread_cond_timedwait(&stub.changed, &stub.lock, &until) == 0)
        ;
    bool entered = stub.entered;
    pthread_mutex_unlock(&stub.lock);
    assert_true(entered);
}

typedef struct {
    char dir[64];
    VoDaemon d;
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-sweep-kept-XXXXXX");
    *state = f;
    if (!mkdtemp(f->dir))
        return -1;
    _cleanup_free_ char *path = vo_asprintf("%s/state.db", f->dir);
    return vo_store_open(path, &f->d.store) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    vo_store_close(f->d.store);
    (void)vo_rm_rf(f->dir);
    free(f);
    return 0;
}

/* Intent key kept, its record in the store. */
static void keep(Fixture *f, const char *key)
{
    assert_int_equal(vo_store_put(f->d.store, key, "{\"owner\":\"volumes/x\",\"paths\":[]}",
                                  VO_REV_NEW, NULL), 0);
    vo_sweep_kept_add(&f->d, key, "ceph", -ETIMEDOUT, "Ceph does not answer");
}

static void *retry_thread(void *userdata)
{
    vo_sweep_kept_retry(userdata);
    return NULL;
}

static void other_names_never_wait_on_a_try(void **state)
{
    Fixture *f = *state;
    keep(f, "intents/volumes/ceph/a");
    stub_reset(-EAGAIN, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, retry_thread, &f->d), 0);
    stub_wait_entered(); /* the retry's try of ceph/a is under way (Ceph not answering) */
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_sweep_kept_finish_volume(&f->d, "dir", "b", &error), 0);
    pthread_mutex_lock(&stub.lock);
    bool waited = stub.timed_out; /* the create came back only after the try gave up */
    pthread_mutex_unlock(&stub.lock);
    assert_false(waited);
    stub_release();
    pthread_join(t, NULL);
    assert_null(error);
    /* Still kept: Ceph did not answer. Finished now that it does. */
    stub_reset(1, true);
    assert_int_equal(vo_sweep_kept_finish_volume(&f->d, "ceph", "a", &error), 0);
    assert_int_equal(stub.calls, 1);
    assert_int_equal(vo_store_get(f->d.store, "intents/volumes/ceph/a", NULL, NULL), -ENOENT);
}

static void *release_later(void *userdata)
{
    (void)userdata;
    usleep(200 * 1000);
    stub_release();
    return NULL;
}

static void kept_name_waits_for_the_try_and_finds_it_done(void **state)
{
    Fixture *f = *state;
    keep(f, "intents/volumes/ceph/c");
    stub_reset(1, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, retry_thread, &f->d), 0);
    stub_wait_entered();
    pthread_t releaser; /* lets the try end while the create below waits for it */
    assert_int_equal(pthread_create(&releaser, NULL, release_later, NULL), 0);
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_sweep_kept_finish_volume(&f->d, "ceph", "c", &error), 0);
    pthread_join(releaser, NULL);
    pthread_join(t, NULL);
    assert_int_equal(stub.calls, 1); /* one try: the create did not try again */
    assert_false(stub.timed_out);
    assert_int_equal(vo_store_get(f->d.store, "intents/volumes/ceph/c", NULL, NULL), -ENOENT);
}

static void kept_name_is_refused_at_once_when_the_try_fails(void **state)
{
    Fixture *f = *state;
    keep(f, "intents/volumes/ceph/e");
    stub_reset(-EAGAIN, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, retry_thread, &f->d), 0);
    stub_wait_entered();
    pthread_t releaser;
    assert_int_equal(pthread_create(&releaser, NULL, release_later, NULL), 0);
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_sweep_kept_finish_volume(&f->d, "ceph", "e", &error), -EBUSY);
    pthread_join(releaser, NULL);
    pthread_join(t, NULL);
    assert_int_equal(stub.calls, 1); /* not a second wait on a Ceph that just failed */
    stub_reset(1, true);
    free(TAKE_PTR(error));
    assert_int_equal(vo_sweep_kept_finish_volume(&f->d, "ceph", "e", &error), 0);
}

static void kept_name_is_refused_while_ceph_does_not_answer(void **state)
{
    Fixture *f = *state;
    keep(f, "intents/volumes/ceph/d");
    stub_reset(-EAGAIN, true);
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_sweep_kept_finish_volume(&f->d, "ceph", "d", &error), -EBUSY);
    assert_non_null(strstr(error, "volume 'ceph/d'"));
    assert_non_null(strstr(error, "Ceph does not answer"));
    assert_int_equal(vo_store_get(f->d.store, "intents/volumes/ceph/d", NULL, NULL), 0);
    stub_reset(1, true);
    free(TAKE_PTR(error));
    assert_int_equal(vo_sweep_kept_finish_volume(&f->d, "ceph", "d", &error), 0);
    assert_int_equal(vo_store_get(f->d.store, "intents/volumes/ceph/d", NULL, NULL), -ENOENT);
}

/* The kept intent of pool ceph as GET of the pool shows it (one, or none). */
static json_t *shown(void)
{
    json_t *list = vo_sweep_kept_json("ceph");
    assert_true(json_array_size(list) <= 1);
    json_t *k = json_incref(json_array_get(list, 0));
    json_decref(list);
    return k;
}

/* The retry thread's policy: a Ceph that does not answer is asked at each
 * check; an image still open by a client (-EBUSY) only after a wait; a
 * refused key (-EACCES) not at each check (hourly). A create of the name
 * tries at once whatever the wait, and GET of the pool shows each with
 * its last error. */
static void retries_follow_the_failure(void **state)
{
    Fixture *f = *state;
    keep(f, "intents/volumes/ceph/f");
    stub_reset(-ETIMEDOUT, true);
    vo_sweep_kept_retry(&f->d);
    assert_int_equal(stub.calls, 1); /* unreachable: tried at each check */
    json_t *k = shown();
    assert_string_equal(json_string_value(json_object_get(k, "failure")), "unreachable");
    assert_true(json_is_null(json_object_get(k, "next_try_at")));
    assert_int_equal(json_integer_value(json_object_get(k, "tries")), 2);
    json_decref(k);

    stub_reset(-EBUSY, true);
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_sweep_kept_finish_volume(&f->d, "ceph", "f", &error), -EBUSY);
    assert_non_null(strstr(error, "Device or resource busy"));
    k = shown();
    assert_string_equal(json_string_value(json_object_get(k, "failure")), "busy");
    assert_non_null(strstr(json_string_value(json_object_get(k, "error")), "busy"));
    assert_true(json_is_string(json_object_get(k, "next_try_at")));
    json_decref(k);
    stub_reset(-EBUSY, true);
    vo_sweep_kept_retry(&f->d);
    assert_int_equal(stub.calls, 0); /* busy: not before its wait */

    stub_reset(-EACCES, true);
    free(TAKE_PTR(error));
    assert_int_equal(vo_sweep_kept_finish_volume(&f->d, "ceph", "f", &error), -EBUSY);
    assert_int_equal(stub.calls, 1); /* the create tried, waits or not */
    assert_non_null(strstr(error, "Permission denied"));
    k = shown();
    assert_string_equal(json_string_value(json_object_get(k, "failure")), "permanent");
    json_decref(k);
    for (int i = 0; i < 3; i++)
        vo_sweep_kept_retry(&f->d);
    assert_int_equal(stub.calls, 1); /* permanent: not hammered */
    assert_int_equal(vo_store_get(f->d.store, "intents/volumes/ceph/f", NULL, NULL), 0);

    /* Once the cause is put right, a create of the name finishes it. */
    stub_reset(1, true);
    free(TAKE_PTR(error));
    assert_int_equal(vo_sweep_kept_finish_volume(&f->d, "ceph", "f", &error), 0);
    assert_null(shown());
    assert_int_equal(vo_store_get(f->d.store, "intents/volumes/ceph/f", NULL, NULL), -ENOENT);
}

/* The pool's delete (forced) drops its kept intents, their records too:
 * none is tried again; another pool's stays. */
static void a_deleted_pools_intents_are_forgotten(void **state)
{
    Fixture *f = *state;
    keep(f, "intents/volumes/ceph/g");
    assert_int_equal(vo_store_put(f->d.store, "intents/volumes/other/h", "{}", VO_REV_NEW,
                                  NULL), 0);
    vo_sweep_kept_add(&f->d, "intents/volumes/other/h", "other", -ETIMEDOUT, "Ceph does not answer");
    _cleanup_strv_ char **keys = vo_sweep_kept_of_pool("ceph");
    assert_int_equal(vo_strv_len(keys), 1);
    assert_string_equal(keys[0], "intents/volumes/ceph/g");
    vo_sweep_kept_forget_pool(&f->d, "ceph");
    assert_null(vo_sweep_kept_of_pool("ceph"));
    assert_int_equal(vo_store_get(f->d.store, "intents/volumes/ceph/g", NULL, NULL), -ENOENT);
    stub_reset(-ETIMEDOUT, true);
    vo_sweep_kept_retry(&f->d);
    assert_int_equal(stub.calls, 1); /* other/h's try only */
    vo_sweep_kept_forget_pool(&f->d, "other");
    assert_int_equal(vo_store_get(f->d.store, "intents/volumes/other/h", NULL, NULL), -ENOENT);
}

/* A pool deleted (forced, or by another host) while the retry thread's
 * try of one of its intents is under way: the records go only once that
 * try ends, so a create of the name (the pool made again) cannot pass
 * while the old try may still remove the image of that name (marked the
 * same: the new create's). */
static void a_deleted_pools_intent_waits_for_its_try(void **state)
{
    Fixture *f = *state;
    keep(f, "intents/volumes/ceph/i");
    stub_reset(-ETIMEDOUT, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, retry_thread, &f->d), 0);
    stub_wait_entered(); /* the try of ceph/i is under way */
    pthread_t releaser;
    assert_int_equal(pthread_create(&releaser, NULL, release_later, NULL), 0);
    vo_sweep_kept_forget_pool(&f->d, "ceph");
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_sweep_kept_finish_volume(&f->d, "ceph", "i", &error), 0);
    pthread_mutex_lock(&stub.lock);
    bool try_over = stub.released; /* before the name was let go */
    pthread_mutex_unlock(&stub.lock);
    assert_true(try_over);
    pthread_join(releaser, NULL);
    pthread_join(t, NULL);
    assert_int_equal(stub.calls, 1);
    assert_false(stub.timed_out);
    assert_null(vo_sweep_kept_of_pool("ceph"));
    assert_int_equal(vo_store_get(f->d.store, "intents/volumes/ceph/i", NULL, NULL), -ENOENT);
}

/* ... but not for a try of another pool's intent: a pool's delete (the
 * API's, the cluster watch's) does not wait on a Ceph that has nothing to
 * do with it. */
static void a_deleted_pool_does_not_wait_for_another_pools_try(void **state)
{
    Fixture *f = *state;
    assert_int_equal(vo_store_put(f->d.store, "intents/volumes/other/k", "{}", VO_REV_NEW,
                                  NULL), 0);
    vo_sweep_kept_add(&f->d, "intents/volumes/other/k", "other", -ETIMEDOUT, "Ceph does not answer");
    stub_reset(-ETIMEDOUT, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, retry_thread, &f->d), 0);
    stub_wait_entered(); /* the try of other/k is under way */
    keep(f, "intents/volumes/ceph/l");
    vo_sweep_kept_forget_pool(&f->d, "ceph");
    pthread_mutex_lock(&stub.lock);
    bool waited = stub.released || stub.timed_out;
    pthread_mutex_unlock(&stub.lock);
    assert_false(waited);
    assert_null(vo_sweep_kept_of_pool("ceph"));
    assert_int_equal(vo_store_get(f->d.store, "intents/volumes/ceph/l", NULL, NULL), -ENOENT);
    stub_release();
    pthread_join(t, NULL);
    _cleanup_strv_ char **others = vo_sweep_kept_of_pool("other");
    assert_int_equal(vo_strv_len(others), 1);
    vo_sweep_kept_forget_pool(&f->d, "other");
}

typedef struct {
    VoDaemon *d;
    int64_t rev;
    int r;
} DeleteArgs;

static void *delete_thread(void *userdata)
{
    DeleteArgs *a = userdata;
    a->r = vo_pool_kept_delete_pool(a->d, "cluster/pools/ceph", a->rev, "ceph", false, NULL);
    return NULL;
}

/* Shared pool "ceph" (its revision returned) of a cluster of hosts h1 and h2. */
static int64_t shared_pool_of_two_hosts(Fixture *f)
{
    int64_t pool_rev = 0;
    assert_int_equal(vo_store_put(f->d.store, "cluster/pools/ceph", "{\"name\":\"ceph\"}",
                                  VO_REV_NEW, &pool_rev), 0);
    assert_int_equal(vo_store_put(f->d.store, "cluster/members/h1", "{}", VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_put(f->d.store, "cluster/members/h2", "{}", VO_REV_NEW, NULL), 0);
    return pool_rev;
}

/* A shared pool's kept intents are published for the cluster (pool-kept.h):
 * another host lists them with the host, its delete of the pool is refused
 * naming them, and with force the pool and the document go in one
 * transaction; a publish after that writes nothing (the pool is gone). */
static void kept_intents_are_seen_by_every_host(void **state)
{
    Fixture *f = *state;
    int64_t pool_rev = shared_pool_of_two_hosts(f);
    f->d.host_id = "h1";
    f->d.host_name = "one";
    keep(f, "intents/volumes/ceph/m");
    _cleanup_free_ char *doc = NULL;
    assert_int_equal(vo_store_get(f->d.store, "cluster/pool-kept/ceph/h1", &doc, NULL), 0);
    assert_non_null(strstr(doc, "intents/volumes/ceph/m"));

    VoDaemon other = { .store = f->d.store, .host_id = "h2", .host_name = "two" };
    json_t *list = json_array();
    assert_int_equal(vo_pool_kept_others(&other, "ceph", list), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "host")),
                        "one");
    json_decref(list);
    _cleanup_free_ char *kept_text = NULL;
    assert_int_equal(vo_pool_kept_delete_pool(&other, "cluster/pools/ceph", pool_rev, "ceph",
                                              false, &kept_text), -EBUSY);
    assert_non_null(
        strstr(kept_text, "intents/volumes/ceph/m (Ceph does not answer) on host one"));
    assert_int_equal(vo_store_get(f->d.store, "cluster/pools/ceph", NULL, NULL), 0);

    assert_int_equal(vo_pool_kept_delete_pool(&other, "cluster/pools/ceph", pool_rev, "ceph",
                                              true, NULL), 0);
    assert_int_equal(vo_store_get(f->d.store, "cluster/pools/ceph", NULL, NULL), -ENOENT);
    assert_int_equal(vo_store_get(f->d.store, "cluster/pool-kept/ceph/h1", NULL, NULL), -ENOENT);
    (void)vo_pool_kept_publish(&f->d, "ceph"); /* a change of h1's after the delete */
    assert_int_equal(vo_store_get(f->d.store, "cluster/pool-kept/ceph/h1", NULL, NULL), -ENOENT);
    vo_sweep_kept_forget_pool(&f->d, "ceph");
    f->d.host_id = NULL;
    f->d.host_name = NULL;
}

/* A kept intent published after a delete read the documents (as a host's
 * start-up sweep may do at that moment): the delete's compare of that
 * host's document, absent when read, fails it: one of the two wins. */
static void a_delete_racing_a_newly_kept_intent_loses(void **state)
{
    Fixture *f = *state;
    int64_t pool_rev = shared_pool_of_two_hosts(f);
    /* Held between its read and its transaction (the store's test fault). */
    _cleanup_free_ char *faults = vo_asprintf("%s/faults", f->dir);
    assert_int_equal(mkdir(faults, 0700), 0);
    setenv("VIREO_TEST_STORE_FAULTS", faults, 1);
    _cleanup_free_ char *hold = vo_asprintf("%s/delete@cluster+pools+ceph.hold", faults);
    _cleanup_free_ char *held = vo_asprintf("%s/delete@cluster+pools+ceph.held", faults);
    close(open(hold, O_CREAT | O_WRONLY, 0600));
    VoDaemon other = { .store = f->d.store, .host_id = "h2", .host_name = "two" };
    DeleteArgs a = { .d = &other, .rev = pool_rev };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, delete_thread, &a), 0);
    while (access(held, F_OK) < 0)
        usleep(10000);
    f->d.host_id = "h1";
    f->d.host_name = "one";
    keep(f, "intents/volumes/ceph/n"); /* published: the pool is still there */
    unlink(hold);
    pthread_join(t, NULL);
    unsetenv("VIREO_TEST_STORE_FAULTS");
    assert_int_equal(a.r, -ESTALE);
    assert_int_equal(vo_store_get(f->d.store, "cluster/pools/ceph", NULL, NULL), 0);
    assert_int_equal(vo_store_get(f->d.store, "cluster/pool-kept/ceph/h1", NULL, NULL), 0);
    vo_sweep_kept_forget_pool(&f->d, "ceph");
    f->d.host_id = NULL;
    f->d.host_name = NULL;
}

/* A publish the store refused (etcd slow or without a quorum) is owed: the
 * next check publishes it again, though the intent's failure did not
 * change (a busy image waits 30 s and more between its own tries, and
 * another host's delete meanwhile would find nothing and drop it). */
static void a_failed_publish_is_made_at_the_next_check(void **state)
{
    Fixture *f = *state;
    (void)shared_pool_of_two_hosts(f);
    f->d.host_id = "h1";
    f->d.host_name = "one";
    _cleanup_free_ char *faults = vo_asprintf("%s/faults", f->dir);
    assert_int_equal(mkdir(faults, 0700), 0);
    _cleanup_free_ char *fault = vo_asprintf("%s/put@cluster+pool-kept+ceph+h1", faults);
    FILE *fp = fopen(fault, "w");
    assert_non_null(fp);
    fputs("1 ETIMEDOUT\n", fp);
    fclose(fp);
    setenv("VIREO_TEST_STORE_FAULTS", faults, 1);
    assert_int_equal(vo_store_put(f->d.store, "intents/volumes/ceph/p", "{}", VO_REV_NEW,
                                  NULL), 0);
    /* Busy: not due for its own retry at the check below. */
    vo_sweep_kept_add(&f->d, "intents/volumes/ceph/p", "ceph", -EBUSY, "in use");
    unsetenv("VIREO_TEST_STORE_FAULTS");
    assert_int_equal(vo_store_get(f->d.store, "cluster/pool-kept/ceph/h1", NULL, NULL), -ENOENT);

    vo_sweep_kept_retry(&f->d); /* the rbd pools' thread's check */
    _cleanup_free_ char *doc = NULL;
    assert_int_equal(vo_store_get(f->d.store, "cluster/pool-kept/ceph/h1", &doc, NULL), 0);
    assert_non_null(strstr(doc, "intents/volumes/ceph/p"));
    VoDaemon other = { .store = f->d.store, .host_id = "h2", .host_name = "two" };
    _cleanup_free_ char *kept_text = NULL;
    int64_t pool_rev = 0;
    assert_int_equal(vo_store_get(f->d.store, "cluster/pools/ceph", NULL, &pool_rev), 0);
    assert_int_equal(vo_pool_kept_delete_pool(&other, "cluster/pools/ceph", pool_rev, "ceph",
                                              false, &kept_text), -EBUSY);
    vo_sweep_kept_forget_pool(&f->d, "ceph");
    f->d.host_id = NULL;
    f->d.host_name = NULL;
}

/* The SQLite store with etcd's limit of compares and ops per transaction
 * (state/store.h: VO_STORE_ETCD_MAX_TXN_OPS), as the cluster's store has. */
static const VoStoreOps *unlimited_ops;

static int etcd_limited_txn(VoStore *s, const VoStoreCompare *cmps, size_t n_cmps,
                            const VoStoreOp *ops, size_t n_ops, int64_t *ret_rev,
                            size_t *ret_failed)
{
    if (n_cmps > VO_STORE_ETCD_MAX_TXN_OPS || n_ops > VO_STORE_ETCD_MAX_TXN_OPS)
        return -E2BIG;
    return unlimited_ops->txn(s, cmps, n_cmps, ops, n_ops, ret_rev, ret_failed);
}

/* A shared pool's delete in a cluster of more hosts than etcd takes
 * compares in one transaction: it works (before, it compared each
 * member's document absent: refused, E2BIG, from 128 hosts on). */
static void a_delete_in_a_cluster_of_many_hosts(void **state)
{
    Fixture *f = *state;
    int64_t pool_rev = shared_pool_of_two_hosts(f);
    for (int i = 3; i <= 200; i++) {
        _cleanup_free_ char *member = vo_asprintf("cluster/members/h%d", i);
        assert_int_equal(vo_store_put(f->d.store, member, "{}", VO_REV_NEW, NULL), 0);
    }
    unlimited_ops = f->d.store->ops;
    VoStoreOps limited = *unlimited_ops;
    limited.txn = etcd_limited_txn;
    f->d.store->ops = &limited;
    VoDaemon other = { .store = f->d.store, .host_id = "h2", .host_name = "two" };
    _cleanup_free_ char *kept_text = NULL;
    int r = vo_pool_kept_delete_pool(&other, "cluster/pools/ceph", pool_rev, "ceph", false,
                                     &kept_text);
    f->d.store->ops = unlimited_ops;
    assert_int_equal(r, 0);
    assert_int_equal(vo_store_get(f->d.store, "cluster/pools/ceph", NULL, NULL), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(other_names_never_wait_on_a_try, setup, teardown),
        cmocka_unit_test_setup_teardown(kept_intents_are_seen_by_every_host, setup, teardown),
        cmocka_unit_test_setup_teardown(a_delete_racing_a_newly_kept_intent_loses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_failed_publish_is_made_at_the_next_check, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_delete_in_a_cluster_of_many_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(kept_name_waits_for_the_try_and_finds_it_done, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(kept_name_is_refused_at_once_when_the_try_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(kept_name_is_refused_while_ceph_does_not_answer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(retries_follow_the_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(a_deleted_pools_intents_are_forgotten, setup, teardown),
        cmocka_unit_test_setup_teardown(a_deleted_pools_intent_waits_for_its_try, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_deleted_pool_does_not_wait_for_another_pools_try,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
