/* cli.h: what every part of the `vireo` client shares: global options, exit
 * codes, error printing, the command table and option parsing (args.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* Exit statuses. Command handlers return one of these (not -errno). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,        /* the daemon or the task said no, or it is unreachable */
    CLI_EXIT_USAGE = 2,       /* the command line is wrong */
    CLI_EXIT_INTERRUPTED = 130, /* Ctrl-C while waiting for a task (the task keeps running) */
};

#define CLI_DEFAULT_SOCKET "/run/vireo/vireod.sock"

typedef struct {
    const char *socket; /* --socket, $VIREO_SOCKET or the default */
    bool json;          /* --output json */
} CliGlobals;

extern CliGlobals cli_globals;

/* "vireo: MESSAGE" on stderr. */
void cli_error(const char *fmt, ...) _printf_(1, 2);
/* "vireo: MESSAGE; try 'vireo HELP_CMD --help'" on stderr; returns CLI_EXIT_USAGE.
 * help_cmd NULL means plain 'vireo --help'. */
int cli_usage_error(const char *help_cmd, const char *fmt, ...) _printf_(2, 3);

/* One runnable command, e.g. `vm create` or `vm disk add`. */
typedef struct CliCommand CliCommand;
struct CliCommand {
    const char *noun;     /* "vm" */
    const char *verb;     /* "create", or two words ("disk add") for a command of a verb
                           * group; NULL when the noun alone is the command (console) */
    const char *arg;      /* the positional arguments, space-separated ("NAME",
                           * "POOL/NAME FILE"); a last one in brackets ("[POOL]") is
                           * optional; NULL for none */
    const char *synopsis; /* options after the positional, for the usage line */
    const char *summary;  /* one line */
    const char *details;  /* option descriptions and examples, or NULL */
    /* argv[0] is the verb (or the noun for verb-less commands). */
    int (*run)(const CliCommand *cmd, int argc, char **argv);
};

typedef struct {
    const char *noun;
    const char *summary;
    const CliCommand *commands;
    size_t n_commands;
} CliNoun;

extern const CliNoun cli_noun_vm, cli_noun_snapshot, cli_noun_backup, cli_noun_image, cli_noun_pool,
    cli_noun_volume, cli_noun_network, cli_noun_task, cli_noun_console, cli_noun_host,
    cli_noun_events, cli_noun_cluster, cli_noun_group, cli_noun_placement;
extern const CliNoun cli_noun_user, cli_noun_token;
extern const CliNoun cli_noun_schedule;
extern const CliNoun cli_noun_user, cli_noun_token, cli_noun_project;

/* vm-guest.c: what the guest agent answers (vm exec, vm set-password, the
 * guest part of vm show). */
int cli_vm_exec(const CliCommand *cmd, int argc, char **argv);
int cli_vm_set_password(const CliCommand *cmd, int argc, char **argv);
struct json_t;
void cli_vm_print_guest(struct json_t *vm);
/* vm-display.c: a VM's display (vm screenshot, vm send-keys). */
int cli_vm_screenshot(const CliCommand *cmd, int argc, char **argv);
int cli_vm_send_keys(const CliCommand *cmd, int argc, char **argv);

/* cluster-ha.c: `cluster ha show|set` (the restart limit). */
int cli_cluster_ha_show(const CliCommand *cmd, int argc, char **argv);
int cli_cluster_ha_set(const CliCommand *cmd, int argc, char **argv);

/* top.c: live tables of the VMs' and hosts' load. */
int cli_vm_top(const CliCommand *cmd, int argc, char **argv);
int cli_host_top(const CliCommand *cmd, int argc, char **argv);

/* password.c: the password from file (its first line; "-": standard input)
 * or, file NULL, asked twice on the terminal without echo; option names the
 * option in errors. NULL with the error printed; the caller wipes and frees
 * it. */
char *cli_read_password(const char *option, const char *file);
/* The SHA-512 crypt(3) hash ($6$) of password, with a random salt; NULL
 * with the error printed. */
char *cli_crypt_password(const char *password);

/* vm-cloudinit.c: the --ci-* options (vm create, vm cloud-init set) and the
 * `vm cloud-init show|set` commands. */
typedef struct {
    const char *user, *password_hash, *password_file, *ssh_key, *hostname, *user_data, *network;
    bool ask_password;
} CliCloudInitOpts;
#define CLI_CLOUD_INIT_OPTIONS(o)                                                               \
    { "--ci-user", &(o).user, NULL }, { "--ci-password-hash", &(o).password_hash, NULL },       \
        { "--ci-password-file", &(o).password_file, NULL },                                     \
        { "--ci-ask-password", NULL, &(o).ask_password },                                       \
        { "--ci-ssh-key", &(o).ssh_key, NULL }, { "--ci-hostname", &(o).hostname, NULL },       \
        { "--ci-user-data", &(o).user_data, NULL }, { "--ci-network", &(o).network, NULL }
#define CLI_CLOUD_INIT_HELP                                                                     \
    "  --ci-user NAME        cloud-init makes user NAME (sudo without password)\n"             \
    "  --ci-password-hash HASH  NAME's password, as a crypt(3) hash (mkpasswd -m\n"            \
    "                        sha-512, openssl passwd -6); SSH password login is on\n"          \
    "  --ci-password-file FILE  NAME's password is FILE's first line (- : standard\n"         \
    "                        input), hashed here (SHA-512 crypt): vireod never sees it\n"     \
    "  --ci-ask-password     the same, asked twice on the terminal\n"                         \
    "  --ci-ssh-key FILE     the ssh public keys in FILE (a .pub or authorized_keys)\n"        \
    "                        may log in as NAME (or as the image's default user)\n"            \
    "  --ci-hostname H       the guest's hostname (default: the VM's name)\n"                  \
    "  --ci-user-data FILE   your own user-data (#cloud-config or a #! script) instead\n"      \
    "                        of the one vireo makes (not with --ci-user/-ssh-key/-password-hash)\n" \
    "  --ci-network dhcp|static:IP/PREFIX[,gw=GW][,dns=IP[;IP]]\n"                             \
    "                        the first NIC's address (default: cloud-init's DHCP)\n"
/* Adds the options given to the "cloud_init" object ci; false after an error. */
bool cli_cloud_init_apply(const CliCloudInitOpts *o, struct json_t *ci);
bool cli_cloud_init_given(const CliCloudInitOpts *o);
int cli_vm_cloud_init_show(const CliCommand *cmd, int argc, char **argv);
int cli_vm_cloud_init_set(const CliCommand *cmd, int argc, char **argv);
/* vm-import.c */
int cli_vm_import_ova(const CliCommand *cmd, int argc, char **argv);
int cli_vm_import_libvirt(const CliCommand *cmd, int argc, char **argv);

/* "vm create", "vm disk add" or "console": the command's name for messages and help hints. */
const char *cli_command_name(const CliCommand *cmd, char *buf, size_t size);
void cli_print_command_help(const CliCommand *cmd);

/* The command of noun that argv (argv[0] the verb) names: a one-word verb is
 * argv[0], a two-word one ("disk add") argv[0] and argv[1]; *ret_words says
 * how many words it took. NULL when none matches. */
const CliCommand *cli_find_command(const CliNoun *noun, int argc, char **argv, int *ret_words);
/* Whether word is the first word of some two-word verb of noun ("disk"). */
bool cli_is_verb_group(const CliNoun *noun, const char *word);

/* An option of one command. `value` non-NULL: the option takes a value, stored
 * there (the last one given wins). `given` non-NULL: set to true when present. */
typedef struct {
    const char *name; /* "--vcpus" */
    const char **value;
    bool *given;
} CliOption;

/* A repeatable option of one command ("--remote A --remote B"): each value is
 * appended, in the order given, to *values, a strv the caller frees
 * (_cleanup_strv_); it stays NULL when the option is not given. */
typedef struct {
    const char *name; /* "--remote" */
    char ***values;
} CliListOption;

#define CLI_MAX_ARGS 4

/* Parse argv[1..] (options anywhere, `--` ends them) against opts (terminated
 * by an entry with name NULL) and the command's positional argument, which is
 * stored in *ret_arg. Returns true to go on; false when the command must exit
 * with *ret_exit (help was printed: 0; a usage error was printed: 2). */
bool cli_parse_args(const CliCommand *cmd, int argc, char **argv, const CliOption *opts,
                    const char **ret_arg, int *ret_exit);
/* The same for a command with several positional arguments (cmd->arg names
 * n of them): ret_args[i] gets the i-th, NULL for an optional one not given. */
bool cli_parse_args_n(const CliCommand *cmd, int argc, char **argv, const CliOption *opts,
                      const char **ret_args, size_t n, int *ret_exit);
/* The same for a command that also has repeatable options: lists (terminated
 * by an entry with name NULL; may be NULL for none). */
bool cli_parse_args_lists(const CliCommand *cmd, int argc, char **argv, const CliOption *opts,
                          const CliListOption *lists, const char **ret_args, size_t n,
                          int *ret_exit);

/* Option value parsers. Each prints "vireo: OPTION: ..." and returns false on
 * a bad value (the caller exits with CLI_EXIT_USAGE). */
bool cli_parse_uint(const char *option, const char *s, uint64_t min, uint64_t max,
                    uint64_t *ret);
/* A size whose bare numbers mean MiB; must be a whole number of MiB. */
bool cli_parse_mib(const char *option, const char *s, uint64_t *ret_mib);
/* A size whose bare numbers mean bytes; at most INT64_MAX (it goes into JSON). */
bool cli_parse_bytes(const char *option, const char *s, uint64_t *ret_bytes);
/* s must be one of the NULL-terminated choices. */
bool cli_parse_choice(const char *option, const char *s, const char *const *choices);
/* A volume reference POOL/NAME: exactly one '/', both sides non-empty (the
 * names themselves are vireod's to check). what names the argument in the
 * message ("POOL/NAME", "POOL/DST"). *ret_pool and *ret_name are allocated. */
bool cli_parse_volume_ref(const char *what, const char *s, char **ret_pool, char **ret_name);

/* path made absolute for vireod (which runs elsewhere, in /): resolved with
 * realpath() when that works, else joined to the current directory. */
char *cli_absolute_path(const char *path);
