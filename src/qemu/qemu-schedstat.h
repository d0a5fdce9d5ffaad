/* qemu-schedstat.h: the time a QEMU process's threads spent runnable but
 * waiting for a CPU (the kernel's run_delay, /proc/PID/task/TID/schedstat),
 * for the DRS demand (docs/drs.md, "What is sampled"). Pure: the parser of
 * one schedstat line and the running total over threads that come and go;
 * qemu-load.c reads the files. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* /proc/.../schedstat text ("run_ns run_delay_ns timeslices"): the second
 * field, ns spent runnable but waiting on a run queue. 0 or -EINVAL. */
int vo_schedstat_run_delay(const char *text, uint64_t *ret);

/* One thread's run_delay as read now. */
typedef struct {
    int tid;
    uint64_t run_delay_ns;
} VoThreadWait;

/* The waiting of a process's threads summed over time. A thread's
 * run_delay is its own and goes when it ends, so the sum over the threads
 * alive now can fall: the total grows only by each thread's growth since
 * the last reading (a thread that ended in between loses only what it
 * waited since that reading). */
typedef struct {
    VoThreadWait *threads; /* the last reading, sorted by tid */
    size_t n;
    bool primed;           /* a first reading was taken */
    uint64_t total_ns;     /* waited since the first reading */
} VoThreadWaits;

/* Takes a new reading of n threads (now, reordered by tid) and returns
 * what it added to w->total_ns: for a thread of the last reading, its
 * growth; for a thread born since (not in it), all its run_delay; the
 * first reading is the baseline and adds nothing. A tid whose run_delay
 * went back is a new thread that got a freed tid: all of it counts. */
uint64_t vo_thread_waits_add(VoThreadWaits *w, VoThreadWait *now, size_t n);
void vo_thread_waits_clear(VoThreadWaits *w);
