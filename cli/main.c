/* main.c: entry point of `vireo`: picks out the global options (anywhere on the
 * command line), finds the noun and verb, and runs the command or prints help. */
#include <signal.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "http.h"

CliGlobals cli_globals;

static const CliNoun *const nouns[] = {
    &cli_noun_vm,     &cli_noun_snapshot, &cli_noun_backup, &cli_noun_image,   &cli_noun_pool,
    &cli_noun_volume, &cli_noun_network,  &cli_noun_task,    &cli_noun_console,
    &cli_noun_host,   &cli_noun_cluster, &cli_noun_events,  &cli_noun_group,   &cli_noun_placement,
    &cli_noun_user,   &cli_noun_token,
    &cli_noun_schedule,
    &cli_noun_user,   &cli_noun_token,   &cli_noun_project,
};

/* "create NAME" (with_noun false) or "vm create NAME" for the help lists. */
static void command_line(const CliCommand *c, bool with_noun, char *buf, size_t size)
{
    char name[64];
    snprintf(buf, size, "%s%s%s",
             with_noun || !c->verb ? cli_command_name(c, name, sizeof(name)) : c->verb,
             c->arg ? " " : "", c->arg ? c->arg : "");
}

static void print_main_help(FILE *f)
{
    fprintf(f, "Usage: vireo [--socket PATH] [--output table|json] NOUN VERB [ARGS...]\n"
           "\n"
           "The command-line client of vireod, the vireo virtualization daemon.\n"
           "\n"
           "Commands:\n");
    int width = 22;
    char line[128];
    for (size_t i = 0; i < ELEMENTSOF(nouns); i++)
        for (size_t j = 0; j < nouns[i]->n_commands; j++) {
            command_line(&nouns[i]->commands[j], true, line, sizeof(line));
            if ((int)strlen(line) + 1 > width)
                width = (int)strlen(line) + 1;
        }
    for (size_t i = 0; i < ELEMENTSOF(nouns); i++)
        for (size_t j = 0; j < nouns[i]->n_commands; j++) {
            const CliCommand *c = &nouns[i]->commands[j];
            command_line(c, true, line, sizeof(line));
            fprintf(f, "  %-*s %s\n", width, line, c->summary);
        }
    fprintf(f, "\n"
           "Global options (also accepted after the command):\n"
           "  --socket PATH          vireod's socket (default: $VIREO_SOCKET, else %s)\n"
           "  --output table|json    output format (default: table)\n"
           "  --help                 this help; 'vireo NOUN --help', 'vireo NOUN VERB --help'\n"
           "  --version              print the version\n"
           "\n"
           "Remote use: VIREO_URL=https://HOST:8443 VIREO_TOKEN=SECRET (vireo token create)\n"
           "[VIREO_CACERT=CA.pem] send the commands over HTTPS instead of the socket\n"
           "(the serial console too needs the socket).\n"
           "\n"
           "Actions that vireod runs as a task (create, start, stop, delete, import, resize,\n"
           "clone, ...) wait for it unless --async is given. Exit status: 0 success,\n"
           "1 failure reported by vireod, 2 bad command line, 130 interrupted while\n"
           "waiting (the task keeps running). In a cluster without a quorum, reads still\n"
           "answer (exit 0) with \"warning: the cluster has no quorum; this may be out of\n"
           "date\" on stderr; changes fail with \"cluster has no quorum\".\n",
           CLI_DEFAULT_SOCKET);
}

/* The commands of noun; with group ("disk"), only those of that verb group. */
static void print_noun_help(const CliNoun *noun, const char *group)
{
    size_t glen = group ? strlen(group) : 0;
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s%s%s", noun->noun, group ? " " : "", group ? group : "");
    printf("Usage: vireo %s VERB [ARGS...]\n\nCommands for %s%s%s%s:\n", prefix, noun->summary,
           group ? " (" : "", group ? prefix : "", group ? ")" : "");
    int width = 14;
    char line[128];
    for (int pass = 0; pass < 2; pass++)
        for (size_t j = 0; j < noun->n_commands; j++) {
            const CliCommand *c = &noun->commands[j];
            if (group && (!c->verb || strncmp(c->verb, group, glen) != 0 || c->verb[glen] != ' '))
                continue;
            command_line(c, false, line, sizeof(line));
            const char *shown = group ? line + glen + 1 : line;
            if (pass == 0 && (int)strlen(shown) + 1 > width)
                width = (int)strlen(shown) + 1;
            else if (pass == 1)
                printf("  %-*s %s\n", width, shown, c->summary);
        }
    printf("\nRun 'vireo %s VERB --help' for a command's options.\n", prefix);
}

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0;
}

/* Take --socket and --output (with "=VALUE" or a separate value) out of argv,
 * wherever they are before a "--". Returns false after a usage error. */
static bool take_global_options(int *argc, char **argv, const char **socket, const char **output)
{
    int out = 1;
    bool done = false;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        const char **target = NULL;
        const char *opt = NULL;
        if (!done && strcmp(a, "--") == 0)
            done = true;
        if (!done && strncmp(a, "--socket", 8) == 0 && (a[8] == '\0' || a[8] == '='))
            target = socket, opt = "--socket";
        else if (!done && strncmp(a, "--output", 8) == 0 && (a[8] == '\0' || a[8] == '='))
            target = output, opt = "--output";
        if (!target) {
            argv[out++] = argv[i];
            continue;
        }
        if (a[8] == '=')
            *target = a + 9;
        else if (i + 1 < *argc)
            *target = argv[++i];
        else {
            cli_usage_error(NULL, "%s needs a value", opt);
            return false;
        }
    }
    argv[out] = NULL;
    *argc = out;
    return true;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        print_main_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *first = argv[1];
    if (is_help(first)) {
        if (argc >= 3) /* "vireo help vm" */
            for (size_t i = 0; i < ELEMENTSOF(nouns); i++)
                if (strcmp(argv[2], nouns[i]->noun) == 0) {
                    print_noun_help(nouns[i], NULL);
                    return CLI_EXIT_OK;
                }
        print_main_help(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
        printf("vireo %s\n", VIREO_VERSION);
        return CLI_EXIT_OK;
    }
    if (first[0] == '-')
        return cli_usage_error(NULL, "unknown option '%s'", first);

    const CliNoun *noun = NULL;
    for (size_t i = 0; i < ELEMENTSOF(nouns); i++)
        if (strcmp(first, nouns[i]->noun) == 0)
            noun = nouns[i];
    if (!noun)
        return cli_usage_error(NULL, "unknown command '%s'", first);

    /* A verb-less noun: the noun itself is the command. */
    if (noun->n_commands == 1 && !noun->commands[0].verb)
        return noun->commands[0].run(&noun->commands[0], argc - 1, argv + 1);

    if (argc < 3) {
        cli_usage_error(noun->noun, "'%s' needs a verb", noun->noun);
        return CLI_EXIT_USAGE;
    }
    const char *verb = argv[2];
    if (is_help(verb)) {
        print_noun_help(noun, NULL);
        return CLI_EXIT_OK;
    }
    int words = 0;
    const CliCommand *c = cli_find_command(noun, argc - 2, argv + 2, &words);
    if (c) /* the handler's argv[0] is the (last) verb word */
        return c->run(c, argc - 1 - words, argv + 1 + words);

    /* A verb group ("vm disk"): the next word is the verb. */
    if (cli_is_verb_group(noun, verb)) {
        _cleanup_free_ char *group = vo_asprintf("%s %s", noun->noun, verb);
        if (argc < 4)
            return cli_usage_error(group, "'%s' needs a verb", group);
        if (is_help(argv[3])) {
            print_noun_help(noun, verb);
            return CLI_EXIT_OK;
        }
        if (argv[3][0] == '-')
            return cli_usage_error(group, "unknown option '%s' for '%s'", argv[3], group);
        return cli_usage_error(group, "unknown command '%s %s'", group, argv[3]);
    }
    if (verb[0] == '-')
        return cli_usage_error(noun->noun, "unknown option '%s' for '%s'", verb, noun->noun);
    return cli_usage_error(noun->noun, "unknown command '%s %s'", noun->noun, verb);
}

int main(int argc, char **argv)
{
    const char *socket = NULL, *output = NULL;
    if (!take_global_options(&argc, argv, &socket, &output))
        return CLI_EXIT_USAGE;

    if (output) {
        static const char *const formats[] = { "table", "json", NULL };
        if (!cli_parse_choice("--output", output, formats))
            return CLI_EXIT_USAGE;
        cli_globals.json = strcmp(output, "json") == 0;
    }
    if (socket && !socket[0]) {
        cli_error("--socket: must not be empty");
        return CLI_EXIT_USAGE;
    }
    if (!socket) {
        const char *env = getenv("VIREO_SOCKET");
        socket = env && env[0] ? env : CLI_DEFAULT_SOCKET;
    }
    cli_globals.socket = socket;
    /* The token goes in every request: never in clear text. */
    const char *remote = getenv("VIREO_URL");
    if (remote && remote[0] && strncasecmp(remote, "https://", 8) != 0) {
        cli_error("VIREO_URL '%s': must start with https:// (the API token is sent with "
                  "every request)", remote);
        return CLI_EXIT_USAGE;
    }

    /* A closed pipe or connection shows up as EPIPE instead of killing us. */
    signal(SIGPIPE, SIG_IGN);
    http_global_init();
    int r = dispatch(argc, argv);
    fflush(stdout);
    http_global_done();
    return r;
}
