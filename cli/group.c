/* group.c: the `vireo group ...` commands (placement groups: create, list,
 * show, delete; /v1/groups) and `vireo placement [show|set POLICY]` (the
 * cluster's placement policy; /v1/placement). */
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"

static const char *const group_policies[] = { "spread", "together", NULL };
static const char *const place_policies[] = { "spread", "pack", NULL };

static void print_group(const json_t *g)
{
    out_kv(stdout, "name:", jstr(g, "name"));
    out_kv(stdout, "policy:", jstr(g, "policy"));
    json_t *members = json_object_get(g, "members");
    if (json_array_size(members) == 0) {
        out_kv(stdout, "members:", "none");
        return;
    }
    _cleanup_free_ char *n = vo_asprintf("%zu", json_array_size(members));
    out_kv(stdout, "members:", n);
    fputc('\n', stdout);
    static const char *const headers[] = { "VM", "ID", "HOST" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m) {
        const char *cells[] = { jstr(m, "name"), jstr(m, "vm"), jstr(m, "host") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
}

static int group_create(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *policy = NULL;
    const CliOption opts[] = { { "--policy", &policy, NULL }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    if (!policy)
        return cli_usage_error("group create", "'group create' needs --policy spread|together");
    if (!cli_parse_choice("--policy", policy, group_policies))
        return CLI_EXIT_USAGE;
    json_t *body = json_pack("{s:s, s:s}", "name", name, "policy", policy);
    json_t *doc = NULL;
    int r = api_call("POST", "/v1/groups", body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_group);
}

static int group_list(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/groups", &doc, &exit_status))
        return exit_status;
    static const char *const headers[] = { "NAME", "POLICY", "MEMBERS" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(doc, "groups"), i, g) {
        _cleanup_free_ char *members = jint_str(g, "members");
        const char *cells[] = { jstr(g, "name"), jstr(g, "policy"), members };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int group_show(const CliCommand *cmd, int argc, char **argv)
{
    return api_show_command(cmd, argc, argv, "groups", print_group);
}

static int group_delete(const CliCommand *cmd, int argc, char **argv)
{
    return api_delete_command(cmd, argc, argv, "groups");
}

static void print_placement(const json_t *doc)
{
    out_kv(stdout, "policy:", jstr(doc, "policy"));
}

static int placement_show(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/placement", &doc, &exit_status))
        return exit_status;
    print_placement(doc);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int placement_set(const CliCommand *cmd, int argc, char **argv)
{
    const char *policy = NULL;
    const CliOption opts[] = { { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &policy, &exit_status))
        return exit_status;
    if (!cli_parse_choice("POLICY", policy, place_policies))
        return CLI_EXIT_USAGE;
    json_t *body = json_pack("{s:s}", "policy", policy);
    json_t *doc = NULL;
    int r = api_call("PUT", "/v1/placement", body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_placement);
}

static const CliCommand group_commands[] = {
    { "group", "create", "NAME", "--policy spread|together",
      "Create a placement group; VMs join it with 'vireo vm create --group NAME'.",
      "Policies:\n"
      "  spread                members on different hosts as far as there are hosts\n"
      "                        that fit (soft: a 4th member on 3 hosts still goes)\n"
      "  together              members on the host of the first member (a member that\n"
      "                        does not fit there is refused, with the reason)\n"
      "\nExamples:\n  vireo group create web --policy spread\n"
      "  vireo vm create web1 --group web\n",
      group_create },
    { "group", "list", NULL, NULL, "List the placement groups and how many VMs each has.", NULL,
      group_list },
    { "group", "show", "NAME", NULL, "Show a placement group and its VMs with their hosts.",
      NULL, group_show },
    { "group", "delete", "NAME", NULL, "Delete a placement group that has no VMs.",
      "Refused while VMs are in the group (delete them first).\n", group_delete },
};

const CliNoun cli_noun_group = { "group", "placement groups (spread or together)",
                                 group_commands, ELEMENTSOF(group_commands) };

static const CliCommand placement_commands[] = {
    { "placement", "show", NULL, NULL, "Show the cluster's placement policy.", NULL,
      placement_show },
    { "placement", "set", "POLICY", NULL,
      "Set the cluster's placement policy: spread (default) or pack.",
      "Policies:\n"
      "  spread                a new VM goes to the least loaded host that fits\n"
      "                        (memory, then CPU load, then vCPUs)\n"
      "  pack                  to the most loaded host that still fits\n",
      placement_set },
};

const CliNoun cli_noun_placement = { "placement", "where new VMs go (the cluster's policy)",
                                     placement_commands, ELEMENTSOF(placement_commands) };
