/* test-qmp.c: unit tests for the QMP client against a scripted fake QMP server
 * running in a thread on one end of a socketpair (or a real unix socket). */
#include "qemu/qemu-events.h"
#include "qmp/qmp.h"
#include "util/util.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "qmp-server.h"

static void test_handshake(void **state)
{
    static const Step steps[] = { GREETING, CAPS, { 0 } };
    Server s;
    VoQmp *q = client_open(&s, steps);
    assert_true(vo_qmp_fd(q) >= 0);
    assert_null(vo_qmp_next_event(q));
    vo_qmp_close(q);
    server_join(&s);
}

static void test_not_a_greeting(void **state)
{
    static const Step steps[] = { { .send = { "{\"return\":{}}\n" } }, { 0 } };
    Server s;
    VoQmp *q = NULL;
    assert_int_equal(vo_qmp_open_fd(server_start(&s, steps), 1000, &q), -EPROTO);
    assert_null(q);
    server_join(&s);
}

static void test_query_status(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-status",
          .send = { "{\"return\":{\"status\":\"running\",\"singlestep\":false,\"running\":true},"
                    "\"id\":$ID}\r\n" } },
        { .expect = "stop", .send = { "{\"return\":{},\"id\":$ID}\r\n" } },
        { .expect = "query-status",
          .send = { "{\"return\":{\"status\":\"paused\",\"running\":false},\"id\":$ID}\n" } },
        { .expect = "cont", .send = { "{\"return\":{},\"id\":$ID}\n" } },
        { .expect = "system_powerdown", .send = { "{\"return\":{},\"id\":$ID}\n" } },
        { .expect = "system_reset", .send = { "{\"return\":{},\"id\":$ID}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    char *status = NULL;
    int running = -1;
    assert_int_equal(vo_qmp_query_status(q, 1000, &status, &running), 0);
    assert_string_equal(status, "running");
    assert_int_equal(running, 1);
    free(status);
    assert_int_equal(vo_qmp_stop(q, 1000), 0);
    assert_int_equal(vo_qmp_query_status(q, 1000, &status, &running), 0);
    assert_string_equal(status, "paused");
    assert_int_equal(running, 0);
    free(status);
    assert_int_equal(vo_qmp_cont(q, 1000), 0);
    assert_int_equal(vo_qmp_system_powerdown(q, 1000), 0);
    assert_int_equal(vo_qmp_system_reset(q, 1000), 0);
    vo_qmp_close(q);
    server_join(&s);
}

static void test_execute_args(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "human-monitor-command", .args = "{\"command-line\":\"info version\"}",
          .send = { "{\"return\":\"8.2.0\\r\\n\",\"id\":$ID}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    json_t *args = json_pack("{s:s}", "command-line", "info version"), *ret = NULL;
    assert_int_equal(vo_qmp_execute(q, "human-monitor-command", args, 1000, &ret, NULL), 0);
    assert_string_equal(json_string_value(ret), "8.2.0\r\n");
    json_decref(ret);
    json_decref(args);
    vo_qmp_close(q);
    server_join(&s);
}

static void test_error_reply(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "cont",
          .send = { "{\"id\":$ID,\"error\":{\"class\":\"GenericError\","
                    "\"desc\":\"Resetting the Virtual Machine is required\"}}\n" } },
        { .expect = "stop", .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"x\"},"
                                      "\"id\":$ID}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    json_t *ret = NULL;
    char *error = NULL;
    assert_int_equal(vo_qmp_execute(q, "cont", NULL, 1000, &ret, &error), -EIO);
    assert_null(ret);
    assert_string_equal(error, "GenericError: Resetting the Virtual Machine is required");
    free(error);
    assert_int_equal(vo_qmp_stop(q, 1000), -EIO); /* typed commands report -EIO too */
    vo_qmp_close(q);
    server_join(&s);
}

static void test_events_queued(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "stop",
          .send = { "{\"timestamp\":{\"seconds\":1700000000,\"microseconds\":1},"
                    "\"event\":\"STOP\"}\n"
                    "{\"event\":\"BLOCK_IO_ERROR\",\"data\":{\"device\":\"vda\"},"
                    "\"timestamp\":{\"seconds\":1700000000,\"microseconds\":2}}\n",
                    /* An event right behind the reply is queued by the time stop returns. */
                    "{\"return\":{},\"id\":$ID}\n{\"event\":\"POWERDOWN\"}\n" } },
        { .delay_ms = 50,
          .send = { "{\"event\":\"RESUME\",\"timestamp\":{\"seconds\":1,\"microseconds\":3}}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    assert_int_equal(vo_qmp_stop(q, 1000), 0);

    json_t *ev = vo_qmp_next_event(q);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "STOP");
    json_decref(ev);
    ev = vo_qmp_next_event(q);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "BLOCK_IO_ERROR");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"),
                                                          "device")), "vda");
    json_decref(ev);
    ev = vo_qmp_next_event(q);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "POWERDOWN");
    json_decref(ev);
    assert_null(vo_qmp_next_event(q));

    /* An unsolicited event is picked up by pump once the fd is readable. */
    struct pollfd p = { .fd = vo_qmp_fd(q), .events = POLLIN };
    assert_int_equal(poll(&p, 1, 1000), 1);
    assert_int_equal(vo_qmp_pump(q), 0);
    ev = vo_qmp_next_event(q);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "RESUME");
    json_decref(ev);
    assert_int_equal(vo_qmp_pump(q), 0); /* nothing pending: does not block */
    assert_null(vo_qmp_next_event(q));
    vo_qmp_close(q);
    server_join(&s);
}

static void send_many_events(int fd)
{
    for (int i = 0; i < 1100; i++) {
        char line[128];
        int n = snprintf(line, sizeof(line), "{\"event\":\"E\",\"data\":{\"n\":%d}}\n", i);
        if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n)
            return;
    }
}

static void test_event_overflow(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "stop", .custom = send_many_events, .send = { "{\"return\":{},\"id\":$ID}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    assert_int_equal(vo_qmp_stop(q, 2000), 0);
    for (int i = 1100 - 1024; i < 1100; i++) {
        json_t *ev = vo_qmp_next_event(q);
        assert_non_null(ev);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(ev, "data"), "n")), i);
        json_decref(ev);
    }
    assert_null(vo_qmp_next_event(q));
    vo_qmp_close(q);
    server_join(&s);
}

static void test_fragmented(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        /* One reply dribbled out in pieces, the newline arriving on its own. */
        { .expect = "query-status", .delay_ms = 10,
          .send = { "{\"retu", "rn\":{\"status\":\"run", "ning\",\"running\":true},\"id\"",
                    ":$ID}\r", "\n" } },
        /* An event and a reply in one write. */
        { .expect = "stop",
          .send = { "{\"event\":\"STOP\"}\n{\"return\":{},\"id\":$ID}\n" } },
        /* A reply and the start of the next message in one write. */
        { .expect = "cont",
          .send = { "{\"return\":{},\"id\":$ID}\n{\"event\":\"RES", "UME\"}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    char *status = NULL;
    int running = 0;
    assert_int_equal(vo_qmp_query_status(q, 1000, &status, &running), 0);
    assert_string_equal(status, "running");
    assert_int_equal(running, 1);
    free(status);
    assert_int_equal(vo_qmp_stop(q, 1000), 0);
    assert_int_equal(vo_qmp_cont(q, 1000), 0);
    json_t *ev = vo_qmp_next_event(q);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "STOP");
    json_decref(ev);
    vo_qmp_close(q);
    server_join(&s);
}

static void test_timeout(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        /* Answered late: only then does stop go (in band, with OOB on, no
         * command is sent while an earlier one waits for its answer). */
        { .expect = "query-status", .delay_ms = 400,
          .send = { "{\"return\":{\"status\":\"running\",\"running\":true},\"id\":$ID}\n" } },
        { .expect = "stop", .send = { "{\"return\":{},\"id\":$ID}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    int64_t start = vo_now_ms();
    assert_int_equal(vo_qmp_query_status(q, 200, NULL, NULL), -ETIMEDOUT);
    int64_t elapsed = vo_now_ms() - start;
    assert_true(elapsed >= 190 && elapsed < 1000);
    assert_int_equal(vo_qmp_stop(q, 1000), 0); /* still usable after a timeout */
    vo_qmp_close(q);
    server_join(&s);
}

/* A QEMU whose main loop is blocked (a post-copy destination waiting for a
 * page) never answers an in-band command; an out-of-band one is answered at
 * once, before the late in-band reply, and each reply goes by its id. */
static void test_oob_overtakes_in_band(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-migrate" }, /* in band: the main loop is blocked */
        { .expect = "migrate-pause", .oob = true,
          .send = { "{\"id\":$ID,\"return\":{}}\n"
                    "{\"event\":\"MIGRATION\",\"data\":{\"status\":\"postcopy-paused\"}}\n",
                    /* the main loop runs again: the first command's late reply */
                    "{\"return\":{\"status\":\"postcopy-active\"},\"id\":$OLD}\n" } },
        { .expect = "migrate-recover", .oob = true, .args = "{\"uri\":\"tcp:h2:1\"}",
          .send = { "{\"id\":$ID,\"error\":{\"class\":\"GenericError\","
                    "\"desc\":\"Migrate recover can only be run when postcopy is paused.\"}}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"postcopy-paused\"},\"id\":$ID}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    assert_true(vo_qmp_oob(q));
    assert_int_equal(vo_qmp_execute(q, "query-migrate", NULL, 200, NULL, NULL), -ETIMEDOUT);
    /* Not sent: QEMU would queue it behind the first (and stop reading at
     * 8, out-of-band commands too). */
    assert_int_equal(vo_qmp_execute(q, "query-status", NULL, 100, NULL, NULL), -ETIMEDOUT);
    assert_int_equal(vo_qmp_execute_oob(q, "migrate-pause", NULL, 1000, NULL, NULL), 0);
    json_t *args = json_pack("{s:s}", "uri", "tcp:h2:1");
    char *error = NULL;
    assert_int_equal(vo_qmp_execute_oob(q, "migrate-recover", args, 1000, NULL, &error), -EIO);
    assert_string_equal(error, "GenericError: Migrate recover can only be run when postcopy "
                               "is paused.");
    free(error);
    json_decref(args);
    json_t *ret = NULL;
    assert_int_equal(vo_qmp_execute(q, "query-migrate", NULL, 1000, &ret, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(ret, "status")), "postcopy-paused");
    json_decref(ret);
    json_t *ev = vo_qmp_next_event(q);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "MIGRATION");
    json_decref(ev);
    vo_qmp_close(q);
    server_join(&s);
}

/* A monitor that offers no out-of-band execution (QEMU on a chardev that
 * cannot): the same call goes in band. */
static void test_oob_not_offered(void **state)
{
    static const Step steps[] = {
        GREETING_NO_OOB, CAPS_NO_OOB,
        { .expect = "migrate-pause", .send = { "{\"return\":{},\"id\":$ID}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    assert_false(vo_qmp_oob(q));
    assert_int_equal(vo_qmp_execute_oob(q, "migrate-pause", NULL, 1000, NULL, NULL), 0);
    vo_qmp_close(q);
    server_join(&s);
}

/* A QEMU that offers "oob" but refuses to enable it: in band, as before. */
static void test_oob_refused(void **state)
{
    static const Step steps[] = {
        GREETING,
        { .expect = "qmp_capabilities", .args = "{\"enable\":[\"oob\"]}",
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"no\"},\"id\":$ID}\n" } },
        CAPS_NO_OOB,
        { .expect = "migrate-recover", .args = "{\"uri\":\"tcp:h2:1\"}",
          .send = { "{\"return\":{},\"id\":$ID}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    assert_false(vo_qmp_oob(q));
    json_t *args = json_pack("{s:s}", "uri", "tcp:h2:1");
    assert_int_equal(vo_qmp_execute_oob(q, "migrate-recover", args, 1000, NULL, NULL), 0);
    json_decref(args);
    vo_qmp_close(q);
    server_join(&s);
}

static void test_stale_id(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-status",
          .send = { "{\"return\":{\"status\":\"paused\",\"running\":false},\"id\":$OLD}\n",
                    "{\"return\":{\"status\":\"paused\",\"running\":false},\"id\":\"$ID\"}\n",
                    "{\"return\":{},\"id\":$ID}\n"
                    "{\"return\":{\"status\":\"running\",\"running\":true},\"id\":$ID}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    json_t *ret = NULL;
    /* Replies with an old or non-numeric id are skipped; the first match wins. */
    assert_int_equal(vo_qmp_execute(q, "query-status", NULL, 1000, &ret, NULL), 0);
    assert_int_equal(json_object_size(ret), 0);
    json_decref(ret);
    vo_qmp_close(q);
    server_join(&s);
}

static void test_connection_closed(void **state)
{
    static const Step steps[] = { GREETING, CAPS, { .expect = "query-status", .close = true },
                                  { 0 } };
    Server s;
    VoQmp *q = client_open(&s, steps);
    assert_int_equal(vo_qmp_query_status(q, 1000, NULL, NULL), -ECONNRESET);
    assert_int_equal(vo_qmp_stop(q, 1000), -ECONNRESET); /* stays dead */
    assert_int_equal(vo_qmp_pump(q), -ECONNRESET);
    vo_qmp_close(q);
    server_join(&s);
}

static void test_quit(void **state)
{
    static const Step steps[] = { GREETING, CAPS, { .expect = "quit", .close = true }, { 0 } };
    Server s;
    VoQmp *q = client_open(&s, steps);
    assert_int_equal(vo_qmp_quit(q, 1000), 0); /* QEMU exiting before replying is fine */
    vo_qmp_close(q);
    server_join(&s);
}

static void send_oversized(int fd)
{
    static char big[1536 * 1024];
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"return\":\"", 11);
    send(fd, big, sizeof(big), MSG_NOSIGNAL); /* fails once the client gives up */
}

static void test_oversized(void **state)
{
    static const Step steps[] = { GREETING, CAPS,
                                  { .expect = "query-status", .custom = send_oversized },
                                  { .close = true }, { 0 } };
    Server s;
    VoQmp *q = client_open(&s, steps);
    assert_int_equal(vo_qmp_query_status(q, 2000, NULL, NULL), -EMSGSIZE);
    vo_qmp_close(q);
    server_join(&s);
}

static void test_malformed(void **state)
{
    static const Step steps[] = { GREETING, CAPS,
                                  { .expect = "stop", .send = { "\r\n{\"a\":1,\"a\":2}\n" } },
                                  { 0 } };
    Server s;
    VoQmp *q = client_open(&s, steps);
    assert_int_equal(vo_qmp_stop(q, 1000), -EBADMSG);
    vo_qmp_close(q);
    server_join(&s);
}

/* QEMU's uint64 fields may exceed INT64_MAX (qom-get of the balloon's
 * guest-stats says 2^64 - 1 for what the guest did not report): read as
 * reals, the monitor kept; a string with such digits stays as it is. */
static void test_integer_beyond_int64(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "qom-get",
          .send = { "{\"return\":{\"stats\":{\"stat-free-memory\":18446744073709551615,"
                    "\"stat-swap-in\":-9223372036854775809,\"stat-total-memory\":1048576,"
                    "\"x\":\"18446744073709551615\\\"1\",\"r\":1.99999999999999999999e3},"
                    "\"last-update\":1700000000},\"id\":$ID}\n" } },
        { .expect = "stop", .send = { "{\"return\":{},\"id\":$ID}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    json_t *ret = NULL;
    assert_int_equal(vo_qmp_execute(q, "qom-get", NULL, 1000, &ret, NULL), 0);
    json_t *stats = json_object_get(ret, "stats");
    json_t *free_b = json_object_get(stats, "stat-free-memory");
    assert_true(json_is_real(free_b));
    assert_true(json_real_value(free_b) == 18446744073709551615.0);
    assert_true(json_real_value(json_object_get(stats, "stat-swap-in")) ==
                -9223372036854775809.0);
    assert_int_equal(json_integer_value(json_object_get(stats, "stat-total-memory")), 1048576);
    assert_string_equal(json_string_value(json_object_get(stats, "x")),
                        "18446744073709551615\"1");
    assert_true(json_real_value(json_object_get(stats, "r")) == 1999.99999999999999999);
    assert_int_equal(json_integer_value(json_object_get(ret, "last-update")), 1700000000);
    json_decref(ret);
    assert_int_equal(vo_qmp_stop(q, 1000), 0); /* the monitor still works */
    vo_qmp_close(q);
    server_join(&s);
}

typedef struct {
    char path[108];
    Server server;
    int accepted;
} Listener;

static void *listen_later(void *arg)
{
    Listener *l = arg;
    poll(NULL, 0, 150); /* the client starts connecting before the socket exists */
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, l->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        server_fail(&l->server, "bind/listen failed", strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    l->server.fd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    close(fd);
    if (l->server.fd < 0) {
        server_fail(&l->server, "accept failed", strerror(errno));
        return NULL;
    }
    l->accepted = 1;
    return server_main(&l->server);
}

static void test_connect_unix(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-status",
          .send = { "{\"return\":{\"status\":\"prelaunch\",\"running\":false},\"id\":$ID}\n" } },
        { 0 }
    };
    char dir[] = "/tmp/vireo-test-qmp-XXXXXX";
    assert_non_null(mkdtemp(dir));
    Listener l = { .server = { .steps = steps, .fd = -1 } };
    snprintf(l.path, sizeof(l.path), "%s/qmp.sock", dir);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, listen_later, &l), 0);

    VoQmp *q = NULL;
    int64_t start = vo_now_ms();
    assert_int_equal(vo_qmp_connect(l.path, 2000, &q), 0);
    assert_true(vo_now_ms() - start >= 100);
    char *status = NULL;
    assert_int_equal(vo_qmp_query_status(q, 1000, &status, NULL), 0);
    assert_string_equal(status, "prelaunch");
    free(status);
    vo_qmp_close(q);
    pthread_join(t, NULL);
    unlink(l.path);
    rmdir(dir);
    assert_int_equal(l.accepted, 1);
    if (l.server.error[0])
        fail_msg("fake QMP server: %s", l.server.error);
}

static void test_connect_timeout(void **state)
{
    char dir[] = "/tmp/vireo-test-qmp-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *path = vo_asprintf("%s/missing.sock", dir);
    VoQmp *q = NULL;
    int64_t start = vo_now_ms();
    assert_int_equal(vo_qmp_connect(path, 200, &q), -ETIMEDOUT);
    int64_t elapsed = vo_now_ms() - start;
    assert_true(elapsed >= 190 && elapsed < 1000);
    assert_null(q);
    rmdir(dir);
}

/* The fd server: answers the greeting and two commands, reading each with
 * recvmsg so that a file descriptor passed along (SCM_RIGHTS) arrives. */
typedef struct {
    int fd;
    int received_fd;    /* passed with the second command, or -1 */
    char command[256];  /* the second command's line */
} FdServer;

/* Reads one line (up to '\n') with recvmsg; keeps the first fd passed. */
static bool recv_line(int fd, char *line, size_t size, int *ret_fd)
{
    size_t n = 0;
    while (n < size - 1) {
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } control;
        struct iovec iov = { .iov_base = line + n, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        if (recvmsg(fd, &mh, 0) != 1)
            return false;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && *ret_fd < 0)
                memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
        if (line[n++] == '\n')
            break;
    }
    line[n] = 0;
    return true;
}

static void reply_to(int fd, const char *line)
{
    json_t *m = json_loads(line, 0, NULL);
    char out[128];
    int n = snprintf(out, sizeof(out), "{\"return\":{},\"id\":%lld}\n",
                     (long long)json_integer_value(json_object_get(m, "id")));
    json_decref(m);
    assert_true(send(fd, out, (size_t)n, MSG_NOSIGNAL) == n);
}

static void *fd_server_main(void *arg)
{
    FdServer *s = arg;
    static const char greeting[] = "{\"QMP\":{\"version\":{},\"capabilities\":[]}}\n";
    char line[256];
    int ignored = -1;
    if (send(s->fd, greeting, sizeof(greeting) - 1, MSG_NOSIGNAL) < 0 ||
        !recv_line(s->fd, line, sizeof(line), &ignored))
        return NULL;
    reply_to(s->fd, line); /* qmp_capabilities */
    if (!recv_line(s->fd, s->command, sizeof(s->command), &s->received_fd))
        return NULL;
    /* Use the fd as QEMU would: write through it. */
    if (s->received_fd >= 0 && write(s->received_fd, "tap", 3) != 3)
        return NULL;
    reply_to(s->fd, s->command);
    return NULL;
}

static void test_execute_fd(void **state)
{
    int sv[2], pipefd[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    FdServer s = { .fd = sv[1], .received_fd = -1 };
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, fd_server_main, &s), 0);
    VoQmp *q = NULL;
    assert_int_equal(vo_qmp_open_fd(sv[0], 1000, &q), 0);

    assert_int_equal(vo_qmp_execute_fd(q, "getfd", NULL, -1, 1000, NULL, NULL), -EBADF);
    json_t *args = json_pack("{s:s}", "fdname", "tap-net3");
    assert_int_equal(vo_qmp_execute_fd(q, "getfd", args, pipefd[1], 1000, NULL, NULL), 0);
    json_decref(args);
    pthread_join(thread, NULL);

    /* The command came with its arguments, and the fd with it. */
    json_t *cmd = json_loads(s.command, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(cmd, "execute")), "getfd");
    assert_string_equal(json_string_value(json_object_get(json_object_get(cmd, "arguments"),
                                                          "fdname")), "tap-net3");
    json_decref(cmd);
    assert_true(s.received_fd >= 0);
    char buf[8] = { 0 };
    assert_int_equal(read(pipefd[0], buf, sizeof(buf)), 3);
    assert_string_equal(buf, "tap");
    /* The caller's copy stays open: it is the caller's to close. */
    assert_true(fcntl(pipefd[1], F_GETFD) >= 0);
    close(s.received_fd);
    close(pipefd[0]);
    close(pipefd[1]);
    close(sv[1]);
    vo_qmp_close(q);
}

static void test_wait_event(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "device_del", .args = "{\"id\":\"virtio-disk1\"}",
          .send = { "{\"return\":{},\"id\":$ID}\n"
                    "{\"event\":\"DEVICE_DELETED\",\"data\":{\"path\":\"/x/virtio-backend\"}}\n"
                    "{\"event\":\"SHUTDOWN\",\"data\":{\"guest\":true}}\n" } },
        /* The one waited for comes later, behind another device's. */
        { .delay_ms = 50,
          .send = { "{\"event\":\"DEVICE_DELETED\",\"data\":{\"device\":\"net0\"}}\n",
                    "{\"event\":\"DEVICE_DELETED\",\"data\":{\"device\":\"virtio-disk1\","
                    "\"path\":\"/machine/peripheral/virtio-disk1\"}}\n" } },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    json_t *args = json_pack("{s:s}", "id", "virtio-disk1");
    assert_int_equal(vo_qmp_execute(q, "device_del", args, 1000, NULL, NULL), 0);
    json_decref(args);
    json_t *ev = NULL;
    assert_int_equal(vo_qmp_wait_event(q, "DEVICE_DELETED", "device", "virtio-disk1", 2000, &ev), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"), "path")),
                        "/machine/peripheral/virtio-disk1");
    json_decref(ev);
    /* The others stay queued, in order: a SHUTDOWN is never lost. */
    const char *rest[] = { "DEVICE_DELETED", "SHUTDOWN", "DEVICE_DELETED" };
    for (size_t i = 0; i < ELEMENTSOF(rest); i++) {
        ev = vo_qmp_next_event(q);
        assert_non_null(ev);
        assert_string_equal(json_string_value(json_object_get(ev, "event")), rest[i]);
        json_decref(ev);
    }
    assert_null(vo_qmp_next_event(q));
    /* An event that does not come: bounded. */
    assert_int_equal(vo_qmp_wait_event(q, "DEVICE_DELETED", "device", "net1", 50, NULL),
                     -ETIMEDOUT);
    vo_qmp_close(q);
    server_join(&s);
}

/* The pure line parser and classifier under the client. */
static void test_parse_line(void **state)
{
    json_t *msg = (json_t *)1;
    assert_int_equal(vo_qmp_parse_line(" \t\r", 3, &msg), 0);
    assert_null(msg); /* blank */
    assert_int_equal(vo_qmp_parse_line("", 0, &msg), 0);
    assert_null(msg);
    const char *ev = "{\"event\": \"STOP\", \"timestamp\": {}}\r";
    assert_int_equal(vo_qmp_parse_line(ev, strlen(ev), &msg), 0);
    assert_int_equal(vo_qmp_message_kind(msg), VO_QMP_EVENT);
    json_decref(msg);
    static const struct {
        const char *line;
        VoQmpKind kind;
    } kinds[] = {
        { "{\"return\": {}, \"id\": 1}", VO_QMP_RETURN },
        { "{\"error\": {\"class\": \"X\"}, \"id\": 1}", VO_QMP_ERROR },
        { "{\"QMP\": {}}", VO_QMP_GREETING },
        { "{\"event\": 3}", VO_QMP_OTHER },
        { "{}", VO_QMP_OTHER },
    };
    for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
        assert_int_equal(vo_qmp_parse_line(kinds[i].line, strlen(kinds[i].line), &msg), 0);
        assert_int_equal(vo_qmp_message_kind(msg), kinds[i].kind);
        json_decref(msg);
    }
    assert_int_equal(vo_qmp_parse_line("[1]", 3, &msg), -EBADMSG);
    assert_null(msg);
    assert_int_equal(vo_qmp_parse_line("{\"a\":1,\"a\":2}", 13, &msg), -EBADMSG);
    assert_int_equal(vo_qmp_parse_line("{\"a\":", 5, &msg), -EBADMSG);
    /* Malformed stays malformed with a big integer in it too. */
    const char *big_bad = "{\"a\":18446744073709551615,";
    assert_int_equal(vo_qmp_parse_line(big_bad, strlen(big_bad), &msg), -EBADMSG);
    /* NUL bytes are not blank: such a line is malformed, not skipped. */
    assert_int_equal(vo_qmp_parse_line("\0\0", 2, &msg), -EBADMSG);
    assert_int_equal(vo_qmp_parse_line(" \0", 2, &msg), -EBADMSG);
    assert_null(msg);
}

/* ---- the event monitor (qemu-events.c) ---------------------------------- */

typedef struct {
    VoHvEventType type;
    char name[32], reason[64], device[32], operation[16], action[16], id[32], status[16];
    bool guest, nospace, has_reason;
    int64_t timestamp_us;
} Seen;

typedef struct {
    Seen seen[32];
    size_t n;
} SeenList;

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static void record_event(VoHvInstance *vm, const VoHvEvent *ev, void *userdata)
{
    SeenList *l = userdata;
    assert_true(l->n < ELEMENTSOF(l->seen));
    Seen *s = &l->seen[l->n++];
    *s = (Seen){ .type = ev->type, .guest = ev->guest, .nospace = ev->nospace,
                 .has_reason = ev->reason != NULL, .timestamp_us = ev->timestamp_us };
    copy(s->name, sizeof(s->name), ev->name);
    copy(s->reason, sizeof(s->reason), ev->reason);
    copy(s->device, sizeof(s->device), ev->device);
    copy(s->operation, sizeof(s->operation), ev->operation);
    copy(s->action, sizeof(s->action), ev->action);
    copy(s->id, sizeof(s->id), ev->id);
    copy(s->status, sizeof(s->status), ev->status);
}

/* What QEMU 10 sends when a guest's write finds the host out of space
 * (werror=enospc), then the resume, a guest reset, unplug, a job and the
 * power-off; the RESET arrives in two pieces. */
static void test_events_dispatch(void **state)
{
    static const Step steps[] = {
        GREETING,
        /* An event right behind the capabilities reply: queued at connect,
         * before the loop watches the fd, and still handed out. */
        { .expect = "qmp_capabilities", .args = "{\"enable\":[\"oob\"]}",
          .send = { "{\"return\":{},\"id\":$ID}\n"
                    "{\"event\":\"DEVICE_DELETED\",\"data\":{\"device\":\"virtio-disk1\","
                    "\"path\":\"/machine/peripheral/virtio-disk1\"}}\n" } },
        { .delay_ms = 20,
          .send = { "{\"timestamp\":{\"seconds\":1700000000,\"microseconds\":5},"
                    "\"event\":\"BLOCK_IO_ERROR\",\"data\":{\"device\":\"\",\"node-name\":"
                    "\"disk1\",\"qom-path\":\"/machine/peripheral/virtio-disk1/virtio-backend\","
                    "\"operation\":\"write\",\"action\":\"stop\",\"nospace\":true,"
                    "\"reason\":\"No space left on device\"}}\n"
                    "{\"timestamp\":{\"seconds\":1700000000,\"microseconds\":6},"
                    "\"event\":\"STOP\"}\n" } },
        { .delay_ms = 20,
          .send = { "{\"event\":\"RESUME\"}\n{\"event\":\"STOP\"}\n{\"event\":\"RESUME\"}\n"
                    "{\"event\":\"RESET\",\"data\":{\"guest\":",
                    "true,\"reason\":\"guest-reset\"}}\n"
                    "{\"event\":\"NIC_RX_FILTER_CHANGED\",\"data\":{\"name\":\"net0\"}}\n"
                    "{\"event\":\"JOB_STATUS_CHANGE\",\"data\":{\"id\":\"vireo-backup-0\","
                    "\"status\":\"concluded\"}}\n"
                    "{\"event\":\"BLOCK_IO_ERROR\",\"data\":{\"device\":\"x\"}}\n"
                    "{\"event\":\"SHUTDOWN\",\"data\":{\"guest\":true,\"reason\":"
                    "\"guest-shutdown\"}}\n" },
          .close = true },
        { 0 }
    };
    Server s;
    VoQmp *q = client_open(&s, steps);
    VoQemuEventState st = { 0 };
    SeenList l = { 0 };
    /* Nothing is waiting on the socket yet: the read does not block. */
    assert_int_equal(vo_qemu_events_read(q, &st, NULL, record_event, &l), 0);
    assert_true(l.n >= 1);
    int r = 0;
    for (int i = 0; i < 100 && r == 0; i++) {
        struct pollfd p = { .fd = vo_qmp_fd(q), .events = POLLIN };
        assert_int_equal(poll(&p, 1, 1000), 1);
        r = vo_qemu_events_read(q, &st, NULL, record_event, &l);
    }
    assert_int_equal(r, -ECONNRESET); /* the monitor closed: QEMU is exiting */
    server_join(&s);
    vo_qmp_close(q);

    static const VoHvEventType want[] = {
        VO_HV_EVENT_DEVICE_DELETED, VO_HV_EVENT_BLOCK_IO_ERROR, VO_HV_EVENT_STOP,
        VO_HV_EVENT_RESUME, VO_HV_EVENT_STOP, VO_HV_EVENT_RESUME, VO_HV_EVENT_RESET,
        VO_HV_EVENT_JOB_STATUS, VO_HV_EVENT_SHUTDOWN,
    };
    assert_int_equal(l.n, ELEMENTSOF(want));
    for (size_t i = 0; i < ELEMENTSOF(want); i++)
        assert_int_equal(l.seen[i].type, want[i]);
    assert_string_equal(l.seen[0].id, "virtio-disk1");
    Seen *e = &l.seen[1];
    assert_string_equal(e->name, "BLOCK_IO_ERROR");
    assert_string_equal(e->device, "disk1"); /* -blockdev disks: the node */
    assert_string_equal(e->operation, "write");
    assert_string_equal(e->action, "stop");
    assert_true(e->nospace);
    assert_string_equal(e->reason, "No space left on device");
    assert_int_equal(e->timestamp_us, 1700000000000005LL);
    /* The STOP after a stopping I/O error is an I/O-error stop; after a
     * RESUME, a STOP is just a stop. */
    assert_string_equal(l.seen[2].reason, "io-error");
    assert_false(l.seen[4].has_reason);
    assert_true(l.seen[6].guest);
    assert_string_equal(l.seen[6].reason, "guest-reset");
    assert_string_equal(l.seen[7].id, "vireo-backup-0");
    assert_string_equal(l.seen[7].status, "concluded");
    assert_true(l.seen[8].guest);
    assert_string_equal(l.seen[8].reason, "guest-shutdown");
}

static void test_event_parse_table(void **state)
{
    VoQemuEventState st = { 0 };
    VoHvEvent ev;
    json_t *m = json_pack("{s:s}", "event", "POWERDOWN");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), -ENOENT);
    json_decref(m);
    m = json_pack("{s:s}", "nothing", "x");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), -EBADMSG);
    json_decref(m);
    /* A reported error (action report) does not make the next STOP an I/O one. */
    m = json_pack("{s:s, s:{s:s, s:s, s:s}}", "event", "BLOCK_IO_ERROR", "data", "device",
                  "vda", "operation", "read", "action", "report");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), 0);
    assert_string_equal(ev.device, "vda");
    assert_false(ev.nospace);
    json_decref(m);
    m = json_pack("{s:s}", "event", "STOP");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), 0);
    assert_int_equal(ev.type, VO_HV_EVENT_STOP);
    assert_null(ev.reason);
    json_decref(m);
    /* QEMU holds back a second BLOCK_IO_ERROR of the same second and sends
     * it after the RESUME that came meanwhile, with its own timestamp: late,
     * and the STOP after it is no I/O-error stop. */
    m = json_pack("{s:s, s:{s:I, s:I}}", "event", "RESUME", "timestamp", "seconds",
                  (json_int_t)1700000002, "microseconds", (json_int_t)0);
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), 0);
    json_decref(m);
    m = json_pack("{s:s, s:{s:I, s:I}, s:{s:s, s:s, s:s}}", "event", "BLOCK_IO_ERROR",
                  "timestamp", "seconds", (json_int_t)1700000001, "microseconds",
                  (json_int_t)999999, "data", "device", "vda", "operation", "write", "action",
                  "stop");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), 0);
    assert_true(ev.late);
    json_decref(m);
    m = json_pack("{s:s}", "event", "STOP");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), 0);
    assert_null(ev.reason);
    json_decref(m);
    /* One after the RESUME is not late. */
    m = json_pack("{s:s, s:{s:I, s:I}, s:{s:s, s:s, s:s}}", "event", "BLOCK_IO_ERROR",
                  "timestamp", "seconds", (json_int_t)1700000002, "microseconds",
                  (json_int_t)1, "data", "device", "vda", "operation", "write", "action",
                  "stop");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), 0);
    assert_false(ev.late);
    json_decref(m);
    m = json_pack("{s:s, s:{}}", "event", "JOB_STATUS_CHANGE", "data");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), -EBADMSG);
    json_decref(m);
    m = json_pack("{s:s, s:{s:s}}", "event", "DEVICE_DELETED", "data", "path", "/machine/x");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), 0);
    assert_null(ev.id);
    json_decref(m);
    /* A SHUTDOWN of QEMU's own (a SIGTERM from anyone: "host-signal") is
     * passed on but is no power-off of the guest. */
    m = json_pack("{s:s, s:{s:b, s:s}}", "event", "SHUTDOWN", "data", "guest", 0, "reason",
                  "host-signal");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), 0);
    assert_int_equal(ev.type, VO_HV_EVENT_SHUTDOWN);
    assert_false(ev.guest);
    assert_false(st.shutdown_seen);
    json_decref(m);
    /* The guest's SHUTDOWN is remembered (the exit after it is a clean
     * power-off: the reap reads it from here, not from the command
     * monitor); a RESET not. */
    m = json_pack("{s:s, s:{s:b, s:s}}", "event", "RESET", "data", "guest", 1, "reason",
                  "guest-reset");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), 0);
    assert_int_equal(ev.type, VO_HV_EVENT_RESET);
    assert_true(ev.guest);
    assert_false(st.shutdown_seen);
    json_decref(m);
    m = json_pack("{s:s, s:{s:b, s:s}}", "event", "SHUTDOWN", "data", "guest", 1, "reason",
                  "guest-shutdown");
    assert_int_equal(vo_qemu_event_parse(&st, m, &ev), 0);
    assert_int_equal(ev.type, VO_HV_EVENT_SHUTDOWN);
    assert_string_equal(ev.reason, "guest-shutdown");
    assert_true(st.shutdown_seen);
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_not_a_greeting),
        cmocka_unit_test(test_query_status),
        cmocka_unit_test(test_execute_args),
        cmocka_unit_test(test_error_reply),
        cmocka_unit_test(test_events_queued),
        cmocka_unit_test(test_event_overflow),
        cmocka_unit_test(test_fragmented),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_oob_overtakes_in_band),
        cmocka_unit_test(test_oob_not_offered),
        cmocka_unit_test(test_oob_refused),
        cmocka_unit_test(test_stale_id),
        cmocka_unit_test(test_connection_closed),
        cmocka_unit_test(test_quit),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_integer_beyond_int64),
        cmocka_unit_test(test_connect_unix),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_execute_fd),
        cmocka_unit_test(test_wait_event),
        cmocka_unit_test(test_parse_line),
        cmocka_unit_test(test_events_dispatch),
        cmocka_unit_test(test_event_parse_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
