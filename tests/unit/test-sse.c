/* test-sse.c: the Server-Sent Events helpers: keys to kinds and ids, one
 * change formatted as an event, revisions parsed, and the client parser
 * (split feeds, line endings, comments, multi-line data, the last id). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "util/sse.h"
#include "util/util.h"

static void test_key_object(void **state)
{
    const char *kind, *id;
    assert_true(vo_sse_key_object("vms/abc", &kind, &id));
    assert_string_equal(kind, "vm");
    assert_string_equal(id, "abc");
    assert_true(vo_sse_key_object("volumes/default/disk1", &kind, &id));
    assert_string_equal(kind, "volume");
    assert_string_equal(id, "default/disk1");
    assert_true(vo_sse_key_object("operations/t-1", &kind, &id));
    assert_string_equal(kind, "operation");
    assert_false(vo_sse_key_object("settings/default-network", &kind, &id));
    assert_false(vo_sse_key_object("vms/", &kind, &id));
    assert_false(vo_sse_key_object("vmsx/a", &kind, &id));
    assert_true(vo_sse_kind_known("network"));
    assert_false(vo_sse_kind_known("networks"));
    assert_false(vo_sse_kind_known(""));
    assert_string_equal(vo_sse_kind_prefix("volume"), "volumes/");
    assert_null(vo_sse_kind_prefix("setting"));
}

static void test_format(void **state)
{
    _cleanup_free_ char *ev = vo_sse_format_change(42, "vm", "abc", false,
                                                   "{\"name\":\"a\\nb\",\"n\":1}");
    assert_true(!strncmp(ev, "id: 42\nevent: vm\ndata: {", 24));
    size_t n = strlen(ev);
    assert_true(n > 2 && ev[n - 1] == '\n' && ev[n - 2] == '\n');
    /* Exactly three lines before the blank one: data is one line. */
    int lines = 0;
    for (const char *c = ev; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 4);
    const char *data = strstr(ev, "data: ") + 6;
    json_t *doc = json_loadb(data, strlen(data) - 2, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "rev")), 42);
    assert_string_equal(json_string_value(json_object_get(doc, "kind")), "vm");
    assert_string_equal(json_string_value(json_object_get(doc, "id")), "abc");
    assert_string_equal(json_string_value(json_object_get(doc, "action")), "put");
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "object"), "name")),
                        "a\nb");
    json_decref(doc);

    _cleanup_free_ char *del = vo_sse_format_change(43, "pool", "p", true, NULL);
    data = strstr(del, "data: ") + 6;
    doc = json_loadb(data, strlen(data) - 2, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "action")), "delete");
    assert_true(json_is_null(json_object_get(doc, "object")));
    json_decref(doc);
}

static void test_parse_rev(void **state)
{
    int64_t rev = -1;
    assert_int_equal(vo_sse_parse_rev("0", &rev), 0);
    assert_int_equal(rev, 0);
    assert_int_equal(vo_sse_parse_rev("123456", &rev), 0);
    assert_int_equal(rev, 123456);
    assert_int_equal(vo_sse_parse_rev("", &rev), -EINVAL);
    assert_int_equal(vo_sse_parse_rev(NULL, &rev), -EINVAL);
    assert_int_equal(vo_sse_parse_rev("-1", &rev), -EINVAL);
    assert_int_equal(vo_sse_parse_rev("12a", &rev), -EINVAL);
    assert_int_equal(vo_sse_parse_rev(" 1", &rev), -EINVAL);
    assert_int_equal(vo_sse_parse_rev("9999999999999999999999", &rev), -EINVAL);
}

typedef struct {
    char ids[8][16];
    char events[8][16];
    char data[8][64];
    int n;
    int stop_at;
} Seen;

static int on_event(const VoSseEvent *ev, void *userdata)
{
    Seen *s = userdata;
    assert_true(s->n < 8);
    snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", ev->id);
    snprintf(s->events[s->n], sizeof(s->events[0]), "%s", ev->event);
    snprintf(s->data[s->n], sizeof(s->data[0]), "%s", ev->data);
    s->n++;
    return s->n == s->stop_at ? 7 : 0;
}

static const char stream[] = ": vireo events after revision 4\n\n"
                             "id: 5\nevent: vm\ndata: {\"a\":1}\n\n"
                             ": keepalive\n\n"
                             "id: 6\r\nevent: pool\r\ndata: one\r\ndata:two\r\n\r\n"
                             "id:7\rdata: x\r\r"
                             "data\nretry: 10\nunknown: y\n\n";

static void check_stream(const Seen *s)
{
    assert_int_equal(s->n, 4);
    assert_string_equal(s->ids[0], "5");
    assert_string_equal(s->events[0], "vm");
    assert_string_equal(s->data[0], "{\"a\":1}");
    assert_string_equal(s->ids[1], "6");
    assert_string_equal(s->events[1], "pool");
    assert_string_equal(s->data[1], "one\ntwo");
    assert_string_equal(s->ids[2], "7");
    assert_string_equal(s->events[2], "message");
    assert_string_equal(s->data[2], "x");
    assert_string_equal(s->ids[3], "7"); /* the id persists, as the standard says */
    assert_string_equal(s->data[3], "");
}

static void test_parser_whole_and_split(void **state)
{
    Seen whole = { 0 };
    VoSseParser *p = vo_sse_parser_new(on_event, &whole);
    assert_string_equal(vo_sse_last_id(p), "");
    assert_int_equal(vo_sse_feed(p, stream, strlen(stream)), 0);
    check_stream(&whole);
    assert_string_equal(vo_sse_last_id(p), "7");
    p = vo_sse_parser_free(p);

    /* Byte by byte: every split point, \r\n across two feeds included. */
    Seen split = { 0 };
    p = vo_sse_parser_new(on_event, &split);
    for (size_t i = 0; i < strlen(stream); i++)
        assert_int_equal(vo_sse_feed(p, stream + i, 1), 0);
    check_stream(&split);
    vo_sse_parser_free(p);
}

static void test_parser_stop_and_partial(void **state)
{
    Seen s = { .stop_at = 1 };
    VoSseParser *p = vo_sse_parser_new(on_event, &s);
    assert_int_equal(vo_sse_feed(p, stream, strlen(stream)), 7);
    assert_int_equal(s.n, 1);
    vo_sse_parser_free(p);

    /* An event without its blank line is not dispatched yet. */
    Seen t = { 0 };
    p = vo_sse_parser_new(on_event, &t);
    assert_int_equal(vo_sse_feed(p, "id: 9\ndata: x\n", 14), 0);
    assert_int_equal(t.n, 0);
    assert_int_equal(vo_sse_feed(p, "\n", 1), 0);
    assert_int_equal(t.n, 1);
    /* A formatted change parses back to itself. */
    _cleanup_free_ char *ev = vo_sse_format_change(10, "network", "n1", true, NULL);
    assert_int_equal(vo_sse_feed(p, ev, strlen(ev)), 0);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.ids[1], "10");
    assert_string_equal(t.events[1], "network");
    vo_sse_parser_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_object),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse_rev),
        cmocka_unit_test(test_parser_whole_and_split),
        cmocka_unit_test(test_parser_stop_and_partial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
