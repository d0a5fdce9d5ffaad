/* ha-plan.c: the pure parts of HA recovery (ha-plan.h). */
#include "cluster/ha-plan.h"

#include <stdlib.h>
#include <string.h>

#include "util/time-format.h"
#include "util/util.h"

bool vo_ha_wanted(json_t *vm_doc)
{
    if (!json_is_true(json_object_get(vm_doc, "ha")))
        return false;
    const char *state = json_string_value(
        json_object_get(json_object_get(vm_doc, "status"), "state"));
    if (state && !strcmp(state, "crashed") && json_is_true(json_object_get(vm_doc, "ha_landed")))
        return true; /* moved here by a recovery, its host died before it started it */
    if (state && (!strcmp(state, "crashed") || !strcmp(state, "stopped")) &&
        json_is_true(json_object_get(vm_doc, VO_HA_START_FAILED_FIELD)))
        return true; /* its HA start failed here; its host died before trying again */
    return state && (!strcmp(state, "running") || !strcmp(state, "paused") ||
                     !strcmp(state, "starting"));
}

int vo_ha_priority(json_t *vm_doc)
{
    json_t *p = json_object_get(vm_doc, "ha_priority");
    return json_is_integer(p) ? (int)json_integer_value(p) : 0;
}

static int cmp_candidate(const void *a, const void *b)
{
    const VoHaCandidate *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    int r = strcmp(x->name ? x->name : "", y->name ? y->name : "");
    return r ? r : strcmp(x->vm_id ? x->vm_id : "", y->vm_id ? y->vm_id : "");
}

void vo_ha_order(VoHaCandidate *c, size_t n)
{
    if (n > 1)
        qsort(c, n, sizeof(*c), cmp_candidate);
}

static int cmp_time(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

char *vo_ha_limit_text(const VoHaLimit *limit)
{
    long long minutes = (long long)(limit->window_ms / 60000);
    return vo_asprintf("at most %u HA restart%s within %lld minute%s", limit->max_restarts,
                       limit->max_restarts == 1 ? "" : "s", minutes, minutes == 1 ? "" : "s");
}

char *vo_ha_times_text(unsigned n)
{
    return vo_asprintf("%u time%s", n, n == 1 ? "" : "s");
}

/* The restarts within limit's window before now_ms, oldest first (a new
 * array, *ret_n of them: the caller frees it). */
static int64_t *recent_times(json_t *restarts, int64_t now_ms, const VoHaLimit *limit,
                             size_t *ret_n)
{
    size_t n = 0, i;
    json_t *v;
    int64_t *all = vo_malloc0(sizeof(*all) * (json_array_size(restarts) + 1));
    json_array_foreach(restarts, i, v) {
        int64_t at = json_integer_value(v);
        /* Out of the window: not counted. Ahead of now (another host's
         * clock, a little ahead): counts as now, so a small skew frees no
         * budget; more than a window ahead is no time of a restart. */
        if (json_is_integer(v) && now_ms - at < limit->window_ms &&
            at - now_ms < limit->window_ms)
            all[n++] = at < now_ms ? at : now_ms;
    }
    qsort(all, n, sizeof(*all), cmp_time);
    *ret_n = n;
    return all;
}

json_t *vo_ha_restarts_json(json_t *restarts)
{
    json_t *out = json_array(), *t;
    size_t i;
    json_array_foreach(restarts, i, t)
        if (json_is_integer(t))
            json_array_append_new(out, vo_time_json(json_integer_value(t)));
    return out;
}

unsigned vo_ha_restarts_recent(json_t *restarts, int64_t now_ms, const VoHaLimit *limit)
{
    size_t n;
    free(recent_times(restarts, now_ms, limit, &n));
    return (unsigned)n;
}

bool vo_ha_restarts_allow(json_t *restarts, int64_t now_ms, const VoHaLimit *limit,
                          int64_t *ret_next_ms)
{
    size_t n;
    int64_t *at = recent_times(restarts, now_ms, limit, &n);
    bool ok = n < limit->max_restarts;
    /* Allowed again once all but max_restarts - 1 of them have left the
     * window: when the oldest of the newest max_restarts does (a limit of
     * 0, which the setting never holds: a window from now). */
    if (ret_next_ms)
        *ret_next_ms = ok ? 0
            : (limit->max_restarts ? at[n - limit->max_restarts] : now_ms) + limit->window_ms;
    free(at);
    return ok;
}

json_t *vo_ha_restarts_add(json_t *restarts, int64_t now_ms)
{
    /* What the widest limit the setting allows counts: kept by the limit
     * in force, a count made under a lower limit or a shorter window would
     * miss starts once the setting is raised. */
    static const VoHaLimit widest = { .max_restarts = VO_HA_MAX_RESTARTS_MAX,
                                      .window_ms = VO_HA_WINDOW_MINUTES_MAX * 60000LL };
    size_t n;
    int64_t *at = recent_times(restarts, now_ms, &widest, &n);
    /* The newest max_restarts - 1 of them (the oldest go), then now_ms. */
    size_t keep = widest.max_restarts - 1;
    size_t first = n > keep ? n - keep : 0;
    json_t *out = json_array();
    for (size_t i = first; i < n; i++)
        json_array_append_new(out, json_integer(at[i]));
    json_array_append_new(out, json_integer(now_ms));
    free(at);
    return out;
}

int64_t vo_ha_retry_delay(json_t *restarts, unsigned failures, int64_t now_ms,
                          const VoHaLimit *limit)
{
    if (!vo_ha_restarts_allow(restarts, now_ms, limit, NULL))
        return -1;
    int64_t delay = VO_HA_RETRY_FIRST_MS;
    for (unsigned i = 1; i < failures && delay < VO_HA_RETRY_MAX_MS; i++)
        delay *= 2;
    return delay < VO_HA_RETRY_MAX_MS ? delay : VO_HA_RETRY_MAX_MS;
}
