/* unixhttp.c: one HTTP/1.1 request with an in-memory body over vireod's Unix
 * socket ("Connection: close": a connection per request, which costs
 * microseconds on a Unix socket), the answer read whole: Content-Length or
 * chunked, within one deadline. Uploads and downloads go through libcurl
 * (http.c); everything else comes here. */
#include "unixhttp.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/unix-socket.h"
#include "util/util.h"

#define CONNECT_RETRY_MS 10 /* while vireod's listen backlog is full */

static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - vo_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = { .fd = fd, .events = events };
        int r = poll(&p, 1, (int)(left > INT32_MAX ? INT32_MAX : left));
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

static int connect_by(const char *path, int64_t deadline)
{
    for (;;) {
        int fd = vo_unix_connect(path, SOCK_NONBLOCK);
        if (fd != -EAGAIN)
            return fd;
        if (vo_now_ms() >= deadline)
            return -ETIMEDOUT;
        (void)poll(NULL, 0, CONNECT_RETRY_MS);
    }
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int r = wait_fd(fd, POLLOUT, deadline);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The value of header name (NUL-terminated copy, or NULL) in head, which
 * ends before its final CRLF CRLF. */
static char *header_value(const char *head, size_t head_len, const char *name)
{
    size_t name_len = strlen(name);
    const char *end = head + head_len;
    const char *line = memmem(head, head_len, "\r\n", 2);
    while (line && line < end) {
        line += 2;
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - line) > name_len && line[name_len] == ':' &&
            strncasecmp(line, name, name_len) == 0) {
            const char *v = line + name_len + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            char *copy = vo_malloc0((size_t)(eol - v) + 1);
            memcpy(copy, v, (size_t)(eol - v));
            return copy;
        }
        line = eol;
    }
    return NULL;
}

/* Decodes a complete chunked body in place; -EBADMSG when it is malformed
 * or cut short. */
static int dechunk(char *buf, size_t *len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *eol = memmem(buf + in, *len - in, "\r\n", 2);
        if (!eol)
            return -EBADMSG;
        char *num_end = NULL;
        unsigned long long size = strtoull(buf + in, &num_end, 16);
        if (num_end == buf + in)
            return -EBADMSG;
        size_t data = (size_t)(eol - buf) + 2;
        if (size == 0) {
            *len = out;
            return 0; /* trailers, if any, are of no interest */
        }
        if (size > *len - data || *len - data - size < 2)
            return -EBADMSG;
        memmove(buf + out, buf + data, size);
        out += size;
        in = data + size + 2;
    }
}

int unix_http_request(const char *socket_path, const char *method, const char *path,
                      const char *content_type, const char *body, size_t body_len,
                      const char *user_agent, int timeout_ms, size_t max_len,
                      UnixHttpReply *ret, int *ret_connect_failed)
{
    *ret = (UnixHttpReply){ 0 };
    *ret_connect_failed = 0;
    int64_t deadline = vo_now_ms() + timeout_ms;
    _cleanup_close_ int fd = connect_by(socket_path, deadline);
    if (fd < 0) {
        *ret_connect_failed = 1;
        return fd;
    }

    _cleanup_free_ char *head = NULL;
    if (body)
        head = vo_asprintf("%s %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: %s\r\n"
                           "Accept: application/json\r\nConnection: close\r\n"
                           "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                           method, path, user_agent, content_type, body_len);
    else
        head = vo_asprintf("%s %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: %s\r\n"
                           "Accept: application/json\r\nConnection: close\r\n%s\r\n",
                           method, path, user_agent,
                           strcmp(method, "GET") ? "Content-Length: 0\r\n" : "");
    int r = send_all(fd, head, strlen(head), deadline);
    if (r >= 0 && body)
        r = send_all(fd, body, body_len, deadline);
    if (r < 0)
        return r;

    /* Read until vireod closes the connection (or the body is complete). */
    size_t cap = 64 << 10, len = 0, head_len = 0;
    long long content_length = -1;
    _cleanup_free_ char *buf = vo_malloc0(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap > max_len + (64 << 10))
                return -EFBIG;
            cap *= 2;
            char *p = realloc(buf, cap + 1);
            if (!p)
                return -ENOMEM;
            buf = p;
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
            r = wait_fd(fd, POLLIN, deadline);
            if (r < 0)
                return r;
            continue;
        }
        len += (size_t)n;
        if (!head_len) {
            char *end = memmem(buf, len, "\r\n\r\n", 4);
            if (end) {
                head_len = (size_t)(end - buf) + 4;
                _cleanup_free_ char *cl = header_value(buf, head_len - 2, "Content-Length");
                if (cl) {
                    char *e = NULL;
                    content_length = strtoll(cl, &e, 10);
                    if (e == cl || *e || content_length < 0)
                        return -EBADMSG;
                }
            }
        }
        if (head_len && content_length >= 0 && len - head_len >= (size_t)content_length)
            break;
    }
    if (!head_len)
        return -EBADMSG;
    long status = 0;
    if (sscanf(buf, "HTTP/%*d.%*d %ld", &status) != 1 || status < 100 || status > 599)
        return -EBADMSG;
    size_t body_len_in = len - head_len;
    _cleanup_free_ char *te = header_value(buf, head_len - 2, "Transfer-Encoding");
    if (te && strcasecmp(te, "chunked") == 0) {
        r = dechunk(buf + head_len, &body_len_in);
        if (r < 0)
            return r;
    } else if (content_length >= 0) {
        if (body_len_in < (size_t)content_length)
            return -EBADMSG; /* closed early */
        body_len_in = (size_t)content_length;
    }
    if (body_len_in > max_len)
        return -EFBIG;
    memmove(buf, buf + head_len, body_len_in);
    buf[body_len_in] = '\0';
    ret->status = status;
    ret->body = buf;
    ret->len = body_len_in;
    buf = NULL;
    return 0;
}
