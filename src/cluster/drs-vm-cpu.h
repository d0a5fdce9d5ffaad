/* drs-vm-cpu.h: the CPU DRS weighs a VM by, from its host's sample (the
 * host record's vm_load entry) and what the manager last knew of it
 * (docs/drs.md, "What is sampled"). Pure: no I/O. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

/* A VM's CPU measure (cores): what its host sampled of its demand
 * ("cpu_demand"), else of its use ("cpu": a host of an older vireod's).
 * A VM its host has no sample of yet (the entry's "cpu" is null: its
 * process is new there, after a start, a restart or a migration's arrival,
 * and has no earlier reading to take a delta from; or no entry) is carried
 * at known[vm_id], the cores the manager weighed it by in an earlier
 * round (on this host or another), and *ret_carried says so; 0 when not
 * known. Never negative. */
double vo_drs_vm_cpu_measure(json_t *load, json_t *known, const char *vm_id, bool *ret_carried);
