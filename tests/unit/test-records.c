/* test-records.c: unit tests for the documents of images and backup records
 * (src/state/records.c): an image document made from image.json names only
 * files inside the image directory; backup documents list in the API's
 * order; the start-up plan adopts, updates, drops and keeps the right ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "state/records.h"
#include "util/util.h"

static json_t *parse(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static void test_image_doc_make_and_parse(void **state)
{
    json_t *meta = parse("{\"disk\": \"disk.qcow2\", \"format\": \"qcow2\", \"kernel\": "
                         "\"vmlinux\", \"cmdline\": \"console=ttyS0\", \"template_of\": \"web\"}");
    json_t *doc = NULL;
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_image_doc_make("img", meta, 1 << 20, 1700000000000LL, &doc, &error), 0);
    json_t *want = parse("{\"name\": \"img\", \"disk\": \"disk.qcow2\", \"format\": \"qcow2\", "
                         "\"size_bytes\": 1048576, \"created_at\": 1700000000000, \"kernel\": "
                         "\"vmlinux\", \"initrd\": null, \"cmdline\": \"console=ttyS0\", "
                         "\"template_of\": \"web\"}");
    assert_true(json_equal(doc, want));
    VoImageDoc v;
    assert_int_equal(vo_image_doc_parse(doc, "img", &v), 0);
    assert_string_equal(v.name, "img");
    assert_string_equal(v.disk, "disk.qcow2");
    assert_string_equal(v.kernel, "vmlinux");
    assert_null(v.initrd);
    assert_int_equal(v.size_bytes, 1 << 20);
    json_decref(want);
    json_decref(doc);
    json_decref(meta);
    /* The format defaults to raw (image.json of the guest build). */
    meta = parse("{\"disk\": \"disk.raw\"}");
    assert_int_equal(vo_image_doc_make("d", meta, 0, 0, &doc, &error), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "format")), "raw");
    assert_true(json_is_null(json_object_get(doc, "kernel")));
    json_decref(doc);
    json_decref(meta);
}

static void test_image_doc_refuses_paths(void **state)
{
    static const char *const bad[] = {
        "{}",
        "{\"disk\": 3}",
        "{\"disk\": \"../x\"}",
        "{\"disk\": \"/etc/shadow\"}",
        "{\"disk\": \"..\"}",
        "{\"disk\": \"\"}",
        "{\"disk\": \"d\", \"kernel\": \"a/b\"}",
        "{\"disk\": \"d\", \"initrd\": \".\"}",
        "{\"disk\": \"d\", \"format\": \"vmdk\"}",
        "[]",
        NULL,
    };
    for (size_t i = 0; bad[i]; i++) {
        json_t *meta = parse(bad[i]), *doc = NULL;
        _cleanup_free_ char *error = NULL;
        assert_int_equal(vo_image_doc_make("x", meta, 0, 0, &doc, &error), -EINVAL);
        assert_non_null(error);
        assert_null(doc);
        json_decref(meta);
    }
    /* A document changed behind vireod's back is refused as well. */
    json_t *doc = parse("{\"name\": \"x\", \"disk\": \"../../etc/shadow\", \"format\": \"raw\", "
                        "\"size_bytes\": 1}");
    VoImageDoc v;
    assert_int_equal(vo_image_doc_parse(doc, "x", &v), -EINVAL);
    json_decref(doc);
    doc = parse("{\"name\": \"x\", \"disk\": \"d\", \"format\": \"raw\", \"size_bytes\": -1}");
    assert_int_equal(vo_image_doc_parse(doc, "x", &v), -EINVAL);
    json_decref(doc);
}

/* The document's name makes the image's directory: it must be a valid name,
 * the one its key says. */
static void test_image_doc_name_is_its_keys(void **state)
{
    static const char *const bad_names[] = { "../../tmp/evil", "a/b", "..", "", "x y", NULL };
    VoImageDoc v;
    for (size_t i = 0; bad_names[i]; i++) {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:i}", "name", bad_names[i], "disk", "d",
                                "format", "raw", "size_bytes", 1);
        assert_int_equal(vo_image_doc_parse(doc, NULL, &v), -EINVAL);
        assert_int_equal(vo_image_doc_parse(doc, bad_names[i], &v), -EINVAL);
        json_decref(doc);
        json_t *meta = parse("{\"disk\": \"d\"}");
        _cleanup_free_ char *error = NULL;
        doc = NULL;
        assert_int_equal(vo_image_doc_make(bad_names[i], meta, 0, 0, &doc, &error), -EINVAL);
        assert_null(doc);
        json_decref(meta);
    }
    /* A valid name, but another image's key. */
    json_t *doc = parse("{\"name\": \"other\", \"disk\": \"d\", \"format\": \"raw\", "
                        "\"size_bytes\": 1}");
    assert_int_equal(vo_image_doc_parse(doc, "mine", &v), -EINVAL);
    assert_int_equal(vo_image_doc_parse(doc, "other", &v), 0);
    assert_int_equal(vo_image_doc_parse(doc, NULL, &v), 0);
    json_decref(doc);
}

static json_t *backup(const char *id, const char *pool, long long created)
{
    json_t *record = json_pack("{s:s, s:I, s:[]}", "id", id, "created_ms", created, "disks");
    json_t *doc = vo_backup_doc_make(record, pool);
    json_decref(record);
    return doc;
}

static void test_backup_doc_make(void **state)
{
    json_t *doc = backup("a-1", "backup", 5);
    assert_string_equal(json_string_value(json_object_get(doc, "pool")), "backup");
    assert_string_equal(json_string_value(json_object_get(doc, "id")), "a-1");
    assert_int_equal(json_integer_value(json_object_get(doc, "created_ms")), 5);
    json_decref(doc);
}

static void test_backup_docs_sort(void **state)
{
    json_t *docs = json_array();
    json_array_append_new(docs, backup("z", "gone", 1));
    json_array_append_new(docs, backup("b", "second", 1));
    json_array_append_new(docs, backup("c", "backup", 30));
    json_array_append_new(docs, backup("b2", "backup", 20));
    json_array_append_new(docs, backup("a2", "backup", 20));
    char *pools[] = { "backup", "second", NULL };
    vo_backup_docs_sort(docs, pools);
    static const char *const want[] = { "a2", "b2", "c", "b", "z" };
    assert_int_equal(json_array_size(docs), ELEMENTSOF(want));
    for (size_t i = 0; i < ELEMENTSOF(want); i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(docs, i), "id")),
                            want[i]);
    json_decref(docs);
}

static const char *action(json_t *plan, const char *id)
{
    return json_string_value(json_object_get(plan, id));
}

static void test_backup_docs_plan(void **state)
{
    json_t *docs = json_object(), *found = json_object();
    json_object_set_new(docs, "same", backup("same", "backup", 1));
    json_object_set_new(found, "same", backup("same", "backup", 1));
    json_object_set_new(docs, "changed", backup("changed", "backup", 1));
    json_t *verified = backup("changed", "backup", 1);
    json_object_set_new(verified, "last_verify", json_pack("{s:b}", "ok", 1));
    json_object_set_new(found, "changed", verified);
    json_object_set_new(found, "new", backup("new", "shared", 2));
    json_object_set_new(docs, "vanished", backup("vanished", "backup", 3));
    json_object_set_new(docs, "offline", backup("offline", "nfs", 4));
    char *unreadable[] = { "nfs", NULL };
    json_t *plan = vo_backup_docs_plan(docs, found, unreadable);
    assert_int_equal(json_object_size(plan), 5);
    assert_string_equal(action(plan, "same"), "keep");
    assert_string_equal(action(plan, "changed"), "update");
    assert_string_equal(action(plan, "new"), "adopt");
    assert_string_equal(action(plan, "vanished"), "drop");
    assert_string_equal(action(plan, "offline"), "keep");
    json_decref(plan);
    /* Nothing unreadable: the offline pool's backups are kept all the
     * same, as it holds no record at all (an empty mount point). */
    plan = vo_backup_docs_plan(docs, found, NULL);
    assert_string_equal(action(plan, "offline"), "keep");
    assert_string_equal(action(plan, "vanished"), "drop");
    json_decref(plan);
    /* Once the pool has records again, one that is not among them is gone. */
    json_object_set_new(found, "back", backup("back", "nfs", 5));
    plan = vo_backup_docs_plan(docs, found, NULL);
    assert_string_equal(action(plan, "offline"), "drop");
    assert_string_equal(action(plan, "back"), "adopt");
    json_decref(plan);
    json_decref(docs);
    json_decref(found);
}

/* A pool whose directory is empty (not mounted yet) or cannot be listed
 * (opendir fails: the caller names it unreadable) keeps every document. */
static void test_backup_docs_plan_keeps_unlisted_pool(void **state)
{
    json_t *docs = json_object(), *found = json_object();
    json_object_set_new(docs, "a", backup("a", "late", 1));
    json_object_set_new(docs, "b", backup("b", "late", 2));
    json_object_set_new(docs, "c", backup("c", "denied", 3));
    json_object_set_new(docs, "d", backup("d", "here", 4));
    json_object_set_new(found, "d", backup("d", "here", 4));
    json_object_set_new(found, "e", backup("e", "denied", 5)); /* another host's, read before */
    char *unreadable[] = { "denied", NULL };
    json_t *plan = vo_backup_docs_plan(docs, found, unreadable);
    assert_string_equal(action(plan, "a"), "keep");
    assert_string_equal(action(plan, "b"), "keep");
    assert_string_equal(action(plan, "c"), "keep");
    assert_string_equal(action(plan, "d"), "keep");
    json_decref(plan);
    json_decref(docs);
    json_decref(found);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_doc_make_and_parse),
        cmocka_unit_test(test_image_doc_refuses_paths),
        cmocka_unit_test(test_image_doc_name_is_its_keys),
        cmocka_unit_test(test_backup_doc_make),
        cmocka_unit_test(test_backup_docs_sort),
        cmocka_unit_test(test_backup_docs_plan),
        cmocka_unit_test(test_backup_docs_plan_keeps_unlisted_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
