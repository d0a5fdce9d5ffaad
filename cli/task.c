/* task.c: the `vireo task ...` commands (show, list): the asynchronous
 * operations vireod runs, from GET /v1/tasks. */
#include "cli.h"
#include "http.h"
#include "output.h"

static char *task_progress_str(const json_t *task)
{
    json_t *p = json_object_get(task, "progress");
    return json_is_integer(p) ? vo_asprintf("%" JSON_INTEGER_FORMAT "%%", json_integer_value(p))
                              : NULL;
}

static int task_show(const CliCommand *cmd, int argc, char **argv)
{
    const char *id = NULL;
    const CliOption opts[] = { { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &id, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = api_path("tasks", id, NULL);
    json_t *task = NULL;
    if (api_call("GET", path, NULL, &task) < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json) {
        out_json(stdout, task);
        json_decref(task);
        return CLI_EXIT_OK;
    }
    _cleanup_free_ char *progress = task_progress_str(task);
    json_t *err = json_object_get(task, "error");
    _cleanup_free_ char *err_str = NULL;
    if (jstr(err, "message"))
        err_str = vo_asprintf("%s (%s)", jstr(err, "message"),
                              jstr(err, "code") ? jstr(err, "code") : "?");
    out_kv(stdout, "id:", jstr(task, "id"));
    out_kv(stdout, "kind:", jstr(task, "kind"));
    out_kv(stdout, "target:", jstr(task, "target"));
    out_kv(stdout, "state:", jstr(task, "state"));
    out_kv(stdout, "progress:", progress);
    out_kv(stdout, "message:", jstr(task, "message"));
    out_kv(stdout, "error:", err_str);
    out_kv(stdout, "created:", jstr(task, "created_at"));
    out_kv(stdout, "finished:", jstr(task, "finished_at"));
    json_decref(task);
    return CLI_EXIT_OK;
}

static int task_list(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/tasks", &doc, &exit_status))
        return exit_status;
    static const char *const headers[] = { "ID", "KIND", "TARGET", "STATE", "PROGRESS", "CREATED" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *task;
    json_array_foreach(json_object_get(doc, "tasks"), i, task) {
        _cleanup_free_ char *progress = task_progress_str(task);
        const char *cells[] = { jstr(task, "id"),    jstr(task, "kind"), jstr(task, "target"),
                                jstr(task, "state"), progress,           jstr(task, "created_at") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static const CliCommand task_commands[] = {
    { "task", "show", "ID", NULL, "Show one task: its state, progress and error.", NULL, task_show },
    { "task", "list", NULL, NULL, "List the tasks, newest first.", NULL, task_list },
};

const CliNoun cli_noun_task = { "task", "asynchronous operations", task_commands,
                                ELEMENTSOF(task_commands) };
