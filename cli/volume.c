/* volume.c: the `vireo volume ...` commands: create, import (by path or by
 * upload), list, show, resize, clone, flatten, download and delete the volumes of the
 * storage pools, each a request to /v1/pools/POOL/volumes or /v1/volumes. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "http.h"
#include "output.h"
#include "wait.h"

static const char *const format_choices[] = { "qcow2", "raw", NULL };

static char *bytes_field(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0
               ? fmt_bytes((uint64_t)json_integer_value(v))
               : NULL;
}

/* What a volume is a linked clone of: "default/base", "image:default", or
 * the nearest backing file; NULL for a volume of its own. */
static char *backing_str(const json_t *vol)
{
    if (jstr(vol, "backing_volume"))
        return vo_strdup(jstr(vol, "backing_volume"));
    if (jstr(vol, "image"))
        return vo_asprintf("image:%s", jstr(vol, "image"));
    json_t *first = json_array_get(json_object_get(vol, "backing"), 0);
    return jstr(first, "path") ? vo_strdup(jstr(first, "path")) : NULL;
}

static int volume_create(const CliCommand *cmd, int argc, char **argv)
{
    const char *ref = NULL, *size = NULL, *format = NULL, *project = NULL;
    bool async = false;
    const CliOption opts[] = {
        { "--size", &size, NULL },
        { "--format", &format, NULL },
        { "--project", &project, NULL },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &ref, &exit_status))
        return exit_status;
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (!cli_parse_volume_ref("POOL/NAME", ref, &pool, &name))
        return CLI_EXIT_USAGE;
    if (!size)
        return cli_usage_error("volume create", "'volume create' needs --size SIZE");
    uint64_t bytes;
    if (!cli_parse_bytes("--size", size, &bytes) ||
        (format && !cli_parse_choice("--format", format, format_choices)))
        return CLI_EXIT_USAGE;

    json_t *body = json_pack("{s:s, s:I}", "name", name, "size_bytes", (json_int_t)bytes);
    if (format)
        json_object_set_new(body, "format", json_string(format));
    if (project)
        json_object_set_new(body, "project", json_string(project));
    _cleanup_free_ char *path = api_path("pools", pool, "/volumes");
    int r = run_action("POST", path, body, async, ref, "created");
    json_decref(body);
    return r;
}

/* Before an upload: vireod reads the whole body before it refuses a volume
 * that exists or a pool that does not, so ask first. Returns an exit status
 * to stop with, or -1 to go on. */
static int upload_precheck(const char *pool, const char *name)
{
    _cleanup_free_ char *pool_path = api_path("pools", pool, NULL);
    if (api_call("GET", pool_path, NULL, NULL) < 0)
        return CLI_EXIT_FAIL;
    _cleanup_free_ char *path = api_volume_path(pool, name, NULL);
    HttpReply reply;
    if (http_request("GET", path, NULL, &reply) < 0)
        return CLI_EXIT_FAIL;
    int r = -1;
    if (reply.status >= 200 && reply.status <= 299) {
        cli_error("volume '%s/%s' already exists", pool, name);
        r = CLI_EXIT_FAIL;
    } else if (reply.status != 404) {
        api_print_error(reply.status, reply.body, reply.len);
        r = CLI_EXIT_FAIL;
    }
    http_reply_done(&reply);
    return r;
}

static int volume_upload(const char *ref, const char *pool, const char *name, const char *file,
                         bool iso, const char *project, bool async)
{
    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        cli_error("cannot read %s: %s", file, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if (S_ISDIR(st.st_mode)) {
        cli_error("cannot upload %s: it is a directory", file);
        return CLI_EXIT_FAIL;
    }
    int r = upload_precheck(pool, name);
    if (r >= 0)
        return r;

    _cleanup_free_ char *escaped = project ? api_escape(project) : NULL;
    _cleanup_free_ char *query = vo_asprintf("/data%s%s%s%s", iso || project ? "?" : "",
                                             iso ? "content=iso" : "",
                                             iso && project ? "&" : "",
                                             project ? "project=" : "");
    _cleanup_free_ char *tail = vo_asprintf("%s%s", query, project ? escaped : "");
    _cleanup_free_ char *path = api_volume_path(pool, name, tail);
    _cleanup_free_ char *label = vo_asprintf("upload %s", ref);
    HttpReply reply;
    r = http_upload(path, fd, S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1, file, label, &reply);
    if (r == -EINTR) {
        cli_error("upload of %s stopped; nothing was imported", file);
        return CLI_EXIT_INTERRUPTED;
    }
    if (r < 0)
        return CLI_EXIT_FAIL;
    if (reply.status < 200 || reply.status > 299) {
        api_print_error(reply.status, reply.body, reply.len);
        http_reply_done(&reply);
        return CLI_EXIT_FAIL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(reply.body ? reply.body : "", reply.len, 0, &jerr);
    http_reply_done(&reply);
    _cleanup_free_ char *what = vo_asprintf("PUT %s", path);
    if (!doc) {
        cli_error("vireod sent malformed JSON for %s: %s", what, jerr.text);
        return CLI_EXIT_FAIL;
    }
    r = run_task(doc, what, async, ref, "imported");
    json_decref(doc);
    return r;
}

static int volume_import(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL }, *format = NULL, *content = NULL, *project = NULL;
    bool upload = false, async = false;
    const CliOption opts[] = {
        { "--format", &format, NULL },
        { "--content", &content, NULL },
        { "--project", &project, NULL },
        { "--upload", NULL, &upload },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    const char *ref = args[0], *file = args[1];
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (!cli_parse_volume_ref("POOL/NAME", ref, &pool, &name))
        return CLI_EXIT_USAGE;
    static const char *const content_choices[] = { "iso", NULL };
    if ((format && !cli_parse_choice("--format", format, format_choices)) ||
        (content && !cli_parse_choice("--content", content, content_choices)))
        return CLI_EXIT_USAGE;
    if (upload && format && strcmp(format, "qcow2") != 0)
        return cli_usage_error("volume import", "--format %s cannot go with --upload: vireod "
                                                "stores uploaded volumes as qcow2", format);
    if (upload)
        return volume_upload(ref, pool, name, file, content != NULL, project, async);

    _cleanup_free_ char *abs = cli_absolute_path(file);
    json_t *body = json_pack("{s:s, s:s}", "name", name, "import_path", abs);
    if (format)
        json_object_set_new(body, "format", json_string(format));
    if (content)
        json_object_set_new(body, "content", json_string(content));
    if (project)
        json_object_set_new(body, "project", json_string(project));
    _cleanup_free_ char *path = api_path("pools", pool, "/volumes");
    int r = run_action("POST", path, body, async, ref, "imported");
    json_decref(body);
    return r;
}

static int volume_list(const CliCommand *cmd, int argc, char **argv)
{
    const char *pool = NULL, *host = NULL, *project = NULL;
    const CliOption opts[] = { { "--host", &host, NULL }, { "--project", &project, NULL },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &pool, &exit_status))
        return exit_status;
    _cleanup_free_ char *esc = pool ? api_escape(pool) : NULL;
    _cleanup_free_ char *host_esc = host ? api_escape(host) : NULL;
    _cleanup_free_ char *project_esc = project ? api_escape(project) : NULL;
    _cleanup_free_ char *base = vo_asprintf("/v1/volumes%s%s%s%s", pool ? "?pool=" : "",
                                            pool ? esc : "", host ? (pool ? "&host=" : "?host=") : "",
                                            host ? host_esc : "");
    _cleanup_free_ char *path = vo_asprintf("%s%s%s", base,
                                            project ? (pool || host ? "&project=" : "?project=")
                                                    : "",
                                            project ? project_esc : "");
    json_t *doc = NULL;
    if (api_call("GET", path, NULL, &doc) < 0)
        return CLI_EXIT_FAIL;
    json_t *volumes = json_object_get(doc, "volumes");
    /* vireod lists no volumes for a pool that does not exist: say so. */
    if (pool && json_array_size(volumes) == 0) {
        _cleanup_free_ char *pool_base = api_path("pools", pool, NULL);
        _cleanup_free_ char *pool_path = host ? vo_asprintf("%s?host=%s", pool_base, host_esc)
                                              : vo_strdup(pool_base);
        if (api_call("GET", pool_path, NULL, NULL) < 0) {
            json_decref(doc);
            return CLI_EXIT_FAIL;
        }
    }
    if (cli_globals.json) {
        out_json(stdout, doc);
        json_decref(doc);
        return CLI_EXIT_OK;
    }
    static const char *const headers[] = { "VOLUME",  "FORMAT",   "SIZE",   "ALLOCATED",
                                           "BACKING", "ATTACHED", "PROJECT" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *vol;
    json_array_foreach(volumes, i, vol) {
        _cleanup_free_ char *size = bytes_field(vol, "virtual_size_bytes");
        _cleanup_free_ char *alloc = bytes_field(vol, "allocation_bytes");
        _cleanup_free_ char *backing = backing_str(vol);
        const char *cells[] = { jstr(vol, "key"), jstr(vol, "format"), size, alloc, backing,
                                jstr(vol, "attached_to"), jstr(vol, "project") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_array_foreach(volumes, i, vol) /* under the table: a start of its VMs is refused */
        if (json_is_object(json_object_get(vol, "restore_incomplete")))
            printf("%s: restore incomplete (task %s): its VMs do not start\n", jstr(vol, "key"),
                   jstr(json_object_get(vol, "restore_incomplete"), "task")
                       ? jstr(json_object_get(vol, "restore_incomplete"), "task") : "?");
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int volume_show(const CliCommand *cmd, int argc, char **argv)
{
    const char *ref = NULL;
    const CliOption opts[] = { { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &ref, &exit_status))
        return exit_status;
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (!cli_parse_volume_ref("POOL/NAME", ref, &pool, &name))
        return CLI_EXIT_USAGE;
    _cleanup_free_ char *path = api_volume_path(pool, name, NULL);
    json_t *vol = NULL;
    if (api_call("GET", path, NULL, &vol) < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json) {
        out_json(stdout, vol);
        json_decref(vol);
        return CLI_EXIT_OK;
    }

    _cleanup_free_ char *size = bytes_field(vol, "virtual_size_bytes");
    _cleanup_free_ char *alloc = bytes_field(vol, "allocation_bytes");
    _cleanup_free_ char *clone_of = NULL;
    if (jstr(vol, "backing_volume"))
        clone_of = vo_asprintf("volume %s", jstr(vol, "backing_volume"));
    else if (jstr(vol, "image"))
        clone_of = vo_asprintf("image %s", jstr(vol, "image"));
    json_t *shareable = json_object_get(vol, "shareable");

    out_kv(stdout, "volume:", jstr(vol, "key"));
    out_kv(stdout, "state:", jstr(vol, "state"));
    out_kv(stdout, "format:", jstr(vol, "format"));
    out_kv(stdout, "size:", size);
    out_kv(stdout, "allocated:", alloc);
    out_kv(stdout, "path:", jstr(vol, "path"));
    _cleanup_free_ char *lun = json_is_integer(json_object_get(vol, "lun")) ? jint_str(vol, "lun")
                                                                            : NULL;
    if (lun)
        out_kv(stdout, "lun:", lun);
    if (jstr(vol, "rbd_image"))
        out_kv(stdout, "rbd image:", jstr(vol, "rbd_image"));
    if (jstr(vol, "rbd_parent")) /* an RBD clone: its image's base snapshot */
        out_kv(stdout, "rbd parent:", jstr(vol, "rbd_parent"));
    out_kv(stdout, "clone of:", clone_of);
    json_t *chain = json_object_get(vol, "backing");
    if (json_array_size(chain) == 0)
        out_kv(stdout, "backing:", "none");
    size_t i;
    json_t *layer;
    json_array_foreach(chain, i, layer) {
        _cleanup_free_ char *line = vo_asprintf("%s (%s)", jstr(layer, "path") ? jstr(layer, "path") : "?",
                                               jstr(layer, "format") ? jstr(layer, "format") : "?");
        out_kv(stdout, i == 0 ? "backing:" : "", line);
    }
    out_kv(stdout, "attached to:", jstr(vol, "attached_to"));
    out_kv(stdout, "shareable:", json_is_boolean(shareable) ? (json_is_true(shareable) ? "yes" : "no")
                                                            : NULL);
    out_kv(stdout, "created:", jstr(vol, "created_at"));
    json_t *mark = json_object_get(vol, "restore_incomplete");
    if (json_is_object(mark)) { /* storage-restore-mark.c */
        _cleanup_free_ char *line = vo_asprintf("task %s on host %s since %s",
                                                jstr(mark, "task") ? jstr(mark, "task") : "?",
                                                jstr(mark, "host_name") ? jstr(mark, "host_name") : "?",
                                                jstr(mark, "since") ? jstr(mark, "since") : "?");
        out_kv(stdout, "restore incomplete:", line);
    }
    json_decref(vol);
    return CLI_EXIT_OK;
}

static int volume_resize(const CliCommand *cmd, int argc, char **argv)
{
    const char *ref = NULL, *size = NULL;
    bool allow_shrink = false, async = false;
    const CliOption opts[] = {
        { "--size", &size, NULL },
        { "--allow-shrink", NULL, &allow_shrink },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &ref, &exit_status))
        return exit_status;
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (!cli_parse_volume_ref("POOL/NAME", ref, &pool, &name))
        return CLI_EXIT_USAGE;
    if (!size)
        return cli_usage_error("volume resize", "'volume resize' needs --size SIZE");
    uint64_t bytes;
    if (!cli_parse_bytes("--size", size, &bytes))
        return CLI_EXIT_USAGE;

    json_t *body = json_pack("{s:I}", "size_bytes", (json_int_t)bytes);
    if (allow_shrink)
        json_object_set_new(body, "allow_shrink", json_true());
    _cleanup_free_ char *path = api_volume_path(pool, name, "/resize");
    _cleanup_free_ char *human = fmt_bytes(bytes);
    _cleanup_free_ char *done = vo_asprintf("resized to %s", human);
    int r = run_action("POST", path, body, async, ref, done);
    json_decref(body);
    return r;
}

/* A task on volume POOL/NAME with no options but --async: METHOD of its
 * path + suffix (NULL: none); done_word once it succeeded. */
static int volume_action(const CliCommand *cmd, int argc, char **argv, const char *method,
                         const char *suffix, const char *done_word)
{
    const char *ref = NULL;
    bool async = false;
    const CliOption opts[] = { { "--async", NULL, &async }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &ref, &exit_status))
        return exit_status;
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (!cli_parse_volume_ref("POOL/NAME", ref, &pool, &name))
        return CLI_EXIT_USAGE;
    _cleanup_free_ char *path = api_volume_path(pool, name, suffix);
    return run_action(method, path, NULL, async, ref, done_word);
}

static int volume_flatten(const CliCommand *cmd, int argc, char **argv)
{
    return volume_action(cmd, argc, argv, "POST", "/flatten",
                         "flattened (it no longer depends on its parent)");
}

static int volume_clone(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL }, *project = NULL;
    bool linked = false, async = false;
    const CliOption opts[] = {
        { "--linked", NULL, &linked },
        { "--project", &project, NULL },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    _cleanup_free_ char *pool = NULL, *name = NULL, *dst_pool = NULL, *dst_name = NULL;
    if (!cli_parse_volume_ref("POOL/SRC", args[0], &pool, &name) ||
        !cli_parse_volume_ref("POOL/DST", args[1], &dst_pool, &dst_name))
        return CLI_EXIT_USAGE;

    json_t *body = json_pack("{s:s}", "target", args[1]);
    if (linked)
        json_object_set_new(body, "linked", json_true());
    if (project)
        json_object_set_new(body, "project", json_string(project));
    _cleanup_free_ char *path = api_volume_path(pool, name, "/clone");
    _cleanup_free_ char *done = vo_asprintf("%s of %s", linked ? "linked clone" : "copy", args[0]);
    int r = run_action("POST", path, body, async, args[1], done);
    json_decref(body);
    return r;
}

/* Move part to file; without force, never over an existing file. */
static int rename_into_place(const char *part, const char *file, bool force)
{
    if (force)
        return rename(part, file) < 0 ? -errno : 0;
    if (renameat2(AT_FDCWD, part, AT_FDCWD, file, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    /* A file system without RENAME_NOREPLACE: link() refuses to overwrite too. */
    if (link(part, file) < 0)
        return -errno;
    (void)unlink(part);
    return 0;
}

static int volume_download(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL };
    bool force = false;
    const CliOption opts[] = { { "--force", NULL, &force }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    const char *ref = args[0], *file = args[1];
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (!cli_parse_volume_ref("POOL/NAME", ref, &pool, &name))
        return CLI_EXIT_USAGE;

    struct stat st;
    if (stat(file, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            cli_error("%s is a directory; give the file to write", file);
            return CLI_EXIT_FAIL;
        }
        if (!force) {
            cli_error("%s exists; use --force to overwrite it", file);
            return CLI_EXIT_FAIL;
        }
    }

    /* A linked clone's file names its backing file on vireod's host. */
    _cleanup_free_ char *vol_path = api_volume_path(pool, name, NULL);
    json_t *vol = NULL;
    if (api_call("GET", vol_path, NULL, &vol) < 0)
        return CLI_EXIT_FAIL;
    json_t *first = json_array_get(json_object_get(vol, "backing"), 0);
    if (jstr(first, "path"))
        fprintf(stderr, "vireo: warning: %s is a linked clone: the file needs its backing file %s "
                        "(clone it without --linked for a standalone copy)\n", ref,
                jstr(first, "path"));
    json_decref(vol);

    _cleanup_free_ char *part = vo_asprintf("%s.part", file);
    int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        cli_error("cannot create %s: %s", part, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    _cleanup_free_ char *path = api_volume_path(pool, name, "/data");
    _cleanup_free_ char *label = vo_asprintf("download %s", ref);
    HttpReply reply;
    uint64_t size = 0;
    int r = http_download(path, fd, part, label, &reply, &size);
    int exit_code = CLI_EXIT_OK;
    if (r == -EINTR) {
        cli_error("download of %s stopped", ref);
        exit_code = CLI_EXIT_INTERRUPTED;
    } else if (r < 0) {
        exit_code = CLI_EXIT_FAIL;
    } else if (reply.status < 200 || reply.status > 299) {
        api_print_error(reply.status, reply.body, reply.len);
        exit_code = CLI_EXIT_FAIL;
    } else if (fsync(fd) < 0) {
        cli_error("cannot write %s: %s", part, strerror(errno));
        exit_code = CLI_EXIT_FAIL;
    }
    http_reply_done(&reply);
    if (close(fd) < 0 && exit_code == CLI_EXIT_OK) {
        cli_error("cannot write %s: %s", part, strerror(errno));
        exit_code = CLI_EXIT_FAIL;
    }
    if (exit_code == CLI_EXIT_OK && (r = rename_into_place(part, file, force)) < 0) {
        if (r == -EEXIST)
            cli_error("%s appeared meanwhile; use --force to overwrite it", file);
        else
            cli_error("cannot rename %s to %s: %s", part, file, strerror(-r));
        exit_code = CLI_EXIT_FAIL;
    }
    if (exit_code != CLI_EXIT_OK) {
        (void)unlink(part);
        return exit_code;
    }

    if (cli_globals.json) {
        json_t *doc = json_pack("{s:s, s:s, s:I}", "volume", ref, "file", file, "size_bytes",
                                (json_int_t)size);
        out_json(stdout, doc);
        json_decref(doc);
    } else {
        _cleanup_free_ char *human = fmt_bytes(size);
        printf("%s: downloaded to %s (%s)\n", ref, file, human);
    }
    return CLI_EXIT_OK;
}

static int volume_delete(const CliCommand *cmd, int argc, char **argv)
{
    return volume_action(cmd, argc, argv, "DELETE", NULL, "deleted");
}

static int volume_set(const CliCommand *cmd, int argc, char **argv)
{
    const char *ref = NULL, *project = NULL;
    bool shareable = false, not_shareable = false, clear_restore = false;
    const CliOption opts[] = { { "--shareable", NULL, &shareable },
                               { "--no-shareable", NULL, &not_shareable },
                               { "--project", &project, NULL },
                               { "--clear-restore-incomplete", NULL, &clear_restore },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &ref, &exit_status))
        return exit_status;
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (!cli_parse_volume_ref("POOL/NAME", ref, &pool, &name))
        return CLI_EXIT_USAGE;
    if (shareable && not_shareable)
        return cli_usage_error("volume set", "give --shareable or --no-shareable, not both");
    if (!shareable && !not_shareable && !project && !clear_restore)
        return cli_usage_error("volume set", "'volume set' needs --shareable, --no-shareable, "
                                             "--project P (none: no project) or "
                                             "--clear-restore-incomplete");
    _cleanup_free_ char *path = api_volume_path(pool, name, NULL);
    json_t *body = json_object();
    if (shareable || not_shareable)
        json_object_set_new(body, "shareable", json_boolean(shareable));
    if (project)
        json_object_set_new(body, "project", strcmp(project, "none") ? json_string(project)
                                                                     : json_null());
    if (clear_restore)
        json_object_set_new(body, "restore_incomplete", json_null());
    json_t *doc = NULL;
    int r = api_call("PATCH", path, body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json)
        out_json(stdout, doc);
    else if (project)
        printf("%s: project %s\n", ref, jstr(doc, "project") ? jstr(doc, "project") : "none");
    else if (clear_restore && !shareable && !not_shareable)
        printf("%s: restore mark cleared\n", ref);
    else
        printf("%s: %s\n", ref, shareable ? "shareable" : "not shareable");
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int volume_format(const CliCommand *cmd, int argc, char **argv)
{
    const char *ref = NULL;
    bool qcow2 = false;
    const CliOption opts[] = { { "--qcow2", NULL, &qcow2 }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &ref, &exit_status))
        return exit_status;
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (!cli_parse_volume_ref("POOL/NAME", ref, &pool, &name))
        return CLI_EXIT_USAGE;
    if (!qcow2)
        return cli_usage_error("volume format", "'volume format' needs --qcow2");
    _cleanup_free_ char *path = api_volume_path(pool, name, "/format");
    json_t *body = json_pack("{s:s}", "format", "qcow2");
    json_t *doc = NULL;
    int r = api_call("POST", path, body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json)
        out_json(stdout, doc);
    else { /* the layer is smaller than the LUN: its metadata needs room too */
        _cleanup_free_ char *vsize = bytes_field(doc, "virtual_size_bytes");
        _cleanup_free_ char *lun = bytes_field(doc, "lun_size_bytes");
        printf("%s: qcow2, virtual size %s (the LUN: %s)\n", ref, vsize ? vsize : "?",
               lun ? lun : "?");
    }
    json_decref(doc);
    return CLI_EXIT_OK;
}

#define ASYNC_HELP "  --async               print the task id and return without waiting\n"
#define SIZE_HELP                                                                          \
    "Sizes take K, M, G or T (powers of 1024); a bare number is bytes.\n"

static const CliCommand volume_commands[] = {
    { "volume", "format", "POOL/NAME", "--qcow2",
      "Put a qcow2 layer on an iSCSI LUN (its data is lost).",
      "An empty qcow2 image is written at the LUN's start (with this host's initiator,\n"
      "and the pool's CHAP secret if it has one), as large as fits once fully allocated\n"
      "(its metadata and the VM's dirty bitmaps need room on the LUN too: the disk is\n"
      "a little smaller than the LUN); VMs then open qcow2\n"
      "on the LUN, so the disk has snapshots and thin allocation (docs/storage-san.md).\n"
      "Refused while a VM has the LUN attached.\n",
      volume_format },
    { "volume", "create", "POOL/NAME", "--size SIZE [--format qcow2|raw] [--project P] [--async]",
      "Create an empty volume.",
      SIZE_HELP
      "\nOptions:\n"
      "  --size SIZE           the volume's size (required)\n"
      "  --format qcow2|raw    the file format (default: qcow2)\n"
      "  --project P           make it in project P (its size counts against P's disk\n"
      "                        quota; docs/projects.md)\n" ASYNC_HELP
      "\nExample:\n  vireo volume create default/data1 --size 20G --project team-a\n",
      volume_create },
    { "volume", "import", "POOL/NAME FILE", "[--format qcow2|raw] [--content iso] [--upload] [--project P] [--async]",
      "Create a volume from an image file.",
      "The file's format is detected and it is converted to --format. By default vireod\n"
      "reads FILE itself (it must be on vireod's host and readable by it); with --upload\n"
      "vireo sends the file's contents instead, which works from anywhere the socket\n"
      "reaches (the volume is then qcow2).\n"
      "An ISO 9660 image (CD/DVD, e.g. an OS installer) is kept as it is (raw, content\n"
      "iso, for vireo vm cdrom insert and vm create --cdrom); it is recognised by its\n"
      "signature, and --content iso refuses a file that is not one.\n"
      "\nOptions:\n"
      "  --format qcow2|raw    the volume's format (default: qcow2)\n"
      "  --content iso         FILE must be an ISO image\n"
      "  --upload              stream FILE to vireod instead of naming it\n"
      "  --project P           make it in project P (counted against its disk quota)\n"
      ASYNC_HELP
      "\nExample:\n  vireo volume import default/ubuntu ubuntu-24.04.vmdk\n",
      volume_import },
    { "volume", "list", "[POOL]", "[--host HOST] [--project P]",
      "List the volumes (of one pool, or all).",
      "BACKING is what a linked clone is based on: a volume (POOL/NAME) or an image\n"
      "(image:NAME). In a cluster, --host lists another host's (its local pools'),\n"
      "as does a POOL that only one other host has. PROJECT: the project it belongs\n"
      "to (--project P lists only P's).\n",
      volume_list },
    { "volume", "show", "POOL/NAME", NULL, "Show one volume with its backing chain.", NULL,
      volume_show },
    { "volume", "set", "POOL/NAME", "[--shareable | --no-shareable] [--project P|none] "
      "[--clear-restore-incomplete]",
      "Let several VMs attach a volume at once, or not; move it to a project.",
      "A shareable volume is opened without QEMU's image locking, so several running VMs\n"
      "can write it (their guests must coordinate, e.g. a cluster file system). Only a\n"
      "detached volume can change.\n"
      "--project P moves a detached volume to project P (checked against P's disk\n"
      "quota), --project none out of any: an action of the cluster's admins.\n"
      "--clear-restore-incomplete accepts a volume a restore did not finish writing (an\n"
      "iSCSI LUN partly the backup's) as it is: its VMs start again.\n",
      volume_set },
    { "volume", "resize", "POOL/NAME", "--size SIZE [--allow-shrink] [--async]",
      "Grow (or shrink) a volume.",
      "A volume attached to a running VM grows online. Shrinking needs --allow-shrink\n"
      "and a detached volume, and loses whatever lies beyond the new size. A VM's disk\n"
      "that grows counts against the disk quota of the VM's project.\n"
      "\n" SIZE_HELP
      "\nOptions:\n"
      "  --size SIZE           the new size (required)\n"
      "  --allow-shrink        allow a size smaller than the current one\n" ASYNC_HELP,
      volume_resize },
    { "volume", "clone", "POOL/SRC POOL/DST", "[--linked] [--project P] [--async]",
      "Copy a volume (a full copy, or a linked clone).",
      "Options:\n"
      "  --linked              a linked clone: a qcow2 file holding only the changes,\n"
      "                        based on SRC (which then cannot be deleted before it)\n"
      "  --project P           make DST in project P (counted against its disk quota)\n"
      ASYNC_HELP
      "\nExample:\n  vireo volume clone default/golden fast/web2 --linked\n",
      volume_clone },
    { "volume", "flatten", "POOL/NAME", "[--async]",
      "Make a linked clone in an rbd pool whole.",
      "Copies the parent's data the clone still reads into its RBD image, so it no\n"
      "longer depends on it: the volume it was cloned from (vm clone --linked) can be\n"
      "deleted, and its snapshot for this clone is removed; a clone of an image's base\n"
      "stops counting as a user of the base (the base stays while the image does). A\n"
      "VM may run on it meanwhile: Ceph flattens it inside that VM's QEMU. A dir\n"
      "pool's linked clone is made whole by a full copy (vireo volume clone).\n"
      "\nOptions:\n" ASYNC_HELP
      "\nExample:\n  vireo volume flatten ceph1/web2-disk0\n",
      volume_flatten },
    { "volume", "download", "POOL/NAME FILE", "[--force]",
      "Save a volume's file (as stored) to FILE.",
      "The data goes to FILE.part first and is renamed to FILE when complete.\n"
      "\nOptions:\n"
      "  --force               overwrite FILE if it exists\n",
      volume_download },
    { "volume", "delete", "POOL/NAME", "[--async]", "Delete a volume and its file.",
      "Refused while the volume is attached to a VM or backs another volume.\n"
      "\nOptions:\n" ASYNC_HELP,
      volume_delete },
};

const CliNoun cli_noun_volume = { "volume", "volumes (virtual disks) in pools", volume_commands,
                                  ELEMENTSOF(volume_commands) };
