/* cluster-follow.h: the host's one watch on the store's cluster/ prefix,
 * shared by everything that keeps what it read there. pool-watch.c's
 * thread holds the watch (it applies the shared pools' changes itself);
 * it tells each follower here when a key it wants changed, and all of
 * them when the watch was opened or lost. A follower then reads the store
 * again only when something it wants changed, or every
 * VO_CLUSTER_FOLLOW_RECHECK_MS as a safety net, instead of on every round
 * (docs/benchmarks.md, "An idle cluster's CPU"): the cluster networks'
 * reconcile, the DRS settings, the schedules.
 *
 * The rule that makes a kept copy safe: take a mark before reading the
 * store; the copy is current for as long as vo_cluster_follow_unchanged()
 * says so for that mark. It says no while no watch is open (a follower
 * then reads on every round, as without the watch), after the watch was
 * opened again (changes made while it was down were not seen) and after
 * any change of a key the follower wants that came after the mark (or a
 * little before: one read too many, never one too few). */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* The safety recheck: a follower reads again at least this often. */
#define VO_CLUSTER_FOLLOW_RECHECK_MS 60000

typedef struct VoClusterFollower {
    /* Whether a change of this key (the whole key, "cluster/...") concerns
     * the follower. */
    bool (*wants)(const char *key);
    /* Optional: called (on the watch's thread, quickly: set a flag, signal
     * a condition) after a change it wants, and when the watch was opened
     * or lost. */
    void (*wake)(void);
    /* Below: the hub's. */
    atomic_uint_fast64_t changes;
    struct VoClusterFollower *next;
    bool added;
} VoClusterFollower;

/* Adds a follower (static storage; it stays for the process's life).
 * Adding it twice is harmless. */
void vo_cluster_follow_add(VoClusterFollower *f);
/* Taken before reading what the follower keeps. */
uint64_t vo_cluster_follow_mark(VoClusterFollower *f);
/* Whether what was read after `mark` is still current (see above). */
bool vo_cluster_follow_unchanged(VoClusterFollower *f, uint64_t mark);
/* Whether a copy read at at_ms (vo_now_ms(); 0: none kept) after `mark`
 * may be used again: unchanged, and younger than the safety recheck. */
bool vo_cluster_follow_keep(VoClusterFollower *f, uint64_t mark, int64_t at_ms);

/* For the watch's holder (pool-watch.c). */
void vo_cluster_follow_opened(void);
void vo_cluster_follow_changed(const char *key);
void vo_cluster_follow_lost(void);
