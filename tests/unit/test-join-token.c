/* test-join-token.c: join tokens made, encoded and parsed back; every kind
 * of bad token refused with its own errno and a message for the CLI; the
 * stored record and the secret check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cluster/join-token.h"
#include "util/util.h"

#define NOW 1800000000LL /* 2027-01-15T08:00:00Z */
#define FP "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char *b64url(const char *s)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(s);
    char *out = vo_malloc0(n / 3 * 4 + 5), *o = out;
    const unsigned char *in = (const unsigned char *)s;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        *o++ = a[v >> 18 & 63];
        *o++ = a[v >> 12 & 63];
        if (i + 1 < n)
            *o++ = a[v >> 6 & 63];
        if (i + 2 < n)
            *o++ = a[v & 63];
    }
    return out;
}

static void test_roundtrip(void **state)
{
    VoJoinToken t = { 0 }, back = { 0 }, other = { 0 };
    assert_int_equal(vo_join_token_make("c-1", FP, "10.0.0.1:8443", 3600, NOW, &t, NULL), 0);
    assert_int_equal(strlen(t.id), 16);
    assert_int_equal(strlen(t.secret), 64);
    assert_int_equal(t.expires, NOW + 3600);
    _cleanup_free_ char *text = vo_join_token_encode(&t);
    for (const char *c = text; *c; c++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *c));
    assert_int_equal(vo_join_token_parse(text, NOW, &back, NULL), 0);
    assert_string_equal(back.cluster, "c-1");
    assert_string_equal(back.id, t.id);
    assert_string_equal(back.secret, t.secret);
    assert_string_equal(back.ca_sha256, FP);
    assert_string_equal(back.address, "10.0.0.1:8443");
    assert_int_equal(back.expires, NOW + 3600);
    _cleanup_free_ char *again = vo_join_token_encode(&back);
    assert_string_equal(text, again);
    /* Two tokens differ in id and secret. */
    assert_int_equal(vo_join_token_make("c-1", FP, "[fd00::1]:8443", 60, NOW, &other, NULL), 0);
    assert_string_not_equal(other.id, t.id);
    assert_string_not_equal(other.secret, t.secret);
    vo_join_token_clear(&other);
    vo_join_token_clear(&back);
    vo_join_token_clear(&t);
    vo_join_token_clear(&t);
}

static void test_make_refused(void **state)
{
    VoJoinToken t = { 0 };
    char *err = NULL;
    assert_int_equal(vo_join_token_make("", FP, "a:1", 60, NOW, &t, &err), -EINVAL);
    free(err);
    err = NULL;
    assert_int_equal(vo_join_token_make("c", "ABCDEF", "a:1", 60, NOW, &t, &err), -EINVAL);
    free(err);
    err = NULL;
    const char *addresses[] = { "a", "a:", ":1", "a:0", "a:65536", "a:1x", "fd00::1:8443", "a b:1",
                                "[]:1", "a/b:1" };
    for (size_t i = 0; i < ELEMENTSOF(addresses); i++) {
        assert_int_equal(vo_join_token_make("c", FP, addresses[i], 60, NOW, &t, &err), -EINVAL);
        assert_non_null(strstr(err, "ADDRESS:PORT"));
        free(err);
        err = NULL;
    }
    assert_int_equal(vo_join_token_make("c", FP, "a:1", 0, NOW, &t, &err), -EINVAL);
    free(err);
    assert_null(t.cluster);
}

/* Parses base64url(json) and returns the errno; *msg gets the message. */
static int parse_json(const char *json, char **msg)
{
    _cleanup_free_ char *text = b64url(json);
    VoJoinToken t = { 0 };
    int r = vo_join_token_parse(text, NOW, &t, msg);
    vo_join_token_clear(&t);
    return r;
}

#define GOOD_FIELDS "\"cluster\":\"c\",\"id\":\"0a1b\",\"secret\":\"" FP "\",\"ca_sha256\":\"" FP "\",\"address\":\"h:8443\""

static void expect(int want, const char *json, const char *in_msg)
{
    char *msg = NULL;
    int r = parse_json(json, &msg);
    if (r != want || (in_msg && (!msg || !strstr(msg, in_msg))))
        fail_msg("%s: got %d (%s), want %d with '%s'", json, r, msg ? msg : "-", want, in_msg ? in_msg : "");
    free(msg);
}

static void test_parse_refused(void **state)
{
    char *msg = NULL;
    VoJoinToken t = { 0 };
    /* Not base64url: padding, '+', '/', space, a lone char, non-zero tail bits. */
    const char *not_b64[] = { "eyJ2IjoxfQ==", "ab+c", "ab/c", "ab c", "a", "eyJ2IjoxfR", "" };
    for (size_t i = 0; i < ELEMENTSOF(not_b64); i++) {
        assert_int_equal(vo_join_token_parse(not_b64[i], NOW, &t, &msg), -EILSEQ);
        assert_non_null(strstr(msg, "token is not a vireo join token"));
        free(msg);
        msg = NULL;
    }
    assert_int_equal(vo_join_token_parse(NULL, NOW, &t, NULL), -EILSEQ);
    char *long_text = vo_malloc0(VO_JOIN_TOKEN_MAX_LEN + 2);
    memset(long_text, 'A', VO_JOIN_TOKEN_MAX_LEN + 1);
    assert_int_equal(vo_join_token_parse(long_text, NOW, &t, NULL), -EILSEQ);
    free(long_text);
    /* Not a JSON object. */
    expect(-EBADMSG, "hello", "token is not a vireo join token");
    expect(-EBADMSG, "[1]", "token is not a vireo join token");
    expect(-EBADMSG, "{\"v\":1,", "token is not a vireo join token");
    /* Version. */
    expect(-EINVAL, "{" GOOD_FIELDS ",\"expires\":1900000000}", "no version");
    expect(-EINVAL, "{\"v\":\"1\"," GOOD_FIELDS ",\"expires\":1900000000}", "no version");
    expect(-EPROTONOSUPPORT, "{\"v\":2}", "token version 2 is not supported");
    /* Fields: missing, wrong type, unknown, duplicate, bad form. */
    expect(-EINVAL, "{\"v\":1," GOOD_FIELDS "}", "expires");
    expect(-EINVAL, "{\"v\":1," GOOD_FIELDS ",\"expires\":\"1900000000\"}", NULL);
    expect(-EINVAL, "{\"v\":1," GOOD_FIELDS ",\"expires\":1900000000.5}", NULL);
    expect(-EINVAL, "{\"v\":1," GOOD_FIELDS ",\"expires\":1900000000,\"extra\":1}", NULL);
    expect(-EBADMSG, "{\"v\":1,\"v\":1," GOOD_FIELDS ",\"expires\":1900000000}", NULL);
    expect(-EINVAL, "{\"v\":1," GOOD_FIELDS ",\"expires\":-5}", "bad expiry");
    expect(-EINVAL,
           "{\"v\":1,\"cluster\":\"c\",\"id\":\"0a1b\",\"secret\":\"ab\",\"ca_sha256\":\"" FP
           "\",\"address\":\"h:8443\",\"expires\":1900000000}",
           "bad secret");
    expect(-EINVAL,
           "{\"v\":1,\"cluster\":\"c\",\"id\":\"0a1b\",\"secret\":\"" FP "\",\"ca_sha256\":\"" FP
           "\",\"address\":\"h\",\"expires\":1900000000}",
           "bad address");
    expect(-EINVAL,
           "{\"v\":1,\"cluster\":\"c d\",\"id\":\"0a1b\",\"secret\":\"" FP "\",\"ca_sha256\":\"" FP
           "\",\"address\":\"h:1\",\"expires\":1900000000}",
           "bad cluster id");
    /* Good, then expired (exactly at expiry counts as expired). */
    expect(0, "{\"v\":1," GOOD_FIELDS ",\"expires\":1900000000}", NULL);
    expect(-EKEYEXPIRED, "{\"v\":1," GOOD_FIELDS ",\"expires\":1700000000}",
           "token expired at 2023-11-14T22:13:20Z");
    char json[512];
    snprintf(json, sizeof(json), "{\"v\":1," GOOD_FIELDS ",\"expires\":%lld}", NOW);
    expect(-EKEYEXPIRED, json, "token expired at");
    assert_null(t.cluster);
}

static void test_record_check(void **state)
{
    VoJoinToken t = { 0 }, other = { 0 };
    assert_int_equal(vo_join_token_make("c", FP, "h:1", 600, NOW, &t, NULL), 0);
    assert_int_equal(vo_join_token_make("c", FP, "h:1", 600, NOW, &other, NULL), 0);
    json_t *rec = vo_join_token_record(&t);
    /* The record holds the hash, never the secret. */
    char *dump = json_dumps(rec, JSON_COMPACT);
    assert_null(strstr(dump, t.secret));
    free(dump);
    char h[VO_JOIN_TOKEN_HEX_LEN + 1];
    vo_join_token_secret_hash(t.secret, h);
    assert_string_equal(json_string_value(json_object_get(rec, "secret_sha256")), h);
    /* SHA-256 of the hex text, as documented. */
    vo_join_token_secret_hash("abc", h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    assert_int_equal(vo_join_token_check(&t, rec, NOW, NULL), 0);
    char *err = NULL;
    assert_int_equal(vo_join_token_check(&other, rec, NOW, &err), -EACCES);
    assert_string_equal(err, "join token is not valid");
    free(err);
    err = NULL;
    assert_int_equal(vo_join_token_check(&t, rec, NOW + 600, &err), -EKEYEXPIRED);
    assert_non_null(strstr(err, "token expired at"));
    free(err);
    json_t *bad = json_pack("{s:s}", "secret_sha256", "zz");
    assert_int_equal(vo_join_token_check(&t, bad, NOW, NULL), -EINVAL);
    assert_int_equal(vo_join_token_check(&t, NULL, NOW, NULL), -EINVAL);
    json_decref(bad);
    json_decref(rec);
    vo_join_token_clear(&t);
    vo_join_token_clear(&other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_make_refused),
        cmocka_unit_test(test_parse_refused),
        cmocka_unit_test(test_record_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
