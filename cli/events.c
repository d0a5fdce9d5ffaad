/* events.c: `vireo events`: vireod's event stream (GET /v1/events), one
 * change per line, filtered by kind and object; without --follow what
 * happened after --since (default: all the change log still holds), with
 * --follow every change from now (or --since) until Ctrl-C. */
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"

static int print_event(const VoSseEvent *ev, void *userdata)
{
    json_t *data = json_loads(ev->data, 0, NULL);
    if (!strcmp(ev->event, "error")) {
        json_t *err = json_object_get(data, "error");
        cli_error("%s (%s)", jstr(err, "message") ? jstr(err, "message") : ev->data,
                  jstr(err, "code") ? jstr(err, "code") : "error");
        json_decref(data);
        *(bool *)userdata = true;
        return 1;
    }
    if (!data)
        return 0;
    if (cli_globals.json) {
        _cleanup_free_ char *line = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", line);
    } else {
        _cleanup_free_ char *line = fmt_event_line(data);
        printf("%s\n", line);
    }
    fflush(stdout);
    json_decref(data);
    return 0;
}

/* The id of the NOUN ("vms", "hosts") named object, or NULL. */
static char *object_id(const char *noun, const char *object)
{
    _cleanup_free_ char *path = api_path(noun, object, NULL);
    HttpReply reply;
    char *id = NULL;
    if (http_request("GET", path, NULL, &reply) >= 0 && reply.status == 200) {
        json_t *doc = json_loadb(reply.body, reply.len, 0, NULL);
        id = jstr(doc, "id") ? vo_strdup(jstr(doc, "id")) : NULL;
        json_decref(doc);
    }
    http_reply_done(&reply);
    return id;
}

/* A VM's or a host's name becomes its id (events name objects by id);
 * anything else is taken as given. */
static char *resolve_object(const char *object, char **kinds)
{
    bool vm_kind = !kinds, host_kind = false;
    for (size_t i = 0; kinds && kinds[i]; i++) {
        vm_kind = vm_kind || !strcmp(kinds[i], "vm");
        host_kind = host_kind || !strcmp(kinds[i], "host");
    }
    char *id = NULL;
    if (vm_kind && !strchr(object, '/'))
        id = object_id("vms", object);
    if (!id && host_kind && !strchr(object, '/'))
        id = object_id("hosts", object);
    return id ? id : vo_strdup(object);
}

static int events_run(const CliCommand *cmd, int argc, char **argv)
{
    const char *object = NULL, *since = NULL;
    bool follow = false;
    _cleanup_strv_ char **kinds = NULL;
    const CliOption opts[] = { { "--object", &object, NULL },
                               { "--since", &since, NULL },
                               { "--follow", NULL, &follow },
                               { NULL, NULL, NULL } };
    const CliListOption lists[] = { { "--kind", &kinds }, { NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_lists(cmd, argc, argv, opts, lists, NULL, 0, &exit_status))
        return exit_status;
    uint64_t since_rev = 0;
    if (since && !cli_parse_uint("--since", since, 0, INT64_MAX, &since_rev))
        return CLI_EXIT_USAGE;

    _cleanup_free_ char *path = vo_strdup("/v1/events?");
    for (size_t i = 0; kinds && kinds[i]; i++) {
        _cleanup_free_ char *k = api_escape(kinds[i]);
        char *more = vo_asprintf("%skind=%s&", path, k);
        free(path);
        path = more;
    }
    if (object) {
        _cleanup_free_ char *id = resolve_object(object, kinds);
        _cleanup_free_ char *o = api_escape(id);
        char *more = vo_asprintf("%sobject=%s&", path, o);
        free(path);
        path = more;
    }
    /* Without --follow: what happened after --since (0: everything the
     * change log holds), and the stream ends once it is caught up. */
    if (since || !follow) {
        char *more = vo_asprintf("%ssince=%llu&", path, (unsigned long long)since_rev);
        free(path);
        path = more;
    }
    if (!follow) {
        char *more = vo_asprintf("%sfollow=false&", path);
        free(path);
        path = more;
    }
    path[strlen(path) - 1] = '\0'; /* the last '&' or '?' */

    bool error_event = false;
    HttpReply reply;
    int r = http_stream_events(path, NULL, 0, print_event, &error_event, &reply);
    if (r >= 0 && reply.status == 410 && !since && reply.oldest_rev > 0) {
        /* No --since: "all the store still keeps" starts where it keeps it. */
        char *at = strstr(path, "since=0");
        _cleanup_free_ char *again = vo_asprintf("%.*ssince=%lld%s", (int)(at - path), path,
                                                 (long long)reply.oldest_rev, at + 7);
        http_reply_done(&reply);
        r = http_stream_events(again, NULL, 0, print_event, &error_event, &reply);
    }
    if (r == -EINTR)
        return CLI_EXIT_OK; /* Ctrl-C is how --follow ends */
    if (r < 0)
        return CLI_EXIT_FAIL;
    if (reply.status < 200 || reply.status > 299) {
        api_print_error(reply.status, reply.body, reply.len);
        http_reply_done(&reply);
        return CLI_EXIT_FAIL;
    }
    http_reply_done(&reply);
    return error_event ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static const CliCommand events_commands[] = {
    { "events", NULL, NULL, "[--kind KIND]... [--object NAME|ID] [--since REV] [--follow]",
      "Print the changes of VMs, volumes, operations... as they happen.",
      "One line per change: REVISION KIND ACTION ID and what changed (a VM's name and\n"
      "state, an operation's kind, state and progress); --output json prints each\n"
      "event's JSON on one line.\n"
      "\n"
      "Options:\n"
      "  --kind KIND           only this kind: vm, volume, pool, network, operation,\n"
      "                        image, backup, snapshot, host (a host's record: its\n"
      "                        state and load); repeatable, or a comma list\n"
      "  --object NAME|ID      only this object (a VM or a host by name or id; a\n"
      "                        volume as POOL/NAME; an operation by its task id)\n"
      "  --since REV           the changes after revision REV (an event's number)\n"
      "  --follow              keep printing new changes until Ctrl-C\n"
      "\n"
      "Without --follow: the changes after --since (default: all the store still keeps,\n"
      "its newest 10000), then exit. With --follow: from now (or after --since) on.\n"
      "\n"
      "Examples:\n"
      "  vireo events --follow --kind vm\n"
      "  vireo events --since 120 --object web\n",
      events_run },
};

const CliNoun cli_noun_events = { "events", "vireod's event stream", events_commands,
                                  ELEMENTSOF(events_commands) };
