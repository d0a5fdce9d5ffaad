/* image.c: the `vireo image ...` commands (list, import, delete): the images
 * VMs are created from, at /v1/images. */
#include "cli.h"
#include "http.h"
#include "output.h"
#include "wait.h"

static int image_list(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/images", &doc, &exit_status))
        return exit_status;
    /* HOST, in a cluster: the hosts that have the image as their own (a VM
     * created elsewhere gets it copied there first), or its shared pool. */
    bool cluster = false;
    size_t i;
    json_t *image;
    json_array_foreach(json_object_get(doc, "images"), i, image)
        cluster = cluster || json_is_array(json_object_get(image, "hosts"));
    static const char *const headers[] = { "NAME", "FORMAT", "SIZE", "DISK", "HOST" };
    static const char *const cluster_headers[] = { "NAME", "FORMAT", "SIZE", "HOST", "DISK" };
    OutTable *t = out_table_new(ELEMENTSOF(headers) - !cluster,
                                cluster ? cluster_headers : headers);
    json_array_foreach(json_object_get(doc, "images"), i, image) {
        json_t *size = json_object_get(image, "size_bytes");
        _cleanup_free_ char *size_str = json_is_integer(size) && json_integer_value(size) >= 0
                                            ? fmt_bytes((uint64_t)json_integer_value(size))
                                            : NULL;
        _cleanup_free_ char *hosts = NULL;
        size_t k;
        json_t *h;
        json_array_foreach(json_object_get(image, "hosts"), k, h) {
            char *more = vo_asprintf("%s%s%s", hosts ? hosts : "", hosts ? "," : "",
                                     json_string_value(h) ? json_string_value(h) : "?");
            free(hosts);
            hosts = more;
        }
        if (!hosts && jstr(image, "pool"))
            hosts = vo_asprintf("shared (pool %s)", jstr(image, "pool"));
        const char *disk = jstr(image, "disk") ? jstr(image, "disk") : "(copied here on first use)";
        const char *cells[] = { jstr(image, "name"), jstr(image, "format"), size_str,
                                cluster ? hosts : disk, cluster ? disk : NULL };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int image_import(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL }, *kernel = NULL, *initrd = NULL, *cmdline = NULL;
    const char *pool = NULL;
    bool async = false;
    const CliOption opts[] = {
        { "--pool", &pool, NULL },
        { "--kernel", &kernel, NULL },
        { "--initrd", &initrd, NULL },
        { "--cmdline", &cmdline, NULL },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    if ((kernel && !kernel[0]) || (initrd && !initrd[0])) {
        cli_error("%s: must not be empty", kernel && !kernel[0] ? "--kernel" : "--initrd");
        return CLI_EXIT_USAGE;
    }
    if ((initrd || cmdline) && !kernel)
        return cli_usage_error("image import", "--%s goes with --kernel (direct boot)",
                               initrd ? "initrd" : "cmdline");

    _cleanup_free_ char *disk = cli_absolute_path(args[1]);
    json_t *body = json_pack("{s:s, s:s}", "name", args[0], "import_path", disk);
    if (kernel) {
        _cleanup_free_ char *k = cli_absolute_path(kernel);
        json_object_set_new(body, "kernel_path", json_string(k));
    }
    if (initrd) {
        _cleanup_free_ char *i = cli_absolute_path(initrd);
        json_object_set_new(body, "initrd_path", json_string(i));
    }
    if (cmdline)
        json_object_set_new(body, "cmdline", json_string(cmdline));
    if (pool)
        json_object_set_new(body, "pool", json_string(pool));
    int r = run_action("POST", "/v1/images", body, async, args[0], "imported");
    json_decref(body);
    return r;
}

static int image_delete(const CliCommand *cmd, int argc, char **argv)
{
    return api_delete_command(cmd, argc, argv, "images");
}

static const CliCommand image_commands[] = {
    { "image", "list", NULL, NULL, "List the images VMs can be created from.",
      "In a cluster, HOST names the hosts that have an image as their own (a VM\n"
      "created on another host gets it copied there first, checked by SHA-256), or\n"
      "the shared pool it is kept in.\n", image_list },
    { "image", "import", "NAME FILE",
      "[--pool SHARED-POOL] [--kernel K] [--initrd I] [--cmdline C] [--async]",
      "Make an image from a disk file.",
      "vireod reads FILE (and K, I) itself: they must be on vireod's host and readable\n"
      "by it; relative paths are taken from the current directory. The disk is\n"
      "converted to qcow2. Without --kernel, VMs boot the disk with firmware.\n"
      "\nOptions:\n"
      "  --pool SHARED-POOL    keep it in a shared pool: every host of the cluster that\n"
      "                        reaches the pool sees and uses it (default: this host)\n"
      "  --kernel K            a kernel for direct boot\n"
      "  --initrd I            an initrd to go with --kernel\n"
      "  --cmdline C           the command line for --kernel\n"
      "  --async               print the task id and return without waiting\n"
      "\nExample:\n  vireo image import alpine alpine.qcow2 --kernel vmlinuz --cmdline "
      "'console=ttyS0 root=/dev/vda'\n",
      image_import },
    { "image", "delete", "NAME", NULL, "Delete an image.",
      "Refused while VM disks are linked clones of it.\n", image_delete },
};

const CliNoun cli_noun_image = { "image", "images to create VMs from", image_commands,
                                 ELEMENTSOF(image_commands) };
