/* pool.c: the `vireo pool ...` commands: create, list, show and delete the
 * storage pools volumes live in, each a request to /v1/pools. */
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"

static const char *const type_choices[] = { "dir", "backup", NULL };

/* A byte count field as "1.5 GiB"; NULL when absent. */
static char *bytes_field(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0
               ? fmt_bytes((uint64_t)json_integer_value(v))
               : NULL;
}

static void print_pool(const json_t *pool)
{
    _cleanup_free_ char *capacity = bytes_field(pool, "capacity_bytes");
    _cleanup_free_ char *allocation = bytes_field(pool, "allocation_bytes");
    _cleanup_free_ char *available = bytes_field(pool, "available_bytes");
    _cleanup_free_ char *volumes = jint_str(pool, "volumes");
    out_kv(stdout, "name:", jstr(pool, "name"));
    out_kv(stdout, "type:", jstr(pool, "type"));
    out_kv(stdout, "path:", jstr(pool, "path"));
    out_kv(stdout, "capacity:", capacity);
    out_kv(stdout, "allocation:", allocation);
    out_kv(stdout, "available:", available);
    out_kv(stdout, "volumes:", volumes);
    out_kv(stdout, "created:", jstr(pool, "created_at"));
}

static int pool_create(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *path = NULL, *type = NULL;
    const CliOption opts[] = {
        { "--path", &path, NULL },
        { "--type", &type, NULL },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    if (!path)
        return cli_usage_error("pool create", "'pool create' needs --path DIR");
    if (!path[0]) {
        cli_error("--path: must not be empty");
        return CLI_EXIT_USAGE;
    }
    if (type && !cli_parse_choice("--type", type, type_choices))
        return CLI_EXIT_USAGE;

    _cleanup_free_ char *abs = cli_absolute_path(path);
    json_t *body = json_pack("{s:s, s:s}", "name", name, "path", abs);
    if (type)
        json_object_set_new(body, "type", json_string(type));
    json_t *pool = NULL;
    int r = api_call("POST", "/v1/pools", body, &pool);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(pool, print_pool);
}

static int pool_list(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/pools", &doc, &exit_status))
        return exit_status;
    static const char *const headers[] = { "NAME",       "TYPE",      "PATH",   "CAPACITY",
                                           "ALLOCATION", "AVAILABLE", "VOLUMES" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *pool;
    json_array_foreach(json_object_get(doc, "pools"), i, pool) {
        _cleanup_free_ char *capacity = bytes_field(pool, "capacity_bytes");
        _cleanup_free_ char *allocation = bytes_field(pool, "allocation_bytes");
        _cleanup_free_ char *available = bytes_field(pool, "available_bytes");
        _cleanup_free_ char *volumes = jint_str(pool, "volumes");
        const char *cells[] = { jstr(pool, "name"), jstr(pool, "type"), jstr(pool, "path"),
                                capacity,           allocation,         available,
                                volumes };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int pool_show(const CliCommand *cmd, int argc, char **argv)
{
    return api_show_command(cmd, argc, argv, "pools", print_pool);
}

static int pool_delete(const CliCommand *cmd, int argc, char **argv)
{
    return api_delete_command(cmd, argc, argv, "pools");
}

static const CliCommand pool_commands[] = {
    { "pool", "create", "NAME", "--path DIR [--type dir|backup]",
      "Create a pool: a directory vireod keeps volumes (or backups) in.",
      "The directory must exist on vireod's host and not be another pool's. A relative\n"
      "DIR is taken from the current directory.\n"
      "\nOptions:\n"
      "  --path DIR            the pool's directory (required)\n"
      "  --type dir|backup     dir (default) holds volumes; backup holds VM backups\n"
      "                        (see vireo backup create --target)\n"
      "\nExample:\n  vireo pool create fast --path /srv/nvme/vireo\n",
      pool_create },
    { "pool", "list", NULL, NULL, "List the pools with their space and volume counts.", NULL,
      pool_list },
    { "pool", "show", "NAME", NULL, "Show one pool.", NULL, pool_show },
    { "pool", "delete", "NAME", NULL, "Delete an empty pool (its directory stays).",
      "Refused while the pool holds volumes or backups, and for the default pool.\n", pool_delete },
};

const CliNoun cli_noun_pool = { "pool", "storage pools", pool_commands,
                                ELEMENTSOF(pool_commands) };
