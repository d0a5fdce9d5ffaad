/* test-cluster-copy.c: moving a host's documents between stores for cluster
 * init, join and leave (src/daemon/cluster-copy.c), on two SQLite stores
 * (the copy goes through the store interface only): what is copied, what is
 * left out, VM name records, batches beyond one transaction, a collision
 * that writes nothing, a host's own pool named like a shared pool made
 * since the admission (or being made), and deleting a namespace; a removed
 * host's records forgotten; a joiner's MACs entered in the MAC index
 * (after its VMs' name records). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/cluster.h"
#include "util/util.h"

typedef struct {
    char dir[64];
    VoStore *from, *to;
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-copy-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    _cleanup_free_ char *a = vo_asprintf("%s/a.db", f->dir), *b = vo_asprintf("%s/b.db", f->dir);
    assert_int_equal(vo_store_open(a, &f->from), 0);
    assert_int_equal(vo_store_open(b, &f->to), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    vo_store_close(f->from);
    vo_store_close(f->to);
    vo_rm_rf(f->dir);
    free(f);
    return 0;
}

static void put(VoStore *s, const char *key, const char *value)
{
    assert_int_equal(vo_store_put(s, key, value, VO_REV_NEW, NULL), 0);
}

static char *get(VoStore *s, const char *key)
{
    char *v = NULL;
    return vo_store_get(s, key, &v, NULL) == 0 ? v : NULL;
}

static int count(const char *key, const char *value, int64_t rev, void *userdata)
{
    (*(size_t *)userdata)++;
    return 0;
}

static size_t n_keys(VoStore *s, const char *prefix)
{
    size_t n = 0;
    assert_int_equal(vo_store_list(s, prefix, count, &n), 0);
    return n;
}

static void seed(VoStore *s)
{
    put(s, "vms/a1", "{\"spec\":{\"name\":\"web\"},\"status\":{\"state\":\"running\"}}");
    put(s, "snapshots/a1/s1", "{\"name\":\"s1\"}");
    put(s, "pools/default", "{\"name\":\"default\"}");
    put(s, "cluster/members/H", "{\"id\":\"H\"}");
    put(s, "cluster/hosts/H", "{\"id\":\"H\"}");
    put(s, "cluster/manager", "{\"id\":\"H\"}");
}

static void test_copy_in_with_cluster(void **state)
{
    Fixture *f = *state;
    seed(f->from);
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_cluster_copy_in(f->from, f->to, "H", true, &error), 0);
    _cleanup_free_ char *vm = get(f->to, "vms/a1"), *snap = get(f->to, "snapshots/a1/s1");
    _cleanup_free_ char *pool = get(f->to, "pools/default"), *member = get(f->to, "cluster/members/H");
    assert_non_null(vm);
    assert_non_null(snap);
    assert_non_null(pool);
    assert_non_null(member);
    /* Lease-bound keys of the hosts service are not copied. */
    assert_null(get(f->to, "cluster/hosts/H"));
    assert_null(get(f->to, "cluster/manager"));
    /* The VM's name record. */
    _cleanup_free_ char *rec = get(f->to, "cluster/names/vms/web");
    assert_non_null(rec);
    assert_string_equal(rec, "{\"host\":\"H\",\"vm\":\"a1\"}");
}

static void test_copy_in_without_cluster(void **state)
{
    Fixture *f = *state;
    seed(f->from);
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_cluster_copy_in(f->from, f->to, "J", false, &error), 0);
    assert_null(get(f->to, "cluster/members/H"));
    assert_int_equal(n_keys(f->to, "cluster/"), 1); /* the name record only */
    _cleanup_free_ char *rec = get(f->to, "cluster/names/vms/web");
    assert_string_equal(rec, "{\"host\":\"J\",\"vm\":\"a1\"}");
}

static void test_collision_writes_nothing(void **state)
{
    Fixture *f = *state;
    seed(f->from);
    put(f->to, "pools/default", "{\"name\":\"theirs\"}");
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_cluster_copy_in(f->from, f->to, "H", true, &error), -EEXIST);
    assert_non_null(strstr(error, "pools/default"));
    assert_null(get(f->to, "vms/a1"));
    _cleanup_free_ char *pool = get(f->to, "pools/default");
    assert_string_equal(pool, "{\"name\":\"theirs\"}");
}

/* A join enters its VMs' MACs in the MAC index (held form, lower case, one
 * MAC once: two VMs that had it before the index give it to the first);
 * one another VM holds fails the copy, naming the MAC. */
static void test_join_enters_macs(void **state)
{
    Fixture *f = *state;
    put(f->from, "vms/a1", "{\"spec\":{\"name\":\"web\",\"nics\":[{\"mac\":"
                           "\"52:54:00:AA:00:01\"},{\"mac\":\"52:54:00:aa:00:02\"}]}}");
    put(f->from, "vms/a2", "{\"spec\":{\"name\":\"db\",\"nics\":[{\"mac\":"
                           "\"52:54:00:aa:00:02\"},{\"mac\":\"bad\"}]}}");
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_cluster_copy_in(f->from, f->to, "J", false, &error), 0);
    assert_int_equal(n_keys(f->to, "cluster/claims/macs/"), 2);
    _cleanup_free_ char *one = get(f->to, "cluster/claims/macs/52:54:00:aa:00:01");
    _cleanup_free_ char *two = get(f->to, "cluster/claims/macs/52:54:00:aa:00:02");
    assert_string_equal(one, "{\"vm\":\"web\",\"vm_id\":\"a1\"}");
    assert_string_equal(two, "{\"vm\":\"web\",\"vm_id\":\"a1\"}");
    /* cluster init copies its own index as it is: no entries made. */
    Fixture *g = NULL;
    setup((void **)&g);
    put(g->from, "vms/a1", "{\"spec\":{\"name\":\"web\",\"nics\":[{\"mac\":"
                           "\"52:54:00:aa:00:01\"}]}}");
    assert_int_equal(vo_cluster_copy_in(g->from, g->to, "H", true, &error), 0);
    assert_int_equal(n_keys(g->to, "cluster/claims/macs/"), 0);
    teardown((void **)&g);
    /* Taken by another VM of the cluster: nothing copied. */
    Fixture *h = NULL;
    setup((void **)&h);
    put(h->from, "vms/a1", "{\"spec\":{\"name\":\"web\",\"nics\":[{\"mac\":"
                           "\"52:54:00:aa:00:01\"}]}}");
    put(h->to, "cluster/claims/macs/52:54:00:aa:00:01", "{\"vm\":\"other\",\"vm_id\":\"o\"}");
    free(TAKE_PTR(error));
    assert_int_equal(vo_cluster_copy_in(h->from, h->to, "J", false, &error), -EEXIST);
    assert_non_null(strstr(error, "MAC 52:54:00:aa:00:01 of a VM of this host"));
    assert_null(get(h->to, "vms/a1"));
    teardown((void **)&h);
}

static int64_t rev_of(VoStore *s, const char *key)
{
    _cleanup_free_ char *v = NULL;
    int64_t rev = 0;
    assert_int_equal(vo_store_get(s, key, &v, &rev), 0);
    return rev;
}

/* A join copied in several transactions: its VMs' name records are
 * written before (or with) their MAC entries, never after. The joiner is
 * no member yet, so between two transactions an entry without its VM's
 * name record would be a ghost to the manager's sweep (mac-ghosts.c),
 * deleted or taken over. Each place of the batch boundary is tried. */
static void test_join_names_before_macs(void **state)
{
    (void)state;
    for (int fill = VO_STORE_ETCD_MAX_TXN_OPS - 6; fill <= VO_STORE_ETCD_MAX_TXN_OPS; fill++) {
        Fixture *f = NULL;
        setup((void **)&f);
        for (int i = 0; i < fill; i++) {
            _cleanup_free_ char *key = vo_asprintf("operations/op%03d", i);
            put(f->from, key, "{}");
        }
        put(f->from, "vms/a1", "{\"spec\":{\"name\":\"web\",\"nics\":[{\"mac\":"
                               "\"52:54:00:aa:00:01\"},{\"mac\":\"52:54:00:aa:00:02\"}]}}");
        _cleanup_free_ char *error = NULL;
        assert_int_equal(vo_cluster_copy_in(f->from, f->to, "J", false, &error), 0);
        int64_t name = rev_of(f->to, "cluster/names/vms/web");
        assert_true(rev_of(f->to, "cluster/claims/macs/52:54:00:aa:00:01") >= name);
        assert_true(rev_of(f->to, "cluster/claims/macs/52:54:00:aa:00:02") >= name);
        teardown((void **)&f);
    }
}

static void test_batches_and_copy_out(void **state)
{
    Fixture *f = *state;
    for (int i = 0; i < 300; i++) {
        _cleanup_free_ char *key = vo_asprintf("operations/op%03d", i);
        put(f->from, key, "{}");
    }
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_cluster_copy_in(f->from, f->to, "H", false, &error), 0);
    assert_int_equal(n_keys(f->to, "operations/"), 300);
    /* And back into an empty store. */
    teardown(state);
    setup(state);
    f = *state;
    for (int i = 0; i < 200; i++) {
        _cleanup_free_ char *key = vo_asprintf("h/x/vms/v%03d", i);
        put(f->from, key, "{}");
    }
    put(f->from, "h/y/vms/other", "{}");
    assert_int_equal(vo_cluster_copy_out(f->from, f->to, &error), 0);
    assert_int_equal(n_keys(f->to, ""), 201);
    /* A namespace deleted, the rest kept. */
    assert_int_equal(vo_cluster_delete_prefix(f->from, "h/x/"), 0);
    assert_int_equal(n_keys(f->from, "h/x/"), 0);
    assert_int_equal(n_keys(f->from, "h/y/"), 1);
}

/* A shared pool of the cluster made (or claimed) after the admission
 * checked the names: the joiner's own pool of that name is not copied,
 * and the copy says why (pool-names.h). */
static void test_own_pool_named_like_shared(void **state)
{
    Fixture *f = *state;
    put(f->from, "pools/default", "{\"name\":\"default\"}");
    put(f->from, "pools/nfs", "{\"name\":\"nfs\"}");
    put(f->to, "cluster/pools/nfs", "{\"name\":\"nfs\",\"shared\":true}");
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_cluster_copy_in(f->from, f->to, "H", false, &error), -EEXIST);
    assert_non_null(strstr(error, "pool name 'nfs' is taken: the cluster has a shared pool"));
    assert_null(get(f->to, "pools/nfs"));
    assert_null(get(f->to, "pools/default")); /* nothing written */

    Fixture *pg = NULL; /* a second pair of stores */
    setup((void **)&pg);
    put(pg->from, "pools/nfs", "{\"name\":\"nfs\"}");
    put(pg->to, "cluster/claims/pools/nfs", "{\"host\":\"O\"}");
    free(error);
    error = NULL;
    assert_int_equal(vo_cluster_copy_in(pg->from, pg->to, "H", false, &error), -EEXIST);
    assert_non_null(strstr(error, "(being created now)"));
    assert_null(get(pg->to, "pools/nfs"));
    teardown((void **)&pg);
}

/* Each own pool is compared in the transaction that writes it: a host of
 * many pools joins (before: refused beyond 31, every compare in the first
 * transaction), and a pool past the first transaction is compared too
 * (before: compared in the first, written later, unguarded meanwhile). */
static void test_pool_guards_per_batch(void **state)
{
    Fixture *f = *state;
    for (int i = 0; i < 200; i++) {
        _cleanup_free_ char *key = vo_asprintf("pools/p%03d", i);
        put(f->from, key, "{}");
    }
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_cluster_copy_in(f->from, f->to, "H", false, &error), 0);
    assert_int_equal(n_keys(f->to, "pools/"), 200);
    teardown(state);
    setup(state);
    f = *state;
    for (int i = 0; i < 200; i++) {
        _cleanup_free_ char *key = vo_asprintf("images/i%03d", i);
        put(f->from, key, "{}");
    }
    put(f->from, "pools/nfs", "{\"name\":\"nfs\"}");
    put(f->to, "cluster/claims/pools/nfs", "{\"host\":\"O\"}");
    assert_int_equal(vo_cluster_copy_in(f->from, f->to, "H", false, &error), -EEXIST);
    assert_non_null(strstr(error, "pool name 'nfs' is taken"));
    assert_null(get(f->to, "pools/nfs"));
}

/* A host removed from the cluster: the records naming it go, among them
 * its kept rbd intents of a shared pool (else the pool's delete stays
 * refused, naming a host that is gone); another host's stay. */
static void test_forget_records_of_a_removed_host(void **state)
{
    Fixture *f = *state;
    put(f->to, "cluster/pool-kept/ceph/h3", "{\"host\":\"h3\",\"intents\":[]}");
    put(f->to, "cluster/pool-kept/ceph/h1", "{\"host\":\"h1\",\"intents\":[]}");
    put(f->to, "cluster/names/vms/web", "{\"host\":\"h3\"}");
    assert_int_equal(vo_cluster_forget_records(f->to, "h3"), 0);
    assert_null(get(f->to, "cluster/names/vms/web"));
    assert_null(get(f->to, "cluster/pool-kept/ceph/h3"));
    char *kept = get(f->to, "cluster/pool-kept/ceph/h1");
    assert_non_null(kept);
    free(kept);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_in_with_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_in_without_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collision_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_enters_macs, setup, teardown),
        cmocka_unit_test(test_join_names_before_macs),
        cmocka_unit_test_setup_teardown(test_batches_and_copy_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_pool_named_like_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_guards_per_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_records_of_a_removed_host, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
