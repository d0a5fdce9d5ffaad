/* quota.h: a project's quotas and what its VMs use (docs/projects.md): the
 * arithmetic of "does this change fit", pure and unit-tested
 * (tests/unit/test-quota.c). The daemon's side, which reads the project and
 * its usage from the store and commits under compare-and-swap, is
 * daemon/projects.c. */
#pragma once

#include <jansson.h>
#include <stdint.h>

/* Amounts of what a quota limits. As limits: -1 (VO_QUOTA_UNLIMITED) for
 * no limit. As usage: what a VM reserves (it counts its maximums, what it
 * may grow to by hot-plug, so a hot-plug never needs more than it holds)
 * or a project's sum. */
#define VO_QUOTA_UNLIMITED (-1)
typedef struct {
    int64_t vcpus;
    int64_t memory_mib;
    int64_t vms;
    int64_t disk_bytes; /* the virtual sizes of the VMs' disks */
} VoQuota;

typedef enum {
    VO_QUOTA_VCPUS,
    VO_QUOTA_MEMORY,
    VO_QUOTA_VMS,
    VO_QUOTA_DISK,
    _VO_QUOTA_MAX
} VoQuotaKind;
/* "vcpus", "memory_mib", "vms", "disk_bytes": the JSON names of limits and
 * usage. */
const char *vo_quota_name(VoQuotaKind k);
int64_t vo_quota_get(const VoQuota *q, VoQuotaKind k);
void vo_quota_set(VoQuota *q, VoQuotaKind k, int64_t value);

/* No limits. */
void vo_quota_unlimited(VoQuota *q);
/* used += add (component-wise). */
void vo_quota_add(VoQuota *used, const VoQuota *add);

/* Whether one VM's change from before to after (before all zeros: a new VM
 * or one moved in) fits project's limits, others the project's use without
 * that VM: a kind is refused only when the change raises it and others +
 * after exceeds its limit (a limit lowered below the use stops growth, it
 * never refuses what shrinks or stays). 0, or -VO_EQUOTA with *ret_error:
 * "project 'P': quota vcpus is 4 (3 in use); this needs 2". */
int vo_quota_check(const char *project, const VoQuota *limits, const VoQuota *others,
                   const VoQuota *before, const VoQuota *after, char **ret_error);

/* The limits of a project document's "quotas" object ({"vcpus": 8, ...};
 * absent kinds unlimited); -EINVAL with *ret_error for a negative number or
 * an unknown key. */
int vo_quota_from_json(json_t *obj, VoQuota *ret, char **ret_error);
/* {"vcpus": N, ...}; with limits, unlimited kinds left out. */
json_t *vo_quota_to_json(const VoQuota *q, int limits);
