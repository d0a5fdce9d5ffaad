/* vm-display.c: the CLI's commands for a VM's display: `vm screenshot VM
 * FILE` (a PNG of its screen) and `vm send-keys VM KEY... [--text TEXT]`.
 * The graphical console itself is `vireo console VM --vnc` (console.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "output.h"

int cli_vm_screenshot(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { 0 };
    int exit_status;
    const CliOption opts[] = { { NULL, NULL, NULL } };
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = api_path("vms", args[0], "/screenshot");
    HttpReply reply;
    if (http_request("GET", path, NULL, &reply) < 0)
        return CLI_EXIT_FAIL;
    if (reply.status < 200 || reply.status > 299) {
        api_print_error(reply.status, reply.body, reply.len);
        http_reply_done(&reply);
        return CLI_EXIT_FAIL;
    }
    int r = vo_write_file_atomic(args[1], reply.body, reply.len);
    http_reply_done(&reply);
    if (r < 0) {
        cli_error("cannot write %s: %s", args[1], strerror(-r));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static int send_keys_usage(const CliCommand *cmd, const char *what)
{
    char buf[64];
    return cli_usage_error(cli_command_name(cmd, buf, sizeof(buf)), "%s", what);
}

/* vireo vm send-keys VM [KEY...] [--text TEXT]: keys first, then the text. */
int cli_vm_send_keys(const CliCommand *cmd, int argc, char **argv)
{
    const char *vm = NULL, *text = NULL;
    json_t *keys = json_array();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            json_decref(keys);
            cli_print_command_help(cmd);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--text")) {
            if (++i >= argc) {
                json_decref(keys);
                return send_keys_usage(cmd, "--text needs a value");
            }
            text = argv[i];
        } else if (!strncmp(a, "--text=", 7))
            text = a + 7;
        else if (a[0] == '-' && a[1] == '-') {
            json_decref(keys);
            return send_keys_usage(cmd, "unknown option");
        } else if (!vm)
            vm = a;
        else
            json_array_append_new(keys, json_string(a));
    }
    if (!vm || (json_array_size(keys) == 0 && !text)) {
        json_decref(keys);
        return send_keys_usage(cmd, "give the VM and keys (e.g. ctrl-alt-delete ret) and/or "
                               "--text TEXT");
    }
    json_t *body = json_object();
    if (json_array_size(keys))
        json_object_set_new(body, "keys", keys);
    else
        json_decref(keys);
    if (text) {
        /* "\n" in the argument stands for Enter, as a shell cannot easily pass one. */
        _cleanup_free_ char *t = vo_strdup(text);
        char *w = t;
        for (const char *p = text; *p; p++) {
            if (p[0] == '\\' && p[1] == 'n') {
                *w++ = '\n';
                p++;
            } else if (p[0] == '\\' && p[1] == 't') {
                *w++ = '\t';
                p++;
            } else
                *w++ = *p;
        }
        *w = 0;
        json_object_set_new(body, "text", json_string(t));
    }
    _cleanup_free_ char *path = api_path("vms", vm, "/send-keys");
    json_t *result = NULL;
    int r = api_call("POST", path, body, &result);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json)
        out_json(stdout, result);
    json_decref(result);
    return CLI_EXIT_OK;
}
