/* vm-load.h: the load samples of this host's running VMs (docs/drs.md,
 * "What is sampled"), published in the host's record as "vm_load" for the
 * manager's balancing: per VM the cores its process used since the last
 * sample (CPU time delta over wall time, through the driver's load op), the
 * cores it demanded (used + waited for a CPU, capped: vo_drs_cpu_sample)
 * and the memory it uses (driver.h, VoHvLoad). */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"

/* {"<vm-id>": {"cpu": cores, "cpu_demand": cores, "mem_mib": used,
 * "mem_source": "guest" | "balloon" | "rss" (VoHvMemSource), "rss_mib":
 * its process's resident memory}} for every VM
 * with a running instance: a few numbers and one short word per VM, as
 * bounded as the CPU figures. A VM whose first sample this is shows
 * cpu and cpu_demand null (no delta yet: not known, which is not idle);
 * one whose job lock is held by a task (a migration, a hot-plug) keeps its
 * last numbers. Thread-safe. */
json_t *vo_vm_load_json(VoDaemon *d);

