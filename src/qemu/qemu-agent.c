/* qemu-agent.c: the guest agent client (see qemu-agent.h). The agent speaks
 * QMP-style JSON, one reply per line; guest-sync-delimited's reply is the
 * only one preceded by a 0xFF byte, which is how a session finds its place
 * in a stream that may still carry replies to an earlier, abandoned
 * session's commands. */
#include "qemu/qemu-agent.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/unix-socket.h"
#include "util/util.h"

struct VoQemuAgent {
    int fd;
    bool broken; /* a timeout or a broken stream: out of step */
    char *buf;   /* bytes read and not yet taken */
    size_t len, size;
};

void vo_qemu_agent_close(VoQemuAgent *a)
{
    if (!a)
        return;
    if (a->fd >= 0)
        close(a->fd);
    free(a->buf);
    free(a);
}

bool vo_qemu_agent_usable(const VoQemuAgent *a)
{
    return a && !a->broken;
}

static int left_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - vo_now_ms();
    return left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
}

static int write_all(VoQemuAgent *a, const char *data, size_t len, int64_t deadline_ms)
{
    while (len > 0) {
        ssize_t n = send(a->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        struct pollfd p = { .fd = a->fd, .events = POLLOUT };
        int ms = left_ms(deadline_ms);
        if (ms == 0 || poll(&p, 1, ms) == 0)
            return -ETIMEDOUT;
    }
    return 0;
}

/* Reads what is there (waiting until the deadline for something). */
static int read_more(VoQemuAgent *a, int64_t deadline_ms)
{
    if (a->len >= VO_QEMU_AGENT_MAX_LINE)
        return -EMSGSIZE;
    if (a->size - a->len < 4096) {
        a->size = a->size ? a->size * 2 : 8192;
        a->buf = realloc(a->buf, a->size);
        if (!a->buf)
            abort();
    }
    for (;;) {
        struct pollfd p = { .fd = a->fd, .events = POLLIN };
        int ms = left_ms(deadline_ms);
        int r = ms == 0 ? 0 : poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        ssize_t n = recv(a->fd, a->buf + a->len, a->size - a->len - 1, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ECONNRESET;
        a->len += (size_t)n;
        return 0;
    }
}

static void drop(VoQemuAgent *a, size_t n)
{
    memmove(a->buf, a->buf + n, a->len - n);
    a->len -= n;
}

/* The next non-empty line (without its newline), malloc'd. */
static int read_line(VoQemuAgent *a, int64_t deadline_ms, char **ret)
{
    for (;;) {
        char *nl = a->len ? memchr(a->buf, '\n', a->len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - a->buf);
            char *line = malloc(n + 1);
            if (!line)
                abort();
            memcpy(line, a->buf, n);
            line[n] = 0;
            drop(a, n + 1);
            if (strspn(line, " \t\r") == n) {
                free(line);
                continue;
            }
            *ret = line;
            return 0;
        }
        int r = read_more(a, deadline_ms);
        if (r < 0)
            return r;
    }
}

/* Skips up to and including the next 0xFF byte. */
static int skip_to_delimiter(VoQemuAgent *a, int64_t deadline_ms)
{
    for (;;) {
        char *ff = a->len ? memchr(a->buf, 0xff, a->len) : NULL;
        if (ff) {
            drop(a, (size_t)(ff - a->buf) + 1);
            return 0;
        }
        a->len = 0;
        int r = read_more(a, deadline_ms);
        if (r < 0)
            return r;
    }
}

static int send_command(VoQemuAgent *a, const char *cmd, json_t *args, int64_t deadline_ms)
{
    json_t *msg = json_pack("{s:s}", "execute", cmd);
    if (args)
        json_object_set(msg, "arguments", args);
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!text)
        abort();
    _cleanup_free_ char *line = vo_asprintf("%s\n", text);
    free(text);
    return write_all(a, line, strlen(line), deadline_ms);
}

static int io_error(VoQemuAgent *a, int r, const char *what, char **ret_error)
{
    a->broken = true;
    if (r == -ETIMEDOUT)
        return vo_error_set(ret_error, r, "the guest agent does not answer (%s: no reply in time; "
                            "is qemu-guest-agent running in the guest?)", what);
    if (r == -ECONNRESET || r == -EPIPE)
        return vo_error_set(ret_error, -ECONNRESET, "the guest agent does not answer (%s: its "
                            "channel closed)", what);
    if (r == -EMSGSIZE)
        return vo_error_set(ret_error, -EPROTO, "the guest agent sent a reply to %s longer than "
                            "%u bytes", what, VO_QEMU_AGENT_MAX_LINE);
    return vo_error_set(ret_error, r, "the guest agent does not answer (%s: %s)", what,
                        strerror(-r));
}

/* guest-sync-delimited with a random id: 0xFF first resets the agent's
 * parser (its complaint about the byte, and any old replies, come before
 * the 0xFF that precedes the sync reply and are skipped); a reply with
 * another id (an earlier sync's) is skipped too. */
static int sync_session(VoQemuAgent *a, int64_t deadline_ms, char **ret_error)
{
    uint32_t id;
    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
        id = (uint32_t)vo_now_us();
    id &= 0x7fffffff;
    static const char reset = (char)0xff;
    int r = write_all(a, &reset, 1, deadline_ms);
    if (r >= 0) {
        json_t *args = json_pack("{s:I}", "id", (json_int_t)id);
        r = send_command(a, "guest-sync-delimited", args, deadline_ms);
        json_decref(args);
    }
    for (int skipped = 0; r >= 0; skipped++) {
        r = skip_to_delimiter(a, deadline_ms);
        if (r < 0)
            break;
        _cleanup_free_ char *line = NULL;
        r = read_line(a, deadline_ms, &line);
        if (r < 0)
            break;
        json_t *reply = json_loads(line, 0, NULL);
        json_t *ret = json_object_get(reply, "return");
        bool ours = json_is_integer(ret) && json_integer_value(ret) == (json_int_t)id;
        json_decref(reply);
        if (ours)
            return 0;
        if (skipped > 64) {
            a->broken = true;
            return vo_error_set(ret_error, -EPROTO, "the guest agent's channel carries "
                                "something else: no reply to guest-sync-delimited");
        }
    }
    return io_error(a, r, "guest-sync-delimited", ret_error);
}

int vo_qemu_agent_open_fd(int fd, int64_t deadline_ms, VoQemuAgent **ret, char **ret_error)
{
    VoQemuAgent *a = vo_malloc0(sizeof(*a));
    a->fd = fd;
    int r = sync_session(a, deadline_ms, ret_error);
    if (r < 0) {
        vo_qemu_agent_close(a);
        return r;
    }
    *ret = a;
    return 0;
}

int vo_qemu_agent_open(const char *path, int64_t deadline_ms, VoQemuAgent **ret,
                       char **ret_error)
{
    int fd = vo_unix_connect_wait(path, left_ms(deadline_ms));
    if (fd < 0)
        return vo_error_set(ret_error, fd == -ENOENT || fd == -ECONNREFUSED ? -ECONNRESET : fd,
                            "the guest agent does not answer (cannot connect to its channel "
                            "%s: %s)", path, strerror(-fd));
    return vo_qemu_agent_open_fd(fd, deadline_ms, ret, ret_error);
}

int vo_qemu_agent_call(VoQemuAgent *a, const char *cmd, json_t *args, unsigned flags,
                       int64_t deadline_ms, json_t **ret, char **ret_error)
{
    if (ret)
        *ret = NULL;
    if (a->broken)
        return vo_error_set(ret_error, -EPROTO, "the guest agent session is out of step");
    int r = send_command(a, cmd, args, deadline_ms);
    if (r < 0)
        return io_error(a, r, cmd, ret_error);
    _cleanup_free_ char *line = NULL;
    r = read_line(a, deadline_ms, &line);
    if (r == -ETIMEDOUT && (flags & VO_QEMU_AGENT_NO_REPLY)) {
        a->broken = true; /* an error may still come: never reused */
        return 0;
    }
    if (r == -ECONNRESET && (flags & VO_QEMU_AGENT_NO_REPLY))
        return 0;
    if (r < 0)
        return io_error(a, r, cmd, ret_error);
    json_error_t jerr;
    json_t *reply = json_loads(line, 0, &jerr);
    if (!json_is_object(reply)) {
        json_decref(reply);
        a->broken = true;
        return vo_error_set(ret_error, -EPROTO, "the guest agent answered %s with something "
                            "that is not a JSON object", cmd);
    }
    json_t *err = json_object_get(reply, "error");
    json_t *val = json_object_get(reply, "return");
    if (err) {
        const char *desc = json_string_value(json_object_get(err, "desc"));
        r = vo_error_set(ret_error, -EIO, "the guest agent failed %s: %s", cmd,
                         desc ? desc : "no reason given");
    } else if (!val) {
        a->broken = true;
        r = vo_error_set(ret_error, -EPROTO, "the guest agent answered %s with neither "
                         "\"return\" nor \"error\"", cmd);
    } else {
        if (ret)
            *ret = json_incref(val);
        r = 0;
    }
    json_decref(reply);
    return r;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *vo_qemu_agent_b64_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        abort();
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
    *o = 0;
    return out;
}

int vo_qemu_agent_b64_decode(const char *text, char **ret, size_t *ret_len)
{
    size_t len = strlen(text);
    if (len % 4)
        return -EINVAL;
    char *out = malloc(len / 4 * 3 + 1);
    if (!out)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = text[i + k];
            const char *at = c ? strchr(b64_alphabet, c) : NULL;
            if (c == '=' && i + 4 == len && k >= 2 && (k == 3 || text[i + 3] == '=')) {
                pad++;
                v <<= 6;
                continue;
            }
            if (!at || pad) {
                free(out);
                return -EINVAL;
            }
            v = v << 6 | (uint32_t)(at - b64_alphabet);
        }
        out[n++] = (char)(v >> 16);
        if (pad < 2)
            out[n++] = (char)(v >> 8);
        if (pad < 1)
            out[n++] = (char)v;
    }
    out[n] = 0;
    *ret = out;
    *ret_len = n;
    return 0;
}
