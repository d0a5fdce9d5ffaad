/* test-loop.c: the event loop (src/daemon/loop.c): fd dispatch, calls from
 * other threads, and a source removed during a dispatch round whose event of
 * that round must not reach anything else. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
    vo_loop_remove_fd(ctx.loop, ctx.fd_b);
    assert_int_equal(vo_loop_add_fd(ctx.loop, ctx.fd_c, EPOLLIN, cb_c, NULL), 0);
    vo_loop_remove_fd(ctx.loop, ctx.fd_a);
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
    assert_int_equal(vo_loop_set_events(l, fd, EPOLLIN | EPOLLOUT), 0);
    vo_loop_remove_fd(l, fd);
    assert_int_equal(vo_loop_set_events(l, fd, EPOLLIN), -ENOENT);
    vo_loop_free(l);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removed_source_event_reaches_nothing),
        cmocka_unit_test(test_source_ready_before_removal_runs),
        cmocka_unit_test(test_remove_outside_round),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
