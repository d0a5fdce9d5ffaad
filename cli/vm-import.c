/* vm-import.c: `vireo vm import-ova` and `vireo vm import-libvirt`: a VM
 * from an OVA or a libvirt domain XML on vireod's host (POST
 * /v1/vm-imports); prints what is made and every warning of what could not
 * be mapped, then waits for the task (which prints the warnings the import
 * came upon later: a MAC another host took meanwhile, say). */
#include <jansson.h>
#include <stdio.h>

#include "cli.h"
#include "http.h"
#include "wait.h"
#include "util/util.h"

static void print_plan(const json_t *plan)
{
    if (cli_globals.json || !plan)
        return;
    fprintf(stderr, "importing VM '%s': %lld vCPU(s), %lld MiB, firmware %s, %zu disk(s), "
            "%zu NIC(s)\n", json_string_value(json_object_get(plan, "name")),
            (long long)json_integer_value(json_object_get(plan, "vcpus")),
            (long long)json_integer_value(json_object_get(plan, "memory_mib")),
            json_string_value(json_object_get(plan, "firmware")),
            json_array_size(json_object_get(plan, "disks")),
            json_array_size(json_object_get(plan, "nics")));
    const char *signer = json_string_value(json_object_get(plan, "signed_by"));
    if (signer)
        fprintf(stderr, "signed by: %s (manifest and certificate checked)\n", signer);
    const json_t *cdrom = json_object_get(plan, "cdrom");
    const char *iso = json_string_value(json_object_get(cdrom, "source"));
    if (iso)
        fprintf(stderr, "CD-ROM: %s, copied into an iso volume of pool '%s'\n", iso,
                json_string_value(json_object_get(cdrom, "pool")));
    else if (cdrom)
        fprintf(stderr, "CD-ROM: an empty drive\n");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(plan, "warnings"), i, w)
        fprintf(stderr, "warning: %s\n", json_string_value(w));
    task_warnings_shown(json_object_get(plan, "warnings")); /* the task's result repeats them */
}

static int vm_import(const CliCommand *cmd, int argc, char **argv, const char *source)
{
    const char *args[1] = { NULL }, *name = NULL, *pool = NULL, *network = NULL;
    const char *kernel_image = NULL, *ca = NULL;
    bool async = false;
    const CliOption opts[] = {
        { "--name", &name, NULL },
        { "--pool", &pool, NULL },
        { "--network", &network, NULL },
        { "--kernel-image", &kernel_image, NULL },
        { "--ca", &ca, NULL },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 1, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = cli_absolute_path(args[0]);
    json_t *body = json_pack("{s:s, s:s}", "source", source, "path", path);
    _cleanup_free_ char *ca_path = ca ? cli_absolute_path(ca) : NULL;
    const char *keys[] = { "name", "pool", "network", "kernel_image", "ca" };
    const char *values[] = { name, pool, network, kernel_image, ca_path };
    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        if (values[i])
            json_object_set_new(body, keys[i], json_string(values[i]));
    json_t *doc = NULL;
    int r = api_call("POST", "/v1/vm-imports", body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    const json_t *plan = json_object_get(doc, "import");
    print_plan(plan);
    _cleanup_free_ char *subject = vo_strdup(json_string_value(json_object_get(plan, "name")));
    r = run_task(doc, "POST /v1/vm-imports", async, subject, "imported (stopped)");
    json_decref(doc);
    return r;
}

int cli_vm_import_ova(const CliCommand *cmd, int argc, char **argv)
{
    return vm_import(cmd, argc, argv, "ova");
}

int cli_vm_import_libvirt(const CliCommand *cmd, int argc, char **argv)
{
    return vm_import(cmd, argc, argv, "libvirt");
}
