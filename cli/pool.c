/* pool.c: the `vireo pool ...` commands: create, list, show and delete the
 * storage pools volumes live in, each a request to /v1/pools. */
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"

static const char *const type_choices[] = { "dir", "backup", "iscsi", "rbd", NULL };

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
    if (jstr(pool, "portal")) { /* an iSCSI pool */
        out_kv(stdout, "portal:", jstr(pool, "portal"));
        out_kv(stdout, "target:", jstr(pool, "target"));
        out_kv(stdout, "chap user:", jstr(pool, "chap_user") ? jstr(pool, "chap_user") : "-");
        out_kv(stdout, "initiator:", jstr(pool, "initiator"));
    }
    out_kv(stdout, "capacity:", capacity);
    out_kv(stdout, "allocation:", allocation);
    out_kv(stdout, "available:", available);
    out_kv(stdout, "volumes:", volumes);
    out_kv(stdout, "created:", jstr(pool, "created_at"));
    json_t *rbd = json_object_get(pool, "rbd");
    if (json_is_object(rbd)) { /* the key itself is never shown */
        out_kv(stdout, "ceph monitors:", jstr(rbd, "monitors"));
        out_kv(stdout, "ceph pool:", jstr(rbd, "pool"));
        out_kv(stdout, "ceph user:", jstr(rbd, "user"));
    }
    /* RBD images a crash left that would not go yet, and why (a shared
     * pool: every host's; another host's tries are its own, not shown). */
    size_t k;
    json_t *kept;
    json_array_foreach(json_object_get(pool, "kept_intents"), k, kept) {
        _cleanup_free_ char *host = jstr(kept, "host") ? vo_asprintf(" on host %s",
                                                                     jstr(kept, "host"))
                                                       : vo_strdup("");
        _cleanup_free_ char *tries = jint_str(kept, "tries");
        _cleanup_free_ char *when = json_object_get(kept, "tries")
            ? vo_asprintf(", %s tries; next %s", tries,
                          jstr(kept, "next_try_at") ? jstr(kept, "next_try_at")
                                                    : "at the next check")
            : vo_strdup("");
        _cleanup_free_ char *what = vo_asprintf("%s%s: %s (%s%s)", jstr(kept, "intent"), host,
                                                jstr(kept, "error"), jstr(kept, "failure"),
                                                when);
        out_kv(stdout, "kept intent:", what);
    }
    if (jstr(pool, "reason") && !json_is_true(json_object_get(pool, "shared")))
        out_kv(stdout, "note:", jstr(pool, "reason"));
    if (!json_is_true(json_object_get(pool, "shared"))) {
        if (jstr(pool, "host"))
            out_kv(stdout, "host:", jstr(pool, "host"));
        return;
    }
    out_kv(stdout, "shared:", "yes");
    out_kv(stdout, "id:", jstr(pool, "id"));
    /* Every host: reachable, or why not. */
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(pool, "hosts"), i, h) {
        _cleanup_free_ char *label = vo_asprintf("host %s:", jstr(h, "host") ? jstr(h, "host") : "?");
        _cleanup_free_ char *what = json_is_true(json_object_get(h, "reachable"))
                                        ? vo_strdup("reachable")
                                        : vo_asprintf("unreachable: %s", jstr(h, "reason") ? jstr(h, "reason") : "?");
        out_kv(stdout, label, what);
    }
}

/* "yes", "no" or "2/3 hosts" for the list's REACHABLE column. */
static char *reach_cell(const json_t *pool)
{
    json_t *hosts = json_object_get(pool, "hosts");
    if (!json_is_true(json_object_get(pool, "shared")) || json_array_size(hosts) <= 1)
        return vo_strdup(json_is_true(json_object_get(pool, "reachable")) ? "yes" : "no");
    size_t i, n = 0;
    json_t *h;
    json_array_foreach(hosts, i, h)
        n += json_is_true(json_object_get(h, "reachable"));
    return vo_asprintf("%zu/%zu hosts", n, json_array_size(hosts));
}

/* An iSCSI pool's body: portal, target, CHAP user and the secret read from
 * a file here (so it is in no command line); NULL after an error. */
static json_t *iscsi_body(const char *name, const char *portal, const char *target,
                          const char *user, const char *secret_file)
{
    if (!portal || !target) {
        cli_usage_error("pool create", "an iscsi pool needs --portal IP[:PORT] and --target IQN");
        return NULL;
    }
    if (!!user != !!secret_file) {
        cli_usage_error("pool create", "--chap-user and --chap-secret-file go together");
        return NULL;
    }
    json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "name", name, "type", "iscsi", "portal",
                             portal, "target", target);
    if (user) {
        _cleanup_free_ char *secret = NULL;
        size_t len = 0;
        if (vo_read_file(secret_file, 4096, &secret, &len) < 0) {
            cli_error("--chap-secret-file: cannot read '%s'", secret_file);
            json_decref(body);
            return NULL;
        }
        secret[strcspn(secret, "\r\n")] = 0;
        json_object_set_new(body, "chap_user", json_string(user));
        json_object_set_new(body, "chap_secret", json_string(secret));
    }
    return body;
}

static int pool_create(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *path = NULL, *type = NULL;
    const char *portal = NULL, *target = NULL, *chap_user = NULL, *chap_file = NULL;
    const char *monitors = NULL, *ceph_pool = NULL, *user = NULL, *keyring = NULL;
    bool shared = false;
    const CliOption opts[] = {
        { "--path", &path, NULL },
        { "--type", &type, NULL },
        { "--shared", NULL, &shared },
        { "--portal", &portal, NULL },
        { "--target", &target, NULL },
        { "--chap-user", &chap_user, NULL },
        { "--chap-secret-file", &chap_file, NULL },
        { "--monitors", &monitors, NULL },
        { "--pool", &ceph_pool, NULL },
        { "--user", &user, NULL },
        { "--keyring", &keyring, NULL },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    json_t *special = NULL; /* an iscsi or rbd pool's body */
    if (type && !strcmp(type, "iscsi")) {
        if (path || shared || monitors || ceph_pool || user || keyring)
            return cli_usage_error("pool create", "an iscsi pool takes no --path, --shared or "
                                   "rbd options");
        special = iscsi_body(name, portal, target, chap_user, chap_file);
        if (!special)
            return CLI_EXIT_USAGE;
    } else if (type && !strcmp(type, "rbd")) {
        if (!monitors || !ceph_pool || !user || !keyring)
            return cli_usage_error("pool create", "an rbd pool needs --monitors, --pool, "
                                   "--user and --keyring");
        if (portal || target || chap_user || chap_file)
            return cli_usage_error("pool create", "--portal, --target and --chap-* are for "
                                   "--type iscsi");
        _cleanup_free_ char *abs_keyring = cli_absolute_path(keyring);
        special = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", name, "type", "rbd",
                            "monitors", monitors, "pool", ceph_pool, "user", user, "keyring",
                            abs_keyring);
        if (path)
            json_object_set_new(special, "path", json_string(path));
    }
    if (special) {
        json_t *body = special;
        json_t *pool = NULL;
        int r = api_call("POST", "/v1/pools", body, &pool);
        json_decref(body);
        if (r < 0)
            return CLI_EXIT_FAIL;
        return api_print_doc(pool, print_pool);
    }
    if (portal || target || chap_user || chap_file)
        return cli_usage_error("pool create", "--portal, --target and --chap-* are for "
                               "--type iscsi");
    if (monitors || ceph_pool || user || keyring)
        return cli_usage_error("pool create", "--monitors, --pool, --user and --keyring are "
                               "for --type rbd");
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
    if (shared)
        json_object_set_new(body, "shared", json_true());
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
    static const char *const headers[] = { "NAME",      "TYPE",    "PATH",   "CAPACITY",
                                           "ALLOCATION", "AVAILABLE", "VOLUMES", "SHARED",
                                           "REACHABLE", "HOST" };
    /* HOST: a local pool's host, shown in a cluster (where pools have one). */
    bool hosts = false;
    size_t i;
    json_t *pool;
    json_array_foreach(json_object_get(doc, "pools"), i, pool)
        hosts = hosts || jstr(pool, "host");
    OutTable *t = out_table_new(ELEMENTSOF(headers) - !hosts, headers);
    json_array_foreach(json_object_get(doc, "pools"), i, pool) {
        _cleanup_free_ char *capacity = bytes_field(pool, "capacity_bytes");
        _cleanup_free_ char *allocation = bytes_field(pool, "allocation_bytes");
        _cleanup_free_ char *available = bytes_field(pool, "available_bytes");
        _cleanup_free_ char *volumes = jint_str(pool, "volumes");
        _cleanup_free_ char *reach = reach_cell(pool);
        const char *cells[] = { jstr(pool, "name"), jstr(pool, "type"), jstr(pool, "path"),
                                capacity,           allocation,         available,
                                volumes,
                                json_is_true(json_object_get(pool, "shared")) ? "yes" : "no",
                                reach,              jstr(pool, "host") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int pool_show(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *host = NULL;
    const CliOption opts[] = { { "--host", &host, NULL }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    _cleanup_free_ char *base = api_path("pools", name, NULL);
    _cleanup_free_ char *esc = host ? api_escape(host) : NULL;
    _cleanup_free_ char *path = host ? vo_asprintf("%s?host=%s", base, esc) : vo_strdup(base);
    json_t *doc = NULL;
    if (api_call("GET", path, NULL, &doc) < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_pool);
}

static int pool_refresh(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL;
    const CliOption opts[] = { { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = api_path("pools", name, "/refresh");
    json_t *doc = NULL;
    if (api_call("POST", path, NULL, &doc) < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_pool);
}

static int pool_delete(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL;
    bool force = false;
    const CliOption opts[] = { { "--force", NULL, &force }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = api_path("pools", name, force ? "?force=true" : NULL);
    return api_delete_path(path, name);
}

static const CliCommand pool_commands[] = {
    { "pool", "create", "NAME",
      "--path DIR [--type dir|backup] [--shared] | --type iscsi --portal IP[:PORT] --target IQN "
      "[--chap-user U --chap-secret-file F] | --type rbd --monitors IP[,IP] --pool NAME "
      "--user ID --keyring FILE",
      "Create a pool: a directory vireod keeps volumes (or backups) in, an iSCSI target or a "
      "Ceph RBD pool.",
      "The directory must exist on vireod's host and not be another pool's. A relative\n"
      "DIR is taken from the current directory.\n"
      "An iscsi pool is a target's LUNs: vireod logs in (QEMU's userspace initiator,\n"
      "no kernel iSCSI) and shows each disk LUN as a volume lunN (see\n"
      "docs/storage-san.md); vireo never creates or deletes LUNs.\n"
      "\nOptions:\n"
      "  --path DIR            the pool's directory (required)\n"
      "  --type dir|backup     dir (default) holds volumes; backup holds VM backups\n"
      "                        (see vireo backup create --target)\n"
      "  --shared              a directory every host of the cluster mounts at DIR (NFS,\n"
      "                        say): vireod writes DIR/.vireo-pool.json and each host\n"
      "                        checks it sees it (vireo pool show NAME: per host)\n"
      "  --portal IP[:PORT]    iscsi: the target's portal (port 3260 by default)\n"
      "  --target IQN          iscsi: the target's name (iqn.YYYY-MM.domain:name)\n"
      "  --chap-user U         iscsi: CHAP user name, with --chap-secret-file\n"
      "  --chap-secret-file F  iscsi: a file holding the CHAP secret (read here; vireod\n"
      "                        keeps it 0600 under its state directory, never shows it)\n"
      "  --type rbd            volumes are RBD images (thin) in a Ceph pool; vireod\n"
      "                        connects (librados) and checks the pool first; in a\n"
      "                        cluster the pool is the cluster's (every host that\n"
      "                        reaches the monitors uses it: migration, HA)\n"
      "  --monitors IP[,IP]    the Ceph monitors (IP[:PORT], IPv6 in [])\n"
      "  --pool NAME           the Ceph pool (made and rbd-initialised by the Ceph admin)\n"
      "  --user ID             the cephx user, without 'client.'\n"
      "  --keyring FILE        a keyring with its key, read by vireod once; the key is\n"
      "                        kept in a 0600 file under vireod's state directory\n"
      "                        (docs/storage-ceph.md)\n"
      "\nExamples:\n  vireo pool create fast --path /srv/nvme/vireo\n"
      "  vireo pool create nfs --path /mnt/vireo --shared\n"
      "  vireo pool create san1 --type iscsi --portal 10.0.0.5 --target iqn.2026-01.com.example:san1\n"
      "  vireo pool create ceph1 --type rbd --monitors 10.0.0.1,10.0.0.2 --pool vms \\\n"
      "      --user vireo --keyring /etc/ceph/ceph.client.vireo.keyring\n",
      pool_create },
    { "pool", "refresh", "NAME", NULL, "List an iSCSI pool's LUNs again.",
      "New LUNs become volumes (lunN), sizes follow the target, and LUNs gone from the\n"
      "target go (unless a VM has them attached). A dir pool is shown as it is.\n",
      pool_refresh },
    { "pool", "list", NULL, NULL, "List the pools with their space and volume counts.",
      "In a cluster: every host's local pools (HOST; their sizes are shown by\n"
      "'pool show NAME --host HOST') and the shared pools once.\n",
      pool_list },
    { "pool", "show", "NAME", "[--host HOST]",
      "Show one pool (a shared one: reachable or why not, per host).",
      "In a cluster, a local pool of another host is shown by that host: --host names\n"
      "it when several hosts have a pool of that name (each has its own 'default').\n",
      pool_show },
    { "pool", "delete", "NAME", "[--force]", "Delete an empty pool (its directory stays).",
      "Refused while the pool holds volumes or backups, and for the default pool.\n"
      "An rbd pool is refused too while it keeps intents of RBD images a crash left\n"
      "that could not be removed yet (vireo pool show NAME lists them, with why):\n"
      "  --force               delete it anyway: those records go, the images (if\n"
      "                        Ceph still holds them) stay in the Ceph pool\n", pool_delete },
};

const CliNoun cli_noun_pool = { "pool", "storage pools", pool_commands,
                                ELEMENTSOF(pool_commands) };
