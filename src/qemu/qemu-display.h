/* qemu-display.h: a running VM's display over QMP: a PNG of its screen
 * (screendump), key presses (send-key) and a one-time VNC password
 * (set_password, expire_password). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "hypervisor/driver.h"

/* The screen as PNG (*ret_png malloc'd, *ret_len bytes): QEMU writes it to
 * a file vireod names in the VM's run dir, which is read and removed. */
int vo_qemu_screendump(VoHvInstance *vm, char **ret_png, size_t *ret_len, char **ret_error);

/* Presses each combination of combos (vo_qemu_key_combo's arrays) in order. */
int vo_qemu_send_keys(VoHvInstance *vm, json_t *combos, char **ret_error);

/* The display's VNC socket (in the run dir); password: the one that asks
 * for vo_qemu_vnc_ticket's password (NULL when this QEMU has none). */
const char *vo_qemu_vnc_socket(VoHvInstance *vm, bool password);

/* Sets password on the VNC server that asks for one, expiring ttl_seconds
 * from now for new viewers (QEMU's expire_password). */
int vo_qemu_vnc_ticket(VoHvInstance *vm, const char *password, unsigned ttl_seconds,
                       char **ret_error);
