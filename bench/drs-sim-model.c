/* drs-sim-model.c: the DRS simulation (drs-sim-model.h). The synthetic
 * cluster and its day are described in docs/benchmarks.md, "DRS". */
#include "drs-sim-model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MEM_RATIO 1.2    /* placement's memory overcommit */
#define CPU_RATIO 6.0    /* and vCPU overcommit */
#define DIRTY_PER_CORE 30.0 /* MiB/s a guest dirties per core it uses */

void vo_drs_sim_config_default(VoDrsSimConfig *c)
{
    *c = (VoDrsSimConfig){ .hosts = 100, .vms = 5000, .hours = 24, .seed = 1,
                           .level = VO_DRS_LEVEL_DEFAULT, .mode = VO_DRS_AUTO, .round_s = 10 };
}

/* xorshift64*: small, fast, deterministic for a seed. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double rng_unit(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static double rng_range(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * rng_unit(s);
}

typedef enum { P_IDLE, P_DIURNAL, P_BURSTY, P_STEADY } Profile;

typedef struct {
    double cpus;
    uint64_t memory_mib, committed_mib;
    unsigned committed_vcpus;
} SimHost;

typedef struct {
    unsigned vcpus;
    uint64_t memory_mib;
    double mem_frac;        /* of memory_mib the guest uses at rest */
    Profile profile;
    double base, peak;      /* per vCPU */
    double phase_h;         /* diurnal: the hour its wave starts rising */
    bool bursting;
    double burst_end_s, burst_level;
    size_t host;
    int group;              /* -1: none */
    VoGroupPolicy group_policy;
    /* the current sample */
    double cpu, dirty;
    uint64_t mem_used;
    /* moves */
    unsigned moves;
    double last_move_end_s; /* -1: never moved */
} SimVm;

static double diurnal(double t_s, double phase_h)
{
    double s = sin(2 * M_PI * (t_s / 3600.0 - phase_h) / 24.0);
    return s > 0 ? s : 0;
}

/* The VM's load at time t: placement-independent (rng is the load stream). */
static void vm_sample(SimVm *v, double t_s, double round_s, uint64_t *rng)
{
    double per = v->base;
    double memf = v->mem_frac;
    switch (v->profile) {
    case P_IDLE:
    case P_STEADY:
        break;
    case P_DIURNAL: {
        double w = diurnal(t_s, v->phase_h);
        per += v->peak * w;
        memf *= 1 + 0.15 * w;
        break;
    }
    case P_BURSTY:
        if (v->bursting && t_s >= v->burst_end_s)
            v->bursting = false;
        /* About 10 % of the time in bursts of 10-60 minutes. */
        if (!v->bursting && rng_unit(rng) < 5.3e-4 * round_s / 10.0) {
            v->bursting = true;
            v->burst_end_s = t_s + rng_range(rng, 600, 3600);
            v->burst_level = rng_range(rng, 0.6, 0.9);
        }
        if (v->bursting)
            per = v->burst_level;
        break;
    }
    double cpu = per * v->vcpus * (1 + rng_range(rng, -0.1, 0.1));
    if (cpu > v->vcpus)
        cpu = v->vcpus;
    if (memf > 1)
        memf = 1;
    v->cpu = cpu;
    v->dirty = cpu * DIRTY_PER_CORE;
    v->mem_used = (uint64_t)((double)v->memory_mib * memf);
}

static uint64_t host_free_mib(const SimHost *h)
{
    double room = MEM_RATIO * (double)h->memory_mib - (double)h->committed_mib;
    return room > 0 ? (uint64_t)room : 0;
}

static double host_free_vcpus(const SimHost *h)
{
    return CPU_RATIO * h->cpus - h->committed_vcpus;
}

static bool fits(const SimHost *h, const SimVm *v)
{
    return host_free_mib(h) >= v->memory_mib && host_free_vcpus(h) >= v->vcpus;
}

static bool spread_clash(const SimVm *vms, size_t n, size_t self, size_t host)
{
    const SimVm *v = &vms[self];
    if (v->group < 0 || v->group_policy != VO_GROUP_SPREAD)
        return false;
    for (size_t i = 0; i < n; i++)
        if (i != self && vms[i].group == v->group && vms[i].host == host)
            return true;
    return false;
}

static void commit(SimHost *h, const SimVm *v, int sign)
{
    h->committed_mib = (uint64_t)((int64_t)h->committed_mib + sign * (int64_t)v->memory_mib);
    h->committed_vcpus = (unsigned)((int)h->committed_vcpus + sign * (int)v->vcpus);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(const double *sorted, size_t n, double q)
{
    if (!n)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Builds the cluster: hosts of 4 sizes, VMs of mixed sizes and profiles,
 * placed at random on hosts with room (placement that ignored load, as in a
 * cluster that grew): the imbalance DRS starts from. */
static int build(const VoDrsSimConfig *c, SimHost *hosts, SimVm *vms)
{
    uint64_t rng = c->seed * 0x9E3779B97F4A7C15ULL + 1;
    static const double cpus[] = { 16, 32, 48, 64 };
    static const uint64_t mem_gib[] = { 128, 256, 384, 512 };
    for (unsigned i = 0; i < c->hosts; i++) {
        unsigned k = (unsigned)(rng_next(&rng) % 4);
        hosts[i] = (SimHost){ .cpus = cpus[k], .memory_mib = mem_gib[k] * 1024 };
    }
    static const unsigned vcpus[] = { 1, 2, 2, 4, 4, 8 };
    unsigned n_spread = c->vms / 20, n_together = c->vms / 50;
    for (unsigned i = 0; i < c->vms; i++) {
        SimVm *v = &vms[i];
        *v = (SimVm){ .group = -1, .last_move_end_s = -1 };
        v->vcpus = vcpus[rng_next(&rng) % 6];
        v->memory_mib = (uint64_t)v->vcpus * 1024 * (rng_next(&rng) % 3 == 2 ? 2 : 1);
        v->mem_frac = rng_range(&rng, 0.3, 0.9);
        double p = rng_unit(&rng);
        if (p < 0.25) {
            v->profile = P_IDLE;
            v->base = rng_range(&rng, 0.01, 0.03);
        } else if (p < 0.70) {
            v->profile = P_DIURNAL;
            v->base = 0.03;
            v->peak = rng_range(&rng, 0.15, 0.35);
            v->phase_h = 8.0 * (double)(rng_next(&rng) % 3) + rng_range(&rng, -1, 1);
        } else if (p < 0.90) {
            v->profile = P_BURSTY;
            v->base = 0.03;
        } else {
            v->profile = P_STEADY;
            v->base = rng_range(&rng, 0.3, 0.5);
        }
        /* 5 % in spread groups of 4, 2 % in together pairs. */
        if (i < n_spread) {
            v->group = (int)(i / 4);
            v->group_policy = VO_GROUP_SPREAD;
        } else if (i < n_spread + n_together) {
            v->group = (int)(1000000 + (i - n_spread) / 2);
            v->group_policy = VO_GROUP_TOGETHER;
        }
        size_t h = SIZE_MAX;
        if (v->group_policy == VO_GROUP_TOGETHER && v->group >= 0 && i > n_spread &&
            vms[i - 1].group == v->group)
            h = vms[i - 1].host; /* with its partner, room or not */
        for (int tries = 0; h == SIZE_MAX && tries < 50; tries++) {
            size_t k = rng_next(&rng) % c->hosts;
            if (fits(&hosts[k], v) && !spread_clash(vms, i, i, k))
                h = k;
        }
        for (size_t k = 0; h == SIZE_MAX && k < c->hosts; k++)
            if (fits(&hosts[k], v) && !spread_clash(vms, i, i, k))
                h = k;
        if (h == SIZE_MAX)
            return -ENOSPC;
        v->host = h;
        commit(&hosts[h], v, +1);
    }
    return 0;
}

void vo_drs_sim_result_clear(VoDrsSimResult *r)
{
    free(r->imbalance);
    free(r->per_hour);
    free(r->imbalance_hour);
    *r = (VoDrsSimResult){ 0 };
}

int vo_drs_sim_run(const VoDrsSimConfig *c, VoDrsSimResult *r)
{
    *r = (VoDrsSimResult){ 0 };
    if (c->hosts < 2 || c->vms < 1 || !(c->hours > 0) || !(c->round_s > 0) ||
        c->level < VO_DRS_LEVEL_MIN || c->level > VO_DRS_LEVEL_MAX)
        return -EINVAL;
    SimHost *hosts = calloc(c->hosts, sizeof(SimHost));
    SimVm *vms = calloc(c->vms, sizeof(SimVm));
    VoDrsHost *dh = calloc(c->hosts, sizeof(VoDrsHost));
    VoDrsVm *dv = calloc(c->vms, sizeof(VoDrsVm));
    char (*hnames)[16] = calloc(c->hosts, 16);
    char (*vnames)[16] = calloc(c->vms, 16);
    char (*gnames)[16] = calloc(c->vms, 16);
    double total_s = c->hours * 3600;
    r->rounds = (size_t)(total_s / c->round_s);
    r->n_hours = (size_t)ceil(c->hours);
    r->imbalance = calloc(r->rounds ? r->rounds : 1, sizeof(double));
    r->per_hour = calloc(r->n_hours, sizeof(size_t));
    r->imbalance_hour = calloc(r->n_hours, sizeof(double));
    size_t *rounds_hour = calloc(r->n_hours, sizeof(size_t));
    double *plan_ms = calloc(r->rounds ? r->rounds : 1, sizeof(double));
    double *plan_cpu_ms = calloc(r->rounds ? r->rounds : 1, sizeof(double));
    if (!hosts || !vms || !dh || !dv || !hnames || !vnames || !gnames || !r->imbalance ||
        !r->per_hour || !r->imbalance_hour || !rounds_hour || !plan_ms || !plan_cpu_ms)
        abort();
    VoDrsState st = { 0 }; /* before the goto: cleared at out */
    int ret = build(c, hosts, vms);
    if (ret < 0)
        goto out;

    for (unsigned i = 0; i < c->hosts; i++) {
        snprintf(hnames[i], 16, "h%u", i);
        dh[i] = (VoDrsHost){ .id = hnames[i], .name = hnames[i], .cpus = hosts[i].cpus,
                             .memory_mib = hosts[i].memory_mib, .can_receive = true };
    }
    for (unsigned i = 0; i < c->vms; i++) {
        snprintf(vnames[i], 16, "vm%u", i);
        if (vms[i].group >= 0)
            snprintf(gnames[i], 16, "g%d", vms[i].group);
        dv[i] = (VoDrsVm){ .id = vnames[i], .name = vnames[i], .memory_mib = vms[i].memory_mib,
                           .vcpus = vms[i].vcpus,
                           .group = vms[i].group >= 0 ? gnames[i] : NULL,
                           .group_policy = vms[i].group_policy };
    }

    uint64_t load_rng = c->seed * 0xD1B54A32D192ED03ULL + 7;
    VoDrsSettings set = { .mode = c->mode, .level = c->level };
    r->threshold = vo_drs_threshold(c->level);
    r->min_gap_s = -1;
    double cooldown_s = VO_DRS_COOLDOWN_MS / 1000.0;
    r->allowed_moves = (unsigned)floor(total_s / cooldown_s) + 1;
    ssize_t moving = -1; /* the VM in flight */
    size_t moving_to = 0;
    double moving_end = 0;

    for (size_t k = 0; k < r->rounds; k++) {
        double t = (double)k * c->round_s;
        for (unsigned i = 0; i < c->vms; i++)
            vm_sample(&vms[i], t, c->round_s, &load_rng);
        if (moving >= 0 && t >= moving_end) {
            SimVm *v = &vms[moving];
            commit(&hosts[v->host], v, -1);
            v->host = moving_to;
            v->last_move_end_s = moving_end;
            moving = -1;
        }
        for (unsigned i = 0; i < c->hosts; i++) {
            dh[i].free_memory_mib = host_free_mib(&hosts[i]);
            dh[i].free_vcpus = host_free_vcpus(&hosts[i]);
        }
        for (unsigned i = 0; i < c->vms; i++) {
            dv[i].host = vms[i].host;
            dv[i].cpu = vms[i].cpu;
            dv[i].mem_used_mib = vms[i].mem_used;
            dv[i].dirty_mib_s = vms[i].dirty;
            dv[i].movable = (ssize_t)i != moving;
            dv[i].last_moved_ms = vms[i].last_move_end_s < 0 ? 0 :
                                  (int64_t)(vms[i].last_move_end_s * 1000);
        }
        VoDrsInput in = { .n_hosts = c->hosts, .hosts = dh, .n_vms = c->vms, .vms = dv };
        double imb = vo_drs_imbalance(&in);
        r->imbalance[k] = imb;
        size_t hour = (size_t)(t / 3600);
        if (hour >= r->n_hours)
            hour = r->n_hours - 1;
        r->imbalance_hour[hour] += imb;
        rounds_hour[hour]++;
        if (moving >= 0)
            continue; /* the manager skips rounds while its migration runs */

        VoDrsMove mv;
        double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);
        int q = vo_drs_round(&st, &in, &set, (int64_t)(t * 1000), &mv, NULL);
        plan_cpu_ms[r->planned_rounds] = clock_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
        plan_ms[r->planned_rounds++] = clock_ms(CLOCK_MONOTONIC) - t0;
        if (q < 0) {
            r->planner_errors++;
            continue;
        }
        if (q == 0)
            continue;
        SimVm *v = &vms[mv.vm];
        if (v->host != mv.from || !fits(&hosts[mv.to], v))
            r->room_violations++;
        if (spread_clash(vms, c->vms, mv.vm, mv.to))
            r->spread_violations++;
        if (v->last_move_end_s >= 0) {
            double gap = t - v->last_move_end_s;
            if (gap < cooldown_s)
                r->cooldown_violations++;
            if (r->min_gap_s < 0 || gap < r->min_gap_s)
                r->min_gap_s = gap;
        }
        commit(&hosts[mv.to], v, +1); /* the target's room is taken while it moves */
        moving = (ssize_t)mv.vm;
        moving_to = mv.to;
        moving_end = t + mv.cost;
        r->migration_s += mv.cost;
        r->migrations++;
        r->per_hour[hour]++;
        if (++v->moves > r->max_moves)
            r->max_moves = v->moves;
    }

    for (size_t h = 0; h < r->n_hours; h++)
        if (rounds_hour[h])
            r->imbalance_hour[h] /= (double)rounds_hour[h];
    if (r->rounds) {
        r->imb_start = r->imbalance[0];
        r->imb_end = r->imbalance[r->rounds - 1];
        double *sorted = malloc(r->rounds * sizeof(double));
        if (!sorted)
            abort();
        memcpy(sorted, r->imbalance, r->rounds * sizeof(double));
        qsort(sorted, r->rounds, sizeof(double), cmp_double);
        r->imb_median = quantile(sorted, r->rounds, 0.5);
        r->imb_p95 = quantile(sorted, r->rounds, 0.95);
        r->imb_max = sorted[r->rounds - 1];
        free(sorted);
    }
    if (r->planned_rounds) {
        qsort(plan_ms, r->planned_rounds, sizeof(double), cmp_double);
        r->plan_ms_median = quantile(plan_ms, r->planned_rounds, 0.5);
        r->plan_ms_p99 = quantile(plan_ms, r->planned_rounds, 0.99);
        r->plan_ms_max = plan_ms[r->planned_rounds - 1];
        qsort(plan_cpu_ms, r->planned_rounds, sizeof(double), cmp_double);
        r->plan_cpu_ms_p99 = quantile(plan_cpu_ms, r->planned_rounds, 0.99);
        r->plan_cpu_ms_max = plan_cpu_ms[r->planned_rounds - 1];
    }
out:
    vo_drs_state_clear(&st);
    free(hosts);
    free(vms);
    free(dh);
    free(dv);
    free(hnames);
    free(vnames);
    free(gnames);
    free(rounds_hour);
    free(plan_ms);
    free(plan_cpu_ms);
    if (ret < 0)
        vo_drs_sim_result_clear(r);
    return ret;
}
