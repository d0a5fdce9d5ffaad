/* ha-plan.c: the pure parts of HA recovery (ha-plan.h). */
#include "cluster/ha-plan.h"

#include <stdlib.h>
#include <string.h>

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

/* The restarts within the window before now_ms, oldest first: the newest
 * n_max of them into out. */
static size_t recent_times(json_t *restarts, int64_t now_ms, int64_t *out, size_t n_max)
{
    size_t n = 0, i;
    json_t *v;
    int64_t *all = vo_malloc0(sizeof(*all) * (json_array_size(restarts) + 1));
    json_array_foreach(restarts, i, v) {
        int64_t at = json_integer_value(v);
        /* Out of the window: not counted. Ahead of now (another host's
         * clock, a little ahead): counts as now, so a small skew frees no
         * budget; more than a window ahead is no time of a restart. */
        if (json_is_integer(v) && now_ms - at < VO_HA_WINDOW_MS && at - now_ms < VO_HA_WINDOW_MS)
            all[n++] = at < now_ms ? at : now_ms;
    }
    qsort(all, n, sizeof(*all), cmp_time);
    size_t first = n > n_max ? n - n_max : 0;
    memcpy(out, all + first, sizeof(*out) * (n - first));
    free(all);
    return n - first;
}

unsigned vo_ha_restarts_recent(json_t *restarts, int64_t now_ms)
{
    int64_t at[VO_HA_MAX_RESTARTS + 1];
    return (unsigned)recent_times(restarts, now_ms, at, VO_HA_MAX_RESTARTS + 1);
}

bool vo_ha_restarts_allow(json_t *restarts, int64_t now_ms, int64_t *ret_next_ms)
{
    int64_t at[VO_HA_MAX_RESTARTS];
    size_t n = recent_times(restarts, now_ms, at, VO_HA_MAX_RESTARTS);
    bool ok = n < VO_HA_MAX_RESTARTS;
    if (ret_next_ms)
        *ret_next_ms = ok ? 0 : at[0] + VO_HA_WINDOW_MS;
    return ok;
}

json_t *vo_ha_restarts_add(json_t *restarts, int64_t now_ms)
{
    int64_t at[VO_HA_MAX_RESTARTS];
    size_t n = recent_times(restarts, now_ms, at, VO_HA_MAX_RESTARTS);
    if (n == VO_HA_MAX_RESTARTS) { /* the oldest goes */
        memmove(at, at + 1, sizeof(*at) * (n - 1));
        n--;
    }
    at[n++] = now_ms;
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, json_integer(at[i]));
    return out;
}

int64_t vo_ha_retry_delay(json_t *restarts, unsigned failures, int64_t now_ms)
{
    if (!vo_ha_restarts_allow(restarts, now_ms, NULL))
        return -1;
    int64_t delay = VO_HA_RETRY_FIRST_MS;
    for (unsigned i = 1; i < failures && delay < VO_HA_RETRY_MAX_MS; i++)
        delay *= 2;
    return delay < VO_HA_RETRY_MAX_MS ? delay : VO_HA_RETRY_MAX_MS;
}
