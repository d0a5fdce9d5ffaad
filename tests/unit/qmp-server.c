/* qmp-server.c: the scripted fake QMP server of the unit tests (see
 * qmp-server.h). */
#include "qmp-server.h"

#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "util/util.h"

void server_fail(Server *s, const char *what, const char *line)
{
    if (!s->error[0])
        snprintf(s->error, sizeof(s->error), "%s: %s", what, line ? line : "(eof)");
}

static bool send_chunk(int fd, const char *chunk, long long id)
{
    char out[4096];
    size_t n = 0;
    for (const char *p = chunk; *p && n < sizeof(out) - 32;) {
        if (strncmp(p, "$ID", 3) == 0 || strncmp(p, "$OLD", 4) == 0) {
            bool old = p[1] == 'O';
            n += (size_t)sprintf(out + n, "%lld", old ? id - 1 : id);
            p += old ? 4 : 3;
        } else {
            out[n++] = *p++;
        }
    }
    return send(fd, out, n, MSG_NOSIGNAL) == (ssize_t)n;
}

static void check_command(Server *s, const Step *st, const char *line, long long *id)
{
    json_t *m = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
    json_t *args = json_object_get(m, "arguments");
    json_t *want = st->args ? json_loads(st->args, 0, NULL) : NULL;
    const char *key = st->oob ? "exec-oob" : "execute";
    if (!json_is_string(json_object_get(m, key)) ||
        strcmp(json_string_value(json_object_get(m, key)), st->expect) != 0)
        server_fail(s, "unexpected command", line);
    else if (!json_is_integer(json_object_get(m, "id")))
        server_fail(s, "command without numeric id", line);
    else if (want ? !json_equal(want, args) : args != NULL)
        server_fail(s, "unexpected arguments", line);
    *id = json_integer_value(json_object_get(m, "id"));
    json_decref(want);
    json_decref(m);
}

void *server_main(void *arg)
{
    Server *s = arg;
    FILE *in = fdopen(s->fd, "r");
    char *line = NULL;
    size_t cap = 0;
    for (const Step *st = s->steps; !STEP_END(st); st++) {
        long long id = 0;
        if (st->expect) {
            if (getline(&line, &cap, in) < 0) {
                server_fail(s, "connection closed, expected", st->expect);
                goto out;
            }
            check_command(s, st, line, &id);
        }
        if (st->custom)
            st->custom(s->fd);
        for (size_t i = 0; i < ELEMENTSOF(st->send) && st->send[i]; i++) {
            if (st->delay_ms)
                poll(NULL, 0, st->delay_ms);
            if (!send_chunk(s->fd, st->send[i], id))
                goto out;
        }
        if (st->close)
            goto out;
    }
    /* Script done: the client must not send anything else before closing. */
    if (getline(&line, &cap, in) >= 0)
        server_fail(s, "command after end of script", line);
out:
    free(line);
    fclose(in);
    return NULL;
}

int server_start(Server *s, const Step *steps)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    *s = (Server){ .steps = steps, .fd = sv[1] };
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    return sv[0];
}

void server_join(Server *s)
{
    pthread_join(s->thread, NULL);
    if (s->error[0])
        fail_msg("fake QMP server: %s", s->error);
}

VoQmp *client_open(Server *s, const Step *steps)
{
    VoQmp *q = NULL;
    assert_int_equal(vo_qmp_open_fd(server_start(s, steps), 1000, &q), 0);
    return q;
}