/* console.h: one VM's serial console inside vireod: the single connection to
 * QEMU's console socket, a bounded on-disk log of everything it printed, and
 * any number of attached clients (vireo console) that read it and type into
 * it. Loop thread only. */
#pragma once

#include <stddef.h>

#include "daemon/loop.h"

typedef struct VoConsole VoConsole;
typedef void (*VoConsoleClientClosed)(void *userdata);

#define VO_CONSOLE_LOG_MAX (512 * 1024) /* per file; one older file is kept */

/* Takes fd (connected to QEMU's console socket). */
VoConsole *vo_console_new(VoLoop *loop, int fd, const char *log_path);
/* Closes every client (their on_closed runs) and the QEMU connection. */
void vo_console_free(VoConsole *c);

/* Takes fd; initial (may be NULL) is typed into the console first. on_closed
 * runs (loop thread) when the client goes away or the console closes. */
int vo_console_add_client(VoConsole *c, int fd, const char *initial, size_t initial_len,
                          VoConsoleClientClosed on_closed, void *userdata);

/* Current log plus the previous one, oldest first (malloc'd). */
int vo_console_read_log(const char *log_path, char **ret, size_t *ret_len);
