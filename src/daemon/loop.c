/* loop.c: a small epoll event loop with a cross-thread call queue (see loop.h). */
#include "daemon/loop.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <dlfcn.h>

#include "util/util.h"

typedef struct Source {
    int fd;
    uint32_t events;
    VoLoopFdFn fn;
    void *userdata;
    /* The file fd was when it was added, and who added it: an fd closed
     * while still watched and its number reused (by another thread, say)
     * would hand its events, and its removal, to the new file's owner. */
    dev_t dev;
    ino_t ino;
    void *added_by;
    struct Source *next;
} Source;

typedef struct Call {
    VoLoopCallFn fn;
    void *userdata;
    struct Call *next;
} Call;

struct VoLoop {
    int epfd;
    int wake_fd;
    Source *sources;
    /* Removed sources, freed at the end of the dispatch round: an event of
     * this round may still point at one, and a source added meanwhile must
     * not get its address (and so its event). */
    Source *dead;
    /* Sources whose fd was closed while watched. The old file's epoll
     * registration may live on (a dup of it elsewhere keeps it) and still
     * point here, and EPOLL_CTL_DEL cannot reach it (it names the fd, now
     * another file or none): at the end of the round the live sources go
     * to a new epoll instance in place of the old, then these are freed. */
    Source *lost;
    pthread_mutex_t lock; /* protects calls and quit */
    Call *calls, *calls_tail;
    bool quit;
};

int vo_loop_new(VoLoop **ret)
{
    VoLoop *l = vo_malloc0(sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->epfd < 0 || l->wake_fd < 0) {
        int r = -errno;
        vo_loop_free(l);
        return r;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev);
    *ret = l;
    return 0;
}

static void free_sources(Source **list)
{
    while (*list) {
        Source *s = *list;
        *list = s->next;
        free(s);
    }
}

VoLoop *vo_loop_free(VoLoop *l)
{
    if (!l)
        return NULL;
    free_sources(&l->sources);
    free_sources(&l->dead);
    free_sources(&l->lost);
    while (l->calls) {
        Call *c = l->calls;
        l->calls = c->next;
        free(c);
    }
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    pthread_mutex_destroy(&l->lock);
    free(l);
    return NULL;
}

/* Where in vireod addr is, for a log line that addr2line turns into a
 * file and line. */
static uintptr_t code_offset(void *addr)
{
    Dl_info info;
    return dladdr(addr, &info) && info.dli_fbase ? (uintptr_t)addr - (uintptr_t)info.dli_fbase
                                                 : (uintptr_t)addr;
}

/* Takes s (closed while watched) out of the sources for good, saying so:
 * a defect of its owner, who closed the fd without vo_loop_remove_fd. */
static void lose_source(VoLoop *l, Source *s, const char *how)
{
    for (Source **p = &l->sources; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    log_error("loop: the watch of fd %d added at vireod+0x%lx %s: its fd was closed while "
              "watched; the watch is dropped", s->fd, (unsigned long)code_offset(s->added_by), how);
    s->fn = NULL;
    s->next = l->lost;
    l->lost = s;
}

/* Whether s->fd is still the file it was added with. Blind to a reuse by
 * another anonymous-inode file (eventfd, timerfd, signalfd: they share one
 * inode); sockets, pipes, files and (Linux >= 6.9) pidfds are told apart. */
static bool same_file(const Source *s)
{
    struct stat st;
    return fstat(s->fd, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino;
}

int vo_loop_add_fd(VoLoop *l, int fd, uint32_t events, VoLoopFdFn fn, void *userdata)
{
    Source *s = vo_malloc0(sizeof(*s));
    struct stat st = { 0 };
    (void)fstat(fd, &st);
    *s = (Source){ .fd = fd, .events = events, .fn = fn, .userdata = userdata, .dev = st.st_dev,
                   .ino = st.st_ino, .added_by = __builtin_return_address(0) };
    struct epoll_event ev = { .events = events, .data.ptr = s };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int r = -errno;
        free(s);
        return r;
    }
    for (Source *old = l->sources; old; old = old->next)
        if (old->fd == fd) {
            lose_source(l, old, "is still there as the fd is watched again");
            break;
        }
    s->next = l->sources;
    l->sources = s;
    return 0;
}

int vo_loop_set_events(VoLoop *l, int fd, void *userdata, uint32_t events)
{
    for (Source *s = l->sources; s; s = s->next)
        if (s->fd == fd && s->userdata == userdata) {
            struct epoll_event ev = { .events = events, .data.ptr = s };
            if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
                return -errno;
            s->events = events;
            return 0;
        }
    return -ENOENT;
}

void vo_loop_remove_fd(VoLoop *l, int fd, void *userdata)
{
    for (Source **p = &l->sources; *p; p = &(*p)->next) {
        if ((*p)->fd != fd || (*p)->userdata != userdata)
            continue;
        Source *s = *p;
        if (!same_file(s) || epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0) {
            /* Closed before its removal: its registration may outlive it. */
            lose_source(l, s, "is removed after its fd was closed");
            return;
        }
        *p = s->next;
        /* A dispatch already collected this round must not run it: mark,
         * free at the end of the round (vo_loop_run). */
        s->fn = NULL;
        s->next = l->dead;
        l->dead = s;
        return;
    }
}

void vo_loop_call(VoLoop *l, VoLoopCallFn fn, void *userdata)
{
    Call *c = vo_malloc0(sizeof(*c));
    c->fn = fn;
    c->userdata = userdata;
    pthread_mutex_lock(&l->lock);
    if (l->calls_tail)
        l->calls_tail->next = c;
    else
        l->calls = c;
    l->calls_tail = c;
    pthread_mutex_unlock(&l->lock);
    uint64_t one = 1;
    (void)!write(l->wake_fd, &one, sizeof(one));
}

void vo_loop_quit(VoLoop *l)
{
    pthread_mutex_lock(&l->lock);
    l->quit = true;
    pthread_mutex_unlock(&l->lock);
    uint64_t one = 1;
    (void)!write(l->wake_fd, &one, sizeof(one));
}

/* Nothing on a loop may block (loop.h): a callback that held it up this
 * long is named in the log (where in vireod: addr2line), so a run that
 * stalled says which. */
#define SLOW_CALLBACK_MS 500

static void say_if_slow(int64_t started_ms, void *fn, const char *what)
{
    int64_t took = vo_now_ms() - started_ms;
    if (took >= SLOW_CALLBACK_MS)
        log_warn("loop: %s at vireod+0x%lx held the loop for %lld ms", what,
                 (unsigned long)code_offset(fn), (long long)took);
}

static bool run_calls(VoLoop *l)
{
    uint64_t n;
    (void)!read(l->wake_fd, &n, sizeof(n));
    pthread_mutex_lock(&l->lock);
    Call *c = l->calls;
    l->calls = l->calls_tail = NULL;
    bool quit = l->quit;
    pthread_mutex_unlock(&l->lock);
    while (c) {
        Call *next = c->next;
        int64_t started = vo_now_ms();
        c->fn(c->userdata);
        say_if_slow(started, (void *)c->fn, "a call");
        free(c);
        c = next;
    }
    return quit;
}

/* A new epoll instance with the live sources, in place of the old one and
 * the registrations of lost sources it may keep; then those are freed. A
 * source whose fd is another file now (closed while watched, its number
 * reused) is lost too, not given the new file's events. */
static void drop_lost(VoLoop *l)
{
    if (!l->lost)
        return;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
        if (epfd >= 0)
            close(epfd);
        return; /* kept, tried again at the end of the next round */
    }
    for (Source *s = l->sources, *next; s; s = next) {
        next = s->next;
        ev = (struct epoll_event){ .events = s->events, .data.ptr = s };
        if (!same_file(s) || epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
            lose_source(l, s, "is not its file any more");
    }
    close(l->epfd);
    l->epfd = epfd;
    free_sources(&l->lost);
}

/* The end of a dispatch round: no event of it points anywhere any more. */
static void end_round(VoLoop *l)
{
    free_sources(&l->dead);
    drop_lost(l);
}

int vo_loop_run(VoLoop *l)
{
    for (;;) {
        struct epoll_event evs[32];
        int n = epoll_wait(l->epfd, evs, ELEMENTSOF(evs), -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (int i = 0; i < n; i++) {
            Source *s = evs[i].data.ptr;
            if (!s) {
                if (run_calls(l)) {
                    end_round(l);
                    return 0;
                }
                continue;
            }
            /* An earlier callback of this round may have removed it: it is
             * still allocated (on l->dead), marked. */
            if (s->fn && !same_file(s))
                lose_source(l, s, "had an event for another file");
            if (s->fn) {
                int64_t started = vo_now_ms();
                VoLoopFdFn fn = s->fn;
                fn(s->fd, evs[i].events, s->userdata);
                say_if_slow(started, (void *)fn, "a watch's callback");
            }
        }
        end_round(l);
    }
}
