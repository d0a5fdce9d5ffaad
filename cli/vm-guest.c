/* vm-guest.c: the CLI's commands answered by a VM's guest agent (`vm exec`,
 * `vm set-password`) and the guest part of `vm show`. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "output.h"

void cli_vm_print_guest(json_t *vm)
{
    json_t *guest = json_object_get(vm, "guest");
    if (!json_is_object(guest))
        return;
    if (!json_is_true(json_object_get(guest, "agent"))) {
        const char *reason = json_string_value(json_object_get(guest, "reason"));
        _cleanup_free_ char *line = vo_asprintf("no answer%s%s", reason ? ": " : "",
                                                reason ? reason : "");
        out_kv(stdout, "guest agent:", line);
        return;
    }
    out_kv(stdout, "guest agent:", "yes");
    json_t *os = json_object_get(guest, "os");
    const char *pretty = json_string_value(json_object_get(os, "pretty_name"));
    const char *name = json_string_value(json_object_get(os, "name"));
    const char *kernel = json_string_value(json_object_get(os, "kernel_release"));
    _cleanup_free_ char *os_line = vo_asprintf("%s%s%s%s", pretty ? pretty : name ? name : "",
                                               kernel && (pretty || name) ? " (" : "",
                                               kernel ? kernel : "",
                                               kernel && (pretty || name) ? ")" : "");
    out_kv(stdout, "guest os:", *os_line ? os_line : NULL);
    out_kv(stdout, "guest hostname:", json_string_value(json_object_get(guest, "hostname")));
    size_t i;
    json_t *iface;
    bool first = true;
    json_array_foreach(json_object_get(guest, "interfaces"), i, iface) {
        _cleanup_free_ char *line = vo_strdup(json_string_value(json_object_get(iface, "name")) ?: "?");
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(iface, "addresses"), k, a) {
            char *next = vo_asprintf("%s %s", line, json_string_value(a) ?: "?");
            free(line);
            line = next;
        }
        out_kv(stdout, first ? "guest ips:" : "", line);
        first = false;
    }
}

static int exec_usage(const CliCommand *cmd, const char *what)
{
    char buf[64];
    return cli_usage_error(cli_command_name(cmd, buf, sizeof(buf)), "%s", what);
}

/* vireo vm exec [--timeout S] VM [--] CMD [ARG...]: options come before VM;
 * everything after it is the command. */
int cli_vm_exec(const CliCommand *cmd, int argc, char **argv)
{
    const char *vm = NULL, *timeout = NULL;
    int i = 1;
    for (; i < argc && !vm; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_print_command_help(cmd);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--timeout")) {
            if (++i >= argc)
                return exec_usage(cmd, "--timeout needs a value (seconds)");
            timeout = argv[i];
        } else if (!strncmp(a, "--timeout=", 10))
            timeout = a + 10;
        else if (a[0] == '-')
            return exec_usage(cmd, "unknown option before the VM's name");
        else
            vm = a;
    }
    if (!vm)
        return exec_usage(cmd, "give the VM and the command to run: vm exec VM -- CMD [ARG...]");
    if (i < argc && !strcmp(argv[i], "--"))
        i++;
    if (i >= argc)
        return exec_usage(cmd, "give the command to run after the VM: vm exec VM -- CMD [ARG...]");
    uint64_t seconds = 30;
    if (timeout && !cli_parse_uint("--timeout", timeout, 1, 600, &seconds))
        return CLI_EXIT_USAGE;
    json_t *command = json_array();
    for (; i < argc; i++)
        json_array_append_new(command, json_string(argv[i]));
    json_t *body = json_pack("{s:o, s:I}", "command", command, "timeout_s", (json_int_t)seconds);
    _cleanup_free_ char *path = api_path("vms", vm, "/exec");
    json_t *result = NULL;
    /* vireod answers when the command ended or its timeout passed (then
     * a few seconds more for the VM's turn and the agent's last answer). */
    http_set_request_timeout((long)seconds + 30);
    int r = api_call("POST", path, body, &result);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json) {
        out_json(stdout, result);
        json_decref(result);
        return CLI_EXIT_OK;
    }
    const char *out = json_string_value(json_object_get(result, "stdout"));
    const char *err = json_string_value(json_object_get(result, "stderr"));
    fputs(out ? out : "", stdout);
    fflush(stdout);
    fputs(err ? err : "", stderr);
    if (json_is_true(json_object_get(result, "truncated")))
        cli_error("the guest agent cut the command's output short");
    json_t *code = json_object_get(result, "exit_code");
    json_t *sig = json_object_get(result, "signal");
    int status = json_is_integer(code) ? (int)json_integer_value(code)
                 : json_is_integer(sig) ? 128 + (int)json_integer_value(sig)
                                        : CLI_EXIT_FAIL;
    json_decref(result);
    return status & 0xff;
}

/* A line from stdin, without echo when it is a terminal. */
static char *read_secret(const char *prompt)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *line = NULL;
    size_t size = 0;
    ssize_t n = getline(&line, &size, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (n < 0) {
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\n')
        line[n - 1] = 0;
    return line;
}

int cli_vm_set_password(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL };
    bool crypted = false;
    const CliOption opts[] = { { "--crypted", NULL, &crypted }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    _cleanup_free_ char *password = read_secret(crypted ? "Password hash: " : "Password: ");
    if (!password || !*password) {
        cli_error("no password given (type it, or pipe it on stdin)");
        return CLI_EXIT_USAGE;
    }
    json_t *body = json_pack("{s:s, s:s, s:b}", "user", args[1], "password", password, "crypted",
                             crypted);
    _cleanup_free_ char *path = api_path("vms", args[0], "/set-password");
    json_t *result = NULL;
    int r = api_call("POST", path, body, &result);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json)
        out_json(stdout, result);
    else
        printf("password of %s set in %s\n", args[1], args[0]);
    json_decref(result);
    return CLI_EXIT_OK;
}
