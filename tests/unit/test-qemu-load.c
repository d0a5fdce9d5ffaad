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
#include "qmp/qmp.h"
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

/* QMP's answer to qom-get of /machine/peripheral/balloon0's guest-stats
 * for the test image's guest (QEMU 10.0.2, Linux 6.1, 256 MiB): the
 * statistics it does not report are 2^64 - 1. AT is the last update. */
#define GUEST_STATS(AT, AVAILABLE, CACHES)                                                    \
    "{\"stats\": {\"stat-htlb-pgalloc\": 0, \"stat-alloc-stalls\": 18446744073709551615, " \
    "\"stat-available-memory\": " AVAILABLE ", \"stat-free-memory\": 180457472, "          \
    "\"stat-total-memory\": 212570112, \"stat-oom-kills\": 18446744073709551615, "        \
    "\"stat-disk-caches\": " CACHES "}, \"last-update\": " AT "}"

/* The statistics' use from TEXT as the QMP client reads a message (the
 * integers beyond int64 as reals). */
static int used_of(const char *text, int64_t now_s, uint64_t *used)
{
    json_t *o = NULL;
    if (text)
        assert_int_equal(vo_qmp_parse_line(text, strlen(text), &o), 0);
    int r = vo_balloon_guest_used_bytes(o, now_s, used);
    json_decref(o);
    return r;
}

static void test_guest_used(void **state)
{
    uint64_t used = 0;
    /* Total less available, as a host's MemTotal - MemAvailable. */
    assert_int_equal(used_of(GUEST_STATS("1796626114", "185778176",
                                                             "2080768"), 1796626118, &used), 0);
    assert_true(used == 212570112 - 185778176);
    /* No available memory reported: total less free and caches. */
    assert_int_equal(used_of(GUEST_STATS("1796626114",
                                                             "18446744073709551615",
                                                             "2080768"), 1796626118, &used), 0);
    assert_true(used == 212570112 - 180457472 - 2080768);
    /* Nor caches: nothing to say. */
    assert_int_equal(used_of(GUEST_STATS("1796626114",
                                                             "18446744073709551615",
                                                             "18446744073709551615"),
                                                 1796626118, &used), -ENODATA);
    /* Stale (the guest stopped reporting), never reported, nonsense. */
    assert_int_equal(used_of(GUEST_STATS("1796626114", "185778176",
                                                             "2080768"), 1796626154, &used),
                     -ENODATA);
    assert_int_equal(used_of(GUEST_STATS("0", "185778176", "2080768"),
                                                 1796626118, &used), -ENODATA);
    assert_int_equal(used_of(GUEST_STATS("1796626114", "312570112",
                                                             "2080768"), 1796626118, &used),
                     -ENODATA);
    assert_int_equal(used_of("{\"last-update\": 1796626114}", 1796626118, &used), -EINVAL);
    assert_int_equal(used_of(NULL, 1796626118, &used), -ENODATA);
}

#define OK "{\"return\":{},\"id\":$ID}\n"
#define SET_ARGS "{\"path\":\"/machine/peripheral/balloon0\"," \
                 "\"property\":\"guest-stats-polling-interval\",\"value\":5}"
#define STATS_ARGS "{\"path\":\"/machine/peripheral/balloon0\",\"property\":\"guest-stats\"}"

/* An instance of this process whose monitor is the scripted server. */
static void instance_open(VoHvInstance *vm, Server *server, const Step *steps)
{
    *vm = (VoHvInstance){ .pid = getpid(), .pidfd = vo_pidfd_open(getpid()) };
    assert_true(vm->pidfd >= 0);
    pthread_mutex_init(&vm->qmp_lock, NULL);
    vm->qmp = client_open(server, steps);
}

static void instance_close(VoHvInstance *vm, Server *server)
{
    vo_qmp_close(vm->qmp);
    server_join(server);
    vo_thread_waits_clear(&vm->waits);
    close(vm->pidfd);
    pthread_mutex_destroy(&vm->qmp_lock);
}

/* A qom-get answer: the statistics as QEMU sends them. */
static char *stats_answer(const char *stats)
{
    return vo_asprintf("{\"return\":%s,\"id\":$ID}\n", stats);
}

/* The op on this process with the scripted server as its monitor: the
 * first load turns the statistics on (every 5 s) and, once the guest has
 * reported, its use is the VM's (below RSS and the balloon's actual); a
 * guest that has not reported yet leaves RSS bounded by the actual. A
 * QEMU too slow to answer the qom-set is asked again at the next load
 * (that load's half second spent, nothing else is asked: RSS stands). */
static void test_load_prefers_the_guests_use(void **state)
{
    char balloon[128], now[32];
    snprintf(balloon, sizeof(balloon), "{\"return\":{\"actual\":%llu},\"id\":$ID}\n",
             (unsigned long long)1 << 20); /* 1 MiB: below this process's RSS */
    snprintf(now, sizeof(now), "%lld", (long long)(vo_wall_ms() / 1000));
    char *none = stats_answer(GUEST_STATS("0", "18446744073709551615", "18446744073709551615"));
    char *reported = stats_answer(GUEST_STATS("9999999999", "185778176", "2080768"));
    char *at = strstr(reported, "9999999999");
    memcpy(at, now, strlen(now)); /* the same width until 2286 */
    const Step steps[] = {
        GREETING, CAPS,
        { .expect = "qom-set", .args = SET_ARGS, .delay_ms = 700, .send = { OK } },
        { .expect = "qom-set", .args = SET_ARGS, .send = { OK } },
        { .expect = "qom-get", .args = STATS_ARGS, .send = { none } },
        { .expect = "query-balloon", .send = { balloon } },
        /* Turned on once: the next loads only read (the statistics first:
         * when the guest reported, nothing else). */
        { .expect = "qom-get", .args = STATS_ARGS, .send = { reported } },
        { 0 }
    };
    Server server;
    VoHvInstance vm;
    instance_open(&vm, &server, steps);
    VoHvLoad l;
    assert_int_equal(vo_qemu_load(&vm, &l), 0); /* the qom-set's answer comes too late */
    assert_false(vm.balloon_stats_on);
    assert_int_equal(vm.balloon_stats_tries, 0);
    assert_int_equal(l.mem_source, VO_HV_MEM_RSS);
    assert_int_equal(vo_qemu_load(&vm, &l), 0);
    assert_int_equal(l.mem_source, VO_HV_MEM_BALLOON);
    assert_int_equal(l.mem_used_mib, 1);
    assert_true(vm.balloon_stats_on);
    assert_int_equal(vo_qemu_load(&vm, &l), 0);
    assert_int_equal(l.mem_source, VO_HV_MEM_GUEST);
    assert_int_equal(l.mem_used_mib, (212570112 - 185778176) >> 20);
    assert_string_equal(vo_hv_mem_source_to_string(l.mem_source), "guest");
    instance_close(&vm, &server);
    free(none);
    free(reported);
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
        { .expect = "qom-set", .args = SET_ARGS, .send = { refused } },
        { .expect = "query-balloon", .send = { balloon } },
        { .expect = "qom-set", .args = SET_ARGS, .send = { refused } },
        { .expect = "query-balloon", .send = { balloon } },
        { .expect = "qom-set", .args = SET_ARGS, .send = { refused } },
        { .expect = "query-balloon", .send = { balloon } },
        { .expect = "query-balloon", .send = { balloon } },
        { 0 }
    };
    Server server;
    VoHvInstance vm;
    instance_open(&vm, &server, steps);
    VoHvLoad l;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vo_qemu_load(&vm, &l), 0);
        assert_int_equal(l.mem_source, VO_HV_MEM_RSS); /* 1 TiB actual: RSS is smaller */
        assert_true(l.mem_used_mib > 0);
    }
    assert_false(vm.balloon_stats_on);
    instance_close(&vm, &server);
}

/* The balloon's calls of one load share one half second (BALLOON_TIMEOUT_MS,
 * as the single query-balloon had): the host record's publisher samples the
 * VMs one after the other, holding each one's job lock and monitor. A QEMU
 * that takes 300 ms for each call is not waited for the second: the
 * guest has not reported, and query-balloon's answer comes too late for
 * its actual (1 MiB) to count: RSS stands. */
static void test_load_calls_share_one_budget(void **state)
{
    static const char *const balloon = "{\"return\":{\"actual\":1048576},\"id\":$ID}\n";
    char *none = stats_answer(GUEST_STATS("0", "18446744073709551615", "18446744073709551615"));
    const Step steps[] = {
        GREETING, CAPS,
        { .expect = "qom-get", .args = STATS_ARGS, .delay_ms = 300,
          .send = { none } },
        { .expect = "query-balloon", .delay_ms = 300, .send = { balloon } },
        { 0 }
    };
    Server server;
    VoHvInstance vm;
    instance_open(&vm, &server, steps);
    vm.balloon_stats_on = true; /* an earlier load turned them on */
    VoHvLoad l;
    assert_int_equal(vo_qemu_load(&vm, &l), 0);
    assert_int_equal(l.mem_source, VO_HV_MEM_RSS);
    instance_close(&vm, &server);
    free(none);
}

/* Statistics on and the guest reporting: its use is read in one round
 * trip (query-balloon's actual would not be used); a guest that has not
 * reported yet is followed by query-balloon for the fallback. */
static void test_load_reads_the_statistics_first(void **state)
{
    static const char *const balloon = "{\"return\":{\"actual\":1048576},\"id\":$ID}\n";
    char now[32];
    snprintf(now, sizeof(now), "%lld", (long long)(vo_wall_ms() / 1000));
    char *none = stats_answer(GUEST_STATS("0", "18446744073709551615", "18446744073709551615"));
    char *reported = stats_answer(GUEST_STATS("9999999999", "185778176", "2080768"));
    char *at = strstr(reported, "9999999999");
    memcpy(at, now, strlen(now));
    const Step steps[] = {
        GREETING, CAPS,
        { .expect = "qom-get", .args = STATS_ARGS, .send = { none } },
        { .expect = "query-balloon", .send = { balloon } },
        { .expect = "qom-get", .args = STATS_ARGS, .send = { reported } },
        { 0 }
    };
    Server server;
    VoHvInstance vm;
    instance_open(&vm, &server, steps);
    vm.balloon_stats_on = true; /* an earlier load turned them on */
    VoHvLoad l;
    assert_int_equal(vo_qemu_load(&vm, &l), 0);
    assert_int_equal(l.mem_source, VO_HV_MEM_BALLOON);
    assert_int_equal(vo_qemu_load(&vm, &l), 0);
    assert_int_equal(l.mem_source, VO_HV_MEM_GUEST);
    instance_close(&vm, &server);
    free(none);
    free(reported);
}

/* A QEMU that refuses the read (a balloon without the property) is not
 * asked again, and the balloon's actual stands. */
static void test_load_of_a_qemu_refusing_the_statistics(void **state)
{
    static const char *const balloon = "{\"return\":{\"actual\":1048576},\"id\":$ID}\n";
    static const char *const refused =
        "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Property 'virtio-balloon-pci.guest-stats' "
        "not found\"},\"id\":$ID}\n";
    const Step steps[] = {
        GREETING, CAPS,
        { .expect = "qom-get", .args = STATS_ARGS, .send = { refused } },
        { .expect = "query-balloon", .send = { balloon } },
        { .expect = "query-balloon", .send = { balloon } },
        { 0 }
    };
    Server server;
    VoHvInstance vm;
    instance_open(&vm, &server, steps);
    vm.balloon_stats_on = true;
    VoHvLoad l;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(vo_qemu_load(&vm, &l), 0);
        assert_int_equal(l.mem_source, VO_HV_MEM_BALLOON);
    }
    assert_false(vm.balloon_stats_on);
    instance_close(&vm, &server);
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
        cmocka_unit_test(test_load_calls_share_one_budget),
        cmocka_unit_test(test_load_reads_the_statistics_first),
        cmocka_unit_test(test_load_of_a_qemu_refusing_the_statistics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
