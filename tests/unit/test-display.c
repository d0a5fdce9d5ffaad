/* test-display.c: the pure parts of a VM's graphical console: send-keys'
 * key table, combinations and text (qemu-keys.c), and the WebSocket framing
 * the VNC stream is relayed in (util/websocket.c): the accept key of RFC
 * 6455's example, frame headers of each length, the parse of masked client
 * frames (whole, partial, and every way one breaks the RFC). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "qemu/qemu-keys.h"
#include "util/util.h"
#include "util/websocket.h"

static const char *code_at(json_t *keys, size_t i)
{
    return json_string_value(json_object_get(json_array_get(keys, i), "data"));
}

static void test_keycodes(void **state)
{
    assert_string_equal(vo_qemu_keycode("ret"), "ret");
    assert_string_equal(vo_qemu_keycode("Enter"), "ret");
    assert_string_equal(vo_qemu_keycode("space"), "spc");
    assert_string_equal(vo_qemu_keycode("F12"), "f12");
    assert_string_equal(vo_qemu_keycode("del"), "delete");
    assert_null(vo_qemu_keycode("f13"));
    assert_null(vo_qemu_keycode(""));
}

static void test_combo(void **state)
{
    json_t *keys = NULL;
    char *err = NULL;
    assert_int_equal(vo_qemu_key_combo("ctrl-alt-delete", &keys, &err), 0);
    assert_int_equal(json_array_size(keys), 3);
    assert_string_equal(code_at(keys, 0), "ctrl");
    assert_string_equal(code_at(keys, 2), "delete");
    assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "type")),
                        "qcode");
    json_decref(keys);
    assert_int_equal(vo_qemu_key_combo("ctrl--", &keys, &err), 0);
    assert_string_equal(code_at(keys, 1), "minus");
    json_decref(keys);
    assert_int_equal(vo_qemu_key_combo("ctrl-alt-nope", &keys, &err), -EINVAL);
    assert_null(keys);
    assert_non_null(strstr(err, "unknown key 'nope'"));
    free(TAKE_PTR(err));
    assert_int_equal(vo_qemu_key_combo("", &keys, &err), -EINVAL);
    free(TAKE_PTR(err));
    assert_int_equal(vo_qemu_key_combo("ctrl-", &keys, &err), -EINVAL);
    assert_non_null(strstr(err, "ends with '-'"));
    free(TAKE_PTR(err));
    assert_int_equal(vo_qemu_key_combo("a-b-c-d-e-f-g", &keys, &err), -EINVAL);
    assert_non_null(strstr(err, "at most 6"));
    free(TAKE_PTR(err));
    /* a part longer than any key name is unknown, not overflowed */
    char longname[100];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(vo_qemu_key_combo(longname, &keys, &err), -EINVAL);
    free(TAKE_PTR(err));
}

static void test_text(void **state)
{
    json_t *combos = json_array();
    char *err = NULL;
    assert_int_equal(vo_qemu_text_keys("aB1 !\n", combos, &err), 0);
    assert_int_equal(json_array_size(combos), 6);
    json_t *a = json_array_get(combos, 0), *b = json_array_get(combos, 1);
    assert_int_equal(json_array_size(a), 1);
    assert_string_equal(code_at(a, 0), "a");
    assert_int_equal(json_array_size(b), 2);
    assert_string_equal(code_at(b, 0), "shift");
    assert_string_equal(code_at(b, 1), "b");
    assert_string_equal(code_at(json_array_get(combos, 3), 0), "spc");
    json_t *bang = json_array_get(combos, 4);
    assert_string_equal(code_at(bang, 0), "shift");
    assert_string_equal(code_at(bang, 1), "1");
    assert_string_equal(code_at(json_array_get(combos, 5), 0), "ret");
    /* a character without a key: refused, nothing appended */
    assert_int_equal(vo_qemu_text_keys("ok\xc3\xa9", combos, &err), -EINVAL);
    assert_non_null(strstr(err, "character 3"));
    free(TAKE_PTR(err));
    assert_int_equal(json_array_size(combos), 6);
    json_decref(combos);
}

static void test_ws_accept(void **state)
{
    char accept[29];
    /* RFC 6455, section 1.3 */
    assert_int_equal(vo_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", accept), 0);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(vo_ws_accept_key(NULL, accept), -EINVAL);
    assert_int_equal(vo_ws_accept_key("short==", accept), -EINVAL);
    assert_int_equal(vo_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=x", accept), -EINVAL);
}

static void test_ws_header(void **state)
{
    uint8_t h[VO_WS_MAX_HEADER];
    assert_int_equal(vo_ws_frame_header(VO_WS_OP_BINARY, 5, h), 2);
    assert_int_equal(h[0], 0x82);
    assert_int_equal(h[1], 5);
    assert_int_equal(vo_ws_frame_header(VO_WS_OP_BINARY, 300, h), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2] << 8 | h[3], 300);
    assert_int_equal(vo_ws_frame_header(VO_WS_OP_CLOSE, 70000, h), 10);
    assert_int_equal(h[0], 0x88);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[7] << 16 | h[8] << 8 | h[9], 70000);
}

/* A masked client frame of payload with opcode (fin set). */
static size_t client_frame(uint8_t *out, uint8_t opcode, const uint8_t *payload, size_t len)
{
    static const uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    size_t pos = 0;
    out[pos++] = (uint8_t)(0x80 | opcode);
    if (len < 126)
        out[pos++] = (uint8_t)(0x80 | len);
    else {
        out[pos++] = 0x80 | 126;
        out[pos++] = (uint8_t)(len >> 8);
        out[pos++] = (uint8_t)len;
    }
    memcpy(out + pos, mask, 4);
    pos += 4;
    for (size_t i = 0; i < len; i++)
        out[pos + i] = payload[i] ^ mask[i % 4];
    return pos + len;
}

static void test_ws_parse(void **state)
{
    uint8_t buf[1024];
    VoWsFrame f;
    /* RFC 6455 5.7: a masked "Hello" */
    uint8_t hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    assert_int_equal(vo_ws_parse(hello, sizeof(hello), &f), sizeof(hello));
    assert_true(f.fin);
    assert_int_equal(f.opcode, VO_WS_OP_TEXT);
    assert_int_equal(f.payload_len, 5);
    assert_memory_equal(hello + f.header_len, "Hello", 5);
    /* every prefix is incomplete: 0 */
    uint8_t payload[300];
    memset(payload, 0xab, sizeof(payload));
    size_t n = client_frame(buf, VO_WS_OP_BINARY, payload, sizeof(payload));
    for (size_t i = 0; i < n; i++) {
        uint8_t copy[1024];
        memcpy(copy, buf, i);
        assert_int_equal(vo_ws_parse(copy, i, &f), 0);
    }
    assert_int_equal(vo_ws_parse(buf, n, &f), (long)n);
    assert_int_equal(f.payload_len, 300);
    assert_int_equal(f.header_len, 8);
    assert_memory_equal(buf + 8, payload, 300);
    /* two frames back to back: the first only */
    n = client_frame(buf, VO_WS_OP_BINARY, (const uint8_t *)"ab", 2);
    size_t m = client_frame(buf + n, VO_WS_OP_PING, (const uint8_t *)"p", 1);
    assert_int_equal(vo_ws_parse(buf, n + m, &f), (long)n);
    assert_int_equal(vo_ws_parse(buf + n, m, &f), (long)m);
    assert_int_equal(f.opcode, VO_WS_OP_PING);
    /* unmasked */
    uint8_t unmasked[] = { 0x82, 0x01, 'x' };
    assert_int_equal(vo_ws_parse(unmasked, sizeof(unmasked), &f), -EPROTO);
    /* reserved bits, unknown opcode */
    n = client_frame(buf, VO_WS_OP_BINARY, (const uint8_t *)"x", 1);
    buf[0] |= 0x40;
    assert_int_equal(vo_ws_parse(buf, n, &f), -EPROTO);
    n = client_frame(buf, 0x3, (const uint8_t *)"x", 1);
    assert_int_equal(vo_ws_parse(buf, n, &f), -EPROTO);
    n = client_frame(buf, 0xB, (const uint8_t *)"x", 1);
    assert_int_equal(vo_ws_parse(buf, n, &f), -EPROTO);
    /* a control frame fragmented or longer than 125 bytes */
    n = client_frame(buf, VO_WS_OP_PING, (const uint8_t *)"x", 1);
    buf[0] &= 0x7f;
    assert_int_equal(vo_ws_parse(buf, n, &f), -EPROTO);
    n = client_frame(buf, VO_WS_OP_CLOSE, payload, 126);
    assert_int_equal(vo_ws_parse(buf, n, &f), -EPROTO);
    /* too large a payload: refused from the header alone */
    uint8_t big[] = { 0x82, 0xff, 0, 0, 0, 0, 0, 0x20, 0, 0 };
    assert_int_equal(vo_ws_parse(big, sizeof(big), &f), -EMSGSIZE);
    uint8_t huge[] = { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0 };
    assert_int_equal(vo_ws_parse(huge, sizeof(huge), &f), -EPROTO);
}

/* A browser's page of another origin may not open the VNC stream. */
static void test_ws_origin(void **state)
{
    (void)state;
    assert_true(vo_ws_origin_allowed(NULL, "vireod"));  /* not a browser */
    assert_true(vo_ws_origin_allowed("https://h1.example:8443", "h1.example:8443"));
    assert_true(vo_ws_origin_allowed("https://H1.Example:8443", "h1.example:8443"));
    assert_false(vo_ws_origin_allowed("https://evil.example:8443", "h1.example:8443"));
    assert_false(vo_ws_origin_allowed("https://h1.example:8080", "h1.example:8443"));
    assert_false(vo_ws_origin_allowed("https://h1.example:8443.evil", "h1.example:8443"));
    assert_false(vo_ws_origin_allowed("null", "h1.example:8443"));
    assert_false(vo_ws_origin_allowed("https://h1.example:8443", NULL));
    assert_false(vo_ws_origin_allowed("https://", ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keycodes),  cmocka_unit_test(test_combo),
        cmocka_unit_test(test_text),      cmocka_unit_test(test_ws_accept),
        cmocka_unit_test(test_ws_header), cmocka_unit_test(test_ws_parse),
        cmocka_unit_test(test_ws_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
