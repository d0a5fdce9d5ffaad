/* drs-sim.c: the DRS balancing simulation (issue 13), one command:
 *
 *   build/bench/drs-sim --hosts 100 --vms 5000 --hours 24
 *
 * Runs the planner (cluster/drs.c) over a synthetic cluster for a simulated
 * day (bench/drs-sim-model.c), once with DRS auto and once with DRS off on
 * the same loads, and prints Markdown: migrations per hour, the imbalance
 * over time against the baseline, the most moves of any VM against what the
 * cooldown allows, and how long one planner round takes. Exit status 1 when
 * a rule was broken (cooldown, room, spread group, planner error). Pure CPU
 * work in one process: nothing to clean up. docs/benchmarks.md, "DRS". */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "drs-sim-model.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: drs-sim [--hosts N] [--vms N] [--hours H] [--seed S] [--level 1-5]\n"
               "               [--round SECONDS] [--no-baseline]\n"
               "Simulates DRS balancing over a synthetic cluster (default: 100 hosts,\n"
               "5000 VMs, 24 hours, level %d, a round every 10 s) and prints Markdown.\n",
            VO_DRS_LEVEL_DEFAULT);
}

static int parse_num(const char *opt, const char *s, double lo, double hi, double *ret)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || end == s || *end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "drs-sim: --%s wants a number from %g to %g, not '%s'\n", opt, lo, hi, s);
        return -EINVAL;
    }
    *ret = d;
    return 0;
}

int main(int argc, char **argv)
{
    VoDrsSimConfig c;
    vo_drs_sim_config_default(&c);
    bool baseline = true;
    static const struct option opts[] = {
        { "hosts", required_argument, NULL, 'H' }, { "vms", required_argument, NULL, 'v' },
        { "hours", required_argument, NULL, 'h' }, { "seed", required_argument, NULL, 's' },
        { "level", required_argument, NULL, 'l' }, { "round", required_argument, NULL, 'r' },
        { "no-baseline", no_argument, NULL, 'n' }, { "help", no_argument, NULL, '?' },
        { 0 },
    };
    int o;
    double d;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'H':
            if (parse_num("hosts", optarg, 2, 100000, &d) < 0)
                return 2;
            c.hosts = (unsigned)d;
            break;
        case 'v':
            if (parse_num("vms", optarg, 1, 10000000, &d) < 0)
                return 2;
            c.vms = (unsigned)d;
            break;
        case 'h':
            if (parse_num("hours", optarg, 0.01, 24 * 365, &d) < 0)
                return 2;
            c.hours = d;
            break;
        case 's':
            if (parse_num("seed", optarg, 0, 1e15, &d) < 0)
                return 2;
            c.seed = (uint64_t)d;
            break;
        case 'l':
            if (parse_num("level", optarg, VO_DRS_LEVEL_MIN, VO_DRS_LEVEL_MAX, &d) < 0)
                return 2;
            c.level = (int)d;
            break;
        case 'r':
            if (parse_num("round", optarg, 0.1, 3600, &d) < 0)
                return 2;
            c.round_s = d;
            break;
        case 'n':
            baseline = false;
            break;
        default:
            usage(o == '?' && optind > 0 && !strcmp(argv[optind - 1], "--help") ? stdout : stderr);
            return o == '?' && optind > 0 && !strcmp(argv[optind - 1], "--help") ? 0 : 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&now));
    struct utsname u;
    uname(&u);
    fprintf(stderr, "drs-sim: %u hosts, %u VMs, %g h ...\n", c.hosts, c.vms, c.hours);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    VoDrsSimResult r, b = { 0 };
    int ret = vo_drs_sim_run(&c, &r);
    if (ret < 0) {
        fprintf(stderr, "drs-sim: %s\n", ret == -ENOSPC ? "the VMs do not fit on the hosts" :
                                                          "configuration out of range");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (baseline) {
        VoDrsSimConfig off = c;
        off.mode = VO_DRS_OFF;
        if (vo_drs_sim_run(&off, &b) < 0)
            return 2;
    }

    printf("### Result (%s, `drs-sim --hosts %u --vms %u --hours %g --seed %llu --level %d`)\n\n",
           when, c.hosts, c.vms, c.hours, (unsigned long long)c.seed, c.level);
    printf("Machine: %s %s %s. Simulated %zu rounds of %g s in %.1f s of wall time.\n\n",
           u.nodename, u.release, u.machine, r.rounds, c.round_s, wall_s);
    printf("| | DRS auto | DRS off |\n|---|---|---|\n");
    printf("| threshold (level %d) | %.3f | |\n", c.level, r.threshold);
    printf("| imbalance at start | %.3f | %.3f |\n", r.imb_start, b.imb_start);
    printf("| imbalance median | %.3f | %.3f |\n", r.imb_median, b.imb_median);
    printf("| imbalance p95 | %.3f | %.3f |\n", r.imb_p95, b.imb_p95);
    printf("| imbalance max | %.3f | %.3f |\n", r.imb_max, b.imb_max);
    printf("| imbalance at the end | %.3f | %.3f |\n", r.imb_end, b.imb_end);
    printf("| migrations | %zu | 0 |\n", r.migrations);
    printf("| migrations per hour (mean) | %.1f | |\n", (double)r.migrations / c.hours);
    printf("| simulated migration time | %.0f s | |\n", r.migration_s);
    printf("| most moves of one VM | %u (cooldown allows %u) | |\n", r.max_moves, r.allowed_moves);
    if (r.min_gap_s >= 0)
        printf("| shortest time between two moves of a VM | %.0f s (cooldown %d s) | |\n",
               r.min_gap_s, VO_DRS_COOLDOWN_MS / 1000);
    printf("| rule violations (cooldown, room, spread, planner errors) | %zu, %zu, %zu, %zu | |\n",
           r.cooldown_violations, r.room_violations, r.spread_violations, r.planner_errors);
    printf("| planner round, wall time (median / p99 / max) | %.2f / %.2f / %.2f ms | |\n",
           r.plan_ms_median, r.plan_ms_p99, r.plan_ms_max);
    printf("| planner round, CPU time (p99 / max) | %.2f / %.2f ms | |\n\n", r.plan_cpu_ms_p99,
           r.plan_cpu_ms_max);
    printf("| hour | migrations | mean imbalance (auto) | mean imbalance (off) |\n"
           "|---|---|---|---|\n");
    for (size_t h = 0; h < r.n_hours; h++)
        printf("| %zu | %zu | %.3f | %.3f |\n", h, r.per_hour[h], r.imbalance_hour[h],
               baseline ? b.imbalance_hour[h] : 0.0);
    bool bad = r.cooldown_violations || r.room_violations || r.spread_violations ||
               r.planner_errors || r.max_moves > r.allowed_moves;
    vo_drs_sim_result_clear(&r);
    vo_drs_sim_result_clear(&b);
    if (bad)
        fprintf(stderr, "drs-sim: a rule was broken (see the table)\n");
    return bad ? 1 : 0;
}
