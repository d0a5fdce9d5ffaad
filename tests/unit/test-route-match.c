/* test-route-match.c: the API's request-path rules on raw URIs (encoded NUL,
 * slash and dot segments refused before routing), route matching with
 * decoded parameters, and the escaping used for logs and messages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/route-match.h"
#include "util/util.h"

static const VoRouteSpec routes[] = {
    { "GET", "/v1/host" },
    { "GET", "/v1/vms" },
    { "DELETE", "/v1/vms/{vm}" },
    { "DELETE", "/v1/vms/{vm}/disks/{index}" },
    { "PUT", "/v1/pools/{pool}/volumes/{volume}/data" },
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

/* Matches and returns r; *error (if any) freed unless wanted. */
static int match(const char *method, const char *uri, VoRouteMatch *m, char **error)
{
    char *e = NULL;
    int r = vo_route_match(routes, N_ROUTES, method, uri, m, &e);
    if (error)
        *error = e;
    else
        free(e);
    return r;
}

static void test_matches_with_decoded_params(void **state)
{
    VoRouteMatch m;
    assert_int_equal(match("GET", "/v1/host", &m, NULL), 0);
    assert_int_equal(m.index, 0);
    assert_int_equal(m.n_params, 0);

    assert_int_equal(match("DELETE", "/v1/vms/web%2d1/disks/2", &m, NULL), 0);
    assert_int_equal(m.index, 3);
    assert_int_equal(m.n_params, 2);
    assert_string_equal(m.params[0], "web-1");
    assert_string_equal(m.params[1], "2");
    vo_route_match_clear(&m);

    /* Query strings are not part of the path. */
    assert_int_equal(match("GET", "/v1/vms?view=summary", &m, NULL), 0);
    assert_int_equal(m.index, 1);
    assert_int_equal(match("DELETE", "/v1/vms/a?force=true", &m, NULL), 0);
    assert_string_equal(m.params[0], "a");
    vo_route_match_clear(&m);
    /* Non-ASCII bytes may be encoded (the handler judges the name). */
    assert_int_equal(match("DELETE", "/v1/vms/%C3%A9", &m, NULL), 0);
    assert_string_equal(m.params[0], "\xc3\xa9");
    vo_route_match_clear(&m);
    /* An encoded '?' stays in the segment. */
    assert_int_equal(match("DELETE", "/v1/vms/a%3fb", &m, NULL), 0);
    assert_string_equal(m.params[0], "a?b");
    vo_route_match_clear(&m);
}

static void test_not_found_and_method_not_allowed(void **state)
{
    VoRouteMatch m;
    char *error = NULL;
    assert_int_equal(match("GET", "/v1/nope", &m, &error), -ENOENT);
    assert_string_equal(error, "no such API route: /v1/nope");
    free(error);
    assert_int_equal(match("POST", "/v1/host", &m, &error), -EPERM);
    assert_string_equal(error, "POST is not allowed on /v1/host");
    free(error);
    /* Empty segments and trailing slashes match nothing. */
    assert_int_equal(match("GET", "/v1/vms/", &m, NULL), -ENOENT);
    assert_int_equal(match("GET", "//v1/vms", &m, NULL), -ENOENT);
    assert_int_equal(match("DELETE", "/v1/vms//disks/1", &m, NULL), -ENOENT);
    assert_int_equal(match("GET", "/", &m, NULL), -ENOENT);
    /* A method with control bytes is escaped in the message. */
    assert_int_equal(match("X\nY", "/v1/host", &m, &error), -EPERM);
    assert_null(strchr(error, '\n'));
    free(error);
}

/* Each of these is a 400 naming the segment. */
static void test_bad_segments_refused_before_routing(void **state)
{
    static const struct {
        const char *uri, *segment;
    } bad[] = {
        { "/v1/vms/NAME%00/disks/1", "'NAME%00'" }, /* the defect: cut at NUL */
        { "/v1/vms/a%2fb", "'a%2fb'" },
        { "/v1/vms/a%2Fb/disks/1", "'a%2Fb'" },
        { "/v1/vms/..", "'..'" },
        { "/v1/vms/.", "'.'" },
        { "/v1/vms/%2e%2e", "'%2e%2e'" },
        { "/v1/vms/%2E.", "'%2E.'" },
        { "/v1/vms/.%2e/disks/1", "'.%2e'" },
        { "/v1/../v1/host", "'..'" },
        { "/v1/vms/x%0aFAKE", "'x%0aFAKE'" },
        { "/v1/vms/x%7f", "'x%7f'" },
        { "/v1/vms/x%1B", "'x%1B'" },
        { "/v1/vms/a%zz", "'a%zz'" },
        { "/v1/vms/a%", "'a%'" },
        { "/v1/vms/a%4", "'a%4'" },
        { "/v1/vms/a%%41", "'a%%41'" },
        { "/v1/vms/a b", "'a b'" },
        { "/v1/vms/a\tb", "'a\\x09b'" },
        { "/v1/vms/a\nb", "'a\\x0ab'" },
        { "/v1/vms/\xc3\xa9", "'\\xc3\\xa9'" },
        { "/v1/vms/a#b", "'a#b'" },
        { "/v1/nope/%00", "'%00'" }, /* refused even where nothing would match */
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        VoRouteMatch m;
        char *error = NULL;
        int r = match("DELETE", bad[i].uri, &m, &error);
        if (r != -EINVAL || !error || !strstr(error, bad[i].segment))
            fail_msg("%s: r=%d error=%s", bad[i].uri, r, error ? error : "(none)");
        assert_null(strchr(error, '\n'));
        assert_null(m.params[0]);
        free(error);
    }
    /* Not a path at all. */
    VoRouteMatch m;
    assert_int_equal(match("GET", "", &m, NULL), -EINVAL);
    assert_int_equal(match("GET", "v1/host", &m, NULL), -EINVAL);
    assert_int_equal(match("GET", "?x", &m, NULL), -EINVAL);
    assert_int_equal(match("GET", "*", &m, NULL), -EINVAL);
    assert_int_equal(vo_route_match(routes, N_ROUTES, "GET", NULL, &m, NULL), -EINVAL);
}

/* The real table: every pattern matches itself, with its params. */
static void test_real_route_table(void **state)
{
    assert_true(vo_n_route_specs > 10);
    for (size_t i = 0; i < vo_n_route_specs; i++) {
        VoRouteMatch m;
        char *path = strdup(vo_route_specs[i].pattern);
        char *error = NULL;
        int r = vo_route_match(vo_route_specs, vo_n_route_specs, vo_route_specs[i].method, path,
                               &m, &error);
        if (r != 0)
            fail_msg("%s %s: %d %s", vo_route_specs[i].method, path, r, error);
        /* "{vm}" is a fine literal name too; first match wins, same method. */
        assert_string_equal(vo_route_specs[m.index].method, vo_route_specs[i].method);
        vo_route_match_clear(&m);
        free(path);
    }
}

static void test_escape_bytes(void **state)
{
    char *s = vo_escape_bytes("a\nb\\c\x01\x7f\xff ok", 11);
    assert_string_equal(s, "a\\x0ab\\x5cc\\x01\\x7f\\xff ok");
    free(s);
    s = vo_escape_bytes("x\0y", 3);
    assert_string_equal(s, "x\\x00y");
    free(s);
    char *p = vo_route_raw_path("/v1/vms?view=summary");
    assert_string_equal(p, "/v1/vms");
    free(p);
}

/* Every log line is one line: control bytes become \xNN. */
static void test_http_has_token(void **state)
{
    assert_true(vo_http_has_token("Upgrade", "upgrade"));
    assert_true(vo_http_has_token("keep-alive, Upgrade", "upgrade"));
    assert_true(vo_http_has_token(" UPGRADE ,close", "upgrade"));
    assert_true(vo_http_has_token("a,,\tupgrade\t", "upgrade"));
    /* Only whole tokens: MHD would refuse the 101 to these. */
    assert_false(vo_http_has_token("x-upgrade", "upgrade"));
    assert_false(vo_http_has_token("upgraded", "upgrade"));
    assert_false(vo_http_has_token("keep-alive, no upgrade", "upgrade"));
    assert_false(vo_http_has_token("", "upgrade"));
    assert_false(vo_http_has_token(NULL, "upgrade"));
}

static void test_log_escape(void **state)
{
    char out[64];
    vo_log_escape("GET /v1/vms/x\nFAKE LINE\r\x1b[2J -> 400", out, sizeof(out));
    assert_string_equal(out, "GET /v1/vms/x\\x0aFAKE LINE\\x0d\\x1b[2J -> 400");
    char tiny[8];
    vo_log_escape("\n\n\n\n", tiny, sizeof(tiny));
    assert_string_equal(tiny, "\\x0a");
    vo_log_escape("abcdefghijk", tiny, sizeof(tiny));
    assert_true(strlen(tiny) < sizeof(tiny));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_with_decoded_params),
        cmocka_unit_test(test_not_found_and_method_not_allowed),
        cmocka_unit_test(test_bad_segments_refused_before_routing),
        cmocka_unit_test(test_real_route_table),
        cmocka_unit_test(test_escape_bytes),
        cmocka_unit_test(test_log_escape),
        cmocka_unit_test(test_http_has_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
