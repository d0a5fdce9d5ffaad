/* test-cgroup-vcpu.c: the plan that gives a VM's vCPU threads a cgroup of
 * their own holding its CPU limit (util/cgroup-vcpu.c): which directory is
 * made and which file gets which thread or value, in order, on cgroup v1 and
 * v2, at the start, for a live change and for a QEMU whose threads share one
 * cgroup; the plans run on a model of the kernel's quota rules (accepted,
 * the vCPU threads capped at every step); and the plan carried out on a
 * directory of plain files. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
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
    /* the threads move (one per write to `tasks`), the parent gets the new
     * quota (v1 refuses a child above its parent), the child its own, and
     * only then the parent's goes */
    static const char *const want[] = {
        CHILD "/",
        CHILD "/tasks=4101",
        CHILD "/tasks=4102",
        VM "/cpu.shares=2048",
        VM "/cpu.cfs_period_us=100000",
        VM "/cpu.cfs_quota_us=20000",
        CHILD "/cpu.cfs_period_us=100000",
        CHILD "/cpu.cfs_quota_us=20000",
        VM "/cpu.cfs_quota_us=-1",
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
        CHILD "/cpu.max=20000 100000",
        VM "/cpu.max=max 100000",
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
        VM "/cpu.cfs_quota_us=-1",
    };
    VoCgroupCpuRequest req = { .dir = VM, .split = true, .limits = &unlimited };
    assert_plan(&req, v1, ELEMENTSOF(v1));
    static const char *const v2[] = {
        VM "/cpu.weight=100",
        CHILD "/cpu.max=max 100000",
        VM "/cpu.max=max 100000",
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

/* The CPU quotas of a VM's cgroup and its vCPU child as the kernel keeps
 * them (-1: none), where the vCPU threads are, and its rules: v1 refuses
 * (EINVAL) a child's quota above its parent's, and a parent's below a
 * child's; a thread is capped by its cgroup's quota and its parent's. */
typedef struct {
    bool v2;
    long long parent, child; /* us per period, -1: none */
    bool has_child, threads_in_child;
} KernelCpu;

static long long value_quota(const char *value)
{
    return !strncmp(value, "max", 3) ? -1 : atoll(value);
}

/* v1: a quota above another, none (-1) being the parent's inherited. */
static bool above(long long a, long long b)
{
    return a != -1 && b != -1 && a > b;
}

static int kernel_write(KernelCpu *k, const VoCgroupStep *s)
{
    bool in_child = !strncmp(s->path, CHILD "/", strlen(CHILD "/")) || !strcmp(s->path, CHILD);
    if (!s->value) {
        if (!k->has_child)
            k->child = -1;
        k->has_child = true;
        return 0;
    }
    const char *file = strrchr(s->path, '/') + 1;
    if (in_child && !k->has_child)
        return -ENOENT;
    if (!strcmp(file, "tasks") || !strcmp(file, "cgroup.threads")) {
        k->threads_in_child = true;
        return 0;
    }
    if (strcmp(file, "cpu.cfs_quota_us") && strcmp(file, "cpu.max"))
        return 0;
    long long q = value_quota(s->value);
    if (!k->v2 && in_child && above(q, k->parent))
        return -EINVAL;
    if (!k->v2 && !in_child && k->has_child && above(k->child, q))
        return -EINVAL;
    *(in_child ? &k->child : &k->parent) = q;
    return 0;
}

/* The tightest quota on the vCPU threads, -1: none. */
static long long vcpu_cap(const KernelCpu *k)
{
    long long cap = k->parent;
    if (k->threads_in_child && k->child != -1 && (cap == -1 || k->child < cap))
        cap = k->child;
    return cap;
}

/* Runs req's plan on k: each step accepted (or one it may meet refused),
 * the vCPU threads capped at every step, at the end the quota the child's
 * alone. */
static void assert_capped_throughout(KernelCpu k, const VoCgroupCpuRequest *req, long long want)
{
    VoCgroupPlan plan;
    vo_cgroup_cpu_plan(req, &plan);
    for (size_t i = 0; i < plan.n; i++) {
        int r = kernel_write(&k, &plan.steps[i]);
        if (r < 0 && !(r == -EINVAL && plan.steps[i].may_be_refused))
            fail_msg("step %zu (%s=%s) refused: %d", i, plan.steps[i].path,
                     plan.steps[i].value ? plan.steps[i].value : "", r);
        if (k.threads_in_child && vcpu_cap(&k) == -1)
            fail_msg("after step %zu (%s=%s) the vCPU threads have no quota", i,
                     plan.steps[i].path, plan.steps[i].value ? plan.steps[i].value : "");
    }
    vo_cgroup_plan_clear(&plan);
    assert_true(k.threads_in_child);
    assert_int_equal(k.parent, -1);
    assert_int_equal(k.child, want);
}

static void test_vcpus_never_unlimited_on_the_way(void **state)
{
    static const VoCgroupLimits half = { .cpu_limit = 0.5 };
    for (int v2 = 0; v2 <= 1; v2++) {
        /* the start: vo_cgroup_make set the quota on the whole */
        VoCgroupCpuRequest start = { .v2 = v2, .dir = VM, .split = true, .limits = &limited,
                                     .tids = tids, .n_tids = 2 };
        assert_capped_throughout((KernelCpu){ .v2 = v2, .parent = 20000, .child = -1 }, &start,
                                 20000);
        /* a QEMU whose threads shared its cgroup, its limit raised */
        VoCgroupCpuRequest update = start;
        update.limits = &half;
        assert_capped_throughout((KernelCpu){ .v2 = v2, .parent = 20000, .child = -1 },
                                 &update, 50000);
        /* live changes, up and down */
        VoCgroupCpuRequest live = { .v2 = v2, .dir = VM, .split = true, .limits = &half };
        KernelCpu split = { .v2 = v2, .parent = -1, .child = 20000, .has_child = true,
                            .threads_in_child = true };
        assert_capped_throughout(split, &live, 50000);
        live.limits = &limited;
        split.child = 50000;
        assert_capped_throughout(split, &live, 20000);
        /* threads in a child without a quota, the parent's still there (a
         * vireod that died between the steps) */
        live.limits = &half;
        KernelCpu halfway = { .v2 = v2, .parent = 20000, .child = -1, .has_child = true,
                              .threads_in_child = true };
        assert_capped_throughout(halfway, &live, 50000);
    }
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
    /* (its "20000" overwritten in place: a plain file keeps the tail) */
    assert_memory_equal(parent_quota, "-1", 2);
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
        cmocka_unit_test(test_vcpus_never_unlimited_on_the_way),
        cmocka_unit_test(test_run_on_plain_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
