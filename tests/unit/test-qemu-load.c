/* test-qemu-load.c: the QEMU driver's load op (qemu-load.h): the /proc
 * parsers (a command name with spaces and parentheses, short or bad text;
 * schedstat's run_delay), the waiting summed over threads that come and go
 * (qemu-schedstat.h) and the op itself on this test's own process (CPU time grows with work,
 * resident memory is there; no monitor: RSS stands); the guest's memory in
 * use from the balloon's statistics, and the op turning them on and
 * preferring them, against the scripted QMP server (qmp-server.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qemu/qemu-instance.h"
#include "qemu/qemu-load.h"
#include "qemu/qemu-schedstat.h"
#include "util/spawn.h"
#include "util/util.h"
#include "qmp-server.h"

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

static void test_schedstat(void **state)
{
    uint64_t d = 0;
    assert_int_equal(vo_schedstat_run_delay("5905224 20004274 8\n", &d), 0);
    assert_int_equal(d, 20004274);
    assert_int_equal(vo_schedstat_run_delay("18446744073709551615 18446744073709551614 1\n",
                                            &d), 0);
    assert_true(d == 18446744073709551614ULL);
    assert_int_equal(vo_schedstat_run_delay("5905224 20004274\n", &d), -EINVAL);
    assert_int_equal(vo_schedstat_run_delay("5905224 -2 8\n", &d), -EINVAL);
    assert_int_equal(vo_schedstat_run_delay("5905224 2x 8\n", &d), -EINVAL);
    assert_int_equal(vo_schedstat_run_delay("1 2 3 4\n", &d), -EINVAL);
    assert_int_equal(vo_schedstat_run_delay("", &d), -EINVAL);
    assert_int_equal(vo_schedstat_run_delay(NULL, &d), -EINVAL);
}

/* The total grows by each thread's growth; a thread that ended takes its
 * time with it without taking the total down; a thread born since counts
 * whole; a reused tid whose delay went back is a new thread. */
static void test_thread_waits(void **state)
{
    VoThreadWaits w = { 0 };
    /* The first reading is the baseline. */
    VoThreadWait r1[] = { { 30, 900 }, { 10, 1000 }, { 20, 500 } };
    assert_int_equal(vo_thread_waits_add(&w, r1, 3), 0);
    assert_int_equal(w.total_ns, 0);
    assert_int_equal(w.n, 3);
    assert_int_equal(w.threads[0].tid, 10); /* kept by tid */
    /* 10 grew 100, 20 ended (its 500 and more are gone), 30 grew 50, 40 is
     * new with 70. */
    VoThreadWait r2[] = { { 40, 70 }, { 10, 1100 }, { 30, 950 } };
    assert_int_equal(vo_thread_waits_add(&w, r2, 3), 220);
    assert_int_equal(w.total_ns, 220);
    /* 30's tid was reused by a new thread (its delay went back: all 5
     * count), 10 did not wait, 40 grew 30. */
    VoThreadWait r3[] = { { 30, 5 }, { 10, 1100 }, { 40, 100 } };
    assert_int_equal(vo_thread_waits_add(&w, r3, 3), 35);
    assert_int_equal(w.total_ns, 255);
    /* No threads read (all ended): nothing added, the total stands; the
     * next thread seen counts whole. */
    assert_int_equal(vo_thread_waits_add(&w, NULL, 0), 0);
    assert_int_equal(w.total_ns, 255);
    VoThreadWait r4[] = { { 50, 45 } };
    assert_int_equal(vo_thread_waits_add(&w, r4, 1), 45);
    assert_int_equal(w.total_ns, 300);
    vo_thread_waits_clear(&w);
    assert_int_equal(w.total_ns, 0);
    assert_false(w.primed);
    assert_null(w.threads);
}

static void test_load_of_this_process(void **state)
{
    VoHvInstance vm = { .pid = getpid(), .pidfd = vo_pidfd_open(getpid()) };
    assert_true(vm.pidfd >= 0);
    pthread_mutex_init(&vm.qmp_lock, NULL);
    VoHvLoad a, b;
    assert_int_equal(vo_qemu_load(&vm, &a), 0);
    assert_true(a.mem_used_mib > 0);
    assert_int_equal(a.mem_source, VO_HV_MEM_RSS);
    assert_int_equal(a.wait_ns, 0); /* the first reading is the baseline */
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
    assert_true(b.wait_ns >= a.wait_ns);
    assert_true(vm.waits.primed && vm.waits.n >= 1); /* this process's thread(s) */
    vo_thread_waits_clear(&vm.waits);
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

static void test_guest_used(void **state)
{
    int64_t now = 1000000;
    uint64_t used = 0;
    /* Total less available, as a host's MemTotal - MemAvailable. */
    json_t *g = json_pack("{s:{s:I, s:I, s:I, s:I}, s:I}", "stats", "stat-total-memory",
                          (json_int_t)2048 << 20, "stat-available-memory", (json_int_t)1536 << 20,
                          "stat-free-memory", (json_int_t)1000 << 20, "stat-disk-caches",
                          (json_int_t)400 << 20, "last-update", (json_int_t)now - 5);
    assert_int_equal(vo_balloon_guest_used_bytes(g, now, &used), 0);
    assert_true(used == (uint64_t)512 << 20);
    /* No available memory reported: total less free and caches. */
    json_object_set_new(json_object_get(g, "stats"), "stat-available-memory", json_integer(-1));
    assert_int_equal(vo_balloon_guest_used_bytes(g, now, &used), 0);
    assert_true(used == (uint64_t)648 << 20);
    /* Nor caches: nothing to say. */
    json_object_set_new(json_object_get(g, "stats"), "stat-disk-caches", json_integer(-1));
    assert_int_equal(vo_balloon_guest_used_bytes(g, now, &used), -ENODATA);
    json_object_set_new(json_object_get(g, "stats"), "stat-disk-caches", json_integer(400 << 20));
    /* Stale (the guest stopped reporting), never reported, or nonsense. */
    assert_int_equal(vo_balloon_guest_used_bytes(g, now + 60, &used), -ENODATA);
    json_object_set_new(g, "last-update", json_integer(0));
    assert_int_equal(vo_balloon_guest_used_bytes(g, now, &used), -ENODATA);
    json_object_set_new(g, "last-update", json_integer(now));
    json_object_set_new(json_object_get(g, "stats"), "stat-free-memory", json_integer(3000LL << 20));
    assert_int_equal(vo_balloon_guest_used_bytes(g, now, &used), -ENODATA);
    assert_int_equal(vo_balloon_guest_used_bytes(NULL, now, &used), -ENODATA);
    json_decref(g);
}

#define OK "{\"return\":{},\"id\":$ID}\n"
#define SET_ARGS "{\"path\":\"/machine/peripheral/balloon0\"," \
                 "\"property\":\"guest-stats-polling-interval\",\"value\":5}"
#define STATS_ARGS "{\"path\":\"/machine/peripheral/balloon0\",\"property\":\"guest-stats\"}"

/* The op on this process with the scripted server as its monitor: the
 * first load turns the statistics on (every 5 s) and, once the guest has
 * reported, its use is the VM's (below RSS and the balloon's actual); a
 * guest that has not reported yet leaves RSS bounded by the actual. */
static void test_load_prefers_the_guests_use(void **state)
{
    char balloon[128], reported[256], none[256];
    snprintf(balloon, sizeof(balloon), "{\"return\":{\"actual\":%llu},\"id\":$ID}\n",
             (unsigned long long)1 << 20); /* 1 MiB: below this process's RSS */
    snprintf(none, sizeof(none), "{\"return\":{\"stats\":{\"stat-total-memory\":-1},"
             "\"last-update\":0},\"id\":$ID}\n");
    snprintf(reported, sizeof(reported), "{\"return\":{\"stats\":{\"stat-total-memory\":%llu,"
             "\"stat-available-memory\":%llu},\"last-update\":%lld},\"id\":$ID}\n",
             2048ULL << 20, 1800ULL << 20, (long long)(vo_wall_ms() / 1000));
    const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-balloon", .send = { balloon } },
        { .expect = "qom-set", .args = SET_ARGS, .send = { OK } },
        { .expect = "qom-get", .args = STATS_ARGS, .send = { none } },
        /* Turned on once: the next loads only read. */
        { .expect = "query-balloon", .send = { balloon } },
        { .expect = "qom-get", .args = STATS_ARGS, .send = { reported } },
        { 0 }
    };
    Server server;
    VoHvInstance vm = { .pid = getpid(), .pidfd = vo_pidfd_open(getpid()) };
    pthread_mutex_init(&vm.qmp_lock, NULL);
    vm.qmp = client_open(&server, steps);
    VoHvLoad l;
    assert_int_equal(vo_qemu_load(&vm, &l), 0);
    assert_int_equal(l.mem_source, VO_HV_MEM_BALLOON);
    assert_int_equal(l.mem_used_mib, 1);
    assert_true(vm.balloon_stats_on);
    assert_int_equal(vo_qemu_load(&vm, &l), 0);
    assert_int_equal(l.mem_source, VO_HV_MEM_GUEST);
    assert_int_equal(l.mem_used_mib, 248);
    assert_string_equal(vo_hv_mem_source_to_string(l.mem_source), "guest");
    vo_qmp_close(vm.qmp);
    server_join(&server);
    vo_thread_waits_clear(&vm.waits);
    close(vm.pidfd);
    pthread_mutex_destroy(&vm.qmp_lock);
}

/* A QEMU that refuses the statistics is asked 3 times in all, then no
 * more; RSS (bounded by the actual) stands. */
static void test_load_without_statistics(void **state)
{
    static const char *const refused =
        "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Property not found\"},\"id\":$ID}\n";
    static const char *const balloon = "{\"return\":{\"actual\":1099511627776},\"id\":$ID}\n";
    const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-balloon", .send = { balloon } },
        { .expect = "qom-set", .args = SET_ARGS, .send = { refused } },
        { .expect = "query-balloon", .send = { balloon } },
        { .expect = "qom-set", .args = SET_ARGS, .send = { refused } },
        { .expect = "query-balloon", .send = { balloon } },
        { .expect = "qom-set", .args = SET_ARGS, .send = { refused } },
        { .expect = "query-balloon", .send = { balloon } },
        { 0 }
    };
    Server server;
    VoHvInstance vm = { .pid = getpid(), .pidfd = vo_pidfd_open(getpid()) };
    pthread_mutex_init(&vm.qmp_lock, NULL);
    vm.qmp = client_open(&server, steps);
    VoHvLoad l;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vo_qemu_load(&vm, &l), 0);
        assert_int_equal(l.mem_source, VO_HV_MEM_RSS); /* 1 TiB actual: RSS is smaller */
        assert_true(l.mem_used_mib > 0);
    }
    assert_false(vm.balloon_stats_on);
    vo_qmp_close(vm.qmp);
    server_join(&server);
    vo_thread_waits_clear(&vm.waits);
    close(vm.pidfd);
    pthread_mutex_destroy(&vm.qmp_lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stat),
        cmocka_unit_test(test_statm),
        cmocka_unit_test(test_schedstat),
        cmocka_unit_test(test_thread_waits),
        cmocka_unit_test(test_load_of_this_process),
        cmocka_unit_test(test_load_of_a_reused_pid),
        cmocka_unit_test(test_guest_used),
        cmocka_unit_test(test_load_prefers_the_guests_use),
        cmocka_unit_test(test_load_without_statistics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
