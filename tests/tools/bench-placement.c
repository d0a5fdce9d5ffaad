/* bench-placement.c: times the placement function (cluster/placement.c) on
 * a synthetic cluster: H hosts (default 1000) already holding V VMs (default
 * 100k, committed resources spread at random), then N placements one after
 * another, each committed to its host as the manager would. Prints one JSON
 * object (latencies in µs, CPU time); bench/placement runs it and formats
 * the table of docs/benchmarks.md. Deterministic: a fixed seed. */
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cluster/placement.h"
#include "util/util.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void) /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static double now_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static const char *const base_flags[] = {
    "fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "mtrr", "pge",
    "mca", "cmov", "pat", "pse36", "clflush", "mmx", "fxsr", "sse", "sse2", "ht", "syscall", "nx",
    "mmxext", "fxsr_opt", "pdpe1gb", "rdtscp", "lm", "constant_tsc", "rep_good", "nopl",
    "xtopology", "nonstop_tsc", "cpuid", "pni", "pclmulqdq", "ssse3", "fma", "cx16", "sse4_1",
    "sse4_2", "x2apic", "movbe", "popcnt", "aes", "xsave", "avx", "f16c", "rdrand", "hypervisor",
    "lahf_lm", "abm", "sse4a", "misalignsse", "3dnowprefetch", "bmi1", "avx2", "bmi2", "erms",
};
static const char *const extra_flags[] = { "avx512f", "avx512dq", "avx512bw", "avx512vl", "sha_ni",
                                           "vaes", "vpclmulqdq", "clwb" };
static const char *const models[] = { "AMD EPYC 7B13", "AMD EPYC 9654", "Intel Xeon Gold 6338" };
#define N_SHARED_POOLS 8

static void make_host(VoPlaceHost *h, size_t i)
{
    static const uint64_t mem[] = { 262144, 524288, 786432, 1048576 };
    static const unsigned cpus[] = { 64, 96, 128, 192 };
    unsigned m = pick(ELEMENTSOF(models));
    *h = (VoPlaceHost){ .id = vo_asprintf("%08zx-0000-4000-8000-%012zx", i, i * 7919),
                        .name = vo_asprintf("host-%04zu", i), .state = VO_HOST_ONLINE,
                        .accel = pick(50) ? VO_ACCEL_KVM : VO_ACCEL_TCG,
                        .cpu_model = vo_strdup(models[m]), .memory_mib = mem[pick(4)],
                        .cpus = cpus[pick(4)], .mem_ratio = pick(4) ? 1.0 : 1.5, .cpu_ratio = 4.0,
                        .load = (double)pick(1000) / 1000.0 };
    unsigned s = pick(100);
    if (s < 2)
        h->state = VO_HOST_MAINTENANCE;
    else if (s < 3)
        h->state = VO_HOST_OFFLINE;
    h->cpu_flags = vo_malloc0(sizeof(char *));
    for (size_t f = 0; f < ELEMENTSOF(base_flags); f++)
        vo_strv_push(&h->cpu_flags, vo_strdup(base_flags[f]));
    for (size_t f = 0; f < ELEMENTSOF(extra_flags); f++)
        if (m > 0 && (m == 2 || f < 5))
            vo_strv_push(&h->cpu_flags, vo_strdup(extra_flags[f]));
    vo_place_strv_sort(h->cpu_flags);
    /* Its local pool plus two of the shared ones. */
    h->pools = vo_malloc0(sizeof(char *));
    vo_strv_push(&h->pools, vo_strdup("default"));
    vo_strv_pushf(&h->pools, "shared-%zu", i % N_SHARED_POOLS);
    vo_strv_pushf(&h->pools, "shared-%zu", (i + 3) % N_SHARED_POOLS);
    vo_place_strv_sort(h->pools);
}

static void vm_size(unsigned *vcpus, uint64_t *memory_mib)
{
    static const unsigned v[] = { 1, 2, 2, 4 };
    static const uint64_t m[] = { 1024, 2048, 4096, 8192 };
    *vcpus = v[pick(4)];
    *memory_mib = m[pick(4)];
}

static bool fits(const VoPlaceHost *h, unsigned vcpus, uint64_t mem)
{
    return h->committed_memory_mib + mem <= (uint64_t)floor((double)h->memory_mib * h->mem_ratio) &&
           h->committed_vcpus + vcpus <= (uint64_t)floor((double)h->cpus * h->cpu_ratio);
}

/* The kinds of requests, in proportion: plain, named CPU model, spread
 * group, together group, pinned, shared pool. */
static void make_request(VoPlaceRequest *req, const VoPlaceSnapshot *snap, unsigned *kind)
{
    *req = (VoPlaceRequest){ 0 };
    vm_size(&req->vcpus, &req->memory_mib);
    unsigned k = pick(100);
    if (k < 40) {
        *kind = 0;
    } else if (k < 55) {
        *kind = 1;
        req->accel = VO_ACCEL_KVM;
        req->cpu_model = vo_strdup("EPYC-Milan");
        req->cpu_flags = vo_malloc0(sizeof(char *));
        vo_strv_push(&req->cpu_flags, vo_strdup("avx2"));
        vo_strv_push(&req->cpu_flags, vo_strdup("avx512f"));
        vo_strv_push(&req->cpu_flags, vo_strdup("aes"));
        vo_place_strv_sort(req->cpu_flags);
    } else if (k < 70) {
        /* A spread group with 5..50 members on random hosts. */
        *kind = 2;
        req->group = vo_asprintf("g%u", pick(1000));
        req->group_policy = VO_GROUP_SPREAD;
        unsigned members = 5 + pick(46);
        req->group_hosts = vo_malloc0(members * sizeof(VoPlaceGroupHost));
        for (unsigned i = 0; i < members; i++)
            req->group_hosts[req->n_group_hosts++] = (VoPlaceGroupHost){
                .host_id = vo_strdup(snap->hosts[pick((unsigned)snap->n_hosts)].id), .count = 1 };
    } else if (k < 80) {
        *kind = 3;
        req->group = vo_asprintf("t%u", pick(1000));
        req->group_policy = VO_GROUP_TOGETHER;
        req->group_hosts = vo_malloc0(sizeof(VoPlaceGroupHost));
        req->group_hosts[0] = (VoPlaceGroupHost){
            .host_id = vo_strdup(snap->hosts[pick((unsigned)snap->n_hosts)].id), .count = 3 };
        req->n_group_hosts = 1;
    } else if (k < 90) {
        *kind = 4;
        req->host = vo_strdup(snap->hosts[pick((unsigned)snap->n_hosts)].name);
    } else {
        *kind = 5;
        req->pools = vo_malloc0(sizeof(char *));
        vo_strv_pushf(&req->pools, "shared-%u", pick(N_SHARED_POOLS));
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return NAN;
    size_t i = (size_t)ceil(q * (double)n);
    return sorted[i ? i - 1 : 0];
}

static void print_stats(const char *name, double *lat, size_t n, bool last)
{
    qsort(lat, n, sizeof(double), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += lat[i];
    printf("  \"%s\": {\"n\": %zu, \"median_us\": %.2f, \"p99_us\": %.2f, \"max_us\": %.2f, "
           "\"mean_us\": %.2f}%s\n",
           name, n, quantile(lat, n, 0.5), quantile(lat, n, 0.99), n ? lat[n - 1] : NAN,
           n ? sum / (double)n : NAN, last ? "" : ",");
}

int main(int argc, char **argv)
{
    size_t n_hosts = 1000, n_vms = 100000, n_place = 10000, n_big = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        size_t v = strtoul(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--hosts"))
            n_hosts = v;
        else if (!strcmp(argv[i], "--vms"))
            n_vms = v;
        else if (!strcmp(argv[i], "--placements"))
            n_place = v;
        else if (!strcmp(argv[i], "--too-big"))
            n_big = v;
        else {
            fprintf(stderr, "usage: %s [--hosts N] [--vms N] [--placements N] [--too-big N]\n", argv[0]);
            return 2;
        }
    }
    if (n_hosts == 0) {
        fprintf(stderr, "--hosts must be at least 1\n");
        return 2;
    }

    VoPlaceSnapshot snap = { .hosts = vo_malloc0(n_hosts * sizeof(VoPlaceHost)), .n_hosts = n_hosts };
    for (size_t i = 0; i < n_hosts; i++)
        make_host(&snap.hosts[i], i);
    /* The existing VMs: each on a random host where it fits and which is
     * not yet filled to its own target (30..90 % of its memory), so that
     * hosts differ but few are full. */
    double *target = vo_malloc0(n_hosts * sizeof(double));
    for (size_t i = 0; i < n_hosts; i++)
        target[i] = 0.3 + (double)pick(601) / 1000.0;
    size_t placed_vms = 0;
    for (size_t v = 0; v < n_vms; v++) {
        unsigned vcpus;
        uint64_t mem;
        vm_size(&vcpus, &mem);
        for (int tries = 0; tries < 50; tries++) {
            size_t i = pick((unsigned)n_hosts);
            VoPlaceHost *h = &snap.hosts[i];
            if (fits(h, vcpus, mem) &&
                (double)(h->committed_memory_mib + mem) <= target[i] * (double)h->memory_mib) {
                h->committed_memory_mib += mem;
                h->committed_vcpus += vcpus;
                placed_vms++;
                break;
            }
        }
    }
    free(target);
    uint64_t mem_total = 0, mem_used = 0;
    for (size_t i = 0; i < n_hosts; i++) {
        mem_total += snap.hosts[i].memory_mib;
        mem_used += snap.hosts[i].committed_memory_mib;
    }

    /* The snapshot's JSON form: parsing it is what the daemon will do. */
    json_t *doc = vo_place_snapshot_to_json(&snap);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    double parse_ms[5];
    for (int k = 0; k < 5; k++) {
        double t0 = now_us(CLOCK_MONOTONIC);
        json_t *d = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        VoPlaceSnapshot s2;
        char *error = NULL;
        if (!d || vo_place_snapshot_from_json(d, &s2, &error) < 0) {
            fprintf(stderr, "snapshot does not parse back: %s\n", error ? error : "json");
            return 1;
        }
        parse_ms[k] = (now_us(CLOCK_MONOTONIC) - t0) / 1000.0;
        json_decref(d);
        vo_place_snapshot_clear(&s2);
    }
    qsort(parse_ms, 5, sizeof(double), cmp_double);
    size_t json_bytes = strlen(text);
    free(text);

    /* The placements, each committed to its host. */
    double *lat = vo_malloc0((n_place + 1) * sizeof(double));
    double *cpu_lat = vo_malloc0((n_place + 1) * sizeof(double));
    double *by_kind[6];
    size_t n_kind[6] = { 0 };
    for (int k = 0; k < 6; k++)
        by_kind[k] = vo_malloc0((n_place + 1) * sizeof(double));
    size_t placed = 0, none = 0, excluded = 0;
    double cpu = 0;
    for (size_t p = 0; p < n_place; p++) {
        VoPlaceRequest req;
        unsigned kind;
        make_request(&req, &snap, &kind);
        VoPlaceResult res;
        /* Timed: the call and freeing its result; not timed: counting
         * the hosts it left out. */
        double c0 = now_us(CLOCK_THREAD_CPUTIME_ID);
        double t0 = now_us(CLOCK_MONOTONIC);
        int r = vo_place(&snap, &req, &res);
        double t1 = now_us(CLOCK_MONOTONIC);
        double c1 = now_us(CLOCK_THREAD_CPUTIME_ID);
        ssize_t host = res.host;
        for (size_t i = 0; i < res.n_verdicts; i++)
            excluded += res.verdicts[i].why > VO_PLACE_FITS;
        double c2 = now_us(CLOCK_THREAD_CPUTIME_ID);
        double t2 = now_us(CLOCK_MONOTONIC);
        vo_place_result_clear(&res);
        double t3 = now_us(CLOCK_MONOTONIC);
        cpu_lat[p] = c1 - c0 + now_us(CLOCK_THREAD_CPUTIME_ID) - c2;
        cpu += cpu_lat[p];
        t1 += t3 - t2;
        if (r < 0) {
            fprintf(stderr, "vo_place: %s\n", strerror(-r));
            return 1;
        }
        lat[p] = t1 - t0;
        by_kind[kind][n_kind[kind]++] = t1 - t0;
        if (host >= 0) {
            snap.hosts[host].committed_memory_mib += req.memory_mib;
            snap.hosts[host].committed_vcpus += req.vcpus;
            placed++;
        } else {
            none++;
        }
        vo_place_request_clear(&req);
    }

    /* The worst case for the reasons: a VM no host can take (a reason,
     * formatted, for each of the hosts), with the message built. */
    double *big = vo_malloc0((n_big + 1) * sizeof(double));
    for (size_t p = 0; p < n_big; p++) {
        VoPlaceRequest req = { .vcpus = 1, .memory_mib = 1ULL << 30 };
        VoPlaceResult res;
        double t0 = now_us(CLOCK_MONOTONIC);
        vo_place(&snap, &req, &res);
        char *msg = vo_place_reasons_format(&snap, &req, &res);
        free(msg);
        vo_place_result_clear(&res);
        big[p] = now_us(CLOCK_MONOTONIC) - t0;
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\n  \"hosts\": %zu, \"vms\": %zu, \"vms_placed_before\": %zu, "
           "\"memory_committed_fraction\": %.3f,\n",
           n_hosts, n_vms, placed_vms, (double)mem_used / (double)mem_total);
    printf("  \"snapshot_json_bytes\": %zu, \"snapshot_parse_ms_median\": %.2f,\n", json_bytes,
           parse_ms[2]);
    printf("  \"placed\": %zu, \"no_host\": %zu, \"hosts_left_out_mean\": %.1f, "
           "\"cpu_us_per_placement\": %.2f, \"max_rss_kb\": %ld,\n",
           placed, none, n_place ? (double)excluded / (double)n_place : NAN,
           n_place ? cpu / (double)n_place : NAN, ru.ru_maxrss);
    print_stats("all", lat, n_place, false);
    print_stats("all_cpu", cpu_lat, n_place, false);
    const char *kinds[] = { "plain", "cpu_model", "spread_group", "together_group", "pinned",
                            "shared_pool" };
    for (int k = 0; k < 6; k++)
        print_stats(kinds[k], by_kind[k], n_kind[k], false);
    print_stats("too_big", big, n_big, true);
    printf("}\n");
    for (int k = 0; k < 6; k++)
        free(by_kind[k]);
    free(lat);
    free(cpu_lat);
    free(big);
    vo_place_snapshot_clear(&snap);
    return 0;
}
