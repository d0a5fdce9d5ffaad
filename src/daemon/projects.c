/* projects.c: projects and their quotas in the store (see projects.h):
 * the check a VM's save makes before it commits, and the routes' side
 * (create, list, show with usage, set quotas, delete when empty). */
#include "daemon/projects.h"

#include <string.h>

#include "conf/names.h"
#include "state/keys.h"
#include "util/time-format.h"
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
    ret->vms = 1;
    json_decref(doc);
}

static int check_name(const char *name, char **ret_error)
{
    if (!name || !vo_name_valid(name))
        return vo_error_set(ret_error, -EINVAL, "project: '%s' is invalid: use 1-63 characters "
                            "of a-z, 0-9 and '-', not starting with '-'", name ? name : "");
    return 0;
}

static int not_found(const char *name, char **ret_error)
{
    return vo_error_set(ret_error, -ENOENT, "project '%s' does not exist (see: vireo project "
                        "list; make it with vireo project create %s)", name, name);
}

/* The project's document: 0 with *ret_doc (NULL for "default" without one)
 * and *ret_rev (VO_REV_NEW then), -ENOENT, or the store's error. */
static int get_project(VoStore *s, const char *name, json_t **ret_doc, int64_t *ret_rev,
                       char **ret_error)
{
    int r = check_name(name, ret_error);
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
        return not_found(name, ret_error);
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

typedef struct {
    const char *except_vm;
    VoQuota used;
    json_t *vms; /* [{"vm","name","host"}] or NULL */
} UsageSum;

static int sum_usage(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    UsageSum *u = userdata;
    const char *slash = strrchr(key, '/');
    if (u->except_vm && slash && !strcmp(slash + 1, u->except_vm))
        return 0;
    VoQuota one;
    vo_project_usage_of_doc(value, &one);
    vo_quota_add(&u->used, &one);
    if (u->vms) {
        json_t *doc = json_loads(value, 0, NULL);
        json_array_append_new(u->vms, json_pack("{s:O?, s:O?, s:O?}", "vm",
                                                json_object_get(doc, "vm"), "name",
                                                json_object_get(doc, "name"), "host",
                                                json_object_get(doc, "host")));
        json_decref(doc);
    }
    return 0;
}

static int read_usage(VoStore *s, const char *name, UsageSum *u)
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
    int r = get_project(s, project, &doc, &rev, ret_error);
    if (r < 0)
        return r;
    VoQuota limits;
    r = vo_quota_from_json(doc ? json_object_get(doc, "quotas") : NULL, &limits, ret_error);
    UsageSum u = { .except_vm = vm_id };
    if (r >= 0 && (r = read_usage(s, project, &u)) < 0)
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

/* ---- the routes' side ---- */

/* {"name","quotas","usage","created_at"} (+ "vms" with_vms). */
static int project_json(VoDaemon *d, const char *name, json_t *doc, bool with_vms, json_t **ret,
                        char **ret_error)
{
    UsageSum u = { .vms = with_vms ? json_array() : NULL };
    int r = read_usage(d->store, name, &u);
    if (r < 0) {
        json_decref(u.vms);
        return vo_error_set(ret_error, r, "cannot read the usage of project '%s': %s", name,
                            strerror(-r));
    }
    VoQuota limits;
    if (vo_quota_from_json(doc ? json_object_get(doc, "quotas") : NULL, &limits, NULL) < 0)
        vo_quota_unlimited(&limits);
    json_t *o = json_pack("{s:s, s:o, s:o}", "name", name, "quotas",
                          vo_quota_to_json(&limits, 1), "usage", vo_quota_to_json(&u.used, 0));
    json_t *created = doc ? json_object_get(doc, "created_at") : NULL;
    if (created)
        json_object_set(o, "created_at", created);
    if (u.vms)
        json_object_set_new(o, "vms", u.vms);
    *ret = o;
    return 0;
}

static int put_project(VoDaemon *d, const char *name, json_t *doc, int64_t rev)
{
    _cleanup_free_ char *key = vo_key_project(name);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    return vo_store_put(d->store, key, text, rev, NULL);
}

/* The limits of doc's quotas with changes applied (null: no limit). */
static int merge_quotas(json_t *doc, json_t *changes, char **ret_error)
{
    VoQuota limits;
    int r = vo_quota_from_json(changes, &limits, ret_error); /* validates */
    if (r < 0)
        return r;
    json_t *quotas = json_object_get(doc, "quotas");
    if (!json_is_object(quotas)) {
        quotas = json_object();
        json_object_set_new(doc, "quotas", quotas);
    }
    const char *key;
    json_t *value;
    json_object_foreach(changes, key, value) {
        if (json_is_null(value))
            json_object_del(quotas, key);
        else
            json_object_set(quotas, key, value);
    }
    return 0;
}

int vo_project_create(VoDaemon *d, const char *name, json_t *quotas, json_t **ret,
                      char **ret_error)
{
    int r = check_name(name, ret_error);
    if (r < 0)
        return r;
    json_t *doc = json_pack("{s:o, s:o}", "quotas", json_object(), "created_at",
                            vo_time_json(vo_wall_ms()));
    if (quotas && (r = merge_quotas(doc, quotas, ret_error)) < 0) {
        json_decref(doc);
        return r;
    }
    r = put_project(d, name, doc, VO_REV_NEW);
    if (r == -EEXIST)
        r = vo_error_set(ret_error, -EEXIST, "project '%s' exists already", name);
    else if (r < 0)
        r = vo_error_set(ret_error, r, "cannot save project '%s': %s", name, strerror(-r));
    else {
        log_info("project '%s' created", name);
        r = project_json(d, name, doc, false, ret, ret_error);
    }
    json_decref(doc);
    return r;
}

static int collect_name(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)value;
    (void)rev;
    vo_strv_push((char ***)userdata, vo_strdup(key + strlen(VO_KEY_PROJECTS_PREFIX)));
    return 0;
}

int vo_projects_list_json(VoDaemon *d, json_t **ret, char **ret_error)
{
    char **names = NULL;
    int r = vo_store_list(d->store, VO_KEY_PROJECTS_PREFIX, collect_name, &names);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the projects: %s", strerror(-r));
    bool has_default = false;
    for (char **n = names; n && *n; n++)
        has_default |= !strcmp(*n, DEFAULT_PROJECT);
    if (!has_default)
        vo_strv_push(&names, vo_strdup(DEFAULT_PROJECT));
    json_t *list = json_array();
    for (char **n = names; r >= 0 && n && *n; n++) {
        json_t *doc = NULL, *one = NULL;
        int64_t rev = 0;
        if (get_project(d->store, *n, &doc, &rev, NULL) < 0)
            continue; /* deleted meanwhile */
        r = project_json(d, *n, doc, false, &one, ret_error);
        if (r >= 0)
            json_array_append_new(list, one);
        json_decref(doc);
    }
    vo_strv_free(names);
    if (r < 0) {
        json_decref(list);
        return r;
    }
    *ret = json_pack("{s:o}", "projects", list);
    return 0;
}

int vo_project_exists(VoDaemon *d, const char *name, char **ret_error)
{
    json_t *doc = NULL;
    int64_t rev = 0;
    int r = get_project(d->store, name, &doc, &rev, ret_error);
    json_decref(doc);
    return r;
}

int vo_project_show_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error)
{
    json_t *doc = NULL;
    int64_t rev = 0;
    int r = get_project(d->store, name, &doc, &rev, ret_error);
    if (r >= 0)
        r = project_json(d, name, doc, true, ret, ret_error);
    json_decref(doc);
    return r;
}

int vo_project_set(VoDaemon *d, const char *name, json_t *quotas, json_t **ret,
                   char **ret_error)
{
    /* Compared at the revision read: a VM's checked change in between
     * moves it on, and the quotas are merged again. */
    for (int attempt = 0; attempt < 20; attempt++) {
        json_t *doc = NULL;
        int64_t rev = 0;
        int r = get_project(d->store, name, &doc, &rev, ret_error);
        if (r < 0)
            return r;
        if (!doc) /* "default" gets its document now */
            doc = json_pack("{s:o, s:o}", "quotas", json_object(), "created_at",
                            vo_time_json(vo_wall_ms()));
        if ((r = merge_quotas(doc, quotas, ret_error)) < 0) {
            json_decref(doc);
            return r;
        }
        r = put_project(d, name, doc, rev);
        if (r >= 0)
            r = project_json(d, name, doc, false, ret, ret_error);
        json_decref(doc);
        if (r != -ESTALE && r != -EEXIST && r != -ENOENT)
            return r < 0 ? vo_error_set(ret_error, r, "cannot save project '%s': %s", name,
                                        strerror(-r))
                         : 0;
    }
    return vo_error_set(ret_error, -ESTALE, "project '%s' keeps changing; try again", name);
}

int vo_project_delete(VoDaemon *d, const char *name, char **ret_error)
{
    if (name && !strcmp(name, DEFAULT_PROJECT))
        return vo_error_set(ret_error, -EINVAL, "project 'default' cannot be deleted: VMs "
                            "made without --project belong to it");
    for (int attempt = 0; attempt < 20; attempt++) {
        json_t *doc = NULL;
        int64_t rev = 0;
        int r = get_project(d->store, name, &doc, &rev, ret_error);
        json_decref(doc);
        if (r < 0)
            return r;
        /* The usage after the document: a VM added between the two reads
         * moved the document on, and the delete below fails. */
        UsageSum u = { .vms = json_array() };
        r = read_usage(d->store, name, &u);
        if (r >= 0 && json_array_size(u.vms)) {
            _cleanup_free_ char *words = vo_strdup("");
            size_t i;
            json_t *vm;
            json_array_foreach(u.vms, i, vm) {
                const char *vm_name = json_string_value(json_object_get(vm, "name"));
                char *more = i == 5 ? vo_asprintf("%s, ...", words)
                                    : vo_asprintf("%s%s%s", words, i ? ", " : "",
                                                  vm_name ? vm_name : "?");
                free(words);
                words = more;
                if (i == 5)
                    break;
            }
            r = vo_error_set(ret_error, -EBUSY, "project '%s' holds %zu VM%s (%s): delete them "
                             "or move them to another project (vireo vm set VM --project P) "
                             "first", name, json_array_size(u.vms),
                             json_array_size(u.vms) == 1 ? "" : "s", words);
        }
        json_decref(u.vms);
        if (r < 0)
            return r;
        _cleanup_free_ char *key = vo_key_project(name);
        r = vo_store_delete(d->store, key, rev);
        if (r == -ESTALE)
            continue;
        if (r == -ENOENT)
            return not_found(name, ret_error);
        if (r < 0)
            return vo_error_set(ret_error, r, "cannot delete project '%s': %s", name,
                                strerror(-r));
        log_info("project '%s' deleted", name);
        return 0;
    }
    return vo_error_set(ret_error, -ESTALE, "project '%s' keeps changing; try again", name);
}
