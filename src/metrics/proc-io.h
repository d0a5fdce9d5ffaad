/* proc-io.h: the host's disk and network counters from /proc text (pure
 * parsers for the monitoring sampler, daemon/metrics.c; unit-tested). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t rd_bytes, wr_bytes, rd_ops, wr_ops;
} VoDiskCounters;

typedef struct {
    uint64_t rx_bytes, tx_bytes;
} VoNetCounters;

/* Sums /proc/diskstats over the devices for which want(name) is true
 * (sectors are 512 bytes there whatever the device's own). 0 or -EINVAL
 * when no line parses. */
int vo_diskstats_sum(const char *text, bool (*want)(const char *name), VoDiskCounters *ret);
/* Sums /proc/net/dev over the interfaces for which want(name) is true.
 * 0 or -EINVAL when it is not that file. */
int vo_netdev_sum(const char *text, bool (*want)(const char *name), VoNetCounters *ret);
