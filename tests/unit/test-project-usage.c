/* test-project-usage.c: a project's quota under interleaved changes
 * (state/project-usage.h with state/relations.h, on SQLite): two VMs
 * checked against the same last slot both pass the check, the first to
 * commit wins and the second's transaction fails (-EXDEV), and its check
 * again refuses it naming the quota; a project deleted between a check
 * and its commit fails the commit, and the check again says it is gone;
 * a delete compared on the project as read fails after a create. This is
 * the interleaving two hosts of a cluster make (one host serialises its
 * own creates under its registry lock). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "state/keys.h"
#include "state/project-usage.h"
#include "state/relations.h"
#include "util/util.h"
#include "vireo/errors.h"

#define VM1 "11111111-1111-1111-1111-111111111111"
#define VM2 "22222222-2222-2222-2222-222222222222"

typedef struct {
    char dir[64];
    VoStore *store;
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-project-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    _cleanup_free_ char *path = vo_asprintf("%s/state.db", f->dir);
    *state = f;
    return vo_store_open(path, &f->store) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    vo_store_close(f->store);
    (void)vo_rm_rf(f->dir);
    free(f);
    return 0;
}

static void put_project(VoStore *s, const char *name, const char *doc)
{
    _cleanup_free_ char *key = vo_key_project(name);
    assert_int_equal(vo_store_put(s, key, doc, VO_REV_NEW, NULL), 0);
}

/* The usage documents VM id in project would have ({key: text}). */
static json_t *usage_of(const char *id, const char *project, unsigned vcpus)
{
    VoVmSpec spec = { .id = (char *)id, .name = (char *)id, .vcpus = vcpus,
                      .max_vcpus = vcpus, .memory_mib = 64, .max_memory_mib = 64,
                      .project = (char *)project };
    json_t *want = json_object();
    vo_relations_add_project(want, &spec, "host-a");
    return want;
}

static int commit(VoStore *s, const char *id, json_t *want, const VoProjectGuard *g)
{
    _cleanup_free_ char *key = vo_key_vm(id);
    VoRelationsTxn t = { .vm_key = key, .vm_rev = VO_REV_NEW, .vm_doc = "{}", .want = want,
                         .project_key = g->key, .project_doc = g->doc,
                         .project_rev = g->rev };
    return vo_relations_commit(s, &t, NULL);
}

static const VoQuota none = { 0 };
static const VoQuota one_vm = { .vcpus = 1, .memory_mib = 64, .vms = 1 };

static void test_last_slot_taken_once(void **state)
{
    Fixture *f = *state;
    put_project(f->store, "p", "{\"quotas\":{\"vms\":1}}");
    VoProjectGuard g1 = { 0 }, g2 = { 0 };
    char *error = NULL;
    /* Both checked before either commits: both fit. */
    assert_int_equal(vo_project_check(f->store, "p", VM1, &none, &one_vm, &g1, &error), 0);
    assert_int_equal(vo_project_check(f->store, "p", VM2, &none, &one_vm, &g2, &error), 0);
    json_t *w1 = usage_of(VM1, "p", 1), *w2 = usage_of(VM2, "p", 1);
    assert_int_equal(commit(f->store, VM1, w1, &g1), 0);
    /* The second was checked against a use that is no more. */
    assert_int_equal(commit(f->store, VM2, w2, &g2), -EXDEV);
    vo_project_guard_clear(&g2);
    assert_int_equal(vo_project_check(f->store, "p", VM2, &none, &one_vm, &g2, &error),
                     -VO_EQUOTA);
    assert_string_equal(error, "project 'p': quota vms is 1 (1 in use); this needs 1");
    free(error);
    VoProjectUsage u = { .vms = json_array() };
    assert_int_equal(vo_project_usage_read(f->store, "p", &u), 0);
    assert_int_equal(u.used.vms, 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(u.vms, 0), "vm")), VM1);
    json_decref(u.vms);
    vo_project_guard_clear(&g1);
    vo_project_guard_clear(&g2);
    json_decref(w1);
    json_decref(w2);
}

static void test_project_deleted_between(void **state)
{
    Fixture *f = *state;
    put_project(f->store, "gone", "{\"quotas\":{}}");
    VoProjectGuard g = { 0 };
    char *error = NULL;
    assert_int_equal(vo_project_check(f->store, "gone", VM1, &none, &one_vm, &g, &error), 0);
    /* A delete that read the project (and no usage) before the commit. */
    _cleanup_free_ char *key = vo_key_project("gone");
    assert_int_equal(vo_store_delete(f->store, key, g.rev), 0);
    json_t *w = usage_of(VM1, "gone", 1);
    assert_int_equal(commit(f->store, VM1, w, &g), -EXDEV);
    vo_project_guard_clear(&g);
    assert_int_equal(vo_project_check(f->store, "gone", VM1, &none, &one_vm, &g, &error),
                     -ENOENT);
    assert_non_null(strstr(error, "project 'gone' does not exist"));
    free(error);
    json_decref(w);
}

static void test_delete_after_a_create_fails(void **state)
{
    Fixture *f = *state;
    put_project(f->store, "busy", "{\"quotas\":{}}");
    json_t *doc = NULL;
    int64_t read_rev = 0;
    char *error = NULL;
    /* The delete read the project first, then a create committed. */
    assert_int_equal(vo_project_read(f->store, "busy", &doc, &read_rev, &error), 0);
    json_decref(doc);
    VoProjectGuard g = { 0 };
    assert_int_equal(vo_project_check(f->store, "busy", VM1, &none, &one_vm, &g, &error), 0);
    json_t *w = usage_of(VM1, "busy", 1);
    assert_int_equal(commit(f->store, VM1, w, &g), 0);
    _cleanup_free_ char *key = vo_key_project("busy");
    assert_int_equal(vo_store_delete(f->store, key, read_rev), -ESTALE);
    vo_project_guard_clear(&g);
    json_decref(w);
}

static void test_default_without_document(void **state)
{
    Fixture *f = *state;
    VoProjectGuard g = { 0 };
    char *error = NULL;
    /* "default" has no document until its quotas are set: unlimited, and
     * the commit compares it absent (a quota set meanwhile is seen). */
    assert_int_equal(vo_project_check(f->store, "default", VM1, &none, &one_vm, &g, &error), 0);
    assert_null(g.doc);
    assert_int_equal(g.rev, VO_REV_NEW);
    put_project(f->store, "default", "{\"quotas\":{\"vms\":0}}");
    json_t *w = usage_of(VM1, NULL, 1);
    assert_int_equal(commit(f->store, VM1, w, &g), -EXDEV);
    vo_project_guard_clear(&g);
    assert_int_equal(vo_project_check(f->store, "default", VM1, &none, &one_vm, &g, &error),
                     -VO_EQUOTA);
    free(error);
    json_decref(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_last_slot_taken_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_project_deleted_between, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_after_a_create_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_without_document, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
