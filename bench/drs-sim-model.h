/* drs-sim-model.h: the DRS simulation (bench/drs-sim and the unit test
 * tests/unit/test-drs-sim.c): a synthetic cluster whose VMs' load changes
 * over a simulated day (diurnal waves in three time zones, bursts, idle and
 * steady VMs), with the planner (cluster/drs.h) run every simulated round
 * exactly as the manager runs it: one migration at a time, no round while
 * one is in flight, a migration lasting the seconds its cost estimates.
 * Deterministic for a seed; the VMs' loads do not depend on where they run,
 * so a run with DRS off gives the baseline for the same day. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/drs.h"

typedef struct {
    unsigned hosts, vms;
    double hours;
    uint64_t seed;
    int level;        /* DRS level (VO_DRS_LEVEL_DEFAULT) */
    VoDrsMode mode;   /* VO_DRS_AUTO, or VO_DRS_OFF for the baseline */
    double round_s;   /* seconds between rounds (10) */
} VoDrsSimConfig;

void vo_drs_sim_config_default(VoDrsSimConfig *c);

typedef struct {
    size_t rounds;              /* simulated rounds */
    size_t planned_rounds;      /* rounds the planner ran (none while a move is in flight) */
    double *imbalance;          /* per round (malloc'd; rounds entries) */
    double threshold;
    size_t migrations;
    size_t *per_hour;           /* migrations started in each simulated hour (n_hours) */
    double *imbalance_hour;     /* mean imbalance of each hour */
    size_t n_hours;
    unsigned max_moves;         /* of any one VM */
    unsigned allowed_moves;     /* the most the cooldown allows one VM over the run */
    double min_gap_s;           /* shortest time from a VM's move to its next (-1: none moved twice) */
    size_t cooldown_violations; /* moves that started within the cooldown of the VM's last */
    size_t room_violations;     /* moves onto a host without room (must be 0) */
    size_t spread_violations;   /* moves putting two of a spread group on a host (must be 0) */
    size_t planner_errors;      /* vo_drs_round < 0 (must be 0) */
    double migration_s;         /* simulated seconds of migration, summed */
    double imb_start, imb_median, imb_p95, imb_max, imb_end;
    double plan_ms_median, plan_ms_p99, plan_ms_max; /* wall time of one vo_drs_round */
    double plan_cpu_ms_p99, plan_cpu_ms_max;         /* its thread's CPU time */
} VoDrsSimResult;

/* Runs the simulation: 0, or -EINVAL for a config out of range (hosts >= 2,
 * vms >= 1, hours > 0, round_s > 0). Free the result with
 * vo_drs_sim_result_clear. */
int vo_drs_sim_run(const VoDrsSimConfig *c, VoDrsSimResult *r);
void vo_drs_sim_result_clear(VoDrsSimResult *r);
