/* retention.h: which of a schedule's snapshots or backups to keep (keep-last,
 * keep-daily, keep-weekly, keep-monthly), with the meaning of Proxmox's
 * prune options: the rules apply in that order, each to what the earlier
 * ones left; a period rule keeps the newest item of each of the newest N
 * periods (local days, ISO weeks, months) not already holding a kept item.
 * With every rule 0 everything is kept. Pure: no clock, no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    unsigned last, daily, weekly, monthly;
} VoKeepRules;

/* The most each rule may ask for. */
#define VO_KEEP_MAX 10000

/* times: n instants (unix seconds, any order); sets ret_keep[i] for each to
 * keep, clears it for each to remove. 0, or -ENOMEM. */
int vo_retention_select(const int64_t *times, size_t n, const VoKeepRules *k, bool *ret_keep);
