/* cluster-join-projects.c: a standalone host's projects at `vireo cluster
 * join` (docs/projects.md, "Joining a cluster"): they are merged into the
 * cluster's. A project the cluster lacks comes with its document (its
 * quotas); one of the same name the cluster has (and "default") gains the
 * joiner's VMs, volumes and networks under the cluster's quotas, which
 * must hold them: else the join is refused naming the project and the
 * quota. The member checks at admission (a refusal costs nothing then);
 * the joiner checks again when it copies, each project in a transaction
 * compared on the cluster's project document, as a create is. */
#include <string.h>

#include "daemon/cluster.h"
#include "state/keys.h"
#include "vireo/errors.h"
#include "state/project-objects.h"
#include "state/project-usage.h"
#include "util/util.h"

#define COPY_ATTEMPTS 20

/* The project a "cluster/projects/<P>" or "cluster/project-usage/<P>/..."
 * key names, added to the set (a JSON object used as one). */
static int collect_project_name(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)value, (void)rev;
    const char *rest = !strncmp(key, VO_KEY_PROJECTS_PREFIX, strlen(VO_KEY_PROJECTS_PREFIX))
                           ? key + strlen(VO_KEY_PROJECTS_PREFIX)
                           : key + strlen(VO_KEY_PROJECT_USAGE_PREFIX);
    const char *slash = strchr(rest, '/');
    _cleanup_free_ char *name = slash ? strndup(rest, (size_t)(slash - rest)) : vo_strdup(rest);
    if (name && name[0])
        json_object_set_new(userdata, name, json_true());
    return 0;
}

int vo_cluster_join_projects(VoStore *local, json_t **ret)
{
    json_t *names = json_object();
    int r = vo_store_list(local, VO_KEY_PROJECTS_PREFIX, collect_project_name, names);
    if (r >= 0)
        r = vo_store_list(local, VO_KEY_PROJECT_USAGE_PREFIX, collect_project_name, names);
    json_t *projects = json_object();
    const char *name;
    json_t *unused;
    json_object_foreach(names, name, unused) {
        VoProjectUsage u = { 0 };
        if (r >= 0 && (r = vo_project_usage_read(local, name, &u)) >= 0)
            json_object_set_new(projects, name, json_pack("{s:o}", "usage", vo_quota_to_json(&u.used, 0)));
    }
    json_decref(names);
    if (r < 0) {
        json_decref(projects);
        return r;
    }
    *ret = projects;
    return 0;
}

/* The joiner's use of a project ({"usage": {...}}), checked against the
 * cluster's project of that name: 0 (fits, or the cluster lacks it: it
 * comes with its own quotas), -VO_EQUOTA with *ret_error naming the quota,
 * -ENOENT when the cluster lacks it (*ret_error NULL), or the store's
 * error. guard: the cluster's project document to compare. */
static int check_one(VoStore *cluster, const char *name, json_t *entry, VoProjectGuard *guard,
                     char **ret_error)
{
    VoQuota adding = { 0 }, none = { 0 };
    json_t *usage = json_object_get(entry, "usage");
    for (VoQuotaKind k = 0; k < _VO_QUOTA_MAX; k++)
        vo_quota_set(&adding, k, json_integer_value(json_object_get(usage, vo_quota_name(k))));
    _cleanup_free_ char *error = NULL;
    /* Except no usage document: the joiner's are not in the cluster yet. */
    int r = vo_project_check(cluster, name, "", &none, &adding, guard, &error);
    if (r == -ENOENT && strcmp(name, "default"))
        return -ENOENT;
    if (r < 0 && ret_error)
        *ret_error = TAKE_PTR(error);
    return r;
}

void vo_cluster_admit_projects(VoStore *cluster, json_t *projects, char ***collisions)
{
    const char *name;
    json_t *entry;
    json_object_foreach(projects, name, entry) {
        VoProjectGuard guard = { 0 };
        _cleanup_free_ char *error = NULL;
        int r = check_one(cluster, name, entry, &guard, &error);
        vo_project_guard_clear(&guard);
        if (r == -VO_EQUOTA)
            vo_strv_pushf(collisions, "its VMs, volumes and networks in project '%s' do not "
                          "fit the cluster's quotas (%s)", name, error);
        else if (r < 0 && r != -ENOENT)
            vo_strv_pushf(collisions, "project '%s': %s", name, error ? error : strerror(-r));
    }
}

typedef struct {
    const char *project;
    char **keys, **values; /* strv, the same length */
} ProjectDocs;

/* The joiner's documents of one project: its usage documents, and its
 * objects' documents (listed under cluster/object-projects/<kind>/<host>/:
 * only this host's own objects; a standalone host has no others). */
static int collect_object_doc(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    ProjectDocs *p = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *project = json_string_value(json_object_get(doc, "project"));
    if (project && !strcmp(project, p->project)) {
        vo_strv_pushf(&p->keys, "%s", key);
        vo_strv_pushf(&p->values, "%s", value);
    }
    json_decref(doc);
    return 0;
}

static int collect_doc(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    ProjectDocs *p = userdata;
    vo_strv_pushf(&p->keys, "%s", key);
    vo_strv_pushf(&p->values, "%s", value);
    return 0;
}

/* One attempt at one project: checked, then its documents created in
 * transactions, each compared on the project's document (put again, or
 * the joiner's put when the cluster lacks the project). *ret_created
 * (set as soon as that first transaction committed, even when a later one
 * then fails): the cluster lacked it. -ESTALE: the project's document changed, again;
 * -EEXIST: one of the copied documents is already in the cluster. */
static int copy_once(VoStore *local, VoStore *to, const char *name, json_t *entry,
                     const ProjectDocs *p, bool *ret_created, char **ret_error)
{
    VoProjectGuard guard = { 0 };
    _cleanup_free_ char *error = NULL, *own_doc = NULL;
    bool creating = false;
    int r = check_one(to, name, entry, &guard, &error);
    if (r == -ENOENT) { /* the cluster lacks it: the joiner's document comes */
        guard.key = vo_key_project(name);
        guard.rev = VO_REV_NEW;
        r = vo_store_get(local, guard.key, &own_doc, NULL);
        if (r == -ENOENT && !strcmp(name, "default"))
            r = 0;
        if (r < 0)
            error = vo_asprintf("cannot read project '%s': %s", name, strerror(-r));
        guard.doc = own_doc ? vo_strdup(own_doc) : NULL;
        creating = guard.doc != NULL;
    }
    if (r < 0) {
        vo_project_guard_clear(&guard);
        return vo_error_set(ret_error, r, "project '%s' cannot come into the cluster: %s", name,
                            error ? error : strerror(-r));
    }
    size_t n = vo_strv_len(p->keys);
    VoStoreCompare *cmps = vo_malloc0(sizeof(*cmps) * (VO_STORE_ETCD_MAX_TXN_OPS + 1));
    VoStoreOp *ops = vo_malloc0(sizeof(*ops) * (VO_STORE_ETCD_MAX_TXN_OPS + 1));
    size_t i = 0;
    bool first = true;
    do {
        /* Every batch is compared on the project's document and puts it
         * again (as a create does): a create checked between two batches,
         * on a use that lacks the later ones, cannot commit with them. */
        size_t nc = 0, no = 0;
        cmps[nc++] = (VoStoreCompare){ .key = guard.key, .expected_rev = guard.rev };
        if (guard.doc)
            ops[no++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = guard.key,
                                     .value = guard.doc };
        /* Both bounded: "default" without a document has a compare and no put. */
        for (; i < n && no < VO_STORE_ETCD_MAX_TXN_OPS && nc < VO_STORE_ETCD_MAX_TXN_OPS; i++) {
            cmps[nc++] = (VoStoreCompare){ .key = p->keys[i], .expected_rev = VO_REV_NEW };
            ops[no++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = p->keys[i],
                                     .value = p->values[i] };
        }
        size_t failed = 0;
        int64_t rev = 0;
        r = no ? vo_store_txn(to, cmps, nc, ops, no, &rev, &failed) : 0;
        if (r >= 0 && first && creating)
            *ret_created = true; /* committed: a later batch's failure must undo it too */
        if (r >= 0 && guard.doc)
            guard.rev = rev; /* the document as this batch put it */
        if ((r == -ESTALE || r == -EEXIST || r == -ENOENT) && first && failed == 0) {
            r = -ESTALE; /* the project changed (or went) since the check: again */
            break;
        }
        if ((r == -ESTALE || r == -EEXIST || r == -ENOENT) && failed == 0)
            r = vo_error_set(ret_error, -EAGAIN, "project '%s' changed in the cluster during "
                             "the copy: try the join again", name);
        else if (r == -EEXIST)
            r = vo_error_set(ret_error, r, "the cluster already has a document %s",
                             cmps[failed].key);
        else if (r < 0)
            r = vo_error_set(ret_error, r, "cannot copy project '%s': %s", name,
                             r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
        first = false;
    } while (r >= 0 && i < n);
    free(cmps);
    free(ops);
    vo_project_guard_clear(&guard);
    return r;
}

int vo_cluster_copy_projects(VoStore *local, VoStore *to, const char *host_id,
                             char ***ret_created, char **ret_error)
{
    json_t *projects = NULL;
    int r = vo_cluster_join_projects(local, &projects);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read this host's projects: %s", strerror(-r));
    const char *name;
    json_t *entry;
    json_object_foreach(projects, name, entry) {
        ProjectDocs p = { .project = name };
        _cleanup_free_ char *usage = vo_key_project_usage_prefix(name);
        _cleanup_free_ char *volumes = vo_asprintf(VO_KEY_OBJECT_PROJECTS_PREFIX "volume/%s/",
                                                   host_id);
        _cleanup_free_ char *networks = vo_asprintf(VO_KEY_OBJECT_PROJECTS_PREFIX "network/%s/",
                                                    host_id);
        if ((r = vo_store_list(local, usage, collect_doc, &p)) >= 0 &&
            (r = vo_store_list(local, volumes, collect_object_doc, &p)) >= 0)
            r = vo_store_list(local, networks, collect_object_doc, &p);
        if (r < 0)
            r = vo_error_set(ret_error, r, "cannot read project '%s': %s", name, strerror(-r));
        for (int attempt = 0; r >= 0 && attempt < COPY_ATTEMPTS; attempt++) {
            bool created = false;
            r = copy_once(local, to, name, entry, &p, &created, ret_error);
            if (r == -ESTALE) /* only the project's document: a document of
                               * the copy already there is no race, retrying
                               * cannot help */
                continue;
            if (created)
                vo_strv_pushf(ret_created, "%s", name);
            break;
        }
        if (r == -ESTALE)
            r = vo_error_set(ret_error, -EAGAIN, "project '%s' keeps changing in the cluster: "
                             "try the join again", name);
        vo_strv_free(p.keys);
        vo_strv_free(p.values);
        if (r < 0)
            break;
    }
    json_decref(projects);
    return r;
}

void vo_cluster_copy_projects_undo(VoStore *raw, const char *host_id, char **created)
{
    static const char *const kinds[] = { "volume", "network", NULL };
    for (size_t k = 0; kinds[k]; k++) {
        _cleanup_free_ char *prefix = vo_asprintf(VO_KEY_OBJECT_PROJECTS_PREFIX "%s/%s/",
                                                  kinds[k], host_id);
        if (vo_cluster_delete_prefix(raw, prefix) < 0)
            log_warn("join undo: cannot delete %s*", prefix);
    }
    /* A project the join brought goes again when nothing is left in it
     * (forget_records took this host's usage documents). */
    for (size_t i = 0; created && created[i]; i++) {
        VoProjectUsage u = { .vms = json_array(), .objects = json_array() };
        _cleanup_free_ char *key = vo_key_project(created[i]), *text = NULL;
        int64_t rev = 0;
        if (vo_project_usage_read(raw, created[i], &u) >= 0 && !json_array_size(u.vms) &&
            !json_array_size(u.objects) && vo_store_get(raw, key, &text, &rev) >= 0)
            (void)vo_store_delete(raw, key, rev);
        json_decref(u.vms);
        json_decref(u.objects);
    }
}
