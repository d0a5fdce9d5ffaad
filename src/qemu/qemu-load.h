/* qemu-load.h: the QEMU driver's load op (a running VM's CPU time and
 * memory in use, for the DRS samples: docs/drs.md) and the /proc parsers
 * it is made of (pure, unit-tested). */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "hypervisor/driver.h"

/* /proc/PID/stat text: utime + stime in clock ticks (fields 14 and 15,
 * counted after the parenthesised command name, which may hold spaces and
 * parentheses). 0 or -EINVAL. */
int vo_proc_stat_cpu_ticks(const char *text, uint64_t *ret);
/* /proc/PID/statm text: resident pages (the second field). 0 or -EINVAL. */
int vo_proc_statm_rss_pages(const char *text, uint64_t *ret);

/* The guest's memory in use (bytes) from its balloon's statistics, QMP's
 * answer to qom-get of PATH's guest-stats ({"stats":
 * {"stat-total-memory": B, ...}, "last-update": seconds}, 2^64 - 1 for
 * what the guest did not report): its total less what it has available,
 * as monitoring counts a host's use (MemTotal - MemAvailable); a guest
 * that does not report available memory: total less free less disk
 * caches. 0, -EINVAL when the answer is no such object, or -ENODATA when
 * there is none, the guest reported none, last more than 30 s before now_s
 * (wall seconds), or numbers that do not add up. */
int vo_balloon_guest_used_bytes(json_t *stats_answer, int64_t now_s, uint64_t *ret);

/* A running QEMU's CPU time (ns) and resident memory (bytes) from /proc,
 * checked to be that QEMU's still (its pidfd). 0, or -ESRCH / the read's
 * error. */
int vo_qemu_proc_usage(VoHvInstance *vm, uint64_t *ret_cpu_ns, uint64_t *ret_rss_bytes);
/* The driver op (driver.h, load); wait_ns counts from its first call on
 * vm (vm->waits). */
int vo_qemu_load(VoHvInstance *vm, VoHvLoad *ret);
