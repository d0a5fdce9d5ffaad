/* cron.h: five-field cron expressions (minute hour day-of-month month
 * day-of-week, the standard meaning: '*', numbers, ranges 'a-b', steps
 * '/n', lists 'a,b', month and day names) and their due times in the
 * host's local time zone. Pure: no I/O, no clock; the zone is libc's (TZ).
 *
 * Daylight saving: a wall-clock time that does not exist (the hour skipped
 * in spring) is due once, at the first instant after the gap; a time that
 * happens twice (the hour repeated in autumn) is due once, at its first
 * occurrence. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Bit sets of the allowed values of each field. */
typedef struct {
    uint64_t minutes; /* bit 0-59 */
    uint32_t hours;   /* bit 0-23 */
    uint32_t mdays;   /* bit 1-31 */
    uint32_t months;  /* bit 1-12 */
    uint32_t wdays;   /* bit 0-6, Sunday 0 (7 is read as Sunday too) */
    /* Both day fields restricted (neither starts with '*'): a day matches
     * when either matches, as in cron(8); else both must. */
    bool day_or;
} VoCron;

/* The longest expression accepted (longer: refused). */
#define VO_CRON_MAX_LEN 256

/* 0, or -EINVAL with *ret_error (malloc'd, may be NULL) naming the field and
 * what is wrong. An expression that can never be due (30 2 *: February
 * 30th) is refused too. */
int vo_cron_parse(const char *text, VoCron *ret, char **ret_error);

/* The first due time strictly after `after` (unix seconds): 0 and
 * *ret_next, or -ENOENT when none in the next ten years. */
int vo_cron_next(const VoCron *c, time_t after, time_t *ret_next);
