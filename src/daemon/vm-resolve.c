/* vm-resolve.c: a VM spec's names (volumes, images) turned into this host's
 * paths for the driver, and definitions written when specs held paths turned
 * into names (see "Specs and paths" in docs/internals.md). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "conf/names.h"
#include "daemon/images.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "storage/volume-path.h"
#include "util/util.h"

/* A volume's file, checked again as when it was made (vo_path_inside): a
 * regular file of its pool, not a symlink swapped in since to elsewhere. */
static int volume_path(void *userdata, const char *key, char **ret_path, char **ret_error)
{
    _cleanup_free_ char *format = NULL, *path = NULL;
    int r = vo_volume_lookup(userdata, key, &path, &format, NULL, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *pool_dir = vo_strdup(path);
    char *slash = strrchr(pool_dir, '/');
    if (slash)
        *slash = 0;
    if (!slash || !vo_path_inside(pool_dir, path))
        return vo_error_set(ret_error, -EBUSY, "its file %s is not a regular file of its pool "
                            "%s (a symlink to outside its pool, say): refusing it", path,
                            pool_dir);
    *ret_path = TAKE_PTR(path);
    return 0;
}

static int image_file(void *userdata, const char *image, bool initrd, char **ret_path,
                      char **ret_error)
{
    VoDaemon *d = userdata;
    return vo_image_boot_file(d, image, initrd, ret_path, ret_error);
}

int vo_vm_resolve(VoDaemon *d, const VoVmSpec *spec, VoVmSpec **ret, char **ret_error)
{
    VoSpecResolver res = { .volume_path = volume_path, .image_file = image_file, .userdata = d };
    int r = vo_vm_spec_resolve(spec, &res, ret, ret_error);
    /* cloud-init: the seed ISO, (re)made here so every start (and a
     * migration's target) has the one of the current settings. */
    if (r >= 0 && spec->cloud_init &&
        (r = vo_vm_cloud_init_seed(d, spec, &(*ret)->cloud_init_path, ret_error)) < 0)
        *ret = vo_vm_spec_free(*ret);
    return r;
}

/* ---- definitions with paths (written before specs named things) ------------ */

static char *volume_of(void *userdata, const char *path)
{
    return vo_volume_key_of_path(userdata, path);
}

/* STATE/images/NAME/FILE where FILE is the image's kernel (initrd): NAME. */
static char *image_of(void *userdata, const char *path, bool initrd)
{
    VoDaemon *d = userdata;
    _cleanup_free_ char *images = vo_asprintf("%s/images/", d->state_dir);
    if (strncmp(path, images, strlen(images)))
        return NULL;
    const char *name = path + strlen(images), *slash = strchr(name, '/');
    _cleanup_free_ char *image = slash ? strndup(name, (size_t)(slash - name)) : NULL;
    _cleanup_free_ char *file = NULL, *error = NULL;
    if (!image || !vo_name_valid(image) ||
        vo_image_boot_file(d, image, initrd, &file, &error) < 0)
        return NULL;
    char a[PATH_MAX], b[PATH_MAX];
    bool same = !strcmp(file, path) ||
                (realpath(file, a) && realpath(path, b) && !strcmp(a, b));
    return same ? TAKE_PTR(image) : NULL;
}

int vo_vm_spec_upgrade(VoDaemon *d, json_t *doc, bool *ret_changed, char ***ret_problems)
{
    VoSpecNamer namer = { .volume_of = volume_of, .image_of = image_of, .userdata = d };
    return vo_vm_spec_upgrade_json(doc, &namer, ret_changed, ret_problems);
}

/* ---- views for the API -------------------------------------------------------- */

void vo_vm_json_add_disk_paths(VoDaemon *d, json_t *disks)
{
    size_t i;
    json_t *disk;
    json_array_foreach(disks, i, disk) {
        const char *key = json_string_value(json_object_get(disk, "volume"));
        _cleanup_free_ char *path = NULL, *error = NULL;
        if (key && volume_path(d, key, &path, &error) >= 0)
            json_object_set_new(disk, "path", json_string(path));
        else
            json_object_set_new(disk, "path", json_null());
    }
}
