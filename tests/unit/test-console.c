/* test-console.c: the console hub (src/daemon/console.c) reads a QEMU's
 * console on a thread of its own: while nothing else runs (vireod's main
 * loop busy writing a document to a slow etcd, say), a 16550 that sends a
 * byte at a time is not stalled once 278 bytes fill the socket; what it
 * printed reaches the log and an attached client, and what the client
 * types reaches QEMU. And the hub widens the send buffer of QEMU's own
 * socket, so a reader late by milliseconds does not make OVMF drop output
 * (util/peer-sndbuf.c, which also says why when it cannot: not allowed,
 * out of fds, QEMU ended). */
#include <errno.h>
#include <limits.h>
#include <linux/capability.h>
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
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/console.h"
#include "util/peer-sndbuf.h"
#include "util/unix-socket.h"
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

/* A scratch dir (dir, a mkdtemp template) for the console's log, and the
 * socket pairs standing for QEMU's console ([1]: the console's end) and a
 * client's ([1]: the client's end, handed to the console). */
static void pair_setup(char *dir, char **log_path, int qemu[2], int client[2])
{
    closed = false;
    assert_non_null(mkdtemp(dir));
    *log_path = vo_asprintf("%s/console.log", dir);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qemu), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client), 0);
}

/* After vo_console_free: the hub ends, the client was closed, all goes. */
static void pair_teardown(const char *dir, const char *log_path, int qemu[2], int client[2])
{
    vo_console_hub_stop();
    assert_true(closed);
    close(qemu[0]);
    close(client[0]);
    _cleanup_free_ char *old = vo_asprintf("%s.1", log_path);
    (void)unlink(log_path);
    (void)unlink(old);
    (void)rmdir(dir);
}

static void test_console_read_while_nothing_else_runs(void **state)
{
    char dir[] = "/tmp/vireo-console-XXXXXX";
    _cleanup_free_ char *log_path = NULL;
    int qemu[2], client[2];
    pair_setup(dir, &log_path, qemu, client);
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
    pair_teardown(dir, log_path, qemu, client);
}

#define LINES 90000 /* "line NNNNNN\n": 1.08 MB, four times what a client's buffer holds */

/* A client that stops reading while the guest prints 1 MB: once it reads
 * again it gets what it was sent before, a line saying how many bytes it
 * missed, and then the newest output up to the last line, without a gap:
 * the ring keeps the newest, never the oldest. */
static void test_console_slow_client_gets_the_newest_output(void **state)
{
    char dir[] = "/tmp/vireo-console-XXXXXX";
    _cleanup_free_ char *log_path = NULL;
    int qemu[2], client[2];
    pair_setup(dir, &log_path, qemu, client);
    int small = 4096; /* the client's socket holds little: its buffer fills */
    assert_int_equal(setsockopt(client[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    VoConsole *c = vo_console_new(qemu[1], log_path);
    assert_non_null(c);
    vo_console_add_client(c, client[1], NULL, 0, on_closed, (void *)(intptr_t)client[1]);

    size_t printed_len = 12 * LINES;
    char *printed = malloc(printed_len + 1);
    for (int i = 0; i < LINES; i++)
        snprintf(printed + 12 * i, 13, "line %06d\n", i);
    for (size_t done = 0; done < printed_len;) {
        ssize_t n = write(qemu[0], printed + done, printed_len - done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    /* the hub has read it all once its log ends with the last line */
    char *log = NULL;
    size_t log_len = 0;
    for (int i = 0; i < 2000; i++) {
        free(log);
        assert_int_equal(vo_console_read_log(log_path, &log, &log_len), 0);
        if (log_len >= 12 && !memcmp(log + log_len - 12, "line 089999\n", 12))
            break;
        (void)poll(NULL, 0, 10);
    }
    assert_true(log_len >= 12 && !memcmp(log + log_len - 12, "line 089999\n", 12));
    free(log);

    /* now it reads: up to the last line (10 s at most) */
    size_t cap = 2 * printed_len, got = 0;
    char *seen = malloc(cap);
    for (int i = 0; i < 1000 && !(got >= 12 && !memcmp(seen + got - 12, "line 089999\n", 12));
         i++) {
        struct pollfd p = { .fd = client[0], .events = POLLIN };
        if (poll(&p, 1, 10) == 1) {
            ssize_t n = read(client[0], seen + got, cap - got);
            assert_true(n > 0);
            got += (size_t)n;
        }
    }
    assert_true(got >= 12 && !memcmp(seen + got - 12, "line 089999\n", 12));
    /* what came first, the note, then the rest without a gap */
    seen[got - 1] = '\0';
    char *note = strstr(seen, "\r\n[vireo: ");
    assert_non_null(note);
    size_t before = (size_t)(note - seen);
    assert_memory_equal(seen, printed, before);
    unsigned long long dropped = 0;
    assert_int_equal(sscanf(note, "\r\n[vireo: %llu bytes of console output dropped", &dropped),
                     1);
    char *after = strstr(note, "fast enough]\r\n") + strlen("fast enough]\r\n");
    size_t after_len = got - (size_t)(after - seen);
    assert_int_equal(before + dropped + after_len, printed_len);
    assert_memory_equal(after, printed + before + dropped, after_len - 1);
    assert_true(after_len > 128 * 1024); /* the newest output, most of the buffer */
    free(seen);
    free(printed);

    vo_console_free(c);
    pair_teardown(dir, log_path, qemu, client);
}

/* A stand-in for QEMU in a process of its own: listens on qmp and path,
 * accepts one client on each (QMP's first, as vireod connects), prints one
 * byte on the console, then answers each byte on ask with the SO_SNDBUF of
 * its accepted console and QMP sockets (two ints), until ask ends. */
static void fake_qemu(const char *qmp, const char *path, int ready, int ask)
{
    int lq = vo_unix_listen(qmp, 0600);
    int l = vo_unix_listen(path, 0600);
    char b = 'r';
    if (lq < 0 || l < 0 || write(ready, &b, 1) != 1)
        _exit(1);
    int sq = accept(lq, NULL, NULL);
    int s = accept(l, NULL, NULL);
    if (sq < 0 || s < 0 || write(s, "x", 1) != 1)
        _exit(1);
    while (read(ask, &b, 1) == 1) {
        int sndbuf[2] = { 0, 0 };
        socklen_t len = sizeof(sndbuf[0]);
        (void)getsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf[0], &len);
        len = sizeof(sndbuf[1]);
        (void)getsockopt(sq, SOL_SOCKET, SO_SNDBUF, &sndbuf[1], &len);
        if (write(ready, sndbuf, sizeof(sndbuf)) != sizeof(sndbuf))
            _exit(1);
    }
    _exit(0);
}

/* A fake QEMU running, with our ends of its QMP and console sockets. */
typedef struct {
    char dir[32];
    char *qmp, *console;
    pid_t pid;
    int ask, answer; /* pipes to and from it */
    int qmp_fd, console_fd;
} FakeQemu;

/* 0, or -1 (what it made is then left behind). No cmocka asserts: a child
 * process of a test calls it too. */
static int fake_qemu_start(FakeQemu *q)
{
    *q = (FakeQemu){ .dir = "/tmp/vireo-console-XXXXXX", .pid = -1, .qmp_fd = -1,
                     .console_fd = -1 };
    int to_child[2], from_child[2];
    if (!mkdtemp(q->dir))
        return -1;
    q->qmp = vo_asprintf("%s/qmp.sock", q->dir);
    q->console = vo_asprintf("%s/console.sock", q->dir);
    if (pipe(to_child) < 0)
        return -1;
    if (pipe(from_child) < 0)
        return -1;
    q->pid = fork();
    if (q->pid == 0) {
        close(to_child[1]);
        close(from_child[0]);
        fake_qemu(q->qmp, q->console, from_child[1], to_child[0]);
    }
    close(to_child[0]);
    close(from_child[1]);
    q->ask = to_child[1];
    q->answer = from_child[0];
    char b;
    if (q->pid < 0 || read(q->answer, &b, 1) != 1) /* listening */
        return -1;
    q->qmp_fd = vo_unix_connect(q->qmp, 0);
    q->console_fd = vo_unix_connect(q->console, 0);
    return q->qmp_fd >= 0 && q->console_fd >= 0 ? 0 : -1;
}

/* The send buffers of the fake QEMU's console and QMP sockets; 0 or -1. */
static int fake_qemu_sndbuf(FakeQemu *q, int ret_sndbuf[2])
{
    if (write(q->ask, "?", 1) != 1)
        return -1;
    return read(q->answer, ret_sndbuf, 2 * sizeof(int)) == 2 * sizeof(int) ? 0 : -1;
}

/* Ends it (the console fd, if still ours, too); 0 when it exited cleanly. */
static int fake_qemu_stop(FakeQemu *q)
{
    close(q->ask);
    int status = -1;
    bool exited = q->pid > 0 && waitpid(q->pid, &status, 0) == q->pid;
    close(q->answer);
    if (q->qmp_fd >= 0)
        close(q->qmp_fd);
    if (q->console_fd >= 0)
        close(q->console_fd);
    (void)unlink(q->qmp);
    (void)unlink(q->console);
    (void)rmdir(q->dir);
    free(q->qmp);
    free(q->console);
    return exited && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Without the widening, QEMU's socket keeps the kernel's default buffer:
 * 278 one-byte sends, and OVMF drops strings whenever the reader is late. */
static void test_console_widens_qemus_send_buffer(void **state)
{
    FakeQemu q;
    assert_int_equal(fake_qemu_start(&q), 0);
    _cleanup_free_ char *log_path = vo_asprintf("%s/console.log", q.dir);
    int before[2], after[2];
    assert_int_equal(fake_qemu_sndbuf(&q, before), 0);

    VoConsole *c = vo_console_new(TAKE_FD(q.console_fd), log_path);
    assert_non_null(c);
    char *log = NULL;
    size_t log_len = 0;
    for (int i = 0; i < 1000 && log_len < 1; i++) { /* the hub read QEMU's byte */
        free(log);
        log = NULL;
        assert_int_equal(vo_console_read_log(log_path, &log, &log_len), 0);
        if (log_len < 1)
            (void)poll(NULL, 0, 10);
    }
    free(log);
    assert_int_equal(log_len, 1);
    assert_int_equal(fake_qemu_sndbuf(&q, after), 0);
    assert_true(after[0] > before[0]);
    if (geteuid() == 0) /* SO_SNDBUFFORCE; others stop at net.core.wmem_max */
        assert_true(after[0] >= 4 * 1024 * 1024);
    assert_int_equal(after[1], before[1]); /* QEMU's other sockets: untouched */

    vo_console_free(c);
    vo_console_hub_stop();
    (void)unlink(log_path);
    assert_int_equal(fake_qemu_stop(&q), 0);
}

static int drop_net_admin(void)
{
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0)
        return -1;
    d[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
    d[CAP_NET_ADMIN / 32].permitted &= ~(1u << (CAP_NET_ADMIN % 32));
    return syscall(SYS_capset, &h, d) < 0 ? -1 : 0;
}

/* In a child without CAP_NET_ADMIN: asks for bytes (past wmem_max) and
 * exits 0 when told -EPERM with the socket widened as far as allowed. */
static void grow_without_net_admin(int bytes)
{
    FakeQemu q;
    char b;
    int before[2], after[2];
    if (drop_net_admin() < 0 || fake_qemu_start(&q) < 0 || read(q.console_fd, &b, 1) != 1 ||
        fake_qemu_sndbuf(&q, before) < 0)
        _exit(2);
    int r = vo_unix_grow_peer_sndbuf(q.console_fd, bytes);
    if (fake_qemu_sndbuf(&q, after) < 0 || fake_qemu_stop(&q) < 0)
        _exit(3);
    _exit(r == -EPERM && after[0] > before[0] ? 0 : 4);
}

/* A vireod that may not force the buffer past net.core.wmem_max says so
 * (the hub logs it), not 0 for a buffer left smaller than asked. */
static void test_peer_sndbuf_short_of_wmem_max_is_said(void **state)
{
    FILE *f = fopen("/proc/sys/net/core/wmem_max", "r");
    long wmem_max = 0;
    if (!f || fscanf(f, "%ld", &wmem_max) != 1 || wmem_max <= 0 || wmem_max > INT_MAX / 4) {
        if (f)
            fclose(f);
        skip();
    }
    fclose(f);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        grow_without_net_admin((int)wmem_max * 2);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* In a child that may open only two more fds (the pidfd and /proc/PID/fd):
 * exits 0 when the copy of QEMU's socket failing on it is told as such
 * (-EMFILE), not as "QEMU holds no such socket" (-ENOENT). */
static void grow_out_of_fds(void)
{
    FakeQemu q;
    char b;
    if (fake_qemu_start(&q) < 0 || read(q.console_fd, &b, 1) != 1)
        _exit(2);
    int first = dup(0), second = dup(0); /* where the pidfd and the dir go */
    if (first < 0 || second < 0)
        _exit(2);
    close(first);
    close(second);
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
        _exit(2);
    rlim_t was = lim.rlim_cur;
    lim.rlim_cur = (rlim_t)second + 1;
    if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
        _exit(2);
    int r = vo_unix_grow_peer_sndbuf(q.console_fd, 4 * 1024 * 1024);
    lim.rlim_cur = was;
    if (setrlimit(RLIMIT_NOFILE, &lim) < 0 || fake_qemu_stop(&q) < 0)
        _exit(3);
    _exit(r == -EMFILE ? 0 : 4);
}

static void test_peer_sndbuf_says_why_it_found_nothing(void **state)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        grow_out_of_fds();
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A QEMU that ended after printing (its pid could be anyone's by now) is
 * not looked for in /proc: -ESRCH. */
static void test_peer_sndbuf_of_an_ended_qemu(void **state)
{
    char dir[] = "/tmp/vireo-console-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *path = vo_asprintf("%s/console.sock", dir);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork(); /* listens, holds the accepted socket as QEMU does, ends */
    assert_true(pid >= 0);
    if (pid == 0) {
        int l = vo_unix_listen(path, 0600);
        if (l < 0 || write(ready[1], "r", 1) != 1)
            _exit(1);
        _exit(write(accept(l, NULL, NULL), "x", 1) == 1 ? 0 : 1);
    }
    close(ready[1]);
    char r;
    assert_int_equal(read(ready[0], &r, 1), 1);
    close(ready[0]);
    int fd = vo_unix_connect(path, 0);
    assert_true(fd >= 0);
    char b;
    assert_int_equal(read(fd, &b, 1), 1);
    siginfo_t info;
    assert_int_equal(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT), 0); /* a zombie */
    assert_int_equal(vo_unix_grow_peer_sndbuf(fd, 4 * 1024 * 1024), -ESRCH);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(fd);
    (void)unlink(path);
    (void)rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_console_read_while_nothing_else_runs),
        cmocka_unit_test(test_console_slow_client_gets_the_newest_output),
        cmocka_unit_test(test_console_widens_qemus_send_buffer),
        cmocka_unit_test(test_peer_sndbuf_short_of_wmem_max_is_said),
        cmocka_unit_test(test_peer_sndbuf_says_why_it_found_nothing),
        cmocka_unit_test(test_peer_sndbuf_of_an_ended_qemu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
