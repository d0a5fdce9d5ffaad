/* schedules.c: the schedule documents (schedules.h): what a create or a
 * change may say, checked whole before anything is written; listing and
 * showing them with their next due time, their runs and what they made. */
#include "daemon/schedules.h"

#include <stdio.h>
#include <string.h>

#include "conf/names.h"
#include "cluster/any-door.h"
#include "daemon/groups.h"
#include "state/keys.h"
#include "util/time-format.h"
#include "util/util.h"
#include "vireo/errors.h"

/* Every field a schedule document has, and what the API may set. */
static const char *const selector_keys[] = { "vm", "all", "group", "project", NULL };
static const char *const settable_keys[] = {
    "name", "action", "vm", "all", "group", "project", "at", "every", "window",
    "keep_last", "keep_daily", "keep_weekly", "keep_monthly", "pool", "incremental",
    "bwlimit_mib", "memory", "enabled", NULL,
};

static bool in_list(const char *const *list, const char *key)
{
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(list[i], key))
            return true;
    return false;
}

static int check_name(const char *name, char **ret_error)
{
    if (!name || !vo_name_valid(name) || strlen(name) > VO_SCHEDULE_NAME_MAX)
        return vo_error_set(ret_error, -EINVAL,
                            "name: '%s' is invalid: use 1-%d characters of a-z, 0-9 and '-', "
                            "not starting with '-'", name ? name : "", VO_SCHEDULE_NAME_MAX);
    return 0;
}

/* "HH:MM" into minutes of the day; -1 when it is not one. */
static int clock_minutes(const char *s, size_t len)
{
    if (len != 5 || s[2] != ':')
        return -1;
    for (size_t i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    return h < 24 && m < 60 ? h * 60 + m : -1;
}

/* "HH:MM-HH:MM": its start (minutes of the day) and length in minutes (an
 * end before the start is on the next day). */
static int parse_window(const char *w, int *ret_start, int *ret_len, char **ret_error)
{
    const char *dash = w ? strchr(w, '-') : NULL;
    int start = dash ? clock_minutes(w, (size_t)(dash - w)) : -1;
    int end = dash ? clock_minutes(dash + 1, strlen(dash + 1)) : -1;
    if (start < 0 || end < 0 || start == end)
        return vo_error_set(ret_error, -EINVAL,
                            "window: '%s' is not HH:MM-HH:MM (24-hour local time, start and "
                            "end differ; an end before the start is on the next day)",
                            w ? w : "");
    *ret_start = start;
    *ret_len = (end - start + 1440) % 1440;
    return 0;
}

static const char *str_of(json_t *doc, const char *key)
{
    return json_string_value(json_object_get(doc, key));
}

int vo_schedule_rule(json_t *doc, VoScheduleRule *ret, char **ret_error)
{
    VoScheduleRule rule = { .enabled = json_is_true(json_object_get(doc, "enabled")) };
    const char *at = str_of(doc, "at"), *every = str_of(doc, "every");
    int r;
    if (at) {
        if ((r = vo_cron_parse(at, &rule.cron, ret_error)) < 0)
            return r;
        rule.grace_s = VO_SCHEDULE_CRON_GRACE_S;
    } else if (every) {
        int start = 0, len = 0;
        const char *window = str_of(doc, "window");
        if ((r = parse_window(window ? window : VO_SCHEDULE_DEFAULT_WINDOW, &start, &len,
                              ret_error)) < 0)
            return r;
        bool weekly = !strcmp(every, "weekly");
        if (!weekly && strcmp(every, "daily"))
            return vo_error_set(ret_error, -EINVAL, "every: '%s' is not daily or weekly", every);
        char cron[32];
        snprintf(cron, sizeof(cron), "%d %d * * %s", start % 60, start / 60, weekly ? "0" : "*");
        if ((r = vo_cron_parse(cron, &rule.cron, ret_error)) < 0)
            return r;
        rule.grace_s = (int64_t)len * 60;
    } else
        return vo_error_set(ret_error, -EINVAL, "give when it runs: at (a cron expression) or "
                            "every (daily or weekly, with a window)");
    static const char *const keeps[] = { "keep_last", "keep_daily", "keep_weekly",
                                         "keep_monthly" };
    unsigned *slots[] = { &rule.keep.last, &rule.keep.daily, &rule.keep.weekly,
                          &rule.keep.monthly };
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(doc, keeps[i]);
        if (!v)
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > VO_KEEP_MAX)
            return vo_error_set(ret_error, -EINVAL, "%s: a whole number from 0 to %d",
                                keeps[i], VO_KEEP_MAX);
        *slots[i] = (unsigned)json_integer_value(v);
    }
    *ret = rule;
    return 0;
}

/* Whether a selected object exists (a VM's name claim, a group): 0 or
 * -ENOENT with words. */
static int check_exists(VoDaemon *d, const char *key, const char *what, const char *name,
                        const char *hint, char **ret_error)
{
    _cleanup_free_ char *text = NULL;
    int r = vo_store_get(d->store, key, &text, NULL);
    if (r == -ENOENT)
        return vo_error_set(ret_error, -ENOENT, "%s '%s' does not exist (see: %s)", what, name,
                            hint);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read %s '%s': %s", what, name, strerror(-r));
    return 0;
}

/* The whole document checked: one selector, one way to say when, fields
 * that fit the action. */
static int check_doc(VoDaemon *d, json_t *doc, char **ret_error)
{
    int r = check_name(str_of(doc, "name"), ret_error);
    if (r < 0)
        return r;
    const char *action = str_of(doc, "action");
    if (!action || (strcmp(action, "snapshot") && strcmp(action, "backup")))
        return vo_error_set(ret_error, -EINVAL, "action: '%s' is not snapshot or backup",
                            action ? action : "");
    bool backup = !strcmp(action, "backup");
    int selectors = 0;
    for (size_t i = 0; selector_keys[i]; i++)
        selectors += json_object_get(doc, selector_keys[i]) != NULL;
    if (selectors != 1)
        return vo_error_set(ret_error, -EINVAL, "give exactly one of vm (a VM's name), all "
                            "(every VM) or group (a placement group's members)");
    json_t *all = json_object_get(doc, "all");
    if (all && !json_is_true(all))
        return vo_error_set(ret_error, -EINVAL, "all: only true (every VM)");
    /* The hook for projects (the access issue's): a schedule per project
     * selects the project's VMs once projects exist. */
    if (json_object_get(doc, "project"))
        return vo_error_set(ret_error, -EINVAL, "project: projects are not available in "
                            "this version; select with vm, group or all");
    const char *vm = str_of(doc, "vm"), *group = str_of(doc, "group");
    if (json_object_get(doc, "vm") && !vm)
        return vo_error_set(ret_error, -EINVAL, "vm: a VM's name");
    if (json_object_get(doc, "group") && !group)
        return vo_error_set(ret_error, -EINVAL, "group: a placement group's name");
    if (vm) {
        if (!vo_name_valid(vm))
            return vo_error_set(ret_error, -EINVAL, "vm: '%s' is not a VM name", vm);
        _cleanup_free_ char *key = vo_key_vm_name(vm);
        if ((r = check_exists(d, key, "VM", vm, "vireo vm list", ret_error)) < 0)
            return r;
    }
    if (group) {
        if (!vo_name_valid(group))
            return vo_error_set(ret_error, -EINVAL, "group: '%s' is not a group name", group);
        _cleanup_free_ char *key = vo_asprintf(VO_GROUPS_PREFIX "%s", group);
        if ((r = check_exists(d, key, "group", group, "vireo group list", ret_error)) < 0)
            return r;
    }
    bool at = json_object_get(doc, "at") != NULL, every = json_object_get(doc, "every") != NULL;
    if (at == every)
        return vo_error_set(ret_error, -EINVAL, "give one of at (a cron expression, e.g. "
                            "'30 2 * * *') or every (daily or weekly)");
    if ((at && !str_of(doc, "at")) || (every && !str_of(doc, "every")))
        return vo_error_set(ret_error, -EINVAL, "%s: a string", at ? "at" : "every");
    json_t *window = json_object_get(doc, "window");
    if (window && (at || !json_is_string(window)))
        return vo_error_set(ret_error, -EINVAL, "window: only with every, as HH:MM-HH:MM");
    VoScheduleRule rule;
    if ((r = vo_schedule_rule(doc, &rule, ret_error)) < 0)
        return r;
    if (!json_is_boolean(json_object_get(doc, "enabled")))
        return vo_error_set(ret_error, -EINVAL, "enabled: true or false");
    static const char *const backup_only[] = { "pool", "incremental", "bwlimit_mib", NULL };
    for (size_t i = 0; backup_only[i]; i++)
        if (!backup && json_object_get(doc, backup_only[i]))
            return vo_error_set(ret_error, -EINVAL, "%s: only for action backup",
                                backup_only[i]);
    if (backup && json_object_get(doc, "memory"))
        return vo_error_set(ret_error, -EINVAL, "memory: only for action snapshot");
    json_t *pool = json_object_get(doc, "pool");
    if (pool && (!json_is_string(pool) || !vo_name_valid(json_string_value(pool))))
        return vo_error_set(ret_error, -EINVAL, "pool: a backup pool's name");
    static const char *const bools[] = { "incremental", "memory", NULL };
    for (size_t i = 0; bools[i]; i++) {
        json_t *v = json_object_get(doc, bools[i]);
        if (v && !json_is_boolean(v))
            return vo_error_set(ret_error, -EINVAL, "%s: true or false", bools[i]);
    }
    json_t *bw = json_object_get(doc, "bwlimit_mib");
    if (bw && (!json_is_integer(bw) || json_integer_value(bw) < 1 ||
               json_integer_value(bw) > 1024 * 1024))
        return vo_error_set(ret_error, -EINVAL, "bwlimit_mib: a whole number of MiB/s from 1 "
                            "to 1048576");
    return 0;
}

/* Copies body's fields onto doc: a selector replaces the other selectors,
 * at replaces every and window and the other way round; null removes a
 * field. Unknown fields are refused. */
static int merge_body(json_t *doc, json_t *body, bool creating, char **ret_error)
{
    if (!json_is_object(body))
        return vo_error_set(ret_error, -EINVAL, "the body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (!in_list(settable_keys, key))
            return vo_error_set(ret_error, -EINVAL, "%s: not a field of a schedule", key);
        if (!creating && (!strcmp(key, "name") || !strcmp(key, "action")))
            return vo_error_set(ret_error, -EINVAL, "%s: cannot be changed (delete the "
                                "schedule and make a new one)", key);
    }
    json_object_foreach(body, key, v) {
        if (in_list(selector_keys, key) && !json_is_null(v))
            for (size_t i = 0; selector_keys[i]; i++)
                json_object_del(doc, selector_keys[i]);
        if (!strcmp(key, "at") && !json_is_null(v)) {
            json_object_del(doc, "every");
            json_object_del(doc, "window");
        }
        if (!strcmp(key, "every") && !json_is_null(v))
            json_object_del(doc, "at");
    }
    json_object_foreach(body, key, v) {
        if (json_is_null(v))
            json_object_del(doc, key);
        else
            json_object_set(doc, key, v);
    }
    return 0;
}

static json_t *doc_view(json_t *doc);

/* The end of a create or change: the view of doc (taken) when r >= 0. */
static int answer_view(json_t *doc, int r, json_t **ret_doc)
{
    if (r >= 0)
        *ret_doc = doc_view(doc);
    json_decref(doc);
    return r < 0 ? r : 0;
}

static char *schedule_key(const char *name)
{
    return vo_asprintf(VO_SCHEDULES_PREFIX "%s", name);
}

static int put_doc(VoDaemon *d, json_t *doc, int64_t rev, char **ret_error)
{
    const char *name = str_of(doc, "name");
    _cleanup_free_ char *key = schedule_key(name);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    int r = vo_store_put(d->store, key, text, rev, NULL);
    if (r == -EEXIST)
        return vo_error_set(ret_error, -EEXIST, "a schedule named '%s' already exists", name);
    if (r == -ESTALE || r == -ENOENT)
        return vo_error_set(ret_error, -VO_EIFMATCH, "schedule '%s' changed meanwhile: read it "
                            "again and retry", name);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot save schedule '%s': %s", name, strerror(-r));
    vo_schedules_wake();
    return 0;
}

int vo_schedule_create(VoDaemon *d, json_t *body, json_t **ret_doc, char **ret_error)
{
    json_int_t now = (json_int_t)vo_schedules_now();
    json_t *doc = json_pack("{s:b, s:I, s:I, s:I}", "enabled", 1, "created_at", now, "since",
                            now, "run_now", (json_int_t)0);
    int r = merge_body(doc, body, true, ret_error);
    if (r >= 0)
        r = check_doc(d, doc, ret_error);
    if (r >= 0)
        r = put_doc(d, doc, VO_REV_NEW, ret_error);
    return answer_view(doc, r, ret_doc);
}

int vo_schedule_get(VoDaemon *d, const char *name, json_t **ret, int64_t *ret_rev,
                    char **ret_error)
{
    int r = check_name(name, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *key = schedule_key(name), *text = NULL;
    r = vo_store_get(d->store, key, &text, ret_rev);
    if (r == -ENOENT)
        return vo_error_set(ret_error, -ENOENT, "schedule '%s' does not exist (see: vireo "
                            "schedule list)", name);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read schedule '%s': %s", name, strerror(-r));
    json_t *doc = json_loads(text, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return vo_error_set(ret_error, -EIO, "schedule '%s': its document is damaged", name);
    }
    *ret = doc;
    return 0;
}

int vo_schedule_set(VoDaemon *d, const char *name, json_t *body, int64_t if_match,
                    json_t **ret_doc, char **ret_error)
{
    json_t *doc = NULL;
    int64_t rev = 0;
    int r = vo_schedule_get(d, name, &doc, &rev, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *what = vo_asprintf("schedule '%s'", name);
    /* Enabled again, or a new time: due from now on (no skips recorded for
     * the time it was off or meant other times). */
    static const char *const timing[] = { "enabled", "at", "every", "window", NULL };
    for (size_t i = 0; timing[i]; i++)
        if (json_is_object(body) && json_object_get(body, timing[i]))
            json_object_set_new(doc, "since", json_integer((json_int_t)vo_schedules_now()));
    if ((r = vo_if_match_check(if_match, rev, what, ret_error)) >= 0 &&
        (r = merge_body(doc, body, false, ret_error)) >= 0 &&
        (r = check_doc(d, doc, ret_error)) >= 0)
        r = put_doc(d, doc, rev, ret_error);
    return answer_view(doc, r, ret_doc);
}

typedef struct {
    json_t *items;
} Collect;

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    json_t *o = json_loads(value, 0, NULL);
    if (json_is_object(o)) {
        json_object_set_new(o, "key", json_string(key));
        json_array_append_new(((Collect *)userdata)->items, o);
    } else
        json_decref(o);
    return 0;
}

static json_t *list_prefix(VoDaemon *d, const char *prefix, int *ret_r)
{
    Collect c = { json_array() };
    *ret_r = vo_store_list(d->store, prefix, collect, &c);
    return c.items;
}

/* The run or made records (base: their prefix) of schedule name, each with
 * its "key"; *ret_len: the length of the prefix before the VM's id. A
 * failed read gives none (the records are shown or deleted best effort). */
static json_t *records_of(VoDaemon *d, const char *base, const char *name, size_t *ret_len)
{
    _cleanup_free_ char *prefix = vo_asprintf("%s%s/", base, name);
    int r;
    *ret_len = strlen(prefix);
    return list_prefix(d, prefix, &r);
}

int vo_schedule_delete(VoDaemon *d, const char *name, char **ret_error)
{
    json_t *doc = NULL;
    int64_t rev = 0;
    int r = vo_schedule_get(d, name, &doc, &rev, ret_error);
    if (r < 0)
        return r;
    json_decref(doc);
    _cleanup_free_ char *key = schedule_key(name);
    r = vo_store_delete(d->store, key, rev);
    if (r < 0)
        return vo_error_set(ret_error, r == -ESTALE ? -VO_EIFMATCH : r,
                            "cannot delete schedule '%s': %s", name,
                            r == -ESTALE ? "it changed meanwhile, retry" : strerror(-r));
    /* Its records: a later schedule of the same name starts afresh. Best
     * effort (a record left behind only names a schedule that is gone). */
    const char *prefixes[] = { VO_SCHEDULE_RUNS_PREFIX, VO_SCHEDULE_MADE_PREFIX };
    for (size_t p = 0; p < 2; p++) {
        size_t len;
        json_t *items = records_of(d, prefixes[p], name, &len);
        size_t i;
        json_t *o;
        json_array_foreach(items, i, o)
            (void)vo_store_delete(d->store, str_of(o, "key"), VO_REV_ANY); /* gone with it */
        json_decref(items);
    }
    vo_schedules_wake();
    return 0;
}

/* The doc as the API shows it: its fields plus cron, grace_s, next_due. */
static json_t *doc_view(json_t *doc)
{
    json_t *view = json_deep_copy(doc);
    json_object_del(view, "run_now_at_ms"); /* the runner's (schedule-runner.c) */
    VoScheduleRule rule;
    if (vo_schedule_rule(doc, &rule, NULL) < 0)
        return view;
    json_object_set_new(view, "grace_s", json_integer(rule.grace_s));
    time_t next;
    if (rule.enabled && vo_cron_next(&rule.cron, vo_schedules_now(), &next) == 0)
        json_object_set_new(view, "next_due", vo_time_json((int64_t)next * 1000));
    else
        json_object_set_new(view, "next_due", json_null());
    return view;
}

int vo_schedules_list_json(VoDaemon *d, json_t **ret, char **ret_error)
{
    int r;
    json_t *items = list_prefix(d, VO_SCHEDULES_PREFIX, &r);
    if (r < 0) {
        json_decref(items);
        return vo_error_set(ret_error, r, "cannot list schedules: %s", strerror(-r));
    }
    vo_json_array_sort_by(items, "name", NULL, false);
    json_t *out = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(items, i, o) {
        json_object_del(o, "key");
        json_array_append_new(out, doc_view(o));
    }
    json_decref(items);
    *ret = json_pack("{s:o}", "schedules", out);
    return 0;
}

int vo_schedule_show_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error)
{
    json_t *doc = NULL;
    int r = vo_schedule_get(d, name, &doc, NULL, ret_error);
    if (r < 0)
        return r;
    json_t *view = doc_view(doc);
    json_decref(doc);
    const char *what[] = { "runs", "made" };
    const char *prefixes[] = { VO_SCHEDULE_RUNS_PREFIX, VO_SCHEDULE_MADE_PREFIX };
    for (size_t p = 0; p < 2; p++) {
        size_t len;
        json_t *items = records_of(d, prefixes[p], name, &len);
        size_t i;
        json_t *o;
        json_array_foreach(items, i, o) {
            /* "cluster/schedule-made/NAME/VM-ID/ITEM" -> vm_id */
            const char *rest = str_of(o, "key") + len;
            const char *slash = strchr(rest, '/');
            json_object_set_new(o, "vm_id", slash ? json_stringn(rest, (size_t)(slash - rest))
                                                  : json_string(rest));
            json_object_del(o, "key");
        }
        json_object_set_new(view, what[p], items);
    }
    *ret = view;
    return 0;
}
