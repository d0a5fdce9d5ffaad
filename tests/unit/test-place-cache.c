/* test-place-cache.c: the manager's placement cache (cluster/place-cache.c)
 * on a real store (the SQLite backend, with its change log, watches and
 * compaction): the load lists placement's prefixes only; applied events
 * add, change and delete documents, older ones (the replayed part after a
 * list, or behind a newer document) change nothing; its watch thread
 * follows writes (a host's record and member document deleted); a
 * compaction past the watch makes it list again rather than miss writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster/place-cache.h"
#include "state/store.h"
#include "util/util.h"

#define WAIT_MS 10000

typedef struct {
    char dir[64];
    VoStore *store;
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-place-cache-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    _cleanup_free_ char *db = vo_asprintf("%s/state.db", f->dir);
    assert_int_equal(vo_store_open(db, &f->store), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    vo_store_close(f->store);
    vo_rm_rf(f->dir);
    free(f);
    return 0;
}

static int64_t put(VoStore *s, const char *key, const char *value)
{
    int64_t rev = 0;
    assert_int_equal(vo_store_put(s, key, value, VO_REV_ANY, &rev), 0);
    return rev;
}

static int64_t del(VoStore *s, const char *key)
{
    assert_int_equal(vo_store_delete(s, key, VO_REV_ANY), 0);
    int64_t rev = 0;
    assert_int_equal(s->ops->revision(s, &rev), 0);
    return rev;
}

/* The field of a cached document, or NULL. */
static const char *field(VoPlaceCache *c, VoPlaceCachePrefix p, const char *rest,
                         const char *name)
{
    vo_place_cache_lock(c);
    json_t *doc = vo_place_cache_doc(c, p, rest);
    const char *v = json_string_value(json_object_get(doc, name));
    vo_place_cache_unlock(c);
    return v; /* the tests write no document meanwhile */
}

static void test_load_lists_placement_prefixes(void **state)
{
    Fixture *f = *state;
    put(f->store, "cluster/members/h1", "{\"id\":\"h1\",\"name\":\"one\"}");
    put(f->store, "cluster/hosts/h1", "{\"state\":\"online\"}");
    put(f->store, "cluster/groups/web", "{\"name\":\"web\",\"policy\":\"spread\"}");
    put(f->store, "cluster/group-members/web/vm-1", "{\"vm\":\"vm-1\",\"host\":\"h1\"}");
    put(f->store, "cluster/group-members/webx/vm-2", "{\"vm\":\"vm-2\",\"host\":\"h1\"}");
    put(f->store, "cluster/settings/placement", "{\"policy\":\"pack\"}");
    put(f->store, "cluster/names/vms/a", "{\"vm\":\"vm-1\",\"host\":\"h1\"}");
    int64_t last = put(f->store, "vms/vm-1", "{\"name\":\"a\"}");
    VoPlaceCache *c = vo_place_cache_new(f->store);
    vo_place_cache_lock(c);
    assert_false(vo_place_cache_usable(c));
    vo_place_cache_unlock(c);
    int64_t from = 0;
    assert_int_equal(vo_place_cache_load(c, &from), 0);
    assert_int_equal(from, last);
    vo_place_cache_lock(c);
    assert_true(vo_place_cache_usable(c));
    assert_int_equal(vo_place_cache_rev(c), last);
    assert_int_equal(json_object_size(vo_place_cache_docs(c, VO_PLACE_CACHE_P_MEMBERS)), 1);
    assert_int_equal(json_object_size(vo_place_cache_docs(c, VO_PLACE_CACHE_P_RECORDS)), 1);
    assert_int_equal(json_object_size(vo_place_cache_docs(c, VO_PLACE_CACHE_P_GROUP_MEMBERS)),
                     2);
    json_t *web = vo_place_cache_group_members(c, "web");
    assert_int_equal(json_object_size(web), 1); /* not webx's */
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(web, "cluster/group-members/web/vm-1"), "host")),
                        "h1");
    json_decref(web);
    vo_place_cache_unlock(c);
    assert_string_equal(field(c, VO_PLACE_CACHE_P_SETTINGS, "placement", "policy"), "pack");
    assert_string_equal(field(c, VO_PLACE_CACHE_P_GROUPS, "web", "policy"), "spread");
    assert_string_equal(field(c, VO_PLACE_CACHE_P_MEMBERS, "h1", "name"), "one");
    vo_place_cache_free(c);
}

static VoStoreEvent event(int64_t rev, VoStoreOpKind kind, const char *key, const char *value)
{
    return (VoStoreEvent){ .rev = rev, .kind = kind, .key = (char *)key, .value = (char *)value };
}

static void test_apply_events(void **state)
{
    Fixture *f = *state;
    put(f->store, "cluster/members/h1", "{\"id\":\"h1\",\"name\":\"one\"}");
    int64_t r0 = put(f->store, "cluster/hosts/h1", "{\"state\":\"online\"}");
    VoPlaceCache *c = vo_place_cache_new(f->store);
    int64_t from = 0;
    assert_int_equal(vo_place_cache_load(c, &from), 0);
    /* The replayed part (at or before the list) changes nothing. */
    VoStoreEvent old[] = { event(r0, VO_STORE_PUT, "cluster/hosts/h1", "{\"state\":\"old\"}"),
                           event(r0 - 1, VO_STORE_DELETE, "cluster/members/h1", NULL) };
    vo_place_cache_apply(c, old, 2);
    assert_string_equal(field(c, VO_PLACE_CACHE_P_RECORDS, "h1", "state"), "online");
    assert_string_equal(field(c, VO_PLACE_CACHE_P_MEMBERS, "h1", "name"), "one");
    /* New documents and changes; keys placement does not read are skipped. */
    VoStoreEvent fresh[] = {
        event(from + 1, VO_STORE_PUT, "cluster/members/h2", "{\"id\":\"h2\",\"name\":\"two\"}"),
        event(from + 2, VO_STORE_PUT, "cluster/hosts/h2", "{\"state\":\"online\"}"),
        event(from + 3, VO_STORE_PUT, "cluster/hosts/h1", "{\"state\":\"maintenance\"}"),
        event(from + 4, VO_STORE_PUT, "cluster/names/vms/x", "{\"vm\":\"x\"}"),
        event(from + 5, VO_STORE_PUT, "cluster/hosts/h3", "not json"),
    };
    vo_place_cache_apply(c, fresh, 5);
    assert_string_equal(field(c, VO_PLACE_CACHE_P_RECORDS, "h1", "state"), "maintenance");
    assert_string_equal(field(c, VO_PLACE_CACHE_P_MEMBERS, "h2", "name"), "two");
    vo_place_cache_lock(c);
    assert_int_equal(vo_place_cache_rev(c), from + 5);
    assert_int_equal(json_object_size(vo_place_cache_docs(c, VO_PLACE_CACHE_P_RECORDS)), 2);
    vo_place_cache_unlock(c);
    /* An event older than the key's document (a record the cache got
     * newer already) changes nothing; a newer delete removes the host. */
    VoStoreEvent behind[] = { event(from + 2, VO_STORE_PUT, "cluster/hosts/h1",
                                    "{\"state\":\"online\"}") };
    vo_place_cache_apply(c, behind, 1);
    assert_string_equal(field(c, VO_PLACE_CACHE_P_RECORDS, "h1", "state"), "maintenance");
    VoStoreEvent gone[] = { event(from + 6, VO_STORE_DELETE, "cluster/hosts/h2", NULL),
                            event(from + 7, VO_STORE_DELETE, "cluster/members/h2", NULL) };
    vo_place_cache_apply(c, gone, 2);
    assert_null(field(c, VO_PLACE_CACHE_P_MEMBERS, "h2", "name"));
    assert_null(field(c, VO_PLACE_CACHE_P_RECORDS, "h2", "state"));
    vo_place_cache_lock(c);
    assert_int_equal(json_object_size(vo_place_cache_docs(c, VO_PLACE_CACHE_P_MEMBERS)), 1);
    vo_place_cache_unlock(c);
    vo_place_cache_free(c);
}

static void test_watch_follows_writes(void **state)
{
    Fixture *f = *state;
    put(f->store, "cluster/members/h1", "{\"id\":\"h1\",\"name\":\"one\"}");
    put(f->store, "cluster/hosts/h1", "{\"state\":\"online\"}");
    VoPlaceCache *c = vo_place_cache_new(f->store);
    assert_int_equal(vo_place_cache_start(c), 0);
    put(f->store, "cluster/members/h2", "{\"id\":\"h2\",\"name\":\"two\"}");
    int64_t rev = put(f->store, "cluster/hosts/h2", "{\"state\":\"online\"}");
    assert_true(vo_place_cache_wait(c, rev, WAIT_MS));
    assert_string_equal(field(c, VO_PLACE_CACHE_P_RECORDS, "h2", "state"), "online");
    /* A host removed: its record lapses, its member document goes. */
    del(f->store, "cluster/hosts/h1");
    rev = del(f->store, "cluster/members/h1");
    assert_true(vo_place_cache_wait(c, rev, WAIT_MS));
    assert_null(field(c, VO_PLACE_CACHE_P_MEMBERS, "h1", "name"));
    assert_null(field(c, VO_PLACE_CACHE_P_RECORDS, "h1", "state"));
    /* A revision no write of its prefix reached is not waited for long. */
    assert_false(vo_place_cache_wait(c, rev + 100, 50));
    vo_place_cache_free(c); /* stops the thread */
}

static void test_relists_after_compaction(void **state)
{
    Fixture *f = *state;
    put(f->store, "cluster/members/h1", "{\"id\":\"h1\",\"name\":\"one\"}");
    put(f->store, "cluster/hosts/h1", "{\"state\":\"online\"}");
    VoPlaceCache *c = vo_place_cache_new(f->store);
    int64_t from = 0;
    assert_int_equal(vo_place_cache_load(c, &from), 0);
    /* Writes the watch will never see: compacted before it starts. */
    put(f->store, "cluster/hosts/h1", "{\"state\":\"maintenance\"}");
    put(f->store, "cluster/members/h2", "{\"id\":\"h2\",\"name\":\"two\"}");
    int64_t rev = put(f->store, "vms/x", "{}");
    assert_int_equal(f->store->ops->compact(f->store, rev), 0);
    assert_int_equal(vo_place_cache_start(c), 0); /* watches after from: compacted */
    assert_true(vo_place_cache_wait(c, rev, WAIT_MS));
    assert_string_equal(field(c, VO_PLACE_CACHE_P_RECORDS, "h1", "state"), "maintenance");
    assert_string_equal(field(c, VO_PLACE_CACHE_P_MEMBERS, "h2", "name"), "two");
    /* And it follows again from there. */
    rev = put(f->store, "cluster/hosts/h2", "{\"state\":\"online\"}");
    assert_true(vo_place_cache_wait(c, rev, WAIT_MS));
    assert_string_equal(field(c, VO_PLACE_CACHE_P_RECORDS, "h2", "state"), "online");
    vo_place_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_lists_placement_prefixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_follows_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relists_after_compaction, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
