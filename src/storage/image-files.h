/* image-files.h: the files of an image as they travel between the hosts of
 * a cluster (copy on first use, docs/cluster.md "Images and pools"): which
 * names may be asked for and written (plain names from the image's record,
 * never a path out of the image directory), and the manifest the sending
 * host answers (each file's name, size and SHA-256). Pure: no I/O. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/sha256.h"

/* The image's own description, sent and written first. */
#define VO_IMAGE_META_FILE "image.json"

/* A plain file name: 1-255 bytes, no '/', not "." or "..", no control
 * characters, not starting with '.' (the build and delete directories'). */
bool vo_image_file_name_ok(const char *name);

/* The files of the image that meta (its image.json) describes: image.json,
 * the disk, and the kernel and initrd when named; NULL-terminated, malloc'd
 * (vo_strv_free). -EINVAL with *ret_error when a name is missing or not
 * plain. */
int vo_image_files_of(json_t *meta, char ***ret_names, char **ret_error);

/* Whether file is one of the files meta names (what the sending host
 * serves: nothing else of, or outside, the image directory). */
bool vo_image_file_named(json_t *meta, const char *file);

typedef struct {
    char *name;
    uint64_t size;
    char sha256[VO_SHA256_HEX_LEN + 1];
} VoImageFile;

typedef struct {
    VoImageFile *files;
    size_t n_files;
} VoImageManifest;

void vo_image_manifest_clear(VoImageManifest *m);

/* Reads a manifest ({"image": NAME, "files": [{"name", "size_bytes",
 * "sha256"}]}) for image name: every name plain and listed once, image.json
 * among them, sizes non-negative, digests 64 lower-case hex digits, at most
 * 8 files. -EINVAL with *ret_error saying what is wrong. */
int vo_image_manifest_parse(json_t *doc, const char *name, VoImageManifest *ret,
                            char **ret_error);

/* Whether hex is 64 lower-case hex digits. */
bool vo_sha256_hex_ok(const char *hex);
