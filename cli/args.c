/* args.c: command-line parsing for one `vireo` command (finding it, its options,
 * repeatable ones too, its positional arguments, --help) and the checked parsers
 * for option values, volume references and local paths. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vireo: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_usage_error(const char *help_cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vireo: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "; try 'vireo %s%s--help'\n", help_cmd ? help_cmd : "", help_cmd ? " " : "");
    va_end(ap);
    return CLI_EXIT_USAGE;
}

const CliCommand *cli_find_command(const CliNoun *noun, int argc, char **argv, int *ret_words)
{
    if (argc < 1)
        return NULL;
    for (size_t j = 0; j < noun->n_commands; j++) {
        const CliCommand *c = &noun->commands[j];
        if (!c->verb)
            continue;
        const char *space = strchr(c->verb, ' ');
        if (!space && strcmp(c->verb, argv[0]) == 0) {
            *ret_words = 1;
            return c;
        }
        if (space && argc >= 2 && strlen(argv[0]) == (size_t)(space - c->verb) &&
            strncmp(c->verb, argv[0], (size_t)(space - c->verb)) == 0 &&
            strcmp(space + 1, argv[1]) == 0) {
            *ret_words = 2;
            return c;
        }
    }
    return NULL;
}

bool cli_is_verb_group(const CliNoun *noun, const char *word)
{
    size_t len = strlen(word);
    for (size_t j = 0; j < noun->n_commands; j++) {
        const char *verb = noun->commands[j].verb;
        if (verb && strncmp(verb, word, len) == 0 && verb[len] == ' ')
            return true;
    }
    return false;
}

const char *cli_command_name(const CliCommand *cmd, char *buf, size_t size)
{
    if (cmd->verb)
        snprintf(buf, size, "%s %s", cmd->noun, cmd->verb);
    else
        snprintf(buf, size, "%s", cmd->noun);
    return buf;
}

void cli_print_command_help(const CliCommand *cmd)
{
    char name[64];
    printf("Usage: vireo %s%s%s%s%s\n\n%s\n", cli_command_name(cmd, name, sizeof(name)),
           cmd->arg ? " " : "", cmd->arg ? cmd->arg : "", cmd->synopsis ? " " : "",
           cmd->synopsis ? cmd->synopsis : "", cmd->summary);
    if (cmd->details)
        printf("\n%s", cmd->details);
    printf("\nGlobal options (also accepted after the command):\n"
           "  --socket PATH          vireod's socket (default: $VIREO_SOCKET, else %s)\n"
           "  --output table|json    output format (default: table)\n",
           CLI_DEFAULT_SOCKET);
}

static const CliOption *find_option(const CliOption *opts, const char *arg, size_t name_len)
{
    for (const CliOption *o = opts; o && o->name; o++)
        if (strlen(o->name) == name_len && strncmp(o->name, arg, name_len) == 0)
            return o;
    return NULL;
}

static const CliListOption *find_list_option(const CliListOption *lists, const char *arg,
                                             size_t name_len)
{
    for (const CliListOption *l = lists; l && l->name; l++)
        if (strlen(l->name) == name_len && strncmp(l->name, arg, name_len) == 0)
            return l;
    return NULL;
}

/* The positional arguments cmd->arg names: "POOL/NAME FILE", "VM [POOL/NAME]". */
typedef struct {
    char names[CLI_MAX_ARGS][32];
    size_t n, n_required;
} ArgSpec;

static void arg_spec(const CliCommand *cmd, ArgSpec *spec)
{
    *spec = (ArgSpec){ 0 };
    for (const char *p = cmd->arg; p && *p;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (len == 0 || spec->n == CLI_MAX_ARGS)
            break;
        bool optional = p[0] == '[' && len >= 2 && p[len - 1] == ']';
        snprintf(spec->names[spec->n], sizeof(spec->names[0]), "%.*s",
                 (int)(optional ? len - 2 : len), optional ? p + 1 : p);
        if (!optional)
            spec->n_required = spec->n + 1;
        spec->n++;
        p += len;
    }
}

bool cli_parse_args_lists(const CliCommand *cmd, int argc, char **argv, const CliOption *opts,
                          const CliListOption *lists, const char **ret_args, size_t n,
                          int *ret_exit)
{
    char name[64];
    cli_command_name(cmd, name, sizeof(name));
    ArgSpec spec;
    arg_spec(cmd, &spec);
    const char *args[CLI_MAX_ARGS] = { NULL };
    size_t n_args = 0;
    bool options_done = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (!options_done && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            cli_print_command_help(cmd);
            *ret_exit = CLI_EXIT_OK;
            return false;
        }
        if (!options_done && a[0] == '-' && a[1] != '\0') {
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            const CliOption *o = find_option(opts, a, len);
            const CliListOption *l = o ? NULL : find_list_option(lists, a, len);
            if (!o && !l) {
                *ret_exit = cli_usage_error(name, "unknown option '%.*s' for '%s'", (int)len, a,
                                            name);
                return false;
            }
            const char *value = NULL;
            if (l || o->value) {
                if (eq)
                    value = eq + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else {
                    *ret_exit = cli_usage_error(name, "%s needs a value", o ? o->name : l->name);
                    return false;
                }
            } else if (eq) {
                *ret_exit = cli_usage_error(name, "%s takes no value", o->name);
                return false;
            }
            if (l)
                vo_strv_push(l->values, vo_strdup(value));
            else if (o->value)
                *o->value = value;
            if (o && o->given)
                *o->given = true;
            continue;
        }
        if (n_args == spec.n) {
            *ret_exit = cli_usage_error(name, "unexpected argument '%s' for '%s'", a, name);
            return false;
        }
        if (a[0] == '\0') {
            *ret_exit = cli_usage_error(name, "%s must not be empty", spec.names[n_args]);
            return false;
        }
        args[n_args++] = a;
    }
    if (n_args < spec.n_required) {
        *ret_exit = cli_usage_error(name, "'%s' needs %s", name, spec.names[n_args]);
        return false;
    }
    for (size_t i = 0; i < n && ret_args; i++)
        ret_args[i] = i < CLI_MAX_ARGS ? args[i] : NULL;
    return true;
}

bool cli_parse_args_n(const CliCommand *cmd, int argc, char **argv, const CliOption *opts,
                      const char **ret_args, size_t n, int *ret_exit)
{
    return cli_parse_args_lists(cmd, argc, argv, opts, NULL, ret_args, n, ret_exit);
}

bool cli_parse_args(const CliCommand *cmd, int argc, char **argv, const CliOption *opts,
                    const char **ret_arg, int *ret_exit)
{
    return cli_parse_args_n(cmd, argc, argv, opts, ret_arg, ret_arg ? 1 : 0, ret_exit);
}

bool cli_parse_uint(const char *option, const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
    const char *p = s;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == s || *p != '\0') {
        cli_error("%s: '%s' is not a whole number", option, s);
        return false;
    }
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (v < min) {
        cli_error("%s: '%s' is too small (the minimum is %llu)", option, s,
                  (unsigned long long)min);
        return false;
    }
    if (errno == ERANGE || v > max) {
        cli_error("%s: '%s' is too large (the maximum is %llu)", option, s,
                  (unsigned long long)max);
        return false;
    }
    *ret = v;
    return true;
}

static bool parse_size(const char *option, const char *s, uint64_t bare_unit, uint64_t *ret)
{
    int r = vo_parse_size_default_unit(s, bare_unit, ret);
    if (r == -ERANGE) {
        cli_error("%s: '%s' is too large", option, s);
        return false;
    }
    if (r < 0) {
        cli_error("%s: '%s' is not a size (use e.g. 512M or 2G)", option, s);
        return false;
    }
    return true;
}

bool cli_parse_mib(const char *option, const char *s, uint64_t *ret_mib)
{
    uint64_t bytes;
    if (!parse_size(option, s, 1ULL << 20, &bytes))
        return false;
    if (bytes % (1ULL << 20) != 0) {
        cli_error("%s: '%s' is not a whole number of MiB", option, s);
        return false;
    }
    *ret_mib = bytes >> 20;
    return true;
}

bool cli_parse_bytes(const char *option, const char *s, uint64_t *ret_bytes)
{
    if (!parse_size(option, s, 1, ret_bytes))
        return false;
    if (*ret_bytes > INT64_MAX) {
        cli_error("%s: '%s' is too large", option, s);
        return false;
    }
    return true;
}

bool cli_parse_choice(const char *option, const char *s, const char *const *choices)
{
    for (const char *const *c = choices; *c; c++)
        if (strcmp(s, *c) == 0)
            return true;
    char list[256] = "";
    size_t len = 0;
    for (const char *const *c = choices; *c; c++) {
        int n = snprintf(list + len, sizeof(list) - len, "%s%s", c == choices ? "" : ", ", *c);
        if (n < 0 || (size_t)n >= sizeof(list) - len)
            break;
        len += (size_t)n;
    }
    cli_error("%s: '%s' is not one of %s", option, s, list);
    return false;
}

bool cli_parse_volume_ref(const char *what, const char *s, char **ret_pool, char **ret_name)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/')) {
        cli_error("%s: '%s' is not POOL/NAME (a pool and a volume, e.g. default/data1)", what, s);
        return false;
    }
    *ret_pool = vo_asprintf("%.*s", (int)(slash - s), s);
    *ret_name = vo_strdup(slash + 1);
    return true;
}

char *cli_absolute_path(const char *path)
{
    char *real = realpath(path, NULL);
    if (real)
        return real;
    if (path[0] == '/')
        return vo_strdup(path);
    _cleanup_free_ char *cwd = getcwd(NULL, 0);
    if (!cwd)
        return vo_strdup(path); /* vireod will say it is not absolute */
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    return vo_asprintf("%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", path);
}
