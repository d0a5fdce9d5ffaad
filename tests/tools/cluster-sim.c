/* cluster-sim.c: simulates a large cluster against a real etcd, as the
 * store sees it, without vireods or host plumbing (bench/cluster-scale runs
 * it): H hosts publish member documents and live records on leases of their
 * own, V VMs are written as vireod writes them (the VM document in its
 * host's namespace and the name claim, one transaction each), the leases of
 * every host are renewed for a while as the hosts service does (keepalive,
 * then a linearizable read), and the manager's placement path is timed end
 * to end: list the member documents and records, build the snapshot, place;
 * then again with the snapshot in memory (cluster/place-cache.c: listed
 * once, watched), plus the one record read the manager does after a create.
 * Prints one JSON object. Deterministic contents (fixed seed).
 *
 *   cluster-sim ENDPOINT HOSTS VMS RENEW_SECONDS PLACEMENTS THREADS */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/place-cache.h"
#include "cluster/place-snapshot.h"
#include "cluster/placement.h"
#include "state/store.h"
#include "util/util.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void) /* xorshift64*; single-threaded use only */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static double now_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static json_t *stats(double *v, size_t n)
{
    if (!n)
        return json_null();
    qsort(v, n, sizeof(*v), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    return json_pack("{s:f, s:f, s:f, s:f, s:I}", "median_ms", v[n / 2], "p99_ms",
                     v[(size_t)((double)(n - 1) * 0.99)], "max_ms", v[n - 1], "mean_ms",
                     sum / (double)n, "n", (json_int_t)n);
}

typedef struct {
    char id[64];
    char name[32];
    int64_t lease;
    uint64_t memory_mib;
    unsigned cpus;
    uint64_t committed_mib;
    unsigned committed_vcpus;
} SimHost;

static char *record_text(const SimHost *h)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[s,s,s,s], s:[s], s:I, s:I, s:i,"
                          " s:f, s:f, s:I, s:i, s:f, s:i, s:s}",
                          "id", h->id, "name", h->name, "address", "10.0.0.1", "state", "online",
                          "accel", "kvm", "cpu_model", "AMD EPYC 7B13", "cpu_flags", "avx", "avx2",
                          "sse2", "sse4_2", "pools", "default", "memory_mib",
                          (json_int_t)h->memory_mib, "memory_used_mib",
                          (json_int_t)(h->committed_mib / 2), "cpus", (int)h->cpus, "mem_ratio",
                          1.0, "cpu_ratio", 4.0, "committed_memory_mib",
                          (json_int_t)h->committed_mib, "committed_vcpus",
                          (int)h->committed_vcpus, "load", 0.3, "vms", 100, "version", "0.1.0");
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

/* ---- lease renewals from many threads ----------------------------------- */

typedef struct {
    VoStore *s; /* the worker's own handle: its connections stay open */
    SimHost *hosts;
    size_t from, to;
    double until; /* set once every thread caught up (start) */
    double renew_ms;
    pthread_barrier_t *start;
    unsigned retaken; /* leases that lapsed before the timed part, taken again */
    bool shared_read; /* one linearizable read per round confirms its keepalives */
    double *lat; /* per renewal: keepalive + linearizable read */
    size_t n_lat, cap;
    unsigned failed, lapsed, late_rounds, reads, record_writes;
} RenewWorker;

static void note_latency(RenewWorker *w, double ms)
{
    if (w->n_lat == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 4096;
        w->lat = realloc(w->lat, w->cap * sizeof(double));
        if (!w->lat)
            abort();
    }
    w->lat[w->n_lat++] = ms;
}

static void *renew_worker(void *userdata)
{
    RenewWorker *w = userdata;
    size_t n = w->to - w->from;
    double *started = vo_malloc0((n + 1) * sizeof(double));
    bool *ok = vo_malloc0((n + 1) * sizeof(bool));
    /* Untimed catch-up: the leases that lapsed while the VMs were written
     * are taken again (and the records published on them), so the timed
     * part measures hosts renewing, not hosts coming back. */
    for (size_t i = w->from; i < w->to; i++) {
        if (w->s->ops->lease_keepalive(w->s, w->hosts[i].lease) != -ENOENT)
            continue;
        _cleanup_free_ char *rkey = vo_asprintf("cluster/hosts/%s", w->hosts[i].id);
        _cleanup_free_ char *rdoc = record_text(&w->hosts[i]);
        if (w->s->ops->lease_grant(w->s, 6000, &w->hosts[i].lease) >= 0 &&
            vo_store_put_lease(w->s, rkey, rdoc, VO_REV_ANY, w->hosts[i].lease, NULL) >= 0)
            w->retaken++;
    }
    pthread_barrier_wait(w->start);
    w->until = now_ms(CLOCK_MONOTONIC) + w->renew_ms;
    for (unsigned round = 0; now_ms(CLOCK_MONOTONIC) < w->until; round++) {
        double round_start = now_ms(CLOCK_MONOTONIC);
        size_t done = 0;
        for (size_t i = w->from; i < w->to && now_ms(CLOCK_MONOTONIC) < w->until; i++) {
            double t0 = now_ms(CLOCK_MONOTONIC);
            int64_t rev = 0;
            int r = w->s->ops->lease_keepalive(w->s, w->hosts[i].lease);
            if (r == 0 && !w->shared_read) {
                r = w->s->ops->revision(w->s, &rev);
                w->reads++;
            }
            if (r == -ENOENT) {
                /* Lapsed (a renewal came too late): the host publishes
                 * again on a new lease, as the hosts service does. */
                w->lapsed++;
                _cleanup_free_ char *rkey = vo_asprintf("cluster/hosts/%s", w->hosts[i].id);
                _cleanup_free_ char *rdoc = record_text(&w->hosts[i]);
                r = w->s->ops->lease_grant(w->s, 6000, &w->hosts[i].lease);
                if (r >= 0)
                    r = vo_store_put_lease(w->s, rkey, rdoc, VO_REV_ANY, w->hosts[i].lease, NULL);
            }
            else if (r == 0 && (round + i) % 10 == 0) {
                /* Every 10 s a host rewrites its record (VO_HOST_REFRESH_MS):
                 * etcd's steady write load, not part of the renewal. */
                _cleanup_free_ char *rkey = vo_asprintf("cluster/hosts/%s", w->hosts[i].id);
                _cleanup_free_ char *rdoc = record_text(&w->hosts[i]);
                if (vo_store_put_lease(w->s, rkey, rdoc, VO_REV_ANY, w->hosts[i].lease, NULL) >= 0)
                    w->record_writes++;
            }
            if (r < 0)
                w->failed++;
            started[done] = t0;
            ok[done++] = r >= 0;
            if (!w->shared_read)
                note_latency(w, now_ms(CLOCK_MONOTONIC) - t0);
        }
        if (w->shared_read && done) {
            /* One linearizable read made after every keepalive of the
             * round returned confirms them all (what hosts.c asks of a
             * renewal); each renewal's latency runs to its end. */
            int64_t rev = 0;
            int r = w->s->ops->revision(w->s, &rev);
            w->reads++;
            double end = now_ms(CLOCK_MONOTONIC);
            for (size_t k = 0; k < done; k++) {
                if (r < 0 && ok[k])
                    w->failed++;
                note_latency(w, end - started[k]);
            }
        }
        /* Each host renews once a second, as the hosts service does. */
        double left = 1000 - (now_ms(CLOCK_MONOTONIC) - round_start);
        if (left > 0) {
            struct timespec ts = { 0, (long)(left * 1e6) };
            nanosleep(&ts, NULL);
        } else
            w->late_rounds++; /* its hosts renewed less often than each second */
    }
    free(started);
    free(ok);
    return NULL;
}

/* ---- placement as the manager does it ----------------------------------- */

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    const char *slash = strrchr(key, '/');
    json_t *o = json_loads(value, 0, NULL);
    if (slash && o)
        json_object_set_new(userdata, slash + 1, o);
    else
        json_decref(o);
    return 0;
}

static int place_once(VoStore *s, double *ret_wall, double *ret_cpu, char **ret_host)
{
    double w0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_THREAD_CPUTIME_ID);
    json_t *members = json_object(), *records = json_object();
    int r = vo_store_list(s, "cluster/members/", collect, members);
    if (r >= 0)
        r = vo_store_list(s, "cluster/hosts/", collect, records);
    size_t n = json_object_size(members), i = 0;
    VoPlaceHostDocs *docs = vo_malloc0((n + 1) * sizeof(*docs));
    const char *id;
    json_t *m;
    json_object_foreach(members, id, m)
        docs[i++] = (VoPlaceHostDocs){ .member = m, .record = json_object_get(records, id) };
    VoPlaceSnapshot snap = { 0 };
    VoPlaceResult res = { 0 };
    char **warnings = NULL, *error = NULL;
    char *pools[] = { "default", NULL };
    VoPlaceRequest req = { .vcpus = 2, .memory_mib = 4096, .accel = VO_ACCEL_AUTO,
                           .pools = pools };
    if (r >= 0)
        r = vo_place_snapshot_build(docs, n, VO_PLACE_SPREAD, NULL, &snap, &warnings, &error);
    if (r >= 0)
        r = vo_place(&snap, &req, &res);
    if (r >= 0 && res.host >= 0)
        *ret_host = vo_strdup(snap.hosts[res.host].id);
    else if (r >= 0)
        r = -EBUSY;
    vo_place_result_clear(&res);
    vo_place_snapshot_clear(&snap);
    vo_strv_free(warnings);
    free(error);
    free(docs);
    json_decref(members);
    json_decref(records);
    *ret_wall = now_ms(CLOCK_MONOTONIC) - w0;
    *ret_cpu = now_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
    return r;
}

/* The manager's path with the snapshot in memory (daemon/cluster-place.c):
 * the cache locked, the snapshot built from it, vo_place, then the chosen
 * host's record read once (what the manager does after a create). */
static int place_cached(VoStore *s, VoPlaceCache *c, double *ret_wall, double *ret_cpu)
{
    double w0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_THREAD_CPUTIME_ID);
    vo_place_cache_lock(c);
    json_t *members = vo_place_cache_docs(c, VO_PLACE_CACHE_P_MEMBERS);
    json_t *records = vo_place_cache_docs(c, VO_PLACE_CACHE_P_RECORDS);
    size_t n = json_object_size(members), i = 0;
    VoPlaceHostDocs *docs = vo_malloc0((n + 1) * sizeof(*docs));
    const char *id;
    json_t *m;
    json_object_foreach(members, id, m) {
        json_t *rec = json_object_get(records, id);
        docs[i++] = (VoPlaceHostDocs){ .member = json_object_get(m, "doc"),
                                       .record = rec ? json_object_get(rec, "doc") : NULL };
    }
    VoPlaceSnapshot snap = { 0 };
    VoPlaceResult res = { 0 };
    char **warnings = NULL, *error = NULL;
    char *pools[] = { "default", NULL };
    VoPlaceRequest req = { .vcpus = 2, .memory_mib = 4096, .accel = VO_ACCEL_AUTO,
                           .pools = pools };
    int r = vo_place_snapshot_build(docs, n, VO_PLACE_SPREAD, NULL, &snap, &warnings, &error);
    if (r >= 0)
        r = vo_place(&snap, &req, &res);
    char *host = r >= 0 && res.host >= 0 ? vo_strdup(snap.hosts[res.host].id) : NULL;
    vo_place_cache_unlock(c);
    if (r >= 0 && !host)
        r = -EBUSY;
    if (host) {
        char *key = vo_asprintf("cluster/hosts/%s", host), *text = NULL;
        r = vo_store_get(s, key, &text, NULL);
        free(key);
        free(text);
        free(host);
    }
    vo_place_result_clear(&res);
    vo_place_snapshot_clear(&snap);
    vo_strv_free(warnings);
    free(error);
    free(docs);
    *ret_wall = now_ms(CLOCK_MONOTONIC) - w0;
    *ret_cpu = now_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: cluster-sim ENDPOINT HOSTS VMS RENEW_SECONDS PLACEMENTS THREADS "
                        "[per-host|shared-read]\n");
        return 2;
    }
    size_t n_hosts = strtoul(argv[2], NULL, 10), n_vms = strtoul(argv[3], NULL, 10);
    int renew_s = atoi(argv[4]), n_place = atoi(argv[5]), n_threads = atoi(argv[6]);
    bool shared_read = argc == 8 && !strcmp(argv[7], "shared-read");
    if (!n_hosts || n_threads < 1 || n_threads > 512 ||
        (argc == 8 && !shared_read && strcmp(argv[7], "per-host")))
        return 2;
    VoStore *raw = NULL;
    VoEtcdOptions o = { .endpoints = argv[1], .timeout_ms = 30000 };
    int r = vo_store_open_etcd(&o, &raw);
    if (r < 0) {
        fprintf(stderr, "cannot open etcd at %s: %s\n", argv[1], strerror(-r));
        return 1;
    }
    json_t *out = json_object();
    SimHost *hosts = vo_malloc0(n_hosts * sizeof(*hosts));
    static const uint64_t mem[] = { 262144, 524288, 786432, 1048576 };
    static const unsigned cpus[] = { 64, 96, 128, 192 };
    for (size_t i = 0; i < n_hosts; i++) {
        SimHost *h = &hosts[i];
        snprintf(h->id, sizeof(h->id), "%08zx-0000-4000-8000-%012zx", i, i * 7919);
        snprintf(h->name, sizeof(h->name), "h%04zu", i);
        h->memory_mib = mem[rnd() % 4];
        h->cpus = cpus[rnd() % 4];
    }
    /* VMs: each host holds its share; the committed figures follow. */
    for (size_t v = 0; v < n_vms; v++) {
        SimHost *h = &hosts[rnd() % n_hosts];
        h->committed_mib += 1024u << (rnd() % 4);
        h->committed_vcpus += 1 + (unsigned)(rnd() % 4);
    }

    /* 1. Hosts: member document, lease, live record (one write each). */
    double t0 = now_ms(CLOCK_MONOTONIC);
    for (size_t i = 0; i < n_hosts && r >= 0; i++) {
        SimHost *h = &hosts[i];
        _cleanup_free_ char *mkey = vo_asprintf("cluster/members/%s", h->id);
        _cleanup_free_ char *mdoc = vo_asprintf("{\"id\":\"%s\",\"name\":\"%s\",\"address\":"
                                                "\"10.0.0.1\",\"api_port\":8443}",
                                                h->id, h->name);
        _cleanup_free_ char *rkey = vo_asprintf("cluster/hosts/%s", h->id);
        _cleanup_free_ char *rdoc = record_text(h);
        r = vo_store_put(raw, mkey, mdoc, VO_REV_ANY, NULL);
        if (r >= 0)
            r = raw->ops->lease_grant(raw, 6000, &h->lease);
        if (r >= 0)
            r = vo_store_put_lease(raw, rkey, rdoc, VO_REV_ANY, h->lease, NULL);
    }
    double hosts_ms = now_ms(CLOCK_MONOTONIC) - t0;
    if (r < 0) {
        fprintf(stderr, "writing hosts: %s\n", strerror(-r));
        return 1;
    }
    json_object_set_new(out, "hosts", json_pack("{s:I, s:f}", "n", (json_int_t)n_hosts,
                                                "writes_per_s",
                                                3.0 * (double)n_hosts / (hosts_ms / 1000)));

    /* 2. VMs, as vireod writes them when it creates one: the document in
     * its host's namespace and the name claim, one transaction. The first
     * SAMPLE VMs are written so and timed; the rest in transactions of 64
     * VMs (128 operations, etcd's limit), to fill the store quickly. The
     * hosts' leases are not renewed meanwhile: records may lapse; they are
     * published again before step 3. */
    size_t sample = n_vms < 5000 ? n_vms : 5000;
    double *vm_lat = vo_malloc0((sample + 1) * sizeof(double));
    t0 = now_ms(CLOCK_MONOTONIC);
    double sample_ms = 0;
    for (size_t v = 0; v < n_vms && r >= 0;) {
        size_t batch = v < sample ? 1 : (n_vms - v < 64 ? n_vms - v : 64);
        VoStoreCompare cmps[128];
        VoStoreOp ops[128];
        char *texts[4 * 64];
        size_t n_texts = 0;
        for (size_t b = 0; b < batch; b++, v++) {
            SimHost *h = &hosts[v % n_hosts];
            char id[64];
            snprintf(id, sizeof(id), "%08zx-1111-4000-8000-%012zx", v, v);
            char *key = vo_asprintf("h/%s/vms/%s", h->id, id);
            char *name = vo_asprintf("cluster/names/vms/vm-%06zu", v);
            char *doc = vo_asprintf(
                "{\"spec\":{\"id\":\"%s\",\"name\":\"vm-%06zu\",\"vcpus\":2,\"memory_mib\":2048,"
                "\"image\":\"default\",\"disks\":[{\"volume\":\"default/vm-%06zu-root\"}],"
                "\"nics\":[{\"network\":\"default\",\"mac\":\"52:54:00:%02zx:%02zx:%02zx\"}]},"
                "\"status\":{\"state\":\"running\",\"created_at\":1764900000}}",
                id, v, v, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
            char *claim = vo_asprintf("{\"vm\":\"%s\",\"host\":\"%s\"}", id, h->id);
            cmps[2 * b] = (VoStoreCompare){ key, VO_REV_NEW };
            cmps[2 * b + 1] = (VoStoreCompare){ name, VO_REV_NEW };
            ops[2 * b] = (VoStoreOp){ VO_STORE_PUT, key, doc, 0 };
            ops[2 * b + 1] = (VoStoreOp){ VO_STORE_PUT, name, claim, 0 };
            texts[n_texts++] = key;
            texts[n_texts++] = name;
            texts[n_texts++] = doc;
            texts[n_texts++] = claim;
        }
        double s0 = now_ms(CLOCK_MONOTONIC);
        r = vo_store_txn(raw, cmps, 2 * batch, ops, 2 * batch, NULL, NULL);
        if (batch == 1) {
            vm_lat[v - 1] = now_ms(CLOCK_MONOTONIC) - s0;
            sample_ms += vm_lat[v - 1];
        }
        for (size_t i = 0; i < n_texts; i++)
            free(texts[i]);
    }
    double vms_ms = now_ms(CLOCK_MONOTONIC) - t0;
    if (r < 0) {
        fprintf(stderr, "writing VMs: %s\n", strerror(-r));
        return 1;
    }
    json_t *vm_stats = stats(vm_lat, sample);
    json_object_set_new(vm_stats, "one_per_txn_vms_per_s",
                        json_real((double)sample / (sample_ms / 1000)));
    json_object_set_new(vm_stats, "total", json_integer((json_int_t)n_vms));
    json_object_set_new(vm_stats, "fill_s", json_real(vms_ms / 1000));
    json_object_set_new(out, "vm_writes", vm_stats);
    free(vm_lat);

    /* The leases lapsed while the VMs were written: the renewal threads
     * first take them again (untimed, "retaken"), then renew for
     * RENEW_SECONDS; a lease that lapses then is counted as "lapsed". */

    /* 3. Every host renews its lease each second, T threads sharing them. */
    RenewWorker *workers = vo_malloc0((size_t)n_threads * sizeof(*workers));
    pthread_t *threads = vo_malloc0((size_t)n_threads * sizeof(*threads));
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n_threads + 1);
    double catchup0 = now_ms(CLOCK_MONOTONIC);
    for (int t = 0; t < n_threads; t++) {
        /* A handle each: one handle keeps only a few idle connections, so
         * threads sharing one would reconnect for most requests (the
         * simulator's cost, not etcd's). */
        VoStore *own = NULL;
        if (vo_store_open_etcd(&o, &own) < 0) {
            fprintf(stderr, "cannot open etcd for renewal thread %d\n", t);
            return 1;
        }
        workers[t] = (RenewWorker){ .s = own, .hosts = hosts,
                                    .from = n_hosts * (size_t)t / (size_t)n_threads,
                                    .to = n_hosts * (size_t)(t + 1) / (size_t)n_threads,
                                    .renew_ms = renew_s * 1000.0, .start = &start,
                                    .shared_read = shared_read };
        pthread_create(&threads[t], NULL, renew_worker, &workers[t]);
    }
    pthread_barrier_wait(&start);
    double catchup_ms = now_ms(CLOCK_MONOTONIC) - catchup0;
    /* 4. Meanwhile, the manager places VMs (list, build, place), once the
     * renewal threads had their first round (RENEW_SECONDS / 4). */
    struct timespec settle = { renew_s / 4, 0 };
    nanosleep(&settle, NULL);
    double *wall = vo_malloc0(((size_t)n_place + 1) * sizeof(double));
    double *cpu = vo_malloc0(((size_t)n_place + 1) * sizeof(double));
    /* The same with the snapshot in memory (listed once, then watched),
     * interleaved with the listing placements so both meet the same
     * load. A placement that found no host (records lapsed) is timed too:
     * it did the same work. */
    double l0 = now_ms(CLOCK_MONOTONIC);
    VoPlaceCache *cache = vo_place_cache_new(raw);
    int cache_r = vo_place_cache_start(cache);
    double cache_load_ms = now_ms(CLOCK_MONOTONIC) - l0;
    double *cwall = vo_malloc0(((size_t)n_place + 1) * sizeof(double));
    double *ccpu = vo_malloc0(((size_t)n_place + 1) * sizeof(double));
    int placed = 0, place_failed = 0, nowhere = 0, cplaced = 0, cfailed = 0, cnowhere = 0;
    for (int p = 0; p < n_place; p++) {
        char *host = NULL;
        int pr = place_once(raw, &wall[placed], &cpu[placed], &host);
        if (pr >= 0 || pr == -EBUSY)
            placed++;
        else
            place_failed++;
        nowhere += pr == -EBUSY;
        free(host);
        r = cache_r < 0 ? cache_r : place_cached(raw, cache, &cwall[cplaced], &ccpu[cplaced]);
        if (r >= 0 || r == -EBUSY)
            cplaced++;
        else
            cfailed++;
        cnowhere += r == -EBUSY;
    }
    size_t renewals = 0;
    unsigned renew_failed = 0, lapsed = 0, late_rounds = 0, reads = 0, record_writes = 0, retaken = 0;
    double *all = NULL;
    for (int t = 0; t < n_threads; t++) {
        pthread_join(threads[t], NULL);
        all = realloc(all, (renewals + workers[t].n_lat + 1) * sizeof(double));
        if (!all)
            abort();
        memcpy(all + renewals, workers[t].lat, workers[t].n_lat * sizeof(double));
        renewals += workers[t].n_lat;
        renew_failed += workers[t].failed;
        lapsed += workers[t].lapsed;
        late_rounds += workers[t].late_rounds;
        reads += workers[t].reads;
        record_writes += workers[t].record_writes;
        retaken += workers[t].retaken;
        free(workers[t].lat);
        vo_store_close(workers[t].s);
    }
    json_t *rs = stats(all, renewals);
    json_object_set_new(rs, "per_s", json_real((double)renewals / renew_s));
    json_object_set_new(rs, "failed", json_integer(renew_failed));
    json_object_set_new(rs, "lapsed", json_integer(lapsed));
    json_object_set_new(rs, "retaken_before", json_integer(retaken));
    json_object_set_new(rs, "catch_up_s", json_real(catchup_ms / 1000));
    json_object_set_new(rs, "mode", json_string(shared_read ? "shared-read" : "per-host"));
    json_object_set_new(rs, "threads", json_integer(n_threads));
    json_object_set_new(rs, "linearizable_reads_per_s", json_real((double)reads / renew_s));
    json_object_set_new(rs, "record_writes_per_s", json_real((double)record_writes / renew_s));
    /* Rounds of a thread that took over a second: its hosts renewed less
     * often than each second (the client fell behind). */
    json_object_set_new(rs, "late_rounds", json_integer(late_rounds));
    json_object_set_new(out, "renewals", rs);
    free(all);
    json_t *ps = stats(wall, (size_t)placed);
    json_t *pc = stats(cpu, (size_t)placed);
    json_object_set_new(ps, "cpu_median_ms", json_object_get(pc, "median_ms")
                                                  ? json_copy(json_object_get(pc, "median_ms"))
                                                  : json_null());
    json_object_set_new(ps, "cpu_p99_ms", json_object_get(pc, "p99_ms")
                                              ? json_copy(json_object_get(pc, "p99_ms"))
                                              : json_null());
    json_object_set_new(ps, "failed", json_integer(place_failed));
    json_object_set_new(ps, "fit_nowhere", json_integer(nowhere));
    json_decref(pc);
    json_object_set_new(out, "placement", ps);
    json_t *cs = stats(cwall, (size_t)cplaced);
    json_t *cc = stats(ccpu, (size_t)cplaced);
    json_object_set_new(cs, "cpu_median_ms", json_object_get(cc, "median_ms")
                                                  ? json_copy(json_object_get(cc, "median_ms"))
                                                  : json_null());
    json_object_set_new(cs, "cpu_p99_ms", json_object_get(cc, "p99_ms")
                                              ? json_copy(json_object_get(cc, "p99_ms"))
                                              : json_null());
    json_object_set_new(cs, "failed", json_integer(cfailed));
    json_object_set_new(cs, "fit_nowhere", json_integer(cnowhere));
    json_object_set_new(cs, "cache_load_ms", json_real(cache_load_ms));
    json_decref(cc);
    json_object_set_new(out, "placement_cached", cs);
    vo_place_cache_free(cache);
    pthread_barrier_destroy(&start);
    free(cwall);
    free(ccpu);
    free(wall);
    free(cpu);
    free(workers);
    free(threads);
    free(hosts);
    vo_store_close(raw);
    char *text = json_dumps(out, JSON_COMPACT);
    puts(text);
    free(text);
    json_decref(out);
    return 0;
}
