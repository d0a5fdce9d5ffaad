/* groups.c: placement groups in the store (see groups.h). */
#include "daemon/groups.h"

#include <string.h>

#include "conf/names.h"
#include "util/util.h"

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    json_t *o = json_loads(value, 0, NULL);
    if (json_is_object(o))
        json_object_set_new(userdata, key, o);
    else
        json_decref(o);
    return 0;
}

static int check_name(const char *name, char **ret_error)
{
    if (!name || !vo_name_valid(name))
        return vo_error_set(ret_error, -EINVAL,
                            "name: '%s' is invalid: use 1-63 characters of a-z, 0-9 and '-', "
                            "not starting with '-'", name ? name : "");
    return 0;
}

static int get_group(VoDaemon *d, const char *name, json_t **ret, int64_t *ret_rev,
                     char **ret_error)
{
    int r = check_name(name, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *key = vo_asprintf(VO_GROUPS_PREFIX "%s", name);
    _cleanup_free_ char *text = NULL;
    r = vo_store_get(d->store, key, &text, ret_rev);
    if (r == -ENOENT)
        return vo_error_set(ret_error, -ENOENT,
                            "group '%s' does not exist (see: vireo group list; make it with "
                            "vireo group create %s --policy spread|together)", name, name);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read group '%s': %s", name, strerror(-r));
    json_t *doc = json_loads(text, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return vo_error_set(ret_error, -EIO, "group '%s': its document is damaged", name);
    }
    *ret = doc;
    return 0;
}

int vo_group_members(VoDaemon *d, const char *name, json_t **ret)
{
    _cleanup_free_ char *prefix = vo_asprintf(VO_GROUP_MEMBERS_PREFIX "%s/", name);
    json_t *members = json_object();
    int r = vo_store_list(d->store, prefix, collect, members);
    if (r < 0) {
        json_decref(members);
        return r;
    }
    *ret = members;
    return 0;
}

int vo_group_create(VoDaemon *d, const char *name, const char *policy, json_t **ret_doc,
                    char **ret_error)
{
    int r = check_name(name, ret_error);
    if (r < 0)
        return r;
    VoGroupPolicy p;
    if (!policy || vo_group_policy_from_string(policy, &p) < 0)
        return vo_error_set(ret_error, -EINVAL,
                            "policy: '%s' is not spread (members on different hosts) or "
                            "together (members on one host)", policy ? policy : "");
    json_t *doc = json_pack("{s:s, s:s, s:I}", "name", name, "policy",
                            vo_group_policy_to_string(p), "created_at",
                            (json_int_t)(vo_wall_ms() / 1000));
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    _cleanup_free_ char *key = vo_asprintf(VO_GROUPS_PREFIX "%s", name);
    r = vo_store_put(d->store, key, text, VO_REV_NEW, NULL);
    if (r < 0) {
        json_decref(doc);
        if (r == -EEXIST)
            return vo_error_set(ret_error, -EEXIST, "a group named '%s' already exists", name);
        return vo_error_set(ret_error, r, "cannot save group '%s': %s", name, strerror(-r));
    }
    *ret_doc = doc;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(x ? x : "", y ? y : "");
}

/* The member documents as an array sorted by VM name. */
static json_t *members_sorted(json_t *members)
{
    size_t n = json_object_size(members), k = 0;
    json_t **items = vo_malloc0((n + 1) * sizeof(json_t *));
    const char *key;
    json_t *m;
    json_object_foreach(members, key, m)
        items[k++] = m;
    qsort(items, k, sizeof(json_t *), cmp_name);
    json_t *arr = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append(arr, items[i]);
    free(items);
    return arr;
}

/* "a, b, c" (by name) for at most 5 members. */
static char *members_words(json_t *members)
{
    json_t *arr = members_sorted(members);
    char *s = vo_strdup("");
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        char *more = i == 5 ? vo_asprintf("%s, ...", s)
                            : vo_asprintf("%s%s%s", s, i ? ", " : "", name ? name : "?");
        free(s);
        s = more;
        if (i == 5)
            break;
    }
    json_decref(arr);
    return s;
}

/* Puts the group's document: text of doc without the deleting mark, or
 * with it (mark), compared at rev. */
static int put_group(VoDaemon *d, const char *key, json_t *doc, bool mark, int64_t rev,
                     int64_t *ret_rev)
{
    json_t *copy = json_deep_copy(doc);
    if (mark)
        json_object_set_new(copy, "deleting", json_true());
    else
        json_object_del(copy, "deleting");
    _cleanup_free_ char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(copy);
    return vo_store_put(d->store, key, text, rev, ret_rev);
}

/* The claim pattern (daemon.h): the group's document is marked deleting at
 * the revision read, then its members are listed; a VM joining compares the
 * group's document at the revision it read unmarked (vm-save.c vo_vm_write), so a
 * join that came first is listed here, and one that comes later fails. A
 * group with members gets its mark taken back. A mark left by a delete cut
 * short (a crash) is taken over by the next delete. */
int vo_group_delete(VoDaemon *d, const char *name, char **ret_error)
{
    json_t *doc = NULL;
    int64_t rev = 0;
    int r = get_group(d, name, &doc, &rev, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *key = vo_asprintf(VO_GROUPS_PREFIX "%s", name);
    int64_t marked = rev;
    if (!json_is_true(json_object_get(doc, "deleting")))
        r = put_group(d, key, doc, true, rev, &marked);
    if (r == -ESTALE || r == -ENOENT) {
        json_decref(doc);
        return vo_error_set(ret_error, -ESTALE, "group '%s' changed meanwhile; try again", name);
    }
    if (r < 0) {
        json_decref(doc);
        return vo_error_set(ret_error, r, "cannot delete group '%s': %s", name, strerror(-r));
    }
    json_t *members = NULL;
    r = vo_group_members(d, name, &members);
    size_t n = r < 0 ? 0 : json_object_size(members);
    if (r < 0 || n > 0) { /* the mark taken back; it stays if this fails (the next delete) */
        int u = put_group(d, key, doc, false, marked, NULL);
        if (u < 0 && u != -ESTALE && u != -ENOENT)
            log_warn("group %s: cannot take back its deleting mark: %s", name, strerror(-u));
    }
    json_decref(doc);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read group '%s': %s", name, strerror(-r));
    if (n > 0) {
        _cleanup_free_ char *words = members_words(members);
        json_decref(members);
        return vo_error_set(ret_error, -EBUSY,
                            "group '%s' has %zu VM%s (%s): delete them first", name, n,
                            n == 1 ? "" : "s", words);
    }
    json_decref(members);
    r = vo_store_delete(d->store, key, marked);
    if (r == -ESTALE || r == -ENOENT)
        return vo_error_set(ret_error, -ESTALE, "group '%s' changed meanwhile; try again", name);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot delete group '%s': %s", name, strerror(-r));
    return 0;
}

int vo_group_joinable(VoDaemon *d, const char *name, int64_t *ret_rev)
{
    _cleanup_free_ char *key = vo_asprintf(VO_GROUPS_PREFIX "%s", name);
    _cleanup_free_ char *text = NULL;
    int r = vo_store_get(d->store, key, &text, ret_rev);
    if (r == -ENOENT)
        return -EIDRM;
    if (r < 0)
        return r;
    json_t *doc = json_loads(text, 0, NULL);
    bool deleting = json_is_true(json_object_get(doc, "deleting"));
    json_decref(doc);
    return deleting ? -EIDRM : 0;
}

int vo_groups_list_json(VoDaemon *d, json_t **ret, char **ret_error)
{
    json_t *groups = json_object(), *members = json_object();
    int r = vo_store_list(d->store, VO_GROUPS_PREFIX, collect, groups);
    if (r >= 0)
        r = vo_store_list(d->store, VO_GROUP_MEMBERS_PREFIX, collect, members);
    if (r < 0) {
        json_decref(groups);
        json_decref(members);
        return vo_error_set(ret_error, r, "cannot read the groups: %s", strerror(-r));
    }
    size_t n = json_object_size(groups), k = 0;
    json_t **items = vo_malloc0((n + 1) * sizeof(json_t *));
    const char *key;
    json_t *g;
    json_object_foreach(groups, key, g) {
        const char *name = json_string_value(json_object_get(g, "name"));
        _cleanup_free_ char *prefix = vo_asprintf(VO_GROUP_MEMBERS_PREFIX "%s/", name ? name : "");
        json_int_t count = 0;
        const char *mkey;
        json_t *m;
        json_object_foreach(members, mkey, m)
            count += !strncmp(mkey, prefix, strlen(prefix));
        json_t *o = json_deep_copy(g);
        json_object_set_new(o, "members", json_integer(count));
        items[k++] = o;
    }
    qsort(items, k, sizeof(json_t *), cmp_name);
    json_t *arr = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(arr, items[i]);
    free(items);
    json_decref(groups);
    json_decref(members);
    *ret = json_pack("{s:o}", "groups", arr);
    return 0;
}

int vo_group_show_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error)
{
    json_t *doc = NULL;
    int r = get_group(d, name, &doc, NULL, ret_error);
    if (r < 0)
        return r;
    json_t *members = NULL;
    r = vo_group_members(d, name, &members);
    if (r < 0) {
        json_decref(doc);
        return vo_error_set(ret_error, r, "cannot read group '%s': %s", name, strerror(-r));
    }
    json_object_set_new(doc, "members", members_sorted(members));
    json_decref(members);
    *ret = doc;
    return 0;
}

int vo_group_policy(VoDaemon *d, const char *name, VoGroupPolicy *ret, char **ret_error)
{
    json_t *doc = NULL;
    int r = get_group(d, name, &doc, NULL, ret_error);
    if (r < 0)
        return r;
    if (json_is_true(json_object_get(doc, "deleting"))) {
        json_decref(doc);
        return vo_error_set(ret_error, -EBUSY, "group '%s' is being deleted", name);
    }
    const char *p = json_string_value(json_object_get(doc, "policy"));
    r = p ? vo_group_policy_from_string(p, ret) : -EINVAL;
    json_decref(doc);
    if (r < 0)
        return vo_error_set(ret_error, -EIO, "group '%s': its policy is damaged", name);
    return 0;
}
