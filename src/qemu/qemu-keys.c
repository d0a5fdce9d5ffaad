/* qemu-keys.c: key names, combinations and text as QEMU key codes (see
 * qemu-keys.h). */
#include "qemu/qemu-keys.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

/* QEMU's QKeyCode names (qapi/ui.json) that a keyboard has. */
static const char *const keycodes[] = {
    "shift", "shift_r", "alt", "alt_r", "ctrl", "ctrl_r", "menu", "esc",
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "0",
    "minus", "equal", "backspace", "tab",
    "q", "w", "e", "r", "t", "y", "u", "i", "o", "p", "bracket_left", "bracket_right", "ret",
    "a", "s", "d", "f", "g", "h", "j", "k", "l", "semicolon", "apostrophe", "grave_accent",
    "backslash", "z", "x", "c", "v", "b", "n", "m", "comma", "dot", "slash", "asterisk", "spc",
    "caps_lock", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f11", "f12",
    "num_lock", "scroll_lock", "kp_divide", "kp_multiply", "kp_subtract", "kp_add", "kp_enter",
    "kp_decimal", "sysrq", "kp_0", "kp_1", "kp_2", "kp_3", "kp_4", "kp_5", "kp_6", "kp_7",
    "kp_8", "kp_9", "less", "home", "pgup", "pgdn", "end", "left", "up", "down", "right",
    "insert", "delete", "meta_l", "meta_r", "print", "pause",
};

/* Other names people use for them. */
static const struct {
    const char *alias, *code;
} aliases[] = {
    { "enter", "ret" },       { "return", "ret" },      { "space", "spc" },
    { "escape", "esc" },      { "del", "delete" },      { "ins", "insert" },
    { "control", "ctrl" },    { "pageup", "pgup" },     { "pagedown", "pgdn" },
    { "bksp", "backspace" },  { "super", "meta_l" },    { "win", "meta_l" },
    { "printscreen", "print" }, { "capslock", "caps_lock" },
};

const char *vo_qemu_keycode(const char *name)
{
    for (size_t i = 0; i < ELEMENTSOF(keycodes); i++)
        if (!strcasecmp(name, keycodes[i]))
            return keycodes[i];
    for (size_t i = 0; i < ELEMENTSOF(aliases); i++)
        if (!strcasecmp(name, aliases[i].alias))
            return aliases[i].code;
    return NULL;
}

static json_t *key_value(const char *code)
{
    return json_pack("{s:s, s:s}", "type", "qcode", "data", code);
}

int vo_qemu_key_combo(const char *name, json_t **ret_keys, char **ret_error)
{
    *ret_keys = NULL;
    if (!name || !*name)
        return vo_error_set(ret_error, -EINVAL, "an empty key name (give e.g. ret, "
                            "ctrl-alt-delete, f2)");
    json_t *keys = json_array();
    const char *p = name;
    for (;;) {
        /* "-" separates the keys; a part of one character may be "-" itself
         * only as the last ("ctrl--" is ctrl and minus). */
        size_t n = strcspn(p, "-");
        if (n == 0 && p[0] == '-' && p[1] == 0)
            n = 1;
        char part[32];
        const char *code = NULL;
        if (n > 0 && n < sizeof(part)) {
            memcpy(part, p, n);
            part[n] = 0;
            code = !strcmp(part, "-") ? "minus" : vo_qemu_keycode(part);
        }
        if (!code) {
            json_decref(keys);
            return vo_error_set(ret_error, -EINVAL, "unknown key '%.*s' in '%s' (keys are QEMU's "
                                "names: a-z, 0-9, ret, spc, tab, esc, up, down, left, right, "
                                "f1-f12, ctrl, alt, shift, delete, ...; join keys pressed "
                                "together with '-': ctrl-alt-delete)",
                                (int)(n < 32 ? n : 32), p, name);
        }
        if (json_array_size(keys) == VO_KEYS_MAX_COMBO) {
            json_decref(keys);
            return vo_error_set(ret_error, -EINVAL, "'%s': at most %d keys are pressed together",
                                name, VO_KEYS_MAX_COMBO);
        }
        json_array_append_new(keys, key_value(code));
        p += n;
        if (!*p)
            break;
        p++; /* the '-' */
        if (!*p) {
            json_decref(keys);
            return vo_error_set(ret_error, -EINVAL, "'%s' ends with '-' (the minus key is "
                                "'minus')", name);
        }
    }
    *ret_keys = keys;
    return 0;
}

/* A US keyboard: the key of a character that is not a letter or digit, and
 * whether shift is held. */
static const struct {
    char c;
    const char *code;
    bool shift;
} symbols[] = {
    { ' ', "spc", false },          { '\n', "ret", false },          { '\t', "tab", false },
    { '-', "minus", false },        { '_', "minus", true },          { '=', "equal", false },
    { '+', "equal", true },         { '[', "bracket_left", false },  { '{', "bracket_left", true },
    { ']', "bracket_right", false }, { '}', "bracket_right", true },  { ';', "semicolon", false },
    { ':', "semicolon", true },     { '\'', "apostrophe", false },   { '"', "apostrophe", true },
    { '`', "grave_accent", false }, { '~', "grave_accent", true },   { '\\', "backslash", false },
    { '|', "backslash", true },     { ',', "comma", false },         { '<', "comma", true },
    { '.', "dot", false },          { '>', "dot", true },            { '/', "slash", false },
    { '?', "slash", true },         { '!', "1", true },              { '@', "2", true },
    { '#', "3", true },             { '$', "4", true },              { '%', "5", true },
    { '^', "6", true },             { '&', "7", true },              { '*', "8", true },
    { '(', "9", true },             { ')', "0", true },
};

int vo_qemu_text_keys(const char *text, json_t *combos, char **ret_error)
{
    json_t *out = json_array();
    for (const char *p = text; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char name[2] = { (char)tolower(c), 0 };
        const char *code = NULL;
        bool shift = false;
        if (c < 0x80 && isalnum(c)) {
            code = vo_qemu_keycode(name);
            shift = isupper(c);
        } else
            for (size_t i = 0; i < ELEMENTSOF(symbols); i++)
                if (symbols[i].c == (char)c) {
                    code = symbols[i].code;
                    shift = symbols[i].shift;
                    break;
                }
        if (!code) {
            json_decref(out);
            if (c >= 0x20 && c < 0x7f)
                return vo_error_set(ret_error, -EINVAL, "text: '%c' (character %zu) has no key "
                                    "on a US keyboard", c, (size_t)(p - text) + 1);
            return vo_error_set(ret_error, -EINVAL, "text: character %zu (byte 0x%02x) has no key "
                                "(text is typed on a US keyboard: ASCII letters, digits, "
                                "symbols, space, \\n, \\t)", (size_t)(p - text) + 1, c);
        }
        json_t *keys = json_array();
        if (shift)
            json_array_append_new(keys, key_value("shift"));
        json_array_append_new(keys, key_value(code));
        json_array_append_new(out, keys);
    }
    json_array_extend(combos, out);
    json_decref(out);
    return 0;
}
