/* project.c: the `vireo project ...` commands (projects and their quotas:
 * create, list, show, set, delete; /v1/projects; docs/projects.md). */
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"

/* "3 / 8" (use / limit), "3" when unlimited; disk_bytes as sizes
 * ("1.5 GiB / 10.0 GiB"). */
static char *use_of(const json_t *p, const char *kind)
{
    json_t *limit = json_object_get(json_object_get(p, "quotas"), kind);
    json_int_t used = json_integer_value(json_object_get(json_object_get(p, "usage"), kind));
    if (!strcmp(kind, "disk_bytes")) {
        _cleanup_free_ char *u = fmt_bytes((uint64_t)used);
        _cleanup_free_ char *l = json_is_integer(limit)
                                     ? fmt_bytes((uint64_t)json_integer_value(limit))
                                     : NULL;
        return l ? vo_asprintf("%s / %s", u, l) : vo_strdup(u);
    }
    if (json_is_integer(limit))
        return vo_asprintf("%lld / %lld", (long long)used, (long long)json_integer_value(limit));
    return vo_asprintf("%lld", (long long)used);
}

/* How many volumes or networks are the project's (every host's). */
static char *count_of(const json_t *p, const char *kind)
{
    json_t *n = json_object_get(json_object_get(p, "counts"), kind);
    return json_is_integer(n) ? vo_asprintf("%lld", (long long)json_integer_value(n))
                              : vo_strdup("-");
}

static void print_project(const json_t *p)
{
    out_kv(stdout, "name:", jstr(p, "name"));
    static const char *const kinds[][2] = { { "vms:", "vms" }, { "vcpus:", "vcpus" },
                                            { "memory (MiB):", "memory_mib" },
                                            { "disk:", "disk_bytes" } };
    for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
        _cleanup_free_ char *v = use_of(p, kinds[i][1]);
        out_kv(stdout, kinds[i][0], v);
    }
    json_t *counts = json_object_get(p, "counts");
    if (counts) { /* its own volumes and networks, on every host */
        _cleanup_free_ char *volumes = count_of(p, "volumes"), *networks = count_of(p, "networks");
        out_kv(stdout, "volumes:", volumes);
        out_kv(stdout, "networks:", networks);
    }
    json_t *vms = json_object_get(p, "vms");
    if (!vms)
        return;
    fputc('\n', stdout);
    static const char *const headers[] = { "VM", "ID", "HOST" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *m;
    json_array_foreach(vms, i, m) {
        const char *cells[] = { jstr(m, "name"), jstr(m, "vm"), jstr(m, "host") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
}

static bool parse_count(const char *option, const char *s, uint64_t *ret)
{
    return cli_parse_uint(option, s, 0, INT32_MAX, ret);
}

/* The body's quotas[key] from option's value (NULL: not given; "none":
 * null, which removes the limit); false after a usage error. */
static bool quota_option(json_t *quotas, const char *option, const char *key, const char *value,
                         bool (*parse)(const char *option, const char *s, uint64_t *ret))
{
    uint64_t v;
    if (!value)
        return true;
    if (!strcmp(value, "none")) {
        json_object_set_new(quotas, key, json_null());
        return true;
    }
    if (!parse(option, value, &v))
        return false;
    json_object_set_new(quotas, key, json_integer((json_int_t)v));
    return true;
}

/* The body's "quotas" from --max-vcpus, --max-memory, --max-vms and
 * --max-disk; false after a usage error. */
static bool quota_options(json_t *quotas, const char *vcpus, const char *memory, const char *vms,
                          const char *disk)
{
    return quota_option(quotas, "--max-vcpus", "vcpus", vcpus, parse_count) &&
           quota_option(quotas, "--max-memory", "memory_mib", memory, cli_parse_mib) &&
           quota_option(quotas, "--max-vms", "vms", vms, parse_count) &&
           quota_option(quotas, "--max-disk", "disk_bytes", disk, cli_parse_bytes);
}

static int project_write(const CliCommand *cmd, int argc, char **argv, bool create)
{
    const char *name = NULL, *vcpus = NULL, *memory = NULL, *vms = NULL, *disk = NULL;
    const CliOption opts[] = { { "--max-vcpus", &vcpus, NULL }, { "--max-memory", &memory, NULL },
                               { "--max-vms", &vms, NULL }, { "--max-disk", &disk, NULL },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    if (!create && !vcpus && !memory && !vms && !disk)
        return cli_usage_error("project set", "nothing to change: give --max-vcpus, "
                               "--max-memory, --max-vms or --max-disk (a number, or none)");
    json_t *quotas = json_object();
    if (!quota_options(quotas, vcpus, memory, vms, disk)) {
        json_decref(quotas);
        return CLI_EXIT_USAGE;
    }
    json_t *body = create ? json_pack("{s:s, s:o}", "name", name, "quotas", quotas)
                          : json_pack("{s:o}", "quotas", quotas);
    _cleanup_free_ char *path = create ? vo_strdup("/v1/projects")
                                       : api_path("projects", name, NULL);
    json_t *doc = NULL;
    int r = api_call(create ? "POST" : "PATCH", path, body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_project);
}

static int project_create(const CliCommand *cmd, int argc, char **argv)
{
    return project_write(cmd, argc, argv, true);
}

static int project_set(const CliCommand *cmd, int argc, char **argv)
{
    return project_write(cmd, argc, argv, false);
}

static int project_list(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/projects", &doc, &exit_status))
        return exit_status;
    static const char *const headers[] = { "NAME", "VMS", "VCPUS", "MEMORY (MiB)", "DISK",
                                           "VOLUMES", "NETWORKS" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(doc, "projects"), i, p) {
        _cleanup_free_ char *vms = use_of(p, "vms");
        _cleanup_free_ char *vcpus = use_of(p, "vcpus");
        _cleanup_free_ char *memory = use_of(p, "memory_mib");
        _cleanup_free_ char *disk = use_of(p, "disk_bytes");
        _cleanup_free_ char *volumes = count_of(p, "volumes");
        _cleanup_free_ char *networks = count_of(p, "networks");
        const char *cells[] = { jstr(p, "name"), vms, vcpus, memory, disk, volumes, networks };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int project_show(const CliCommand *cmd, int argc, char **argv)
{
    return api_show_command(cmd, argc, argv, "projects", print_project);
}

static int project_delete(const CliCommand *cmd, int argc, char **argv)
{
    return api_delete_command(cmd, argc, argv, "projects");
}

#define QUOTA_HELP                                                                      \
    "Options (a number, or none for no limit; unlimited when not given):\n"             \
    "  --max-vcpus N         vCPUs of all its VMs together (each VM counts its\n"       \
    "                        --max-vcpus: what it may reach by hot-plug)\n"             \
    "  --max-memory SIZE     memory of all its VMs (each counts its --max-memory);\n"   \
    "                        a bare number is MiB, or use K/M/G/T\n"                    \
    "  --max-vms N           how many VMs\n"                                    \
    "  --max-disk SIZE       the virtual sizes of all its VMs' disks together;\n"   \
    "                        a bare number is bytes, or use K/M/G/T\n"

static const CliCommand project_commands[] = {
    { "project", "create", "NAME",
      "[--max-vcpus N] [--max-memory SIZE] [--max-vms N] [--max-disk SIZE]",
      "Create a project: VMs in it (vm create --project NAME) count against its quotas.",
      QUOTA_HELP
      "\nA VM create, a move into it (vm set VM --project NAME), a raise of a VM's\n"
      "vCPUs or memory, a disk added to a VM or a VM's volume resized that would\n"
      "take the project over a quota is refused (409 quota-exceeded), naming the\n"
      "quota, its limit, what is in use and what was asked.\n"
      "\nExamples:\n  vireo project create team-a --max-vcpus 16 --max-memory 32G --max-vms 8 \\\n"
      "      --max-disk 500G\n"
      "  vireo vm create web1 --project team-a\n",
      project_create },
    { "project", "list", NULL, NULL,
      "List the projects with use / limit of each quota and their volume and network counts.",
      NULL, project_list },
    { "project", "show", "NAME", NULL,
      "Show a project's quotas, usage, volume and network counts, and VMs.", NULL,
      project_show },
    { "project", "set", "NAME",
      "[--max-vcpus N|none] [--max-memory SIZE|none] [--max-vms N|none] [--max-disk SIZE|none]",
      "Change a project's quotas.",
      QUOTA_HELP
      "\nA limit below what is in use stops growth; nothing running is touched.\n",
      project_set },
    { "project", "delete", "NAME", NULL, "Delete a project that holds no VM.",
      "Refused while VMs are in it, naming them (delete them or move them first).\n"
      "Project default cannot be deleted.\n", project_delete },
};

const CliNoun cli_noun_project = { "project", "projects: VMs grouped under quotas",
                                   project_commands, ELEMENTSOF(project_commands) };
