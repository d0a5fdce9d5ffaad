/* qemu-img.c: runs qemu-img for vireo's block work (info, create, convert with
 * progress, resize) and parses what it prints. Never leaves a half-made output
 * file behind and never writes over a file that was already there. */
#include "storage/qemu-img.h"

#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "storage/iscsi-url.h"
#include "util/cancel.h"
#include "util/spawn.h"
#include "util/util.h"

#define QEMU_IMG "qemu-img"
#define INFO_TIMEOUT_MS (2 * 60 * 1000)
#define CREATE_TIMEOUT_MS (10 * 60 * 1000)
#define RESIZE_TIMEOUT_MS (10 * 60 * 1000)
#define CONVERT_TIMEOUT_MS (6LL * 60 * 60 * 1000)
#define STDERR_TAIL 8192

void vo_img_info_clear(VoImgInfo *info)
{
    if (!info)
        return;
    for (size_t i = 0; i < info->n_layers; i++) {
        free(info->layers[i].path);
        free(info->layers[i].format);
    }
    free(info->layers);
    *info = (VoImgInfo){ 0 };
}

/* ---- parsing ---------------------------------------------------------------- */

static int size_field(json_t *o, const char *key, bool required, size_t i, uint64_t *ret,
                      char **ret_error)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            return vo_error_set(ret_error, -EINVAL, "qemu-img info: layer %zu has no \"%s\"", i, key);
        *ret = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return vo_error_set(ret_error, -EINVAL, "qemu-img info: layer %zu: \"%s\" is not a size", i, key);
    *ret = (uint64_t)json_integer_value(v);
    return 0;
}

static int layer_parse(json_t *o, size_t i, VoImgLayer *l, char **ret_error)
{
    if (!json_is_object(o))
        return vo_error_set(ret_error, -EINVAL, "qemu-img info: layer %zu is not an object", i);
    const char *filename = json_string_value(json_object_get(o, "filename"));
    const char *format = json_string_value(json_object_get(o, "format"));
    if (!filename || !filename[0])
        return vo_error_set(ret_error, -EINVAL, "qemu-img info: layer %zu has no \"filename\"", i);
    if (!format || !format[0])
        return vo_error_set(ret_error, -EINVAL, "qemu-img info: layer %zu has no \"format\"", i);
    uint64_t virtual_size = 0, actual_size = 0;
    int r = size_field(o, "virtual-size", true, i, &virtual_size, ret_error);
    if (r < 0)
        return r;
    /* Some formats (and protocols) do not report what they allocate. */
    r = size_field(o, "actual-size", false, i, &actual_size, ret_error);
    if (r < 0)
        return r;
    *l = (VoImgLayer){ .path = vo_strdup(filename), .format = vo_strdup(format),
                       .virtual_size = virtual_size, .actual_size = actual_size };
    return 0;
}

int vo_img_info_parse(const char *json_text, VoImgInfo *ret, char **ret_error)
{
    *ret = (VoImgInfo){ 0 };
    if (!json_text)
        return vo_error_set(ret_error, -EINVAL, "qemu-img info: no output");
    json_error_t jerr;
    json_t *doc = json_loads(json_text, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return vo_error_set(ret_error, -EINVAL, "qemu-img info: unreadable JSON: %s (line %d)", jerr.text,
                    jerr.line);
    size_t n = json_is_array(doc) ? json_array_size(doc) : 1;
    if (!json_is_array(doc) && !json_is_object(doc)) {
        json_decref(doc);
        return vo_error_set(ret_error, -EINVAL, "qemu-img info: expected an array or an object");
    }
    if (n == 0) {
        json_decref(doc);
        return vo_error_set(ret_error, -EINVAL, "qemu-img info: no layers");
    }
    VoImgInfo info = { .layers = vo_malloc0(n * sizeof(VoImgLayer)) };
    int r = 0;
    for (size_t i = 0; i < n && r >= 0; i++) {
        json_t *o = json_is_array(doc) ? json_array_get(doc, i) : doc;
        r = layer_parse(o, i, &info.layers[i], ret_error);
        if (r >= 0)
            info.n_layers++;
    }
    json_decref(doc);
    if (r < 0) {
        vo_img_info_clear(&info);
        return r;
    }
    *ret = info;
    return 0;
}

int vo_img_parse_progress(const char *text)
{
    if (!text)
        return -1;
    int found = -1;
    /* The last well-formed "(N[.NN]/100%)" wins: one read may hold several. */
    for (const char *p = strchr(text, '('); p; p = strchr(p + 1, '(')) {
        const char *q = p + 1;
        int whole = 0, digits = 0;
        while (*q >= '0' && *q <= '9' && digits < 4) {
            whole = whole * 10 + (*q - '0');
            q++;
            digits++;
        }
        if (digits == 0 || digits > 3 || whole > 100)
            continue;
        if (*q == '.') {
            q++;
            if (!(*q >= '0' && *q <= '9'))
                continue;
            while (*q >= '0' && *q <= '9')
                q++;
        }
        if (strncmp(q, "/100%)", 6) != 0)
            continue;
        found = whole;
    }
    return found;
}

/* ---- running qemu-img ------------------------------------------------------- */

/* Why qemu-img failed: its last "qemu-img: " line that is not a warning, with
 * the lines that continue it (some errors span two, e.g. "...: No such file or
 * directory" then "Could not open backing image."), joined by spaces; warnings
 * and their continuations are skipped, and so are progress updates. Without
 * such a line, the last non-blank one. */
static char *error_line(const char *output)
{
    if (!output)
        return NULL;
    _cleanup_free_ char *message = NULL, *last = NULL;
    bool in_warning = false;
    for (const char *p = output; *p;) {
        size_t len = strcspn(p, "\r\n");
        const char *s = p;
        size_t n = len;
        while (n > 0 && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        p += len;
        p += strspn(p, "\r\n");
        if (n == 0)
            continue;
        _cleanup_free_ char *line = strndup(s, n);
        if (!line)
            abort();
        if (vo_img_parse_progress(line) >= 0)
            continue;
        free(last);
        last = vo_strdup(line);
        if (strncmp(line, "qemu-img: ", 10) == 0) {
            /* Warnings may come after the error (resize without --shrink). */
            in_warning = strstr(line, "warning:") != NULL;
            if (!in_warning) {
                free(message);
                message = TAKE_PTR(line);
            }
        } else if (message && !in_warning) {
            char *joined = vo_asprintf("%s %s", message, line);
            free(message);
            message = joined;
        }
    }
    return message ? TAKE_PTR(message) : TAKE_PTR(last);
}

/* Sets *ret_error to qemu-img's own error line and turns "out of space" into
 * -ENOSPC. */
static int failed(int r, const char *output, const char *command, char **ret_error)
{
    if (r == -EIO && output && strstr(output, "No space left on device"))
        r = -ENOSPC;
    if (r == -ETIMEDOUT)
        return vo_error_set(ret_error, r, "qemu-img %s did not finish in time", command);
    if (r == -ECANCELED)
        return vo_error_set(ret_error, r, "cancelled (qemu-img %s stopped)", command);
    _cleanup_free_ char *line = error_line(output);
    if (line)
        return vo_error_set(ret_error, r, "%s", line);
    return vo_error_set(ret_error, r, "qemu-img %s failed: %s", command, strerror(-r));
}

/* qemu-img reads "json:{...}", "nbd:..." and other protocol prefixes, and
 * options, from file names; "./" or "/" in front makes a name just a file.
 * For files only: a volume's path goes through vo_img_open_args. */
static char *plain_path(const char *path)
{
    return path[0] == '/' ? vo_strdup(path) : vo_asprintf("./%s", path);
}

int vo_img_open_args(char ***argv, const char *path, const char *format, char **ret_name,
                     char **ret_error)
{
    *ret_name = NULL;
    if (!vo_iscsi_url_is(path)) {
        *ret_name = plain_path(path);
        return 0;
    }
    VoIscsiUrl u;
    if (vo_iscsi_url_parse(path, &u) < 0 || u.lun < 0) {
        vo_iscsi_url_clear(&u);
        return vo_error_set(ret_error, -EINVAL, "'%s' names no iSCSI LUN", path);
    }
    /* One id per secret of one command line (a convert may open two LUNs). */
    char id[40];
    snprintf(id, sizeof(id), "vireo-secret%zu", vo_strv_len(*argv));
    json_t *spec = vo_iscsi_url_blockdev(&u, id);
    if (u.user && u.secret && strchr(u.secret, ',')) {
        vo_iscsi_url_clear(&u);
        json_decref(spec);
        return vo_error_set(ret_error, -EINVAL, "the CHAP secret file of '%s' has a ',' in "
                            "its name", path);
    }
    if (u.user && u.secret) {
        vo_strv_pushf(argv, "--object");
        vo_strv_pushf(argv, "secret,id=%s,format=raw,file=%s", id, u.secret);
    }
    vo_iscsi_url_clear(&u);
    if (format) /* the format layer named too: the LUN's bytes are never probed */
        spec = json_pack("{s:s, s:o}", "driver", format, "file", spec);
    /* No backing file: a LUN is never a linked clone, and a name its qcow2
     * header holds (anyone on the SAN can write one) is no file of this
     * host's to read (vo_qemu_lun_no_backing: the VM's QEMU alike). */
    if (format && !strcmp(format, "qcow2"))
        json_object_set_new(spec, "backing", json_null());
    char *text = spec ? json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(spec);
    if (!text)
        return vo_error_set(ret_error, -ENOMEM, "cannot describe '%s' to qemu-img", path);
    *ret_name = vo_asprintf("json:%s", text);
    free(text);
    return 0;
}

static bool format_valid(const char *format)
{
    if (!format || !format[0] || strlen(format) > 32)
        return false;
    for (const char *p = format; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

/* Creates path empty and exclusively, so that qemu-img never writes over an
 * existing file and a failure can remove what it made without losing data.
 * Disk images are root's alone: VOLUME_MODE, whatever the umask. */
static int reserve(const char *path, char **ret_error)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, VO_IMG_FILE_MODE);
    if (fd < 0) {
        int r = -errno;
        if (r == -EEXIST)
            return vo_error_set(ret_error, r, "'%s' already exists", path);
        return vo_error_set(ret_error, r, "cannot create '%s': %s", path, strerror(-r));
    }
    (void)fchmod(fd, VO_IMG_FILE_MODE);
    close(fd);
    return 0;
}

/* qemu-img may make its output anew (with the umask's mode): set it again. */
static int keep_private(const char *path, char **ret_error)
{
    if (chmod(path, VO_IMG_FILE_MODE) < 0) {
        int r = -errno;
        (void)unlink(path);
        return vo_error_set(ret_error, r, "cannot make '%s' private: %s", path, strerror(-r));
    }
    return 0;
}

/* Runs qemu-img info (JSON) and returns the document's text alone. */
static int info_json(const char *path, const char *format, bool chain, char **ret_doc,
                     char **ret_error)
{
    if (!path || !path[0])
        return vo_error_set(ret_error, -EINVAL, "no image path");
    if (format && !format_valid(format))
        return vo_error_set(ret_error, -EINVAL, "invalid image format '%s'", format);
    _cleanup_free_ char *file = NULL;
    _cleanup_strv_ char **argv = NULL;
    vo_strv_pushf(&argv, QEMU_IMG);
    vo_strv_pushf(&argv, "info");
    int r = vo_img_open_args(&argv, path, format, &file, ret_error);
    if (r < 0)
        return r;
    vo_strv_pushf(&argv, "--output=json");
    if (chain)
        vo_strv_pushf(&argv, "--backing-chain");
    vo_strv_pushf(&argv, "-U");
    if (format) {
        vo_strv_pushf(&argv, "-f");
        vo_strv_pushf(&argv, "%s", format);
    }
    vo_strv_pushf(&argv, "%s", file);
    _cleanup_free_ char *output = NULL;
    r = vo_spawn_wait(argv, INFO_TIMEOUT_MS, &output);
    if (r < 0)
        return failed(r, output, "info", ret_error);
    /* stderr shares the capture: take the pretty-printed JSON document alone,
     * from its first line that opens one to its last line that closes one. */
    const char *start = NULL, *end = NULL;
    for (const char *line = output; *line;) {
        if (!start && (*line == '[' || *line == '{'))
            start = line;
        if (start && (*line == ']' || *line == '}'))
            end = line + 1;
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : line + strlen(line);
    }
    char *doc = start && end ? strndup(start, (size_t)(end - start)) : vo_strdup(output);
    if (!doc)
        abort();
    *ret_doc = doc;
    return 0;
}

int vo_img_info(const char *path, const char *format, VoImgInfo *ret, char **ret_error)
{
    *ret = (VoImgInfo){ 0 };
    _cleanup_free_ char *doc = NULL;
    int r = info_json(path, format, true, &doc, ret_error);
    return r < 0 ? r : vo_img_info_parse(doc, ret, ret_error);
}

/* Every file an image names (its own, its extents', data files', children's)
 * must be the image itself; a backing file is never allowed. */
static bool only_self(json_t *node, const char *self, char **ret_error)
{
    if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v)
            if (!only_self(v, self, ret_error))
                return false;
        return true;
    }
    if (!json_is_object(node))
        return true;
    const char *key;
    json_t *v;
    json_object_foreach(node, key, v) {
        if (!strcmp(key, "backing-filename") || !strcmp(key, "full-backing-filename") ||
            !strcmp(key, "data-file")) {
            vo_error_set(ret_error, -EPERM, "the image refers to another file (%s: %s); only "
                 "self-contained images can be imported", key,
                 json_is_string(v) ? json_string_value(v) : "?");
            return false;
        }
        if (!strcmp(key, "filename") && json_is_string(v) && strcmp(json_string_value(v), self)) {
            vo_error_set(ret_error, -EPERM, "the image refers to another file (%s); only "
                 "self-contained images can be imported", json_string_value(v));
            return false;
        }
        if (!only_self(v, self, ret_error))
            return false;
    }
    return true;
}

int vo_img_probe_import(const char *path, char **ret_format, char **ret_error)
{
    return vo_img_check_import(path, NULL, ret_format, ret_error);
}

int vo_img_check_import(const char *path, const char *format_in, char **ret_format,
                        char **ret_error)
{
    _cleanup_free_ char *doc = NULL;
    int r = info_json(path, format_in, false, &doc, ret_error);
    if (r < 0)
        return r;
    json_error_t jerr;
    json_t *root = json_loads(doc, 0, &jerr);
    const char *format = json_string_value(json_object_get(root, "format"));
    _cleanup_free_ char *self = plain_path(path);
    if (!format || !format_valid(format)) {
        json_decref(root);
        return vo_error_set(ret_error, -EINVAL, "qemu-img cannot tell the format of %s", path);
    }
    bool ok = only_self(root, self, ret_error);
    if (ok)
        *ret_format = vo_strdup(format);
    json_decref(root);
    return ok ? 0 : -EPERM;
}

int vo_img_create(const char *path, const char *format, uint64_t size, const char *backing,
                  const char *backing_format, char **ret_error)
{
    if (!path || !path[0])
        return vo_error_set(ret_error, -EINVAL, "no image path");
    if (!format_valid(format))
        return vo_error_set(ret_error, -EINVAL, "invalid image format '%s'", format ? format : "");
    if (backing && (!backing[0] || !format_valid(backing_format)))
        return vo_error_set(ret_error, -EINVAL, "a backing file needs a valid backing format");
    _cleanup_free_ char *file = plain_path(path);
    _cleanup_free_ char *backing_file = backing ? plain_path(backing) : NULL;
    _cleanup_strv_ char **argv = NULL;
    vo_strv_pushf(&argv, QEMU_IMG);
    vo_strv_pushf(&argv, "create");
    vo_strv_pushf(&argv, "-q");
    vo_strv_pushf(&argv, "-f");
    vo_strv_pushf(&argv, "%s", format);
    /* A raw volume is allocated in full, so a pool that cannot hold it says so now. */
    if (!strcmp(format, "raw") && !backing) {
        vo_strv_pushf(&argv, "-o");
        vo_strv_pushf(&argv, "preallocation=falloc");
    }
    if (backing) {
        vo_strv_pushf(&argv, "-b");
        vo_strv_pushf(&argv, "%s", backing_file);
        vo_strv_pushf(&argv, "-F");
        vo_strv_pushf(&argv, "%s", backing_format);
    }
    vo_strv_pushf(&argv, "%s", file);
    if (size > 0 || !backing)
        vo_strv_pushf(&argv, "%llu", (unsigned long long)size);
    int r = reserve(path, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *output = NULL;
    r = vo_spawn_wait(argv, CREATE_TIMEOUT_MS, &output);
    if (r < 0) {
        (void)unlink(path);
        return failed(r, output, "create", ret_error);
    }
    return keep_private(path, ret_error);
}

int vo_img_resize(const char *path, const char *format, uint64_t size, bool shrink,
                  char **ret_error)
{
    if (!path || !path[0])
        return vo_error_set(ret_error, -EINVAL, "no image path");
    if (!format_valid(format))
        return vo_error_set(ret_error, -EINVAL, "invalid image format '%s'", format ? format : "");
    _cleanup_free_ char *file = NULL;
    _cleanup_strv_ char **argv = NULL;
    vo_strv_pushf(&argv, QEMU_IMG);
    vo_strv_pushf(&argv, "resize");
    vo_strv_pushf(&argv, "-q");
    int r = vo_img_open_args(&argv, path, format, &file, ret_error);
    if (r < 0)
        return r;
    if (shrink)
        vo_strv_pushf(&argv, "--shrink");
    vo_strv_pushf(&argv, "-f");
    vo_strv_pushf(&argv, "%s", format);
    vo_strv_pushf(&argv, "%s", file);
    vo_strv_pushf(&argv, "%llu", (unsigned long long)size);
    _cleanup_free_ char *output = NULL;
    r = vo_spawn_wait(argv, RESIZE_TIMEOUT_MS, &output);
    if (r < 0)
        return failed(r, output, "resize", ret_error);
    return 0;
}

int vo_img_bitmaps_remove(const char *path, const char *prefix, char **ret_error)
{
    _cleanup_free_ char *doc = NULL;
    int r = info_json(path, "qcow2", false, &doc, ret_error);
    if (r < 0)
        return r;
    json_error_t jerr;
    json_t *info = json_loads(doc, 0, &jerr);
    if (!info)
        return vo_error_set(ret_error, -EINVAL, "qemu-img info %s: %s", path, jerr.text);
    json_t *bitmaps = json_object_get(json_object_get(json_object_get(info, "format-specific"),
                                                      "data"), "bitmaps");
    size_t i;
    json_t *b;
    json_array_foreach(bitmaps, i, b) {
        const char *name = json_string_value(json_object_get(b, "name"));
        if (!name || strncmp(name, prefix, strlen(prefix)))
            continue;
        _cleanup_strv_ char **argv = NULL;
        _cleanup_free_ char *file = NULL;
        vo_strv_pushf(&argv, QEMU_IMG);
        vo_strv_pushf(&argv, "bitmap");
        vo_strv_pushf(&argv, "--remove");
        if ((r = vo_img_open_args(&argv, path, "qcow2", &file, ret_error)) < 0)
            break;
        vo_strv_pushf(&argv, "-f");
        vo_strv_pushf(&argv, "qcow2");
        vo_strv_pushf(&argv, "%s", file);
        vo_strv_pushf(&argv, "%s", name);
        _cleanup_free_ char *output = NULL;
        if ((r = vo_spawn_wait(argv, RESIZE_TIMEOUT_MS, &output)) < 0) {
            r = failed(r, output, "bitmap --remove", ret_error);
            break;
        }
    }
    json_decref(info);
    return r < 0 ? r : 0;
}

int vo_img_rebase_unsafe(const char *path, const char *backing, const char *backing_format,
                         char **ret_error)
{
    if (!path || !path[0] || !backing || !backing[0])
        return vo_error_set(ret_error, -EINVAL, "no image or backing path");
    if (!format_valid(backing_format))
        return vo_error_set(ret_error, -EINVAL, "invalid image format '%s'",
                            backing_format ? backing_format : "");
    _cleanup_free_ char *file = plain_path(path);
    _cleanup_strv_ char **argv = NULL;
    vo_strv_pushf(&argv, QEMU_IMG);
    vo_strv_pushf(&argv, "rebase");
    vo_strv_pushf(&argv, "-q");
    vo_strv_pushf(&argv, "-u");
    vo_strv_pushf(&argv, "-f");
    vo_strv_pushf(&argv, "qcow2");
    vo_strv_pushf(&argv, "-b");
    vo_strv_pushf(&argv, "%s", backing);
    vo_strv_pushf(&argv, "-F");
    vo_strv_pushf(&argv, "%s", backing_format);
    vo_strv_pushf(&argv, "%s", file);
    _cleanup_free_ char *output = NULL;
    int r = vo_spawn_wait(argv, RESIZE_TIMEOUT_MS, &output);
    if (r < 0)
        return failed(r, output, "rebase", ret_error);
    return 0;
}

/* ---- convert: qemu-img's stdout read as it comes, for -p ------------------- */

typedef struct {
    VoImgProgressFn fn;
    void *userdata;
    int last;         /* the last percent reported, -1 before the first */
    char line[128];   /* stdout since the last '\r' or '\n' */
    size_t len;
} Progress;

static void progress_report(Progress *p, int percent)
{
    if (percent < 0 || percent <= p->last)
        return;
    p->last = percent;
    if (p->fn)
        p->fn(percent, p->userdata);
}

static void progress_feed(Progress *p, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\r' || buf[i] == '\n') {
            p->line[p->len] = 0;
            progress_report(p, vo_img_parse_progress(p->line));
            p->len = 0;
        } else if (p->len + 1 < sizeof(p->line)) {
            p->line[p->len++] = buf[i];
        }
    }
}

/* The end of stderr: why qemu-img failed comes last. */
typedef struct {
    char buf[STDERR_TAIL + 1];
    size_t len;
} Tail;

static void tail_add(Tail *t, const char *data, size_t n)
{
    if (n > STDERR_TAIL) {
        data += n - STDERR_TAIL;
        n = STDERR_TAIL;
    }
    size_t keep = t->len < STDERR_TAIL - n ? t->len : STDERR_TAIL - n;
    memmove(t->buf, t->buf + t->len - keep, keep);
    memcpy(t->buf + keep, data, n);
    t->len = keep + n;
    t->buf[t->len] = 0;
}

/* In the child: stdin from /dev/null, stdout and stderr to the pipes, default
 * signal handling, nothing else inherited; then qemu-img. */
static _Noreturn void exec_child(char *const argv[], int out_fd, int err_fd, pid_t parent)
{
    vo_spawn_child_die_with(parent); /* no qemu-img outlives vireod */
    /* Lift both pipe ends above 2 first, so the dup2s below cannot clobber them. */
    int out = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
    int err = fcntl(err_fd, F_DUPFD_CLOEXEC, 3);
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || err < 0 || null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 ||
        dup2(out, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0)
        _exit(127);
    vo_spawn_child_reset();
    execvp(argv[0], argv);
    static const char msg[] = "qemu-img: cannot be run (is it installed?)\n";
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to say */
    }
    _exit(127);
}

/* Runs argv, feeding its stdout to p and keeping the end of its stderr;
 * SIGKILL at the deadline. 0, -EIO (failed), -ETIMEDOUT or -errno. */
static int run_with_progress(char *const argv[], int64_t timeout_ms, Progress *p,
                             char **ret_stderr)
{
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(err_pipe, O_CLOEXEC) < 0) {
        int r = -errno;
        close(out_pipe[0]);
        close(out_pipe[1]);
        return r;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(out_pipe[0]);
        close(out_pipe[1]);
        close(err_pipe[0]);
        close(err_pipe[1]);
        return r;
    }
    if (pid == 0)
        exec_child(argv, out_pipe[1], err_pipe[1], parent);
    close(out_pipe[1]);
    close(err_pipe[1]);

    Tail *tail = vo_malloc0(sizeof(Tail));
    /* fds[2]: readable once the work is cancelled (util/cancel.h). */
    struct pollfd fds[3] = { { .fd = out_pipe[0], .events = POLLIN },
                             { .fd = err_pipe[0], .events = POLLIN },
                             { .fd = vo_cancel_fd(), .events = POLLIN } };
    int64_t deadline = vo_now_ms() + timeout_ms;
    int r = 0;
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
        int64_t left = deadline - vo_now_ms();
        if (left <= 0) {
            r = -ETIMEDOUT;
            break;
        }
        int n = poll(fds, 3, left > INT_MAX ? INT_MAX : (int)left);
        if (vo_cancelled()) {
            r = -ECANCELED;
            break;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        for (size_t i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            char buf[4096];
            ssize_t k = read(fds[i].fd, buf, sizeof(buf));
            if (k < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (k <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                continue;
            }
            if (i == 0)
                progress_feed(p, buf, (size_t)k);
            else
                tail_add(tail, buf, (size_t)k);
        }
    }
    for (size_t i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    if (r < 0)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    /* A last update without its '\r'. */
    p->line[p->len] = 0;
    progress_report(p, vo_img_parse_progress(p->line));
    *ret_stderr = vo_strdup(tail->buf);
    free(tail);
    if (r < 0)
        return r;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Runs qemu-img convert from the source argument in_arg (a plain path or a
 * "json:" spec, with in_options before it: vo_img_open_args), as in_format
 * (NULL: probe or, for a spec, its own driver). onto: out exists (a volume,
 * a LUN too) and is written over in place (-n), not made anew. */
static int convert(char *const *in_options, const char *in_arg, const char *in_format,
                   const char *out, const char *out_format, bool onto, uint64_t rate,
                   VoImgProgressFn progress, void *userdata, char **ret_error)
{
    if (!format_valid(out_format))
        return vo_error_set(ret_error, -EINVAL, "invalid image format '%s'", out_format ? out_format : "");
    _cleanup_free_ char *out_file = NULL;
    _cleanup_strv_ char **argv = NULL;
    vo_strv_pushf(&argv, QEMU_IMG);
    vo_strv_pushf(&argv, "convert");
    vo_strv_pushf(&argv, "-p");
    for (size_t i = 0; in_options && in_options[i]; i++)
        vo_strv_pushf(&argv, "%s", in_options[i]);
    int r = onto ? vo_img_open_args(&argv, out, out_format, &out_file, ret_error)
                 : (out_file = plain_path(out), 0);
    if (r < 0)
        return r;
    if (onto)
        vo_strv_pushf(&argv, "-n");
    if (rate) { /* bytes/s */
        vo_strv_pushf(&argv, "-r");
        vo_strv_pushf(&argv, "%llu", (unsigned long long)rate);
    }
    if (in_format) {
        vo_strv_pushf(&argv, "-f");
        vo_strv_pushf(&argv, "%s", in_format);
    }
    vo_strv_pushf(&argv, "-O");
    vo_strv_pushf(&argv, "%s", out_format);
    vo_strv_pushf(&argv, "%s", in_arg);
    vo_strv_pushf(&argv, "%s", out_file);
    if (!onto && (r = reserve(out, ret_error)) < 0)
        return r;
    Progress p = { .fn = progress, .userdata = userdata, .last = -1 };
    _cleanup_free_ char *errors = NULL;
    r = run_with_progress(argv, CONVERT_TIMEOUT_MS, &p, &errors);
    if (r < 0) {
        if (!onto)
            (void)unlink(out);
        return failed(r, errors, "convert", ret_error);
    }
    r = onto ? 0 : keep_private(out, ret_error);
    if (r >= 0)
        progress_report(&p, 100);
    return r;
}

int vo_img_run_convert(char *const argv[], VoImgProgressFn progress, void *userdata,
                       char **ret_error)
{
    Progress p = { .fn = progress, .userdata = userdata, .last = -1 };
    _cleanup_free_ char *errors = NULL;
    int r = run_with_progress(argv, CONVERT_TIMEOUT_MS, &p, &errors);
    if (r < 0)
        return failed(r, errors, "convert", ret_error);
    progress_report(&p, 100);
    return 0;
}

/* convert from the volume in (a file or a LUN: vo_img_open_args). */
static int convert_volume(const char *in, const char *in_format, const char *out,
                          const char *out_format, bool onto, VoImgProgressFn progress,
                          void *userdata, char **ret_error)
{
    if (!in || !in[0] || !out || !out[0])
        return vo_error_set(ret_error, -EINVAL, "no image path");
    if (in_format && !format_valid(in_format))
        return vo_error_set(ret_error, -EINVAL, "invalid image format '%s'", in_format);
    _cleanup_strv_ char **options = NULL;
    _cleanup_free_ char *in_file = NULL;
    int r = vo_img_open_args(&options, in, in_format, &in_file, ret_error);
    if (r < 0)
        return r;
    return convert(options, in_file, in_format, out, out_format, onto, 0, progress, userdata,
                   ret_error);
}

int vo_img_convert(const char *in, const char *in_format, const char *out, const char *out_format,
                   VoImgProgressFn progress, void *userdata, char **ret_error)
{
    return convert_volume(in, in_format, out, out_format, false, progress, userdata, ret_error);
}

int vo_img_convert_onto(const char *in, const char *in_format, const char *out,
                        const char *out_format, char **ret_error)
{
    return convert_volume(in, in_format, out, out_format, true, NULL, NULL, ret_error);
}

char *vo_img_chain_spec(char *const *layers, size_t n)
{
    if (n == 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!layers[i] || layers[i][0] != '/')
            return NULL;
    json_t *below = json_null();
    for (size_t i = n; i-- > 0;)
        below = json_pack("{s:s, s:{s:s, s:s}, s:o}", "driver", "qcow2", "file", "driver", "file",
                          "filename", layers[i], "backing", below);
    if (!below)
        return NULL;
    char *text = json_dumps(below, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(below);
    if (!text)
        return NULL;
    char *spec = vo_asprintf("json:%s", text);
    free(text);
    return spec;
}

static int convert_chain(char *const *layers, size_t n, const char *out, const char *out_format,
                         bool onto, uint64_t rate, VoImgProgressFn progress, void *userdata,
                         char **ret_error)
{
    if (!out || !out[0])
        return vo_error_set(ret_error, -EINVAL, "no image path");
    _cleanup_free_ char *spec = vo_img_chain_spec(layers, n);
    if (!spec)
        return vo_error_set(ret_error, -EINVAL, "invalid image chain (%zu layer(s), each an "
                            "absolute path)", n);
    return convert(NULL, spec, NULL, out, out_format, onto, rate, progress, userdata, ret_error);
}

int vo_img_convert_chain(char *const *layers, size_t n, const char *out, const char *out_format,
                         uint64_t rate, VoImgProgressFn progress, void *userdata,
                         char **ret_error)
{
    return convert_chain(layers, n, out, out_format, false, rate, progress, userdata,
                         ret_error);
}

int vo_img_convert_chain_onto(char *const *layers, size_t n, const char *out,
                              const char *out_format, uint64_t rate, VoImgProgressFn progress,
                              void *userdata, char **ret_error)
{
    return convert_chain(layers, n, out, out_format, true, rate, progress, userdata,
                         ret_error);
}
