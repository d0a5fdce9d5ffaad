/* cgroup-vcpu.c: the plan that puts a VM's vCPU threads and CPU quota in a
 * child of its QEMU's cgroup, and its execution (see cgroup-vcpu.h). */
#include "util/cgroup-vcpu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

static void add(VoCgroupPlan *p, char *path, char *value, bool may_be_refused)
{
    VoCgroupStep *steps = realloc(p->steps, (p->n + 1) * sizeof(*p->steps));
    if (!steps)
        abort();
    p->steps = steps;
    p->steps[p->n++] = (VoCgroupStep){ .path = path, .value = value,
                                       .may_be_refused = may_be_refused };
}

static void add_write(VoCgroupPlan *p, const char *dir, const char *file, char *value)
{
    add(p, vo_asprintf("%s/%s", dir, file), value, false);
}

/* "-1" / "max": no quota. */
static long long quota_us(const VoCgroupLimits *l)
{
    return l->cpu_limit > 0 ? (long long)(l->cpu_limit * VO_CGROUP_CPU_PERIOD_US + 0.5) : -1;
}

static void plan_limits_v1(VoCgroupPlan *p, const char *dir, const char *child,
                           const VoCgroupLimits *l)
{
    unsigned weight = l->cpu_weight ? l->cpu_weight : 100;
    /* v1's shares: 1024 is v2's weight 100. */
    unsigned long shares = (unsigned long)weight * 1024 / 100;
    add_write(p, dir, "cpu.shares", vo_asprintf("%lu", shares < 2 ? 2 : shares));
    add_write(p, dir, "cpu.cfs_period_us", vo_asprintf("%d", VO_CGROUP_CPU_PERIOD_US));
    if (!child) {
        add_write(p, dir, "cpu.cfs_quota_us", vo_asprintf("%lld", quota_us(l)));
        return;
    }
    /* The vCPU threads are never without a quota on the way (a limit set
     * with the parent's lifted first would leave them unlimited for a
     * moment, or for good when a step fails or vireod dies between). So the
     * parent gets the new quota first, which v1 refuses (EINVAL) only when
     * the child has more: then the parent has none already (split). The
     * child's, at most the parent's now, is accepted; the parent's goes last. */
    add(p, vo_asprintf("%s/cpu.cfs_quota_us", dir), vo_asprintf("%lld", quota_us(l)), true);
    add_write(p, child, "cpu.cfs_period_us", vo_asprintf("%d", VO_CGROUP_CPU_PERIOD_US));
    add_write(p, child, "cpu.cfs_quota_us", vo_asprintf("%lld", quota_us(l)));
    add_write(p, dir, "cpu.cfs_quota_us", vo_strdup("-1"));
}

static char *cpu_max(long long quota)
{
    return quota > 0 ? vo_asprintf("%lld %d", quota, VO_CGROUP_CPU_PERIOD_US)
                     : vo_asprintf("max %d", VO_CGROUP_CPU_PERIOD_US);
}

static void plan_limits_v2(VoCgroupPlan *p, const char *dir, const char *child,
                           const VoCgroupLimits *l)
{
    add_write(p, dir, "cpu.weight", vo_asprintf("%u", l->cpu_weight ? l->cpu_weight : 100));
    if (!child) {
        add_write(p, dir, "cpu.max", cpu_max(quota_us(l)));
        return;
    }
    /* The child's quota before the parent's goes, as on v1 (v2 refuses
     * neither: a child's is capped by its parent's). */
    add_write(p, child, "cpu.max", cpu_max(quota_us(l)));
    add_write(p, dir, "cpu.max", cpu_max(-1));
}

void vo_cgroup_cpu_plan(const VoCgroupCpuRequest *req, VoCgroupPlan *ret)
{
    *ret = (VoCgroupPlan){ 0 };
    _cleanup_free_ char *child =
        req->split ? vo_asprintf("%s/%s", req->dir, VO_CGROUP_VCPU_CHILD) : NULL;
    if (child && req->n_tids) {
        add(ret, vo_strdup(child), NULL, false);
        if (req->v2) {
            /* A threaded child makes the VM's cgroup a threaded domain:
             * its own threads stay, and cpu (a threaded controller) may
             * then be on for the child; memory stays the parent's. */
            add_write(ret, child, "cgroup.type", vo_strdup("threaded"));
            add_write(ret, req->dir, "cgroup.subtree_control", vo_strdup("+cpu"));
        }
        for (size_t i = 0; i < req->n_tids; i++)
            add_write(ret, child, req->v2 ? "cgroup.threads" : "tasks",
                      vo_asprintf("%d", (int)req->tids[i]));
    }
    if (req->limits) {
        if (req->v2)
            plan_limits_v2(ret, req->dir, child, req->limits);
        else
            plan_limits_v1(ret, req->dir, child, req->limits);
    }
}

void vo_cgroup_plan_clear(VoCgroupPlan *plan)
{
    for (size_t i = 0; i < plan->n; i++) {
        free(plan->steps[i].path);
        free(plan->steps[i].value);
    }
    free(plan->steps);
    *plan = (VoCgroupPlan){ 0 };
}

int vo_cgroup_write_file(const char *path, const char *value)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, value, strlen(value));
    if (n < 0)
        return -errno;
    return (size_t)n == strlen(value) ? 0 : -EIO;
}

int vo_cgroup_plan_run(const VoCgroupPlan *plan, char **ret_path)
{
    for (size_t i = 0; i < plan->n; i++) {
        const VoCgroupStep *s = &plan->steps[i];
        int r;
        if (!s->value)
            r = mkdir(s->path, 0755) < 0 && errno != EEXIST ? -errno : 0;
        else
            r = vo_cgroup_write_file(s->path, s->value);
        if (r == -ESRCH || (r == -EINVAL && s->may_be_refused))
            continue;
        if (r < 0) {
            if (ret_path)
                *ret_path = vo_strdup(s->path);
            return r;
        }
    }
    return 0;
}
