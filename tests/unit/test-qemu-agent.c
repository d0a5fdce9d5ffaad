/* test-qemu-agent.c: the guest agent client (src/qemu/qemu-agent.c) against
 * a fake agent on the other end of a socketpair: the sync handshake (0xFF
 * reset, random id, stale replies skipped), line framing of split replies,
 * the agent's errors, and bounded waits on a silent or closed channel. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "qemu/qemu-agent.h"
#include "util/util.h"

typedef enum {
    FAKE_GOOD,        /* answers sync and commands */
    FAKE_STALE,       /* old replies and a wrong-id sync reply before the right one */
    FAKE_SPLIT,       /* every reply written a few bytes at a time */
    FAKE_SILENT,      /* reads, never answers */
    FAKE_CLOSE,       /* closes the channel at once */
    FAKE_ERROR,       /* commands get an agent error */
    FAKE_GARBAGE,     /* commands get a line that is not JSON */
    FAKE_NO_REPLY,    /* sync answered, commands not */
} FakeMode;

typedef struct {
    int fd;
    FakeMode mode;
    bool saw_reset;  /* a 0xFF came before the sync command */
    int commands;    /* commands other than the sync */
    pthread_t thread;
} Fake;

static void put(Fake *f, const char *s, size_t len)
{
    if (f->mode == FAKE_SPLIT) {
        for (size_t i = 0; i < len; i += 3) {
            size_t n = len - i < 3 ? len - i : 3;
            if (write(f->fd, s + i, n) < 0)
                return;
            usleep(1000);
        }
        return;
    }
    if (write(f->fd, s, len) < 0)
        return;
}

static void puts_(Fake *f, const char *s) { put(f, s, strlen(s)); }

static void answer(Fake *f, const char *line)
{
    json_t *msg = json_loads(line, 0, NULL);
    const char *cmd = json_string_value(json_object_get(msg, "execute"));
    if (!cmd) {
        puts_(f, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid JSON\"}}\n");
        json_decref(msg);
        return;
    }
    if (!strcmp(cmd, "guest-sync-delimited")) {
        json_int_t id = json_integer_value(json_object_get(json_object_get(msg, "arguments"), "id"));
        if (f->mode == FAKE_STALE) {
            /* A reply to an earlier session's command, then an earlier sync's. */
            puts_(f, "{\"return\": {\"pid\": 4}}\n");
            puts_(f, "\xff{\"return\": 12345}\n");
        }
        _cleanup_free_ char *reply = vo_asprintf("\xff{\"return\": %lld}\n", (long long)id);
        puts_(f, reply);
    } else {
        f->commands++;
        switch (f->mode) {
        case FAKE_ERROR:
            puts_(f, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no such user\"}}\n");
            break;
        case FAKE_GARBAGE:
            puts_(f, "hello there\n");
            break;
        case FAKE_NO_REPLY:
            break;
        default:
            puts_(f, "\n{\"return\": {\"version\": \"7.2.0\", \"cmd\": \"");
            puts_(f, cmd);
            puts_(f, "\"}}\n");
        }
    }
    json_decref(msg);
}

static void *fake_main(void *userdata)
{
    Fake *f = userdata;
    if (f->mode == FAKE_CLOSE) {
        close(f->fd);
        return NULL;
    }
    char line[4096];
    size_t len = 0;
    char c;
    while (read(f->fd, &c, 1) == 1) {
        if (c == (char)0xff) {
            if (len == 0)
                f->saw_reset = true;
            len = 0;
            continue;
        }
        if (f->mode == FAKE_SILENT)
            continue;
        if (c != '\n') {
            if (len < sizeof(line) - 1)
                line[len++] = c;
            continue;
        }
        line[len] = 0;
        len = 0;
        answer(f, line);
    }
    close(f->fd);
    return NULL;
}

/* Starts a fake agent; returns the client's end. */
static int fake_start(Fake *f, FakeMode mode)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    *f = (Fake){ .fd = sv[1], .mode = mode };
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    return sv[0];
}

static void fake_join(Fake *f)
{
    pthread_join(f->thread, NULL);
}

static void test_sync_and_command(void **state)
{
    (void)state;
    FakeMode modes[] = { FAKE_GOOD, FAKE_STALE, FAKE_SPLIT };
    for (size_t i = 0; i < ELEMENTSOF(modes); i++) {
        Fake f;
        int fd = fake_start(&f, modes[i]);
        VoQemuAgent *a = NULL;
        _cleanup_free_ char *error = NULL;
        assert_int_equal(vo_qemu_agent_open_fd(fd, vo_now_ms() + 5000, &a, &error), 0);
        json_t *ret = NULL;
        assert_int_equal(vo_qemu_agent_call(a, "guest-info", NULL, 0, vo_now_ms() + 5000, &ret,
                                            &error), 0);
        assert_string_equal(json_string_value(json_object_get(ret, "version")), "7.2.0");
        assert_string_equal(json_string_value(json_object_get(ret, "cmd")), "guest-info");
        json_decref(ret);
        /* The session stays in step: a second command on it. */
        json_t *args = json_pack("{s:s}", "path", "/bin/true");
        assert_int_equal(vo_qemu_agent_call(a, "guest-exec", args, 0, vo_now_ms() + 5000, &ret,
                                            &error), 0);
        json_decref(args);
        assert_string_equal(json_string_value(json_object_get(ret, "cmd")), "guest-exec");
        json_decref(ret);
        assert_true(vo_qemu_agent_usable(a));
        vo_qemu_agent_close(a);
        fake_join(&f);
        assert_true(f.saw_reset);
        assert_int_equal(f.commands, 2);
    }
}

static void test_agent_error(void **state)
{
    (void)state;
    Fake f;
    int fd = fake_start(&f, FAKE_ERROR);
    VoQemuAgent *a = NULL;
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_qemu_agent_open_fd(fd, vo_now_ms() + 5000, &a, &error), 0);
    json_t *ret = (json_t *)1;
    assert_int_equal(vo_qemu_agent_call(a, "guest-set-user-password", NULL, 0,
                                        vo_now_ms() + 5000, &ret, &error), -EIO);
    assert_null(ret);
    assert_non_null(strstr(error, "guest-set-user-password"));
    assert_non_null(strstr(error, "no such user"));
    /* An error is an answer: the session is still in step. */
    assert_true(vo_qemu_agent_usable(a));
    vo_qemu_agent_close(a);
    fake_join(&f);
}

static void test_garbage(void **state)
{
    (void)state;
    Fake f;
    int fd = fake_start(&f, FAKE_GARBAGE);
    VoQemuAgent *a = NULL;
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_qemu_agent_open_fd(fd, vo_now_ms() + 5000, &a, &error), 0);
    assert_int_equal(vo_qemu_agent_call(a, "guest-info", NULL, 0, vo_now_ms() + 5000, NULL,
                                        &error), -EPROTO);
    assert_non_null(strstr(error, "not a JSON object"));
    assert_false(vo_qemu_agent_usable(a));
    vo_qemu_agent_close(a);
    fake_join(&f);
}

static void test_silent_agent_times_out(void **state)
{
    (void)state;
    Fake f;
    int fd = fake_start(&f, FAKE_SILENT);
    VoQemuAgent *a = NULL;
    _cleanup_free_ char *error = NULL;
    int64_t start = vo_now_ms();
    assert_int_equal(vo_qemu_agent_open_fd(fd, start + 200, &a, &error), -ETIMEDOUT);
    assert_null(a);
    assert_non_null(strstr(error, "the guest agent does not answer"));
    /* The client's end is closed: the fake sees EOF. */
    fake_join(&f);
}

static void test_closed_channel(void **state)
{
    (void)state;
    Fake f;
    int fd = fake_start(&f, FAKE_CLOSE);
    fake_join(&f);
    VoQemuAgent *a = NULL;
    _cleanup_free_ char *error = NULL;
    int r = vo_qemu_agent_open_fd(fd, vo_now_ms() + 5000, &a, &error);
    assert_true(r == -ECONNRESET || r == -EPIPE);
    assert_non_null(strstr(error, "the guest agent does not answer"));
}

static void test_no_reply_command(void **state)
{
    (void)state;
    Fake f;
    int fd = fake_start(&f, FAKE_NO_REPLY);
    VoQemuAgent *a = NULL;
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_qemu_agent_open_fd(fd, vo_now_ms() + 5000, &a, &error), 0);
    /* guest-shutdown answers nothing when it works. */
    assert_int_equal(vo_qemu_agent_call(a, "guest-shutdown", NULL, VO_QEMU_AGENT_NO_REPLY,
                                        vo_now_ms() + 100, NULL, &error), 0);
    assert_false(vo_qemu_agent_usable(a));
    /* Any other command that gets no reply: the agent does not answer. */
    vo_qemu_agent_close(a);
    fake_join(&f);
    fd = fake_start(&f, FAKE_NO_REPLY);
    assert_int_equal(vo_qemu_agent_open_fd(fd, vo_now_ms() + 5000, &a, &error), 0);
    free(error);
    error = NULL;
    assert_int_equal(vo_qemu_agent_call(a, "guest-info", NULL, 0, vo_now_ms() + 100, NULL,
                                        &error), -ETIMEDOUT);
    assert_non_null(strstr(error, "the guest agent does not answer"));
    assert_false(vo_qemu_agent_usable(a));
    assert_int_equal(vo_qemu_agent_call(a, "guest-info", NULL, 0, vo_now_ms() + 100, NULL,
                                        NULL), -EPROTO);
    vo_qemu_agent_close(a);
    fake_join(&f);
}

static void test_open_missing_socket(void **state)
{
    (void)state;
    VoQemuAgent *a = NULL;
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_qemu_agent_open("/nonexistent/agent.sock", vo_now_ms() + 100, &a,
                                        &error), -ECONNRESET);
    assert_non_null(strstr(error, "the guest agent does not answer"));
    assert_non_null(strstr(error, "/nonexistent/agent.sock"));
}

static void test_base64(void **state)
{
    (void)state;
    static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                         "Zm9vYmFy" };
    for (size_t i = 0; i < ELEMENTSOF(plain); i++) {
        _cleanup_free_ char *enc = vo_qemu_agent_b64_encode(plain[i], strlen(plain[i]));
        assert_string_equal(enc, coded[i]);
        _cleanup_free_ char *dec = NULL;
        size_t len = 0;
        assert_int_equal(vo_qemu_agent_b64_decode(coded[i], &dec, &len), 0);
        assert_int_equal(len, strlen(plain[i]));
        assert_memory_equal(dec, plain[i], len);
    }
    static const char *const bad[] = { "Zg=", "Z===", "Zg=a", "Zm9v!A==", "=Zm9" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        char *dec = NULL;
        size_t len;
        assert_int_equal(vo_qemu_agent_b64_decode(bad[i], &dec, &len), -EINVAL);
        assert_null(dec);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_and_command),
        cmocka_unit_test(test_agent_error),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_silent_agent_times_out),
        cmocka_unit_test(test_closed_channel),
        cmocka_unit_test(test_no_reply_command),
        cmocka_unit_test(test_open_missing_socket),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
