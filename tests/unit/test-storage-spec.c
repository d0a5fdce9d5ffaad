/* test-storage-spec.c: the pool and volume create request parsers
 * (conf/storage-spec.c): what they accept, fill in, and refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "conf/storage-spec.h"
#include "util/util.h"

static json_t *load(const char *text)
{
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(doc);
    return doc;
}

/* The error for a pool body, or NULL when it is accepted. */
static char *pool_error(const char *text)
{
    json_t *doc = load(text);
    VoPoolSpec s;
    char *error = NULL;
    int r = vo_pool_spec_from_json(doc, &s, &error);
    json_decref(doc);
    if (r < 0) {
        assert_int_equal(r, -EINVAL);
        assert_null(s.name);
        assert_non_null(error);
    }
    vo_pool_spec_clear(&s);
    return error;
}

static char *volume_error(const char *text)
{
    json_t *doc = load(text);
    VoVolumeSpec s;
    char *error = NULL;
    int r = vo_volume_spec_from_json(doc, &s, &error);
    json_decref(doc);
    if (r < 0) {
        assert_int_equal(r, -EINVAL);
        assert_null(s.name);
        assert_non_null(error);
    }
    vo_volume_spec_clear(&s);
    return error;
}

#define assert_refused(fn, text, needle)                                                   \
    do {                                                                                   \
        char *e_ = fn(text);                                                               \
        assert_non_null(e_);                                                               \
        if (!strstr(e_, needle))                                                           \
            fail_msg("%s: '%s' does not mention '%s'", text, e_, needle);                  \
        free(e_);                                                                          \
    } while (0)

static void test_pool(void **state)
{
    json_t *doc = load("{\"name\": \"fast\", \"path\": \"/srv/fast\"}");
    VoPoolSpec s;
    char *error = NULL;
    assert_int_equal(vo_pool_spec_from_json(doc, &s, &error), 0);
    assert_string_equal(s.name, "fast");
    assert_string_equal(s.type, "dir");
    assert_string_equal(s.path, "/srv/fast");
    assert_false(s.shared);
    vo_pool_spec_clear(&s);
    json_decref(doc);
    doc = load("{\"name\": \"nfs\", \"path\": \"/mnt/nfs\", \"shared\": true}");
    assert_int_equal(vo_pool_spec_from_json(doc, &s, &error), 0);
    assert_true(s.shared);
    vo_pool_spec_clear(&s);
    json_decref(doc);
    assert_refused(pool_error, "{\"name\": \"a\", \"path\": \"/a\", \"shared\": 1}",
                   "invalid request body");
    assert_refused(pool_error,
                   "{\"name\": \"a\", \"type\": \"backup\", \"path\": \"/a\", \"shared\": true}",
                   "only dir pools");
    assert_null(pool_error("{\"name\": \"b\", \"type\": \"backup\", \"path\": \"/b\"}"));

    assert_refused(pool_error, "{\"path\": \"/srv\"}", "invalid request body");
    assert_refused(pool_error, "{\"name\": \"a\", \"path\": \"/a\", \"size\": 1}", "size");
    assert_refused(pool_error, "{\"name\": \"a\", \"path\": 3}", "invalid request body");
    assert_refused(pool_error, "{\"name\": \"Bad\", \"path\": \"/a\"}", "name: 'Bad'");
    assert_refused(pool_error, "{\"name\": \"a\", \"type\": \"lvm\", \"path\": \"/a\"}", "type");
    assert_refused(pool_error, "{\"name\": \"a\", \"path\": \"a/b\"}", "path: 'a/b'");
    assert_refused(pool_error, "{\"name\": \"a\", \"path\": \"\"}", "path");

    /* No body at all is an empty one. */
    assert_int_equal(vo_pool_spec_from_json(NULL, &s, &error), -EINVAL);
    assert_non_null(strstr(error, "name"));
    free(error);
}

static void test_volume(void **state)
{
    json_t *doc = load("{\"name\": \"data\", \"size_bytes\": 1048576}");
    VoVolumeSpec s;
    char *error = NULL;
    assert_int_equal(vo_volume_spec_from_json(doc, &s, &error), 0);
    assert_string_equal(s.name, "data");
    assert_string_equal(s.format, "qcow2");
    assert_int_equal(s.size_bytes, 1048576);
    assert_null(s.import_path);
    vo_volume_spec_clear(&s);
    json_decref(doc);
    assert_null(volume_error("{\"name\": \"r\", \"size_bytes\": 1, \"format\": \"raw\"}"));
    assert_null(volume_error("{\"name\": \"i\", \"import_path\": \"/tmp/x.vmdk\"}"));
    assert_null(volume_error("{\"name\": \"m\", \"size_bytes\": 70368744177664}"));

    assert_refused(volume_error, "{\"size_bytes\": 1}", "invalid request body");
    assert_refused(volume_error, "{\"name\": \"x\"}", "size_bytes: give the size");
    assert_refused(volume_error, "{\"name\": \"x\", \"size_bytes\": 0}", "size_bytes: give");
    assert_refused(volume_error, "{\"name\": \"x\", \"size_bytes\": -1}", "not both");
    assert_refused(volume_error, "{\"name\": \"x\", \"size_bytes\": 1, \"import_path\": \"/a\"}",
                   "not both");
    assert_refused(volume_error, "{\"name\": \"x\", \"size_bytes\": 70368744177665}",
                   "out of range");
    assert_refused(volume_error, "{\"name\": \"x\", \"import_path\": \"rel\"}", "import_path");
    assert_refused(volume_error, "{\"name\": \"-x\", \"size_bytes\": 1}", "volume name: '-x'");
    assert_refused(volume_error, "{\"name\": \"x\", \"size_bytes\": 1, \"format\": \"vmdk\"}",
                   "format: 'vmdk'");
    assert_refused(volume_error, "{\"name\": \"x\", \"size_bytes\": 1, \"shareable\": true}",
                   "shareable");
    assert_refused(volume_error, "{\"name\": \"x\", \"size_bytes\": \"1\"}",
                   "invalid request body");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_volume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
