/* cluster-ha.c: `vireo cluster ha show|set`: the cluster's HA restart
 * limit (GET/PATCH /v1/cluster/ha; docs/ha.md, "The restart limit"). */
#include <stdio.h>

#include "cli.h"
#include "cluster/ha-plan.h"
#include "http.h"
#include "output.h"

static void print_ha_settings(const json_t *doc)
{
    char n[48], window[48];
    snprintf(n, sizeof(n), "at most %lld per VM",
             (long long)json_integer_value(json_object_get(doc, "max_restarts")));
    snprintf(window, sizeof(window), "%lld minutes",
             (long long)json_integer_value(json_object_get(doc, "window_minutes")));
    out_kv(stdout, "restarts:", n);
    out_kv(stdout, "window:", window);
}

int cli_cluster_ha_show(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/cluster/ha", &doc, &exit_status))
        return exit_status;
    print_ha_settings(doc);
    json_decref(doc);
    return CLI_EXIT_OK;
}

int cli_cluster_ha_set(const CliCommand *cmd, int argc, char **argv)
{
    const char *max = NULL, *window = NULL;
    const CliOption opts[] = { { "--max-restarts", &max, NULL }, { "--window", &window, NULL },
                               { 0 } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, NULL, &exit_status))
        return exit_status;
    if (!max && !window) {
        cli_error("give --max-restarts N and/or --window MINUTES");
        return CLI_EXIT_USAGE;
    }
    uint64_t n = 0, minutes = 0;
    if ((max && !cli_parse_uint("--max-restarts", max, VO_HA_MAX_RESTARTS_MIN,
                                VO_HA_MAX_RESTARTS_MAX, &n)) ||
        (window && !cli_parse_uint("--window", window, VO_HA_WINDOW_MINUTES_MIN,
                                   VO_HA_WINDOW_MINUTES_MAX, &minutes)))
        return CLI_EXIT_USAGE;
    json_t *body = json_object();
    if (max)
        json_object_set_new(body, "max_restarts", json_integer((json_int_t)n));
    if (window)
        json_object_set_new(body, "window_minutes", json_integer((json_int_t)minutes));
    json_t *doc = NULL;
    int r = api_call("PATCH", "/v1/cluster/ha", body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_ha_settings);
}
