/* console.c: the per-VM console hub (see console.h). */
#include "daemon/console.h"

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "util/peer-sndbuf.h"
#include "util/util.h"

/* Everything here runs on the hub's own loop, in a thread of its own, so
 * nothing may block: every fd is non-blocking and what cannot be written
 * yet waits in a bounded buffer. Not vireod's main loop: that one writes
 * documents to the store (a VM's state change), which can take seconds on
 * a busy etcd, and QEMU's 16550 sends a byte at a time (278 unread bytes
 * fill a socket of the default size): a guest whose console is not read
 * stalls on it, and OVMF then drops output (after about 1.5 ms: see
 * QEMU_SNDBUF) and may quit its shell.
 * Typing into a guest that reads nothing (paused, say) fills the buffer to
 * QEMU; then the clients are not read until it drains. Output a client
 * cannot take fills its own buffer; beyond that the oldest of it goes, so
 * the client that reads again sees the newest output (the prompt, the
 * last lines), after a line saying how many bytes it missed (client_out). */
#define CONSOLE_IN_MAX (64 * 1024)    /* typed, not yet taken by QEMU */
#define CLIENT_OUT_MAX (256 * 1024)   /* printed, not yet taken by one client */
/* QEMU's side of the console socket: Linux doubles it to 8 MiB, about
 * 10,900 one-byte sends unread instead of 278, memory used only while they
 * wait. A reader late by milliseconds then no longer holds the 16550's THR
 * busy past OVMF's write timeout (util/peer-sndbuf.c says why it matters). */
#define QEMU_SNDBUF (4 * 1024 * 1024)

typedef struct {
    char *data;
    size_t len;
} Buf;

typedef struct Client {
    VoConsole *console;
    int fd;
    VoConsoleClientClosed on_closed;
    void *userdata;
    Buf out;
    size_t dropped;   /* bytes of output it missed since its buffer last emptied */
    size_t note_left; /* of out: the unsent part of the line saying so, at its start */
    struct Client *next;
} Client;

struct VoConsole {
    VoLoop *loop;
    int fd;
    bool fd_watched;
    bool peer_grown; /* QEMU's send buffer widened (or tried) */
    int log_fd;
    char *log_path;
    size_t log_size;
    Buf in;
    Client *clients;
};

/* The hub's loop and thread: started with the first console, ended by
 * vo_console_hub_stop. */
static VoLoop *hub_loop;
static pthread_t hub_thread;
static pthread_mutex_t hub_lock = PTHREAD_MUTEX_INITIALIZER;

static void *hub_run(void *userdata)
{
    (void)vo_loop_run(userdata);
    return NULL;
}

/* The hub's loop, started when first needed; NULL when it cannot start. */
static VoLoop *hub(void)
{
    pthread_mutex_lock(&hub_lock);
    if (!hub_loop) {
        VoLoop *l = NULL;
        if (vo_loop_new(&l) < 0)
            log_error("console: cannot make the consoles' loop");
        else if (pthread_create(&hub_thread, NULL, hub_run, l) != 0) {
            log_error("console: cannot start the consoles' thread");
            vo_loop_free(l);
        } else
            hub_loop = l;
    }
    VoLoop *l = hub_loop;
    pthread_mutex_unlock(&hub_lock);
    return l;
}

void vo_console_hub_stop(void)
{
    pthread_mutex_lock(&hub_lock);
    VoLoop *l = TAKE_PTR(hub_loop);
    pthread_mutex_unlock(&hub_lock);
    if (!l)
        return;
    vo_loop_quit(l);
    pthread_join(hub_thread, NULL);
    vo_loop_free(l); /* the consoles still open are vireod's to leave */
}

static void set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Appends what fits below max; returns how much did. */
static size_t buf_append(Buf *b, const char *data, size_t len, size_t max)
{
    size_t n = b->len + len > max ? max - b->len : len;
    if (n == 0)
        return 0;
    char *grown = realloc(b->data, b->len + n);
    if (!grown)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return n;
}

/* Output for a client, into its buffer of at most CLIENT_OUT_MAX bytes: when
 * it does not fit, the oldest goes (the newest 192 KiB stay), and the buffer
 * starts with a line saying how much this client missed in all since its
 * buffer last emptied (the line of an earlier overflow, being the oldest,
 * goes with it). */
static void client_out(Client *cl, const char *data, size_t len)
{
    Buf *b = &cl->out;
    if (b->len + len <= CLIENT_OUT_MAX) {
        (void)buf_append(b, data, len, CLIENT_OUT_MAX);
        return;
    }
    /* The newest three quarters are kept: the next 64 KiB then fit before
     * the buffer is copied again (a client that stopped reading would have
     * it copied at every read of QEMU's output). */
    char note[128];
    size_t keep = CLIENT_OUT_MAX / 4 * 3 - sizeof(note);
    size_t from_new = len < keep ? len : keep, from_old = keep - from_new;
    if (from_old > b->len)
        from_old = b->len;
    size_t gone = b->len - from_old; /* the oldest: an earlier note first */
    size_t dropped = cl->dropped + gone - (cl->note_left < gone ? cl->note_left : gone) +
                     (len - from_new);
    int n = snprintf(note, sizeof(note), "\r\n[vireo: %zu bytes of console output dropped: "
                     "this console was not read fast enough]\r\n", dropped);
    size_t note_len = n > 0 && (size_t)n < sizeof(note) ? (size_t)n : 0;
    char *ring = malloc(note_len + from_old + from_new);
    if (!ring)
        return; /* out of memory: this output is missed, not counted */
    memcpy(ring, note, note_len);
    memcpy(ring + note_len, b->data + b->len - from_old, from_old);
    memcpy(ring + note_len + from_old, data + len - from_new, from_new);
    free(b->data);
    b->data = ring;
    b->len = note_len + from_old + from_new;
    cl->dropped = dropped;
    cl->note_left = note_len;
}

/* Sends what fd takes now from b; -errno when the peer is gone. */
static int buf_flush(Buf *b, int fd)
{
    while (b->len > 0) {
        ssize_t n = send(fd, b->data, b->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
        memmove(b->data, b->data + n, b->len - (size_t)n);
        b->len -= (size_t)n;
    }
    free(b->data);
    b->data = NULL;
    return 0;
}

/* Sends what the client takes now; -errno when it is gone. */
static int client_flush(Client *cl)
{
    size_t before = cl->out.len;
    int r = buf_flush(&cl->out, cl->fd);
    size_t sent = before - cl->out.len;
    cl->note_left -= sent < cl->note_left ? sent : cl->note_left;
    if (cl->out.len == 0)
        cl->dropped = 0; /* caught up: a later gap counts afresh */
    return r;
}

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

/* The events each fd waits for follow the buffers: a client is read only
 * while what it types has room, written when it has output pending; QEMU's
 * socket is written when typed input is pending. */
static void update_events(VoConsole *c)
{
    if (c->fd_watched)
        (void)vo_loop_set_events(c->loop, c->fd, c, EPOLLIN | (c->in.len ? EPOLLOUT : 0));
    bool room = c->in.len < CONSOLE_IN_MAX;
    for (Client *cl = c->clients; cl; cl = cl->next)
        (void)vo_loop_set_events(c->loop, cl->fd, cl,
                                 EPOLLRDHUP | (room ? EPOLLIN : 0) | (cl->out.len ? EPOLLOUT : 0));
}

static void client_close(Client *cl)
{
    VoConsole *c = cl->console;
    for (Client **p = &c->clients; *p; p = &(*p)->next)
        if (*p == cl) {
            *p = cl->next;
            break;
        }
    vo_loop_remove_fd(c->loop, cl->fd, cl);
    if (cl->on_closed)
        cl->on_closed(cl->userdata); /* owns and closes the fd */
    free(cl->out.data);
    free(cl);
}

/* Typed input for QEMU: what its socket does not take now waits (bounded). */
static void type_in(VoConsole *c, const char *buf, size_t len)
{
    (void)buf_append(&c->in, buf, len, CONSOLE_IN_MAX);
    (void)buf_flush(&c->in, c->fd); /* a gone QEMU: its exit frees the console */
    update_events(c);
}

static void on_client_event(int fd, uint32_t events, void *userdata)
{
    Client *cl = userdata;
    VoConsole *c = cl->console;
    if ((events & EPOLLOUT) && client_flush(cl) < 0) {
        client_close(cl);
        update_events(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        size_t room = CONSOLE_IN_MAX - c->in.len;
        if (!room && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
            client_close(cl); /* gone; not read while QEMU's input is full */
            update_events(c);
            return;
        }
        char buf[4096];
        ssize_t n = room ? read(fd, buf, room < sizeof(buf) ? room : sizeof(buf)) : 0;
        if (room && n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (room && n <= 0) {
            client_close(cl);
            update_events(c);
            return;
        }
        if (n > 0) {
            type_in(c, buf, (size_t)n);
            return;
        }
    }
    update_events(c);
}

static void on_console_event(int fd, uint32_t events, void *userdata)
{
    VoConsole *c = userdata;
    if (events & EPOLLOUT) {
        (void)buf_flush(&c->in, fd);
        update_events(c);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* QEMU went away; the VM's exit handler frees the console. */
        vo_loop_remove_fd(c->loop, c->fd, c);
        c->fd_watched = false;
        return;
    }
    if (!c->peer_grown) {
        /* QEMU has accepted by now: it sends only on an accepted socket. */
        c->peer_grown = true;
        int r = vo_unix_grow_peer_sndbuf(fd, QEMU_SNDBUF);
        if (r < 0 && r != -EADDRNOTAVAIL)
            log_warn("console %s: QEMU's send buffer stays small (%s): firmware output may be "
                     "lost when this host is busy", c->log_path, strerror(-r));
    }
    append_log(c, buf, (size_t)n);
    for (Client *cl = c->clients; cl; cl = cl->next) {
        bool was_idle = cl->out.len == 0;
        /* Beyond CLIENT_OUT_MAX a client that cannot keep up misses the
         * oldest output rather than stalling the VM and every other client. */
        client_out(cl, buf, (size_t)n);
        if (was_idle)
            (void)client_flush(cl); /* errors: its EPOLLRDHUP closes it */
        if (was_idle != (cl->out.len == 0))
            (void)vo_loop_set_events(c->loop, cl->fd, cl,
                                     EPOLLRDHUP | (c->in.len < CONSOLE_IN_MAX ? EPOLLIN : 0) |
                                         (cl->out.len ? EPOLLOUT : 0));
    }
}

static void watch_on_hub(void *userdata)
{
    VoConsole *c = userdata;
    if (vo_loop_add_fd(c->loop, c->fd, EPOLLIN, on_console_event, c) < 0)
        log_warn("console: cannot watch %s", c->log_path);
    else
        c->fd_watched = true;
}

VoConsole *vo_console_new(int fd, const char *log_path)
{
    VoLoop *loop = hub();
    if (!loop) {
        close(fd);
        return NULL;
    }
    VoConsole *c = vo_malloc0(sizeof(*c));
    c->loop = loop;
    c->fd = fd;
    c->log_path = vo_strdup(log_path);
    open_log(c);
    set_nonblocking(fd);
    vo_loop_call(loop, watch_on_hub, c);
    return c;
}

static void free_on_hub(void *userdata)
{
    VoConsole *c = userdata;
    while (c->clients)
        client_close(c->clients);
    vo_loop_remove_fd(c->loop, c->fd, c);
    close(c->fd);
    if (c->log_fd >= 0)
        close(c->log_fd);
    free(c->in.data);
    free(c->log_path);
    free(c);
}

void vo_console_free(VoConsole *c)
{
    if (c)
        vo_loop_call(c->loop, free_on_hub, c);
}

typedef struct {
    VoConsole *console;
    int fd;
    char *initial;
    size_t initial_len;
    VoConsoleClientClosed on_closed;
    void *userdata;
} AddClient;

static void add_client_on_hub(void *userdata)
{
    AddClient *a = userdata;
    VoConsole *c = a->console;
    Client *cl = vo_malloc0(sizeof(*cl));
    *cl = (Client){ .console = c, .fd = a->fd, .on_closed = a->on_closed,
                    .userdata = a->userdata };
    set_nonblocking(a->fd);
    if (vo_loop_add_fd(c->loop, a->fd, EPOLLIN | EPOLLRDHUP, on_client_event, cl) < 0) {
        free(cl);
        a->on_closed(a->userdata);
    } else {
        cl->next = c->clients;
        c->clients = cl;
        if (a->initial_len)
            type_in(c, a->initial, a->initial_len);
        else
            update_events(c);
    }
    free(a->initial);
    free(a);
}

void vo_console_add_client(VoConsole *c, int fd, char *initial, size_t initial_len,
                           VoConsoleClientClosed on_closed, void *userdata)
{
    AddClient *a = vo_malloc0(sizeof(*a));
    *a = (AddClient){ .console = c, .fd = fd, .initial = initial,
                      .initial_len = initial ? initial_len : 0, .on_closed = on_closed,
                      .userdata = userdata };
    vo_loop_call(c->loop, add_client_on_hub, a);
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
