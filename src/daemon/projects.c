/* projects.c: projects and their quotas, the routes' side (projects.h):
 * create, list, show with usage, set quotas, delete when empty. The check a
 * VM's save makes is state/project-usage.c's. */
#include "daemon/projects.h"

#include <string.h>

#include "daemon/project-heal.h"
#include "state/keys.h"
#include "state/projects-snapshot.h"
#include "util/time-format.h"
#include "util/util.h"

#define DEFAULT_PROJECT "default"


/* {"name","quotas","usage","counts","created_at"} of a project's document
 * (NULL: "default" without one) and its usage read (+ "vms", "volumes" and
 * "networks" when u listed them). Takes u's lists. */
static json_t *project_json_of(const char *name, json_t *doc, VoProjectUsage *u)
{
    VoQuota limits;
    if (vo_quota_from_json(doc ? json_object_get(doc, "quotas") : NULL, &limits, NULL) < 0)
        vo_quota_unlimited(&limits);
    json_t *o = json_pack("{s:s, s:o, s:o}", "name", name, "quotas",
                          vo_quota_to_json(&limits, 1), "usage", vo_quota_to_json(&u->used, 0));
    /* What it holds on every host, from the cluster's usage documents. */
    json_object_set_new(o, "counts", json_pack("{s:I, s:I}", "volumes", (json_int_t)u->volumes,
                                               "networks", (json_int_t)u->networks));
    json_t *created = doc ? json_object_get(doc, "created_at") : NULL;
    if (created)
        json_object_set(o, "created_at", created);
    if (u->vms)
        json_object_set_new(o, "vms", u->vms);
    if (u->objects) { /* "volumes": [{"volume","host","disk_bytes"}], "networks" likewise */
        json_t *volumes = json_array(), *networks = json_array();
        size_t i;
        json_t *one;
        json_array_foreach(u->objects, i, one) {
            bool volume = !strcmp(json_string_value(json_object_get(one, "kind")), "volume");
            json_array_append_new(volume ? volumes : networks,
                                  json_pack("{s:O, s:O}", volume ? "volume" : "network",
                                            json_object_get(one, "object"), "host",
                                            json_object_get(one, "host")));
            if (volume)
                json_object_set(json_array_get(volumes, json_array_size(volumes) - 1),
                                "disk_bytes", json_object_get(one, "disk_bytes"));
        }
        json_object_set_new(o, "volumes", volumes);
        json_object_set_new(o, "networks", networks);
        json_decref(u->objects);
    }
    return o;
}

/* The same of a project read now (+ "vms", "volumes" and "networks" with_vms). */
static int project_json(VoDaemon *d, const char *name, json_t *doc, bool with_vms, json_t **ret,
                        char **ret_error)
{
    VoProjectUsage u = { .vms = with_vms ? json_array() : NULL,
                         .objects = with_vms ? json_array() : NULL };
    int r = vo_project_usage_read(d->store, name, &u);
    if (r < 0) {
        json_decref(u.vms);
        json_decref(u.objects);
        return vo_error_set(ret_error, r, "cannot read the usage of project '%s': %s", name,
                            strerror(-r));
    }
    *ret = project_json_of(name, doc, &u);
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
    int r = vo_project_name_check(name, ret_error);
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

int vo_projects_list_json(VoDaemon *d, json_t **ret, char **ret_error)
{
    /* One read of the store: a volume moved between two projects meanwhile
     * counts in one of them. */
    VoProjectRead *all = NULL;
    size_t n = 0;
    int r = vo_projects_snapshot(d->store, &all, &n);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the projects: %s", strerror(-r));
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, project_json_of(all[i].name, all[i].doc, &all[i].usage));
    vo_projects_snapshot_free(all, n);
    *ret = json_pack("{s:o}", "projects", list);
    return 0;
}

int vo_project_exists(VoDaemon *d, const char *name, char **ret_error)
{
    json_t *doc = NULL;
    int64_t rev = 0;
    int r = vo_project_read(d->store, name, &doc, &rev, ret_error);
    json_decref(doc);
    return r;
}

int vo_project_show_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error)
{
    json_t *doc = NULL;
    int64_t rev = 0;
    int r = vo_project_read(d->store, name, &doc, &rev, ret_error);
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
        int r = vo_project_read(d->store, name, &doc, &rev, ret_error);
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

/* -EBUSY naming the volumes and networks a project still holds (at most
 * five), and the host of those this host cannot tell about. */
static int refuse_objects(VoDaemon *d, const char *name, json_t *objects, char **ret_error)
{
    _cleanup_free_ char *words = vo_strdup("");
    size_t i;
    json_t *one;
    json_array_foreach(objects, i, one) {
        _cleanup_free_ char *where = i < 5 ? vo_project_object_where(d, one) : NULL;
        char *more = i == 5 ? vo_asprintf("%s, ...", words)
                            : vo_asprintf("%s%s%s '%s'%s", words, i ? ", " : "",
                                          json_string_value(json_object_get(one, "kind")),
                                          json_string_value(json_object_get(one, "object")),
                                          where);
        free(words);
        words = more;
        if (i == 5)
            break;
    }
    return vo_error_set(ret_error, -EBUSY, "project '%s' holds %zu volume%s or network%s "
                        "(%s): delete them or move them out (vireo volume set POOL/NAME "
                        "--project P, vireo network set NAME --project P) first", name,
                        json_array_size(objects), json_array_size(objects) == 1 ? "" : "s",
                        json_array_size(objects) == 1 ? "" : "s", words);
}

int vo_project_delete(VoDaemon *d, const char *name, char **ret_error)
{
    if (name && !strcmp(name, DEFAULT_PROJECT))
        return vo_error_set(ret_error, -EINVAL, "project 'default' cannot be deleted: VMs "
                            "made without --project belong to it");
    for (int attempt = 0; attempt < 20; attempt++) {
        json_t *doc = NULL;
        int64_t rev = 0;
        int r = vo_project_read(d->store, name, &doc, &rev, ret_error);
        json_decref(doc);
        if (r < 0)
            return r;
        /* The usage after the document: a VM added between the two reads
         * moved the document on, and the delete below fails. */
        VoProjectUsage u = { .vms = json_array(), .objects = json_array() };
        r = vo_project_usage_read(d->store, name, &u);
        if (r >= 0 && !json_array_size(u.vms) && json_array_size(u.objects) &&
            vo_project_heal(d, name) > 0) { /* left behind by a crash: read again */
            json_array_clear(u.objects);
            u.used = (VoQuota){ 0 };
            r = vo_project_usage_read(d->store, name, &u);
        }
        if (r >= 0 && !json_array_size(u.vms) && json_array_size(u.objects))
            r = refuse_objects(d, name, u.objects, ret_error);
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
        json_decref(u.objects);
        if (r < 0)
            return r;
        _cleanup_free_ char *key = vo_key_project(name);
        r = vo_store_delete(d->store, key, rev);
        if (r == -ESTALE)
            continue;
        if (r == -ENOENT)
            return vo_project_not_found(name, ret_error);
        if (r < 0)
            return vo_error_set(ret_error, r, "cannot delete project '%s': %s", name,
                                strerror(-r));
        log_info("project '%s' deleted", name);
        return 0;
    }
    return vo_error_set(ret_error, -ESTALE, "project '%s' keeps changing; try again", name);
}
