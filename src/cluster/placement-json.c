/* placement-json.c: the JSON form of placement's inputs (see placement.h):
 * host documents as vireod publishes them, the snapshot, the request.
 * Strict: unknown keys, wrong types, out-of-range numbers and duplicates are
 * refused with a message naming the field; nothing is left half-made. */
#include "cluster/placement.h"

#include <math.h>
#include <string.h>

#include "conf/names.h"
#include "util/util.h"

#define MAX_MEMORY_MIB (1LL << 40) /* 1 EiB */
#define MAX_CPUS (1LL << 20)
#define MAX_RATIO 100.0
#define MAX_LIST 4096 /* flags or pools of one host or VM */
#define MAX_TEXT 256  /* CPU model names */

/* Ids, host names, CPU flags: 1..max characters of A-Z a-z 0-9 . _ - */
static bool token_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Free text (a CPU model name): up to MAX_TEXT bytes, no control bytes. */
static bool text_valid(const char *s)
{
    size_t n = strlen(s);
    if (n > MAX_TEXT)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static int ptr_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One field of an object: its key, kind ('s' string, 'I' integer, 'F'
 * number, 'o' any value), whether it may be absent, and where it goes. */
typedef struct {
    const char *key;
    char kind;
    bool optional;
    void *out;
} Field;

/* Reads the fields of obj; refuses unknown keys, missing ones and wrong
 * types, naming the key ("what: ..."). Absent optional fields keep *out. */
static int fields_get(json_t *obj, const char *what, const Field *f, size_t n, char **ret_error)
{
    if (!json_is_object(obj))
        return vo_error_set(ret_error, -EINVAL, "%s: must be an object", what);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        size_t i = 0;
        while (i < n && strcmp(f[i].key, key))
            i++;
        if (i == n)
            return vo_error_set(ret_error, -EINVAL, "%s: unknown key '%s'", what, key);
    }
    for (size_t i = 0; i < n; i++) {
        v = json_object_get(obj, f[i].key);
        if (!v) {
            if (f[i].optional)
                continue;
            return vo_error_set(ret_error, -EINVAL, "%s: '%s' is missing", what, f[i].key);
        }
        switch (f[i].kind) {
        case 's':
            if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                return vo_error_set(ret_error, -EINVAL, "%s: '%s' must be a string", what, f[i].key);
            *(const char **)f[i].out = json_string_value(v);
            break;
        case 'I':
            if (!json_is_integer(v))
                return vo_error_set(ret_error, -EINVAL, "%s: '%s' must be an integer", what, f[i].key);
            *(json_int_t *)f[i].out = json_integer_value(v);
            break;
        case 'F':
            if (!json_is_number(v))
                return vo_error_set(ret_error, -EINVAL, "%s: '%s' must be a number", what, f[i].key);
            *(double *)f[i].out = json_number_value(v);
            break;
        default:
            *(json_t **)f[i].out = v;
        }
    }
    return 0;
}

/* A JSON array of unique strings into a sorted strv; pools must be valid
 * names, anything else a token. */
char **vo_place_strv_of_json(json_t *arr)
{
    if (!json_is_array(arr))
        return NULL;
    char **v = vo_malloc0(sizeof(char *));
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x)
        if (json_is_string(x))
            vo_strv_push(&v, vo_strdup(json_string_value(x)));
    vo_place_strv_sort(v);
    return v;
}

static int strv_from_json(json_t *arr, const char *field, bool names, char ***ret, char **ret_error)
{
    *ret = NULL;
    if (!json_is_array(arr))
        return vo_error_set(ret_error, -EINVAL, "%s: must be an array of strings", field);
    size_t n = json_array_size(arr);
    if (n > MAX_LIST)
        return vo_error_set(ret_error, -EINVAL, "%s: more than %d entries", field, MAX_LIST);
    _cleanup_strv_ char **v = vo_malloc0((n + 1) * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s || strlen(s) != json_string_length(json_array_get(arr, i)))
            return vo_error_set(ret_error, -EINVAL, "%s[%zu]: must be a string", field, i);
        if (names ? !vo_name_valid(s) : !token_valid(s, 64))
            return vo_error_set(ret_error, -EINVAL, "%s[%zu]: '%s' is not a valid %s", field, i,
                                s, names ? (strcmp(field, "networks") ? "pool name" : "network name")
                                         : "name (A-Z a-z 0-9 . _ -, up to 64)");
        v[i] = vo_strdup(s);
    }
    size_t len = n;
    vo_place_strv_sort(v);
    if (vo_strv_len(v) != len) {
        /* Name the duplicate: the first item seen twice. */
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (json_equal(json_array_get(arr, i), json_array_get(arr, j)))
                    return vo_error_set(ret_error, -EINVAL, "%s: '%s' is listed twice", field,
                                        json_string_value(json_array_get(arr, i)));
    }
    *ret = TAKE_PTR(v);
    return 0;
}

/* A host record's "networks" into a sorted strv. A name that is not a
 * valid network name (a newer vireod's, say) is left out, not the host: no
 * VM can ask for it, and the host still takes VMs on its other networks. */
static int networks_from_json(json_t *arr, char ***ret, char **ret_error)
{
    *ret = NULL;
    if (!json_is_array(arr))
        return vo_error_set(ret_error, -EINVAL, "networks: must be an array of strings");
    size_t n = json_array_size(arr);
    if (n > MAX_LIST)
        return vo_error_set(ret_error, -EINVAL, "networks: more than %d entries", MAX_LIST);
    char **v = vo_malloc0((n + 1) * sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        const char *s = json_string_value(e);
        if (s && strlen(s) == json_string_length(e) && vo_name_valid(s))
            v[k++] = vo_strdup(s);
    }
    vo_place_strv_sort(v);
    *ret = v;
    return 0;
}

static int int_range(json_int_t v, json_int_t lo, json_int_t hi, const char *field, char **ret_error)
{
    if (v < lo || v > hi)
        return vo_error_set(ret_error, -EINVAL, "%s: %lld is out of range (%lld..%lld)", field,
                            (long long)v, (long long)lo, (long long)hi);
    return 0;
}

static int ratio_range(double v, const char *field, char **ret_error)
{
    if (!isfinite(v) || v <= 0 || v > MAX_RATIO)
        return vo_error_set(ret_error, -EINVAL, "%s: %g is out of range (above 0, up to %g)", field,
                            v, MAX_RATIO);
    return 0;
}

static int host_fill(json_t *doc, VoPlaceHost *h, char **ret_error)
{
    const char *id, *name, *state, *accel, *cpu_model;
    json_t *flags, *pools, *firmware = NULL, *networks = NULL;
    json_int_t memory, cpus, cmem, cvcpus;
    double mem_ratio, cpu_ratio, load;
    const Field fields[] = {
        { "id", 's', false, &id },
        { "name", 's', false, &name },
        { "state", 's', false, &state },
        { "accel", 's', false, &accel },
        { "cpu_model", 's', false, &cpu_model },
        { "cpu_flags", 'o', false, &flags },
        { "pools", 'o', false, &pools },
        { "memory_mib", 'I', false, &memory },
        { "cpus", 'I', false, &cpus },
        { "mem_ratio", 'F', false, &mem_ratio },
        { "cpu_ratio", 'F', false, &cpu_ratio },
        { "committed_memory_mib", 'I', false, &cmem },
        { "committed_vcpus", 'I', false, &cvcpus },
        { "load", 'F', false, &load },
        { "firmware", 'o', true, &firmware },
        { "networks", 'o', true, &networks },
    };
    int r = fields_get(doc, "host", fields, ELEMENTSOF(fields), ret_error);
    if (r < 0)
        return r;
    if (!token_valid(id, 64))
        return vo_error_set(ret_error, -EINVAL, "id: '%s' is not a host id (A-Z a-z 0-9 . _ -, up to 64)", id);
    h->id = vo_strdup(id);
    if (!token_valid(name, 253))
        return vo_error_set(ret_error, -EINVAL, "host %s: name '%s' is not a host name (A-Z a-z 0-9 . _ -)",
                            id, name);
    h->name = vo_strdup(name);
    if (vo_host_state_from_string(state, &h->state) < 0)
        return vo_error_set(ret_error, -EINVAL,
                            "host %s: state '%s' is not one of online, offline, maintenance, fenced", name, state);
    if (!strcmp(accel, "kvm"))
        h->accel = VO_ACCEL_KVM;
    else if (!strcmp(accel, "tcg"))
        h->accel = VO_ACCEL_TCG;
    else
        return vo_error_set(ret_error, -EINVAL, "host %s: accel '%s' is not kvm or tcg", name, accel);
    if (!text_valid(cpu_model))
        return vo_error_set(ret_error, -EINVAL, "host %s: cpu_model: control characters or longer than %d",
                            name, MAX_TEXT);
    h->cpu_model = vo_strdup(cpu_model);
    _cleanup_free_ char *error = NULL;
    if (strv_from_json(flags, "cpu_flags", false, &h->cpu_flags, &error) < 0 ||
        strv_from_json(pools, "pools", true, &h->pools, &error) < 0 ||
        (firmware && strv_from_json(firmware, "firmware", false, &h->firmware, &error) < 0) ||
        (networks && networks_from_json(networks, &h->networks, &error) < 0))
        return vo_error_set(ret_error, -EINVAL, "host %s: %s", name, error);
    if (int_range(memory, 1, MAX_MEMORY_MIB, "memory_mib", &error) < 0 ||
        int_range(cpus, 1, MAX_CPUS, "cpus", &error) < 0 ||
        ratio_range(mem_ratio, "mem_ratio", &error) < 0 ||
        ratio_range(cpu_ratio, "cpu_ratio", &error) < 0 ||
        int_range(cmem, 0, MAX_MEMORY_MIB * (json_int_t)MAX_RATIO, "committed_memory_mib", &error) < 0 ||
        int_range(cvcpus, 0, MAX_CPUS * (json_int_t)MAX_RATIO, "committed_vcpus", &error) < 0)
        return vo_error_set(ret_error, -EINVAL, "host %s: %s", name, error);
    if (!isfinite(load) || load < 0 || load > 1)
        return vo_error_set(ret_error, -EINVAL, "host %s: load: %g is out of range (0..1)", name, load);
    h->memory_mib = (uint64_t)memory;
    h->cpus = (unsigned)cpus;
    h->mem_ratio = mem_ratio;
    h->cpu_ratio = cpu_ratio;
    h->committed_memory_mib = (uint64_t)cmem;
    h->committed_vcpus = (unsigned)cvcpus;
    h->load = load;
    return 0;
}

int vo_place_host_from_json(json_t *doc, VoPlaceHost *ret, char **ret_error)
{
    VoPlaceHost h = { 0 };
    int r = host_fill(doc, &h, ret_error);
    if (r < 0) {
        vo_place_host_clear(&h);
        *ret = (VoPlaceHost){ 0 };
        return r;
    }
    *ret = h;
    return 0;
}

static json_t *strv_to_json(char *const *v)
{
    json_t *arr = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(arr, json_string(v[i]));
    return arr;
}

json_t *vo_place_host_to_json(const VoPlaceHost *h)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:f, s:f, s:I, s:I, s:f}",
                     "id", h->id ? h->id : "", "name", h->name ? h->name : "",
                     "state", vo_host_state_to_string(h->state) ? vo_host_state_to_string(h->state) : "offline",
                     "accel", h->accel == VO_ACCEL_KVM ? "kvm" : "tcg",
                     "cpu_model", h->cpu_model ? h->cpu_model : "",
                     "cpu_flags", strv_to_json(h->cpu_flags), "pools", strv_to_json(h->pools),
                     "memory_mib", (json_int_t)h->memory_mib, "cpus", (json_int_t)h->cpus,
                     "mem_ratio", h->mem_ratio, "cpu_ratio", h->cpu_ratio,
                     "committed_memory_mib", (json_int_t)h->committed_memory_mib,
                     "committed_vcpus", (json_int_t)h->committed_vcpus, "load", h->load);
    if (h->firmware)
        json_object_set_new(o, "firmware", strv_to_json(h->firmware));
    if (h->networks)
        json_object_set_new(o, "networks", strv_to_json(h->networks));
    return o;
}

static int snapshot_fill(json_t *doc, VoPlaceSnapshot *s, char **ret_error)
{
    const char *policy = "spread";
    json_t *hosts;
    const Field fields[] = { { "policy", 's', true, &policy }, { "hosts", 'o', false, &hosts } };
    int r = fields_get(doc, "snapshot", fields, ELEMENTSOF(fields), ret_error);
    if (r < 0)
        return r;
    if (vo_place_policy_from_string(policy, &s->policy) < 0)
        return vo_error_set(ret_error, -EINVAL, "policy: '%s' is not spread or pack", policy);
    if (!json_is_array(hosts))
        return vo_error_set(ret_error, -EINVAL, "hosts: must be an array of host documents");
    size_t n = json_array_size(hosts);
    s->hosts = vo_malloc0(n * sizeof(VoPlaceHost));
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *error = NULL;
        if (vo_place_host_from_json(json_array_get(hosts, i), &s->hosts[i], &error) < 0)
            return vo_error_set(ret_error, -EINVAL, "hosts[%zu]: %s", i, error);
        s->n_hosts++;
    }
    /* Ids and names are unique: sorted copies show a repeat. */
    _cleanup_free_ char **ids = vo_malloc0((n + 1) * sizeof(char *));
    _cleanup_free_ char **names = vo_malloc0((n + 1) * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        ids[i] = s->hosts[i].id;
        names[i] = s->hosts[i].name;
    }
    qsort(ids, n, sizeof(char *), ptr_strcmp);
    qsort(names, n, sizeof(char *), ptr_strcmp);
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(ids[i], ids[i - 1]))
            return vo_error_set(ret_error, -EINVAL, "hosts: id '%s' appears twice", ids[i]);
        if (!strcmp(names[i], names[i - 1]))
            return vo_error_set(ret_error, -EINVAL, "hosts: name '%s' appears twice", names[i]);
    }
    return 0;
}

int vo_place_snapshot_from_json(json_t *doc, VoPlaceSnapshot *ret, char **ret_error)
{
    VoPlaceSnapshot s = { 0 };
    int r = snapshot_fill(doc, &s, ret_error);
    if (r < 0) {
        vo_place_snapshot_clear(&s);
        *ret = (VoPlaceSnapshot){ 0 };
        return r;
    }
    *ret = s;
    return 0;
}

json_t *vo_place_snapshot_to_json(const VoPlaceSnapshot *snap)
{
    json_t *hosts = json_array();
    for (size_t i = 0; i < snap->n_hosts; i++)
        json_array_append_new(hosts, vo_place_host_to_json(&snap->hosts[i]));
    const char *policy = vo_place_policy_to_string(snap->policy);
    return json_pack("{s:s, s:o}", "policy", policy ? policy : "spread", "hosts", hosts);
}

static int group_fill(json_t *doc, VoPlaceRequest *req, char **ret_error)
{
    const char *name, *policy;
    json_t *hosts = NULL;
    const Field fields[] = {
        { "name", 's', false, &name },
        { "policy", 's', false, &policy },
        { "hosts", 'o', true, &hosts },
    };
    int r = fields_get(doc, "group", fields, ELEMENTSOF(fields), ret_error);
    if (r < 0)
        return r;
    if (!vo_name_valid(name))
        return vo_error_set(ret_error, -EINVAL, "group: name '%s' is invalid: use 1-63 characters of "
                            "a-z, 0-9 and '-', not starting with '-'", name);
    if (vo_group_policy_from_string(policy, &req->group_policy) < 0)
        return vo_error_set(ret_error, -EINVAL, "group %s: policy '%s' is not spread or together",
                            name, policy);
    req->group = vo_strdup(name);
    if (!hosts)
        return 0;
    if (!json_is_object(hosts))
        return vo_error_set(ret_error, -EINVAL, "group %s: hosts must be an object of host id: count",
                            name);
    size_t n = json_object_size(hosts);
    req->group_hosts = vo_malloc0(n * sizeof(VoPlaceGroupHost));
    const char *id;
    json_t *count;
    json_object_foreach(hosts, id, count) {
        if (!token_valid(id, 64))
            return vo_error_set(ret_error, -EINVAL, "group %s: '%s' is not a host id", name, id);
        if (!json_is_integer(count) || json_integer_value(count) < 1 ||
            json_integer_value(count) > MAX_CPUS * (json_int_t)MAX_RATIO)
            return vo_error_set(ret_error, -EINVAL,
                                "group %s: hosts.%s must be a count of members (a positive integer)",
                                name, id);
        req->group_hosts[req->n_group_hosts++] = (VoPlaceGroupHost){
            .host_id = vo_strdup(id), .count = (unsigned)json_integer_value(count) };
    }
    return 0;
}

static int request_fill(json_t *doc, VoPlaceRequest *req, char **ret_error)
{
    json_int_t vcpus, memory;
    const char *accel = "auto", *cpu_model = NULL, *cpu_host_model = NULL, *host = NULL;
    json_t *flags = NULL, *pools = NULL, *group = NULL, *exclude = NULL, *networks = NULL;
    const Field fields[] = {
        { "vcpus", 'I', false, &vcpus },
        { "memory_mib", 'I', false, &memory },
        { "accel", 's', true, &accel },
        { "cpu_model", 's', true, &cpu_model },
        { "cpu_flags", 'o', true, &flags },
        { "cpu_host_model", 's', true, &cpu_host_model },
        { "pools", 'o', true, &pools },
        { "group", 'o', true, &group },
        { "host", 's', true, &host },
        { "exclude", 'o', true, &exclude },
        { "networks", 'o', true, &networks },
    };
    int r = fields_get(doc, "request", fields, ELEMENTSOF(fields), ret_error);
    if (r == 0)
        r = int_range(vcpus, 1, MAX_CPUS, "vcpus", ret_error);
    if (r == 0)
        r = int_range(memory, 1, MAX_MEMORY_MIB, "memory_mib", ret_error);
    if (r < 0)
        return r;
    req->vcpus = (unsigned)vcpus;
    req->memory_mib = (uint64_t)memory;
    if (vo_accel_from_string(accel, &req->accel) < 0)
        return vo_error_set(ret_error, -EINVAL, "accel: '%s' is not one of auto, kvm, tcg", accel);
    if (cpu_model && (!*cpu_model || !text_valid(cpu_model)))
        return vo_error_set(ret_error, -EINVAL, "cpu_model: empty, control characters or longer than %d",
                            MAX_TEXT);
    if (!cpu_model && (flags || cpu_host_model))
        return vo_error_set(ret_error, -EINVAL, "cpu_flags and cpu_host_model need cpu_model");
    if (cpu_host_model && strcmp(cpu_model, "host"))
        return vo_error_set(ret_error, -EINVAL, "cpu_host_model: only with cpu_model 'host'");
    if (cpu_host_model && !text_valid(cpu_host_model))
        return vo_error_set(ret_error, -EINVAL, "cpu_host_model: control characters or longer than %d",
                            MAX_TEXT);
    req->cpu_model = vo_strdup(cpu_model);
    req->cpu_host_model = vo_strdup(cpu_host_model);
    if (flags && (r = strv_from_json(flags, "cpu_flags", false, &req->cpu_flags, ret_error)) < 0)
        return r;
    if (pools && (r = strv_from_json(pools, "pools", true, &req->pools, ret_error)) < 0)
        return r;
    if (group && (r = group_fill(group, req, ret_error)) < 0)
        return r;
    if (host && !token_valid(host, 253))
        return vo_error_set(ret_error, -EINVAL, "host: '%s' is not a host id or name", host);
    req->host = vo_strdup(host);
    if (exclude && (r = strv_from_json(exclude, "exclude", false, &req->exclude, ret_error)) < 0)
        return r;
    if (networks && (r = strv_from_json(networks, "networks", true, &req->networks, ret_error)) < 0)
        return r;
    return 0;
}

int vo_place_request_from_json(json_t *doc, VoPlaceRequest *ret, char **ret_error)
{
    VoPlaceRequest req = { 0 };
    int r = request_fill(doc, &req, ret_error);
    if (r < 0) {
        vo_place_request_clear(&req);
        *ret = (VoPlaceRequest){ 0 };
        return r;
    }
    *ret = req;
    return 0;
}

json_t *vo_place_request_to_json(const VoPlaceRequest *req)
{
    const char *accel = vo_accel_to_string(req->accel);
    json_t *doc = json_pack("{s:I, s:I, s:s}", "vcpus", (json_int_t)req->vcpus, "memory_mib",
                            (json_int_t)req->memory_mib, "accel", accel ? accel : "auto");
    if (req->cpu_model)
        json_object_set_new(doc, "cpu_model", json_string(req->cpu_model));
    if (req->cpu_flags)
        json_object_set_new(doc, "cpu_flags", strv_to_json(req->cpu_flags));
    if (req->cpu_host_model)
        json_object_set_new(doc, "cpu_host_model", json_string(req->cpu_host_model));
    if (req->pools)
        json_object_set_new(doc, "pools", strv_to_json(req->pools));
    if (req->group) {
        const char *policy = vo_group_policy_to_string(req->group_policy);
        json_t *hosts = json_object();
        for (size_t i = 0; i < req->n_group_hosts; i++)
            if (req->group_hosts[i].host_id)
                json_object_set_new(hosts, req->group_hosts[i].host_id,
                                    json_integer(req->group_hosts[i].count));
        json_object_set_new(doc, "group", json_pack("{s:s, s:s, s:o}", "name", req->group, "policy",
                                                    policy ? policy : "spread", "hosts", hosts));
    }
    if (req->host)
        json_object_set_new(doc, "host", json_string(req->host));
    if (req->exclude)
        json_object_set_new(doc, "exclude", strv_to_json(req->exclude));
    if (req->networks)
        json_object_set_new(doc, "networks", strv_to_json(req->networks));
    return doc;
}
