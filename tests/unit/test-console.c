/* test-console.c: the console hub (src/daemon/console.c) reads a QEMU's
 * console on a thread of its own: while nothing else runs (vireod's main
 * loop busy writing a document to a slow etcd, say), a 16550 that sends a
 * byte at a time is not stalled once 278 bytes fill the socket; what it
 * printed reaches the log and an attached client, and what the client
 * types reaches QEMU. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/console.h"
#include "util/util.h"

#define PRINTED 4096 /* bytes, one send each: fifteen times what fills the socket */

/* Sends one byte, waiting up to 10 s for room (0), or -1. */
static int send_byte(int fd, char b)
{
    for (int waited = 0; waited < 10000; waited += 10) {
        if (send(fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
            return 0;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        (void)poll(NULL, 0, 10);
    }
    return -1;
}

/* Reads until want bytes came or 10 s passed; how many came. */
static size_t read_for(int fd, char *buf, size_t want)
{
    size_t got = 0;
    for (int i = 0; i < 1000 && got < want; i++) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 10) == 1) {
            ssize_t n = read(fd, buf + got, want - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    return got;
}

static bool closed;
static void on_closed(void *userdata)
{
    closed = true;
    close((int)(intptr_t)userdata);
}

static void test_console_read_while_nothing_else_runs(void **state)
{
    char dir[] = "/tmp/vireo-console-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *log_path = vo_asprintf("%s/console.log", dir);
    int qemu[2], client[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qemu), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client), 0);
    VoConsole *c = vo_console_new(qemu[1], log_path);
    assert_non_null(c);
    vo_console_add_client(c, client[1], vo_strdup("typed"), 5, on_closed,
                          (void *)(intptr_t)client[1]);

    /* The client's bytes reach QEMU's side. */
    char typed[6] = "";
    assert_int_equal(read_for(qemu[0], typed, 5), 5);
    assert_string_equal(typed, "typed");

    /* QEMU prints byte by byte; this thread never runs a loop. */
    for (int i = 0; i < PRINTED; i++)
        assert_int_equal(send_byte(qemu[0], (char)('a' + i % 26)), 0);
    char *seen = malloc(PRINTED);
    assert_int_equal(read_for(client[0], seen, PRINTED), PRINTED);
    for (int i = 0; i < PRINTED; i++)
        assert_int_equal(seen[i], 'a' + i % 26);
    free(seen);
    char *log = NULL;
    size_t log_len = 0;
    for (int i = 0; i < 1000 && log_len < PRINTED; i++) {
        free(log);
        log = NULL;
        assert_int_equal(vo_console_read_log(log_path, &log, &log_len), 0);
        if (log_len < PRINTED)
            (void)poll(NULL, 0, 10);
    }
    assert_int_equal(log_len, PRINTED);
    free(log);

    vo_console_free(c); /* the client's on_closed runs on the hub */
    char b;
    assert_int_equal(read_for(client[0], &b, 1), 0); /* closed: end of file */
    vo_console_hub_stop();
    assert_true(closed);
    close(qemu[0]);
    close(client[0]);
    _cleanup_free_ char *old = vo_asprintf("%s.1", log_path);
    (void)unlink(log_path);
    (void)unlink(old);
    (void)rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_console_read_while_nothing_else_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
