/* placement.c: the placement function (see placement.h): filter every host
 * with one reason per host left out, apply the VM's group, weigh what is
 * left (spread or pack, ties by host name), and the message naming why no
 * host fits. Pure: no I/O, no clock, no locks. */
#include "cluster/placement.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "util/util.h"

const char *vo_place_firmware_needed(VoFirmware fw, bool secure_boot)
{
    if (fw != VO_FIRMWARE_UEFI)
        return NULL;
    return secure_boot ? "uefi-secure-boot" : "uefi";
}

bool vo_place_firmware_ok(char *const *firmware, const char *needed)
{
    if (!needed)
        return true;
    for (size_t i = 0; firmware && firmware[i]; i++)
        if (!strcmp(firmware[i], needed))
            return true;
    return false;
}

static const char *const host_state_names[] = { "online", "offline", "maintenance", "fenced" };
static const char *const place_policy_names[] = { "spread", "pack" };
static const char *const group_policy_names[] = { "spread", "together" };
_Static_assert(ELEMENTSOF(host_state_names) == _VO_HOST_STATE_MAX, "host state names");
_Static_assert(ELEMENTSOF(place_policy_names) == _VO_PLACE_POLICY_MAX, "policy names");
_Static_assert(ELEMENTSOF(group_policy_names) == _VO_GROUP_POLICY_MAX, "group policy names");

static int name_lookup(const char *const *names, size_t n, const char *s, int *ret)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcmp(s, names[i])) {
            *ret = (int)i;
            return 0;
        }
    return -EINVAL;
}

const char *vo_host_state_to_string(VoHostState s)
{
    return (unsigned)s < _VO_HOST_STATE_MAX ? host_state_names[s] : NULL;
}

int vo_host_state_from_string(const char *s, VoHostState *ret)
{
    int i, r = name_lookup(host_state_names, ELEMENTSOF(host_state_names), s, &i);
    if (r == 0)
        *ret = (VoHostState)i;
    return r;
}

const char *vo_place_policy_to_string(VoPlacePolicy p)
{
    return (unsigned)p < _VO_PLACE_POLICY_MAX ? place_policy_names[p] : NULL;
}

int vo_place_policy_from_string(const char *s, VoPlacePolicy *ret)
{
    int i, r = name_lookup(place_policy_names, ELEMENTSOF(place_policy_names), s, &i);
    if (r == 0)
        *ret = (VoPlacePolicy)i;
    return r;
}

const char *vo_group_policy_to_string(VoGroupPolicy p)
{
    return (unsigned)p < _VO_GROUP_POLICY_MAX ? group_policy_names[p] : NULL;
}

int vo_group_policy_from_string(const char *s, VoGroupPolicy *ret)
{
    int i, r = name_lookup(group_policy_names, ELEMENTSOF(group_policy_names), s, &i);
    if (r == 0)
        *ret = (VoGroupPolicy)i;
    return r;
}

void vo_place_host_clear(VoPlaceHost *h)
{
    free(h->id);
    free(h->name);
    free(h->cpu_model);
    vo_strv_free(h->cpu_flags);
    vo_strv_free(h->pools);
    vo_strv_free(h->firmware);
    vo_strv_free(h->networks);
    *h = (VoPlaceHost){ 0 };
}

void vo_place_snapshot_clear(VoPlaceSnapshot *snap)
{
    for (size_t i = 0; i < snap->n_hosts; i++)
        vo_place_host_clear(&snap->hosts[i]);
    free(snap->hosts);
    *snap = (VoPlaceSnapshot){ 0 };
}

void vo_place_request_clear(VoPlaceRequest *req)
{
    free(req->cpu_model);
    vo_strv_free(req->cpu_flags);
    free(req->cpu_host_model);
    vo_strv_free(req->pools);
    free(req->group);
    for (size_t i = 0; i < req->n_group_hosts; i++)
        free(req->group_hosts[i].host_id);
    free(req->group_hosts);
    free(req->host);
    vo_strv_free(req->exclude);
    vo_strv_free(req->networks);
    *req = (VoPlaceRequest){ 0 };
}

void vo_place_result_clear(VoPlaceResult *res)
{
    free(res->verdicts);
    *res = (VoPlaceResult){ .host = -1, .pinned = -1 };
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void vo_place_strv_sort(char **v)
{
    size_t n = vo_strv_len(v);
    if (n < 2)
        return;
    qsort(v, n, sizeof(char *), str_cmp);
    size_t j = 1;
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(v[i], v[j - 1]))
            free(v[i]);
        else
            v[j++] = v[i];
    }
    v[j] = NULL;
}

/* s in the sorted strv v of length n. */
static bool sorted_has(char *const *v, size_t n, const char *s)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid], s);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* A growing string: what the reasons are built in. */
typedef struct {
    char *s;
    size_t len, cap;
} Buf;

static void buf_add(Buf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s)
            abort();
    }
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

/* At most this many items are named in a reason; the rest are counted. */
#define MAX_NAMED 8

/* Appends the items of the sorted strv want missing from the sorted strv
 * have (comma-separated; past MAX_NAMED, " and N more"); their number. */
static size_t add_missing(Buf *b, char *const *want, char *const *have)
{
    size_t n_have = vo_strv_len(have), found = 0;
    for (size_t i = 0; want && want[i]; i++) {
        if (sorted_has(have, n_have, want[i]))
            continue;
        if (found++ >= MAX_NAMED)
            continue;
        if (found > 1)
            buf_add(b, ",");
        buf_add(b, want[i]);
    }
    if (found > MAX_NAMED) {
        char more[48];
        snprintf(more, sizeof(more), " and %zu more", found - MAX_NAMED);
        buf_add(b, more);
    }
    return found;
}

/* Every item of the sorted strv want is in the sorted strv have: the check
 * that comes first, so that a host that fits costs no allocation. */
static bool has_all(char *const *want, char *const *have)
{
    if (!want || !want[0])
        return true;
    size_t n_have = vo_strv_len(have);
    for (size_t i = 0; want[i]; i++)
        if (!sorted_has(have, n_have, want[i]))
            return false;
    return true;
}

bool vo_place_strv_has_all(char *const *want, char *const *have)
{
    return has_all(want, have);
}

bool vo_place_networks_ok(char *const *networks, char *const *want)
{
    return !networks || has_all(want, networks);
}

bool vo_place_pools_ok(char *const *pools, char *const *want)
{
    return !pools || has_all(want, pools);
}

char **vo_place_networks_needed(const char *const *nic_networks, size_t n)
{
    char **v = NULL;
    for (size_t i = 0; i < n; i++)
        if (nic_networks[i] && strcmp(nic_networks[i], "user"))
            vo_strv_push(&v, vo_strdup(nic_networks[i]));
    if (v)
        vo_place_strv_sort(v);
    return v;
}

char **vo_place_pools_needed(const char *const *names, size_t n, const char *default_pool,
                             bool (*copied)(const char *pool, void *userdata), void *userdata)
{
    char **v = NULL;
    vo_strv_push(&v, vo_strdup(default_pool));
    for (size_t i = 0; i < n; i++) {
        const char *slash = names[i] ? strchr(names[i], '/') : NULL;
        char *pool = !names[i] ? NULL
                     : slash   ? vo_asprintf("%.*s", (int)(slash - names[i]), names[i])
                               : vo_strdup(names[i]);
        if (!pool || !*pool || (copied && copied(pool, userdata)))
            free(pool);
        else
            vo_strv_push(&v, pool);
    }
    vo_place_strv_sort(v);
    return v;
}

/* Two sorted strv hold the same items (NULL: none). */
static bool sorted_equal(char *const *a, char *const *b)
{
    size_t i = 0;
    for (; a && a[i] && b && b[i]; i++)
        if (strcmp(a[i], b[i]))
            return false;
    return !(a && a[i]) && !(b && b[i]);
}

/* "1.0", "4.0", "1.25": a ratio as the reasons show it. */
static void format_ratio(double r, char out[32])
{
    if (r * 10 == floor(r * 10))
        snprintf(out, 32, "%.1f", r);
    else
        snprintf(out, 32, "%g", r);
}

/* floor(n * ratio), clamped to 0..UINT64_MAX (NaN: 0). */
static uint64_t capacity(uint64_t n, double ratio)
{
    double c = floor((double)n * ratio);
    if (!(c > 0))
        return 0;
    return c >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)c;
}

/* The CPU rules: VO_PLACE_FITS or why not. */
VoPlaceWhy vo_place_cpu_check(const VoPlaceHost *h, const VoPlaceRequest *req)
{
    if (!req->cpu_model)
        return VO_PLACE_FITS;
    if (!strcmp(req->cpu_model, "host")) {
        if (!req->cpu_host_model)
            return VO_PLACE_FITS;
        if (strcmp(h->cpu_model ? h->cpu_model : "", req->cpu_host_model))
            return VO_PLACE_CPU_MODEL;
        if (sorted_equal(req->cpu_flags, h->cpu_flags))
            return VO_PLACE_FITS;
        return has_all(req->cpu_flags, h->cpu_flags) ? VO_PLACE_CPU_FLAGS_EXTRA
                                                     : VO_PLACE_CPU_FLAGS_MISSING;
    }
    return has_all(req->cpu_flags, h->cpu_flags) ? VO_PLACE_FITS : VO_PLACE_CPU_FLAGS_MISSING;
}

uint64_t vo_place_memory_free(const VoPlaceHost *h)
{
    uint64_t cap = capacity(h->memory_mib, h->mem_ratio);
    return cap > h->committed_memory_mib ? cap - h->committed_memory_mib : 0;
}

uint64_t vo_place_vcpus_free(const VoPlaceHost *h)
{
    uint64_t cap = capacity(h->cpus, h->cpu_ratio);
    return cap > h->committed_vcpus ? cap - h->committed_vcpus : 0;
}

/* Whether the request excludes host h (by id). */
static bool excluded(const VoPlaceHost *h, const VoPlaceRequest *req)
{
    for (size_t i = 0; h->id && req->exclude && req->exclude[i]; i++)
        if (!strcmp(req->exclude[i], h->id))
            return true;
    return false;
}

/* What the group of the request means for the hosts: members per host. */
typedef struct {
    unsigned *counts;  /* per host of the snapshot, NULL when no member anywhere */
    const char *home;  /* together: the name (or id) of the host holding most members */
} GroupView;

static int group_host_cmp(const void *a, const void *b)
{
    return strcmp(((const VoPlaceGroupHost *)a)->host_id, ((const VoPlaceGroupHost *)b)->host_id);
}

static void group_view(const VoPlaceSnapshot *snap, const VoPlaceRequest *req, GroupView *g)
{
    *g = (GroupView){ 0 };
    size_t n = 0;
    for (size_t i = 0; req->group && i < req->n_group_hosts; i++)
        n += req->group_hosts[i].count > 0 && req->group_hosts[i].host_id;
    if (n == 0)
        return;
    /* Sorted copy of the member hosts, looked up per host: n log n + H log n. */
    _cleanup_free_ VoPlaceGroupHost *sorted = vo_malloc0(n * sizeof(*sorted));
    n = 0;
    for (size_t i = 0; i < req->n_group_hosts; i++)
        if (req->group_hosts[i].count > 0 && req->group_hosts[i].host_id)
            sorted[n++] = req->group_hosts[i];
    qsort(sorted, n, sizeof(*sorted), group_host_cmp);
    g->counts = vo_malloc0(snap->n_hosts * sizeof(unsigned));
    for (size_t i = 0; i < snap->n_hosts; i++) {
        if (!snap->hosts[i].id)
            continue;
        VoPlaceGroupHost key = { .host_id = snap->hosts[i].id };
        const VoPlaceGroupHost *m = bsearch(&key, sorted, n, sizeof(*sorted), group_host_cmp);
        g->counts[i] = m ? m->count : 0;
    }
    /* The home of a together group: most members, then the smaller id. */
    const VoPlaceGroupHost *home = &sorted[0];
    for (size_t i = 1; i < n; i++)
        if (sorted[i].count > home->count)
            home = &sorted[i];
    g->home = home->host_id;
    for (size_t i = 0; i < snap->n_hosts; i++)
        if (snap->hosts[i].id && snap->hosts[i].name && !strcmp(snap->hosts[i].id, home->host_id))
            g->home = snap->hosts[i].name;
}

/* Whether host i can take the VM: every rule but the spread group's
 * preference, which weighs hosts against each other. No allocation: the
 * words come later, from vo_place_reason. */
static VoPlaceVerdict host_verdict(const VoPlaceSnapshot *snap, size_t i, const VoPlaceRequest *req,
                                   const GroupView *g)
{
    const VoPlaceHost *h = &snap->hosts[i];
    if (excluded(h, req))
        return (VoPlaceVerdict){ .why = VO_PLACE_EXCLUDED };
    switch (h->state) {
    case VO_HOST_ONLINE:
        break;
    case VO_HOST_MAINTENANCE:
        return (VoPlaceVerdict){ .why = VO_PLACE_MAINTENANCE };
    case VO_HOST_FENCED:
        return (VoPlaceVerdict){ .why = VO_PLACE_FENCED };
    case VO_HOST_OFFLINE:
    default:
        return (VoPlaceVerdict){ .why = VO_PLACE_OFFLINE };
    }
    if (req->accel == VO_ACCEL_KVM && h->accel != VO_ACCEL_KVM)
        return (VoPlaceVerdict){ .why = VO_PLACE_NO_KVM };
    VoPlaceWhy why = vo_place_cpu_check(h, req);
    if (why != VO_PLACE_FITS)
        return (VoPlaceVerdict){ .why = why };
    if (!has_all(req->pools, h->pools))
        return (VoPlaceVerdict){ .why = VO_PLACE_POOLS };
    if (!vo_place_networks_ok(h->networks, req->networks))
        return (VoPlaceVerdict){ .why = VO_PLACE_NETWORKS };
    if (!vo_place_firmware_ok(h->firmware, req->firmware))
        return (VoPlaceVerdict){ .why = VO_PLACE_FIRMWARE };
    uint64_t mem_free = vo_place_memory_free(h);
    if (req->memory_mib > mem_free)
        return (VoPlaceVerdict){ .why = VO_PLACE_MEMORY, .free = mem_free };
    uint64_t cpu_free = vo_place_vcpus_free(h);
    if (req->vcpus > cpu_free)
        return (VoPlaceVerdict){ .why = VO_PLACE_VCPUS, .free = cpu_free };
    if (req->group && req->group_policy == VO_GROUP_TOGETHER && g->counts && !g->counts[i])
        return (VoPlaceVerdict){ .why = VO_PLACE_GROUP_TOGETHER };
    return (VoPlaceVerdict){ .why = VO_PLACE_FITS };
}

/* Memory fraction, then CPU load, then vCPU fraction, all as they would be
 * with the VM on the host: -1 when a is lighter than b, 1 when heavier. */
static int load_cmp(const VoPlaceHost *a, const VoPlaceHost *b, const VoPlaceRequest *req)
{
    double ma = a->memory_mib ? (double)(a->committed_memory_mib + req->memory_mib) / (double)a->memory_mib
                              : INFINITY;
    double mb = b->memory_mib ? (double)(b->committed_memory_mib + req->memory_mib) / (double)b->memory_mib
                              : INFINITY;
    if (ma != mb)
        return ma < mb ? -1 : 1;
    if (a->load != b->load)
        return a->load < b->load ? -1 : 1;
    double ca = a->cpus ? (double)(a->committed_vcpus + (uint64_t)req->vcpus) / a->cpus : INFINITY;
    double cb = b->cpus ? (double)(b->committed_vcpus + (uint64_t)req->vcpus) / b->cpus : INFINITY;
    if (ca != cb)
        return ca < cb ? -1 : 1;
    return 0;
}

/* a is the better choice than b. */
static bool better(const VoPlaceHost *a, const VoPlaceHost *b, const VoPlaceRequest *req,
                   VoPlacePolicy policy)
{
    int c = load_cmp(a, b, req);
    if (c)
        return policy == VO_PLACE_PACK ? c > 0 : c < 0;
    c = strcmp(a->name ? a->name : "", b->name ? b->name : "");
    if (c)
        return c < 0;
    return strcmp(a->id ? a->id : "", b->id ? b->id : "") < 0;
}

static ssize_t find_host(const VoPlaceSnapshot *snap, const char *key)
{
    for (size_t i = 0; i < snap->n_hosts; i++)
        if (snap->hosts[i].id && !strcmp(snap->hosts[i].id, key))
            return (ssize_t)i;
    for (size_t i = 0; i < snap->n_hosts; i++)
        if (snap->hosts[i].name && !strcmp(snap->hosts[i].name, key))
            return (ssize_t)i;
    return -1;
}

int vo_place(const VoPlaceSnapshot *snap, const VoPlaceRequest *req, VoPlaceResult *ret)
{
    *ret = (VoPlaceResult){ .host = -1, .pinned = -1 };
    ssize_t pinned = -1;
    if (req->host) {
        pinned = find_host(snap, req->host);
        if (pinned < 0)
            return -ENOENT;
    }
    GroupView g;
    group_view(snap, req, &g);
    _cleanup_free_ unsigned *counts = g.counts;
    VoPlaceVerdict *v = vo_malloc0(snap->n_hosts * sizeof(VoPlaceVerdict));
    *ret = (VoPlaceResult){ .host = -1, .pinned = pinned, .verdicts = v, .n_verdicts = snap->n_hosts };

    if (pinned >= 0) {
        /* Pinned: the hard rules only; a spread group's preference is
         * weighing, and the pin overrides it. */
        v[pinned] = host_verdict(snap, (size_t)pinned, req, &g);
        if (v[pinned].why == VO_PLACE_FITS)
            ret->host = pinned;
        return 0;
    }

    _cleanup_free_ size_t *fits = vo_malloc0(snap->n_hosts * sizeof(size_t));
    size_t n_fits = 0;
    for (size_t i = 0; i < snap->n_hosts; i++) {
        v[i] = host_verdict(snap, i, req, &g);
        if (v[i].why == VO_PLACE_FITS)
            fits[n_fits++] = i;
    }

    /* A spread group is soft anti-affinity: only the fitting hosts with the
     * fewest members stay (none, while a fitting host has none). */
    if (req->group && req->group_policy == VO_GROUP_SPREAD && counts && n_fits) {
        unsigned least = counts[fits[0]];
        for (size_t k = 1; k < n_fits; k++)
            if (counts[fits[k]] < least)
                least = counts[fits[k]];
        size_t kept = 0;
        for (size_t k = 0; k < n_fits; k++) {
            size_t i = fits[k];
            if (counts[i] == least)
                fits[kept++] = i;
            else
                v[i] = (VoPlaceVerdict){ .why = VO_PLACE_GROUP_SPREAD, .here = counts[i],
                                         .least = least };
        }
        n_fits = kept;
    }

    for (size_t k = 0; k < n_fits; k++) {
        size_t i = fits[k];
        if (ret->host < 0 || better(&snap->hosts[i], &snap->hosts[ret->host], req, snap->policy))
            ret->host = (ssize_t)i;
    }
    return 0;
}

/* The words for verdict v of host h; home: where a together group lives. */
static char *reason_text(const VoPlaceHost *h, const VoPlaceRequest *req, const VoPlaceVerdict *v,
                         const char *home)
{
    char ratio[32];
    Buf b = { 0 };
    switch (v->why) {
    case VO_PLACE_UNCHECKED:
    case VO_PLACE_FITS:
        return NULL;
    case VO_PLACE_OFFLINE:
        return vo_strdup("offline");
    case VO_PLACE_MAINTENANCE:
        return vo_strdup("in maintenance");
    case VO_PLACE_FENCED:
        return vo_strdup("fenced");
    case VO_PLACE_NO_KVM:
        return vo_asprintf("needs kvm, host has %s", h->accel == VO_ACCEL_TCG ? "tcg" : "none");
    case VO_PLACE_CPU_MODEL:
        return vo_asprintf("CPU model is '%s', the VM (cpu host) needs '%s'",
                           h->cpu_model ? h->cpu_model : "",
                           req->cpu_host_model ? req->cpu_host_model : "");
    case VO_PLACE_CPU_FLAGS_MISSING:
        buf_add(&b, "lacks CPU flags ");
        add_missing(&b, req->cpu_flags, h->cpu_flags);
        return b.s;
    case VO_PLACE_CPU_FLAGS_EXTRA:
        buf_add(&b, "has CPU flags the VM (cpu host) lacks: ");
        add_missing(&b, h->cpu_flags, req->cpu_flags);
        return b.s;
    case VO_PLACE_POOLS: {
        Buf list = { 0 };
        size_t n = add_missing(&list, req->pools, h->pools);
        char *s = vo_asprintf("cannot reach pool%s %s", n == 1 ? "" : "s", list.s ? list.s : "");
        free(list.s);
        return s;
    }
    case VO_PLACE_MEMORY:
        format_ratio(h->mem_ratio, ratio);
        return vo_asprintf("needs %" PRIu64 " MiB, %" PRIu64 " MiB free (ratio %s)", req->memory_mib,
                           v->free, ratio);
    case VO_PLACE_VCPUS:
        format_ratio(h->cpu_ratio, ratio);
        return vo_asprintf("needs %u vCPU%s, %" PRIu64 " free (ratio %s)", req->vcpus,
                           req->vcpus == 1 ? "" : "s", v->free, ratio);
    case VO_PLACE_GROUP_TOGETHER:
        return vo_asprintf("group %s (together) lives on host %s", req->group ? req->group : "?",
                           home ? home : "?");
    case VO_PLACE_GROUP_SPREAD:
        if (v->least == 0)
            return vo_asprintf("group %s (spread) already has a VM here", req->group ? req->group : "?");
        return vo_asprintf("group %s (spread) has %u VMs here, another host has %u",
                           req->group ? req->group : "?", v->here, v->least);
    case VO_PLACE_EXCLUDED:
        return vo_strdup("excluded (the host the VM moves from)");
    case VO_PLACE_NETWORKS: {
        Buf list = { 0 };
        size_t n = add_missing(&list, req->networks, h->networks);
        char *s = vo_asprintf("has no network%s %s (or %s in error or of another project "
                              "there)", n == 1 ? "" : "s", list.s ? list.s : "",
                              n == 1 ? "it is" : "they are");
        free(list.s);
        return s;
    }
    case VO_PLACE_FIRMWARE:
        if (!h->firmware)
            return vo_asprintf("does not say which firmware it has (its vireod is older), the "
                               "VM needs %s", req->firmware ? req->firmware : "?");
        return vo_asprintf("has no OVMF for %s (install the ovmf package there)",
                           req->firmware ? req->firmware : "?");
    }
    return vo_strdup("does not fit");
}

char *vo_place_verdict_text(const VoPlaceHost *h, const VoPlaceRequest *req,
                            const VoPlaceVerdict *v)
{
    return reason_text(h, req, v, NULL);
}

char *vo_place_reason(const VoPlaceSnapshot *snap, const VoPlaceRequest *req,
                      const VoPlaceResult *res, size_t i)
{
    if (i >= res->n_verdicts || i >= snap->n_hosts || res->verdicts[i].why <= VO_PLACE_FITS)
        return NULL;
    GroupView g = { 0 };
    if (res->verdicts[i].why == VO_PLACE_GROUP_TOGETHER)
        group_view(snap, req, &g);
    char *s = reason_text(&snap->hosts[i], req, &res->verdicts[i], g.home);
    free(g.counts);
    return s;
}

/* The message for res: see vo_place_reasons_format. */
static char *reasons_message(const VoPlaceSnapshot *snap, const VoPlaceRequest *req,
                             const VoPlaceResult *res, const char *home)
{
    if (res->pinned >= 0 && (size_t)res->pinned < res->n_verdicts &&
        (size_t)res->pinned < snap->n_hosts) {
        const VoPlaceHost *h = &snap->hosts[res->pinned];
        _cleanup_free_ char *r = reason_text(h, req, &res->verdicts[res->pinned], home);
        return vo_asprintf("host %s does not fit: %s", h->name ? h->name : "?", r ? r : "it fits");
    }
    if (snap->n_hosts == 0)
        return vo_strdup("no host fits: the cluster has no hosts");
    Buf b = { 0 };
    buf_add(&b, "no host fits: ");
    bool first = true;
    for (size_t i = 0; i < snap->n_hosts && i < res->n_verdicts; i++) {
        _cleanup_free_ char *r = reason_text(&snap->hosts[i], req, &res->verdicts[i], home);
        if (!r)
            continue;
        if (!first)
            buf_add(&b, "; ");
        first = false;
        buf_add(&b, snap->hosts[i].name ? snap->hosts[i].name : "?");
        buf_add(&b, ": ");
        buf_add(&b, r);
    }
    return b.s;
}

char *vo_place_reasons_format(const VoPlaceSnapshot *snap, const VoPlaceRequest *req,
                              const VoPlaceResult *res)
{
    GroupView g;
    group_view(snap, req, &g);
    char *s = reasons_message(snap, req, res, g.home);
    free(g.counts);
    return s;
}
