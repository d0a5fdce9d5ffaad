/* test-cluster-join-projects.c: a standalone host's project documents
 * copied into the cluster at its join (daemon/cluster-join-projects.c):
 * a document of the copy the cluster already has refuses the join naming
 * it, at once; only a change of the project's own document is retried. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/cluster.h"
#include "state/keys.h"
#include "state/project-objects.h"
#include "state/store.h"
#include "util/util.h"

typedef struct {
    char dir[64];
    VoStore *local, *cluster;
} Fixture;

/* The cluster's store is a local one here; it refuses a transaction larger
 * than etcd takes, as etcd does (-E2BIG). */
static VoStoreOps etcd_sized;
static int (*sqlite_txn)(VoStore *, const VoStoreCompare *, size_t, const VoStoreOp *, size_t,
                         int64_t *, size_t *);

/* Called once after the next transaction that commits (then cleared): a
 * change by another host between two of the copy's transactions. */
static void (*after_commit)(VoStore *s);

static int txn_etcd_sized(VoStore *s, const VoStoreCompare *cmps, size_t n_cmps,
                          const VoStoreOp *ops, size_t n_ops, int64_t *ret_rev, size_t *ret_failed)
{
    if (n_cmps > VO_STORE_ETCD_MAX_TXN_OPS || n_ops > VO_STORE_ETCD_MAX_TXN_OPS)
        return -E2BIG;
    int r = sqlite_txn(s, cmps, n_cmps, ops, n_ops, ret_rev, ret_failed);
    void (*hook)(VoStore *) = after_commit;
    if (r >= 0 && hook) {
        after_commit = NULL;
        hook(s);
    }
    return r;
}

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-join-projects-XXXXXX");
    *state = f;
    if (!mkdtemp(f->dir))
        return -1;
    _cleanup_free_ char *local = vo_asprintf("%s/local.db", f->dir);
    _cleanup_free_ char *cluster = vo_asprintf("%s/cluster.db", f->dir);
    if (vo_store_open(local, &f->local) < 0 || vo_store_open(cluster, &f->cluster) < 0)
        return -1;
    etcd_sized = *f->cluster->ops;
    sqlite_txn = etcd_sized.txn;
    etcd_sized.txn = txn_etcd_sized;
    f->cluster->ops = &etcd_sized;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    if (f->local)
        vo_store_close(f->local);
    if (f->cluster)
        vo_store_close(f->cluster);
    (void)vo_rm_rf(f->dir);
    free(f);
    return 0;
}

/* A project without quotas, in store s. */
static void put_project(VoStore *s, const char *name)
{
    _cleanup_free_ char *key = vo_asprintf(VO_KEY_PROJECTS_PREFIX "%s", name);
    assert_int_equal(vo_store_put(s, key, "{\"quotas\":{}}", VO_REV_NEW, NULL), 0);
}

static int first_key(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)value, (void)rev;
    char **ret = userdata;
    if (!*ret)
        *ret = vo_strdup(key);
    return 0;
}

/* A leftover of the host's in the cluster (a usage document of its volume
 * there already): the copy stops on it and says which, instead of taking
 * it for a concurrent change of the project and retrying twenty times
 * before "keeps changing in the cluster: try the join again", which no
 * retry can make true. Nothing of the project's is written. */
static void copy_names_a_document_already_in_the_cluster(void **state)
{
    Fixture *f = *state;
    put_project(f->local, "p");
    put_project(f->cluster, "p");
    VoProjectObject vol = { .kind = "volume", .scope = "h1", .id = "default/v1" };
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_project_object_set(f->local, &vol, "p", 4096, "h1", &error), 0);
    _cleanup_free_ char *usage_prefix = vo_key_project_usage_prefix("p");
    _cleanup_free_ char *usage_key = NULL;
    assert_int_equal(vo_store_list(f->local, usage_prefix, first_key, &usage_key), 0);
    assert_non_null(usage_key);
    assert_int_equal(vo_store_put(f->cluster, usage_key, "{}", VO_REV_NEW, NULL), 0);

    char **created = NULL;
    int r = vo_cluster_copy_projects(f->local, f->cluster, "h1", &created, &error);
    assert_int_equal(r, -EEXIST);
    assert_non_null(error);
    assert_non_null(strstr(error, usage_key));
    assert_null(created);
    _cleanup_free_ char *object = NULL;
    assert_int_equal(vo_store_get(f->cluster, VO_KEY_OBJECT_PROJECTS_PREFIX "volume/h1/default/v1",
                                  &object, NULL), -ENOENT);
}

/* n volumes of this host's in project (each an object and a usage
 * document), in the local store. */
static void seed_volumes(Fixture *f, const char *project, int n)
{
    for (int i = 0; i < n; i++) {
        _cleanup_free_ char *id = vo_asprintf("default/v%03d", i);
        VoProjectObject vol = { .kind = "volume", .scope = "h1", .id = id };
        _cleanup_free_ char *error = NULL;
        assert_int_equal(vo_project_object_set(f->local, &vol, project, 4096, "h1", &error), 0);
    }
}

static int count_key(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)key, (void)value, (void)rev;
    (*(int *)userdata)++;
    return 0;
}

/* "default" without a document in the cluster is compared absent and not
 * put: its first batch has one compare more than operations, which must
 * not go past what a transaction holds (it did from 128 documents: a
 * host with that many VMs and volumes in "default" could not join). */
static void copy_of_default_fits_each_transaction(void **state)
{
    Fixture *f = *state;
    seed_volumes(f, "default", 70); /* 140 documents */
    char **created = NULL;
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_cluster_copy_projects(f->local, f->cluster, "h1", &created, &error), 0);
    assert_null(created);
    int n = 0;
    assert_int_equal(vo_store_list(f->cluster, VO_KEY_OBJECT_PROJECTS_PREFIX, count_key, &n), 0);
    assert_int_equal(n, 70);
}

/* A project the copy brought into the cluster is named for the undo as
 * soon as its first transaction committed: a later batch that fails must
 * not leave it behind, made by nobody's join. */
static void copy_failing_in_a_later_batch_names_the_project_it_created(void **state)
{
    Fixture *f = *state;
    put_project(f->local, "big");
    seed_volumes(f, "big", 70);
    /* The last document copied (objects come after usage documents). */
    assert_int_equal(vo_store_put(f->cluster, VO_KEY_OBJECT_PROJECTS_PREFIX "volume/h1/default/v069",
                                  "{}", VO_REV_NEW, NULL), 0);
    char **created = NULL;
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_cluster_copy_projects(f->local, f->cluster, "h1", &created, &error),
                     -EEXIST);
    assert_non_null(strstr(error, "default/v069"));
    _cleanup_free_ char *doc = NULL;
    assert_int_equal(vo_store_get(f->cluster, VO_KEY_PROJECTS_PREFIX "big", &doc, NULL), 0);
    assert_non_null(created);
    assert_string_equal(created[0], "big");
    assert_null(created[1]);
    vo_strv_free(created);
}

/* A create in the project on another host, between the copy's batches:
 * it read the project's use without the later batches. */
static void create_in_big(VoStore *s)
{
    assert_int_equal(vo_store_put(s, VO_KEY_PROJECTS_PREFIX "big", "{\"quotas\":{}}",
                                  VO_REV_ANY, NULL), 0);
    assert_int_equal(vo_store_put(s, "cluster/project-usage/big/vm:other", "{}", VO_REV_NEW,
                                  NULL), 0);
}

/* Every batch of a project's copy is compared on the project's document,
 * not only the first: a create committed between two batches (checked on
 * the use the earlier ones left) stops the copy, else the rest would
 * commit past the quota that create checked. */
static void copy_stops_when_the_project_changes_between_batches(void **state)
{
    Fixture *f = *state;
    put_project(f->cluster, "big");
    put_project(f->local, "big");
    seed_volumes(f, "big", 70);
    after_commit = create_in_big;
    char **created = NULL;
    _cleanup_free_ char *error = NULL;
    int r = vo_cluster_copy_projects(f->local, f->cluster, "h1", &created, &error);
    after_commit = NULL;
    assert_int_equal(r, -EAGAIN);
    assert_non_null(strstr(error, "project 'big' changed"));
    _cleanup_free_ char *last = NULL;
    assert_int_equal(vo_store_get(f->cluster, VO_KEY_OBJECT_PROJECTS_PREFIX "volume/h1/default/v069",
                                  &last, NULL), -ENOENT);
    assert_null(created);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(copy_names_a_document_already_in_the_cluster, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(copy_of_default_fits_each_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(copy_failing_in_a_later_batch_names_the_project_it_created,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(copy_stops_when_the_project_changes_between_batches, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
