/* test-cgroup-vcpu.c: the plan that gives a VM's vCPU threads a cgroup of
 * their own holding its CPU limit (util/cgroup-vcpu.c): which directory is
 * made and which file gets which thread or value, in order, on cgroup v1 and
 * v2, at the start, for a live change and for a QEMU whose threads share one
 * cgroup; and the plan carried out on a directory of plain files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cgroup-vcpu.h"
#include "util/util.h"

#define VM "/cg/vireo/h/vm1"
#define CHILD VM "/vcpus"

/* Each expected step: "path=value", or "path/" for a directory made. */
static void assert_plan(const VoCgroupCpuRequest *req, const char *const *want, size_t n)
{
    VoCgroupPlan plan;
    vo_cgroup_cpu_plan(req, &plan);
    for (size_t i = 0; i < plan.n && i < n; i++) {
        _cleanup_free_ char *got = plan.steps[i].value
                                       ? vo_asprintf("%s=%s", plan.steps[i].path,
                                                     plan.steps[i].value)
                                       : vo_asprintf("%s/", plan.steps[i].path);
        if (strcmp(got, want[i]))
            fail_msg("step %zu: got %s, want %s", i, got, want[i]);
    }
    assert_int_equal(plan.n, n);
    vo_cgroup_plan_clear(&plan);
}

static const pid_t tids[] = { 4101, 4102 };
static const VoCgroupLimits limited = { .cpu_weight = 200, .cpu_limit = 0.2,
                                        .memory_max = 1 << 30 };
static const VoCgroupLimits unlimited = { 0 };

static void test_v1_start(void **state)
{
    /* the threads move (one per write to `tasks`), then the parent's quota
     * goes before the child's is set: v1 refuses a child above its parent */
    static const char *const want[] = {
        CHILD "/",
        CHILD "/tasks=4101",
        CHILD "/tasks=4102",
        VM "/cpu.shares=2048",
        VM "/cpu.cfs_period_us=100000",
        VM "/cpu.cfs_quota_us=-1",
        CHILD "/cpu.cfs_period_us=100000",
        CHILD "/cpu.cfs_quota_us=20000",
    };
    VoCgroupCpuRequest req = { .dir = VM, .split = true, .limits = &limited, .tids = tids,
                               .n_tids = 2 };
    assert_plan(&req, want, ELEMENTSOF(want));
}

static void test_v2_start(void **state)
{
    /* the child threaded before cpu is on in the parent (the kernel refuses
     * it in a domain with processes), threads by cgroup.threads, weight
     * on the parent, quota on the child */
    static const char *const want[] = {
        CHILD "/",
        CHILD "/cgroup.type=threaded",
        VM "/cgroup.subtree_control=+cpu",
        CHILD "/cgroup.threads=4101",
        CHILD "/cgroup.threads=4102",
        VM "/cpu.weight=200",
        VM "/cpu.max=max 100000",
        CHILD "/cpu.max=20000 100000",
    };
    VoCgroupCpuRequest req = { .v2 = true, .dir = VM, .split = true, .limits = &limited,
                               .tids = tids, .n_tids = 2 };
    assert_plan(&req, want, ELEMENTSOF(want));
}

static void test_live_change(void **state)
{
    /* a limit changed while it runs: no thread moves, the quota is the child's */
    static const char *const v1[] = {
        VM "/cpu.shares=1024",
        VM "/cpu.cfs_period_us=100000",
        VM "/cpu.cfs_quota_us=-1",
        CHILD "/cpu.cfs_period_us=100000",
        CHILD "/cpu.cfs_quota_us=-1",
    };
    VoCgroupCpuRequest req = { .dir = VM, .split = true, .limits = &unlimited };
    assert_plan(&req, v1, ELEMENTSOF(v1));
    static const char *const v2[] = {
        VM "/cpu.weight=100",
        VM "/cpu.max=max 100000",
        CHILD "/cpu.max=max 100000",
    };
    req.v2 = true;
    assert_plan(&req, v2, ELEMENTSOF(v2));
}

static void test_hot_plug_moves_threads_only(void **state)
{
    static const char *const want[] = {
        CHILD "/",
        CHILD "/tasks=4102",
    };
    VoCgroupCpuRequest req = { .dir = VM, .split = true, .tids = tids + 1, .n_tids = 1 };
    assert_plan(&req, want, ELEMENTSOF(want));
}

static void test_unsplit_limits_the_whole(void **state)
{
    /* a QEMU whose vCPU threads have no child: the quota on it all, as
     * before; threads given without a split are not moved */
    static const char *const v1[] = {
        VM "/cpu.shares=2048",
        VM "/cpu.cfs_period_us=100000",
        VM "/cpu.cfs_quota_us=20000",
    };
    VoCgroupCpuRequest req = { .dir = VM, .limits = &limited, .tids = tids, .n_tids = 2 };
    assert_plan(&req, v1, ELEMENTSOF(v1));
    static const char *const v2[] = {
        VM "/cpu.weight=200",
        VM "/cpu.max=20000 100000",
    };
    req.v2 = true;
    assert_plan(&req, v2, ELEMENTSOF(v2));
}

static char *slurp(const char *dir, const char *file)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, file);
    char *text = NULL;
    assert_int_equal(vo_read_file(path, 4096, &text, NULL), 0);
    return text;
}

static void touch(const char *dir, const char *file)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static void test_run_on_plain_files(void **state)
{
    char top[] = "/tmp/test-cgroup-vcpu-XXXXXX";
    assert_non_null(mkdtemp(top));
    const char *parent_files[] = { "cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us" };
    for (size_t i = 0; i < ELEMENTSOF(parent_files); i++)
        touch(top, parent_files[i]);
    /* the child's files do not exist yet: its first write fails, naming it */
    VoCgroupCpuRequest req = { .dir = top, .split = true, .limits = &limited, .tids = tids,
                               .n_tids = 1 };
    VoCgroupPlan plan;
    vo_cgroup_cpu_plan(&req, &plan);
    _cleanup_free_ char *failed = NULL;
    assert_int_equal(vo_cgroup_plan_run(&plan, &failed), -ENOENT);
    _cleanup_free_ char *child = vo_asprintf("%s/vcpus", top);
    _cleanup_free_ char *tasks = vo_asprintf("%s/tasks", child);
    assert_string_equal(failed, tasks);
    /* with them there (as the kernel makes them) it runs through; the
     * directory made again is no failure */
    const char *child_files[] = { "tasks", "cpu.cfs_period_us", "cpu.cfs_quota_us" };
    for (size_t i = 0; i < ELEMENTSOF(child_files); i++)
        touch(child, child_files[i]);
    assert_int_equal(vo_cgroup_plan_run(&plan, NULL), 0);
    vo_cgroup_plan_clear(&plan);
    _cleanup_free_ char *quota = slurp(child, "cpu.cfs_quota_us");
    _cleanup_free_ char *parent_quota = slurp(top, "cpu.cfs_quota_us");
    _cleanup_free_ char *moved = slurp(child, "tasks");
    assert_string_equal(quota, "20000");
    assert_string_equal(parent_quota, "-1");
    assert_string_equal(moved, "4101");
    for (size_t i = 0; i < ELEMENTSOF(child_files); i++) {
        _cleanup_free_ char *p = vo_asprintf("%s/%s", child, child_files[i]);
        unlink(p);
    }
    rmdir(child);
    for (size_t i = 0; i < ELEMENTSOF(parent_files); i++) {
        _cleanup_free_ char *p = vo_asprintf("%s/%s", top, parent_files[i]);
        unlink(p);
    }
    rmdir(top);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_start),
        cmocka_unit_test(test_v2_start),
        cmocka_unit_test(test_live_change),
        cmocka_unit_test(test_hot_plug_moves_threads_only),
        cmocka_unit_test(test_unsplit_limits_the_whole),
        cmocka_unit_test(test_run_on_plain_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
