/* host-facts.h: what this machine is and how busy it is, read from /proc:
 * CPU model and flags, memory, CPU busy fraction between two samples. The
 * hosts service publishes these in the host's record (daemon/hosts.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

typedef struct {
    char *cpu_model;  /* "model name" of the first CPU, or "unknown" */
    json_t *cpu_flags; /* sorted array of flag names */
    unsigned cpus;
    uint64_t memory_mib;      /* MemTotal */
    uint64_t memory_used_mib; /* MemTotal - MemAvailable */
} VoHostFacts;

/* CPU time counters of /proc/stat's "cpu" line, for vo_host_cpu_busy. */
typedef struct {
    uint64_t busy, total;
} VoCpuSample;

/* Parses /proc/cpuinfo text (pure: tests feed it). */
void vo_host_facts_parse_cpuinfo(const char *text, VoHostFacts *f);
/* Parses /proc/meminfo text into memory_mib and memory_used_mib. */
void vo_host_facts_parse_meminfo(const char *text, VoHostFacts *f);
/* Parses the first line of /proc/stat. false when it is not one. */
bool vo_host_parse_cpu_sample(const char *text, VoCpuSample *s);
/* Busy fraction (0..1) of the CPUs between two samples; 0 when none passed. */
double vo_host_cpu_busy(const VoCpuSample *before, const VoCpuSample *after);

/* Reads them all from /proc. cpus falls back to sysconf. */
void vo_host_facts_read(VoHostFacts *f);
bool vo_host_cpu_sample_read(VoCpuSample *s);
void vo_host_facts_clear(VoHostFacts *f);
