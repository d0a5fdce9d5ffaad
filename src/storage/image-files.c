/* image-files.c: names and manifests of the files an image is copied with
 * between hosts (see image-files.h). */
#include "storage/image-files.h"

#include <string.h>

#include "util/util.h"

#define MAX_FILES 8

bool vo_image_file_name_ok(const char *name)
{
    if (!name || !*name || strlen(name) > 255 || name[0] == '.')
        return false;
    for (const char *p = name; *p; p++)
        if (*p == '/' || (unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

int vo_image_files_of(json_t *meta, char ***ret_names, char **ret_error)
{
    static const char *const keys[] = { "disk", "kernel", "initrd" };
    char **names = NULL;
    vo_strv_pushf(&names, "%s", VO_IMAGE_META_FILE);
    for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
        json_t *v = json_object_get(meta, keys[i]);
        if (!v && i > 0)
            continue;
        const char *file = json_string_value(v);
        if (!vo_image_file_name_ok(file) || !strcmp(file, VO_IMAGE_META_FILE)) {
            vo_strv_free(names);
            return vo_error_set(ret_error, -EINVAL, "%s: its %s is %s%s%s, not a plain file "
                                "name in the image directory", VO_IMAGE_META_FILE, keys[i],
                                file ? "'" : "", file ? file : "missing", file ? "'" : "");
        }
        bool dup = false;
        for (char **s = names; *s && !dup; s++)
            dup = !strcmp(*s, file);
        if (!dup)
            vo_strv_pushf(&names, "%s", file);
    }
    *ret_names = names;
    return 0;
}

bool vo_image_file_named(json_t *meta, const char *file)
{
    char **names = NULL;
    _cleanup_free_ char *error = NULL;
    if (!vo_image_file_name_ok(file) || vo_image_files_of(meta, &names, &error) < 0)
        return false;
    bool found = false;
    for (char **s = names; *s && !found; s++)
        found = !strcmp(*s, file);
    vo_strv_free(names);
    return found;
}

void vo_image_manifest_clear(VoImageManifest *m)
{
    for (size_t i = 0; i < m->n_files; i++)
        free(m->files[i].name);
    free(m->files);
    memset(m, 0, sizeof(*m));
}

bool vo_sha256_hex_ok(const char *hex)
{
    if (!hex || strlen(hex) != VO_SHA256_HEX_LEN)
        return false;
    for (const char *p = hex; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

int vo_image_manifest_parse(json_t *doc, const char *name, VoImageManifest *ret,
                            char **ret_error)
{
    VoImageManifest m = { 0 };
    const char *image = json_string_value(json_object_get(doc, "image"));
    json_t *files = json_object_get(doc, "files");
    if (!image || strcmp(image, name))
        return vo_error_set(ret_error, -EINVAL, "the manifest is not image '%s''s", name);
    if (!json_is_array(files) || json_array_size(files) == 0 ||
        json_array_size(files) > MAX_FILES)
        return vo_error_set(ret_error, -EINVAL, "the manifest of image '%s' lists no files, or "
                            "more than %d", name, MAX_FILES);
    m.files = vo_malloc0(sizeof(VoImageFile) * json_array_size(files));
    bool has_meta = false;
    int r = 0;
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        const char *file = json_string_value(json_object_get(f, "name"));
        const char *sha = json_string_value(json_object_get(f, "sha256"));
        json_t *size = json_object_get(f, "size_bytes");
        if (!vo_image_file_name_ok(file)) {
            r = vo_error_set(ret_error, -EINVAL, "the manifest of image '%s' names '%s', not a "
                             "plain file name", name, file ? file : "(none)");
            break;
        }
        for (size_t k = 0; k < m.n_files && r == 0; k++)
            if (!strcmp(m.files[k].name, file))
                r = vo_error_set(ret_error, -EINVAL, "the manifest of image '%s' lists '%s' "
                                 "twice", name, file);
        if (r == 0 && (!json_is_integer(size) || json_integer_value(size) < 0 ||
                       !vo_sha256_hex_ok(sha)))
            r = vo_error_set(ret_error, -EINVAL, "the manifest of image '%s': file '%s' has "
                             "no size or SHA-256", name, file);
        if (r < 0)
            break;
        VoImageFile *out = &m.files[m.n_files++];
        out->name = vo_strdup(file);
        out->size = (uint64_t)json_integer_value(size);
        memcpy(out->sha256, sha, VO_SHA256_HEX_LEN + 1);
        has_meta = has_meta || !strcmp(file, VO_IMAGE_META_FILE);
    }
    if (r == 0 && !has_meta)
        r = vo_error_set(ret_error, -EINVAL, "the manifest of image '%s' has no %s", name,
                         VO_IMAGE_META_FILE);
    if (r < 0) {
        vo_image_manifest_clear(&m);
        return r;
    }
    *ret = m;
    return 0;
}
