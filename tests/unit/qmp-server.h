/* qmp-server.h: a scripted fake QMP server for unit tests: a thread on one
 * end of a socketpair plays QEMU, step by step (read a command and check it,
 * answer with canned chunks), and records the first deviation from the
 * script. Used by test-qmp.c (the client) and test-qemu-migrate.c (the QEMU
 * driver's migration entry points). */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include "qmp/qmp.h"

/* One scripted exchange: read a command (if expect), run custom, write the chunks.
 * "$ID" in a chunk becomes the id of the command just read, "$OLD" that id - 1. */
typedef struct {
    const char *expect;  /* "execute" the next command must carry, or NULL to not read */
    bool oob;            /* it must come as "exec-oob" instead */
    const char *args;    /* JSON its "arguments" must equal, or NULL for none */
    const char *send[6]; /* raw chunks, written separately */
    int delay_ms;        /* pause before each chunk */
    void (*custom)(int fd);
    bool close;          /* close the connection after this step */
} Step;

#define STEP_END(st) (!(st)->expect && !(st)->send[0] && !(st)->custom && !(st)->close)

#define GREETING { .send = { "{\"QMP\":{\"version\":{\"qemu\":{\"micro\":0,\"minor\":2," \
                             "\"major\":8},\"package\":\"\"},\"capabilities\":[\"oob\"]}}\r\n" } }
/* The greeting offers "oob", so the client enables it. */
#define CAPS { .expect = "qmp_capabilities", .args = "{\"enable\":[\"oob\"]}", \
               .send = { "{\"return\":{},\"id\":$ID}\r\n" } }
/* A monitor without out-of-band execution (a chardev that cannot). */
#define GREETING_NO_OOB { .send = { "{\"QMP\":{\"version\":{\"qemu\":{\"micro\":0," \
                                    "\"minor\":2,\"major\":8}},\"capabilities\":[]}}\r\n" } }
#define CAPS_NO_OOB { .expect = "qmp_capabilities", \
                      .send = { "{\"return\":{},\"id\":$ID}\r\n" } }

typedef struct {
    const Step *steps;
    int fd;
    pthread_t thread;
    char error[512]; /* first script violation, checked by the main thread */
} Server;

/* Records the first script violation (checked by server_join). */
void server_fail(Server *s, const char *what, const char *line);
/* Runs the script on s->fd (a thread's start routine). */
void *server_main(void *arg);
/* Starts a server thread on steps; returns the client's end of the socketpair. */
int server_start(Server *s, const Step *steps);
/* Waits for the script to end; fails the test on a violation. */
void server_join(Server *s);
/* Start a server on steps (which must begin with GREETING, CAPS) and connect. */
VoQmp *client_open(Server *s, const Step *steps);
