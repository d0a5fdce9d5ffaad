/* console.h: one VM's serial console inside vireod: the single connection to
 * QEMU's console socket, a bounded on-disk log of everything it printed, and
 * any number of attached clients (vireo console) that read it and type into
 * it. The consoles run on a loop and thread of their own (console.c says
 * why); these calls hand their work to it in order, from the main loop. */
#pragma once

#include <stddef.h>

#include "daemon/loop.h"

typedef struct VoConsole VoConsole;
typedef void (*VoConsoleClientClosed)(void *userdata);

#define VO_CONSOLE_LOG_MAX (512 * 1024) /* per file; one older file is kept */

/* Takes fd (connected to QEMU's console socket); NULL (fd closed) when
 * the consoles' thread cannot start. */
VoConsole *vo_console_new(int fd, const char *log_path);
/* Closes every client (their on_closed runs) and the QEMU connection. c is
 * not to be used after. */
void vo_console_free(VoConsole *c);

/* Takes fd and initial (malloc'd, may be NULL: typed into the console
 * first). on_closed runs (on the consoles' thread) when the client goes away, the
 * console closes, or it could not be added. */
void vo_console_add_client(VoConsole *c, int fd, char *initial, size_t initial_len,
                           VoConsoleClientClosed on_closed, void *userdata);

/* Ends the consoles' thread (vireod's teardown, before the API server
 * stops: no client's on_closed runs after). */
void vo_console_hub_stop(void);

/* Current log plus the previous one, oldest first (malloc'd). */
int vo_console_read_log(const char *log_path, char **ret, size_t *ret_len);
