/* quota.c: a project's quota arithmetic (quota.h): the check of one VM's
 * change against the limits, and limits to and from JSON. */
#include "conf/quota.h"

#include <errno.h>
#include <string.h>

#include "util/util.h"
#include "vireo/errors.h"

static const char *const kind_names[] = { "vcpus", "memory_mib", "vms", "disk_bytes" };
_Static_assert(ELEMENTSOF(kind_names) == _VO_QUOTA_MAX, "kind_names out of date");

const char *vo_quota_name(VoQuotaKind k)
{
    return k < _VO_QUOTA_MAX ? kind_names[k] : "?";
}

int64_t vo_quota_get(const VoQuota *q, VoQuotaKind k)
{
    switch (k) {
    case VO_QUOTA_VCPUS:
        return q->vcpus;
    case VO_QUOTA_MEMORY:
        return q->memory_mib;
    case VO_QUOTA_DISK:
        return q->disk_bytes;
    default:
        return q->vms;
    }
}

void vo_quota_set(VoQuota *q, VoQuotaKind k, int64_t value)
{
    if (k == VO_QUOTA_VCPUS)
        q->vcpus = value;
    else if (k == VO_QUOTA_MEMORY)
        q->memory_mib = value;
    else if (k == VO_QUOTA_DISK)
        q->disk_bytes = value;
    else
        q->vms = value;
}

void vo_quota_unlimited(VoQuota *q)
{
    for (int k = 0; k < _VO_QUOTA_MAX; k++)
        vo_quota_set(q, (VoQuotaKind)k, VO_QUOTA_UNLIMITED);
}

void vo_quota_add(VoQuota *used, const VoQuota *add)
{
    for (int k = 0; k < _VO_QUOTA_MAX; k++)
        vo_quota_set(used, (VoQuotaKind)k,
                     vo_quota_get(used, (VoQuotaKind)k) + vo_quota_get(add, (VoQuotaKind)k));
}

int vo_quota_check(const char *project, const VoQuota *limits, const VoQuota *others,
                   const VoQuota *before, const VoQuota *after, char **ret_error)
{
    for (int k = 0; k < _VO_QUOTA_MAX; k++) {
        int64_t limit = vo_quota_get(limits, (VoQuotaKind)k);
        int64_t was = vo_quota_get(before, (VoQuotaKind)k);
        int64_t will = vo_quota_get(after, (VoQuotaKind)k);
        int64_t used = vo_quota_get(others, (VoQuotaKind)k);
        if (limit < 0 || will <= was || used + will <= limit)
            continue;
        return vo_error_set(ret_error, -VO_EQUOTA, "project '%s': quota %s is %lld (%lld in use); "
                            "this needs %lld%s", project, kind_names[k], (long long)limit,
                            (long long)(used + was), (long long)(will - was),
                            was ? " more" : "");
    }
    return 0;
}

int vo_quota_from_json(json_t *obj, VoQuota *ret, char **ret_error)
{
    vo_quota_unlimited(ret);
    if (!obj)
        return 0;
    if (!json_is_object(obj))
        return vo_error_set(ret_error, -EINVAL, "quotas: an object such as {\"vcpus\": 8}");
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        int k = 0;
        while (k < _VO_QUOTA_MAX && strcmp(key, kind_names[k]))
            k++;
        if (k == _VO_QUOTA_MAX)
            return vo_error_set(ret_error, -EINVAL, "quotas: unknown quota '%s' (vcpus, "
                                "memory_mib, vms, disk_bytes)", key);
        if (json_is_null(value))
            continue; /* unlimited */
        if (!json_is_integer(value) || json_integer_value(value) < 0)
            return vo_error_set(ret_error, -EINVAL, "quotas.%s: a number >= 0, or null for no "
                                "limit", key);
        vo_quota_set(ret, (VoQuotaKind)k, json_integer_value(value));
    }
    return 0;
}

json_t *vo_quota_to_json(const VoQuota *q, int limits)
{
    json_t *o = json_object();
    for (int k = 0; k < _VO_QUOTA_MAX; k++) {
        int64_t v = vo_quota_get(q, (VoQuotaKind)k);
        if (!limits || v >= 0)
            json_object_set_new(o, kind_names[k], json_integer(v));
    }
    return o;
}
