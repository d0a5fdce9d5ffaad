/* retention.c: the keep rules of scheduled snapshots and backups
 * (retention.h). Items are walked newest first; each period rule collects
 * period ids (local calendar day, ISO week, month) in a small array. */
#include "conf/retention.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

enum { UNDECIDED, KEEP, REMOVE };
enum { BY_DAY, BY_WEEK, BY_MONTH };

typedef struct {
    int64_t time;
    size_t index;
} Item;

static int newest_first(const void *a, const void *b)
{
    const Item *x = a, *y = b;
    if (x->time != y->time)
        return x->time > y->time ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The local day (YYYYMMDD), ISO week (YYYYWW of the ISO year) or month
 * (YYYYMM) of t. */
static int64_t period_of(int64_t t, int by)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm))
        return INT64_MIN;
    int64_t y = tm.tm_year + 1900;
    if (by == BY_DAY)
        return y * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
    if (by == BY_MONTH)
        return y * 100 + tm.tm_mon + 1;
    /* ISO 8601: weeks start on Monday; week 1 holds the year's first Thursday. */
    int wday = (tm.tm_wday + 6) % 7; /* Monday 0 */
    int thursday_yday = tm.tm_yday - wday + 3;
    int64_t iso_year = y;
    int year_days = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 366 : 365;
    if (thursday_yday < 0) {
        iso_year--;
        int prev_days = (iso_year % 4 == 0 && iso_year % 100 != 0) || iso_year % 400 == 0
                            ? 366 : 365;
        thursday_yday += prev_days;
    } else if (thursday_yday >= year_days) {
        iso_year++;
        thursday_yday -= year_days;
    }
    return iso_year * 100 + thursday_yday / 7 + 1;
}

static bool contains(const int64_t *set, size_t n, int64_t v)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == v)
            return true;
    return false;
}

/* One period rule over the items in order (newest first). */
static int apply_period_rule(const int64_t *times, const size_t *order, size_t n,
                             unsigned char *mark, unsigned count, int by)
{
    if (count == 0)
        return 0;
    int64_t *covered = malloc((n + 1) * sizeof(int64_t));
    int64_t *chosen = malloc((n + 1) * sizeof(int64_t));
    if (!covered || !chosen) {
        free(covered);
        free(chosen);
        return -ENOMEM;
    }
    size_t n_covered = 0, n_chosen = 0;
    for (size_t i = 0; i < n; i++)
        if (mark[order[i]] == KEEP)
            covered[n_covered++] = period_of(times[order[i]], by);
    for (size_t i = 0; i < n; i++) {
        size_t k = order[i];
        if (mark[k] != UNDECIDED)
            continue;
        int64_t p = period_of(times[k], by);
        if (contains(covered, n_covered, p))
            continue;
        if (contains(chosen, n_chosen, p)) {
            mark[k] = REMOVE; /* an older item of a period already kept */
            continue;
        }
        if (n_chosen >= count)
            break;
        chosen[n_chosen++] = p;
        mark[k] = KEEP;
    }
    free(covered);
    free(chosen);
    return 0;
}

int vo_retention_select(const int64_t *times, size_t n, const VoKeepRules *k, bool *ret_keep)
{
    if (n == 0)
        return 0;
    if (!k->last && !k->daily && !k->weekly && !k->monthly) {
        for (size_t i = 0; i < n; i++)
            ret_keep[i] = true;
        return 0;
    }
    size_t *order = malloc(n * sizeof(size_t));
    Item *items = malloc(n * sizeof(Item));
    unsigned char *mark = calloc(n, 1);
    if (!order || !items || !mark) {
        free(order);
        free(items);
        free(mark);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        items[i] = (Item){ times[i], i };
    qsort(items, n, sizeof(Item), newest_first);
    for (size_t i = 0; i < n; i++)
        order[i] = items[i].index;
    free(items);
    for (size_t i = 0; i < n && i < k->last; i++)
        mark[order[i]] = KEEP;
    int r = apply_period_rule(times, order, n, mark, k->daily, BY_DAY);
    if (r == 0)
        r = apply_period_rule(times, order, n, mark, k->weekly, BY_WEEK);
    if (r == 0)
        r = apply_period_rule(times, order, n, mark, k->monthly, BY_MONTH);
    for (size_t i = 0; r == 0 && i < n; i++)
        ret_keep[i] = mark[i] == KEEP;
    free(order);
    free(mark);
    return r;
}
