/* images.c: reading the image directories (see images.h). */
#include "daemon/images.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/names.h"
#include "storage/qemu-img.h"
#include "util/util.h"

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
    free(img);
    return NULL;
}

/* A file named inside the image directory; never outside it. */
static char *image_file(const char *dir, const char *rel)
{
    if (!rel)
        return NULL;
    if (!rel[0] || strchr(rel, '/') || !strcmp(rel, "..") || !strcmp(rel, "."))
        return NULL;
    return vo_asprintf("%s/%s", dir, rel);
}

int vo_image_load(const char *state_dir, const char *name, VoImage **ret)
{
    if (!vo_name_valid(name))
        return -ENOENT;
    _cleanup_free_ char *dir = vo_asprintf("%s/images/%s", state_dir, name);
    _cleanup_free_ char *meta = vo_asprintf("%s/image.json", dir);
    json_error_t jerr;
    json_t *doc = json_load_file(meta, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return access(meta, F_OK) == 0 ? -EINVAL : -ENOENT;
    const char *disk = NULL, *format = "raw", *kernel = NULL, *initrd = NULL, *cmdline = NULL;
    int r = json_unpack(doc, "{s:s, s?s, s?s, s?s, s?s}", "disk", &disk, "format", &format,
                        "kernel", &kernel, "initrd", &initrd, "cmdline", &cmdline);
    VoImage *img = vo_malloc0(sizeof(*img));
    if (r == 0) {
        img->name = vo_strdup(name);
        img->disk = image_file(dir, disk);
        img->format = vo_strdup(format);
        img->kernel = image_file(dir, kernel);
        img->initrd = image_file(dir, initrd);
        img->cmdline = vo_strdup(cmdline);
    }
    json_decref(doc);
    struct stat st;
    if (r < 0 || !img->disk || (kernel && !img->kernel) || (initrd && !img->initrd) ||
        (strcmp(img->format, "raw") && strcmp(img->format, "qcow2")) ||
        stat(img->disk, &st) < 0) {
        vo_image_free(img);
        return -EINVAL;
    }
    img->size_bytes = (uint64_t)st.st_size;
    if (!strcmp(img->format, "qcow2")) { /* the disk's size, not the file's */
        VoImgInfo info = { 0 };
        if (vo_img_info(img->disk, "qcow2", &info, NULL) >= 0 && info.n_layers > 0)
            img->size_bytes = info.layers[0].virtual_size;
        vo_img_info_clear(&info);
    }
    *ret = img;
    return 0;
}

int vo_image_boot_file(const char *state_dir, const char *name, bool initrd, char **ret_path,
                       char **ret_error)
{
    const char *what = initrd ? "initrd" : "kernel";
    if (!vo_name_valid(name))
        return vo_error_set(ret_error, -EINVAL, "'%s' is not an image name", name);
    _cleanup_free_ char *dir = vo_asprintf("%s/images/%s", state_dir, name);
    _cleanup_free_ char *meta = vo_asprintf("%s/image.json", dir);
    json_t *doc = json_load_file(meta, JSON_REJECT_DUPLICATES, NULL);
    if (!doc)
        return vo_error_set(ret_error, -ENOENT, "image '%s' does not exist on this host", name);
    _cleanup_free_ char *path = image_file(dir, json_string_value(json_object_get(doc, what)));
    json_decref(doc);
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
    return o;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

json_t *vo_images_list_json(const char *state_dir)
{
    json_t *arr = json_array();
    _cleanup_free_ char *dir = vo_asprintf("%s/images", state_dir);
    DIR *d = opendir(dir);
    if (!d)
        return arr;
    _cleanup_strv_ char **names = NULL;
    struct dirent *de;
    while ((de = readdir(d)))
        if (vo_name_valid(de->d_name))
            vo_strv_push(&names, vo_strdup(de->d_name));
    closedir(d);
    size_t n = vo_strv_len(names);
    if (n)
        qsort(names, n, sizeof(char *), by_name);
    for (size_t i = 0; i < n; i++) {
        VoImage *img = NULL;
        if (vo_image_load(state_dir, names[i], &img) < 0)
            continue;
        json_array_append_new(arr, vo_image_to_json(img));
        vo_image_free(img);
    }
    return arr;
}
