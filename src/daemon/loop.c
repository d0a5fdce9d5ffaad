/* loop.c: a small epoll event loop with a cross-thread call queue (see loop.h). */
#include "daemon/loop.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "util/util.h"

typedef struct Source {
    int fd;
    VoLoopFdFn fn;
    void *userdata;
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

int vo_loop_add_fd(VoLoop *l, int fd, uint32_t events, VoLoopFdFn fn, void *userdata)
{
    Source *s = vo_malloc0(sizeof(*s));
    *s = (Source){ .fd = fd, .fn = fn, .userdata = userdata, .next = l->sources };
    struct epoll_event ev = { .events = events, .data.ptr = s };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int r = -errno;
        free(s);
        return r;
    }
    l->sources = s;
    return 0;
}

int vo_loop_set_events(VoLoop *l, int fd, uint32_t events)
{
    for (Source *s = l->sources; s; s = s->next)
        if (s->fd == fd) {
            struct epoll_event ev = { .events = events, .data.ptr = s };
            return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
        }
    return -ENOENT;
}

void vo_loop_remove_fd(VoLoop *l, int fd)
{
    for (Source **p = &l->sources; *p; p = &(*p)->next) {
        if ((*p)->fd != fd)
            continue;
        Source *s = *p;
        *p = s->next;
        (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
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
        c->fn(c->userdata);
        free(c);
        c = next;
    }
    return quit;
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
                    free_sources(&l->dead);
                    return 0;
                }
                continue;
            }
            /* An earlier callback of this round may have removed it: it is
             * still allocated (on l->dead), marked. */
            if (s->fn)
                s->fn(s->fd, evs[i].events, s->userdata);
        }
        free_sources(&l->dead);
    }
}
