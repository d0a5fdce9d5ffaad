/* test-host-facts.c: the /proc parsers behind a host's record (CPU model
 * and flags, memory, CPU busy fraction). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "daemon/host-facts.h"

static const char cpuinfo[] = "processor\t: 0\n"
                              "vendor_id\t: GenuineIntel\n"
                              "model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n"
                              "flags\t\t: sse2 fpu avx2 sse2 aes\n"
                              "\n"
                              "processor\t: 1\n"
                              "model name\t: Other\n"
                              "flags\t\t: fpu\n";

static void test_cpuinfo(void **state)
{
    VoHostFacts f = { 0 };
    vo_host_facts_parse_cpuinfo(cpuinfo, &f);
    assert_string_equal(f.cpu_model, "Intel(R) Xeon(R) CPU @ 2.20GHz");
    assert_int_equal(f.cpus, 2);
    /* Sorted, each once, from the first CPU. */
    assert_int_equal(json_array_size(f.cpu_flags), 4);
    const char *want[] = { "aes", "avx2", "fpu", "sse2" };
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(json_string_value(json_array_get(f.cpu_flags, i)), want[i]);
    vo_host_facts_clear(&f);

    /* Nothing known: still a model and an empty flag list. */
    vo_host_facts_parse_cpuinfo("garbage\nflagsx: a\n", &f);
    assert_string_equal(f.cpu_model, "unknown");
    assert_int_equal(json_array_size(f.cpu_flags), 0);
    assert_int_equal(f.cpus, 0);
    vo_host_facts_clear(&f);
}

static void test_meminfo(void **state)
{
    VoHostFacts f = { 0 };
    vo_host_facts_parse_meminfo("MemTotal:       25165824 kB\nMemFree:  1 kB\n"
                                "MemAvailable:   20971520 kB\n",
                                &f);
    assert_int_equal(f.memory_mib, 24576);
    assert_int_equal(f.memory_used_mib, 4096);
    VoHostFacts g = { 0 };
    vo_host_facts_parse_meminfo("nothing here\n", &g);
    assert_int_equal(g.memory_mib, 0);
}

static void test_cpu_busy(void **state)
{
    VoCpuSample a, b;
    assert_true(vo_host_parse_cpu_sample("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n", &a));
    assert_int_equal(a.total, 1000);
    assert_int_equal(a.busy, 200);
    assert_true(vo_host_parse_cpu_sample("cpu  400 0 100 1000 100 0 0 0 0 0\n", &b));
    assert_true(vo_host_cpu_busy(&a, &b) > 0.49 && vo_host_cpu_busy(&a, &b) < 0.51);
    /* No time passed, or counters went back: no load rather than nonsense. */
    assert_true(vo_host_cpu_busy(&b, &b) == 0);
    assert_true(vo_host_cpu_busy(&b, &a) == 0);
    assert_false(vo_host_parse_cpu_sample("intr 1 2 3\n", &a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpuinfo),
        cmocka_unit_test(test_meminfo),
        cmocka_unit_test(test_cpu_busy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
