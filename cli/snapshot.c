/* snapshot.c: the `vireo snapshot ...` commands: create, list (as a tree),
 * show, revert and delete a VM's snapshots, each a request to
 * /v1/vms/VM/snapshots. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"
#include "wait.h"

/* "/v1/vms/<vm>/snapshots[/<name>][suffix]", escaped; name and suffix may be NULL. */
static char *snapshot_path(const char *vm, const char *name, const char *suffix)
{
    _cleanup_free_ char *esc = name ? api_escape(name) : NULL;
    _cleanup_free_ char *tail = vo_asprintf("/snapshots%s%s%s", esc ? "/" : "", esc ? esc : "",
                                            suffix ? suffix : "");
    return api_path("vms", vm, tail);
}

static const char *yes_no(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? (json_is_true(v) ? "yes" : "no") : NULL;
}

static int snapshot_create(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL }, *description = NULL;
    bool memory = false, async = false;
    const CliOption opts[] = {
        { "--memory", NULL, &memory },
        { "--description", &description, NULL },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;

    json_t *body = json_pack("{s:s}", "name", args[1]);
    if (memory)
        json_object_set_new(body, "memory", json_true());
    if (description)
        json_object_set_new(body, "description", json_string(description));
    _cleanup_free_ char *path = snapshot_path(args[0], NULL, NULL);
    _cleanup_free_ char *done = vo_asprintf("snapshot %s created", args[1]);
    int r = run_action("POST", path, body, async, args[0], done);
    json_decref(body);
    return r;
}

/* ---- list: the snapshots as a tree ------------------------------------------ */

typedef struct {
    json_t *snap;
    const char *name, *parent, *created;
    bool root, done;
} TreeNode;

/* Siblings oldest first (created_at is ISO 8601 UTC, so it sorts as text),
 * then by name. */
static int node_cmp(const void *a, const void *b)
{
    const TreeNode *x = a, *y = b;
    int c = strcmp(x->created ? x->created : "", y->created ? y->created : "");
    return c ? c : strcmp(x->name, y->name);
}

/* Add node and, under it, its children; prefix is the tree lines of the
 * levels above ("│  " or "   " each); top: a root, drawn without a branch. */
static void tree_add(OutTable *t, TreeNode *nodes, size_t n, TreeNode *node, const char *prefix,
                     bool top, bool last)
{
    node->done = true; /* also guards against a (corrupt) cycle */
    bool current = json_is_true(json_object_get(node->snap, "current"));
    bool memory = json_is_true(json_object_get(node->snap, "memory"));
    const char *branch = top ? "" : last ? "└─ " : "├─ ";
    _cleanup_free_ char *cell = vo_asprintf("%s%s%s%s%s", prefix, branch, node->name,
                                            current ? " *" : "", memory ? " (memory)" : "");
    const char *cells[] = { cell, node->created, jstr(node->snap, "description") };
    out_table_add(t, cells);

    _cleanup_free_ char *child_prefix =
        vo_asprintf("%s%s", prefix, top ? "" : last ? "   " : "│  ");
    size_t remaining = 0;
    for (size_t i = 0; i < n; i++)
        if (!nodes[i].done && !nodes[i].root && strcmp(nodes[i].parent, node->name) == 0)
            remaining++;
    for (size_t i = 0; i < n && remaining > 0; i++)
        if (!nodes[i].done && !nodes[i].root && strcmp(nodes[i].parent, node->name) == 0) {
            remaining--;
            tree_add(t, nodes, n, &nodes[i], child_prefix, false, remaining == 0);
        }
}

static int snapshot_list(const CliCommand *cmd, int argc, char **argv)
{
    const char *vm = NULL;
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_vm_part(cmd, argc, argv, "snapshots", &vm, &doc, &exit_status))
        return exit_status;

    json_t *snaps = json_object_get(doc, "snapshots");
    size_t n = 0, i;
    _cleanup_free_ TreeNode *nodes = vo_malloc0((json_array_size(snaps) + 1) * sizeof(TreeNode));
    json_t *s;
    json_array_foreach(snaps, i, s) {
        if (!jstr(s, "name"))
            continue;
        nodes[n++] = (TreeNode){ .snap = s, .name = jstr(s, "name"), .parent = jstr(s, "parent"),
                                 .created = jstr(s, "created_at") };
    }
    qsort(nodes, n, sizeof(TreeNode), node_cmp);
    /* Roots: no parent, or one that is not (or no longer) there. */
    for (i = 0; i < n; i++) {
        nodes[i].root = true;
        for (size_t k = 0; k < n && nodes[i].parent; k++)
            if (strcmp(nodes[k].name, nodes[i].parent) == 0)
                nodes[i].root = false;
    }

    static const char *const headers[] = { "NAME", "CREATED", "DESCRIPTION" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    for (i = 0; i < n; i++)
        if (nodes[i].root)
            tree_add(t, nodes, n, &nodes[i], "", true, true);
    /* Whatever a cycle of parents kept out of the tree, flat at the end. */
    for (i = 0; i < n; i++)
        if (!nodes[i].done)
            tree_add(t, nodes, n, &nodes[i], "", true, true);
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

/* "a, b, c", or "none". */
static char *children_str(const json_t *snap)
{
    json_t *children = json_object_get(snap, "children");
    if (json_is_array(children) && json_array_size(children) == 0)
        return vo_strdup("none");
    return jstrs_joined(snap, "children");
}

static int snapshot_show(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL };
    const CliOption opts[] = { { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = snapshot_path(args[0], args[1], NULL);
    json_t *snap = NULL;
    if (api_call("GET", path, NULL, &snap) < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json) {
        out_json(stdout, snap);
        json_decref(snap);
        return CLI_EXIT_OK;
    }
    _cleanup_free_ char *children = children_str(snap);
    json_t *running = json_object_get(snap, "vm_running");
    out_kv(stdout, "name:", jstr(snap, "name"));
    out_kv(stdout, "parent:", jstr(snap, "parent"));
    out_kv(stdout, "children:", children);
    out_kv(stdout, "current:", yes_no(snap, "current"));
    out_kv(stdout, "memory:", yes_no(snap, "memory"));
    out_kv(stdout, "vm state:", json_is_boolean(running)
                                    ? (json_is_true(running) ? "running" : "stopped")
                                    : NULL);
    out_kv(stdout, "description:", jstr(snap, "description"));
    out_kv(stdout, "created:", jstr(snap, "created_at"));
    json_decref(snap);
    return CLI_EXIT_OK;
}

static int snapshot_revert(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL };
    bool force = false, async = false;
    const CliOption opts[] = {
        { "--force", NULL, &force },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    json_t *body = json_object();
    if (force)
        json_object_set_new(body, "force", json_true());
    _cleanup_free_ char *path = snapshot_path(args[0], args[1], "/revert");
    _cleanup_free_ char *done = vo_asprintf("reverted to snapshot %s", args[1]);
    int r = run_action("POST", path, body, async, args[0], done);
    json_decref(body);
    return r;
}

static int snapshot_delete(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL };
    bool async = false;
    const CliOption opts[] = { { "--async", NULL, &async }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = snapshot_path(args[0], args[1], NULL);
    _cleanup_free_ char *done = vo_asprintf("snapshot %s deleted", args[1]);
    return run_action("DELETE", path, NULL, async, args[0], done);
}

#define ASYNC_HELP "  --async               print the task id and return without waiting\n"

static const CliCommand snapshot_commands[] = {
    { "snapshot", "create", "VM NAME", "[--memory] [--description TEXT] [--async]",
      "Snapshot a VM's disks (and, with --memory, its running state).",
      "The snapshot is taken inside the VM's qcow2 disks (all of them must be qcow2),\n"
      "or, for a VM whose disks are all in rbd pools, as an RBD snapshot of each disk\n"
      "(the running VM paused for the instant; disks only, no --memory); while it\n"
      "runs or while it is stopped. It becomes the VM's current snapshot; the one\n"
      "current before is its parent.\n"
      "\nOptions:\n"
      "  --memory              also save the running VM's memory and device state, so\n"
      "                        that reverting resumes it at that instant (the VM must run)\n"
      "  --description TEXT    a note kept with the snapshot\n" ASYNC_HELP
      "\nExample:\n  vireo snapshot create web1 pre-upgrade --description 'before 2.0'\n",
      snapshot_create },
    { "snapshot", "list", "VM", NULL, "List a VM's snapshots as a tree.",
      "Children are indented under their parent; '*' marks the current snapshot and\n"
      "'(memory)' one with the VM's memory.\n",
      snapshot_list },
    { "snapshot", "show", "VM NAME", NULL, "Show one snapshot of a VM.", NULL, snapshot_show },
    { "snapshot", "revert", "VM NAME", "[--force] [--async]",
      "Return a VM's disks (and memory) to a snapshot.",
      "The VM's current state is lost. A disk-only snapshot is reverted with the VM\n"
      "stopped (a running VM is stopped first, with --force); a snapshot with memory\n"
      "is loaded into the running VM, which then runs on from that instant.\n"
      "\nOptions:\n"
      "  --force               revert even though the VM runs (required then)\n" ASYNC_HELP,
      snapshot_revert },
    { "snapshot", "delete", "VM NAME", "[--async]", "Delete a snapshot of a VM.",
      "Its children, if any, become children of its parent; the VM's disks keep their\n"
      "current contents.\n"
      "\nOptions:\n" ASYNC_HELP,
      snapshot_delete },
};

const CliNoun cli_noun_snapshot = { "snapshot", "VM snapshots", snapshot_commands,
                                    ELEMENTSOF(snapshot_commands) };
