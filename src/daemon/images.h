/* images.h: the images VMs are created from: directories under
 * STATE/images/NAME holding image.json (disk, format, kernel, initrd, cmdline). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char *name;
    char *disk;   /* absolute path of the base disk */
    char *format; /* raw | qcow2 */
    uint64_t size_bytes;
    char *kernel, *initrd, *cmdline; /* absolute paths / text, or NULL */
} VoImage;

/* -ENOENT when the image does not exist, -EINVAL when image.json is unusable. */
int vo_image_load(const char *state_dir, const char *name, VoImage **ret);
VoImage *vo_image_free(VoImage *img);
/* The path of image name's kernel (initrd when initrd) on this host, read
 * from image.json alone (no qemu-img): for starting a VM that boots it.
 * -ENOENT with *ret_error when the image or the file is missing. */
int vo_image_boot_file(const char *state_dir, const char *name, bool initrd, char **ret_path,
                       char **ret_error);
json_t *vo_image_to_json(const VoImage *img);
/* All loadable images, sorted by name (new reference). */
json_t *vo_images_list_json(const char *state_dir);

/* Import: a new image NAME from a disk file (any format qemu-img reads,
 * stored as qcow2) and optional kernel/initrd for direct boot. Runs as a
 * task; nothing appears under images/ until it is complete. */
typedef struct {
    const char *name, *import_path, *kernel_path, *initrd_path, *cmdline;
} VoImageImportArgs;
struct VoDaemon;
int vo_image_import(struct VoDaemon *d, const VoImageImportArgs *args, json_t **ret_task,
                    char **ret_error);
/* Builds image NAME from a disk (converted to qcow2; disk_format NULL probes)
 * and optional boot files; it appears under images/ only once complete. */
typedef struct {
    const char *name, *disk_path, *disk_format, *kernel, *initrd, *cmdline;
    const char *template_of; /* the VM it was made from, informational */
} VoImageBuild;
struct VoTask;
int vo_image_build(struct VoDaemon *d, const VoImageBuild *b, struct VoTask *t, char **ret_error);

/* Holds image name for one build (an import or a template) from the
 * request until the build ended: -EEXIST when the image exists or another
 * build holds the name, so parallel builds of one name never share a build
 * directory. vo_image_name_release gives it back. */
int vo_image_name_claim(struct VoDaemon *d, const char *name, char **ret_error);
void vo_image_name_release(struct VoDaemon *d, const char *name);

/* Refused while VMs or detached linked clones use it. */
int vo_image_delete(struct VoDaemon *d, const char *name, char **ret_error);
