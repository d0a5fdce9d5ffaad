/* cluster.c: the `vireo cluster` commands: init, token, join, show, leave
 * (/v1/cluster...), the DRS ones (set --drs, drs, recommendations [apply];
 * docs/drs.md), the table entries of `cluster ha show|set` (cluster-ha.c),
 * and `vireo host remove` lives in host.c. init, join and
 * leave make vireod re-execute itself: the CLI waits (bounded) until it
 * answers again in its new mode. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "output.h"
#include "wait.h"

#define REEXEC_WAIT_MS 90000

/* Whether this host is online in the cluster document doc: its record is
 * out (hosts[] with "local" says a state other than offline). */
static bool local_host_online(json_t *doc)
{
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(doc, "hosts"), i, h) {
        const char *state = json_string_value(json_object_get(h, "state"));
        if (json_is_true(json_object_get(h, "local")))
            return state && strcmp(state, "offline") != 0;
    }
    return false;
}

/* GET /v1/cluster over the socket, quietly (vireod may be restarting):
 * 2 in a cluster with this host online, 1 in a cluster (this host not
 * online yet), 0 standalone, -1 no answer. */
static int probe_cluster_mode(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cli_globals.socket);
    static const char req[] = "GET /v1/cluster HTTP/1.0\r\nHost: localhost\r\n\r\n";
    char buf[65536];
    size_t len = 0;
    int result = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
        for (;;) {
            struct pollfd p = { .fd = fd, .events = POLLIN };
            if (poll(&p, 1, 5000) <= 0)
                break;
            ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
            if (n <= 0)
                break;
            len += (size_t)n;
            if (len == sizeof(buf) - 1)
                break;
        }
        buf[len] = 0;
        const char *body = strstr(buf, "\r\n\r\n");
        if (!strncmp(buf, "HTTP/1.", 7) && strstr(buf, " 200 ") == buf + 8 && body) {
            json_t *doc = json_loads(body + 4, 0, NULL);
            json_t *c = json_object_get(doc, "cluster");
            result = json_is_object(c) ? (local_host_online(doc) ? 2 : 1) : c ? 0 : -1;
            json_decref(doc);
        }
    }
    close(fd);
    return result;
}

/* Waits until vireod answers in the mode wanted: 2 in a cluster with this
 * host online (its record out, so VMs can be placed on it), 0 standalone. */
static int wait_mode(int want)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int mode = -1;
    for (;;) {
        if ((mode = probe_cluster_mode()) == want)
            return 0;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >
            REEXEC_WAIT_MS) {
            if (want && mode == 1)
                cli_error("vireod is back in cluster mode but this host is not online after "
                          "%d s (its fence process holds no confirmed lease: see vireod's log and "
                          "`vireo host list`)", REEXEC_WAIT_MS / 1000);
            else
                cli_error("vireod did not come back %s within %d s (see its log)",
                          want ? "in cluster mode" : "standalone", REEXEC_WAIT_MS / 1000);
            return -ETIMEDOUT;
        }
        poll(NULL, 0, 200);
    }
}

static int cluster_init(const CliCommand *cmd, int argc, char **argv)
{
    const char *address = NULL;
    const CliOption opts[] = { { "--address", &address, NULL }, { 0 } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, NULL, &exit_status))
        return exit_status;
    json_t *body = json_pack("{s:s?}", "address", address);
    json_t *doc = NULL;
    int r = api_call("POST", "/v1/cluster/init", body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    r = wait_mode(2);
    if (cli_globals.json)
        out_json(stdout, doc);
    else {
        printf("cluster %s made; this host is its first member.\n", jstr(doc, "cluster"));
        printf("To add a host (the token expires in an hour), run on it:\n\n  %s\n\n",
               jstr(doc, "join_command"));
        printf("Make a new token with 'vireo cluster token'.\n");
    }
    json_decref(doc);
    return r < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* "30m", "2h", "1d", "90s" or plain seconds. */
static bool parse_duration(const char *s, int64_t *ret)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    int64_t unit = !*end ? 1 : !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60
                 : !strcmp(end, "h") ? 3600 : !strcmp(end, "d") ? 86400 : 0;
    if (end == s || v <= 0 || !unit || v > 365LL * 86400) {
        cli_error("--ttl: '%s' is not a duration (say 30m, 2h or 1d)", s);
        return false;
    }
    *ret = v * unit;
    return true;
}

static int cluster_token(const CliCommand *cmd, int argc, char **argv)
{
    const char *ttl = NULL;
    const CliOption opts[] = { { "--ttl", &ttl, NULL }, { 0 } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, NULL, &exit_status))
        return exit_status;
    int64_t ttl_s = 3600;
    if (ttl && !parse_duration(ttl, &ttl_s))
        return CLI_EXIT_USAGE;
    json_t *body = json_pack("{s:I}", "ttl_s", (json_int_t)ttl_s);
    json_t *doc = NULL;
    int r = api_call("POST", "/v1/cluster/tokens", body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json)
        out_json(stdout, doc);
    else
        printf("%s\n", jstr(doc, "join_command"));
    json_decref(doc);
    return CLI_EXIT_OK;
}

/* The token in the file at path ("-": standard input): its first line,
 * without surrounding blanks; NULL (with a message) when there is none. */
static char *read_token(const char *path)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
    if (!f) {
        fprintf(stderr, "vireo: cannot read the token from %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char buf[4096] = "";
    bool got = fgets(buf, sizeof(buf), f) != NULL;
    if (f != stdin)
        fclose(f);
    char *s = buf;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strcspn(s, " \t\r\n");
    s[n] = '\0';
    if (!got || n == 0) {
        fprintf(stderr, "vireo: no token in %s\n", strcmp(path, "-") ? path : "standard input");
        return NULL;
    }
    char *token = strdup(s);
    explicit_bzero(buf, sizeof(buf));
    return token;
}

static int cluster_join(const CliCommand *cmd, int argc, char **argv)
{
    const char *token = NULL, *token_file = NULL, *address = NULL, *member = NULL;
    const CliOption opts[] = { { "--token", &token, NULL }, { "--token-file", &token_file, NULL },
                               { "--address", &address, NULL }, { 0 } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &member, &exit_status))
        return exit_status;
    if (token && token_file)
        return cli_usage_error("cluster join", "give --token or --token-file, not both");
    if (!token && !token_file)
        return cli_usage_error("cluster join", "--token TOKEN (or --token-file FILE, or "
                                               "--token - to read it from standard input) is "
                                               "required (from 'vireo cluster init' or 'vireo "
                                               "cluster token' on a member)");
    char *read = NULL;
    if (token_file || !strcmp(token, "-")) {
        if (!(read = read_token(token_file ? token_file : "-")))
            return CLI_EXIT_FAIL;
        token = read;
    }
    json_t *body = json_pack("{s:s, s:s, s:s?}", "member", member, "token", token, "address",
                             address);
    if (read) {
        explicit_bzero(read, strlen(read));
        free(read);
    }
    json_t *doc = NULL;
    int r = api_call("POST", "/v1/cluster/join", body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    r = wait_mode(2);
    if (cli_globals.json)
        out_json(stdout, doc);
    else
        printf("this host joined cluster %s (%s)\n", jstr(doc, "cluster"),
               json_is_true(json_object_get(doc, "voter")) ? "with a voting etcd member"
                                                           : "as an etcd client");
    json_decref(doc);
    return r < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int cluster_show(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/cluster", &doc, &exit_status))
        return exit_status;
    json_t *c = json_object_get(doc, "cluster");
    if (!json_is_object(c)) {
        printf("standalone (not in a cluster); make one with 'vireo cluster init'\n");
        json_decref(doc);
        return CLI_EXIT_OK;
    }
    out_kv(stdout, "cluster:", jstr(c, "id"));
    out_kv(stdout, "quorum:", json_is_true(json_object_get(doc, "quorum")) ? "yes" : "NO");
    out_kv(stdout, "manager:", jstr(doc, "manager"));
    out_kv(stdout, "etcd version:", jstr(doc, "etcd_version"));
    json_t *age = json_object_get(doc, "etcd_health_age_ms");
    if (json_is_integer(age)) { /* GET /v1/cluster asks it once in a while */
        size_t healthy = 0, i;
        json_t *m, *members = json_object_get(doc, "etcd_members");
        json_array_foreach(members, i, m)
            healthy += json_is_true(json_object_get(m, "healthy"));
        char health[96];
        snprintf(health, sizeof(health), "%zu of %zu members healthy (checked %lld s ago)",
                 healthy, json_array_size(members), (long long)(json_integer_value(age) / 1000));
        out_kv(stdout, "etcd health:", health);
    }
    if (jstr(doc, "etcd_error"))
        out_kv(stdout, "etcd error:", jstr(doc, "etcd_error"));
    printf("\netcd members:\n");
    static const char *const mh[] = { "NAME", "ID", "ROLE", "HEALTH", "CLIENT URL" };
    OutTable *t = out_table_new(ELEMENTSOF(mh), mh);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(doc, "etcd_members"), i, m) {
        const char *cells[] = { jstr(m, "name"), jstr(m, "id"),
                                json_is_true(json_object_get(m, "voting")) ? "voter" : "learner",
                                json_is_true(json_object_get(m, "healthy")) ? "healthy"
                                                                            : "unhealthy",
                                jstr(m, "client_url") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    printf("\nhosts:\n");
    static const char *const hh[] = { "NAME", "STATE", "ADDRESS", "VERSION", "QEMU", "ROLE" };
    t = out_table_new(ELEMENTSOF(hh), hh);
    json_array_foreach(json_object_get(doc, "hosts"), i, m) {
        const char *cells[] = { jstr(m, "name"), jstr(m, "state"), jstr(m, "address"),
                                jstr(m, "version"), jstr(m, "qemu_version"),
                                json_is_true(json_object_get(m, "manager")) ? "manager" : "" };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int cluster_leave(const CliCommand *cmd, int argc, char **argv)
{
    const CliOption opts[] = { { 0 } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, NULL, &exit_status))
        return exit_status;
    json_t *doc = NULL;
    if (api_call("POST", "/v1/cluster/leave", NULL, &doc) < 0)
        return CLI_EXIT_FAIL;
    int r = wait_mode(0);
    if (r >= 0 && cli_globals.json) /* its note too, as the text says it */
        out_json(stdout, doc);
    else if (r >= 0) {
        const char *note = json_string_value(json_object_get(doc, "note"));
        printf("this host left its cluster and runs standalone%s%s\n", note ? "; " : "",
               note ? note : "");
    }
    json_decref(doc);
    return r < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- DRS ---- */

static const char *const drs_modes[] = { "off", "manual", "auto", NULL };

static void print_drs_settings(const json_t *doc)
{
    out_kv(stdout, "drs:", jstr(doc, "mode"));
    char level[64];
    snprintf(level, sizeof(level), "%lld (threshold %.2f)",
             (long long)json_integer_value(json_object_get(doc, "level")),
             json_number_value(json_object_get(doc, "threshold")));
    out_kv(stdout, "level:", level);
}

static int cluster_set(const CliCommand *cmd, int argc, char **argv)
{
    const char *mode = NULL, *level = NULL;
    const CliOption opts[] = { { "--drs", &mode, NULL }, { "--drs-level", &level, NULL },
                               { 0 } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, NULL, &exit_status))
        return exit_status;
    if (!mode && !level) {
        cli_error("give --drs off|manual|auto and/or --drs-level N");
        return CLI_EXIT_USAGE;
    }
    if (mode && !cli_parse_choice("--drs", mode, drs_modes))
        return CLI_EXIT_USAGE;
    uint64_t n = 0;
    if (level && !cli_parse_uint("--drs-level", level, 1, 5, &n))
        return CLI_EXIT_USAGE;
    json_t *body = json_object();
    if (mode)
        json_object_set_new(body, "mode", json_string(mode));
    if (level)
        json_object_set_new(body, "level", json_integer((json_int_t)n));
    json_t *doc = NULL;
    int r = api_call("PUT", "/v1/cluster/drs", body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_drs_settings);
}

static void print_recommendations(const json_t *recs)
{
    static const char *const h[] = { "ID", "VM", "FROM", "TO", "CPU", "MEMORY", "IMBALANCE",
                                     "COST" };
    OutTable *t = out_table_new(ELEMENTSOF(h), h);
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) {
        char cpu[32], mem[96], imb[64], cost[32];
        snprintf(cpu, sizeof(cpu), "%.2f", json_number_value(json_object_get(r, "cpu")));
        /* The memory DRS weighed and where it was measured. */
        const char *source = jstr(r, "mem_source");
        snprintf(mem, sizeof(mem), "%lld MiB%s%s%s",
                 (long long)json_integer_value(json_object_get(r, "mem_used_mib")),
                 source ? " (" : "", source ? source : "", source ? ")" : "");
        snprintf(imb, sizeof(imb), "%.3f -> %.3f",
                 json_number_value(json_object_get(r, "imbalance_before")),
                 json_number_value(json_object_get(r, "imbalance_after")));
        snprintf(cost, sizeof(cost), "%.1f s", json_number_value(json_object_get(r, "cost_s")));
        const char *cells[] = { jstr(r, "id"), jstr(r, "vm"), jstr(r, "from"), jstr(r, "to"),
                                cpu, mem, imb, cost };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
}

static void print_drs(const json_t *doc)
{
    print_drs_settings(doc);
    const json_t *st = json_object_get(doc, "status");
    if (!json_is_object(st)) {
        out_kv(stdout, "status:", "no round yet");
        return;
    }
    char line[128];
    out_kv(stdout, "manager:", jstr(st, "manager"));
    snprintf(line, sizeof(line), "%.3f (threshold %.3f; above it %lld of %lld rounds)",
             json_number_value(json_object_get(st, "imbalance")),
             json_number_value(json_object_get(st, "threshold")),
             (long long)json_integer_value(json_object_get(st, "rounds_above")),
             (long long)json_integer_value(json_object_get(st, "rounds_needed")));
    out_kv(stdout, "imbalance:", line);
    if (jstr(st, "skipped"))
        out_kv(stdout, "skipped:", jstr(st, "skipped"));
    const json_t *mv = json_object_get(doc, "moving");
    if (json_is_object(mv)) {
        const char *vm = jstr(mv, "vm"), *from = jstr(mv, "from"), *to = jstr(mv, "to");
        const char *task = jstr(mv, "task");
        snprintf(line, sizeof(line), "%s from %s to %s (%s%s)", vm ? vm : "?", from ? from : "?",
                 to ? to : "?", task ? "task " : "starting", task ? task : "");
        out_kv(stdout, "moving:", line);
    }
    const json_t *last = json_object_get(st, "last_decision");
    if (json_is_object(last))
        out_kv(stdout, "last decision:", jstr(last, "message"));
    json_t *recs = json_object_get(st, "recommendations");
    if (json_array_size(recs)) {
        printf("\nrecommendations:\n");
        print_recommendations(recs);
    }
    printf("\nhosts:\n");
    static const char *const h[] = { "NAME", "CPU LOAD", "MEMORY LOAD", "MEMORY USED" };
    OutTable *t = out_table_new(ELEMENTSOF(h), h);
    size_t i;
    json_t *host;
    json_array_foreach(json_object_get(st, "hosts"), i, host) {
        char cpu[32], mem[32], used[64] = "-";
        snprintf(cpu, sizeof(cpu), "%.2f", json_number_value(json_object_get(host, "cpu_load")));
        snprintf(mem, sizeof(mem), "%.2f", json_number_value(json_object_get(host, "mem_load")));
        if (json_is_integer(json_object_get(host, "mem_used_mib")))
            snprintf(used, sizeof(used), "%lld / %lld MiB",
                     (long long)json_integer_value(json_object_get(host, "mem_used_mib")),
                     (long long)json_integer_value(json_object_get(host, "memory_mib")));
        const char *cells[] = { jstr(host, "name"), cpu, mem, used };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
}

static int cluster_drs(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/cluster/drs", &doc, &exit_status))
        return exit_status;
    print_drs(doc);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int cluster_recommendations(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL, NULL };
    bool async = false;
    const CliOption opts[] = { { "--async", NULL, &async }, { 0 } };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    if (args[0] && strcmp(args[0], "apply")) {
        cli_error("'%s': the only action is apply ID (vireo cluster recommendations apply ID)",
                  args[0]);
        return CLI_EXIT_USAGE;
    }
    if (args[0] && !args[1]) {
        cli_error("apply: which recommendation? (its ID: vireo cluster recommendations)");
        return CLI_EXIT_USAGE;
    }
    if (args[0]) {
        _cleanup_free_ char *id = api_escape(args[1]);
        _cleanup_free_ char *path = vo_asprintf("/v1/cluster/recommendations/%s/apply", id);
        _cleanup_free_ char *subject = vo_asprintf("recommendation %s", args[1]);
        return run_action("POST", path, NULL, async, subject, "applied (the VM moved)");
    }
    json_t *doc = NULL;
    if (!api_read_path("/v1/cluster/recommendations", &doc, &exit_status))
        return exit_status;
    json_t *recs = json_object_get(doc, "recommendations");
    if (!json_array_size(recs))
        printf("no recommendations (DRS %s; see: vireo cluster drs)\n", jstr(doc, "mode"));
    else
        print_recommendations(recs);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static const CliCommand cluster_commands[] = {
    { "cluster", "init", NULL, "[--address IP]",
      "Make this standalone host a one-host cluster and print the join command for others.",
      "  --address IP   the address other hosts reach this one at (default: the address of\n"
      "                 the default route's interface)\n"
      "The host's documents move from SQLite into a local etcd member; vireod restarts\n"
      "itself (VMs keep running) and this command waits until it is back and the host\n"
      "is online.\n",
      cluster_init },
    { "cluster", "token", NULL, "[--ttl DURATION]",
      "Make a new join token and print the join command with it.",
      "  --ttl DURATION  how long the token is valid: 90s, 30m, 2h, 1d (default 1h)\n",
      cluster_token },
    { "cluster", "join", "ADDRESS[:PORT]", "--token TOKEN|--token-file FILE [--address IP]",
      "Join this standalone host to the cluster of the member at ADDRESS.",
      "  --token TOKEN  the token of 'vireo cluster init' or 'vireo cluster token'\n"
      "                 ('-': read it from standard input, keeping it out of argv)\n"
      "  --token-file FILE  read the token from the first line of FILE\n"
      "A token admits one host: a second join with it is refused.\n"
      "  --address IP   this host's address in the cluster (default: of the default route)\n"
      "Refused when this host's VMs or networks collide with the cluster's (by name or\n"
      "subnet): the message names each. Its projects merge with the cluster's (a project\n"
      "the cluster has keeps its quotas, and the join is refused, naming the project and\n"
      "quota, when this host's VMs, volumes and networks in it would exceed them).\n"
      "Waits until vireod is back and this host is online\n"
      "(VMs can be placed on it).\n",
      cluster_join },
    { "cluster", "show", NULL, NULL,
      "Show the cluster: etcd members and their health, quorum, manager, hosts.", NULL,
      cluster_show },
    { "cluster", "leave", NULL, NULL,
      "Take this host out of its cluster (refused while it runs VMs); it runs standalone.",
      "Its documents move back into SQLite; its etcd member (if any) is removed.\n",
      cluster_leave },
    { "cluster", "set", NULL, "[--drs off|manual|auto] [--drs-level N]",
      "Set the cluster's automatic balancing (DRS): its mode and level.",
      "  --drs off|manual|auto  off (default): nothing; manual: the manager recommends\n"
      "                         live migrations (vireo cluster recommendations); auto: it\n"
      "                         makes them, one at a time\n"
      "  --drs-level N          1 (conservative: only large imbalances) .. 5 (aggressive);\n"
      "                         default 3\n"
      "See docs/drs.md.\n\nExamples:\n  vireo cluster set --drs manual\n"
      "  vireo cluster set --drs auto --drs-level 2\n",
      cluster_set },
    { "cluster", "drs", NULL, NULL,
      "Show DRS: the settings, the imbalance, the manager's last decision, its "
      "recommendations.",
      NULL, cluster_drs },
    { "cluster", "recommendations", "[apply] [ID]", "[--async]",
      "List DRS's recommended live migrations, or apply one by its ID.",
      "  apply ID   start that live migration (waits for it unless --async)\n",
      cluster_recommendations },
    { "cluster", "ha show", NULL, NULL,
      "Show the HA restart limit: at most N HA restarts of one VM within M minutes.", NULL,
      cli_cluster_ha_show },
    { "cluster", "ha set", NULL, "[--max-restarts N] [--window MINUTES]",
      "Set the HA restart limit of the whole cluster.",
      "  --max-restarts N   HA restarts of one VM allowed within the window (1..100;\n"
      "                     default 3); past it the VM is held back (left where it was,\n"
      "                     or crashed) with the reason\n"
      "  --window MINUTES   the window (1..10080, a week; default 10)\n"
      "Either or both; the other is kept. Takes effect at the next recovery round,\n"
      "with no restart. See docs/ha.md.\n\nExamples:\n"
      "  vireo cluster ha set --max-restarts 1\n"
      "  vireo cluster ha set --max-restarts 5 --window 60\n",
      cli_cluster_ha_set },
};

const CliNoun cli_noun_cluster = { "cluster", "forming and growing a cluster of hosts",
                                   cluster_commands, ELEMENTSOF(cluster_commands) };
