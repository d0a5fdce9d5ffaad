/* cgroup.c: per-process cgroups under vireo's own directory, on cgroup v2
 * or on v1's cpu/cpuacct/memory hierarchies (see cgroup.h). */
#include "util/cgroup.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cgroup-vcpu.h"
#include "util/util.h"

#define CGROUP_MOUNTS "/proc/self/mounts"
#define CGROUP_FS "/sys/fs/cgroup"
#define V1_UNLIMITED (UINT64_C(1) << 62) /* v1 shows "no limit" as a huge number */

struct VoCgroupHost {
    bool v2;
    char *v2_dir;                              /* v2: MOUNT/base */
    char *cpu_dir, *cpuacct_dir, *memory_dir;  /* v1: each hierarchy's MOUNT/base */
};

VoCgroupHost *vo_cgroup_host_free(VoCgroupHost *h)
{
    if (h) {
        free(h->v2_dir);
        free(h->cpu_dir);
        free(h->cpuacct_dir);
        free(h->memory_dir);
        free(h);
    }
    return NULL;
}

const char *vo_cgroup_host_version(const VoCgroupHost *h) { return h->v2 ? "v2" : "v1"; }
const char *vo_cgroup_host_dir(const VoCgroupHost *h) { return h->v2 ? h->v2_dir : h->memory_dir; }

static int write_text(const char *dir, const char *file, const char *text)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, file);
    return vo_cgroup_write_file(path, text);
}

static char *read_text(const char *dir, const char *file)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, file);
    char *text = NULL;
    if (vo_read_file(path, 64 << 10, &text, NULL) < 0)
        return NULL;
    return text;
}

static bool has_word(const char *list, const char *word, const char *seps)
{
    _cleanup_free_ char *copy = vo_strdup(list);
    char *save = NULL;
    for (char *w = strtok_r(copy, seps, &save); w; w = strtok_r(NULL, seps, &save))
        if (!strcmp(w, word))
            return true;
    return false;
}

/* v2: the unified hierarchy with cpu and memory available at its root. */
static int open_v2(const char *mount, const char *base, VoCgroupHost *h, char **ret_reason)
{
    _cleanup_free_ char *controllers = read_text(mount, "cgroup.controllers");
    if (!controllers || !has_word(controllers, "cpu", " \n") ||
        !has_word(controllers, "memory", " \n"))
        return vo_error_set(ret_reason, -ENODEV, "cgroup v2 at %s has no cpu and memory "
                            "controllers (they are bound to v1 hierarchies)", mount);
    h->v2 = true;
    h->v2_dir = vo_asprintf("%s/%s", mount, base);
    int r = vo_mkdir_p(h->v2_dir, 0755);
    /* The controllers on at every level from the root down to base. */
    _cleanup_free_ char *level = vo_strdup(mount);
    _cleanup_free_ char *rest = vo_strdup(base);
    char *save = NULL;
    if (r >= 0)
        r = write_text(level, "cgroup.subtree_control", "+cpu +memory");
    for (char *part = strtok_r(rest, "/", &save); r >= 0 && part; part = strtok_r(NULL, "/", &save)) {
        char *next = vo_asprintf("%s/%s", level, part);
        free(level);
        level = next;
        r = write_text(level, "cgroup.subtree_control", "+cpu +memory");
    }
    return r < 0 ? vo_error_set(ret_reason, r, "cannot set up %s: %s", level, strerror(-r)) : 0;
}

/* Whether any cgroup file system is mounted in our mount namespace. */
static bool any_mounted(const char *mounts)
{
    return strstr(mounts, " cgroup ") || strstr(mounts, " cgroup2 ");
}

/* A mount namespace without cgroup mounts (`ip netns exec` mounts a fresh
 * /sys; a host without an init system may mount none): the hierarchies
 * this process belongs to (/proc/self/cgroup) mounted at CGROUP_FS, as
 * cgroupfs-mount would: v2 alone, or a tmpfs with v1's cpu, cpuacct and
 * memory hierarchies (each with the controllers it has on this host). */
static void mount_hierarchies(void)
{
    _cleanup_free_ char *own = NULL;
    if (vo_read_file("/proc/self/cgroup", 64 << 10, &own, NULL) < 0)
        return;
    char **sets = NULL;
    char *save = NULL;
    for (char *line = strtok_r(own, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *set = strchr(line, ':'), *end = set ? strchr(set + 1, ':') : NULL;
        if (!end || end == set + 1)
            continue;
        *end = 0;
        set++;
        if (has_word(set, "cpu", ",") || has_word(set, "cpuacct", ",") ||
            has_word(set, "memory", ","))
            vo_strv_push(&sets, vo_strdup(set));
    }
    if (!sets) {
        if (mount("cgroup2", CGROUP_FS, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0)
            log_info("mounted cgroup v2 at %s", CGROUP_FS);
        return;
    }
    if (mount("vireo-cgroup", CGROUP_FS, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0) {
        vo_strv_free(sets);
        return;
    }
    for (char **set = sets; *set; set++) {
        _cleanup_free_ char *dir = vo_asprintf("%s/%s", CGROUP_FS, *set);
        if (mkdir(dir, 0755) == 0 &&
            mount("cgroup", dir, "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC, *set) == 0)
            log_info("mounted the cgroup v1 hierarchy %s at %s", *set, dir);
    }
    vo_strv_free(sets);
}

int vo_cgroup_host_open(const char *base, VoCgroupHost **ret, char **ret_reason)
{
    _cleanup_free_ char *mounts = NULL;
    if (vo_read_file(CGROUP_MOUNTS, 1 << 20, &mounts, NULL) >= 0 && !any_mounted(mounts))
        mount_hierarchies();
    free(TAKE_PTR(mounts));
    if (vo_read_file(CGROUP_MOUNTS, 1 << 20, &mounts, NULL) < 0)
        return vo_error_set(ret_reason, -ENODEV, "cannot read %s", CGROUP_MOUNTS);
    VoCgroupHost *h = vo_malloc0(sizeof(*h));
    _cleanup_free_ char *v2_mount = NULL;
    char *save = NULL;
    for (char *line = strtok_r(mounts, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char dev[64], dir[512], type[32], opts[512];
        if (sscanf(line, "%63s %511s %31s %511s", dev, dir, type, opts) != 4)
            continue;
        if (!strcmp(type, "cgroup2") && !v2_mount)
            v2_mount = vo_strdup(dir);
        if (strcmp(type, "cgroup"))
            continue;
        if (has_word(opts, "cpu", ",") && !h->cpu_dir)
            h->cpu_dir = vo_asprintf("%s/%s", dir, base);
        if (has_word(opts, "cpuacct", ",") && !h->cpuacct_dir)
            h->cpuacct_dir = vo_asprintf("%s/%s", dir, base);
        if (has_word(opts, "memory", ",") && !h->memory_dir)
            h->memory_dir = vo_asprintf("%s/%s", dir, base);
    }
    _cleanup_free_ char *v2_reason = NULL;
    if (v2_mount && open_v2(v2_mount, base, h, &v2_reason) >= 0) {
        *ret = h;
        return 0;
    }
    h->v2 = false;
    if (!h->cpu_dir || !h->memory_dir) {
        int r = vo_error_set(ret_reason, -ENODEV, "%s; no cgroup v1 cpu and memory hierarchies "
                             "either", v2_reason ? v2_reason : "no cgroup v2 mounted");
        vo_cgroup_host_free(h);
        return r;
    }
    const char *dirs[] = { h->cpu_dir, h->cpuacct_dir, h->memory_dir };
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        int r = dirs[i] ? vo_mkdir_p(dirs[i], 0755) : 0;
        if (r < 0) {
            r = vo_error_set(ret_reason, r, "cannot make %s: %s", dirs[i], strerror(-r));
            vo_cgroup_host_free(h);
            return r;
        }
    }
    *ret = h;
    return 0;
}

/* The directories of base/name, one per hierarchy (v1: cpu, cpuacct, memory). */
static size_t dirs_of(const VoCgroupHost *h, const char *name, char *ret[3])
{
    size_t n = 0;
    const char *bases[] = { h->v2_dir, h->cpu_dir, h->cpuacct_dir, h->memory_dir };
    for (size_t i = h->v2 ? 0 : 1; i < (h->v2 ? 1 : ELEMENTSOF(bases)); i++)
        if (bases[i] && (i != 2 || strcmp(bases[i], h->cpu_dir))) /* cpu,cpuacct mounted as one */
            ret[n++] = vo_asprintf("%s/%s", bases[i], name);
    return n;
}

static void dirs_free(char *dirs[3], size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(dirs[i]);
}

/* The VM's cgroup in the cpu hierarchy (v2: the one). */
static char *cpu_dir_of(const VoCgroupHost *h, const char *name)
{
    return vo_asprintf("%s/%s", h->v2 ? h->v2_dir : h->cpu_dir, name);
}

bool vo_cgroup_vcpus_split(const VoCgroupHost *h, const char *name)
{
    _cleanup_free_ char *dir = cpu_dir_of(h, name);
    _cleanup_free_ char *child = vo_asprintf("%s/%s", dir, VO_CGROUP_VCPU_CHILD);
    return access(child, F_OK) == 0;
}

/* The CPU part of a request (cgroup-vcpu.h) carried out on base/name. */
static int run_cpu_request(const VoCgroupHost *h, const char *name, bool split,
                           const VoCgroupLimits *limits, const pid_t *tids, size_t n_tids,
                           char **ret_path)
{
    _cleanup_free_ char *dir = cpu_dir_of(h, name);
    VoCgroupCpuRequest req = { .v2 = h->v2, .dir = dir, .split = split, .limits = limits,
                               .tids = tids, .n_tids = n_tids };
    VoCgroupPlan plan;
    vo_cgroup_cpu_plan(&req, &plan);
    int r = vo_cgroup_plan_run(&plan, ret_path);
    vo_cgroup_plan_clear(&plan);
    return r;
}

int vo_cgroup_set_limits(const VoCgroupHost *h, const char *name, const VoCgroupLimits *l)
{
    int r = run_cpu_request(h, name, vo_cgroup_vcpus_split(h, name), l, NULL, 0, NULL);
    if (r < 0)
        return r;
    char text[64];
    if (h->v2) {
        _cleanup_free_ char *dir = vo_asprintf("%s/%s", h->v2_dir, name);
        if (l->memory_max)
            snprintf(text, sizeof(text), "%llu", (unsigned long long)l->memory_max);
        return write_text(dir, "memory.max", l->memory_max ? text : "max");
    }
    _cleanup_free_ char *memory = vo_asprintf("%s/%s", h->memory_dir, name);
    snprintf(text, sizeof(text), "%lld", l->memory_max ? (long long)l->memory_max : -1LL);
    return write_text(memory, "memory.limit_in_bytes", text);
}

/* tids back into base/name and its vCPU child removed (errors ignored). */
static void unsplit(const VoCgroupHost *h, const char *name, const pid_t *tids, size_t n_tids)
{
    _cleanup_free_ char *dir = cpu_dir_of(h, name);
    char text[32];
    for (size_t i = 0; i < n_tids; i++) {
        snprintf(text, sizeof(text), "%d", (int)tids[i]);
        (void)write_text(dir, h->v2 ? "cgroup.threads" : "tasks", text);
    }
    _cleanup_free_ char *child = vo_asprintf("%s/%s", dir, VO_CGROUP_VCPU_CHILD);
    (void)rmdir(child);
}

int vo_cgroup_place_vcpus(const VoCgroupHost *h, const char *name, const VoCgroupLimits *limits,
                          const pid_t *tids, size_t n_tids, char **ret_error)
{
    if (!n_tids)
        return vo_error_set(ret_error, -ENOENT, "QEMU named no vCPU threads");
    bool was_split = vo_cgroup_vcpus_split(h, name);
    _cleanup_free_ char *path = NULL;
    int r = run_cpu_request(h, name, true, limits, tids, n_tids, &path);
    if (r >= 0)
        return 0;
    /* A child it made goes, and the limits are the whole's again (the
     * parent's quota may have been lifted before the failure). */
    if (!was_split) {
        unsplit(h, name, tids, n_tids);
        if (limits)
            (void)run_cpu_request(h, name, false, limits, NULL, 0, NULL);
    }
    return vo_error_set(ret_error, r, "cannot write %s: %s", path ? path : "?", strerror(-r));
}

int vo_cgroup_make(const VoCgroupHost *h, const char *name, const VoCgroupLimits *limits,
                   char ***ret_procs)
{
    if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return -EINVAL;
    char *dirs[3];
    size_t n = dirs_of(h, name, dirs);
    int r = 0;
    char **procs = NULL;
    for (size_t i = 0; r >= 0 && i < n; i++) {
        if (mkdir(dirs[i], 0755) < 0 && errno != EEXIST)
            r = -errno;
        vo_strv_push(&procs, vo_asprintf("%s/cgroup.procs", dirs[i]));
    }
    dirs_free(dirs, n);
    /* A vCPU child left by a QEMU that ended unwatched (vireod down) goes:
     * the limits start on the whole, until the new vCPU threads move. */
    _cleanup_free_ char *cpu_dir = cpu_dir_of(h, name);
    _cleanup_free_ char *child = vo_asprintf("%s/%s", cpu_dir, VO_CGROUP_VCPU_CHILD);
    if (r >= 0) {
        (void)rmdir(child);
        r = vo_cgroup_set_limits(h, name, limits);
    }
    if (r < 0) {
        vo_strv_free(procs);
        vo_cgroup_remove(h, name);
        return r;
    }
    *ret_procs = procs;
    return 0;
}

bool vo_cgroup_exists(const VoCgroupHost *h, const char *name)
{
    _cleanup_free_ char *dir = vo_asprintf("%s/%s", vo_cgroup_host_dir(h), name);
    return access(dir, F_OK) == 0;
}

void vo_cgroup_remove(const VoCgroupHost *h, const char *name)
{
    char *dirs[3];
    size_t n = dirs_of(h, name, dirs);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *child = vo_asprintf("%s/%s", dirs[i], VO_CGROUP_VCPU_CHILD);
        (void)rmdir(child); /* its vCPU threads' (cgroup-vcpu.h), in the cpu hierarchy */
        (void)rmdir(dirs[i]);
    }
    dirs_free(dirs, n);
}

static uint64_t read_u64(const char *dir, const char *file, const char *key)
{
    _cleanup_free_ char *text = read_text(dir, file);
    if (!text)
        return 0;
    const char *at = text;
    if (key) {
        size_t klen = strlen(key);
        for (at = text; at; at = strchr(at, '\n'), at = at ? at + 1 : NULL)
            if (!strncmp(at, key, klen) && at[klen] == ' ')
                break;
        if (!at)
            return 0;
        at += klen + 1;
    }
    if (!strncmp(at, "max", 3))
        return 0;
    return strtoull(at, NULL, 10);
}

int vo_cgroup_stats(const VoCgroupHost *h, const char *name, VoCgroupStats *ret)
{
    if (!vo_cgroup_exists(h, name))
        return -ENOENT;
    *ret = (VoCgroupStats){ 0 };
    if (h->v2) {
        _cleanup_free_ char *dir = vo_asprintf("%s/%s", h->v2_dir, name);
        ret->cpu_usec = read_u64(dir, "cpu.stat", "usage_usec");
        ret->memory_bytes = read_u64(dir, "memory.current", NULL);
        ret->memory_max = read_u64(dir, "memory.max", NULL);
        ret->cpu_weight = (unsigned)read_u64(dir, "cpu.weight", NULL);
        _cleanup_free_ char *vcpus = vo_asprintf("%s/%s", dir, VO_CGROUP_VCPU_CHILD);
        _cleanup_free_ char *max = read_text(vo_cgroup_vcpus_split(h, name) ? vcpus : dir,
                                             "cpu.max");
        long long quota = 0, period = 0;
        if (max && sscanf(max, "%lld %lld", &quota, &period) == 2 && period > 0)
            ret->cpu_limit = (double)quota / (double)period;
        return 0;
    }
    _cleanup_free_ char *cpu = vo_asprintf("%s/%s", h->cpu_dir, name);
    _cleanup_free_ char *memory = vo_asprintf("%s/%s", h->memory_dir, name);
    if (h->cpuacct_dir) {
        _cleanup_free_ char *acct = vo_asprintf("%s/%s", h->cpuacct_dir, name);
        ret->cpu_usec = read_u64(acct, "cpuacct.usage", NULL) / 1000;
    }
    ret->memory_bytes = read_u64(memory, "memory.usage_in_bytes", NULL);
    uint64_t limit = read_u64(memory, "memory.limit_in_bytes", NULL);
    ret->memory_max = limit >= V1_UNLIMITED ? 0 : limit;
    ret->cpu_weight = (unsigned)(read_u64(cpu, "cpu.shares", NULL) * 100 / 1024);
    /* The quota is the vCPU threads' when they have their own cgroup. */
    _cleanup_free_ char *vcpus = vo_asprintf("%s/%s", cpu, VO_CGROUP_VCPU_CHILD);
    const char *quota_dir = vo_cgroup_vcpus_split(h, name) ? vcpus : cpu;
    _cleanup_free_ char *quota_text = read_text(quota_dir, "cpu.cfs_quota_us");
    long long quota = quota_text ? atoll(quota_text) : -1;
    uint64_t period = read_u64(quota_dir, "cpu.cfs_period_us", NULL);
    if (quota > 0 && period > 0)
        ret->cpu_limit = (double)quota / (double)period;
    return 0;
}

int vo_cgroup_join(char *const *procs)
{
    for (size_t i = 0; procs && procs[i]; i++) {
        int fd = open(procs[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        ssize_t n = write(fd, "0", 1);
        int saved = errno;
        close(fd);
        if (n != 1) {
            errno = n < 0 ? saved : EIO;
            return -1;
        }
    }
    return 0;
}
