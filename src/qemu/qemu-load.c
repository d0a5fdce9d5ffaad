/* qemu-load.c: the QEMU driver's load op (qemu-load.h): CPU time from
 * /proc/PID/stat, the time its threads waited for a CPU from each
 * /proc/PID/task/TID/schedstat (qemu-schedstat.h), and the memory in use:
 * the guest's own (the balloon's statistics, which the first load turns
 * on) when QMP is free to ask and the guest reports them, else resident
 * memory from /proc/PID/statm bounded by the balloon's actual (never waited
 * for: a busy monitor leaves the resident memory as the answer). */
#include "qemu/qemu-load.h"

#include <dirent.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qemu/qemu-argv.h" /* VO_QEMU_BALLOON_ID */
#include "qemu/qemu-instance.h"
#include "util/util.h"

#define BALLOON_TIMEOUT_MS 500
#define BALLOON_PATH "/machine/peripheral/" VO_QEMU_BALLOON_ID
/* How often the guest is asked for its statistics once turned on, and how
 * old they may be (a guest whose balloon driver stopped reporting). */
#define BALLOON_STATS_INTERVAL_S 5
#define BALLOON_STATS_STALE_S 30
/* Turning the statistics on is tried this often per instance (a QEMU
 * without them answers an error each time). */
#define BALLOON_STATS_TRIES 3

/* Guards every instance's waits (a load is short; one lock is enough). */
static pthread_mutex_t waits_lock = PTHREAD_MUTEX_INITIALIZER;

int vo_proc_stat_cpu_ticks(const char *text, uint64_t *ret)
{
    /* "pid (comm) state ppid ...": the name ends at the last ')'. */
    const char *p = text ? strrchr(text, ')') : NULL;
    if (!p)
        return -EINVAL;
    p++;
    /* After ')': field 3 (state) is the first; utime is field 14. */
    uint64_t v[2];
    for (int field = 3, k = 0; field <= 15; field++) {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n')
            return -EINVAL;
        if (field >= 14) {
            char *end = NULL;
            errno = 0;
            unsigned long long x = strtoull(p, &end, 10);
            if (end == p || errno || (*end != ' ' && *end != '\n' && *end))
                return -EINVAL;
            v[k++] = x;
            p = end;
        } else
            p += strcspn(p, " \n");
    }
    *ret = v[0] + v[1];
    return 0;
}

int vo_proc_statm_rss_pages(const char *text, uint64_t *ret)
{
    unsigned long long size, resident;
    if (!text || sscanf(text, "%llu %llu", &size, &resident) != 2)
        return -EINVAL;
    *ret = resident;
    return 0;
}

/* One statistic (bytes) of the balloon's, or -1 when the guest did not
 * report it (QEMU says 2^64 - 1; numbers are read as reals: exact below
 * 2^53, far above any memory size). */
static int64_t guest_stat(json_t *stats, const char *name)
{
    json_t *v = json_object_get(stats, name);
    double x = json_is_number(v) ? json_number_value(v) : -1;
    return x >= 0 && x < 9.0e15 ? (int64_t)x : -1;
}

int vo_balloon_guest_used_bytes(json_t *o, int64_t now_s, uint64_t *ret)
{
    json_t *stats = json_object_get(o, "stats");
    if (!json_is_object(stats))
        return o ? -EINVAL : -ENODATA;
    int64_t at = guest_stat(o, "last-update");
    int64_t total = guest_stat(stats, "stat-total-memory");
    int64_t available = guest_stat(stats, "stat-available-memory");
    int64_t free_b = guest_stat(stats, "stat-free-memory");
    int64_t caches = guest_stat(stats, "stat-disk-caches");
    if (at <= 0 || now_s - at > BALLOON_STATS_STALE_S)
        return -ENODATA;
    int64_t left;
    if (available >= 0)
        left = available;
    else if (free_b >= 0 && caches >= 0)
        left = free_b + caches;
    else
        return -ENODATA;
    if (total <= 0 || left > total)
        return -ENODATA;
    *ret = (uint64_t)(total - left);
    return 0;
}

static int read_proc(pid_t pid, const char *what, char **ret)
{
    _cleanup_free_ char *path = vo_asprintf("/proc/%d/%s", (int)pid, what);
    return vo_read_file(path, 4096, ret, NULL);
}

int vo_qemu_proc_usage(VoHvInstance *vm, uint64_t *ret_cpu_ns, uint64_t *ret_rss_bytes)
{
    if (vm->pid <= 0)
        return -ESRCH;
    _cleanup_free_ char *stat = NULL, *statm = NULL;
    uint64_t ticks = 0, pages = 0;
    int r = read_proc(vm->pid, "stat", &stat);
    if (r >= 0)
        r = vo_proc_stat_cpu_ticks(stat, &ticks);
    if (r >= 0)
        r = read_proc(vm->pid, "statm", &statm);
    if (r >= 0)
        r = vo_proc_statm_rss_pages(statm, &pages);
    if (r < 0)
        return r;
    /* Still running after the reads: what /proc showed was this QEMU's,
     * not a process that got its pid after it ended (a re-attached QEMU is
     * no child of ours: its pid is free the moment it exits). */
    struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };
    if (vm->pidfd >= 0 && poll(&p, 1, 0) != 0)
        return -ESRCH;
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    *ret_cpu_ns = ticks * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
    *ret_rss_bytes = pages * (uint64_t)(page > 0 ? page : 4096);
    return 0;
}

/* The run_delay of each thread of pid now (*ret malloc'd, *ret_n of them):
 * a thread that ends while they are read is left out. 0 or the error of
 * listing the threads. */
static int read_thread_waits(pid_t pid, VoThreadWait **ret, size_t *ret_n)
{
    _cleanup_free_ char *dir_path = vo_asprintf("/proc/%d/task", (int)pid);
    DIR *dir = opendir(dir_path);
    if (!dir)
        return -errno;
    size_t n = 0, cap = 16;
    VoThreadWait *t = vo_malloc0(cap * sizeof(*t));
    struct dirent *de;
    while ((de = readdir(dir))) {
        char *end = NULL;
        long tid = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end || tid <= 0)
            continue;
        _cleanup_free_ char *path = vo_asprintf("%s/%ld/schedstat", dir_path, tid);
        _cleanup_free_ char *text = NULL;
        uint64_t delay = 0;
        if (vo_read_file(path, 256, &text, NULL) < 0 || vo_schedstat_run_delay(text, &delay) < 0)
            continue;
        if (n == cap) {
            cap *= 2;
            t = realloc(t, cap * sizeof(*t));
            if (!t)
                abort();
        }
        t[n++] = (VoThreadWait){ .tid = (int)tid, .run_delay_ns = delay };
    }
    closedir(dir);
    *ret = t;
    *ret_n = n;
    return 0;
}

/* What is left of a load's budget for the monitor (ms; 0 when spent: a
 * negative timeout would wait for ever). */
static int budget_left(int64_t deadline)
{
    int64_t left = deadline - vo_now_ms();
    return left > 0 ? (int)left : 0;
}

/* The guest's use (bytes) from the balloon's statistics (QMP qom-get; the
 * statistics a guest does not report are 2^64 - 1, which the QMP client
 * reads as reals). A QEMU that refuses the read (no such property) or
 * answers something else is not asked again. 0, or -ENODATA, -EINVAL (no
 * statistics) or the call's error. Caller holds qmp_lock. */
static int guest_used(VoHvInstance *vm, int64_t deadline, uint64_t *ret)
{
    if (budget_left(deadline) <= 0)
        return -ETIMEDOUT;
    json_t *args = json_pack("{s:s, s:s}", "path", BALLOON_PATH, "property", "guest-stats");
    json_t *answer = NULL;
    int r = vo_qmp_execute(vm->qmp, "qom-get", args, budget_left(deadline), &answer, NULL);
    json_decref(args);
    if (r >= 0)
        r = vo_balloon_guest_used_bytes(answer, vo_wall_ms() / 1000, ret);
    json_decref(answer);
    if (r == -EINVAL || r == -EIO) {
        vm->balloon_stats_on = false;
        vm->balloon_stats_tries = BALLOON_STATS_TRIES;
    }
    return r;
}

int vo_qemu_load(VoHvInstance *vm, VoHvLoad *ret)
{
    *ret = (VoHvLoad){ 0 };
    uint64_t rss = 0;
    _cleanup_free_ VoThreadWait *threads = NULL;
    size_t n_threads = 0;
    /* The threads first: what the usage check below finds still running
     * is the QEMU they belonged to. No schedstat (a kernel without
     * CONFIG_SCHED_INFO): no waiting, the demand is the usage. */
    bool have_waits = vm->pid > 0 && read_thread_waits(vm->pid, &threads, &n_threads) >= 0;
    int r = vo_qemu_proc_usage(vm, &ret->cpu_ns, &rss);
    if (r < 0)
        return r;
    ret->at_ms = vo_now_ms();
    pthread_mutex_lock(&waits_lock);
    if (have_waits)
        vo_thread_waits_add(&vm->waits, threads, n_threads);
    ret->wait_ns = vm->waits.total_ns;
    pthread_mutex_unlock(&waits_lock);
    ret->mem_used_mib = ret->rss_mib = rss >> 20;
    ret->mem_source = VO_HV_MEM_RSS;
    /* The balloon: only when the monitor is free this instant. */
    if (pthread_mutex_trylock(&vm->qmp_lock) != 0)
        return 0;
    /* Briefly: the caller (the host record's publisher, which samples the
     * VMs one after the other) holds the VM's job lock, and a QEMU that
     * does not answer must not hold either for the monitor's usual 10 s (a
     * late answer is dropped by its id). One budget for all of this
     * load's calls, not one per call. */
    int64_t deadline = vo_now_ms() + BALLOON_TIMEOUT_MS;
    if (vm->qmp && !vm->balloon_stats_on && vm->balloon_stats_tries < BALLOON_STATS_TRIES) {
        /* First, so that a QEMU slow to answer gets them on, and reads
         * them at the next loads in one call. */
        json_t *args = json_pack("{s:s, s:s, s:i}", "path", BALLOON_PATH, "property",
                                 "guest-stats-polling-interval", "value",
                                 BALLOON_STATS_INTERVAL_S);
        int set = vo_qmp_execute(vm->qmp, "qom-set", args, budget_left(deadline), NULL, NULL);
        json_decref(args);
        vm->balloon_stats_on = set >= 0;
        if (set == -EIO) /* refused (no balloon); a QEMU too slow to answer is asked again */
            vm->balloon_stats_tries++;
    }
    uint64_t used = 0;
    int g = vm->qmp && vm->balloon_stats_on ? guest_used(vm, deadline, &used) : -ENODATA;
    json_t *balloon = NULL;
    int b = -ENOTCONN;
    if (g < 0 && vm->qmp && budget_left(deadline) > 0)
        b = vo_qmp_execute(vm->qmp, "query-balloon", NULL, budget_left(deadline), &balloon,
                           NULL);
    pthread_mutex_unlock(&vm->qmp_lock);
    json_t *actual = json_object_get(balloon, "actual");
    if (g >= 0) {
        ret->mem_used_mib = used >> 20;
        ret->mem_source = VO_HV_MEM_GUEST;
    } else if (b >= 0 && json_is_integer(actual) && json_integer_value(actual) > 0) {
        uint64_t mib = (uint64_t)json_integer_value(actual) >> 20;
        if (mib < ret->mem_used_mib) {
            ret->mem_used_mib = mib;
            ret->mem_source = VO_HV_MEM_BALLOON;
        }
    }
    json_decref(balloon);
    return 0;
}
