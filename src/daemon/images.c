/* images.c: the images VMs are created from. Each is a store document
 * ("images/NAME": what listing and lookups read) and a directory of files
 * (STATE/images/NAME: image.json and the files it names); start-up
 * reconciles the two (see images.h). */
#include "daemon/images.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/names.h"
#include "daemon/daemon.h"
#include "daemon/storage.h"
#include "state/records.h"
#include "storage/qemu-img.h"
#include "util/util.h"

#define IMAGES_PREFIX "images/"

VoImage *vo_image_free(VoImage *img)
{
    if (!img)
        return NULL;
    free(img->name);
    free(img->disk);
    free(img->format);
    free(img->kernel);
    free(img->initrd);
    free(img->cmdline);
    free(img->firmware);
    free(img->pool);
    free(img);
    return NULL;
}

char *vo_images_top(VoDaemon *d, const char *pool)
{
    if (!pool)
        return vo_asprintf("%s/images", d->state_dir);
    _cleanup_free_ char *path = NULL, *error = NULL;
    if (vo_shared_pool_path(d, pool, &path, NULL, &error) < 0)
        return NULL;
    return vo_asprintf("%s/%s", path, VO_SHARED_IMAGES_DIR);
}

/* The directory of image name: this host's, or in shared pool pool (NULL
 * when that pool is unknown). */
static char *image_dir_in(VoDaemon *d, const char *pool, const char *name)
{
    _cleanup_free_ char *top = vo_images_top(d, pool);
    return top ? vo_asprintf("%s/%s", top, name) : NULL;
}

/* The document of image name read from its directory: image.json, and the
 * disk's size (for qcow2 the disk's, not the file's). created_ms < 0: when
 * image.json was written. -ENOENT without image.json. */
static int image_doc_from_files(const char *dir, const char *name, int64_t created_ms,
                                json_t **ret, char **ret_error)
{
    _cleanup_free_ char *meta_path = vo_asprintf("%s/image.json", dir);
    struct stat st;
    if (stat(meta_path, &st) < 0)
        return vo_error_set(ret_error, -errno, "%s: %s", meta_path, strerror(errno));
    if (created_ms < 0)
        created_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    json_error_t jerr;
    json_t *meta = json_load_file(meta_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!meta)
        return vo_error_set(ret_error, -EINVAL, "%s: %s", meta_path, jerr.text);
    json_t *doc = NULL;
    int r = vo_image_doc_make(name, meta, 0, created_ms, &doc, ret_error);
    json_decref(meta);
    VoImageDoc v;
    if (r >= 0 && (r = vo_image_doc_parse(doc, name, &v)) < 0)
        vo_error_set(ret_error, r, "%s: not an image", meta_path);
    _cleanup_free_ char *disk = r >= 0 ? vo_asprintf("%s/%s", dir, v.disk) : NULL;
    if (r >= 0 && stat(disk, &st) < 0)
        r = vo_error_set(ret_error, -EINVAL, "its disk %s: %s", disk, strerror(errno));
    /* Every file image.json names is there (a directory half removed is not
     * an image). */
    const char *boot[] = { r >= 0 ? v.kernel : NULL, r >= 0 ? v.initrd : NULL };
    for (size_t i = 0; i < ELEMENTSOF(boot) && r >= 0; i++) {
        _cleanup_free_ char *file = boot[i] ? vo_asprintf("%s/%s", dir, boot[i]) : NULL;
        if (file && access(file, R_OK) < 0)
            r = vo_error_set(ret_error, -EINVAL, "its %s %s: %s", i ? "initrd" : "kernel", file,
                             strerror(errno));
    }
    if (r >= 0) {
        uint64_t size = (uint64_t)st.st_size;
        if (!strcmp(v.format, "qcow2")) {
            VoImgInfo info = { 0 };
            r = vo_img_info(disk, "qcow2", &info, ret_error);
            if (r >= 0 && info.n_layers > 0)
                size = info.layers[0].virtual_size;
            vo_img_info_clear(&info);
        }
        json_object_set_new(doc, "size_bytes", json_integer((json_int_t)size));
    }
    if (r < 0) {
        json_decref(doc);
        return r;
    }
    *ret = doc;
    return 0;
}

static int image_doc_put(VoDaemon *d, const char *name, const char *pool, int64_t created_ms,
                         char **ret_error)
{
    json_t *doc = NULL;
    _cleanup_free_ char *dir = image_dir_in(d, pool, name);
    if (!dir)
        return vo_error_set(ret_error, -ENOENT, "pool '%s' does not exist", pool);
    int r = image_doc_from_files(dir, name, created_ms, &doc, ret_error);
    if (r < 0)
        return r;
    if (pool)
        json_object_set_new(doc, "pool", json_string(pool));
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *key = vo_asprintf("%s%s", pool ? VO_SHARED_IMAGES_PREFIX : IMAGES_PREFIX,
                                           name);
    r = vo_store_put(d->store, key, text, VO_REV_NEW, NULL);
    if (r < 0)
        vo_error_set(ret_error, r, "cannot record %s in the store: %s", key, strerror(-r));
    return r;
}

int vo_image_record(VoDaemon *d, const char *name, char **ret_error)
{
    return image_doc_put(d, name, NULL, vo_wall_ms(), ret_error);
}

int vo_image_record_in(VoDaemon *d, const char *name, const char *pool, char **ret_error)
{
    return image_doc_put(d, name, pool, vo_wall_ms(), ret_error);
}

/* A file named by the image's document, in its directory. */
static char *doc_file(const char *dir, const char *rel)
{
    return rel ? vo_asprintf("%s/%s", dir, rel) : NULL;
}

/* name: the image's name from the document's key. */
int vo_image_from_doc(VoDaemon *d, const char *name, const char *text, VoImage **ret)
{
    json_t *doc = json_loads(text, 0, NULL);
    VoImageDoc v;
    /* A shared image's document is an image document plus its pool. */
    _cleanup_free_ char *pool = vo_strdup(json_string_value(json_object_get(doc, "pool")));
    if (json_is_object(doc))
        json_object_del(doc, "pool");
    int r = vo_image_doc_parse(doc, name, &v);
    _cleanup_free_ char *dir = r >= 0 ? image_dir_in(d, pool, v.name) : NULL;
    if (r >= 0 && !dir)
        r = -EINVAL; /* its pool is gone */
    if (r >= 0) {
        VoImage *img = vo_malloc0(sizeof(*img));
        *img = (VoImage){ .name = vo_strdup(v.name), .disk = doc_file(dir, v.disk),
                          .format = vo_strdup(v.format), .size_bytes = v.size_bytes,
                          .kernel = doc_file(dir, v.kernel), .initrd = doc_file(dir, v.initrd),
                          .cmdline = vo_strdup(v.cmdline), .pool = TAKE_PTR(pool),
                          .firmware = vo_strdup(v.firmware), .cloud_init = v.cloud_init };
        *ret = img;
    }
    json_decref(doc);
    return r;
}

int vo_image_get(VoDaemon *d, const char *name, VoImage **ret, int64_t *ret_rev)
{
    if (!vo_name_valid(name))
        return -ENOENT;
    _cleanup_free_ char *key = vo_asprintf(IMAGES_PREFIX "%s", name);
    _cleanup_free_ char *text = NULL;
    int r = vo_store_get(d->store, key, &text, ret_rev);
    if (r == -ENOENT) { /* the cluster's, kept in a shared pool */
        free(key);
        key = vo_asprintf(VO_SHARED_IMAGES_PREFIX "%s", name);
        r = vo_store_get(d->store, key, &text, ret_rev);
    }
    return r < 0 ? r : vo_image_from_doc(d, name, text, ret);
}

int vo_image_boot_file(VoDaemon *d, const char *name, bool initrd, char **ret_path,
                       char **ret_error)
{
    const char *what = initrd ? "initrd" : "kernel";
    if (!vo_name_valid(name))
        return vo_error_set(ret_error, -EINVAL, "'%s' is not an image name", name);
    VoImage *img = NULL;
    if (vo_image_get(d, name, &img, NULL) < 0)
        return vo_error_set(ret_error, -ENOENT, "image '%s' does not exist on this host", name);
    _cleanup_free_ char *path = vo_strdup(initrd ? img->initrd : img->kernel);
    vo_image_free(img);
    if (!path)
        return vo_error_set(ret_error, -ENOENT, "image '%s' has no %s", name, what);
    if (access(path, R_OK) < 0)
        return vo_error_set(ret_error, -ENOENT, "the %s of image '%s' (%s) is missing", what,
                            name, path);
    *ret_path = TAKE_PTR(path);
    return 0;
}

json_t *vo_image_to_json(const VoImage *img)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I}", "name", img->name, "disk", img->disk, "format",
                          img->format, "size_bytes", (json_int_t)img->size_bytes);
    json_object_set_new(o, "kernel", img->kernel ? json_string(img->kernel) : json_null());
    json_object_set_new(o, "initrd", img->initrd ? json_string(img->initrd) : json_null());
    json_object_set_new(o, "cmdline", img->cmdline ? json_string(img->cmdline) : json_null());
    json_object_set_new(o, "pool", img->pool ? json_string(img->pool) : json_null());
    /* Whether its VMs get a cloud-init seed by default (the web UI's wizard
     * asks for a user and SSH key then). */
    json_object_set_new(o, "cloud_init", json_boolean(img->cloud_init));
    return o;
}

typedef struct {
    VoDaemon *d;
    json_t *arr;
    const char *prefix;
    char **seen; /* shared: names this host has an image of its own of */
} ListCtx;

static int list_one(const char *key, const char *value, int64_t rev, void *userdata)
{
    ListCtx *c = userdata;
    VoImage *img = NULL;
    const char *name = key + strlen(c->prefix);
    for (char **s = c->seen; s && *s; s++)
        if (!strcmp(*s, name))
            return 0; /* this host's own comes first */
    if (vo_image_from_doc(c->d, name, value, &img) < 0) {
        log_warn("images: ignoring %s: not an image document", key);
        return 0;
    }
    json_array_append_new(c->arr, vo_image_to_json(img));
    vo_image_free(img);
    return 0;
}

static int cmp_image(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

json_t *vo_images_list_json(VoDaemon *d)
{
    ListCtx c = { .d = d, .arr = json_array(), .prefix = IMAGES_PREFIX };
    (void)vo_store_list(d->store, IMAGES_PREFIX, list_one, &c);
    size_t i;
    json_t *img;
    json_array_foreach(c.arr, i, img)
        vo_strv_pushf(&c.seen, "%s", json_string_value(json_object_get(img, "name")));
    c.prefix = VO_SHARED_IMAGES_PREFIX;
    (void)vo_store_list(d->store, VO_SHARED_IMAGES_PREFIX, list_one, &c);
    vo_strv_free(c.seen);
    /* Sorted by name, the host's and the cluster's together. */
    size_t n = json_array_size(c.arr);
    json_t **items = vo_malloc0(sizeof(json_t *) * (n + 1));
    for (i = 0; i < n; i++)
        items[i] = json_incref(json_array_get(c.arr, i));
    if (n)
        qsort(items, n, sizeof(json_t *), cmp_image);
    json_array_clear(c.arr);
    for (i = 0; i < n; i++)
        json_array_append_new(c.arr, items[i]);
    free(items);
    return c.arr;
}

/* ---- start-up --------------------------------------------------------------------- */

typedef struct {
    char **names;
    char **revs; /* decimal */
} Docs;

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    Docs *docs = userdata;
    vo_strv_push(&docs->names, vo_strdup(key + strlen(IMAGES_PREFIX)));
    vo_strv_pushf(&docs->revs, "%lld", (long long)rev);
    return 0;
}

/* Whether image name's document is valid and its files are there:
 * image.json and the disk it names. 0, -EINVAL (a document that is not an
 * image's, e.g. a name that is not its key's), -ENOENT (files gone). */
static int files_present(VoDaemon *d, const char *name)
{
    VoImage *img = NULL;
    int r = vo_image_get(d, name, &img, NULL);
    if (r < 0)
        return r == -ENOENT ? r : -EINVAL;
    _cleanup_free_ char *meta = vo_asprintf("%s/images/%s/image.json", d->state_dir, name);
    bool ok = access(meta, F_OK) == 0 && access(img->disk, F_OK) == 0;
    vo_image_free(img);
    return ok ? 0 : -ENOENT;
}

void vo_images_load(VoDaemon *d)
{
    /* Documents whose files are gone (removed behind vireod's back, or a
     * delete cut short after its rename) go: they name nothing usable; so
     * do documents that are not an image's (changed behind vireod's back:
     * a name or file outside the image directory), which nothing reads. */
    Docs docs = { 0 };
    (void)vo_store_list(d->store, IMAGES_PREFIX, collect, &docs);
    for (size_t i = 0; docs.names && docs.names[i]; i++) {
        int present = files_present(d, docs.names[i]);
        if (present == 0)
            continue;
        _cleanup_free_ char *key = vo_asprintf(IMAGES_PREFIX "%s", docs.names[i]);
        int r = vo_store_delete(d->store, key, strtoll(docs.revs[i], NULL, 10));
        if (r < 0)
            log_warn("images: cannot remove %s: %s", key, strerror(-r));
        else if (present == -EINVAL)
            log_warn("images: %s is not a valid image document (its name is not its key's, or "
                     "it names files outside the image directory); removed", key);
        else
            log_warn("images: image '%s' is gone: its files are missing; its document is "
                     "removed", docs.names[i]);
    }
    vo_strv_free(docs.names);
    vo_strv_free(docs.revs);

    /* Directories without a document (a state dir of an older vireo, an
     * image put in place by hand, or an import whose document a crash cut
     * short after its files were renamed into place, complete) are adopted. */
    _cleanup_free_ char *top = vo_asprintf("%s/images", d->state_dir);
    DIR *dir = opendir(top);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        if (!vo_name_valid(e->d_name))
            continue;
        _cleanup_free_ char *key = vo_asprintf(IMAGES_PREFIX "%s", e->d_name);
        if (vo_store_get(d->store, key, NULL, NULL) == 0)
            continue;
        _cleanup_free_ char *error = NULL;
        int r = image_doc_put(d, e->d_name, NULL, -1, &error);
        if (r >= 0)
            log_info("images: adopted image '%s' (found in %s without a document)", e->d_name,
                     top);
        else if (r != -ENOENT)
            log_warn("images: %s/%s is not adopted: %s", top, e->d_name, error);
    }
    if (dir)
        closedir(dir);
}
