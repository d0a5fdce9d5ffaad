/* cron.c: five-field cron expressions and their next due time in local
 * time (cron.h). The walk goes over calendar days and wall-clock minutes
 * (pure date arithmetic) and asks libc only to turn a matching wall-clock
 * minute into an instant, so a sparse expression costs a few thousand
 * cheap day checks, never a walk over minutes. */
#include "conf/cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

typedef struct {
    const char *what; /* the field's name in messages */
    int min, max;
    const char *const *names; /* 3-letter names for min.., or NULL */
} Field;

static const char *const month_names[] = { "jan", "feb", "mar", "apr", "may", "jun",
                                           "jul", "aug", "sep", "oct", "nov", "dec", NULL };
static const char *const day_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL };

static const Field fields[5] = {
    { "minute", 0, 59, NULL },
    { "hour", 0, 23, NULL },
    { "day of month", 1, 31, NULL },
    { "month", 1, 12, month_names },
    { "day of week", 0, 7, day_names },
};

/* A number or (where the field has them) a name at *p; advances *p. */
static int parse_value(const Field *f, const char **p, int *ret)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s)) {
            v = v * 10 + (*s++ - '0');
            if (v > 1000)
                return -ERANGE;
        }
        if (v < f->min || v > f->max)
            return -ERANGE;
        *ret = (int)v;
        *p = s;
        return 0;
    }
    for (int i = 0; f->names && f->names[i]; i++)
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *ret = f->min + i;
            *p = s + 3;
            return 0;
        }
    return -EINVAL;
}

/* One field's text (no spaces) into the bit set *bits. */
static int parse_field(const Field *f, const char *text, uint64_t *bits, char **ret_error)
{
    uint64_t set = 0;
    const char *p = text;
    for (;;) {
        int lo, hi, step = 1;
        int r = 0;
        if (*p == '*') {
            lo = f->min;
            hi = f->max == 7 ? 6 : f->max;
            p++;
        } else {
            r = parse_value(f, &p, &lo);
            hi = lo;
            if (r == 0 && *p == '-') {
                p++;
                r = parse_value(f, &p, &hi);
            }
        }
        if (r == -ERANGE)
            return vo_error_set(ret_error, -EINVAL, "%s '%s': a value is outside %d-%d",
                                f->what, text, f->min, f->max);
        if (r < 0)
            return vo_error_set(ret_error, -EINVAL,
                                "%s '%s': expected a number%s, '*', a range a-b, a step /n or "
                                "a list a,b", f->what, text, f->names ? " or a name" : "");
        if (*p == '/') {
            p++;
            if (!isdigit((unsigned char)*p))
                return vo_error_set(ret_error, -EINVAL, "%s '%s': '/' needs a number after it",
                                    f->what, text);
            long s = 0;
            while (isdigit((unsigned char)*p) && s <= 1000)
                s = s * 10 + (*p++ - '0');
            if (s < 1 || s > f->max)
                return vo_error_set(ret_error, -EINVAL, "%s '%s': a step must be 1-%d",
                                    f->what, text, f->max);
            step = (int)s;
            if (lo == hi)  /* "5/15": from 5 to the field's end */
                hi = f->max == 7 ? 6 : f->max;
        }
        if (lo > hi)
            return vo_error_set(ret_error, -EINVAL, "%s '%s': a range's start is after its end",
                                f->what, text);
        for (int v = lo; v <= hi; v += step)
            set |= 1ull << (f->max == 7 && v == 7 ? 0 : v);
        if (*p == '\0')
            break;
        if (*p != ',')
            return vo_error_set(ret_error, -EINVAL, "%s '%s': unexpected '%c'", f->what, text,
                                *p);
        p++;
    }
    *bits = set;
    return 0;
}

int vo_cron_parse(const char *text, VoCron *ret, char **ret_error)
{
    if (!text || strlen(text) > VO_CRON_MAX_LEN)
        return vo_error_set(ret_error, -EINVAL, "cron expression: give 5 fields (minute hour "
                            "day-of-month month day-of-week) in at most %d characters",
                            VO_CRON_MAX_LEN);
    char buf[VO_CRON_MAX_LEN + 1];
    snprintf(buf, sizeof(buf), "%s", text);
    char *parts[6] = { 0 };
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (n == 5)
            return vo_error_set(ret_error, -EINVAL, "cron expression '%s': more than 5 fields "
                                "(minute hour day-of-month month day-of-week)", text);
        parts[n++] = t;
    }
    if (n != 5)
        return vo_error_set(ret_error, -EINVAL, "cron expression '%s': %d fields, expected 5 "
                            "(minute hour day-of-month month day-of-week)", text, n);
    uint64_t bits[5];
    for (int i = 0; i < 5; i++) {
        int r = parse_field(&fields[i], parts[i], &bits[i], ret_error);
        if (r < 0)
            return r;
    }
    VoCron c = {
        .minutes = bits[0],
        .hours = (uint32_t)bits[1],
        .mdays = (uint32_t)bits[2],
        .months = (uint32_t)bits[3],
        .wdays = (uint32_t)bits[4],
        .day_or = parts[2][0] != '*' && parts[4][0] != '*',
    };
    time_t next;
    if (vo_cron_next(&c, 946684800 /* 2000-01-01, a leap year follows */, &next) < 0)
        return vo_error_set(ret_error, -EINVAL, "cron expression '%s' is never due (no such "
                            "day)", text);
    *ret = c;
    return 0;
}

/* ---- calendar arithmetic (proleptic Gregorian) ---- */

static bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int month_days(int y, int m)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a date (y, m 1-12, d 1-31). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int weekday(int y, int m, int d)
{
    int64_t w = (days_from_civil(y, m, d) + 4) % 7; /* 1970-01-01 was a Thursday */
    return (int)(w < 0 ? w + 7 : w);
}

/* A wall-clock minute as one comparable number. */
static int64_t wall_key(int y, int mo, int d, int h, int mi)
{
    return ((((int64_t)y * 13 + mo) * 32 + d) * 24 + h) * 60 + mi;
}

static int64_t local_key(time_t t)
{
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return INT64_MIN;
    return wall_key(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
}

/* The instant a wall-clock minute is due: its first occurrence, or, when
 * the clock skips it, the first instant after the skip. -1: libc cannot
 * say (out of time_t's range). */
static time_t wall_instant(int y, int mo, int d, int h, int mi)
{
    int64_t want = wall_key(y, mo, d, h, mi);
    time_t found = -1, lo = -1, hi = -1;
    for (int dst = 0; dst <= 1; dst++) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                         .tm_min = mi, .tm_isdst = dst };
        time_t e = mktime(&tm);
        if (e == (time_t)-1)
            continue;
        int64_t k = local_key(e);
        if (k == want && (found == -1 || e < found))
            found = e;
        else if (k < want && (lo == -1 || e > lo))
            lo = e;
        else if (k > want && (hi == -1 || e < hi))
            hi = e;
    }
    if (found != -1)
        return found;
    if (hi == -1)
        return -1;
    if (lo == -1 || lo >= hi)
        return hi;
    /* A gap: the first second in (lo, hi] whose wall clock is past want. */
    while (hi - lo > 1) {
        time_t mid = lo + (hi - lo) / 2;
        if (local_key(mid) > want)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

static bool day_matches(const VoCron *c, int y, int m, int d)
{
    bool md = c->mdays & (1u << d), wd = c->wdays & (1u << weekday(y, m, d));
    return c->day_or ? (md || wd) : (md && wd);
}

#define SEARCH_DAYS (366 * 10)
/* Clock changes are at most this long: the walk starts this much before
 * `after` in wall-clock time so a minute a change moved is not missed. */
#define SHIFT_MARGIN_S (3 * 3600)

int vo_cron_next(const VoCron *c, time_t after, time_t *ret_next)
{
    time_t from = after - SHIFT_MARGIN_S;
    struct tm tm;
    if (!localtime_r(&from, &tm))
        return -ENOENT;
    int y = tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday;
    int64_t first_key = wall_key(y, m, d, tm.tm_hour, tm.tm_min);
    for (int i = 0; i < SEARCH_DAYS; i++) {
        if ((c->months & (1u << m)) && day_matches(c, y, m, d)) {
            for (int h = 0; h < 24; h++) {
                if (!(c->hours & (1u << h)))
                    continue;
                for (int mi = 0; mi < 60; mi++) {
                    if (!(c->minutes & (1ull << mi)) || wall_key(y, m, d, h, mi) < first_key)
                        continue;
                    time_t e = wall_instant(y, m, d, h, mi);
                    if (e != -1 && e > after) {
                        *ret_next = e;
                        return 0;
                    }
                }
            }
        }
        if (++d > month_days(y, m)) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    return -ENOENT;
}
