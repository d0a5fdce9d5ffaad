/* task.c: the `vireo task ...` commands (show, list, cancel): the
 * asynchronous operations vireod runs, from GET /v1/tasks. */
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"
#include "wait.h"

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
    out_kv(stdout, "host:", jstr(task, "host"));
    out_kv(stdout, "state:", jstr(task, "state"));
    out_kv(stdout, "progress:", progress);
    out_kv(stdout, "message:", jstr(task, "message"));
    out_kv(stdout, "error:", err_str);
    json_t *by = json_object_get(task, "requested_by");
    /* A principal without a process (a schedule's "schedule:NAME") shows as it is. */
    _cleanup_free_ char *by_str =
        json_is_object(by) && !json_object_get(by, "uid") && jstr(by, "who")
            ? vo_strdup(jstr(by, "who"))
        : json_is_object(by)
            ? vo_asprintf("uid %" JSON_INTEGER_FORMAT ", pid %" JSON_INTEGER_FORMAT,
                          json_integer_value(json_object_get(by, "uid")),
                          json_integer_value(json_object_get(by, "pid")))
            : NULL;
    out_kv(stdout, "requested by:", by_str);
    out_kv(stdout, "created:", jstr(task, "created_at"));
    out_kv(stdout, "started:", jstr(task, "started_at"));
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
    static const char *const headers[] = { "ID",       "KIND",    "TARGET", "HOST",
                                           "STATE",    "PROGRESS", "CREATED" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *task;
    json_array_foreach(json_object_get(doc, "tasks"), i, task) {
        _cleanup_free_ char *progress = task_progress_str(task);
        const char *cells[] = { jstr(task, "id"),    jstr(task, "kind"), jstr(task, "target"),
                                jstr(task, "host"),  jstr(task, "state"), progress,
                                jstr(task, "created_at") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

/* POST /v1/tasks/ID/cancel; a running task is followed until it ends. */
static int task_cancel(const CliCommand *cmd, int argc, char **argv)
{
    const char *id = NULL;
    bool async = false;
    const CliOption opts[] = { { "--async", NULL, &async }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &id, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = api_path("tasks", id, "/cancel");
    json_t *doc = NULL;
    if (api_call("POST", path, NULL, &doc) < 0)
        return CLI_EXIT_FAIL;
    json_t *task = json_object_get(doc, "task");
    json_t *final = NULL;
    if (!async && json_is_object(task) && strcmp(jstr(task, "state") ?: "", "cancelled")) {
        int r = task_wait(task, &final);
        if (r < 0) {
            json_decref(doc);
            return r == -EINTR ? CLI_EXIT_INTERRUPTED : CLI_EXIT_FAIL;
        }
        task = final;
    }
    const char *state = jstr(task, "state") ?: "?";
    if (cli_globals.json)
        out_json(stdout, task);
    else if (!strcmp(state, "cancelled"))
        printf("task %s: cancelled\n", id);
    else if (async)
        printf("task %s: cancelling\n", id);
    else
        printf("task %s: %s (it ended before the cancel took effect)\n", id, state);
    int status = !strcmp(state, "cancelled") || async ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    json_decref(final);
    json_decref(doc);
    return status;
}

static const CliCommand task_commands[] = {
    { "task", "show", "ID", NULL, "Show one task: its state, progress and error.", NULL, task_show },
    { "task", "list", NULL, NULL, "List the tasks, newest first.", NULL, task_list },
    { "task", "cancel", "ID", "[--async]", "Cancel a queued or running task.",
      "A queued task is cancelled at once. A running one is told to stop and\n"
      "undoes what it made (a temp file, the new volume, image or backup); the\n"
      "command waits until it has ended (exit 0 when it ended cancelled).\n"
      "Only image-import, volume-import (and uploads), volume-clone,\n"
      "volume-clone-linked, volume-flatten (not while its VM runs: its QEMU\n"
      "does it), clone (a VM's), migrate, move, backup-create, backup-restore\n"
      "and backup-verify can be cancelled; others, and finished tasks, answer\n"
      "an error (409).\n"
      "  --async               ask for the cancel and return without waiting\n"
      "Example:\n"
      "  vireo task cancel 6f1c2d0e-...\n",
      task_cancel },
};

const CliNoun cli_noun_task = { "task", "asynchronous operations", task_commands,
                                ELEMENTSOF(task_commands) };
