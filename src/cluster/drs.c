/* drs.c: the DRS planner (drs.h): the imbalance of the hosts' loads and the
 * single best live migration by improvement per cost. No I/O; the method is
 * described in docs/drs.md, "How it decides". */
#include "cluster/drs.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/place-network-projects.h"
#include "util/util.h"

int vo_drs_mode_from_string(const char *s, VoDrsMode *ret)
{
    static const char *const names[] = { "off", "manual", "auto" };
    for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(s, names[i])) {
            *ret = (VoDrsMode)i;
            return 0;
        }
    return -EINVAL;
}

const char *vo_drs_mode_to_string(VoDrsMode m)
{
    switch (m) {
    case VO_DRS_OFF:
        return "off";
    case VO_DRS_MANUAL:
        return "manual";
    case VO_DRS_AUTO:
        return "auto";
    }
    return NULL;
}

/* Level 1 (conservative) .. 5 (aggressive). Out of range: the nearest level. */
double vo_drs_threshold(int level)
{
    static const double t[] = { 0.25, 0.16, 0.10, 0.07, 0.05 };
    if (level < VO_DRS_LEVEL_MIN)
        level = VO_DRS_LEVEL_MIN;
    if (level > VO_DRS_LEVEL_MAX)
        level = VO_DRS_LEVEL_MAX;
    return t[level - VO_DRS_LEVEL_MIN];
}

double vo_drs_min_gain(int level)
{
    double t = vo_drs_threshold(level);
    return t * t;
}

bool vo_drs_cpu_sample(const VoDrsCpuCounters *before, const VoDrsCpuCounters *now, int64_t ms,
                       unsigned vcpus, double cpu_limit, double *ret_used, double *ret_demand)
{
    *ret_used = *ret_demand = 0;
    if (ms <= 0 || now->cpu_ns < before->cpu_ns || now->wait_ns < before->wait_ns)
        return false;
    double wall_ns = (double)ms * 1e6;
    double used = (double)(now->cpu_ns - before->cpu_ns) / wall_ns;
    double wanted = used + (double)(now->wait_ns - before->wait_ns) / wall_ns;
    if (vcpus > 0 && wanted > vcpus)
        wanted = vcpus;
    if (cpu_limit > 0 && wanted > cpu_limit)
        wanted = cpu_limit; /* its own quota's throttling is waiting too (docs/drs.md) */
    *ret_used = used;
    *ret_demand = wanted > used ? wanted : used;
    return true;
}

double vo_drs_move_cost(const VoDrsVm *vm)
{
    /* What is copied: every page the guest touched (its RSS), its page
     * cache too, which the guest's own use leaves out. */
    double mem = (double)(vm->rss_mib > vm->mem_used_mib ? vm->rss_mib : vm->mem_used_mib);
    if (vm->memory_mib && mem > (double)vm->memory_mib)
        mem = (double)vm->memory_mib;
    double inflate = 5.0;
    if (vm->dirty_mib_s >= 0 && vm->dirty_mib_s < VO_DRS_BANDWIDTH_MIB_S) {
        inflate = 1.0 / (1.0 - vm->dirty_mib_s / VO_DRS_BANDWIDTH_MIB_S);
        if (inflate > 5.0)
            inflate = 5.0;
    }
    return VO_DRS_MOVE_OVERHEAD_S + mem / VO_DRS_BANDWIDTH_MIB_S * inflate;
}

static bool finite_nonneg(double x)
{
    return isfinite(x) && x >= 0;
}

/* NULL when in is usable, else what is wrong (static text or malloc'd into *buf). */
static const char *input_error(const VoDrsInput *in, char **buf)
{
    if (!in)
        return "no input";
    if (in->n_hosts && !in->hosts)
        return "hosts missing";
    if (in->n_vms && !in->vms)
        return "VMs missing";
    for (size_t i = 0; i < in->n_hosts; i++) {
        const VoDrsHost *h = &in->hosts[i];
        if (!isfinite(h->cpus) || h->cpus <= 0 || !h->memory_mib || !isfinite(h->free_vcpus))
            return *buf = vo_asprintf("host %s: cpus and memory_mib must be positive",
                                      h->name ? h->name : "(unnamed)");
    }
    for (size_t i = 0; i < in->n_vms; i++) {
        const VoDrsVm *v = &in->vms[i];
        const char *name = v->name ? v->name : "(unnamed)";
        if (v->host >= in->n_hosts)
            return *buf = vo_asprintf("VM %s: host index %zu out of range", name, v->host);
        if (!finite_nonneg(v->cpu) || !finite_nonneg(v->dirty_mib_s))
            return *buf = vo_asprintf("VM %s: cpu and dirty rate must be finite, >= 0", name);
        if (v->group && v->group_policy >= _VO_GROUP_POLICY_MAX)
            return *buf = vo_asprintf("VM %s: unknown group policy", name);
    }
    return NULL;
}

/* The loads and the sums the imbalance comes from. */
typedef struct {
    double *cpu, *mem;  /* per host */
    bool *counted;      /* per host: can receive or holds a VM */
    size_t n;           /* hosts counted */
    double s1c, s2c, s1m, s2m; /* sums of loads and squared loads over counted hosts */
} Loads;

static void loads_clear(Loads *l)
{
    free(l->cpu);
    free(l->mem);
    free(l->counted);
}

static void loads_compute(const VoDrsInput *in, Loads *l)
{
    size_t nh = in->n_hosts ? in->n_hosts : 1;
    l->cpu = vo_malloc0(nh * sizeof(double));
    l->mem = vo_malloc0(nh * sizeof(double));
    l->counted = vo_malloc0(nh * sizeof(bool));
    for (size_t i = 0; i < in->n_hosts; i++)
        l->counted[i] = in->hosts[i].can_receive;
    for (size_t i = 0; i < in->n_vms; i++) {
        const VoDrsVm *v = &in->vms[i];
        l->cpu[v->host] += v->cpu;
        l->mem[v->host] += (double)v->mem_used_mib;
        l->counted[v->host] = true;
    }
    l->n = 0;
    l->s1c = l->s2c = l->s1m = l->s2m = 0;
    for (size_t i = 0; i < in->n_hosts; i++) {
        l->cpu[i] /= in->hosts[i].cpus;
        l->mem[i] /= (double)in->hosts[i].memory_mib;
        if (!l->counted[i])
            continue;
        l->n++;
        l->s1c += l->cpu[i];
        l->s2c += l->cpu[i] * l->cpu[i];
        l->s1m += l->mem[i];
        l->s2m += l->mem[i] * l->mem[i];
    }
}

/* n * (variance of cpu + variance of mem): the summed squared distance of
 * the host points from their mean. */
static double spread_sum(size_t n, double s1c, double s2c, double s1m, double s2m)
{
    if (n < 2)
        return 0;
    double d = (s2c - s1c * s1c / (double)n) + (s2m - s1m * s1m / (double)n);
    return d > 0 ? d : 0;
}

static double imbalance_of(size_t n, double spread)
{
    return n < 2 ? 0 : sqrt(spread / (double)n);
}

double vo_drs_imbalance(const VoDrsInput *in)
{
    _cleanup_free_ char *err = NULL;
    if (input_error(in, &err))
        return 0;
    Loads l = { 0 };
    loads_compute(in, &l);
    double r = imbalance_of(l.n, spread_sum(l.n, l.s1c, l.s2c, l.s1m, l.s2m));
    loads_clear(&l);
    return r;
}

void vo_drs_host_load(const VoDrsInput *in, size_t host, double *ret_cpu, double *ret_mem)
{
    double c = 0, m = 0;
    for (size_t i = 0; in && host < in->n_hosts && i < in->n_vms; i++)
        if (in->vms[i].host == host) {
            c += in->vms[i].cpu;
            m += (double)in->vms[i].mem_used_mib;
        }
    if (in && host < in->n_hosts && in->hosts[host].cpus > 0 && in->hosts[host].memory_mib) {
        c /= in->hosts[host].cpus;
        m /= (double)in->hosts[host].memory_mib;
    }
    if (ret_cpu)
        *ret_cpu = c;
    if (ret_mem)
        *ret_mem = m;
}

/* Group membership: VM indexes sorted by group name; per VM, where its
 * group's members start in that order and how many there are. */
typedef struct {
    size_t *order, *start, *len;
} Groups;

typedef struct {
    const char *group;
    size_t vm;
} GroupEntry;

static int cmp_group(const void *a, const void *b)
{
    const GroupEntry *x = a, *y = b;
    int r = strcmp(x->group, y->group);
    if (r)
        return r;
    return x->vm < y->vm ? -1 : x->vm > y->vm;
}

static void groups_build(const VoDrsInput *in, Groups *g)
{
    size_t n = in->n_vms ? in->n_vms : 1;
    g->order = vo_malloc0(n * sizeof(size_t));
    g->start = vo_malloc0(n * sizeof(size_t));
    g->len = vo_malloc0(n * sizeof(size_t));
    GroupEntry *e = vo_malloc0(n * sizeof(GroupEntry));
    size_t k = 0;
    for (size_t i = 0; i < in->n_vms; i++)
        if (in->vms[i].group)
            e[k++] = (GroupEntry){ in->vms[i].group, i };
    qsort(e, k, sizeof(GroupEntry), cmp_group);
    for (size_t i = 0; i < k; i++)
        g->order[i] = e[i].vm;
    for (size_t i = 0; i < k;) {
        size_t j = i + 1;
        while (j < k && !strcmp(e[j].group, e[i].group))
            j++;
        for (size_t m = i; m < j; m++) {
            g->start[e[m].vm] = i;
            g->len[e[m].vm] = j - i;
        }
        i = j;
    }
    free(e);
}

static void groups_clear(Groups *g)
{
    free(g->order);
    free(g->start);
    free(g->len);
}

/* Whether another VM of v's group (any policy: the group is spread) is on host t. */
static bool group_on_host(const VoDrsInput *in, const Groups *g, size_t v, size_t t)
{
    for (size_t k = g->start[v]; k < g->start[v] + g->len[v]; k++) {
        size_t o = g->order[k];
        if (o != v && in->vms[o].host == t)
            return true;
    }
    return false;
}

/* Why VMs were not moved, for the "no move" reason. */
typedef struct {
    size_t cooldown, not_movable, together, no_target, candidates;
} Tally;

static char *no_move_text(double imb, double thr, const Tally *t)
{
    return vo_asprintf("imbalance %.3f above threshold %.3f but no move improves it "
                       "(%zu VMs looked at; %zu in cooldown, %zu not movable, "
                       "%zu in a together group, %zu with no host that can take them)",
                       imb, thr, t->candidates, t->cooldown, t->not_movable, t->together,
                       t->no_target);
}

/* The best move, of the VMs on host only_from (SIZE_MAX: of any host). */
static int find_move(const VoDrsInput *in, const VoDrsSettings *s, int64_t now_ms,
                     const Loads *l, double imb, size_t only_from, VoDrsMove *ret, Tally *tally)
{
    Groups g = { 0 };
    groups_build(in, &g);
    double base = spread_sum(l->n, l->s1c, l->s2c, l->s1m, l->s2m);
    double min_gain = vo_drs_min_gain(s->level);
    bool found = false;
    VoDrsMove best = { 0 };

    for (size_t v = 0; v < in->n_vms; v++) {
        const VoDrsVm *vm = &in->vms[v];
        if (only_from != SIZE_MAX && vm->host != only_from)
            continue;
        tally->candidates++;
        if (!vm->movable) {
            tally->not_movable++;
            continue;
        }
        if ((vm->last_moved_ms && now_ms - vm->last_moved_ms < VO_DRS_COOLDOWN_MS) ||
            (vm->retry_after_ms && now_ms < vm->retry_after_ms)) {
            tally->cooldown++;
            continue;
        }
        if (vm->group && vm->group_policy == VO_GROUP_TOGETHER && g.len[v] > 1) {
            tally->together++;
            continue;
        }
        size_t sh = vm->host;
        const VoDrsHost *src = &in->hosts[sh];
        double dcs = vm->cpu / src->cpus, dms = (double)vm->mem_used_mib / (double)src->memory_mib;
        double cs = l->cpu[sh], ms = l->mem[sh];
        double cost = vo_drs_move_cost(vm);
        bool any_target = false;
        for (size_t t = 0; t < in->n_hosts; t++) {
            const VoDrsHost *dst = &in->hosts[t];
            if (t == sh || !dst->can_receive || dst->free_memory_mib < vm->memory_mib ||
                dst->free_vcpus < (double)vm->vcpus ||
                !vo_place_firmware_ok(dst->firmware, vm->firmware) ||
                !vo_place_networks_ok(dst->networks, vm->networks) ||
                !vo_place_pools_ok(dst->pools, vm->pools) ||
                !vo_place_networks_project_ok(in->network_owners, dst->id, vm->networks,
                                              vm->project))
                continue;
            if (vm->group && vm->group_policy == VO_GROUP_SPREAD && group_on_host(in, &g, v, t))
                continue;
            any_target = true;
            double dct = vm->cpu / dst->cpus, dmt = (double)vm->mem_used_mib / (double)dst->memory_mib;
            double ct = l->cpu[t], mt = l->mem[t];
            double s1c = l->s1c - dcs + dct, s1m = l->s1m - dms + dmt;
            /* Ping-pong rule: the target after the move is no farther from
             * the mean load point than the source was before it. */
            double n = (double)l->n;
            double tdc = ct + dct - s1c / n, tdm = mt + dmt - s1m / n;
            double sdc = cs - l->s1c / n, sdm = ms - l->s1m / n;
            if (tdc * tdc + tdm * tdm > sdc * sdc + sdm * sdm)
                continue;
            double s2c = l->s2c - cs * cs - ct * ct + (cs - dcs) * (cs - dcs) + (ct + dct) * (ct + dct);
            double s2m = l->s2m - ms * ms - mt * mt + (ms - dms) * (ms - dms) + (mt + dmt) * (mt + dmt);
            double after = spread_sum(l->n, s1c, s2c, s1m, s2m);
            if (base - after < min_gain)
                continue;
            double imb_after = imbalance_of(l->n, after);
            double score = (imb - imb_after) / cost;
            if (!found || score > best.score) {
                found = true;
                best = (VoDrsMove){ .vm = v, .from = sh, .to = t, .imbalance_before = imb,
                                    .imbalance_after = imb_after, .cost = cost, .score = score };
            }
        }
        if (!any_target)
            tally->no_target++;
    }
    groups_clear(&g);
    if (found)
        *ret = best;
    return found;
}

void vo_drs_state_clear(VoDrsState *st)
{
    if (!st)
        return;
    free(st->from);
    *st = (VoDrsState){ 0 };
}

static const char *host_key(const VoDrsHost *h)
{
    return h->id ? h->id : h->name ? h->name : "(unnamed)";
}

/* The index of the host the rounds counted so far move from; SIZE_MAX
 * when none (no count, rounds of no move, or that host is gone). */
static size_t counted_from(const VoDrsState *st, const VoDrsInput *in)
{
    for (size_t i = 0; st->rounds_above > 0 && st->from && i < in->n_hosts; i++)
        if (!strcmp(host_key(&in->hosts[i]), st->from))
            return i;
    return SIZE_MAX;
}

/* A round above the threshold: whether a move improves it (*ret), counted.
 * While a move from the host the count started with still improves it,
 * the count goes on and that host's best move is the one; else the count
 * starts again at 1 with the best move of all (a spike elsewhere, or the
 * first round after a stretch in which no move helped: counted as such,
 * at most VO_DRS_ROUNDS). */
static bool count_round(VoDrsState *st, const VoDrsInput *in, const VoDrsSettings *s,
                        int64_t now_ms, const Loads *l, double imb, VoDrsMove *ret,
                        Tally *tally)
{
    size_t from = counted_from(st, in);
    Tally ignored = { 0 };
    if (from != SIZE_MAX && find_move(in, s, now_ms, l, imb, from, ret, &ignored)) {
        if (st->rounds_above < VO_DRS_ROUNDS)
            st->rounds_above++;
        return true;
    }
    bool found = find_move(in, s, now_ms, l, imb, SIZE_MAX, ret, tally);
    if (!found && st->rounds_above > 0 && !st->from) {
        if (st->rounds_above < VO_DRS_ROUNDS)
            st->rounds_above++;
        return false;
    }
    free(st->from);
    st->from = found ? vo_strdup(host_key(&in->hosts[ret->from])) : NULL;
    st->rounds_above = 1;
    return found;
}

int vo_drs_round(VoDrsState *st, const VoDrsInput *in, const VoDrsSettings *s,
                 int64_t now_ms, VoDrsMove *ret, char **ret_why)
{
    char *why = NULL;
    if (!st || !s || !ret) {
        if (ret_why)
            *ret_why = vo_strdup("no state, settings or result");
        return -EINVAL;
    }
    if (s->level < VO_DRS_LEVEL_MIN || s->level > VO_DRS_LEVEL_MAX ||
        (s->mode != VO_DRS_OFF && s->mode != VO_DRS_MANUAL && s->mode != VO_DRS_AUTO)) {
        if (ret_why)
            *ret_why = vo_asprintf("level must be %d..%d and mode off, manual or auto",
                                   VO_DRS_LEVEL_MIN, VO_DRS_LEVEL_MAX);
        return -EINVAL;
    }
    char *buf = NULL;
    const char *err = input_error(in, &buf);
    if (err) {
        if (ret_why)
            *ret_why = buf ? buf : vo_strdup(err);
        else
            free(buf);
        return -EINVAL;
    }

    Loads l = { 0 };
    loads_compute(in, &l);
    double imb = imbalance_of(l.n, spread_sum(l.n, l.s1c, l.s2c, l.s1m, l.s2m));
    double thr = vo_drs_threshold(s->level);
    st->last_imbalance = imb;
    int r = 0;
    if (s->mode == VO_DRS_OFF) {
        st->rounds_above = 0;
        why = vo_asprintf("DRS is off (imbalance %.3f, threshold %.3f)", imb, thr);
    } else if (l.n < 2) {
        st->rounds_above = 0;
        why = vo_asprintf("fewer than 2 hosts to balance");
    } else if (imb <= thr) {
        st->rounds_above = 0;
        why = vo_asprintf("imbalance %.3f below threshold %.3f", imb, thr);
    } else {
        Tally tally = { 0 };
        VoDrsMove mv;
        bool found = count_round(st, in, s, now_ms, &l, imb, &mv, &tally);
        if (!found)
            why = no_move_text(imb, thr, &tally);
        else if (st->rounds_above < VO_DRS_ROUNDS)
            why = vo_asprintf("imbalance %.3f above threshold %.3f for %d of %d rounds", imb,
                              thr, st->rounds_above, VO_DRS_ROUNDS);
        else {
            st->rounds_above = 0;
            *ret = mv;
            r = 1;
        }
    }
    loads_clear(&l);
    if (ret_why)
        *ret_why = why;
    else
        free(why);
    return r;
}

int64_t vo_drs_backoff_ms(int64_t failures)
{
    int64_t ms = VO_DRS_RETRY_FIRST_MS;
    for (int64_t i = 1; i < failures && ms < VO_DRS_RETRY_MAX_MS; i++)
        ms *= 2;
    return ms < VO_DRS_RETRY_MAX_MS ? ms : VO_DRS_RETRY_MAX_MS;
}
