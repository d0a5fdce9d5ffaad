/* rrd.h: the history of one monitored object (a host, a VM) like an RRD
 * (docs/monitoring.md, "History"): a fixed number of columns (gauges or
 * rates computed from counters) in three fixed-size ring archives, 1 h at
 * 10 s, 1 day at 1 min and 30 days at 30 min. Every sample goes into all
 * three: the values of one archive slot are averaged (unknown values,
 * NaN, are left out of the average); a slot is written once it is over.
 *
 * On disk: one fixed-size file per object, updated in place (only the
 * header and the rows written since the last sync), each row and the
 * header with their own CRC-32, so a torn write loses one row (read back as
 * missing) or the slots in progress, never the file. A file of another
 * geometry, or whose magic is wrong, is started afresh. Native byte order:
 * the files stay on the host that wrote them. No daemon, no locks: the
 * caller serialises. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VO_RRD_ARCHIVES 3
#define VO_RRD_MAX_COLS 16

typedef struct {
    const char *range; /* the API's name for it: "1h", "1d", "30d" */
    unsigned step_s;   /* seconds per slot */
    unsigned rows;     /* slots kept */
} VoRrdArchiveDef;

extern const VoRrdArchiveDef vo_rrd_archives[VO_RRD_ARCHIVES];

typedef struct VoRrd VoRrd;

/* A new empty history of n_cols (1..VO_RRD_MAX_COLS) columns, not tied to a
 * file. NULL for a bad n_cols. */
VoRrd *vo_rrd_new(unsigned n_cols);
void vo_rrd_free(VoRrd *r);

/* The history in path (created when missing): 0 loaded; 1 when the file
 * was unusable (wrong magic, size or geometry) and was started afresh, or
 * when its header's checksum failed (rows kept, slots in progress lost), or
 * when some rows' checksums failed (those rows missing); -errno when the
 * file cannot be opened or made. The file stays open for vo_rrd_sync. */
int vo_rrd_open(const char *path, unsigned n_cols, VoRrd **ret);
/* Writes the header and the rows changed since the last sync in place
 * (no fsync: a crash loses at most the last interval). 0 or -errno. */
int vo_rrd_sync(VoRrd *r);

/* One sample at wall time t_s (seconds): values[n_cols], NaN for unknown.
 * A sample older than an archive's slot in progress is ignored there (the
 * clock went back). */
void vo_rrd_update(VoRrd *r, int64_t t_s, const double *values);
/* The same with a weight per column (NULL, NaN or <= 0: 1): a slot's value
 * is the weighted average of its samples, so a rate measured over a longer
 * interval (a late or skipped round) counts for the seconds it covers. */
void vo_rrd_update_weighted(VoRrd *r, int64_t t_s, const double *values, const double *weights);

/* The archive named range ("1h", "1d", "30d"), or -1. */
int vo_rrd_archive_index(const char *range);

/* The series of archive a as JSON: {"range", "step": seconds,
 * "timestamps": [slot starts, seconds], "series": {name: {"unit",
 * "values": [number or null]}}}, oldest first, the slots still held (at
 * most rows) and last the slot in progress (its average so far) when it
 * has a sample. names and units: n_cols each. */
json_t *vo_rrd_series_json(const VoRrd *r, unsigned a, const char *const *names,
                           const char *const *units);

/* The rate per second of a counter that went from before to now in
 * seconds: NaN when seconds <= 0 or when it went back (the counter was
 * reset: a new process, a re-created device), except that a counter that
 * went from the upper half of 32 bits to the lower half counts as a 32-bit
 * counter that wrapped once at 2^32. */
double vo_rrd_counter_rate(uint64_t before, uint64_t now, double seconds);

/* CRC-32 (IEEE) of len bytes. */
uint32_t vo_crc32(const void *data, size_t len);
