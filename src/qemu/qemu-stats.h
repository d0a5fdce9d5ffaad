/* qemu-stats.h: the QEMU driver's stats op (monitoring counters of a
 * running VM: docs/monitoring.md) and its pure blockstats parser. */
#pragma once

#include <jansson.h>

#include "hypervisor/driver.h"

/* Sums query-blockstats' answer (an array of devices) into ret's disk
 * counters: each device's own "stats" (not its "parent" or "backing",
 * which count the same requests again), have_disk set. -EINVAL when it is
 * no array. */
int vo_qemu_blockstats_sum(const json_t *answer, VoHvStats *ret);

/* The driver op (driver.h, stats). */
int vo_qemu_stats(VoHvInstance *vm, VoHvStats *ret);
