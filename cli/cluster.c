/* cluster.c: the `vireo cluster` commands: init, token, join, show, leave
 * (/v1/cluster...), and `vireo host remove` lives in host.c. init, join and
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
                          "%d s (its fence process holds no lease: see vireod's log and "
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
    static const char *const hh[] = { "NAME", "STATE", "ADDRESS", "VERSION", "ROLE" };
    t = out_table_new(ELEMENTSOF(hh), hh);
    json_array_foreach(json_object_get(doc, "hosts"), i, m) {
        const char *cells[] = { jstr(m, "name"), jstr(m, "state"), jstr(m, "address"),
                                jstr(m, "version"),
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
    if (api_call("POST", "/v1/cluster/leave", NULL, NULL) < 0)
        return CLI_EXIT_FAIL;
    if (wait_mode(0) < 0)
        return CLI_EXIT_FAIL;
    if (!cli_globals.json)
        printf("this host left its cluster and runs standalone\n");
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
      "subnet): the message names each. Waits until vireod is back and this host is online\n"
      "(VMs can be placed on it).\n",
      cluster_join },
    { "cluster", "show", NULL, NULL,
      "Show the cluster: etcd members and their health, quorum, manager, hosts.", NULL,
      cluster_show },
    { "cluster", "leave", NULL, NULL,
      "Take this host out of its cluster (refused while it runs VMs); it runs standalone.",
      "Its documents move back into SQLite; its etcd member (if any) is removed.\n",
      cluster_leave },
};

const CliNoun cli_noun_cluster = { "cluster", "forming and growing a cluster of hosts",
                                   cluster_commands, ELEMENTSOF(cluster_commands) };
