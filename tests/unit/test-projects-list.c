/* test-projects-list.c: GET /v1/projects's reads (daemon/projects.c,
 * state/projects-snapshot.c): every project and its usage as of one store
 * revision, so a volume moved between two projects while the list reads
 * counts once, in one of them; "default" without a document is listed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/project-heal.h"
#include "daemon/projects.h"
#include "state/keys.h"
#include "state/store.h"
#include "util/util.h"

/* The rest of the daemon, which the list never calls. */
int vo_project_heal(VoDaemon *d, const char *project)
{
    (void)d;
    (void)project;
    return 0;
}

char *vo_project_object_where(VoDaemon *d, json_t *one)
{
    (void)d;
    (void)one;
    return vo_strdup("");
}

#define FROM "cluster/project-usage/pa/volume:h1:default:v1"
#define TO "cluster/project-usage/pb/volume:h1:default:v1"
#define VOLUME "{\"kind\":\"volume\",\"object\":\"default/v1\",\"scope\":\"h1\"," \
               "\"host\":\"h1\",\"disk_bytes\":0}"

typedef struct {
    char dir[64];
    VoStore *store;
} Fixture;

static VoStoreOps moving;
static int (*sqlite_list)(VoStore *, const char *, VoStoreListFn, void *, int64_t *);
static bool moved;

typedef struct {
    VoStoreListFn fn;
    void *userdata;
    bool saw;
} Walk;

static int see(const char *key, const char *value, int64_t rev, void *userdata)
{
    Walk *w = userdata;
    w->saw |= !strcmp(key, FROM);
    return w->fn(key, value, rev, w->userdata);
}

/* A list that read the volume's usage document in project pa moves it to
 * pb as it returns (once): a move that commits while GET /v1/projects
 * reads. */
static int list_then_move(VoStore *s, const char *prefix, VoStoreListFn fn, void *userdata,
                          int64_t *ret_rev)
{
    Walk w = { .fn = fn, .userdata = userdata };
    int r = sqlite_list(s, prefix, see, &w, ret_rev);
    if (r >= 0 && w.saw && !moved) {
        moved = true;
        VoStoreOp ops[] = { { .kind = VO_STORE_DELETE, .key = FROM },
                            { .kind = VO_STORE_PUT, .key = TO, .value = VOLUME } };
        assert_int_equal(vo_store_txn(s, NULL, 0, ops, 2, NULL, NULL), 0);
    }
    return r;
}

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-projects-list-XXXXXX");
    *state = f;
    if (!mkdtemp(f->dir))
        return -1;
    _cleanup_free_ char *path = vo_asprintf("%s/store.db", f->dir);
    if (vo_store_open(path, &f->store) < 0)
        return -1;
    moving = *f->store->ops;
    sqlite_list = moving.list;
    moving.list = list_then_move;
    moved = false;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    if (f->store)
        vo_store_close(f->store);
    (void)vo_rm_rf(f->dir);
    free(f);
    return 0;
}

/* GET /v1/projects's document ({"projects": [...]}) as read now. */
static json_t *listed(VoStore *store)
{
    VoDaemon d = { .store = store };
    json_t *doc = NULL;
    char *error = NULL;
    assert_int_equal(vo_projects_list_json(&d, &doc, &error), 0);
    return doc;
}

static void a_volume_moved_while_listing_counts_once(void **state)
{
    Fixture *f = *state;
    const char *quotas = "{\"quotas\":{}}";
    assert_int_equal(vo_store_put(f->store, "cluster/projects/pa", quotas, VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_put(f->store, "cluster/projects/pb", quotas, VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_put(f->store, FROM, VOLUME, VO_REV_NEW, NULL), 0);
    f->store->ops = &moving;
    json_t *doc = listed(f->store);
    assert_true(moved);
    json_t *list = json_object_get(doc, "projects");
    assert_int_equal(json_array_size(list), 3);
    const char *names[] = { "pa", "pb", "default" };
    json_int_t volumes = 0;
    for (size_t i = 0; i < 3; i++) {
        json_t *one = json_array_get(list, i);
        assert_string_equal(json_string_value(json_object_get(one, "name")), names[i]);
        volumes += json_integer_value(json_object_get(json_object_get(one, "counts"),
                                                      "volumes"));
    }
    assert_int_equal(volumes, 1);
    json_decref(doc);
}

/* "default" is listed without a document, with its usage; the usage of a
 * project whose document is gone or damaged lists nothing. */
static void default_without_a_document_and_no_other(void **state)
{
    Fixture *f = *state;
    assert_int_equal(vo_store_put(f->store, "cluster/project-usage/default/volume:h1:default:v2",
                                  VOLUME, VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_put(f->store, "cluster/project-usage/gone/volume:h1:default:v3",
                                  VOLUME, VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_put(f->store, "cluster/projects/torn", "[", VO_REV_NEW, NULL), 0);
    json_t *doc = listed(f->store);
    json_t *list = json_object_get(doc, "projects");
    assert_int_equal(json_array_size(list), 1);
    json_t *one = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(one, "name")), "default");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(one, "counts"),
                                                        "volumes")), 1);
    json_decref(doc);
}

/* A damaged "default" document (not JSON) leaves "default" out, as any
 * other damaged project (vo_project_read refuses it): not listed as
 * "default" without a document, with no quotas. */
static void a_damaged_default_is_left_out(void **state)
{
    Fixture *f = *state;
    const char *quotas = "{\"quotas\":{}}";
    assert_int_equal(vo_store_put(f->store, "cluster/projects/default", "{", VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_put(f->store, "cluster/projects/pa", quotas, VO_REV_NEW, NULL), 0);
    json_t *doc = listed(f->store);
    json_t *list = json_object_get(doc, "projects");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")), "pa");
    json_decref(doc);
}

/* A key of another kind that the one list's prefix ("cluster/project")
 * also reads is neither a project nor its usage. */
static void other_keys_under_the_prefix_count_nowhere(void **state)
{
    Fixture *f = *state;
    const char *quotas = "{\"quotas\":{}}";
    assert_int_equal(vo_store_put(f->store, "cluster/projects/pa", quotas, VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_put(f->store, "cluster/project-other/pa/volume:h1:default:v4",
                                  VOLUME, VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_put(f->store, "cluster/projectsx/pb", quotas, VO_REV_NEW, NULL), 0);
    json_t *doc = listed(f->store);
    json_t *list = json_object_get(doc, "projects");
    assert_int_equal(json_array_size(list), 2); /* pa, default */
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(json_integer_value(json_object_get(
                             json_object_get(json_array_get(list, i), "counts"), "volumes")),
                         0);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_volume_moved_while_listing_counts_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(default_without_a_document_and_no_other, setup, teardown),
        cmocka_unit_test_setup_teardown(a_damaged_default_is_left_out, setup, teardown),
        cmocka_unit_test_setup_teardown(other_keys_under_the_prefix_count_nowhere, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
