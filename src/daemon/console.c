/* console.c: the per-VM console hub (see console.h). */
#include "daemon/console.h"

#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "util/util.h"

typedef struct Client {
    VoConsole *console;
    int fd;
    VoConsoleClientClosed on_closed;
    void *userdata;
    struct Client *next;
} Client;

struct VoConsole {
    VoLoop *loop;
    int fd;
    int log_fd;
    char *log_path;
    size_t log_size;
    Client *clients;
};

static void open_log(VoConsole *c)
{
    c->log_fd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    struct stat st;
    c->log_size = c->log_fd >= 0 && fstat(c->log_fd, &st) == 0 ? (size_t)st.st_size : 0;
}

static void append_log(VoConsole *c, const char *buf, size_t len)
{
    if (c->log_fd < 0)
        return;
    if (c->log_size + len > VO_CONSOLE_LOG_MAX) {
        _cleanup_free_ char *old = vo_asprintf("%s.1", c->log_path);
        close(c->log_fd);
        (void)rename(c->log_path, old);
        open_log(c);
        if (c->log_fd < 0)
            return;
    }
    if (write(c->log_fd, buf, len) > 0)
        c->log_size += len;
}

static void client_close(Client *cl)
{
    VoConsole *c = cl->console;
    for (Client **p = &c->clients; *p; p = &(*p)->next)
        if (*p == cl) {
            *p = cl->next;
            break;
        }
    vo_loop_remove_fd(c->loop, cl->fd);
    if (cl->on_closed)
        cl->on_closed(cl->userdata); /* owns and closes the fd */
    free(cl);
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

static void on_client_data(int fd, uint32_t events, void *userdata)
{
    Client *cl = userdata;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(cl);
        return;
    }
    write_all(cl->console->fd, buf, (size_t)n);
}

static void on_console_data(int fd, uint32_t events, void *userdata)
{
    VoConsole *c = userdata;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* QEMU went away; the VM's exit handler frees the console. */
        vo_loop_remove_fd(c->loop, c->fd);
        return;
    }
    append_log(c, buf, (size_t)n);
    for (Client *cl = c->clients; cl; cl = cl->next)
        /* A client that cannot keep up misses output rather than stalling the VM. */
        (void)!send(cl->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

VoConsole *vo_console_new(VoLoop *loop, int fd, const char *log_path)
{
    VoConsole *c = vo_malloc0(sizeof(*c));
    c->loop = loop;
    c->fd = fd;
    c->log_path = vo_strdup(log_path);
    open_log(c);
    if (vo_loop_add_fd(loop, fd, EPOLLIN, on_console_data, c) < 0)
        log_warn("console: cannot watch %s", log_path);
    return c;
}

void vo_console_free(VoConsole *c)
{
    if (!c)
        return;
    while (c->clients)
        client_close(c->clients);
    vo_loop_remove_fd(c->loop, c->fd);
    close(c->fd);
    if (c->log_fd >= 0)
        close(c->log_fd);
    free(c->log_path);
    free(c);
}

int vo_console_add_client(VoConsole *c, int fd, const char *initial, size_t initial_len,
                          VoConsoleClientClosed on_closed, void *userdata)
{
    Client *cl = vo_malloc0(sizeof(*cl));
    *cl = (Client){ .console = c, .fd = fd, .on_closed = on_closed, .userdata = userdata };
    int r = vo_loop_add_fd(c->loop, fd, EPOLLIN | EPOLLRDHUP, on_client_data, cl);
    if (r < 0) {
        free(cl);
        return r;
    }
    cl->next = c->clients;
    c->clients = cl;
    if (initial && initial_len)
        write_all(c->fd, initial, initial_len);
    return 0;
}

int vo_console_read_log(const char *log_path, char **ret, size_t *ret_len)
{
    _cleanup_free_ char *old_path = vo_asprintf("%s.1", log_path);
    _cleanup_free_ char *old = NULL, *cur = NULL;
    size_t old_len = 0, cur_len = 0;
    (void)vo_read_file(old_path, 2 * VO_CONSOLE_LOG_MAX, &old, &old_len);
    (void)vo_read_file(log_path, 2 * VO_CONSOLE_LOG_MAX, &cur, &cur_len);
    char *out = vo_malloc0(old_len + cur_len + 1);
    if (old)
        memcpy(out, old, old_len);
    if (cur)
        memcpy(out + old_len, cur, cur_len);
    *ret = out;
    *ret_len = old_len + cur_len;
    return 0;
}
