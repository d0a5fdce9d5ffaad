/* test-qemu-load.c: the QEMU driver's load op (qemu-load.h): the /proc
 * parsers (a command name with spaces and parentheses, short or bad text)
 * and the op itself on this test's own process (CPU time grows with work,
 * resident memory is there; no monitor: RSS stands). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qemu/qemu-instance.h"
#include "qemu/qemu-load.h"
#include "util/spawn.h"

static void test_stat(void **state)
{
    uint64_t t = 0;
    /* Fields 14 and 15 (utime 250, stime 50) after a name with ") (". */
    const char *s = "1234 (qemu) (x y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 "
                    "3 0 555 1000 200 18446744073709551615\n";
    assert_int_equal(vo_proc_stat_cpu_ticks(s, &t), 0);
    assert_int_equal(t, 300);
    assert_int_equal(vo_proc_stat_cpu_ticks("1234 (qemu) S 1 2 3\n", &t), -EINVAL);
    assert_int_equal(vo_proc_stat_cpu_ticks("no parenthesis", &t), -EINVAL);
    assert_int_equal(vo_proc_stat_cpu_ticks(
                         "1 (a) S 1 1 1 0 -1 0 0 0 0 0 x1 2 0 0\n", &t), -EINVAL);
    assert_int_equal(vo_proc_stat_cpu_ticks(NULL, &t), -EINVAL);
}

static void test_statm(void **state)
{
    uint64_t p = 0;
    assert_int_equal(vo_proc_statm_rss_pages("5000 1200 300 1 0 900 0\n", &p), 0);
    assert_int_equal(p, 1200);
    assert_int_equal(vo_proc_statm_rss_pages("5000\n", &p), -EINVAL);
    assert_int_equal(vo_proc_statm_rss_pages("", &p), -EINVAL);
}

static void test_load_of_this_process(void **state)
{
    VoHvInstance vm = { .pid = getpid(), .pidfd = vo_pidfd_open(getpid()) };
    assert_true(vm.pidfd >= 0);
    pthread_mutex_init(&vm.qmp_lock, NULL);
    VoHvLoad a, b;
    assert_int_equal(vo_qemu_load(&vm, &a), 0);
    assert_true(a.mem_used_mib > 0);
    assert_false(a.mem_from_balloon);
    /* Burn CPU until the counter moves (a tick is 10 ms): bounded. */
    volatile uint64_t x = 0;
    for (int i = 0; i < 2000; i++) {
        for (int k = 0; k < 1000000; k++)
            x += (uint64_t)k;
        assert_int_equal(vo_qemu_load(&vm, &b), 0);
        if (b.cpu_ns > a.cpu_ns)
            break;
    }
    assert_true(b.cpu_ns > a.cpu_ns);
    VoHvInstance gone = { .pid = 0 };
    assert_int_equal(vo_qemu_load(&gone, &b), -ESRCH);
    close(vm.pidfd);
    pthread_mutex_destroy(&vm.qmp_lock);
}

/* The instance's QEMU ended and its pid now names another process (here:
 * this test's): nothing is read from that process. */
static void test_load_of_a_reused_pid(void **state)
{
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    int pidfd = vo_pidfd_open(child);
    assert_true(pidfd >= 0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    VoHvInstance vm = { .pid = getpid(), .pidfd = pidfd };
    pthread_mutex_init(&vm.qmp_lock, NULL);
    VoHvLoad l;
    assert_int_equal(vo_qemu_load(&vm, &l), -ESRCH);
    close(pidfd);
    pthread_mutex_destroy(&vm.qmp_lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stat),
        cmocka_unit_test(test_statm),
        cmocka_unit_test(test_load_of_this_process),
        cmocka_unit_test(test_load_of_a_reused_pid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
