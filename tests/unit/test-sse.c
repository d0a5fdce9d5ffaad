/* test-sse.c: the Server-Sent Events helpers: keys to kinds and ids, one
 * change formatted as an event, revisions parsed, and the client parser
 * (split feeds, line endings, comments, multi-line data, the last id). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "conf/cloud-init.h"
#include "state/store.h"
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
    _cleanup_free_ char *ev = vo_sse_format_change(42, 0, "vm", "abc", false,
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

    _cleanup_free_ char *del = vo_sse_format_change(43, 0, "pool", "p", true, NULL);
    data = strstr(del, "data: ") + 6;
    doc = json_loadb(data, strlen(data) - 2, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "action")), "delete");
    assert_true(json_is_null(json_object_get(doc, "object")));
    json_decref(doc);
}

/* The stream goes to every reader (viewers too): a VM's and a backup's
 * cloud-init password hash and user-data are an admin's. */
static void test_format_hides_cloud_init_secrets(void **state)
{
    static const char *const kinds[] = { "vm", "backup" };
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *ev = vo_sse_format_change(
            44, 0, kinds[i], "abc", false,
            "{\"spec\":{\"name\":\"a\",\"cloud_init\":{\"user\":\"u\","
            "\"password_hash\":\"$6$salt$secret\",\"user_data\":\"#cloud-config\\nx: 1\"}}}");
        assert_null(strstr(ev, "$6$salt$secret"));
        assert_null(strstr(ev, "cloud-config"));
        const char *data = strstr(ev, "data: ") + 6;
        json_t *doc = json_loadb(data, strlen(data) - 2, 0, NULL);
        json_t *ci = json_object_get(json_object_get(json_object_get(doc, "object"), "spec"),
                                     "cloud_init");
        assert_string_equal(json_string_value(json_object_get(ci, "user")), "u");
        assert_string_equal(json_string_value(json_object_get(ci, "password_hash")),
                            VO_CI_HIDDEN);
        assert_string_equal(json_string_value(json_object_get(ci, "user_data")), VO_CI_HIDDEN);
        json_decref(doc);
    }
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
    _cleanup_free_ char *ev = vo_sse_format_change(10, 0, "network", "n1", true, NULL);
    assert_int_equal(vo_sse_feed(p, ev, strlen(ev)), 0);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.ids[1], "10");
    assert_string_equal(t.events[1], "network");
    vo_sse_parser_free(p);
}

/* A stream over a real store: every change after `after` (skipping what
 * ids says was seen), formatted as GET /v1/events does (events-api.c
 * add_events, all kinds), fed to the client parser; the ids and keys seen. */
typedef struct {
    char ids[16][24];
    char keys[16][40];
    int n;
} Stream;

static int on_stream_event(const VoSseEvent *ev, void *userdata)
{
    Stream *st = userdata;
    json_t *doc = json_loads(ev->data, 0, NULL);
    assert_non_null(doc);
    snprintf(st->ids[st->n], sizeof(st->ids[0]), "%s", ev->id);
    snprintf(st->keys[st->n], sizeof(st->keys[0]), "%s/%s", ev->event,
             json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
    st->n++;
    return 0;
}

static void read_stream(VoStore *store, const char *last_event_id, Stream *st)
{
    int64_t rev = 0;
    unsigned index = 0;
    assert_int_equal(vo_sse_parse_event_id(last_event_id, &rev, &index), 0);
    VoSseIds ids = { 0 };
    if (index)
        ids = (VoSseIds){ .skip_rev = rev, .skip_n = index };
    VoStoreWatch *w = NULL;
    assert_int_equal(store->ops->watch_open(store, "", index ? rev - 1 : rev, &w), 0);
    VoStoreEvent *events = NULL;
    size_t n = 0;
    assert_int_equal(store->ops->watch_next(w, 0, &events, &n), 0);
    VoSseParser *p = vo_sse_parser_new(on_stream_event, st);
    for (size_t i = 0; i < n; i++) {
        const char *kind, *id;
        assert_true(vo_sse_key_object(events[i].key, &kind, &id));
        bool more = i + 1 < n && events[i + 1].rev == events[i].rev;
        unsigned k = 0;
        if (!vo_sse_ids_next(&ids, events[i].rev, more, &k))
            continue;
        _cleanup_free_ char *text = vo_sse_format_change(events[i].rev, k, kind, id, false,
                                                         events[i].value);
        assert_int_equal(vo_sse_feed(p, text, strlen(text)), 0);
    }
    vo_sse_parser_free(p);
    vo_store_events_free(events, n);
    store->ops->watch_close(w);
}

/* The changes of one multi-key transaction share a revision R: each but the
 * last is sent as "R.k", so a client that drops after the first and resumes
 * with its id gets exactly the rest. (With the same id "R" on every one, as
 * before, that resume lost them: a resume after "2" starts at revision 3.) */
static void test_multi_key_transaction_resumes_exactly(void **state)
{
    char dir[] = "/tmp/vireo-test-sse-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *path = vo_asprintf("%s/state.db", dir);
    VoStore *store = NULL;
    assert_int_equal(vo_store_open(path, &store), 0);
    int64_t rev = 0;
    assert_int_equal(vo_store_put(store, "vms/a", "{}", VO_REV_NEW, &rev), 0);
    assert_int_equal(rev, 1);
    VoStoreCompare cmps[] = { { "vms/b", VO_REV_NEW }, { "volumes/p/x", VO_REV_NEW } };
    VoStoreOp ops[] = { { VO_STORE_PUT, "vms/b", "{\"n\":1}", 0 },
                        { VO_STORE_PUT, "vms/c", "{\"n\":2}", 0 },
                        { VO_STORE_PUT, "volumes/p/x", "{\"n\":3}", 0 } };
    assert_int_equal(vo_store_txn(store, cmps, 2, ops, 3, &rev, NULL), 0);
    assert_int_equal(rev, 2);
    assert_int_equal(vo_store_put(store, "vms/d", "{}", VO_REV_NEW, &rev), 0);

    Stream all = { 0 };
    read_stream(store, "0", &all);
    assert_int_equal(all.n, 5);
    const char *want_ids[] = { "1", "2.1", "2.2", "2", "3" };
    const char *want_keys[] = { "vm/a", "vm/b", "vm/c", "volume/p/x", "vm/d" };
    for (int i = 0; i < 5; i++) {
        assert_string_equal(all.ids[i], want_ids[i]);
        assert_string_equal(all.keys[i], want_keys[i]);
    }
    /* Dropped after each event in turn: the resume gets exactly the rest. */
    for (int seen = 1; seen < 5; seen++) {
        Stream rest = { 0 };
        read_stream(store, all.ids[seen - 1], &rest);
        assert_int_equal(rest.n, 5 - seen);
        for (int i = 0; i < rest.n; i++) {
            assert_string_equal(rest.keys[i], want_keys[seen + i]);
            assert_string_equal(rest.ids[i], want_ids[seen + i]);
        }
    }
    /* A plain "2" still means all of revision 2 was seen. */
    Stream after2 = { 0 };
    read_stream(store, "2", &after2);
    assert_int_equal(after2.n, 1);
    assert_string_equal(after2.keys[0], "vm/d");

    int64_t r = 0;
    unsigned k = 0;
    assert_int_equal(vo_sse_parse_event_id("12.3", &r, &k), 0);
    assert_true(r == 12 && k == 3);
    assert_int_equal(vo_sse_parse_event_id("12", &r, &k), 0);
    assert_true(r == 12 && k == 0);
    const char *bad[] = { "12.", ".3", "12.0", "0.1", "1.2.3", "12.x", "-1.2", "", "12.1234567890" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_int_equal(vo_sse_parse_event_id(bad[i], &r, &k), -EINVAL);
    vo_store_close(store);
    assert_int_equal(vo_rm_rf(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_object),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_hides_cloud_init_secrets),
        cmocka_unit_test(test_parse_rev),
        cmocka_unit_test(test_parser_whole_and_split),
        cmocka_unit_test(test_parser_stop_and_partial),
        cmocka_unit_test(test_multi_key_transaction_resumes_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
