/* test-project-objects.c: a volume's or network's project documents
 * (state/project-objects.h) on a real SQLite store: set in a project and
 * counted in its usage beside the VMs', checked against the disk quota
 * (refused over it, nothing written), moved between projects (counted in
 * the new one only), the project's document moved on by every change that
 * raises what it holds (what serialises racing creates and a project's
 * delete), and forgotten. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "state/keys.h"
#include "state/project-objects.h"
#include "state/project-usage.h"
#include "util/util.h"
#include "vireo/errors.h"

#define GIB (1LL << 30)

typedef struct {
    char dir[64];
    VoStore *store;
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-project-objects-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    _cleanup_free_ char *path = vo_asprintf("%s/state.db", f->dir);
    *state = f;
    if (vo_store_open(path, &f->store) < 0)
        return -1;
    /* Project "pa" with a disk quota of 2 GiB, "pb" without limits. */
    if (vo_store_put(f->store, VO_KEY_PROJECTS_PREFIX "pa",
                     "{\"quotas\":{\"disk_bytes\":2147483648}}", VO_REV_NEW, NULL) < 0 ||
        vo_store_put(f->store, VO_KEY_PROJECTS_PREFIX "pb", "{\"quotas\":{}}", VO_REV_NEW,
                     NULL) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    vo_store_close(f->store);
    (void)vo_rm_rf(f->dir);
    free(f);
    return 0;
}

static int64_t used_disk(VoStore *s, const char *project, int64_t *ret_vms)
{
    VoProjectUsage u = { 0 };
    assert_int_equal(vo_project_usage_read(s, project, &u), 0);
    if (ret_vms)
        *ret_vms = u.used.vms;
    return u.used.disk_bytes;
}

static int64_t project_rev(VoStore *s, const char *project)
{
    _cleanup_free_ char *key = vo_key_project(project), *text = NULL;
    int64_t rev = 0;
    assert_int_equal(vo_store_get(s, key, &text, &rev), 0);
    return rev;
}

static void test_set_check_move_forget(void **state)
{
    Fixture *f = *state;
    VoProjectObject v1 = { .kind = "volume", .scope = "host1", .id = "default/v1" };
    VoProjectObject v2 = { .kind = "volume", .scope = "shared", .id = "nfs/v2" };
    VoProjectObject net = { .kind = "network", .scope = "cluster", .id = "lab" };
    char *error = NULL;

    int64_t rev = project_rev(f->store, "pa");
    assert_int_equal(vo_project_object_set(f->store, &v1, "pa", GIB, "host1", &error), 0);
    assert_true(project_rev(f->store, "pa") > rev); /* compared and put again */
    int64_t vms = -1;
    assert_int_equal(used_disk(f->store, "pa", &vms), GIB);
    assert_int_equal(vms, 0); /* a volume is no VM */
    _cleanup_free_ char *project = NULL;
    int64_t disk = 0;
    assert_int_equal(vo_project_object_get(f->store, &v1, &project, &disk), 0);
    assert_string_equal(project, "pa");
    assert_int_equal(disk, GIB);

    /* Over the quota: refused with words, nothing written. */
    assert_int_equal(vo_project_object_set(f->store, &v2, "pa", 2 * GIB, "host1", &error),
                     -VO_EQUOTA);
    assert_non_null(strstr(error, "quota disk_bytes is 2147483648 (1073741824 in use)"));
    free(error);
    error = NULL;
    char *none = NULL;
    assert_int_equal(vo_project_object_get(f->store, &v2, &none, NULL), 0);
    assert_null(none);
    /* Growing the one it has is checked against the others' use only. */
    assert_int_equal(vo_project_object_set(f->store, &v1, "pa", 2 * GIB, "host1", &error), 0);
    assert_int_equal(used_disk(f->store, "pa", NULL), 2 * GIB);
    /* No such project: -ENOENT with words. */
    assert_int_equal(vo_project_object_set(f->store, &net, "nope", 0, "host1", &error),
                     -ENOENT);
    assert_non_null(strstr(error, "project 'nope' does not exist"));
    free(error);
    error = NULL;

    /* A move: counted in the new project only (its figure kept: -1). */
    assert_int_equal(vo_project_object_set(f->store, &v1, "pb", -1, "host1", &error), 0);
    assert_int_equal(used_disk(f->store, "pa", NULL), 0);
    assert_int_equal(used_disk(f->store, "pb", NULL), 2 * GIB);
    assert_int_equal(vo_project_object_set(f->store, &net, "pb", 0, "host1", &error), 0);
    json_t *map = NULL;
    assert_int_equal(vo_project_objects_of(f->store, "network", "cluster", &map), 0);
    assert_string_equal(json_string_value(json_object_get(map, "lab")), "pb");
    json_decref(map);

    /* Out of any project, and forgotten: no documents stay. */
    assert_int_equal(vo_project_object_set(f->store, &net, NULL, 0, "host1", &error), 0);
    assert_int_equal(vo_project_object_forget(f->store, &v1), 0);
    assert_int_equal(vo_project_object_forget(f->store, &v2), 0); /* had none */
    size_t n = 1;
    assert_int_equal(vo_store_count(f->store, VO_KEY_OBJECT_PROJECTS_PREFIX, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(vo_store_count(f->store, VO_KEY_PROJECT_USAGE_PREFIX, &n), 0);
    assert_int_equal(n, 0);
    assert_null(error);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_check_move_forget, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
