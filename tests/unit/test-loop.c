/* test-loop.c: the event loop (src/daemon/loop.c): fd dispatch, calls from
 * other threads, a source removed during a dispatch round whose event of
 * that round must not reach anything else, and an fd closed while watched
 * whose number is reused: the old watch must neither read the new file nor
 * take its watch away, nor its old file's registration make the loop spin,
 * nor a removal after the close free it under its events. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/loop.h"

typedef struct {
    VoLoop *loop;
    int fd_a, fd_b, fd_c;
    int a_runs, b_runs, c_runs;
    int c_stale; /* cbC called while its own fd had nothing to read */
} Ctx;

static Ctx ctx;

static void quit_soon(void *userdata)
{
    vo_loop_quit(userdata);
}

static void cb_c(int fd, uint32_t events, void *userdata)
{
    uint64_t x;
    ctx.c_runs++;
    if (read(fd, &x, sizeof(x)) != sizeof(x))
        ctx.c_stale++;
}

static void cb_b(int fd, uint32_t events, void *userdata)
{
    uint64_t x;
    ctx.b_runs++;
    (void)!read(fd, &x, sizeof(x));
}

/* Fills glibc's per-thread cache for the loop's Source size, so that the
 * next freed Source goes to a fastbin and calloc (which skips that cache)
 * hands the same address out again at once: as in a busy daemon. Without
 * deferred frees the new source then answered the removed one's event.
 * (Under ASan freed memory is quarantined and never reused at once: the
 * check below then passes either way; the plain build is the one that
 * caught the bug.) */
static void churn_allocator(void)
{
    void *p[7];
    for (int i = 0; i < 7; i++)
        p[i] = malloc(32);
    for (int i = 0; i < 7; i++)
        free(p[i]);
}

/* Ready in the same round as B: removes B and adds C (nothing to read). */
static void cb_a(int fd, uint32_t events, void *userdata)
{
    uint64_t x;
    ctx.a_runs++;
    (void)!read(fd, &x, sizeof(x));
    churn_allocator();
    vo_loop_remove_fd(ctx.loop, ctx.fd_b, NULL);
    assert_int_equal(vo_loop_add_fd(ctx.loop, ctx.fd_c, EPOLLIN, cb_c, NULL), 0);
    vo_loop_remove_fd(ctx.loop, ctx.fd_a, NULL);
    vo_loop_call(ctx.loop, quit_soon, ctx.loop);
}

static void run_remove_then_add(bool a_first)
{
    memset(&ctx, 0, sizeof(ctx));
    assert_int_equal(vo_loop_new(&ctx.loop), 0);
    ctx.fd_a = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    ctx.fd_b = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    ctx.fd_c = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    /* epoll reports ready fds in the order they became ready (added). */
    if (a_first) {
        assert_int_equal(vo_loop_add_fd(ctx.loop, ctx.fd_a, EPOLLIN, cb_a, NULL), 0);
        assert_int_equal(vo_loop_add_fd(ctx.loop, ctx.fd_b, EPOLLIN, cb_b, NULL), 0);
    } else {
        assert_int_equal(vo_loop_add_fd(ctx.loop, ctx.fd_b, EPOLLIN, cb_b, NULL), 0);
        assert_int_equal(vo_loop_add_fd(ctx.loop, ctx.fd_a, EPOLLIN, cb_a, NULL), 0);
    }
    alarm(10); /* a loop that never quits fails the test instead of hanging */
    assert_int_equal(vo_loop_run(ctx.loop), 0);
    alarm(0);
    assert_int_equal(ctx.a_runs, 1);
    /* B's event came in A's round: B ran before A removed it, or never. */
    assert_int_equal(ctx.b_runs, a_first ? 0 : 1);
    /* C had nothing to read: it must not have been called for B's event. */
    assert_int_equal(ctx.c_stale, 0);
    assert_int_equal(ctx.c_runs, 0);
    vo_loop_free(ctx.loop);
    close(ctx.fd_a);
    close(ctx.fd_b);
    close(ctx.fd_c);
}

static void test_removed_source_event_reaches_nothing(void **state)
{
    run_remove_then_add(true);
}

static void test_source_ready_before_removal_runs(void **state)
{
    run_remove_then_add(false);
}

/* A source removed outside a round is freed with the loop (no leak: ASan). */
static void test_remove_outside_round(void **state)
{
    VoLoop *l;
    assert_int_equal(vo_loop_new(&l), 0);
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert_int_equal(vo_loop_add_fd(l, fd, EPOLLIN, cb_c, NULL), 0);
    assert_int_equal(vo_loop_set_events(l, fd, NULL, EPOLLIN | EPOLLOUT), 0);
    vo_loop_remove_fd(l, fd, NULL);
    assert_int_equal(vo_loop_set_events(l, fd, NULL, EPOLLIN), -ENOENT);
    vo_loop_free(l);
    close(fd);
}

/* The loop's epoll fd (the test process has one loop at a time). */
static int loop_epoll_fd(void)
{
    char link[64], target[64];
    for (int fd = 3; fd < 1024; fd++) {
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0 && (target[n] = 0, !strcmp(target, "anon_inode:[eventpoll]")))
            return fd;
    }
    fail_msg("no epoll fd");
    return -1;
}

/* Whether the loop's epoll instance has an fd's event ready (the loop's
 * own wake-up aside): with every watched fd drained, only a registration
 * of a lost watch's old file can, and the loop would spin on it
 * (epoll_wait returning it at once, for ever). */
static bool epoll_has_ready_watch(void)
{
    struct epoll_event evs[8];
    int n = epoll_wait(loop_epoll_fd(), evs, 8, 0);
    for (int i = 0; i < n; i++)
        if (evs[i].data.ptr)
            return true;
    return false;
}

typedef struct {
    VoLoop *loop;
    int runs;
    char got;
} Owner;

static void cb_owner(int fd, uint32_t events, void *userdata)
{
    Owner *o = userdata;
    o->runs++;
    if (read(fd, &o->got, 1) == 1)
        vo_loop_call(o->loop, quit_soon, o->loop);
}

/* Runs the loop runs times, each until a quit queued before it (bounded). */
static void run_to_quit(VoLoop *l, int runs)
{
    alarm(10);
    for (int run = 0; run < runs; run++) {
        vo_loop_call(l, quit_soon, l);
        assert_int_equal(vo_loop_run(l), 0);
    }
    alarm(0);
}

/* Watches fd for owner, then closes it (the owner's defect) while a dup,
 * returned, keeps its file open (as a child that inherited it would). */
static int watch_then_close(VoLoop *l, int fd, Owner *owner)
{
    assert_int_equal(vo_loop_add_fd(l, fd, EPOLLIN, cb_owner, owner), 0);
    int keep = dup(fd);
    assert_true(keep >= 0);
    close(fd);
    return keep;
}

/* An owner closes its watched fd without removing the watch; another
 * opens a file that gets the same number and watches it. The old file
 * lives on (a dup, as in a child that inherited it), so its epoll
 * registration still fires. Its events must not reach the old callback
 * (which would read the new file), nor may the old owner's late removal
 * take the new watch away. */
static void test_fd_closed_while_watched(void **state)
{
    VoLoop *l;
    assert_int_equal(vo_loop_new(&l), 0);
    int old_pair[2], new_pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, old_pair), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, new_pair), 0);
    Owner old = { .loop = l }, new = { .loop = l };
    int fd = old_pair[0];
    int keep = watch_then_close(l, fd, &old);
    assert_int_equal(dup2(new_pair[0], fd), fd);
    close(new_pair[0]);
    assert_int_equal(vo_loop_add_fd(l, fd, EPOLLIN, cb_owner, &new), 0);
    vo_loop_remove_fd(l, fd, &old); /* the old owner's late removal */
    assert_int_equal(write(old_pair[1], "o", 1), 1);
    assert_int_equal(write(new_pair[1], "n", 1), 1);
    alarm(10);
    assert_int_equal(vo_loop_run(l), 0);
    alarm(0);
    assert_int_equal(old.runs, 0);
    assert_int_equal(new.runs, 1);
    assert_int_equal(new.got, 'n');
    assert_false(epoll_has_ready_watch()); /* the old file's "o" no longer wakes the loop */
    vo_loop_remove_fd(l, fd, &new);
    vo_loop_free(l);
    close(fd);
    close(keep);
    close(old_pair[1]);
    close(new_pair[1]);
}

/* An fd closed while watched, its old file kept open elsewhere and ready,
 * its number reused by a file nobody watches: the old file's event must
 * not run the callback (it would read the new file), and its registration
 * must go (the loop would spin on it). */
static void test_event_for_a_reused_fd_reaches_nothing(void **state)
{
    VoLoop *l;
    assert_int_equal(vo_loop_new(&l), 0);
    int old_pair[2], new_pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, old_pair), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, new_pair), 0);
    Owner old = { .loop = l };
    int fd = old_pair[0];
    int keep = watch_then_close(l, fd, &old);
    assert_int_equal(dup2(new_pair[0], fd), fd); /* reused, not watched */
    assert_int_equal(write(new_pair[1], "n", 1), 1);
    assert_int_equal(write(old_pair[1], "o", 1), 1); /* ready before the quit's wake-up */
    run_to_quit(l, 1);
    assert_int_equal(old.runs, 0);
    assert_false(epoll_has_ready_watch());
    vo_loop_free(l);
    close(fd);
    close(new_pair[0]);
    close(keep);
    close(old_pair[1]);
    close(new_pair[1]);
}

/* An owner closes its fd, then removes the watch (the wrong order) while
 * the old file lives on, ready: EPOLL_CTL_DEL cannot reach its
 * registration, so the watch must outlive its events (no use after free,
 * under ASan) and the registration must go. */
static void test_removed_after_close_is_not_freed_under_its_events(void **state)
{
    VoLoop *l;
    assert_int_equal(vo_loop_new(&l), 0);
    int pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    Owner old = { .loop = l };
    int keep = watch_then_close(l, pair[0], &old);
    vo_loop_remove_fd(l, pair[0], &old);
    assert_int_equal(write(pair[1], "o", 1), 1);
    run_to_quit(l, 2); /* the second run's round meets a freed watch */
    assert_int_equal(old.runs, 0);
    assert_false(epoll_has_ready_watch());
    vo_loop_free(l);
    close(keep);
    close(pair[1]);
}

/* Dropping a lost watch's registration rebuilds the loop's epoll set from
 * the watches: one whose fd was closed meanwhile (its file gone, so its
 * registration too) and its number reused by a file nobody watches must
 * not be registered again on that file. */
static void test_rebuild_skips_a_watch_whose_fd_is_another_file(void **state)
{
    VoLoop *l;
    assert_int_equal(vo_loop_new(&l), 0);
    int a[2], b[2], c[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c), 0);
    Owner owner_a = { .loop = l }, owner_b = { .loop = l };
    assert_int_equal(vo_loop_add_fd(l, b[0], EPOLLIN, cb_owner, &owner_b), 0);
    int keep = watch_then_close(l, a[0], &owner_a); /* lost at its event: the rebuild */
    close(b[0]); /* gone with its registration, */
    assert_int_equal(dup2(c[0], b[0]), b[0]); /* its number reused, not watched */
    assert_int_equal(write(c[1], "x", 1), 1);
    assert_int_equal(write(a[1], "o", 1), 1);
    run_to_quit(l, 2); /* the second on the rebuilt set */
    assert_int_equal(owner_a.runs, 0);
    assert_int_equal(owner_b.runs, 0);
    assert_false(epoll_has_ready_watch());
    vo_loop_free(l);
    close(keep);
    close(b[0]);
    close(a[1]);
    close(b[1]);
    close(c[0]);
    close(c[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removed_source_event_reaches_nothing),
        cmocka_unit_test(test_source_ready_before_removal_runs),
        cmocka_unit_test(test_remove_outside_round),
        cmocka_unit_test(test_fd_closed_while_watched),
        cmocka_unit_test(test_event_for_a_reused_fd_reaches_nothing),
        cmocka_unit_test(test_removed_after_close_is_not_freed_under_its_events),
        cmocka_unit_test(test_rebuild_skips_a_watch_whose_fd_is_another_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
