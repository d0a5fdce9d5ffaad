/* host.c: the `vireo host` commands: `host list` (every host of the
 * cluster: GET /v1/hosts), `host show [HOST]` (one of them, or without HOST
 * what vireod reports about its own machine: GET /v1/host), `host remove
 * HOST` (DELETE /v1/hosts/HOST: a dead or departed host out of the cluster),
 * `host maintenance HOST on|off` and `host evacuate HOST` (its VMs moved
 * away: POST /v1/hosts/HOST/maintenance|evacuate, the task's report). */
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"
#include "wait.h"

static char *load_str(const json_t *host)
{
    json_t *load = json_object_get(host, "load");
    return json_is_number(load) ? vo_asprintf("%.0f%%", json_number_value(load) * 100) : NULL;
}

static char *memory_str(const json_t *host)
{
    json_t *used = json_object_get(host, "memory_used_mib"), *total = json_object_get(host, "memory_mib");
    if (!json_is_integer(used) || !json_is_integer(total) || json_integer_value(total) <= 0)
        return NULL;
    _cleanup_free_ char *u = fmt_mib((uint64_t)json_integer_value(used));
    _cleanup_free_ char *t = fmt_mib((uint64_t)json_integer_value(total));
    return vo_asprintf("%s / %s", u, t);
}

static int host_list(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/hosts", &doc, &exit_status))
        return exit_status;
    static const char *const headers[] = { "NAME", "STATE",  "ADDRESS", "ACCEL", "QEMU", "CPUS",
                                           "MEMORY", "LOAD", "VMS",     "ROLE",  "MAINT" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(doc, "hosts"), i, h) {
        _cleanup_free_ char *cpus = jint_str(h, "cpus"), *vms = jint_str(h, "vms");
        _cleanup_free_ char *memory = memory_str(h), *load = load_str(h);
        const char *cells[] = { jstr(h, "name"), jstr(h, "state"), jstr(h, "address"),
                                jstr(h, "accel"), jstr(h, "qemu_version"), cpus, memory, load, vms,
                                json_is_true(json_object_get(h, "manager")) ? "manager" : "",
                                json_is_true(json_object_get(h, "maintenance")) ? "yes" : "" };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static void print_cluster_host(const json_t *h)
{
    _cleanup_free_ char *cpus = jint_str(h, "cpus"), *vms = jint_str(h, "vms");
    _cleanup_free_ char *running = jint_str(h, "vms_running");
    _cleanup_free_ char *memory = memory_str(h), *load = load_str(h);
    json_t *cm = json_object_get(h, "committed_memory_mib");
    _cleanup_free_ char *committed = json_is_integer(cm) && json_integer_value(cm) >= 0
                                         ? fmt_mib((uint64_t)json_integer_value(cm))
                                         : NULL;
    _cleanup_free_ char *committed_vcpus = jint_str(h, "committed_vcpus");
    _cleanup_free_ char *pools = jstrs_joined(h, "pools");
    _cleanup_free_ char *firmware = jstrs_joined(h, "firmware");
    _cleanup_free_ char *networks = jstrs_joined(h, "networks");
    out_kv(stdout, "name:", jstr(h, "name"));
    out_kv(stdout, "id:", jstr(h, "id"));
    out_kv(stdout, "state:", jstr(h, "state"));
    out_kv(stdout, "maintenance:", json_is_true(json_object_get(h, "maintenance")) ? "yes" : "no");
    out_kv(stdout, "role:", json_is_true(json_object_get(h, "manager")) ? "manager" : "member");
    out_kv(stdout, "address:", jstr(h, "address"));
    out_kv(stdout, "version:", jstr(h, "version"));
    out_kv(stdout, "accel:", jstr(h, "accel"));
    out_kv(stdout, "qemu version:", jstr(h, "qemu_version"));
    out_kv(stdout, "cpu model:", jstr(h, "cpu_model"));
    out_kv(stdout, "cpus:", cpus);
    out_kv(stdout, "memory:", memory);
    out_kv(stdout, "load:", load);
    out_kv(stdout, "vms:", vms);
    out_kv(stdout, "vms running:", running);
    out_kv(stdout, "committed memory:", committed);
    out_kv(stdout, "committed vcpus:", committed_vcpus);
    out_kv(stdout, "pools:", pools);
    out_kv(stdout, "firmware:", firmware); /* what its VMs can boot: bios, uefi, ... */
    out_kv(stdout, "networks:", networks); /* what its VMs' NICs can use (placement) */
}

static int host_show(const CliCommand *cmd, int argc, char **argv)
{
    if (argc > 1 && argv[1][0] != '-')
        return api_show_command(cmd, argc, argv, "hosts", print_cluster_host);
    json_t *host = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/host", &host, &exit_status))
        return exit_status;
    _cleanup_free_ char *cpus = jint_str(host, "cpus");
    json_t *mem = json_object_get(host, "memory_mib");
    _cleanup_free_ char *memory = json_is_integer(mem) && json_integer_value(mem) >= 0
                                      ? fmt_mib((uint64_t)json_integer_value(mem))
                                      : NULL;
    json_t *usable = json_object_get(host, "kvm_usable");
    const char *reason = jstr(host, "kvm_reason");
    _cleanup_free_ char *kvm = NULL;
    if (json_is_boolean(usable))
        kvm = reason && reason[0] ? vo_asprintf("%s (%s)", json_is_true(usable) ? "usable" : "not usable",
                                                reason)
                                  : vo_strdup(json_is_true(usable) ? "usable" : "not usable");
    out_kv(stdout, "name:", jstr(host, "name"));
    out_kv(stdout, "id:", jstr(host, "id"));
    out_kv(stdout, "version:", jstr(host, "version"));
    out_kv(stdout, "hostname:", jstr(host, "hostname"));
    out_kv(stdout, "driver:", jstr(host, "driver"));
    out_kv(stdout, "qemu version:", jstr(host, "qemu_version"));
    out_kv(stdout, "cpus:", cpus);
    out_kv(stdout, "memory:", memory);
    out_kv(stdout, "kvm:", kvm);
    json_decref(host);
    return CLI_EXIT_OK;
}

static int host_remove(const CliCommand *cmd, int argc, char **argv)
{
    return api_delete_command(cmd, argc, argv, "hosts");
}

/* The evacuation's report: one line per VM, where it went or why not. */
static int print_evacuation(const char *host, json_t *doc, bool async)
{
    json_t *task = json_object_get(doc, "task");
    if (async || cli_globals.json || !json_is_object(task))
        return run_task(doc, "the evacuation", async, host, "evacuated");
    json_t *final = NULL;
    int status = task_outcome(task, host, &final);
    json_t *res = json_object_get(final, "result");
    if (json_is_object(res)) {
        size_t i;
        json_t *vm;
        json_array_foreach(json_object_get(res, "vms"), i, vm) {
            json_t *verified = json_object_get(vm, "memory_verified");
            if (!strcmp(jstr(vm, "result") ?: "", "moved"))
                printf("%s: moved to %s%s\n", jstr(vm, "vm"), jstr(vm, "host") ?: "?",
                       json_is_true(verified) ? " (memory verified)" : "");
            else
                printf("%s: could not move: %s\n", jstr(vm, "vm"), jstr(vm, "reason") ?: "?");
        }
        long long moved = json_integer_value(json_object_get(res, "moved"));
        long long stay = json_integer_value(json_object_get(res, "not_moved"));
        printf("%s: %lld VM%s moved, %lld stay%s\n", host, moved, moved == 1 ? "" : "s", stay,
               json_is_true(json_object_get(res, "maintenance")) ? "; in maintenance" : "");
        if (stay && status == CLI_EXIT_OK)
            status = CLI_EXIT_FAIL;
    }
    json_decref(final);
    return status;
}

/* The evacuation's options in its request body: --pool, --verify-memory. */
static void evacuation_body(json_t *body, const char *pool, bool verify)
{
    if (pool)
        json_object_set_new(body, "pool", json_string(pool));
    if (verify)
        json_object_set_new(body, "verify_memory", json_true());
}

/* host maintenance HOST on|off: POST /v1/hosts/HOST/maintenance {"on"};
 * on answers the evacuation task, followed to its report. */
static int host_maintenance(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL }, *pool = NULL;
    bool async = false, verify = false;
    const CliOption opts[] = { { "--async", NULL, &async }, { "--pool", &pool, NULL },
                               { "--verify-memory", NULL, &verify }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    if (strcmp(args[1], "on") && strcmp(args[1], "off")) {
        fprintf(stderr, "vireo: host maintenance: say 'on' or 'off', not '%s'\n", args[1]);
        return CLI_EXIT_USAGE;
    }
    bool on = !strcmp(args[1], "on");
    json_t *body = json_pack("{s:b}", "on", on);
    evacuation_body(body, pool, verify);
    _cleanup_free_ char *path = api_path("hosts", args[0], "/maintenance");
    json_t *doc = NULL;
    int r = api_call("POST", path, body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    int status = CLI_EXIT_OK;
    if (json_is_object(json_object_get(doc, "task")))
        status = print_evacuation(args[0], doc, async);
    else if (cli_globals.json)
        out_json(stdout, doc);
    else {
        printf("%s: maintenance %s\n", args[0], on ? "on" : "off");
        if (jstr(doc, "message"))
            printf("%s: %s\n", args[0], jstr(doc, "message"));
    }
    json_decref(doc);
    return status;
}

/* host evacuate HOST: POST /v1/hosts/HOST/evacuate, its task followed. */
static int host_evacuate(const CliCommand *cmd, int argc, char **argv)
{
    const char *host = NULL, *pool = NULL;
    bool async = false, verify = false;
    const CliOption opts[] = { { "--async", NULL, &async }, { "--pool", &pool, NULL },
                               { "--verify-memory", NULL, &verify }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &host, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = api_path("hosts", host, "/evacuate");
    json_t *doc = NULL, *body = json_object();
    evacuation_body(body, pool, verify);
    int r = api_call("POST", path, body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    int status = print_evacuation(host, doc, async);
    json_decref(doc);
    return status;
}

static const CliCommand host_commands[] = {
    { "host", "list", NULL, NULL, "List the hosts of the cluster (one when standalone).", NULL,
      host_list },
    { "host", "top", "[HOST]", "[--once]", "Show the hosts' load live (like top).",
      "Every 2 s: CPU busy %, memory used and total, disk read/write and network bytes\n"
      "per second of every host (or HOST), from the monitoring history's latest point\n"
      "(docs/monitoring.md). q or Ctrl-C quits.\n"
      "\nOptions:\n"
      "  --once                print one table and exit (with --output json: a document)\n",
      cli_host_top },
    { "host", "show", "[HOST]", NULL,
      "Show a host of the cluster; without HOST, this host: vireod's version, CPUs, memory, KVM.",
      NULL, host_show },
    { "host", "remove", "HOST", NULL,
      "Remove a dead or departed host from the cluster (its etcd member and documents).",
      "Refused while HOST is online (run 'vireo cluster leave' on it) or its documents say\n"
      "it runs VMs.\n",
      host_remove },
    { "host", "maintenance", "HOST on|off", "[--pool POOL] [--verify-memory] [--async]",
      "Put a host in maintenance (its VMs move away) or bring it back.",
      "on: the host takes no new VM (creates and migrations choose other hosts) and\n"
      "every VM on it moves: running ones live-migrate (the manager picks each\n"
      "target, two at a time), with their local disks mirrored along; stopped ones\n"
      "whose disks are all on shared pools move their definition; stopped ones with\n"
      "local disks are moved cold (disks copied, as 'vm move' does). Local disks\n"
      "land in the target's pool POOL (--pool; default: its 'default' pool).\n"
      "--verify-memory: each live migration compares the guest's RAM on both\n"
      "sides (both paused) before its switch, as 'vm migrate --verify-memory';\n"
      "a VM whose RAM differs stays, running here; the report says\n"
      "'(memory verified)' for each one that matched.\n"
      "A VM that cannot move stays, with the reason: no host fits (each host's\n"
      "reason), the target's pool missing, busy. The host stays in\n"
      "maintenance (shown by 'host list') until 'off', across restarts.\n"
      "off: the host takes VMs again (nothing moves back by itself).\n"
      "Exit status 1 when a VM stays (the report says why); --async prints the task.\n"
      "\nExamples:\n  vireo host maintenance h1 on\n"
      "  vireo host maintenance h1 on --verify-memory\n  vireo host maintenance h1 off\n",
      host_maintenance },
    { "host", "evacuate", "HOST", "[--pool POOL] [--verify-memory] [--async]",
      "Move every VM off a host, as maintenance does, without entering maintenance.",
      "The host keeps taking new VMs afterwards; the report says where each VM went\n"
      "or why it stayed (exit status 1 when one stays). Local disks move along\n"
      "(running VMs: mirrored live; stopped ones: copied) to the target's pool POOL\n"
      "(--pool; default: its 'default' pool). --verify-memory: as for maintenance.\n"
      "\nExamples:\n  vireo host evacuate h1\n  vireo host evacuate h1 --pool fast\n",
      host_evacuate },
};

const CliNoun cli_noun_host = { "host", "the machines of the cluster", host_commands,
                                ELEMENTSOF(host_commands) };
