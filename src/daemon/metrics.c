/* metrics.c: the monitoring sampler and its history (metrics.h). Each
 * round: this host's CPU, memory, disks and network from /proc and /sys,
 * then each running VM's counters through the driver's stats op (only when
 * no task holds the VM's job lock: a busy VM's sample is skipped, as the
 * DRS samples do) and its taps' /sys/class/net counters; rates from the
 * counters' deltas; into each object's history; the changed rows written.
 * Sampling happens with no lock of this file held; the results are applied
 * under it. */
#include "daemon/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/host-facts.h"
#include "daemon/vm-internal.h"
#include "daemon/vm-job.h"
#include "daemon/vms.h"
#include "metrics/proc-io.h"
#include "metrics/rrd.h"
#include "network/net-spec.h"
#include "util/util.h"

/* Counters kept per object for rates (the host's CPU is VoCpuSample). */
enum { C_CPU, C_RD_B, C_WR_B, C_RD_O, C_WR_O, C_RX, C_TX, N_COUNTERS };

enum { V_CPU, V_MEM_CONF, V_MEM_RSS, V_MEM_BALLOON, V_RD, V_WR, V_RD_O, V_WR_O, V_RX, V_TX, N_VM };
static const char *const vm_names[N_VM] = {
    "cpu", "memory_configured", "memory_rss", "memory_balloon", "disk_read",
    "disk_write", "disk_read_ops", "disk_write_ops", "net_rx", "net_tx",
};
static const char *const vm_units[N_VM] = {
    "cores", "bytes", "bytes", "bytes", "bytes/s", "bytes/s", "ops/s", "ops/s", "bytes/s", "bytes/s",
};

enum { H_CPU, H_MEM_USED, H_MEM_TOTAL, H_RD, H_WR, H_RD_O, H_WR_O, H_RX, H_TX, N_HOST };
static const char *const host_names[N_HOST] = {
    "cpu", "memory_used", "memory_total", "disk_read", "disk_write",
    "disk_read_ops", "disk_write_ops", "net_rx", "net_tx",
};
static const char *const host_units[N_HOST] = {
    "ratio", "bytes", "bytes", "bytes/s", "bytes/s", "ops/s", "ops/s", "bytes/s", "bytes/s",
};

typedef struct {
    char *id, *name;
    VoRrd *rrd;
    /* The counters of the last sample that had them, and when (monotonic
     * ms; 0: none yet). */
    uint64_t prev[N_COUNTERS];
    int64_t prev_ms[N_COUNTERS];
    /* The last sample: its values (NaN: unknown) and counters. */
    double last[VO_RRD_MAX_COLS];
    uint64_t total[N_COUNTERS];
    bool total_ok[N_COUNTERS];
    bool running, sampled;
    bool seen; /* in this round's registry */
} Obj;

/* One VM's sample, taken with no lock of this file held. */
typedef struct {
    char *id, *name;
    bool running, ok;
    uint64_t mem_conf;
    VoHvStats st;
    bool net_ok;
    uint64_t rx, tx; /* the VM's view: rx = its taps' tx */
} VmSample;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop, wake, started;
    pthread_t thread;
    int interval_ms;
    VoDaemon *d;
    char *dir; /* STATE/metrics */
    Obj host;
    VoCpuSample host_cpu;
    bool host_cpu_ok;
    int64_t host_cpu_ms; /* when host_cpu was read */
    Obj **vms;
    size_t n_vms;
} M = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void obj_free(Obj *o)
{
    if (!o)
        return;
    vo_rrd_free(o->rrd);
    free(o->id);
    free(o->name);
    free(o);
}

static VoRrd *open_rrd(const char *path, unsigned cols)
{
    VoRrd *r = NULL;
    int e = vo_rrd_open(path, cols, &r);
    if (e == 1)
        log_warn("monitoring history %s was damaged: what could not be read is gone", path);
    if (e < 0) {
        log_warn("cannot open the monitoring history %s: %s (kept in memory only)", path,
                 strerror(-e));
        r = vo_rrd_new(cols);
    }
    return r;
}

static char *vm_path(const char *id)
{
    return vo_asprintf("%s/vms/%s.rrd", M.dir, id);
}

/* ---- the host ---- */

static bool want_disk(const char *name)
{
    /* Whole disks with a device (not partitions, loop, dm or md devices,
     * which count the same I/O again). */
    _cleanup_free_ char *p = vo_asprintf("/sys/block/%s/device", name);
    return access(p, F_OK) == 0;
}

static bool want_net_physical(const char *name)
{
    _cleanup_free_ char *p = vo_asprintf("/sys/class/net/%s/device", name);
    return access(p, F_OK) == 0;
}

static bool want_net_not_lo(const char *name)
{
    return strcmp(name, "lo") != 0;
}

/* The counter's rate since its last sample; *weight: the seconds that
 * covers (a late or skipped round covers more than one interval). */
static double rate(Obj *o, int c, uint64_t now, bool ok, int64_t now_ms, double scale,
                   double *weight)
{
    o->total[c] = now;
    o->total_ok[c] = ok;
    if (!ok)
        return NAN;
    double seconds = (double)(now_ms - o->prev_ms[c]) / 1000.0;
    double v = o->prev_ms[c] ? vo_rrd_counter_rate(o->prev[c], now, seconds) : NAN;
    *weight = seconds;
    o->prev[c] = now;
    o->prev_ms[c] = now_ms;
    return v * scale;
}

static void sample_host(int64_t t_s, int64_t now_ms)
{
    double v[N_HOST], w[N_HOST];
    for (int i = 0; i < N_HOST; i++)
        v[i] = NAN, w[i] = 1;
    VoCpuSample cpu;
    bool cpu_ok = vo_host_cpu_sample_read(&cpu);
    VoHostFacts f = { 0 };
    _cleanup_free_ char *meminfo = NULL, *disks = NULL, *net = NULL;
    if (vo_read_file("/proc/meminfo", 1 << 20, &meminfo, NULL) == 0)
        vo_host_facts_parse_meminfo(meminfo, &f);
    VoDiskCounters dc;
    bool disk_ok = vo_read_file("/proc/diskstats", 4 << 20, &disks, NULL) == 0 &&
                   vo_diskstats_sum(disks, want_disk, &dc) == 0;
    VoNetCounters nc = { 0 };
    bool net_ok = vo_read_file("/proc/net/dev", 4 << 20, &net, NULL) == 0 &&
                  vo_netdev_sum(net, want_net_physical, &nc) == 0;
    /* No physical interface (a container, a test's namespace): all but lo. */
    if (net_ok && !nc.rx_bytes && !nc.tx_bytes)
        net_ok = vo_netdev_sum(net, want_net_not_lo, &nc) == 0;

    pthread_mutex_lock(&M.lock);
    Obj *o = &M.host;
    if (cpu_ok && M.host_cpu_ok) {
        v[H_CPU] = vo_host_cpu_busy(&M.host_cpu, &cpu);
        w[H_CPU] = (double)(now_ms - M.host_cpu_ms) / 1000.0;
    }
    if (cpu_ok) {
        M.host_cpu = cpu;
        M.host_cpu_ms = now_ms;
        M.host_cpu_ok = true;
    }
    if (f.memory_mib) {
        v[H_MEM_USED] = (double)(f.memory_used_mib << 20);
        v[H_MEM_TOTAL] = (double)(f.memory_mib << 20);
    }
    v[H_RD] = rate(o, C_RD_B, dc.rd_bytes, disk_ok, now_ms, 1, &w[H_RD]);
    v[H_WR] = rate(o, C_WR_B, dc.wr_bytes, disk_ok, now_ms, 1, &w[H_WR]);
    v[H_RD_O] = rate(o, C_RD_O, dc.rd_ops, disk_ok, now_ms, 1, &w[H_RD_O]);
    v[H_WR_O] = rate(o, C_WR_O, dc.wr_ops, disk_ok, now_ms, 1, &w[H_WR_O]);
    v[H_RX] = rate(o, C_RX, nc.rx_bytes, net_ok, now_ms, 1, &w[H_RX]);
    v[H_TX] = rate(o, C_TX, nc.tx_bytes, net_ok, now_ms, 1, &w[H_TX]);
    memcpy(o->last, v, sizeof(v));
    o->sampled = o->running = true;
    vo_rrd_update_weighted(o->rrd, t_s, v, w);
    pthread_mutex_unlock(&M.lock);
}

/* ---- the VMs ---- */

static bool read_u64(const char *path, uint64_t *ret)
{
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(path, 64, &text, NULL) < 0)
        return false;
    char *end = NULL;
    *ret = strtoull(text, &end, 10);
    return end != text;
}

static void sample_taps(const VoVmSpec *spec, VmSample *s)
{
    s->net_ok = true;
    for (size_t i = 0; i < spec->n_nics; i++) {
        char tap[VO_IFNAME_SIZE];
        if (!strcmp(spec->nics[i].network, "user") ||
            vo_net_tap_name(spec->id, spec->nics[i].slot, tap) < 0)
            continue;
        uint64_t rx = 0, tx = 0;
        _cleanup_free_ char *prx = vo_asprintf("/sys/class/net/%s/statistics/rx_bytes", tap);
        _cleanup_free_ char *ptx = vo_asprintf("/sys/class/net/%s/statistics/tx_bytes", tap);
        if (!read_u64(prx, &rx) || !read_u64(ptx, &tx)) {
            s->net_ok = false; /* a NIC being plugged: not this round */
            continue;
        }
        /* What the guest sends, the host's end of its tap receives. */
        s->rx += tx;
        s->tx += rx;
    }
}

static void sample_vm(VoDaemon *d, VoVm *vm, VmSample *s)
{
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    s->running = vm->hv != NULL && !vm->migrated_away;
    pthread_mutex_unlock(&vm->lock);
    s->id = vo_strdup(spec->id);
    s->name = vo_strdup(spec->name);
    s->mem_conf = spec->memory_mib << 20;
    /* A sampler: never waits for the job lock (daemon/vm-job.h). */
    if (s->running && d->driver->stats && vo_vm_job_try_brief(vm)) {
        /* Holding job, the instance cannot be released (vm-watch.c). */
        pthread_mutex_lock(&vm->lock);
        VoHvInstance *hv = vm->migrated_away ? NULL : vm->hv;
        pthread_mutex_unlock(&vm->lock);
        s->ok = hv && d->driver->stats(hv, &s->st) >= 0;
        vo_vm_job_end_brief(vm);
    }
    if (s->running)
        sample_taps(spec, s);
    vo_vm_spec_free(spec);
}

static Obj *find_vm_locked(const char *id)
{
    for (size_t i = 0; i < M.n_vms; i++)
        if (!strcmp(M.vms[i]->id, id))
            return M.vms[i];
    return NULL;
}

/* Under M.lock: a new object for VM id, its history read from its file
 * (made when missing). */
static Obj *add_vm_locked(const char *id)
{
    Obj *o = vo_malloc0(sizeof(*o));
    o->id = vo_strdup(id);
    _cleanup_free_ char *path = vm_path(id);
    o->rrd = open_rrd(path, N_VM);
    Obj **grown = realloc(M.vms, sizeof(*M.vms) * (M.n_vms + 1));
    if (!grown)
        abort();
    M.vms = grown;
    M.vms[M.n_vms++] = o;
    return o;
}

static void apply_vm_locked(const VmSample *s, int64_t t_s, int64_t now_ms)
{
    Obj *o = find_vm_locked(s->id);
    if (!o)
        o = add_vm_locked(s->id);
    o->seen = true;
    free(o->name);
    o->name = vo_strdup(s->name);
    o->running = s->running;
    if (!s->running) {
        /* Stopped: a gap in the history; the next run's counters start
         * anew (a new process). */
        for (int c = 0; c < N_COUNTERS; c++)
            o->prev_ms[c] = 0;
        return;
    }
    if (!s->ok)
        return; /* busy: skipped this round */
    double v[N_VM], w[N_VM];
    for (int i = 0; i < N_VM; i++)
        w[i] = 1;
    const VoHvStats *st = &s->st;
    v[V_CPU] = rate(o, C_CPU, st->cpu_ns, true, now_ms, 1e-9, &w[V_CPU]);
    v[V_MEM_CONF] = (double)s->mem_conf;
    v[V_MEM_RSS] = (double)st->rss_bytes;
    v[V_MEM_BALLOON] = st->have_balloon ? (double)st->balloon_bytes : NAN;
    v[V_RD] = rate(o, C_RD_B, st->rd_bytes, st->have_disk, now_ms, 1, &w[V_RD]);
    v[V_WR] = rate(o, C_WR_B, st->wr_bytes, st->have_disk, now_ms, 1, &w[V_WR]);
    v[V_RD_O] = rate(o, C_RD_O, st->rd_ops, st->have_disk, now_ms, 1, &w[V_RD_O]);
    v[V_WR_O] = rate(o, C_WR_O, st->wr_ops, st->have_disk, now_ms, 1, &w[V_WR_O]);
    v[V_RX] = rate(o, C_RX, s->rx, s->net_ok, now_ms, 1, &w[V_RX]);
    v[V_TX] = rate(o, C_TX, s->tx, s->net_ok, now_ms, 1, &w[V_TX]);
    memcpy(o->last, v, sizeof(v));
    o->sampled = true;
    vo_rrd_update_weighted(o->rrd, t_s, v, w);
}

/* VMs no longer on this host: their history goes. */
static void prune_locked(void)
{
    for (size_t i = 0; i < M.n_vms;) {
        Obj *o = M.vms[i];
        if (o->seen) {
            o->seen = false;
            i++;
            continue;
        }
        _cleanup_free_ char *path = vm_path(o->id);
        if (unlink(path) < 0 && errno != ENOENT)
            log_warn("cannot remove %s: %s", path, strerror(errno));
        obj_free(o);
        M.vms[i] = M.vms[--M.n_vms];
    }
}

static void sample_round(bool vms_only)
{
    int64_t t_s = vo_wall_ms() / 1000, now_ms = vo_now_ms();
    if (!vms_only)
        sample_host(t_s, now_ms);
    size_t n = 0;
    VoVm **vms = vo_vms_ref_all(M.d, &n);
    VmSample *s = vo_malloc0(sizeof(*s) * (n ? n : 1));
    if (!vms_only)
        for (size_t i = 0; i < n; i++)
            sample_vm(M.d, vms[i], &s[i]);
    else
        for (size_t i = 0; i < n; i++) {
            pthread_mutex_lock(&vms[i]->lock);
            s[i].id = vo_strdup(vms[i]->spec->id);
            pthread_mutex_unlock(&vms[i]->lock);
        }
    pthread_mutex_lock(&M.lock);
    for (size_t i = 0; i < n; i++) {
        if (!vms_only)
            apply_vm_locked(&s[i], t_s, now_ms);
        else {
            Obj *o = find_vm_locked(s[i].id);
            if (o)
                o->seen = true;
        }
        free(s[i].id);
        free(s[i].name);
        vo_vm_unref(vms[i]);
    }
    prune_locked();
    if (!vms_only) {
        int e = vo_rrd_sync(M.host.rrd);
        for (size_t i = 0; i < M.n_vms && e >= 0; i++)
            e = vo_rrd_sync(M.vms[i]->rrd);
        if (e < 0 && e != -EBADF)
            log_warn("cannot write the monitoring history under %s: %s", M.dir, strerror(-e));
    }
    pthread_mutex_unlock(&M.lock);
    free(s);
    free(vms);
}

static void *sampler(void *arg)
{
    (void)prctl(PR_SET_NAME, "metrics");
    int64_t next = vo_now_ms();
    pthread_mutex_lock(&M.lock);
    while (!M.stop) {
        int64_t now = vo_now_ms();
        bool due = now >= next, woken = M.wake;
        M.wake = false;
        if (due || woken) {
            pthread_mutex_unlock(&M.lock);
            sample_round(!due); /* a wake-up only prunes */
            pthread_mutex_lock(&M.lock);
            if (due) {
                next += M.interval_ms;
                if (next <= vo_now_ms()) /* a late round: no catching up */
                    next = vo_now_ms() + M.interval_ms;
            }
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait = next - now;
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (!M.stop && !M.wake)
            pthread_cond_timedwait(&M.cond, &M.lock, &ts);
    }
    pthread_mutex_unlock(&M.lock);
    return NULL;
}

int vo_metrics_start(VoDaemon *d, int interval_ms)
{
    if (interval_ms <= 0)
        return -EINVAL;
    M.d = d;
    M.interval_ms = interval_ms;
    M.dir = vo_asprintf("%s/metrics", d->state_dir);
    _cleanup_free_ char *vms_dir = vo_asprintf("%s/vms", M.dir);
    int r = vo_mkdir_p(vms_dir, 0750);
    if (r < 0)
        return r;
    _cleanup_free_ char *host_path = vo_asprintf("%s/host.rrd", M.dir);
    M.host.id = vo_strdup(d->host_id);
    M.host.name = vo_strdup(d->host_name);
    M.host.rrd = open_rrd(host_path, N_HOST);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_destroy(&M.cond);
    pthread_cond_init(&M.cond, &attr);
    pthread_condattr_destroy(&attr);
    r = -pthread_create(&M.thread, NULL, sampler, NULL);
    M.started = r == 0;
    return r;
}

void vo_metrics_stop(void)
{
    if (!M.started)
        return;
    pthread_mutex_lock(&M.lock);
    M.stop = true;
    pthread_cond_broadcast(&M.cond);
    pthread_mutex_unlock(&M.lock);
    pthread_join(M.thread, NULL);
    M.started = false;
    (void)vo_rrd_sync(M.host.rrd);
    vo_rrd_free(M.host.rrd);
    free(M.host.id);
    free(M.host.name);
    for (size_t i = 0; i < M.n_vms; i++) {
        (void)vo_rrd_sync(M.vms[i]->rrd);
        obj_free(M.vms[i]);
    }
    free(M.vms);
    free(M.dir);
    memset(&M.host, 0, sizeof(M.host));
    M.vms = NULL;
    M.n_vms = 0;
}

void vo_metrics_wake(void)
{
    pthread_mutex_lock(&M.lock);
    M.wake = true;
    pthread_cond_broadcast(&M.cond);
    pthread_mutex_unlock(&M.lock);
}

/* ---- answers ---- */

static json_t *obj_json(const Obj *o, unsigned a, const char *const *names,
                        const char *const *units)
{
    json_t *j = vo_rrd_series_json(o->rrd, a, names, units);
    json_object_set_new(j, "id", json_string(o->id));
    json_object_set_new(j, "name", json_string(o->name ? o->name : ""));
    json_object_set_new(j, "interval", json_integer(M.interval_ms / 1000 ? M.interval_ms / 1000 : 1));
    json_object_set_new(j, "interval_ms", json_integer(M.interval_ms));
    return j;
}

int vo_metrics_vm_json(const char *vm_id, const char *range, json_t **ret)
{
    int a = vo_rrd_archive_index(range);
    if (a < 0)
        return -EINVAL;
    pthread_mutex_lock(&M.lock);
    Obj *o = M.started ? find_vm_locked(vm_id) : NULL;
    _cleanup_free_ char *path = o || !M.started ? NULL : vm_path(vm_id);
    if (path && access(path, F_OK) == 0) {
        /* Not sampled since vireod started: its history is on disk. Kept
         * (seen) for the rounds, which go on with it, or prune it and its
         * file when the VM is gone by then. */
        o = add_vm_locked(vm_id);
        o->seen = true;
    }
    *ret = o ? obj_json(o, (unsigned)a, vm_names, vm_units) : NULL;
    if (*ret)
        json_object_set_new(*ret, "running", json_boolean(o->running));
    pthread_mutex_unlock(&M.lock);
    return *ret ? 0 : -ENOENT;
}

int vo_metrics_host_json(const char *range, json_t **ret)
{
    int a = vo_rrd_archive_index(range);
    if (a < 0)
        return -EINVAL;
    pthread_mutex_lock(&M.lock);
    *ret = M.started && M.host.rrd ? obj_json(&M.host, (unsigned)a, host_names, host_units)
                                   : NULL;
    pthread_mutex_unlock(&M.lock);
    return *ret ? 0 : -ENOENT;
}

/* ---- Prometheus ---- */

/* A label value, escaped as the text format wants. */
static void label(FILE *f, const char *s)
{
    for (; s && *s; s++)
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
}

static void value(FILE *f, double v)
{
    if (isnan(v))
        fputs("NaN", f);
    else
        fprintf(f, "%.17g", v);
}

typedef struct {
    const char *name, *type, *help;
    int col;     /* a gauge: the last value's column, or -1 */
    int counter; /* a counter: its index, or -1 */
    double scale;
} Family;

static void family(FILE *f, const Family *fam, bool vm)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name, fam->type);
    size_t n = vm ? M.n_vms : 1;
    for (size_t i = 0; i < n; i++) {
        const Obj *o = vm ? M.vms[i] : &M.host;
        if (!o->sampled)
            continue;
        double v;
        if (fam->counter >= 0) {
            if (!o->total_ok[fam->counter] || !o->running)
                continue;
            v = (double)o->total[fam->counter] * fam->scale;
        } else {
            v = o->last[fam->col];
            if (isnan(v) || (vm && !o->running))
                continue;
        }
        fprintf(f, "%s{", fam->name);
        if (vm) {
            fputs("vm_id=\"", f);
            label(f, o->id);
            fputs("\",vm_name=\"", f);
            label(f, o->name);
            fputs("\",", f);
        }
        fputs("host=\"", f);
        label(f, M.host.name);
        fputs("\"} ", f);
        value(f, v);
        fputc('\n', f);
    }
}

char *vo_metrics_prometheus(void)
{
    static const Family host_fams[] = {
        { "vireo_host_cpu_ratio", "gauge", "Busy fraction of the host's CPUs over the last interval.", H_CPU, -1, 1 },
        { "vireo_host_memory_used_bytes", "gauge", "Host memory in use (MemTotal - MemAvailable).", H_MEM_USED, -1, 1 },
        { "vireo_host_memory_total_bytes", "gauge", "Host memory (MemTotal).", H_MEM_TOTAL, -1, 1 },
        { "vireo_host_disk_read_bytes_total", "counter", "Bytes read from the host's disks.", -1, C_RD_B, 1 },
        { "vireo_host_disk_written_bytes_total", "counter", "Bytes written to the host's disks.", -1, C_WR_B, 1 },
        { "vireo_host_disk_reads_total", "counter", "Reads completed by the host's disks.", -1, C_RD_O, 1 },
        { "vireo_host_disk_writes_total", "counter", "Writes completed by the host's disks.", -1, C_WR_O, 1 },
        { "vireo_host_network_receive_bytes_total", "counter", "Bytes received by the host's interfaces.", -1, C_RX, 1 },
        { "vireo_host_network_transmit_bytes_total", "counter", "Bytes sent by the host's interfaces.", -1, C_TX, 1 },
    };
    static const Family vm_fams[] = {
        { "vireo_vm_cpu_seconds_total", "counter", "CPU time used by the VM's process.", -1, C_CPU, 1e-9 },
        { "vireo_vm_cpu_cores", "gauge", "CPUs the VM used over the last interval (1 = one CPU busy).", V_CPU, -1, 1 },
        { "vireo_vm_memory_configured_bytes", "gauge", "Memory the VM is configured with.", V_MEM_CONF, -1, 1 },
        { "vireo_vm_memory_rss_bytes", "gauge", "Resident memory of the VM's process.", V_MEM_RSS, -1, 1 },
        { "vireo_vm_memory_balloon_bytes", "gauge", "Memory the balloon leaves the guest.", V_MEM_BALLOON, -1, 1 },
        { "vireo_vm_disk_read_bytes_total", "counter", "Bytes the VM read from its disks.", -1, C_RD_B, 1 },
        { "vireo_vm_disk_written_bytes_total", "counter", "Bytes the VM wrote to its disks.", -1, C_WR_B, 1 },
        { "vireo_vm_disk_reads_total", "counter", "Read requests of the VM's disks.", -1, C_RD_O, 1 },
        { "vireo_vm_disk_writes_total", "counter", "Write requests of the VM's disks.", -1, C_WR_O, 1 },
        { "vireo_vm_network_receive_bytes_total", "counter", "Bytes the VM received on its NICs.", -1, C_RX, 1 },
        { "vireo_vm_network_transmit_bytes_total", "counter", "Bytes the VM sent on its NICs.", -1, C_TX, 1 },
    };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        abort();
    pthread_mutex_lock(&M.lock);
    if (M.started) {
        for (size_t i = 0; i < sizeof(host_fams) / sizeof(*host_fams); i++)
            family(f, &host_fams[i], false);
        for (size_t i = 0; i < sizeof(vm_fams) / sizeof(*vm_fams); i++)
            family(f, &vm_fams[i], true);
        fprintf(f, "# HELP vireo_vm_running Whether the VM runs (1) or not (0).\n"
                   "# TYPE vireo_vm_running gauge\n");
        for (size_t i = 0; i < M.n_vms; i++) {
            fputs("vireo_vm_running{vm_id=\"", f);
            label(f, M.vms[i]->id);
            fputs("\",vm_name=\"", f);
            label(f, M.vms[i]->name);
            fputs("\",host=\"", f);
            label(f, M.host.name);
            fprintf(f, "\"} %d\n", M.vms[i]->running ? 1 : 0);
        }
    }
    pthread_mutex_unlock(&M.lock);
    fclose(f);
    return buf;
}
