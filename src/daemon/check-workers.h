/* check-workers.h: checks that may hang, each on a detached thread of its
 * own: one per key at a time (a key whose last check still runs is not
 * checked again until it ends), at most max of a group at once. The groups
 * are the callers: the iSCSI pools' reach (storage-reach.c) and the probes
 * of the VMs' targets (san-resume.c); neither's checks take the other's
 * turns or hold the other's stop. A target that does not answer (a login's
 * timeout, 10 s) holds only its own next check. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The groups. */
#define VO_CHECKS_ISCSI_REACH "iscsi-reach"
#define VO_CHECKS_SAN_PROBE "san-probe"

/* Runs fn(arg) on a thread of its own: true; false (fn not called, arg
 * still the caller's) when group's check of key runs or max of group's run. */
bool vo_check_workers_start(const char *group, const char *key, size_t max,
                            void (*fn)(void *arg), void *arg);
/* Until none of group's runs (its caller's stop, after the rounds that start
 * them: another group's checks, still started meanwhile, are not waited for). */
void vo_check_workers_wait(const char *group);
