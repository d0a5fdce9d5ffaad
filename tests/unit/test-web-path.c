/* test-web-path.c: the web UI's paths (util/web-path.c): which requests are
 * the UI's, the file each names, every way a path could leave the UI's
 * directory refused, and Content-Types. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/web-path.h"

static void test_ui_paths(void **state)
{
    assert_true(vo_web_is_ui_path("/"));
    assert_true(vo_web_is_ui_path("/?x=1"));
    assert_true(vo_web_is_ui_path("/ui"));
    assert_true(vo_web_is_ui_path("/ui/assets/a.js"));
    assert_false(vo_web_is_ui_path("/v1/vms"));
    assert_false(vo_web_is_ui_path("/uix"));
    assert_false(vo_web_is_ui_path("/metrics"));
}

static void expect_file(const char *uri, const char *want)
{
    char *rel = NULL;
    assert_int_equal(vo_web_file_of(uri, &rel), 0);
    assert_string_equal(rel, want);
    free(rel);
}

static void test_files(void **state)
{
    expect_file("/ui/", "index.html");
    expect_file("/ui/?next=1", "index.html");
    expect_file("/ui/assets/index-Ab1.js", "assets/index-Ab1.js");
    expect_file("/ui/assets/x.css?v=2", "assets/x.css");
}

static void test_escapes_refused(void **state)
{
    static const char *const bad[] = {
        "/ui/..", "/ui/../secret", "/ui/assets/../../x", "/ui/./index.html", "/ui/.hidden",
        "/ui/assets/.vite/manifest.json", "/ui//etc/passwd", "/ui/assets/", "/ui/%2e%2e/x",
        "/ui/a%2fb", "/ui/a\\..\\b", "/ui/a\tb", "/ui", "/", "/v1/vms", "/uiassets/x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *rel = NULL;
        if (vo_web_file_of(bad[i], &rel) != -EINVAL)
            fail_msg("'%s' was not refused (gave '%s')", bad[i], rel ? rel : "");
    }
}

static void test_content_types(void **state)
{
    assert_string_equal(vo_web_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(vo_web_content_type("assets/a.js"), "text/javascript; charset=utf-8");
    assert_string_equal(vo_web_content_type("assets/a.css"), "text/css; charset=utf-8");
    assert_string_equal(vo_web_content_type("x.svg"), "image/svg+xml");
    assert_string_equal(vo_web_content_type("x.bin"), "application/octet-stream");
    assert_string_equal(vo_web_content_type("noext"), "application/octet-stream");
    assert_string_equal(vo_web_content_type("a.js/b"), "application/octet-stream");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ui_paths),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_escapes_refused),
        cmocka_unit_test(test_content_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
