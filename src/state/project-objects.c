/* project-objects.c: the project a volume or network belongs to, and the
 * disk it counts against that project's quota (project-objects.h): read,
 * set (checked, compared on the project's document), forgotten. */
#include "state/project-objects.h"

#include <string.h>

#include "conf/quota.h"
#include "state/keys.h"
#include "state/project-usage.h"
#include "util/test-hold.h"
#include "util/util.h"

#define SET_ATTEMPTS 100

static char *object_key(const VoProjectObject *o)
{
    return vo_asprintf(VO_KEY_OBJECT_PROJECTS_PREFIX "%s/%s/%s", o->kind, o->scope, o->id);
}

char *vo_project_object_mark_key(const VoProjectObject *o)
{
    return vo_asprintf(VO_KEY_OBJECT_MOVES_PREFIX "%s/%s/%s", o->kind, o->scope, o->id);
}

/* The last segment of its usage document's key: "<kind>:<scope>:<id>",
 * '/' as ':' (names hold neither). */
static char *usage_name(const VoProjectObject *o)
{
    char *name = vo_asprintf("%s:%s:%s", o->kind, o->scope, o->id);
    for (char *c = name; *c; c++)
        if (*c == '/')
            *c = ':';
    return name;
}

static char *usage_key(const VoProjectObject *o, const char *project)
{
    _cleanup_free_ char *name = usage_name(o);
    return vo_asprintf(VO_KEY_PROJECT_USAGE_PREFIX "%s/%s", project, name);
}

const char *vo_project_usage_doc_kind(json_t *doc)
{
    return json_string_value(json_object_get(doc, "kind"));
}

/* The object's document: its project (NULL) and figure, and revision. */
static int read_object(VoStore *s, const VoProjectObject *o, char **ret_project,
                       int64_t *ret_disk, int64_t *ret_rev)
{
    _cleanup_free_ char *key = object_key(o), *text = NULL;
    *ret_project = NULL;
    *ret_disk = 0;
    *ret_rev = VO_REV_NEW;
    int r = vo_store_get(s, key, &text, ret_rev);
    if (r == -ENOENT) {
        *ret_rev = VO_REV_NEW;
        return 0;
    }
    if (r < 0)
        return r;
    json_t *doc = json_loads(text, 0, NULL);
    const char *project = json_string_value(json_object_get(doc, "project"));
    *ret_project = project ? vo_strdup(project) : NULL;
    *ret_disk = json_integer_value(json_object_get(doc, "disk_bytes"));
    json_decref(doc);
    return 0;
}

int vo_project_object_get(VoStore *s, const VoProjectObject *o, char **ret_project,
                          int64_t *ret_disk_bytes)
{
    int64_t disk = 0, rev = 0;
    int r = read_object(s, o, ret_project, &disk, &rev);
    if (r >= 0 && ret_disk_bytes)
        *ret_disk_bytes = disk;
    return r;
}

/* Checks that disk_bytes from before to after fit project's disk quota
 * (the others' use: without this object's usage document), and fills guard
 * with the project's document to compare and put again. */
static int check_project(VoStore *s, const VoProjectObject *o, const char *project,
                         int64_t before, int64_t after, VoProjectGuard *guard, char **ret_error)
{
    _cleanup_free_ char *self = usage_name(o);
    VoQuota was = { .disk_bytes = before }, will = { .disk_bytes = after };
    return vo_project_check(s, project, self, &was, &will, guard, ret_error);
}

static char *usage_text(const VoProjectObject *o, const char *host_id, int64_t disk)
{
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:I}", "kind", o->kind, "object", o->id,
                            "scope", o->scope, "host", host_id ? host_id : "", "disk_bytes",
                            (json_int_t)disk);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

static char *object_text(const char *project, int64_t disk)
{
    json_t *doc = json_pack("{s:s, s:I}", "project", project, "disk_bytes", (json_int_t)disk);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

/* What one attempt writes (set_once). */
typedef struct {
    const char *project; /* the project it goes to (NULL: none) */
    bool keep_project;   /* ... or the one it has (a grow: read in the attempt) */
    int64_t disk;        /* its figure; < 0: the one it has */
    int64_t grow;        /* added to the figure it has (a grow) */
    bool keep_figure;    /* a move: the figure it has when it has one, else disk */
    const VoObjectMoveMark *mark;  /* a move's, which must still be there */
    const VoStoreCompare *exists;  /* the object's own document, as read */
    bool rewrite;        /* a create's: written even when as it was (below) */
} SetWant;

/* One attempt: the object's documents from (old, old_disk) at rev to what
 * w says. -ESTALE/-EEXIST/-ENOENT of a compare: read again; -ETIME when
 * the move's mark lapsed, -ENOENT (deleted) or -EBUSY (changed) when the
 * object's own document is not as read (w->exists), with *ret_error. 1 with keep_project when the object
 * has no project or no figure (nothing to grow). */
static int set_once(VoStore *s, const VoProjectObject *o, const SetWant *w, const char *host_id,
                    char **ret_error)
{
    _cleanup_free_ char *old = NULL;
    int64_t old_disk = 0, rev = 0;
    int r = read_object(s, o, &old, &old_disk, &rev);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the project of %s '%s': %s", o->kind,
                            o->id, strerror(-r));
    if (w->keep_project && (!old || old_disk <= 0))
        return 1;
    if (w->keep_project) /* tests hold a grow here, its project read, to race a move */
        vo_test_hold("project_grow_read");
    const char *project = w->keep_project ? old : w->project;
    int64_t disk = w->keep_project ? old_disk + w->grow
                   : w->disk < 0 || (w->keep_figure && old_disk > 0) ? old_disk : w->disk;
    if (disk <= 0 && w->keep_project)
        disk = 1;
    bool same = (!old && !project) || (old && project && !strcmp(old, project));
    /* A create over documents a crash left (same project, same figure)
     * still writes them: their revision moves, so a heal that read them
     * before the object registered fails its compare (forget_gone). */
    if (same && disk == old_disk && !(w->rewrite && project))
        return 0;
    VoProjectGuard guard = { 0 };
    if (project && (r = check_project(s, o, project, same ? old_disk : 0, disk, &guard,
                                      ret_error)) < 0)
        return r;
    _cleanup_free_ char *okey = object_key(o);
    _cleanup_free_ char *old_usage = old && !same ? usage_key(o, old) : NULL;
    _cleanup_free_ char *new_usage = project ? usage_key(o, project) : NULL;
    _cleanup_free_ char *utext = project ? usage_text(o, host_id, disk) : NULL;
    _cleanup_free_ char *otext = project ? object_text(project, disk) : NULL;
    VoStoreCompare cmps[4] = { { .key = okey, .expected_rev = rev } };
    size_t n_cmps = 1, mark_at = 0, exists_at = 0;
    if (w->mark) {
        mark_at = n_cmps;
        cmps[n_cmps++] = (VoStoreCompare){ .key = w->mark->key, .expected_rev = w->mark->rev };
    }
    if (w->exists) {
        exists_at = n_cmps;
        cmps[n_cmps++] = *w->exists;
    }
    VoStoreOp ops[4];
    size_t n = 0;
    if (guard.key) {
        cmps[n_cmps++] = (VoStoreCompare){ .key = guard.key, .expected_rev = guard.rev };
        if (guard.doc) /* "default" without a document is compared absent */
            ops[n++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = guard.key, .value = guard.doc };
    }
    if (old_usage)
        ops[n++] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = old_usage };
    if (project) {
        ops[n++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = new_usage, .value = utext };
        ops[n++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = okey, .value = otext };
    } else
        ops[n++] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = okey };
    size_t failed = 0;
    r = vo_store_txn(s, cmps, n_cmps, ops, n, NULL, &failed);
    vo_project_guard_clear(&guard);
    if ((r == -ESTALE || r == -ENOENT) && mark_at && failed == mark_at)
        r = vo_error_set(ret_error, -ETIME, "%s '%s': its move took longer than %d s and "
                         "was given up; nothing changed: try again", o->kind, o->id,
                         VO_OBJECT_MOVE_TTL_MS / 1000);
    else if ((r == -ESTALE || r == -ENOENT) && exists_at && failed == exists_at)
        r = vo_error_set(ret_error, r == -ENOENT ? -ENOENT : -EBUSY, "%s '%s' %s during its "
                         "move to another project (on this or another host); nothing moved",
                         o->kind, o->id, r == -ENOENT ? "was deleted" : "changed: try again");
    return r;
}

static int set_with(VoStore *s, const VoProjectObject *o, const SetWant *w, const char *host_id,
                    char **ret_error)
{
    /* Each retry follows another change's commit (of the object or of the
     * project): bounded. */
    for (int attempt = 0; attempt < SET_ATTEMPTS; attempt++) {
        _cleanup_free_ char *error = NULL;
        int r = set_once(s, o, w, host_id, &error);
        if (r == -ESTALE || r == -EEXIST || (r == -ENOENT && !error))
            continue;
        if (r == -ETIME)
            r = -EAGAIN;
        if (r < 0 && ret_error)
            *ret_error = TAKE_PTR(error);
        return r;
    }
    return vo_error_set(ret_error, -EAGAIN, "%s '%s': its project keeps changing; try again",
                        o->kind, o->id);
}

int vo_project_object_set(VoStore *s, const VoProjectObject *o, const char *project,
                          int64_t disk_bytes, const char *host_id, char **ret_error)
{
    SetWant w = { .project = project, .disk = disk_bytes, .rewrite = true };
    return set_with(s, o, &w, host_id, ret_error);
}

int vo_project_object_grow(VoStore *s, const VoProjectObject *o, int64_t delta,
                           const char *host_id, char **ret_error)
{
    SetWant w = { .keep_project = true, .grow = delta };
    int r = set_with(s, o, &w, host_id, ret_error);
    return r < 0 ? r : r == 1 ? 0 : 1;
}

void vo_object_compares_clear(VoObjectCompares *c)
{
    for (size_t i = 0; i < c->n; i++)
        free((char *)c->cmps[i].key);
    free(c->cmps);
    *c = (VoObjectCompares){ 0 };
}

static void compare_add(VoObjectCompares *c, char *key, int64_t rev)
{
    c->cmps = realloc(c->cmps, (c->n + 1) * sizeof(*c->cmps));
    if (!c->cmps)
        abort();
    c->cmps[c->n++] = (VoStoreCompare){ .key = key, .expected_rev = rev };
}

int vo_project_object_read(VoStore *s, const VoProjectObject *o, char **ret_project,
                           VoObjectCompares *add)
{
    *ret_project = NULL;
    char *mkey = vo_project_object_mark_key(o);
    int r = vo_store_get(s, mkey, NULL, NULL);
    if (r != -ENOENT) {
        free(mkey);
        return r < 0 ? r : -EBUSY;
    }
    int64_t disk = 0, rev = 0;
    if ((r = read_object(s, o, ret_project, &disk, &rev)) < 0) {
        free(mkey);
        return r;
    }
    compare_add(add, object_key(o), rev);
    compare_add(add, mkey, VO_REV_NEW);
    return 0;
}

int vo_project_object_mark(VoStore *s, const VoProjectObject *o, const char *host_id,
                           const char *project, VoObjectMoveMark *ret, char **ret_error)
{
    *ret = (VoObjectMoveMark){ 0 };
    int64_t lease = 0;
    int r = s->ops->lease_grant(s, VO_OBJECT_MOVE_TTL_MS, &lease);
    if (r < 0)
        return vo_error_set(ret_error, r, "%s '%s': cannot mark its move: %s", o->kind, o->id,
                            strerror(-r));
    json_t *doc = json_pack("{s:s, s:s?}", "host", host_id ? host_id : "", "project", project);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    char *key = vo_project_object_mark_key(o);
    int64_t rev = 0;
    r = vo_store_put_lease(s, key, text, VO_REV_NEW, lease, &rev);
    if (r < 0) {
        (void)s->ops->lease_revoke(s, lease);
        free(key);
        if (r == -EEXIST)
            return vo_error_set(ret_error, -EBUSY, "%s '%s' is being moved to another project "
                                "(on this or another host); try again when it is done",
                                o->kind, o->id);
        return vo_error_set(ret_error, r, "%s '%s': cannot mark its move: %s", o->kind, o->id,
                            strerror(-r));
    }
    *ret = (VoObjectMoveMark){ .key = key, .rev = rev, .lease = lease };
    return 0;
}

void vo_project_object_unmark(VoStore *s, VoObjectMoveMark *mark)
{
    if (mark->lease)
        (void)s->ops->lease_revoke(s, mark->lease); /* the mark goes with it */
    free(mark->key);
    *mark = (VoObjectMoveMark){ 0 };
}

int vo_project_object_set_marked(VoStore *s, const VoProjectObject *o, const char *project,
                                 int64_t disk_bytes, const char *host_id,
                                 const VoStoreCompare *exists, VoObjectMoveMark *mark,
                                 char **ret_error)
{
    SetWant w = { .project = project, .disk = disk_bytes, .keep_figure = true, .mark = mark,
                  .exists = exists };
    int r = set_with(s, o, &w, host_id, ret_error);
    vo_project_object_unmark(s, mark);
    return r;
}

/* The object's two documents go, compared on the first at rev. */
static int delete_documents(VoStore *s, const VoProjectObject *o, const char *project,
                            int64_t rev)
{
    _cleanup_free_ char *okey = object_key(o), *ukey = usage_key(o, project);
    VoStoreCompare cmp = { .key = okey, .expected_rev = rev };
    VoStoreOp ops[2] = { { .kind = VO_STORE_DELETE, .key = okey },
                         { .kind = VO_STORE_DELETE, .key = ukey } };
    return vo_store_txn(s, &cmp, 1, ops, 2, NULL, NULL);
}

int vo_project_object_forget(VoStore *s, const VoProjectObject *o)
{
    for (int attempt = 0; attempt < SET_ATTEMPTS; attempt++) {
        _cleanup_free_ char *old = NULL;
        int64_t disk = 0, rev = 0;
        int r = read_object(s, o, &old, &disk, &rev);
        if (r < 0 || !old)
            return r;
        r = delete_documents(s, o, old, rev);
        if (r != -ESTALE && r != -ENOENT)
            return r;
    }
    return -EAGAIN;
}

int vo_project_object_forget_gone(VoStore *s, const VoProjectObject *o,
                                  VoProjectObjectGoneFn gone, void *userdata)
{
    _cleanup_free_ char *project = NULL;
    int64_t disk = 0, rev = 0;
    int r = read_object(s, o, &project, &disk, &rev);
    if (r < 0 || !project)
        return r;
    /* Asked after the read: an object made again registers before it
     * writes its documents (so gone says 0), or moves them on (so the
     * compare below fails). */
    if ((r = gone(o, userdata)) <= 0)
        return r;
    r = delete_documents(s, o, project, rev);
    return r == -ESTALE || r == -ENOENT ? 0 : r < 0 ? r : 1;
}

typedef struct {
    size_t prefix_len;
    json_t *map;
} ObjectsOf;

static int collect_object(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    ObjectsOf *c = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    json_t *project = json_object_get(doc, "project");
    if (json_is_string(project))
        json_object_set(c->map, key + c->prefix_len, project);
    json_decref(doc);
    return 0;
}

int vo_project_objects_of(VoStore *s, const char *kind, const char *scope, json_t **ret)
{
    _cleanup_free_ char *prefix = vo_asprintf(VO_KEY_OBJECT_PROJECTS_PREFIX "%s/%s/", kind,
                                              scope);
    ObjectsOf c = { .prefix_len = strlen(prefix), .map = json_object() };
    int r = vo_store_list(s, prefix, collect_object, &c);
    if (r < 0) {
        json_decref(c.map);
        return r;
    }
    *ret = c.map;
    return 0;
}

int vo_project_object_carry_read(VoStore *s, const VoProjectObject *from,
                                 const VoProjectObject *to, const char *host_id,
                                 VoProjectObjectCarry *c)
{
    *c = (VoProjectObjectCarry){ 0 };
    _cleanup_free_ char *project = NULL;
    int64_t disk = 0;
    int r = read_object(s, from, &project, &disk, &c->object_rev);
    if (r < 0 || !project)
        return r;
    c->found = true;
    c->old_object_key = object_key(from);
    c->old_usage_key = usage_key(from, project);
    c->new_object_key = object_key(to);
    c->new_usage_key = usage_key(to, project);
    c->object_text = object_text(project, disk);
    c->usage_text = usage_text(to, host_id, disk);
    _cleanup_free_ char *old_usage = NULL;
    r = vo_store_get(s, c->old_usage_key, &old_usage, &c->usage_rev);
    if (r == -ENOENT) { /* an object document without its usage document */
        c->usage_rev = VO_REV_NEW;
        r = 0;
    }
    return r;
}

void vo_project_object_carry_add(const VoProjectObjectCarry *c, VoStoreCompare *cmps,
                                 size_t *n_cmps, VoStoreOp *ops, size_t *n_ops)
{
    if (!c->found)
        return;
    cmps[(*n_cmps)++] = (VoStoreCompare){ .key = c->old_object_key, .expected_rev = c->object_rev };
    cmps[(*n_cmps)++] = (VoStoreCompare){ .key = c->old_usage_key, .expected_rev = c->usage_rev };
    cmps[(*n_cmps)++] = (VoStoreCompare){ .key = c->new_object_key, .expected_rev = VO_REV_NEW };
    cmps[(*n_cmps)++] = (VoStoreCompare){ .key = c->new_usage_key, .expected_rev = VO_REV_NEW };
    ops[(*n_ops)++] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = c->old_object_key };
    ops[(*n_ops)++] = (VoStoreOp){ .kind = VO_STORE_DELETE, .key = c->old_usage_key };
    ops[(*n_ops)++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = c->new_object_key,
                                   .value = c->object_text };
    ops[(*n_ops)++] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = c->new_usage_key,
                                   .value = c->usage_text };
}

void vo_project_object_carry_clear(VoProjectObjectCarry *c)
{
    free(c->old_object_key);
    free(c->old_usage_key);
    free(c->new_object_key);
    free(c->new_usage_key);
    free(c->object_text);
    free(c->usage_text);
    *c = (VoProjectObjectCarry){ 0 };
}
