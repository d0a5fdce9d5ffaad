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

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-join-projects-XXXXXX");
    *state = f;
    if (!mkdtemp(f->dir))
        return -1;
    _cleanup_free_ char *local = vo_asprintf("%s/local.db", f->dir);
    _cleanup_free_ char *cluster = vo_asprintf("%s/cluster.db", f->dir);
    return vo_store_open(local, &f->local) < 0 || vo_store_open(cluster, &f->cluster) < 0 ? -1
                                                                                          : 0;
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
    assert_int_equal(vo_store_put(f->local, VO_KEY_PROJECTS_PREFIX "p", "{\"quotas\":{}}",
                                  VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_put(f->cluster, VO_KEY_PROJECTS_PREFIX "p", "{\"quotas\":{}}",
                                  VO_REV_NEW, NULL), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(copy_names_a_document_already_in_the_cluster, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
