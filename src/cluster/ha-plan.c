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

static const VoHaRestarts *find(const VoHaLimiter *l, const char *vm_id)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->vms[i].vm_id, vm_id))
            return &l->vms[i];
    return NULL;
}

bool vo_ha_limiter_allows(const VoHaLimiter *l, const char *vm_id, int64_t now_ms,
                          int64_t *ret_next_ms)
{
    const VoHaRestarts *r = find(l, vm_id);
    size_t recent = 0;
    int64_t oldest = INT64_MAX;
    for (size_t i = 0; r && i < r->n; i++)
        if (now_ms - r->at[i] < VO_HA_WINDOW_MS) {
            recent++;
            if (r->at[i] < oldest)
                oldest = r->at[i];
        }
    bool ok = recent < VO_HA_MAX_RESTARTS;
    if (ret_next_ms)
        *ret_next_ms = ok ? 0 : oldest + VO_HA_WINDOW_MS;
    return ok;
}

void vo_ha_limiter_record(VoHaLimiter *l, const char *vm_id, int64_t now_ms)
{
    VoHaRestarts *r = (VoHaRestarts *)find(l, vm_id);
    if (!r) {
        l->vms = realloc(l->vms, sizeof(*l->vms) * (l->n + 1));
        if (!l->vms)
            abort();
        r = &l->vms[l->n++];
        *r = (VoHaRestarts){ .vm_id = vo_strdup(vm_id) };
    }
    if (r->n == VO_HA_MAX_RESTARTS) { /* the oldest goes */
        size_t oldest = 0;
        for (size_t i = 1; i < r->n; i++)
            if (r->at[i] < r->at[oldest])
                oldest = i;
        r->at[oldest] = now_ms;
        return;
    }
    r->at[r->n++] = now_ms;
}

void vo_ha_limiter_clear(VoHaLimiter *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->vms[i].vm_id);
    free(l->vms);
    *l = (VoHaLimiter){ 0 };
}

int64_t vo_ha_retry_delay(const VoHaLimiter *l, const char *vm_id, unsigned failures,
                          int64_t now_ms)
{
    if (!vo_ha_limiter_allows(l, vm_id, now_ms, NULL))
        return -1;
    int64_t delay = VO_HA_RETRY_FIRST_MS;
    for (unsigned i = 1; i < failures && delay < VO_HA_RETRY_MAX_MS; i++)
        delay *= 2;
    return delay < VO_HA_RETRY_MAX_MS ? delay : VO_HA_RETRY_MAX_MS;
}
