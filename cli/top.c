/* top.c: `vireo vm top` and `vireo host top`: a live table of the VMs' or
 * hosts' load like top(1), from their monitoring history's latest point
 * (GET /v1/vms/ID/metrics, /v1/hosts/ID/metrics: docs/monitoring.md),
 * redrawn every 2 s until q or Ctrl-C; --once prints one table (or with
 * --output json one document) and exits. */
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "http.h"
#include "output.h"

#define REFRESH_MS 2000

/* The latest value of series name in a metrics document, NAN when none. */
static double latest(const json_t *m, const char *name)
{
    json_t *v = json_object_get(json_object_get(json_object_get(m, "series"), name), "values");
    size_t n = json_array_size(v);
    json_t *x = n ? json_array_get(v, n - 1) : NULL;
    return json_is_number(x) ? json_number_value(x) : NAN;
}

/* v as JSON: null when unknown (json_real refuses NaN, which made a whole
 * row's json_pack fail). */
static json_t *num(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

static char *rate_str(double v)
{
    if (isnan(v))
        return vo_strdup("-");
    _cleanup_free_ char *b = fmt_bytes((uint64_t)(v + 0.5));
    return vo_asprintf("%s/s", b);
}

static char *bytes_str(double v)
{
    return isnan(v) ? vo_strdup("-") : fmt_bytes((uint64_t)(v + 0.5));
}

static char *pct_str(double v)
{
    return isnan(v) ? vo_strdup("-") : vo_asprintf("%.1f", v * 100);
}

typedef struct {
    double cpu;
    json_t *row; /* for --output json */
    char *cells[10];
} Row;

static int cmp_rows(const void *a, const void *b)
{
    double x = ((const Row *)a)->cpu, y = ((const Row *)b)->cpu;
    x = isnan(x) ? -1 : x;
    y = isnan(y) ? -1 : y;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The metrics of path, NULL (nothing printed) when there are none. */
static json_t *get_metrics(const char *path)
{
    HttpReply rep = { 0 };
    json_t *doc = NULL;
    if (http_request("GET", path, NULL, &rep) >= 0 && rep.status == 200)
        doc = json_loadb(rep.body, rep.len, 0, NULL);
    http_reply_done(&rep);
    return doc;
}

/* One table of the VMs (host: only its VMs). *ret_json: the rows. */
/* The table and the JSON ({key: [rows]}) of k rows, which it frees. */
static void rows_out(Row *rows, size_t k, const char *const *headers, size_t n_headers,
                     const char *key, OutTable **ret_table, json_t **ret_json)
{
    OutTable *t = out_table_new(n_headers, headers);
    json_t *arr = json_array();
    for (size_t i = 0; i < k; i++) {
        out_table_add(t, (const char *const *)rows[i].cells);
        json_array_append_new(arr, rows[i].row);
        for (size_t c = 0; c < n_headers; c++)
            free(rows[i].cells[c]);
    }
    free(rows);
    *ret_table = t;
    *ret_json = json_pack("{s:o}", key, arr);
}

static int vm_table(const char *host, OutTable **ret_table, json_t **ret_json)
{
    _cleanup_free_ char *escaped = host ? api_escape(host) : NULL;
    _cleanup_free_ char *path = vo_asprintf("/v1/vms?view=summary%s%s", host ? "&host=" : "",
                                            host ? escaped : "");
    json_t *doc = NULL;
    if (api_call("GET", path, NULL, &doc) < 0)
        return CLI_EXIT_FAIL;
    json_t *vms = json_object_get(doc, "vms");
    size_t n = json_array_size(vms), k = 0;
    Row *rows = vo_malloc0(sizeof(*rows) * (n ? n : 1));
    size_t i;
    json_t *vm;
    json_array_foreach(vms, i, vm) {
        const char *state = jstr(vm, "state");
        if (!state || strcmp(state, "running"))
            continue;
        _cleanup_free_ char *mpath = api_path("vms", jstr(vm, "id") ? jstr(vm, "id")
                                                                    : jstr(vm, "name"),
                                              "/metrics?range=1h");
        json_t *m = get_metrics(mpath);
        Row *r = &rows[k++];
        r->cpu = latest(m, "cpu");
        double rss = latest(m, "memory_rss"), conf = latest(m, "memory_configured");
        double rd = latest(m, "disk_read"), wr = latest(m, "disk_write");
        double rx = latest(m, "net_rx"), tx = latest(m, "net_tx");
        /* NaN is no JSON number: unknown values are null. */
        r->row = json_pack("{s:s?, s:s?, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name",
                           jstr(vm, "name"), "host", jstr(vm, "host"), "cpu", num(r->cpu),
                           "memory_rss", num(rss), "memory_configured", num(conf), "disk_read",
                           num(rd), "disk_write", num(wr), "net_rx", num(rx), "net_tx", num(tx));
        r->cells[0] = vo_strdup(jstr(vm, "name") ? jstr(vm, "name") : "?");
        r->cells[1] = vo_strdup(jstr(vm, "host") ? jstr(vm, "host") : "");
        r->cells[2] = pct_str(r->cpu);
        r->cells[3] = bytes_str(rss);
        r->cells[4] = bytes_str(conf);
        r->cells[5] = rate_str(rd);
        r->cells[6] = rate_str(wr);
        r->cells[7] = rate_str(rx);
        r->cells[8] = rate_str(tx);
        json_decref(m);
    }
    qsort(rows, k, sizeof(*rows), cmp_rows);
    static const char *const headers[] = { "NAME", "HOST", "CPU%", "MEM", "CONFIGURED",
                                           "DISK-R", "DISK-W", "NET-RX", "NET-TX" };
    rows_out(rows, k, headers, ELEMENTSOF(headers), "vms", ret_table, ret_json);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int host_table(const char *only, OutTable **ret_table, json_t **ret_json)
{
    json_t *doc = NULL;
    if (api_call("GET", "/v1/hosts", NULL, &doc) < 0)
        return CLI_EXIT_FAIL;
    json_t *hosts = json_object_get(doc, "hosts");
    size_t n = json_array_size(hosts), k = 0;
    Row *rows = vo_malloc0(sizeof(*rows) * (n ? n : 1));
    size_t i;
    json_t *h;
    json_array_foreach(hosts, i, h) {
        const char *name = jstr(h, "name");
        if (only && (!name || strcmp(only, name)) &&
            (!jstr(h, "id") || strcmp(only, jstr(h, "id"))))
            continue;
        _cleanup_free_ char *mpath = api_path("hosts", jstr(h, "id") ? jstr(h, "id") : name,
                                              "/metrics?range=1h");
        json_t *m = get_metrics(mpath);
        Row *r = &rows[k++];
        r->cpu = latest(m, "cpu");
        double used = latest(m, "memory_used"), total = latest(m, "memory_total");
        double rd = latest(m, "disk_read"), wr = latest(m, "disk_write");
        double rx = latest(m, "net_rx"), tx = latest(m, "net_tx");
        r->row = json_pack("{s:s?, s:s?, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", name,
                           "state", jstr(h, "state"), "cpu", num(r->cpu), "memory_used",
                           num(used), "memory_total", num(total), "disk_read", num(rd),
                           "disk_write", num(wr), "net_rx", num(rx), "net_tx", num(tx));
        r->cells[0] = vo_strdup(name ? name : "?");
        r->cells[1] = vo_strdup(jstr(h, "state") ? jstr(h, "state") : "");
        r->cells[2] = pct_str(r->cpu);
        r->cells[3] = bytes_str(used);
        r->cells[4] = bytes_str(total);
        r->cells[5] = rate_str(rd);
        r->cells[6] = rate_str(wr);
        r->cells[7] = rate_str(rx);
        r->cells[8] = rate_str(tx);
        json_decref(m);
    }
    static const char *const headers[] = { "NAME", "STATE", "CPU%", "MEM-USED", "MEM-TOTAL",
                                           "DISK-R", "DISK-W", "NET-RX", "NET-TX" };
    rows_out(rows, k, headers, ELEMENTSOF(headers), "hosts", ret_table, ret_json);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    interrupted = 1;
}

/* Waits up to ms for a key: true when it was q (or Ctrl-C came). */
static bool wait_quit(int ms)
{
    struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
    int64_t end = vo_now_ms() + ms;
    while (!interrupted) {
        int64_t left = end - vo_now_ms();
        if (left <= 0)
            return false;
        int r = poll(&p, 1, (int)left);
        if (r > 0) {
            char c;
            ssize_t got = read(STDIN_FILENO, &c, 1);
            if (got <= 0)
                p.fd = -1; /* stdin closed: refresh on the timer alone */
            else if (c == 'q' || c == 'Q' || c == 3)
                return true;
        }
    }
    return true;
}

static int run_top(int (*table)(const char *, OutTable **, json_t **), const char *arg,
                   bool once, const char *title)
{
    if (once) {
        OutTable *t = NULL;
        json_t *j = NULL;
        int r = table(arg, &t, &j);
        if (r != CLI_EXIT_OK)
            return r;
        if (cli_globals.json)
            out_json(stdout, j);
        else
            out_table_print(t, stdout);
        out_table_free(t);
        json_decref(j);
        return CLI_EXIT_OK;
    }
    struct termios saved;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        struct termios raw = saved;
        raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    struct sigaction sa = { .sa_handler = on_sigint };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int status = CLI_EXIT_OK;
    for (;;) {
        OutTable *t = NULL;
        json_t *j = NULL;
        status = table(arg, &t, &j);
        if (status != CLI_EXIT_OK)
            break;
        char when[32];
        time_t now = time(NULL);
        strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
        printf("\033[H\033[2J%s at %s (every %d s; q or Ctrl-C quits)\n\n", title, when,
               REFRESH_MS / 1000);
        out_table_print(t, stdout);
        fflush(stdout);
        out_table_free(t);
        json_decref(j);
        if (wait_quit(REFRESH_MS))
            break;
    }
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    return status;
}

int cli_vm_top(const CliCommand *cmd, int argc, char **argv)
{
    const char *host = NULL;
    bool once = false;
    const CliOption opts[] = { { "--host", &host, NULL }, { "--once", NULL, &once },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, NULL, &exit_status))
        return exit_status;
    return run_top(vm_table, host, once, "vireo vm top");
}

int cli_host_top(const CliCommand *cmd, int argc, char **argv)
{
    const char *host = NULL;
    bool once = false;
    const CliOption opts[] = { { "--once", NULL, &once }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &host, &exit_status))
        return exit_status;
    return run_top(host_table, host, once, "vireo host top");
}
