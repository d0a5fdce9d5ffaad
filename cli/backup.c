/* backup.c: the `vireo backup ...` commands: create (full or incremental, with
 * retention), list, show, restore, verify and delete VM backups, through
 * POST /v1/vms/VM/backups and /v1/backups. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"
#include "wait.h"

/* The most --bwlimit takes (MiB/s): the daemon's VO_BACKUP_BWLIMIT_MAX_MIB. */
#define BWLIMIT_MAX_MIB (1024 * 1024)

/* --bwlimit MIB into body's "bwlimit_mib"; false (usage error) when bad. */
static bool add_bwlimit(json_t *body, const char *bwlimit)
{
    uint64_t mib = 0;
    if (!bwlimit)
        return true;
    if (!cli_parse_uint("--bwlimit", bwlimit, 1, BWLIMIT_MAX_MIB, &mib))
        return false;
    json_object_set_new(body, "bwlimit_mib", json_integer((json_int_t)mib));
    return true;
}

static char *size_of(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? fmt_bytes((uint64_t)json_integer_value(v)) : NULL;
}

/* Waits for a task whose message, on success, names what it made (a backup
 * id); prints its error otherwise. Returns the exit status. */
static int wait_for_result(json_t *doc, bool async, char **ret_result)
{
    json_t *task = json_object_get(doc, "task");
    if (async || !json_is_object(task))
        return run_task(doc, "the backup request", async, "backup", NULL);
    json_t *final = NULL;
    int exit_status = task_outcome(task, "backup", &final);
    if (exit_status == CLI_EXIT_OK)
        *ret_result = vo_strdup(jstr(final, "message"));
    json_decref(final);
    return exit_status;
}

static int backup_create(const CliCommand *cmd, int argc, char **argv)
{
    const char *vm = NULL, *target = NULL, *keep_last = NULL, *bwlimit = NULL;
    bool incremental = false, async = false;
    const CliOption opts[] = {
        { "--target", &target, NULL },
        { "--incremental", NULL, &incremental },
        { "--keep-last", &keep_last, NULL },
        { "--bwlimit", &bwlimit, NULL },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &vm, &exit_status))
        return exit_status;
    uint64_t keep = 0;
    if (keep_last && !cli_parse_uint("--keep-last", keep_last, 1, 1000, &keep))
        return CLI_EXIT_USAGE;
    json_t *body = json_object();
    if (target)
        json_object_set_new(body, "pool", json_string(target));
    if (incremental)
        json_object_set_new(body, "incremental", json_true());
    if (keep)
        json_object_set_new(body, "keep_last", json_integer((json_int_t)keep));
    if (!add_bwlimit(body, bwlimit)) {
        json_decref(body);
        return CLI_EXIT_USAGE;
    }
    _cleanup_free_ char *path = api_path("vms", vm, "/backups");
    json_t *doc = NULL;
    int r = api_call("POST", path, body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    _cleanup_free_ char *id = NULL;
    exit_status = wait_for_result(doc, async, &id);
    json_decref(doc);
    if (exit_status != CLI_EXIT_OK || async || !id)
        return exit_status;
    _cleanup_free_ char *show = api_path("backups", id, NULL);
    json_t *backup = NULL;
    if (api_call("GET", show, NULL, &backup) < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json)
        out_json(stdout, backup);
    else {
        _cleanup_free_ char *stored = size_of(backup, "stored_bytes");
        printf("backup %s created: %s, %s stored\n", id, jstr(backup, "kind"), stored);
        if (jstr(backup, "reason"))
            printf("  full, not incremental: %s\n", jstr(backup, "reason"));
    }
    json_decref(backup);
    return CLI_EXIT_OK;
}

static int backup_list(const CliCommand *cmd, int argc, char **argv)
{
    const char *vm = NULL;
    const CliOption opts[] = { { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &vm, &exit_status))
        return exit_status;
    _cleanup_free_ char *esc = vm ? api_escape(vm) : NULL;
    _cleanup_free_ char *path = vo_asprintf("/v1/backups%s%s", esc ? "?vm=" : "", esc ? esc : "");
    json_t *list = NULL;
    if (api_call("GET", path, NULL, &list) < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json) {
        out_json(stdout, list);
        json_decref(list);
        return CLI_EXIT_OK;
    }
    static const char *const headers[] = { "ID", "VM", "KIND", "PARENT", "POOL", "STORED",
                                           "CREATED" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b) {
        _cleanup_free_ char *stored = size_of(b, "stored_bytes");
        const char *cells[] = { jstr(b, "id"), jstr(b, "vm"), jstr(b, "kind"), jstr(b, "parent"),
                                jstr(b, "pool"), stored, jstr(b, "created_at") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(list);
    return CLI_EXIT_OK;
}

static int backup_show(const CliCommand *cmd, int argc, char **argv)
{
    const char *id = NULL;
    const CliOption opts[] = { { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &id, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = api_path("backups", id, NULL);
    json_t *b = NULL;
    if (api_call("GET", path, NULL, &b) < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json) {
        out_json(stdout, b);
        json_decref(b);
        return CLI_EXIT_OK;
    }
    _cleanup_free_ char *stored = size_of(b, "stored_bytes");
    _cleanup_free_ char *duration = jint_str(b, "duration_ms");
    json_t *verify = json_object_get(b, "last_verify");
    out_kv(stdout, "id:", jstr(b, "id"));
    out_kv(stdout, "vm:", jstr(b, "vm"));
    out_kv(stdout, "kind:", jstr(b, "kind"));
    out_kv(stdout, "parent:", jstr(b, "parent"));
    out_kv(stdout, "reason:", jstr(b, "reason"));
    out_kv(stdout, "pool:", jstr(b, "pool"));
    out_kv(stdout, "vm state:", json_is_true(json_object_get(b, "vm_running")) ? "running"
                                                                               : "stopped");
    out_kv(stdout, "stored:", stored);
    out_kv(stdout, "duration ms:", duration);
    out_kv(stdout, "created:", jstr(b, "created_at"));
    out_kv(stdout, "verified:", !json_is_object(verify) ? "never"
                                : json_is_true(json_object_get(verify, "ok")) ? "ok"
                                                                              : "FAILED");
    size_t i;
    json_t *disk;
    json_array_foreach(json_object_get(b, "disks"), i, disk) {
        _cleanup_free_ char *key = vo_asprintf("disk %zu:", i);
        _cleanup_free_ char *size = size_of(disk, "stored_bytes");
        _cleanup_free_ char *line = vo_asprintf("%s, %s stored, sha256 %.16s...",
                                                jstr(disk, "file"), size, jstr(disk, "sha256"));
        out_kv(stdout, key, line);
    }
    json_decref(b);
    return CLI_EXIT_OK;
}

static int backup_restore(const CliCommand *cmd, int argc, char **argv)
{
    const char *id = NULL, *as = NULL, *pool = NULL, *bwlimit = NULL;
    bool async = false;
    const CliOption opts[] = {
        { "--as", &as, NULL },
        { "--pool", &pool, NULL },
        { "--bwlimit", &bwlimit, NULL },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &id, &exit_status))
        return exit_status;
    json_t *body = json_object();
    if (as)
        json_object_set_new(body, "as", json_string(as));
    if (pool)
        json_object_set_new(body, "pool", json_string(pool));
    if (!add_bwlimit(body, bwlimit)) {
        json_decref(body);
        return CLI_EXIT_USAGE;
    }
    _cleanup_free_ char *path = api_path("backups", id, "/restore");
    int r = run_action("POST", path, body, async, id,
                       as ? "restored as a new VM" : "restored");
    json_decref(body);
    return r;
}

/* `backup verify ID [--bwlimit MIB] [--async]`, `backup delete ID [--async]`:
 * one request on the backup, run as a task. */
static int backup_task(const CliCommand *cmd, int argc, char **argv, const char *method,
                       const char *suffix, bool with_body, const char *done_word)
{
    const char *id = NULL, *bwlimit = NULL;
    bool async = false;
    const CliOption opts[] = { { "--async", NULL, &async },
                               /* delete: none (a NULL name ends the list) */
                               { with_body ? "--bwlimit" : NULL, &bwlimit, NULL },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &id, &exit_status))
        return exit_status;
    json_t *body = with_body ? json_object() : NULL;
    if (body && !add_bwlimit(body, bwlimit)) {
        json_decref(body);
        return CLI_EXIT_USAGE;
    }
    _cleanup_free_ char *path = api_path("backups", id, suffix);
    int r = run_action(method, path, body, async, id, done_word);
    json_decref(body);
    return r;
}

static int backup_verify(const CliCommand *cmd, int argc, char **argv)
{
    return backup_task(cmd, argc, argv, "POST", "/verify", true,
                       "verified, every checksum matches");
}

static int backup_delete(const CliCommand *cmd, int argc, char **argv)
{
    return backup_task(cmd, argc, argv, "DELETE", NULL, false, "deleted");
}

#define ASYNC_HELP "  --async               print the task id and return without waiting\n"

static const CliCommand backup_commands[] = {
    { "backup", "create", "VM",
      "[--target POOL] [--incremental] [--keep-last N] [--bwlimit MIB] [--async]",
      "Back up every disk of a VM (running or stopped) into a backup pool.",
      "All disks are captured at the same instant, with the VM's definition. A full\n"
      "backup copies every disk; an incremental one only the blocks changed since the\n"
      "VM's previous backup in the same pool. When an incremental one is not possible\n"
      "(no previous backup, disks changed, a snapshot reverted, QEMU killed) the backup\n"
      "is full and says why. A VM whose disks are in rbd pools is backed up from RBD\n"
      "snapshots (incremental: the extents changed since the previous backup's).\n"
      "\nOptions:\n"
      "  --target POOL         a backup pool (default: 'backup', made on first use)\n"
      "  --incremental         only what changed since the previous backup\n"
      "  --keep-last N         afterwards keep only the VM's newest N backups in the pool\n"
      "                        (it deletes backups: the admin role)\n"
      "  --bwlimit MIB         copy at most MIB MiB/s in all (1-1048576; default: no\n"
      "                        limit), so the VM's disks keep their speed\n"
      ASYNC_HELP
      "\nExample:\n  vireo backup create web1 --incremental --keep-last 7\n",
      backup_create },
    { "backup", "list", "[VM]", NULL, "List backups, oldest first (of one VM, or all).", NULL,
      backup_list },
    { "backup", "show", "ID", NULL, "Show one backup: kind, parent, sizes, checksums.", NULL,
      backup_show },
    { "backup", "restore", "ID", "[--as NAME] [--pool POOL] [--bwlimit MIB] [--async]",
      "Restore a backup into a new VM, or over the original VM.",
      "With --as NAME a new VM is made from the stored definition (new id and MACs),\n"
      "its disks new volumes in POOL (default: default). Without --as the backup is\n"
      "restored over the VM it was taken of, which must be stopped; when that VM is\n"
      "gone, a new VM takes its name. Over a VM on RBD, each image is written over\n"
      "behind an undo snapshot (all rolled back when one fails); with --as, POOL may be\n"
      "an rbd pool. A restore that makes a VM needs the admin role (over the VM: operator).\n"
      "\nOptions:\n"
      "  --as NAME             the new VM's name\n"
      "  --pool POOL           the pool for the new VM's volumes (with --as)\n"
      "  --bwlimit MIB         copy at most MIB MiB/s (1-1048576; default: no limit)\n"
      ASYNC_HELP
      "\nExample:\n  vireo backup restore web1-20260101-120000-3f2a --as web1-copy\n",
      backup_restore },
    { "backup", "verify", "ID", "[--bwlimit MIB] [--async]",
      "Check a backup's files (and those it builds on) against their checksums.",
      "Every file's sha256 is compared with the one recorded when it was written, and\n"
      "qemu-img check reads its structure. Exits non-zero on any mismatch.\n"
      "\nOptions:\n"
      "  --bwlimit MIB         read at most MIB MiB/s (1-1048576; default: no limit)\n"
      ASYNC_HELP,
      backup_verify },
    { "backup", "delete", "ID", "[--async]", "Delete a backup.",
      "Backups built on it are rebased onto its parent first, so they stay restorable.\n"
      "\nOptions:\n" ASYNC_HELP,
      backup_delete },
};

const CliNoun cli_noun_backup = { "backup", "VM backups", backup_commands,
                                  ELEMENTSOF(backup_commands) };
