/* qemu-keys.h: key names for send-keys: QEMU's key codes (QKeyCode, what
 * QMP send-key takes), combinations of them ("ctrl-alt-delete") and text
 * typed as key presses on a US keyboard. Pure: no QEMU involved. */
#pragma once

#include <jansson.h>

/* At most this many keys pressed together in one combination. */
#define VO_KEYS_MAX_COMBO 6

/* The QKeyCode a key name stands for ("ret"; aliases such as "enter",
 * "space", "del" too; case-insensitive), or NULL. */
const char *vo_qemu_keycode(const char *name);

/* One combination ("ctrl-alt-delete", "shift-a", "f2"): a new JSON array of
 * QMP KeyValues ({"type": "qcode", "data": CODE}) pressed together, in
 * order. -EINVAL with *ret_error naming the unknown key or what is wrong. */
int vo_qemu_key_combo(const char *name, json_t **ret_keys, char **ret_error);

/* Appends to combos (a JSON array) one combination (as vo_qemu_key_combo's)
 * per character of text: letters, digits, a US keyboard's symbols, space,
 * "\n" (ret) and "\t" (tab). -EINVAL with *ret_error naming the first
 * character that has no key (combos is then unchanged). */
int vo_qemu_text_keys(const char *text, json_t *combos, char **ret_error);
