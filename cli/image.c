/* image.c: the `vireo image ...` commands (list): the images VMs are created
 * from, as GET /v1/images reports them. */
#include "cli.h"
#include "http.h"
#include "output.h"

static int image_list(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/images", &doc, &exit_status))
        return exit_status;
    static const char *const headers[] = { "NAME", "FORMAT", "SIZE", "DISK" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *image;
    json_array_foreach(json_object_get(doc, "images"), i, image) {
        json_t *size = json_object_get(image, "size_bytes");
        _cleanup_free_ char *size_str = json_is_integer(size) && json_integer_value(size) >= 0
                                            ? fmt_bytes((uint64_t)json_integer_value(size))
                                            : NULL;
        const char *cells[] = { jstr(image, "name"), jstr(image, "format"), size_str,
                                jstr(image, "disk") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static const CliCommand image_commands[] = {
    { "image", "list", NULL, NULL, "List the images VMs can be created from.", NULL, image_list },
};

const CliNoun cli_noun_image = { "image", "images to create VMs from", image_commands,
                                 ELEMENTSOF(image_commands) };
