/* schedule.c: the `vireo schedule ...` commands (scheduled snapshots and
 * backups with retention: create, list, show, set, delete, run-now;
 * /v1/schedules, docs/schedules.md). */
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"
#include "wait.h"

static const char *const actions[] = { "snapshot", "backup", NULL };
static const char *const everies[] = { "daily", "weekly", NULL };

/* Every option of create and set. */
typedef struct {
    const char *vm, *group, *project, *action, *at, *every, *window, *pool, *bwlimit;
    const char *keep[4];
    bool all, incremental, no_incremental, memory, no_memory, disabled, enabled;
} ScheduleOpts;

static const char *const keep_fields[4] = { "keep_last", "keep_daily", "keep_weekly",
                                            "keep_monthly" };

#define SCHEDULE_OPTIONS(o)                                                                    \
    { "--vm", &(o).vm, NULL }, { "--all", NULL, &(o).all }, { "--group", &(o).group, NULL },  \
        { "--project", &(o).project, NULL }, { "--at", &(o).at, NULL },                       \
        { "--every", &(o).every, NULL }, { "--window", &(o).window, NULL },                   \
        { "--keep-last", &(o).keep[0], NULL }, { "--keep-daily", &(o).keep[1], NULL },        \
        { "--keep-weekly", &(o).keep[2], NULL }, { "--keep-monthly", &(o).keep[3], NULL },    \
        { "--pool", &(o).pool, NULL }, { "--incremental", NULL, &(o).incremental },           \
        { "--bwlimit", &(o).bwlimit, NULL }, { "--memory", NULL, &(o).memory },               \
        { "--disabled", NULL, &(o).disabled }

/* The body fields of the options given; false after a message. */
static bool options_body(const ScheduleOpts *o, json_t *body)
{
    int selectors = !!o->vm + o->all + !!o->group + !!o->project;
    if (selectors > 1) {
        cli_error("give one of --vm, --all, --group (or --project)");
        return false;
    }
    if (o->vm)
        json_object_set_new(body, "vm", json_string(o->vm));
    if (o->all)
        json_object_set_new(body, "all", json_true());
    if (o->group)
        json_object_set_new(body, "group", json_string(o->group));
    if (o->project)
        json_object_set_new(body, "project", json_string(o->project));
    if (o->at && o->every) {
        cli_error("give --at CRON or --every daily|weekly, not both");
        return false;
    }
    if (o->at)
        json_object_set_new(body, "at", json_string(o->at));
    if (o->every) {
        if (!cli_parse_choice("--every", o->every, everies))
            return false;
        json_object_set_new(body, "every", json_string(o->every));
    }
    if (o->window)
        json_object_set_new(body, "window", json_string(o->window));
    static const char *const keep_options[4] = { "--keep-last", "--keep-daily", "--keep-weekly",
                                                 "--keep-monthly" };
    for (size_t i = 0; i < 4; i++) {
        uint64_t n;
        if (!o->keep[i])
            continue;
        if (!cli_parse_uint(keep_options[i], o->keep[i], 0, 10000, &n))
            return false;
        json_object_set_new(body, keep_fields[i], json_integer((json_int_t)n));
    }
    if (o->pool)
        json_object_set_new(body, "pool", json_string(o->pool));
    if (o->incremental || o->no_incremental)
        json_object_set_new(body, "incremental", json_boolean(o->incremental));
    if (o->bwlimit) {
        uint64_t n;
        if (!cli_parse_uint("--bwlimit", o->bwlimit, 1, 1024 * 1024, &n))
            return false;
        json_object_set_new(body, "bwlimit_mib", json_integer((json_int_t)n));
    }
    if (o->memory || o->no_memory)
        json_object_set_new(body, "memory", json_boolean(o->memory));
    if (o->disabled && o->enabled) {
        cli_error("give --enabled or --disabled, not both");
        return false;
    }
    if (o->disabled || o->enabled)
        json_object_set_new(body, "enabled", json_boolean(o->enabled));
    return true;
}

/* "vm web1", "all VMs", "group web". */
static char *selects_words(const json_t *s)
{
    if (jstr(s, "vm"))
        return vo_asprintf("vm %s", jstr(s, "vm"));
    if (jstr(s, "group"))
        return vo_asprintf("group %s", jstr(s, "group"));
    if (jstr(s, "project"))
        return vo_asprintf("project %s", jstr(s, "project"));
    return vo_strdup("all VMs");
}

/* "cron 30 2 * * *" or "daily 02:00-06:00". */
static char *when_words(const json_t *s)
{
    if (jstr(s, "at"))
        return vo_asprintf("cron %s", jstr(s, "at"));
    return vo_asprintf("%s %s", jstr(s, "every") ? jstr(s, "every") : "-",
                       jstr(s, "window") ? jstr(s, "window") : "02:00-06:00");
}

/* "last=3 daily=7" or "all". */
static char *keep_words(const json_t *s)
{
    static const char *const short_names[4] = { "last", "daily", "weekly", "monthly" };
    char buf[128] = "";
    size_t len = 0;
    for (size_t i = 0; i < 4; i++) {
        json_int_t n = json_integer_value(json_object_get(s, keep_fields[i]));
        if (n > 0)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s=%lld", len ? " " : "",
                                    short_names[i], (long long)n);
    }
    return vo_strdup(len ? buf : "all");
}

static void print_schedule(const json_t *s)
{
    _cleanup_free_ char *sel = selects_words(s), *when = when_words(s), *keep = keep_words(s);
    out_kv(stdout, "name:", jstr(s, "name"));
    out_kv(stdout, "action:", jstr(s, "action"));
    out_kv(stdout, "selects:", sel);
    out_kv(stdout, "when:", when);
    out_kv(stdout, "keep:", keep);
    out_kv(stdout, "enabled:", json_is_true(json_object_get(s, "enabled")) ? "yes" : "no");
    out_kv(stdout, "next due:", jstr(s, "next_due"));
    if (jstr(s, "pool"))
        out_kv(stdout, "pool:", jstr(s, "pool"));
    json_t *runs = json_object_get(s, "runs");
    if (json_array_size(runs)) {
        fputc('\n', stdout);
        static const char *const headers[] = { "VM", "LAST RUN", "TRIGGER", "TASK", "SKIPPED" };
        OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
        size_t i;
        json_t *r;
        json_array_foreach(runs, i, r) {
            json_t *last = json_object_get(r, "last_run"), *skip = json_object_get(r, "last_skip");
            const char *cells[] = { jstr(r, "vm"), jstr(last, "due"), jstr(last, "trigger"),
                                    jstr(last, "task") ? jstr(last, "task") : jstr(last, "error"),
                                    jstr(skip, "due") };
            out_table_add(t, cells);
        }
        out_table_print(t, stdout);
        out_table_free(t);
    }
    json_t *made = json_object_get(s, "made");
    if (json_array_size(made)) {
        fputc('\n', stdout);
        static const char *const headers[] = { "KIND", "NAME", "VM ID", "TASK" };
        OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
        size_t i;
        json_t *m;
        json_array_foreach(made, i, m) {
            const char *cells[] = { jstr(m, "kind"),
                                    jstr(m, "name") ? jstr(m, "name") : jstr(m, "backup"),
                                    jstr(m, "vm_id"), jstr(m, "task") };
            out_table_add(t, cells);
        }
        out_table_print(t, stdout);
        out_table_free(t);
    }
}

static int schedule_create(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL;
    ScheduleOpts o = { 0 };
    const CliOption opts[] = { SCHEDULE_OPTIONS(o), { "--action", &o.action, NULL },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    if (!o.action)
        return cli_usage_error("schedule create", "'schedule create' needs --action "
                               "snapshot|backup");
    if (!cli_parse_choice("--action", o.action, actions))
        return CLI_EXIT_USAGE;
    if (!o.vm && !o.all && !o.group && !o.project)
        return cli_usage_error("schedule create", "'schedule create' needs --vm VM, --all or "
                               "--group GROUP");
    if (!o.at && !o.every)
        return cli_usage_error("schedule create", "'schedule create' needs --at CRON or "
                               "--every daily|weekly");
    json_t *body = json_pack("{s:s, s:s}", "name", name, "action", o.action);
    o.enabled = !o.disabled;
    if (!options_body(&o, body)) {
        json_decref(body);
        return CLI_EXIT_USAGE;
    }
    json_t *doc = NULL;
    int r = api_call("POST", "/v1/schedules", body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_schedule);
}

static int schedule_set(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL;
    ScheduleOpts o = { 0 };
    const CliOption opts[] = { SCHEDULE_OPTIONS(o),
                               { "--enabled", NULL, &o.enabled },
                               { "--no-incremental", NULL, &o.no_incremental },
                               { "--no-memory", NULL, &o.no_memory },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    json_t *body = json_object();
    if (!options_body(&o, body)) {
        json_decref(body);
        return CLI_EXIT_USAGE;
    }
    if (json_object_size(body) == 0) {
        json_decref(body);
        return cli_usage_error("schedule set", "'schedule set' needs an option to change");
    }
    _cleanup_free_ char *path = api_path("schedules", name, NULL);
    json_t *doc = NULL;
    int r = api_call("PATCH", path, body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_schedule);
}

static int schedule_list(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/schedules", &doc, &exit_status))
        return exit_status;
    static const char *const headers[] = { "NAME", "ACTION", "SELECTS", "WHEN", "KEEP",
                                           "ENABLED", "NEXT DUE" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(doc, "schedules"), i, s) {
        _cleanup_free_ char *sel = selects_words(s), *when = when_words(s), *keep = keep_words(s);
        const char *cells[] = { jstr(s, "name"), jstr(s, "action"), sel, when, keep,
                                json_is_true(json_object_get(s, "enabled")) ? "yes" : "no",
                                jstr(s, "next_due") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int schedule_show(const CliCommand *cmd, int argc, char **argv)
{
    return api_show_command(cmd, argc, argv, "schedules", print_schedule);
}

static int schedule_delete(const CliCommand *cmd, int argc, char **argv)
{
    return api_delete_command(cmd, argc, argv, "schedules");
}

static int schedule_run_now(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL;
    bool async = false;
    const CliOption opts[] = { { "--async", NULL, &async }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = api_path("schedules", name, "/run");
    json_t *doc = NULL;
    if (api_call("POST", path, NULL, &doc) < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json && async)
        return api_print_doc(doc, NULL);
    int status = CLI_EXIT_OK;
    size_t i;
    json_t *task;
    json_t *tasks = json_object_get(doc, "tasks");
    json_array_foreach(tasks, i, task) {
        if (async) {
            printf("%s %s %s\n", jstr(task, "id"), jstr(task, "kind"), jstr(task, "target"));
            continue;
        }
        json_t *final = NULL;
        int r = task_outcome(task, jstr(task, "target"), &final);
        if (r == CLI_EXIT_OK)
            printf("%s: %s %s\n", jstr(task, "target"), jstr(task, "kind"), "done");
        else
            status = r;
        json_decref(final);
    }
    if (json_array_size(tasks) == 0)
        printf("no VM of this host is selected; the cluster's other hosts run theirs at "
               "their next round\n");
    json_decref(doc);
    return status;
}

static const CliCommand schedule_commands[] = {
    { "schedule", "create", "NAME",
      "--action snapshot|backup (--vm VM | --all | --group G) (--at CRON | --every "
      "daily|weekly [--window HH:MM-HH:MM]) [--keep-last N] [--keep-daily N] [--keep-weekly N] "
      "[--keep-monthly N] [--pool P] [--incremental] [--bwlimit MIB] [--memory] [--disabled]",
      "Snapshot or back up VMs on a schedule, keeping only what the keep rules say.",
      "  --action A            snapshot (named NAME-YYYYMMDD-HHMMSS) or backup\n"
      "  --vm VM               this VM; --all: every VM; --group G: the placement group's\n"
      "                        members (--project P: reserved for projects)\n"
      "  --at CRON             5 fields: minute hour day-of-month month day-of-week\n"
      "                        ('*', a-b, */n, a,b; jan-dec, sun-sat), the host's local\n"
      "                        time; a missed run is taken up to 1 hour late\n"
      "  --every daily|weekly  at the window's start (weekly: on Sundays); a missed run\n"
      "                        is taken while the window lasts\n"
      "  --window HH:MM-HH:MM  with --every (default 02:00-06:00, local time)\n"
      "  --keep-last N, --keep-daily N, --keep-weekly N, --keep-monthly N\n"
      "                        after each run, keep of what this schedule made for the\n"
      "                        VM the newest N, the newest of N days, ISO weeks, months\n"
      "                        (none given: keep all); manual ones are never touched\n"
      "  --pool P, --incremental, --bwlimit MIB  backups: as 'vireo backup create'\n"
      "  --memory              snapshots of running VMs load their memory on revert\n"
      "  --disabled            made but not run until 'schedule set NAME --enabled'\n"
      "\nExamples:\n"
      "  vireo schedule create nightly --vm web1 --action backup --every daily \\\n"
      "      --window 01:00-05:00 --keep-daily 7 --keep-weekly 4 --keep-monthly 6\n"
      "  vireo schedule create quarter --all --action snapshot --at '*/15 8-18 * * mon-fri' \\\n"
      "      --keep-last 8\n",
      schedule_create },
    { "schedule", "list", NULL, NULL, "List the schedules with their next due time.", NULL,
      schedule_list },
    { "schedule", "show", "NAME", NULL,
      "Show a schedule, each VM's last run and skip, and what it made.", NULL, schedule_show },
    { "schedule", "set", "NAME",
      "[the options of create but --action] [--enabled|--disabled] [--no-incremental] "
      "[--no-memory]",
      "Change a schedule: only the options given change.",
      "A selector (--vm, --all, --group) replaces the schedule's selector; --at replaces\n"
      "--every and --window, and --every replaces --at. New keep rules apply from the\n"
      "next run on.\n",
      schedule_set },
    { "schedule", "delete", "NAME", NULL, "Delete a schedule.",
      "What it made stays (and is no longer pruned).\n", schedule_delete },
    { "schedule", "run-now", "NAME", "[--async]",
      "Run a schedule now for every VM it selects (also when disabled).",
      "The VMs of this host run at once (waited for unless --async); in a cluster the\n"
      "other hosts run theirs at their next round (within 10 s). Retention follows.\n",
      schedule_run_now },
};

const CliNoun cli_noun_schedule = { "schedule", "scheduled snapshots and backups with retention",
                                    schedule_commands, ELEMENTSOF(schedule_commands) };
