/* project-usage.c: a project's document and its VMs' usage documents in
 * the store (project-usage.h): the quota check a VM's save makes before it
 * commits, and the reads the project routes answer with. */
#include "state/project-usage.h"

#include <string.h>

#include "conf/names.h"
#include "state/keys.h"
#include "state/project-objects.h"
#include "util/util.h"

#define DEFAULT_PROJECT "default"

void vo_project_guard_clear(VoProjectGuard *g)
{
    free(g->key);
    free(g->doc);
    memset(g, 0, sizeof(*g));
}

static _Thread_local char *refusal;

const char *vo_project_refusal(void)
{
    return refusal;
}

void vo_project_set_refusal(char *words)
{
    free(refusal);
    refusal = words;
}

void vo_project_usage_of_doc(const char *text, VoQuota *ret)
{
    memset(ret, 0, sizeof(*ret));
    json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(doc)) {
        json_decref(doc);
        return;
    }
    ret->vcpus = json_integer_value(json_object_get(doc, "vcpus"));
    ret->memory_mib = json_integer_value(json_object_get(doc, "memory_mib"));
    ret->disk_bytes = json_integer_value(json_object_get(doc, "disk_bytes"));
    /* A volume's or network's (project-objects.h): its disk only. */
    ret->vms = json_object_get(doc, "kind") ? 0 : 1;
    json_decref(doc);
}

int64_t vo_project_usage_disk_in(json_t *relations)
{
    size_t prefix = strlen(VO_KEY_PROJECT_USAGE_PREFIX);
    const char *key;
    json_t *text;
    json_object_foreach(relations, key, text) {
        if (strncmp(key, VO_KEY_PROJECT_USAGE_PREFIX, prefix))
            continue;
        json_t *doc = json_loads(json_string_value(text) ?: "", 0, NULL);
        json_t *disk = json_object_get(doc, "disk_bytes");
        int64_t bytes = json_is_integer(disk) ? json_integer_value(disk) : -1;
        json_decref(doc);
        return bytes;
    }
    return -1;
}

int64_t vo_project_usage_disk_stored(VoStore *s, const char *project, const char *vm_id)
{
    _cleanup_free_ char *key = vo_asprintf(VO_KEY_PROJECT_USAGE_PREFIX "%s/%s", project, vm_id);
    _cleanup_free_ char *text = NULL;
    int64_t rev;
    if (vo_store_get(s, key, &text, &rev) < 0)
        return 0;
    VoQuota used;
    vo_project_usage_of_doc(text, &used);
    return used.disk_bytes;
}

int vo_project_name_check(const char *name, char **ret_error)
{
    if (!name || !vo_name_valid(name))
        return vo_error_set(ret_error, -EINVAL, "project: '%s' is invalid: use 1-63 characters "
                            "of a-z, 0-9 and '-', not starting with '-'", name ? name : "");
    return 0;
}

int vo_project_not_found(const char *name, char **ret_error)
{
    return vo_error_set(ret_error, -ENOENT, "project '%s' does not exist (see: vireo project "
                        "list; make it with vireo project create %s)", name, name);
}

int vo_project_read(VoStore *s, const char *name, json_t **ret_doc, int64_t *ret_rev,
                       char **ret_error)
{
    int r = vo_project_name_check(name, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *key = vo_key_project(name), *text = NULL;
    r = vo_store_get(s, key, &text, ret_rev);
    if (r == -ENOENT && !strcmp(name, DEFAULT_PROJECT)) {
        *ret_doc = NULL;
        *ret_rev = VO_REV_NEW;
        return 0;
    }
    if (r == -ENOENT)
        return vo_project_not_found(name, ret_error);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read project '%s': %s", name, strerror(-r));
    json_t *doc = json_loads(text, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return vo_error_set(ret_error, -EIO, "project '%s': its document is damaged", name);
    }
    *ret_doc = doc;
    return 0;
}

void vo_project_usage_add(VoProjectUsage *u, const char *key, const char *value)
{
    const char *slash = strrchr(key, '/');
    if (u->except_vm && slash && !strcmp(slash + 1, u->except_vm))
        return;
    VoQuota one;
    vo_project_usage_of_doc(value, &one);
    vo_quota_add(&u->used, &one);
    json_t *doc = json_loads(value, 0, NULL);
    const char *kind = vo_project_usage_doc_kind(doc);
    if (kind && !strcmp(kind, "volume"))
        u->volumes++;
    else if (kind && !strcmp(kind, "network"))
        u->networks++;
    if (kind && u->objects)
        json_array_append_new(u->objects, json_pack("{s:s, s:O?, s:O?, s:O?, s:O?}", "kind",
                                                    kind, "object",
                                                    json_object_get(doc, "object"), "scope",
                                                    json_object_get(doc, "scope"),
                                                    "host", json_object_get(doc, "host"),
                                                    "disk_bytes",
                                                    json_object_get(doc, "disk_bytes")));
    if (!kind && u->vms) {
        json_array_append_new(u->vms, json_pack("{s:O?, s:O?, s:O?}", "vm",
                                                json_object_get(doc, "vm"), "name",
                                                json_object_get(doc, "name"), "host",
                                                json_object_get(doc, "host")));
    }
    json_decref(doc);
}

static int sum_usage(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    vo_project_usage_add(userdata, key, value);
    return 0;
}

int vo_project_usage_read(VoStore *s, const char *name, VoProjectUsage *u)
{
    _cleanup_free_ char *prefix = vo_key_project_usage_prefix(name);
    return vo_store_list(s, prefix, sum_usage, u);
}

int vo_project_check(VoStore *s, const char *project, const char *vm_id, const VoQuota *before,
                     const VoQuota *after, VoProjectGuard *ret, char **ret_error)
{
    json_t *doc = NULL;
    int64_t rev = 0;
    /* The document first, the usage after: a change committed between the
     * two reads moved the document on, so this one's compare fails. */
    int r = vo_project_read(s, project, &doc, &rev, ret_error);
    if (r < 0)
        return r;
    VoQuota limits;
    r = vo_quota_from_json(doc ? json_object_get(doc, "quotas") : NULL, &limits, ret_error);
    VoProjectUsage u = { .except_vm = vm_id };
    if (r >= 0 && (r = vo_project_usage_read(s, project, &u)) < 0)
        r = vo_error_set(ret_error, r, "cannot read the usage of project '%s': %s", project,
                         strerror(-r));
    if (r >= 0)
        r = vo_quota_check(project, &limits, &u.used, before, after, ret_error);
    if (r >= 0) {
        ret->key = vo_key_project(project);
        ret->doc = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        ret->rev = rev;
    }
    json_decref(doc);
    return r;
}

typedef struct {
    const char *host;
    json_t *relations;
} HostUsage;

static int collect_host_usage(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    HostUsage *h = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *host = json_string_value(json_object_get(doc, "host"));
    const char *vm = json_string_value(json_object_get(doc, "vm"));
    if (host && vm && !strcmp(host, h->host)) {
        json_t *mine = json_object_get(h->relations, vm);
        if (!mine) {
            mine = json_object();
            json_object_set_new(h->relations, vm, mine);
        }
        json_object_set_new(mine, key, json_string(value));
    }
    json_decref(doc);
    return 0;
}

int vo_project_usage_of_host(VoStore *s, const char *host_id, json_t *relations)
{
    HostUsage h = { .host = host_id ? host_id : "", .relations = relations };
    return vo_store_list(s, VO_KEY_PROJECT_USAGE_PREFIX, collect_host_usage, &h);
}

