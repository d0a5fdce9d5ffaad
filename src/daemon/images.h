/* images.h: the images VMs are created from. An image is a store document
 * "images/NAME" (name, disk and boot file names, format, size, cmdline,
 * created_at: see the key layout in docs/internals.md), which listing and
 * lookups read, and a directory STATE/images/NAME holding image.json and
 * those files. Files come first and the document after (an import commits
 * by writing it); a delete moves the files away first and deletes the
 * document after. At start, directories without a document are adopted and
 * documents without their files removed (vo_images_load). */
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
    char *pool; /* the shared pool it is kept in, or NULL: this host's */
    char *firmware; /* "bios" | "uefi": what its VMs boot by default, or NULL */
    bool cloud_init; /* its VMs get a cloud-init seed by default */
} VoImage;

/* An image kept in a shared pool (POST /v1/images with "pool") is the
 * cluster's: its files are POOL_PATH/.images/NAME and its document
 * cluster/images/NAME (the image document plus "pool"), so every host that
 * reaches the pool sees and uses it. A host's own images/NAME comes first
 * when both exist. */
#define VO_SHARED_IMAGES_PREFIX "cluster/images/"

struct VoDaemon;

/* Image name as its document says (paths resolved on this host), and the
 * document's revision (may be NULL). -ENOENT when there is no document,
 * -EINVAL when it is unusable. */
int vo_image_get(struct VoDaemon *d, const char *name, VoImage **ret, int64_t *ret_rev);
VoImage *vo_image_free(VoImage *img);
/* An image document's text (key name) as a VoImage, its files' paths
 * resolved on this host (where they are, or will be once copied). */
int vo_image_from_doc(struct VoDaemon *d, const char *name, const char *text, VoImage **ret);
/* The path of image name's kernel (initrd when initrd) on this host, for
 * starting a VM that boots it. -ENOENT with *ret_error when the image or the
 * file is missing. */
int vo_image_boot_file(struct VoDaemon *d, const char *name, bool initrd, char **ret_path,
                       char **ret_error);
json_t *vo_image_to_json(const VoImage *img);
/* All images, sorted by name (new reference), from the store. */
json_t *vo_images_list_json(struct VoDaemon *d);
/* Writes image name's document (create-only) from its directory, which is
 * complete and in place. */
int vo_image_record(struct VoDaemon *d, const char *name, char **ret_error);
/* The same for an image in shared pool pool (NULL: this host's). */
int vo_image_record_in(struct VoDaemon *d, const char *name, const char *pool, char **ret_error);
/* Where images live: STATE/images (pool NULL) or SHARED_POOL/.images
 * (malloc'd; NULL when pool is not a shared pool). */
#define VO_SHARED_IMAGES_DIR ".images"
char *vo_images_top(struct VoDaemon *d, const char *pool);
/* At start, after the sweep and before VMs are loaded: documents whose files
 * are gone are removed; image directories without a document are adopted. */
void vo_images_load(struct VoDaemon *d);

/* Import: a new image NAME from a disk file (any format qemu-img reads,
 * stored as qcow2) and optional kernel/initrd for direct boot. Runs as a
 * task; nothing appears under images/ until it is complete, and the image
 * exists once its document is written. */
typedef struct {
    const char *name, *import_path, *kernel_path, *initrd_path, *cmdline;
    const char *pool; /* a shared pool to keep it in, or NULL: this host */
} VoImageImportArgs;
int vo_image_import(struct VoDaemon *d, const VoImageImportArgs *args, json_t **ret_task,
                    char **ret_error);
/* Builds image NAME from a disk (converted to qcow2; disk_format NULL probes)
 * and optional boot files; it appears under images/ only once complete. */
typedef struct {
    const char *name, *disk_path, *disk_format, *kernel, *initrd, *cmdline;
    const char *template_of; /* the VM it was made from, informational */
    const char *pool;        /* a shared pool to keep it in, or NULL */
} VoImageBuild;
struct VoTask;
int vo_image_build(struct VoDaemon *d, const VoImageBuild *b, struct VoTask *t, char **ret_error);

/* Holds image name for one build (an import or a template) from the
 * request until the build ended: -EEXIST when the image exists or another
 * build holds the name, so parallel builds of one name never share a build
 * directory. vo_image_name_release gives it back. */
int vo_image_name_claim(struct VoDaemon *d, const char *name, char **ret_error);
void vo_image_name_release(struct VoDaemon *d, const char *name);
/* -EBUSY with *ret_error when a task holds image name (its delete, a build
 * or a copy): a VM disk made from it waits for none of them. A delete holds
 * the name before it counts the image's users, and a VM create records its
 * image before it asks here, so one of the two always sees the other. */
int vo_image_name_check_free(struct VoDaemon *d, const char *name, char **ret_error);

/* A built image directory moved into place, never over one that is there
 * (-EEXIST or -ENOTEMPTY then); and one taken away again when its document
 * could not be written (back to tmp_dir, or aside, then removed). */
int vo_image_dir_rename(const char *from, const char *to);
void vo_image_dir_discard(const char *top, const char *name, const char *final_dir,
                          const char *tmp_dir);

/* Copy on first use (image-copy.c). In a cluster, an image this host does
 * not have (neither its own nor in a shared pool it reaches) but another
 * host has as its own: the first one of those hosts (online first) and its
 * document as a VoImage whose paths are where the copy will put the files
 * here. 0, -ENOENT (no host has it), or the store's error. */
int vo_image_find_elsewhere(struct VoDaemon *d, const char *name, VoImage **ret,
                            char **ret_host_name);
/* Image name wherever the cluster has it: vo_image_get (this host's own, or
 * a shared pool's), else vo_image_find_elsewhere (another host's own, as
 * the copy will put it here). A create reads it so; a cluster's create
 * reads it before placement too, for the image's firmware preference. */
int vo_image_find_anywhere(struct VoDaemon *d, const char *name, VoImage **ret);
/* Makes image name usable on this host: 0 at once when it is (its own, or
 * in a shared pool), else copies it from a host that has it over the peer
 * API (manifest, then each file into STATE/images/.build-NAME, its size and
 * SHA-256 checked, renamed into place, then its document written). Two
 * calls for one missing image copy it once: the second waits for the first.
 * t (may be NULL): the task to show the copy's progress on (percent from
 * 5 to 29). -ENOENT when no host has it; -EIO (a transfer that does not
 * match its manifest), -EHOSTUNREACH or another -errno, with *ret_error;
 * nothing of a failed copy is left. Live migration calls it for the base
 * image of a linked clone. */
int vo_image_ensure_local(struct VoDaemon *d, const char *name, struct VoTask *t,
                          char **ret_error);

/* Refused while VMs or detached linked clones use it. Holds the name like a
 * build (another build or delete of it meanwhile gets -EEXIST/-EBUSY). */
/* expected: If-Match (0: none), compared with the image document's revision. */
int vo_image_delete(struct VoDaemon *d, const char *name, int64_t expected, char **ret_error);
