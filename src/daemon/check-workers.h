/* check-workers.h: checks that may hang, each on a detached thread of its
 * own: one per key at a time (a key whose last check still runs is not
 * checked again until it ends), at most max at once (max counts every
 * check running, of any caller). The iSCSI pools' reach (storage-reach.c)
 * and the probes of the VMs' targets (san-resume.c): a target that does
 * not answer (a login's timeout, 10 s) holds only its own next check. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Runs fn(arg) on a thread of its own: true; false (fn not called, arg
 * still the caller's) when key's check runs or max run. */
bool vo_check_workers_start(const char *key, size_t max, void (*fn)(void *arg), void *arg);
/* Until none runs (vireod's stop, after the rounds that start them). */
void vo_check_workers_wait(void);
