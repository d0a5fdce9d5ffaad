/* qmp.c: the QMP client declared in qmp.h: a non-blocking unix socket, a line
 * buffer that splits newline-terminated JSON messages, id-matched command
 * replies with deadlines (in band or out of band: a reply may overtake
 * another, each is matched by its id), and a bounded FIFO of asynchronous
 * events. */
#include "qmp.h"
#include "util/unix-socket.h"
#include "util/util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#define QMP_MAX_MESSAGE (1024 * 1024) /* bytes in one message, newline excluded */
#define QMP_MAX_EVENTS 1024           /* queued events; the oldest are dropped beyond */
#define QMP_READ_CHUNK 65536

struct VoQmp {
    int fd;
    char *buf;        /* received bytes not yet consumed */
    size_t len, size;
    size_t scanned;   /* buf[0..scanned) holds no '\n' */
    int64_t next_id;
    json_t *events;   /* array used as a FIFO */
    size_t events_dropped;
    int dead;         /* sticky error once the stream is unusable, else 0 */
    bool oob;         /* the "oob" capability negotiated: exec-oob is understood */
    int64_t unanswered; /* with oob: the in-band command given up on whose reply
                         * has not come (0: none); no other goes in band until */
};

/* A negative timeout means no deadline. */
static int64_t deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? INT64_MAX : vo_now_ms() + timeout_ms;
}

static int fail(VoQmp *q, int r)
{
    if (r < 0 && r != -ETIMEDOUT && r != -EIO && !q->dead)
        q->dead = r;
    return r;
}

/* Wait for fd to become ready for events; 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int timeout = -1;
        if (deadline != INT64_MAX) {
            int64_t left = deadline - vo_now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            timeout = left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd p = { .fd = fd, .events = events };
        int r = poll(&p, 1, timeout);
        if (r > 0)
            return 0; /* also on POLLHUP/POLLERR: the following read/send reports it */
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

/* Read at least one byte into the buffer, waiting until deadline. */
static int fill(VoQmp *q, int64_t deadline)
{
    if (q->size - q->len < QMP_READ_CHUNK) {
        q->size = q->len + QMP_READ_CHUNK;
        q->buf = realloc(q->buf, q->size);
        if (!q->buf)
            abort();
    }
    for (;;) {
        ssize_t n = read(q->fd, q->buf + q->len, q->size - q->len);
        if (n > 0) {
            q->len += (size_t)n;
            return 0;
        }
        if (n == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            log_debug("QMP read failed: %s", strerror(errno));
            return -ECONNRESET;
        }
        int r = wait_fd(q->fd, POLLIN, deadline);
        if (r < 0)
            return r;
    }
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(" \t\r", s[i])) /* strchr finds the NUL too */
            return false;
    return true;
}

/* line (n bytes) with ".0" after each integer outside strings that int64
 * cannot hold, which jansson then reads as a real (*ret_n bytes); NULL
 * when there is none.
 * QEMU's uint64 fields can exceed INT64_MAX (the balloon's unreported
 * guest statistics are 2^64 - 1), and jansson refuses such an integer. */
static char *widen_big_integers(const char *line, size_t n, size_t *ret_n)
{
    _cleanup_free_ char *src = vo_malloc0(n + 1);
    memcpy(src, line, n);
    char *out = vo_malloc0(2 * n + 1), *o = out;
    bool widened = false, in_string = false;
    for (const char *p = src; p < src + n;) {
        if (in_string) {
            if (*p == '\\' && p + 1 < src + n)
                *o++ = *p++;
            else if (*p == '"')
                in_string = false;
            *o++ = *p++;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            char *end;
            errno = 0;
            (void)strtoll(p, &end, 10);
            bool real = *end && strchr(".eE", *end);
            bool big = errno == ERANGE && !real;
            while (real && *end && strchr("0123456789.eE+-", *end))
                end++; /* its fraction and exponent, never widened */
            if (end == p) /* a lone '-': not a number, left to the parser */
                end++;
            memcpy(o, p, (size_t)(end - p));
            o += end - p;
            if (big) {
                memcpy(o, ".0", 2);
                o += 2;
                widened = true;
            }
            p = end;
        } else {
            in_string = *p == '"';
            *o++ = *p++;
        }
    }
    if (!widened) {
        free(out);
        return NULL;
    }
    *ret_n = (size_t)(o - out);
    return out;
}

int vo_qmp_parse_line(const char *line, size_t n, json_t **ret)
{
    *ret = NULL;
    if (n > QMP_MAX_MESSAGE) {
        log_warn("QMP message exceeds %d bytes", QMP_MAX_MESSAGE);
        return -EMSGSIZE;
    }
    if (is_blank(line, n))
        return 0;
    json_error_t err;
    json_t *msg = json_loadb(line, n, JSON_REJECT_DUPLICATES, &err);
    size_t wide_n = 0;
    _cleanup_free_ char *wide = msg ? NULL : widen_big_integers(line, n, &wide_n);
    if (wide) {
        log_debug("QMP: integers beyond int64 in a message, read as reals");
        msg = json_loadb(wide, wide_n, JSON_REJECT_DUPLICATES, &err);
    }
    if (!json_is_object(msg)) {
        log_warn("QMP sent malformed message: %s", msg ? "not an object" : err.text);
        json_decref(msg);
        return -EBADMSG;
    }
    *ret = msg;
    return 0;
}

VoQmpKind vo_qmp_message_kind(json_t *msg)
{
    if (json_object_get(msg, "return"))
        return VO_QMP_RETURN;
    if (json_object_get(msg, "error"))
        return VO_QMP_ERROR;
    if (json_is_string(json_object_get(msg, "event")))
        return VO_QMP_EVENT;
    if (json_object_get(msg, "QMP"))
        return VO_QMP_GREETING;
    return VO_QMP_OTHER;
}

/* Next complete message as a JSON object. -ETIMEDOUT leaves partial input buffered. */
static int read_message(VoQmp *q, int64_t deadline, json_t **ret)
{
    if (q->dead)
        return q->dead;
    for (;;) {
        char *nl = memchr(q->buf + q->scanned, '\n', q->len - q->scanned);
        if (!nl) {
            q->scanned = q->len;
            if (q->len > QMP_MAX_MESSAGE) {
                log_warn("QMP message exceeds %d bytes", QMP_MAX_MESSAGE);
                return fail(q, -EMSGSIZE);
            }
            int r = fill(q, deadline);
            if (r < 0)
                return fail(q, r);
            continue;
        }
        size_t n = (size_t)(nl - q->buf);
        if (n > QMP_MAX_MESSAGE) {
            log_warn("QMP message exceeds %d bytes", QMP_MAX_MESSAGE);
            return fail(q, -EMSGSIZE);
        }
        json_t *msg = NULL;
        int r = vo_qmp_parse_line(q->buf, n, &msg);
        memmove(q->buf, nl + 1, q->len - n - 1);
        q->len -= n + 1;
        q->scanned = 0;
        if (r < 0)
            return fail(q, r);
        if (!msg)
            continue; /* blank line */
        *ret = msg;
        return 0;
    }
}

/* A reply nobody waits for any more: the one given up on, answered at last. */
static void drop_reply(VoQmp *q, json_t *msg)
{
    json_t *jid = json_object_get(msg, "id");
    if (q->unanswered && json_is_integer(jid) && json_integer_value(jid) == q->unanswered)
        q->unanswered = 0;
    log_debug("QMP: dropping reply nobody is waiting for");
    json_decref(msg);
}

static void queue_event(VoQmp *q, json_t *msg)
{
    if (!json_is_string(json_object_get(msg, "event"))) {
        log_debug("QMP: dropping message that is neither reply nor event");
        json_decref(msg);
        return;
    }
    if (json_array_size(q->events) >= QMP_MAX_EVENTS) {
        if (q->events_dropped++ % QMP_MAX_EVENTS == 0)
            log_warn("QMP event queue full, dropping oldest events (%zu so far)",
                     q->events_dropped);
        json_array_remove(q->events, 0);
    }
    json_array_append_new(q->events, msg);
}

/* Reads one message nobody waits for: a reply is dropped, an event queued. */
static int read_aside(VoQmp *q, int64_t deadline)
{
    json_t *msg;
    int r = read_message(q, deadline, &msg);
    if (r < 0)
        return r;
    if (vo_qmp_message_kind(msg) <= VO_QMP_ERROR)
        drop_reply(q, msg);
    else
        queue_event(q, msg);
    return 0;
}

/* Sends s whole; when pass_fd >= 0 it rides along (SCM_RIGHTS) with the
 * first bytes, which is how QEMU's getfd receives a file descriptor. */
static int send_all(VoQmp *q, const char *s, size_t n, int pass_fd, int64_t deadline)
{
    while (n > 0) {
        ssize_t k;
        if (pass_fd >= 0) {
            struct iovec iov = { .iov_base = (void *)s, .iov_len = n };
            union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
            } control;
            memset(&control, 0, sizeof(control));
            struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                                 .msg_controllen = sizeof(control.buf) };
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
            k = sendmsg(q->fd, &mh, MSG_NOSIGNAL);
            if (k >= 0)
                pass_fd = -1; /* delivered with these bytes */
        } else {
            k = send(q->fd, s, n, MSG_NOSIGNAL);
        }
        if (k >= 0) {
            s += k;
            n -= (size_t)k;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            int r = wait_fd(q->fd, POLLOUT, deadline);
            if (r < 0)
                return r;
            continue;
        }
        return errno == EPIPE ? -ECONNRESET : -errno;
    }
    return 0;
}

/* Sends cmd (out of band when oob and negotiated) and waits for the reply
 * carrying its id: replies to earlier commands given up on (in band ones a
 * busy QEMU answers late, after this out-of-band one) are dropped. */
static int execute_until(VoQmp *q, const char *cmd, json_t *args, int pass_fd, bool oob,
                         int64_t deadline, json_t **ret_return, char **ret_error)
{
    if (q->dead)
        return q->dead;
    bool in_band = !oob || !q->oob;
    /* With OOB, QEMU reads in-band commands ahead while its main loop is
     * busy and stops reading at 8, out-of-band ones included: one given up
     * on is waited for (QEMU would run this one after it anyway) before
     * another goes in band, so out-of-band commands always get through. */
    while (in_band && q->unanswered) {
        int r = read_aside(q, deadline);
        if (r < 0)
            return r;
    }
    int64_t id = q->next_id++;
    json_t *req = json_pack("{s:s, s:I}", in_band ? "execute" : "exec-oob", cmd, "id",
                            (json_int_t)id);
    if (args)
        json_object_set(req, "arguments", args);
    _cleanup_free_ char *line = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!line)
        return -EINVAL;
    _cleanup_free_ char *framed = vo_asprintf("%s\n", line);
    int r = send_all(q, framed, strlen(framed), pass_fd, deadline);
    if (r < 0) {
        /* A partially sent command would desynchronise the stream. */
        q->dead = r == -ETIMEDOUT ? -ECONNRESET : r;
        return r;
    }

    for (;;) {
        json_t *msg;
        r = read_message(q, deadline, &msg);
        if (r == -ETIMEDOUT && in_band && q->oob)
            q->unanswered = id;
        if (r < 0)
            return r;
        json_t *ret = json_object_get(msg, "return"), *err = json_object_get(msg, "error");
        if (!ret && !err) {
            queue_event(q, msg);
            continue;
        }
        json_t *jid = json_object_get(msg, "id");
        if (!json_is_integer(jid) || json_integer_value(jid) != id) {
            log_debug("QMP: a reply with another id (waiting for %" PRId64 ")", id);
            drop_reply(q, msg);
            continue;
        }
        if (ret) {
            if (ret_return)
                *ret_return = json_incref(ret);
            r = 0;
        } else {
            const char *cls = json_string_value(json_object_get(err, "class"));
            const char *desc = json_string_value(json_object_get(err, "desc"));
            if (ret_error)
                *ret_error = vo_asprintf("%s: %s", cls ? cls : "GenericError",
                                         desc ? desc : "unknown error");
            r = -EIO;
        }
        json_decref(msg);
        /* Queue events that came along with the reply, so that a caller polling
         * vo_qmp_fd() never misses messages already sitting in our buffer. */
        vo_qmp_pump(q);
        return r;
    }
}

int vo_qmp_execute(VoQmp *q, const char *cmd, json_t *args, int timeout_ms,
                   json_t **ret_return, char **ret_error)
{
    return execute_until(q, cmd, args, -1, false, deadline_after(timeout_ms), ret_return,
                         ret_error);
}

int vo_qmp_execute_oob(VoQmp *q, const char *cmd, json_t *args, int timeout_ms,
                       json_t **ret_return, char **ret_error)
{
    return execute_until(q, cmd, args, -1, true, deadline_after(timeout_ms), ret_return,
                         ret_error);
}

bool vo_qmp_oob(VoQmp *q)
{
    return q->oob;
}

int vo_qmp_execute_fd(VoQmp *q, const char *cmd, json_t *args, int fd, int timeout_ms,
                      json_t **ret_return, char **ret_error)
{
    if (fd < 0)
        return -EBADF;
    return execute_until(q, cmd, args, fd, false, deadline_after(timeout_ms), ret_return,
                         ret_error);
}

static bool offers_capability(json_t *qmp, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(qmp, "capabilities"), i, c)
        if (json_is_string(c) && !strcmp(json_string_value(c), name))
            return true;
    return false;
}

static int open_fd_until(int fd, int64_t deadline, VoQmp **ret)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    VoQmp *q = vo_malloc0(sizeof(*q));
    q->fd = fd;
    q->next_id = 1;
    q->events = json_array();
    q->size = QMP_READ_CHUNK;
    q->buf = vo_malloc0(q->size);

    _cleanup_free_ char *error = NULL;
    json_t *greeting;
    int r = read_message(q, deadline, &greeting);
    if (r < 0)
        goto fail;
    json_t *qmp = json_object_get(greeting, "QMP");
    if (!json_is_object(qmp)) {
        log_warn("QMP: expected a greeting, got something else");
        json_decref(greeting);
        r = -EPROTO;
        goto fail;
    }
    json_t *ver = json_object_get(json_object_get(qmp, "version"), "qemu");
    log_debug("QMP greeting from QEMU %d.%d.%d",
              (int)json_integer_value(json_object_get(ver, "major")),
              (int)json_integer_value(json_object_get(ver, "minor")),
              (int)json_integer_value(json_object_get(ver, "micro")));
    bool offers_oob = offers_capability(qmp, "oob");
    json_decref(greeting);

    /* Out of band wherever the monitor offers it (a socket chardev does):
     * a QEMU whose main loop waits (a post-copy destination blocked on a
     * page it lacks) still answers migrate-pause and migrate-recover. */
    json_t *enable = offers_oob ? json_pack("{s:[s]}", "enable", "oob") : NULL;
    r = execute_until(q, "qmp_capabilities", enable, -1, false, deadline, NULL, &error);
    json_decref(enable);
    q->oob = offers_oob && r >= 0;
    if (r == -EIO && offers_oob) { /* refused: everything in band, as before */
        log_warn("QMP: out-of-band execution refused (%s); commands go in band", error);
        free(error);
        error = NULL;
        r = execute_until(q, "qmp_capabilities", NULL, -1, false, deadline, NULL, &error);
    }
    if (r < 0) {
        if (error)
            log_warn("QMP capabilities negotiation failed: %s", error);
        goto fail;
    }
    *ret = q;
    return 0;
fail:
    vo_qmp_close(q);
    return r;
}

int vo_qmp_open_fd(int fd, int timeout_ms, VoQmp **ret)
{
    return open_fd_until(fd, deadline_after(timeout_ms), ret);
}

int vo_qmp_connect(const char *socket_path, int timeout_ms, VoQmp **ret)
{
    int64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        int fd = vo_unix_connect(socket_path, SOCK_NONBLOCK);
        if (fd >= 0)
            return open_fd_until(fd, deadline, ret);
        /* QEMU may not have created or started listening on the socket yet. */
        if (fd != -ECONNREFUSED && fd != -ENOENT && fd != -EAGAIN && fd != -EINTR)
            return fd;
        int64_t left = deadline - vo_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        poll(NULL, 0, left < 20 ? (int)left : 20);
    }
}

VoQmp *vo_qmp_close(VoQmp *q)
{
    if (!q)
        return NULL;
    if (q->fd >= 0)
        close(q->fd);
    free(q->buf);
    json_decref(q->events);
    free(q);
    return NULL;
}

int vo_qmp_fd(VoQmp *q)
{
    return q->fd;
}

json_t *vo_qmp_next_event(VoQmp *q)
{
    if (json_array_size(q->events) == 0)
        return NULL;
    json_t *ev = json_incref(json_array_get(q->events, 0));
    json_array_remove(q->events, 0);
    return ev;
}

int vo_qmp_pump(VoQmp *q)
{
    for (;;) {
        int r = read_aside(q, vo_now_ms());
        if (r == -ETIMEDOUT)
            return 0; /* nothing more to read right now */
        if (r < 0)
            return r;
    }
}

/* Whether evname is name or one of the names it lists ("A|B"). */
static bool name_listed(const char *evname, const char *name)
{
    size_t len = strlen(evname);
    for (const char *at = name;; at++) {
        const char *bar = strchr(at, '|');
        size_t n = bar ? (size_t)(bar - at) : strlen(at);
        if (n == len && !strncmp(at, evname, len))
            return true;
        if (!bar)
            return false;
        at = bar;
    }
}

static bool event_matches(json_t *ev, const char *name, const char *key, const char *value)
{
    const char *evname = json_string_value(json_object_get(ev, "event"));
    if (!evname || !name_listed(evname, name))
        return false;
    if (!key)
        return true;
    const char *v = json_string_value(json_object_get(json_object_get(ev, "data"), key));
    return v && !strcmp(v, value);
}

/* Removes and returns the first queued event that matches, or NULL. */
static json_t *take_queued(VoQmp *q, const char *name, const char *key, const char *value)
{
    for (size_t i = 0; i < json_array_size(q->events); i++) {
        json_t *ev = json_array_get(q->events, i);
        if (event_matches(ev, name, key, value)) {
            json_incref(ev);
            json_array_remove(q->events, i);
            return ev;
        }
    }
    return NULL;
}

int vo_qmp_wait_event(VoQmp *q, const char *name, const char *key, const char *value,
                      int timeout_ms, json_t **ret_event)
{
    int64_t deadline = deadline_after(timeout_ms);
    json_t *ev = take_queued(q, name, key, value);
    while (!ev) {
        json_t *msg;
        int r = read_message(q, deadline, &msg);
        if (r < 0)
            return r;
        if (vo_qmp_message_kind(msg) <= VO_QMP_ERROR) {
            drop_reply(q, msg);
        } else if (event_matches(msg, name, key, value)) {
            ev = msg;
        } else {
            queue_event(q, msg); /* stays for whoever waits for it (e.g. SHUTDOWN) */
        }
    }
    if (ret_event)
        *ret_event = ev;
    else
        json_decref(ev);
    return 0;
}

int vo_qmp_query_status(VoQmp *q, int timeout_ms, char **ret_status, int *ret_running)
{
    json_t *ret = NULL;
    _cleanup_free_ char *error = NULL;
    int r = vo_qmp_execute(q, "query-status", NULL, timeout_ms, &ret, &error);
    if (r < 0) {
        if (error)
            log_warn("QMP query-status failed: %s", error);
        return r;
    }
    const char *status = json_string_value(json_object_get(ret, "status"));
    json_t *running = json_object_get(ret, "running");
    if (!status || !json_is_boolean(running)) {
        log_warn("QMP query-status returned an unexpected object");
        json_decref(ret);
        return -EBADMSG;
    }
    if (ret_status)
        *ret_status = vo_strdup(status);
    if (ret_running)
        *ret_running = json_is_true(running);
    json_decref(ret);
    return 0;
}

static int simple_command(VoQmp *q, const char *cmd, int timeout_ms)
{
    _cleanup_free_ char *error = NULL;
    int r = vo_qmp_execute(q, cmd, NULL, timeout_ms, NULL, &error);
    if (r < 0 && error)
        log_warn("QMP %s failed: %s", cmd, error);
    return r;
}

int vo_qmp_stop(VoQmp *q, int timeout_ms)
{
    return simple_command(q, "stop", timeout_ms);
}

int vo_qmp_cont(VoQmp *q, int timeout_ms)
{
    return simple_command(q, "cont", timeout_ms);
}

int vo_qmp_system_powerdown(VoQmp *q, int timeout_ms)
{
    return simple_command(q, "system_powerdown", timeout_ms);
}

int vo_qmp_system_reset(VoQmp *q, int timeout_ms)
{
    return simple_command(q, "system_reset", timeout_ms);
}

int vo_qmp_quit(VoQmp *q, int timeout_ms)
{
    /* QEMU may exit and close the socket before its reply is read: that is success too. */
    int r = simple_command(q, "quit", timeout_ms);
    return r == -ECONNRESET ? 0 : r;
}
