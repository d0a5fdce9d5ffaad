/* test-project-objects.c: a volume's or network's project documents
 * (state/project-objects.h) on a real SQLite store: set in a project and
 * counted in its usage beside the VMs', checked against the disk quota
 * (refused over it, nothing written), moved between projects (counted in
 * the new one only), the project's document moved on by every change that
 * raises what it holds (what serialises racing creates and a project's
 * delete), and forgotten; forgotten when gone (left behind by a crash),
 * but never when the object was made again between the read and the look. */
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

/* A save's commit: a relation document put, compared on what its check
 * read (cmps). */
static int save_with(VoStore *s, const VoObjectCompares *c)
{
    VoStoreOp op = { .kind = VO_STORE_PUT, .key = "uses/volumes/nfs/v3/vm1", .value = "{}" };
    return vo_store_txn(s, c->cmps, c->n, &op, 1, NULL, NULL);
}

/* A move to another project and a VM's save that comes to use the object,
 * in every order the two hosts may interleave them: never both commit. */
static void test_move_and_save_never_both_commit(void **state)
{
    Fixture *f = *state;
    VoProjectObject v3 = { .kind = "volume", .scope = "shared", .id = "nfs/v3" };
    char *error = NULL, *project = NULL;
    VoObjectCompares c = { 0 };
    VoObjectMoveMark mark;

    /* The save read (no project: both compared absent), then the move
     * marked: the save does not commit. */
    assert_int_equal(vo_project_object_read(f->store, &v3, &project, &c), 0);
    assert_null(project);
    assert_int_equal(c.n, 2);
    assert_int_equal(vo_project_object_mark(f->store, &v3, "host1", "pb", &mark, &error), 0);
    assert_int_not_equal(save_with(f->store, &c), 0);
    vo_object_compares_clear(&c);
    /* While marked: a save's check is busy, and so is a second move. */
    assert_int_equal(vo_project_object_read(f->store, &v3, &project, &c), -EBUSY);
    VoObjectMoveMark again;
    assert_int_equal(vo_project_object_mark(f->store, &v3, "host2", "pa", &again, &error),
                     -EBUSY);
    assert_non_null(strstr(error, "is being moved to another project"));
    free(error);
    error = NULL;
    vo_object_compares_clear(&c);
    /* The move commits, and its mark goes. */
    assert_int_equal(vo_project_object_set_marked(f->store, &v3, "pb", GIB, "host1", NULL,
                                                  &mark, &error), 0);
    assert_null(mark.key);
    assert_int_equal(vo_project_object_get(f->store, &v3, &project, NULL), 0);
    assert_string_equal(project, "pb");
    free(project);
    project = NULL;

    /* The save read (project pb), then a move committed whole (mark made
     * and gone): the document moved on, the save does not commit. */
    assert_int_equal(vo_project_object_read(f->store, &v3, &project, &c), 0);
    assert_string_equal(project, "pb");
    free(project);
    project = NULL;
    assert_int_equal(vo_project_object_mark(f->store, &v3, "host1", NULL, &mark, &error), 0);
    assert_int_equal(vo_project_object_set_marked(f->store, &v3, NULL, 0, "host1", NULL,
                                                  &mark, &error), 0);
    assert_int_not_equal(save_with(f->store, &c), 0);
    vo_object_compares_clear(&c);
    /* Nothing in between: the save commits. */
    assert_int_equal(vo_project_object_read(f->store, &v3, &project, &c), 0);
    assert_int_equal(save_with(f->store, &c), 0);
    vo_object_compares_clear(&c);

    /* A mark that lapsed before the move committed (here: taken away):
     * the move changes nothing and says so. */
    assert_int_equal(vo_project_object_mark(f->store, &v3, "host1", "pa", &mark, &error), 0);
    assert_int_equal(vo_store_delete(f->store, mark.key, VO_REV_ANY), 0);
    assert_int_equal(vo_project_object_set_marked(f->store, &v3, "pa", GIB, "host1", NULL,
                                                  &mark, &error), -EAGAIN);
    assert_non_null(strstr(error, "was given up; nothing changed"));
    free(error);
    assert_int_equal(vo_project_object_get(f->store, &v3, &project, NULL), 0);
    assert_null(project);
    /* A move that found users takes its mark back. */
    error = NULL;
    assert_int_equal(vo_project_object_mark(f->store, &v3, "host1", "pa", &mark, &error), 0);
    vo_project_object_unmark(f->store, &mark);
    size_t n = 1;
    assert_int_equal(vo_store_count(f->store, VO_KEY_OBJECT_MOVES_PREFIX, &n), 0);
    assert_int_equal(n, 0);
}

/* A grow and a move, and a delete and a move, on two hosts: the grow
 * counts in the project the volume has when it commits, the move keeps
 * the figure the grow left, and a move whose volume went meanwhile makes
 * no records for it. */
static void test_grow_delete_and_move(void **state)
{
    Fixture *f = *state;
    VoProjectObject v5 = { .kind = "volume", .scope = "shared", .id = "nfs/v5" };
    char *error = NULL, *project = NULL;
    int64_t disk = 0;
    VoObjectMoveMark mark;
    /* No project: nothing to grow. */
    assert_int_equal(vo_project_object_grow(f->store, &v5, GIB, "host2", &error), 0);
    assert_int_equal(vo_project_object_set(f->store, &v5, "pa", GIB, "host1", &error), 0);
    /* Marked for pb; a grow commits meanwhile (in pa, the project it has). */
    assert_int_equal(vo_project_object_mark(f->store, &v5, "host1", "pb", &mark, &error), 0);
    assert_int_equal(vo_project_object_grow(f->store, &v5, GIB, "host2", &error), 1);
    assert_int_equal(vo_project_object_set_marked(f->store, &v5, "pb", GIB, "host1", NULL,
                                                  &mark, &error), 0);
    assert_int_equal(vo_project_object_get(f->store, &v5, &project, &disk), 0);
    assert_string_equal(project, "pb");
    assert_int_equal(disk, 2 * GIB); /* the grow's figure, not the move's */
    free(project);
    project = NULL;
    /* A grow after the move counts in pb; one that gives back too. */
    assert_int_equal(vo_project_object_grow(f->store, &v5, GIB, "host2", &error), 1);
    assert_int_equal(vo_project_object_grow(f->store, &v5, -GIB, "host2", &error), 1);
    assert_int_equal(vo_project_object_get(f->store, &v5, &project, &disk), 0);
    assert_string_equal(project, "pb");
    assert_int_equal(disk, 2 * GIB);
    free(project);
    project = NULL;

    /* The volume's own document, read once marked, is deleted (another
     * host's delete, which forgets its records) before the move commits. */
    VoProjectObject v6 = { .kind = "volume", .scope = "shared", .id = "nfs/v6" };
    int64_t rev = 0;
    assert_int_equal(vo_store_put(f->store, "cluster/volumes/nfs/v6", "{}", VO_REV_NEW, &rev), 0);
    assert_int_equal(vo_project_object_mark(f->store, &v6, "host1", "pb", &mark, &error), 0);
    VoStoreCompare exists = { .key = "cluster/volumes/nfs/v6", .expected_rev = rev };
    assert_int_equal(vo_store_delete(f->store, exists.key, rev), 0);
    assert_int_equal(vo_project_object_forget(f->store, &v6), 0);
    assert_int_equal(vo_project_object_set_marked(f->store, &v6, "pb", GIB, "host1", &exists,
                                                  &mark, &error), -ENOENT);
    assert_non_null(strstr(error, "was deleted during its move"));
    free(error);
    error = NULL;
    assert_null(mark.key);
    assert_int_equal(vo_project_object_get(f->store, &v6, &project, NULL), 0);
    assert_null(project);
}

/* The look at the object (project-heal.c's): answers as told, and, when
 * asked to, makes the object again meanwhile (its documents set anew). */
typedef struct {
    VoStore *store;
    int answer;
    bool remade;
} GoneLook;

static int look(const VoProjectObject *o, void *userdata)
{
    GoneLook *l = userdata;
    if (l->remade)
        assert_int_equal(vo_project_object_set(l->store, o, "pb", GIB, "host1", NULL), 0);
    return l->answer;
}

static void test_forget_gone(void **state)
{
    Fixture *f = *state;
    VoProjectObject v = { .kind = "volume", .scope = "host1", .id = "default/g1" };
    VoProjectObject none = { .kind = "network", .scope = "host1", .id = "n0" };
    assert_int_equal(vo_project_object_set(f->store, &v, "pa", GIB, "host1", NULL), 0);
    GoneLook there = { .store = f->store, .answer = 0 };
    GoneLook unknown = { .store = f->store, .answer = -EAGAIN };
    assert_int_equal(vo_project_object_forget_gone(f->store, &v, look, &there), 0);
    assert_int_equal(vo_project_object_forget_gone(f->store, &v, look, &unknown), -EAGAIN);
    assert_int_equal(used_disk(f->store, "pa", NULL), GIB);
    /* Made again between the read and the look: its new documents stay. */
    GoneLook remade = { .store = f->store, .answer = 1, .remade = true };
    assert_int_equal(vo_project_object_forget_gone(f->store, &v, look, &remade), 0);
    assert_int_equal(used_disk(f->store, "pa", NULL), 0);
    assert_int_equal(used_disk(f->store, "pb", NULL), GIB);
    /* Made again just as it was (same project, same figure): its create
     * still moves the documents on, so they stay. */
    assert_int_equal(vo_project_object_forget_gone(f->store, &v, look, &remade), 0);
    assert_int_equal(used_disk(f->store, "pb", NULL), GIB);
    /* Gone: both documents go; an object of no project has none. */
    GoneLook gone = { .store = f->store, .answer = 1 };
    assert_int_equal(vo_project_object_forget_gone(f->store, &v, look, &gone), 1);
    assert_int_equal(used_disk(f->store, "pb", NULL), 0);
    _cleanup_free_ char *project = NULL;
    assert_int_equal(vo_project_object_get(f->store, &v, &project, NULL), 0);
    assert_null(project);
    assert_int_equal(vo_project_object_forget_gone(f->store, &none, look, &gone), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_check_move_forget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_and_save_never_both_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grow_delete_and_move, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_gone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
