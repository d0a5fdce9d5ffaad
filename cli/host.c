/* host.c: the `vireo host show` command: what vireod reports about the host
 * (GET /v1/host). */
#include "cli.h"
#include "http.h"
#include "output.h"

static int host_show(const CliCommand *cmd, int argc, char **argv)
{
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
    out_kv(stdout, "version:", jstr(host, "version"));
    out_kv(stdout, "hostname:", jstr(host, "hostname"));
    out_kv(stdout, "driver:", jstr(host, "driver"));
    out_kv(stdout, "cpus:", cpus);
    out_kv(stdout, "memory:", memory);
    out_kv(stdout, "kvm:", kvm);
    json_decref(host);
    return CLI_EXIT_OK;
}

static const CliCommand host_commands[] = {
    { "host", "show", NULL, NULL, "Show the host: vireod's version, CPUs, memory, KVM.", NULL,
      host_show },
};

const CliNoun cli_noun_host = { "host", "the machine vireod runs on", host_commands,
                                ELEMENTSOF(host_commands) };
