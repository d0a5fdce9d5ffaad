/* image-files-api.c: the files of this host's own images, for the other
 * hosts of its cluster only (copy on first use: daemon/image-copy.c):
 *   GET /v1/images/{image}/files         the manifest: each file's name,
 *                                        size and SHA-256 (hashed now)
 *   GET /v1/images/{image}/files/{file}  one of those files, streamed
 * Served only over the mutual-TLS listener (a peer with a certificate of
 * the cluster CA); only the files the image's image.json names, by plain
 * name, never anything else of or outside the image directory. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "api/handlers.h"
#include "conf/names.h"
#include "daemon/daemon.h"
#include "storage/image-files.h"
#include "util/sha256.h"
#include "util/util.h"

/* Test hook: the manifest of this image gets a wrong digest for its disk,
 * as a file changed under the copy would (tests/e2e/test_cluster_images.py). */
#define CORRUPT_ENV "VIREO_TEST_IMAGE_COPY_CORRUPT"

/* Peer routes answer only a cluster member (http.h). */
static bool from_peer(VoRequest *req, VoReply *rep)
{
    return vo_request_from_member(req, rep, NULL);
}

/* The image.json of this host's own image name, or NULL with rep filled. */
static json_t *own_image_meta(VoRequest *req, VoReply *rep, const char *name, char **ret_dir)
{
    _cleanup_free_ char *key = vo_asprintf("images/%s", name);
    _cleanup_free_ char *dir = vo_asprintf("%s/images/%s", req->d->state_dir, name);
    _cleanup_free_ char *path = vo_asprintf("%s/" VO_IMAGE_META_FILE, dir);
    json_t *meta = NULL;
    if (!vo_name_valid(name) || vo_store_get(req->d->store, key, NULL, NULL) < 0 ||
        !(meta = json_load_file(path, JSON_REJECT_DUPLICATES, NULL))) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "image '%s' is not one of this host's own", name);
        return NULL;
    }
    *ret_dir = TAKE_PTR(dir);
    return meta;
}

/* Opens dir/file read-only, a regular file and no symlink. */
static int open_file(const char *dir, const char *file, struct stat *st)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return -errno;
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -EINVAL;
    }
    return fd;
}

void vo_api_image_files(VoRequest *req, VoReply *rep)
{
    const char *name = req->params[0];
    _cleanup_free_ char *dir = NULL, *error = NULL;
    char **names = NULL;
    if (!from_peer(req, rep))
        return;
    json_t *meta = own_image_meta(req, rep, name, &dir);
    if (!meta)
        return;
    int r = vo_image_files_of(meta, &names, &error);
    json_t *disk = json_incref(json_object_get(meta, "disk"));
    json_decref(meta);
    if (r < 0) {
        json_decref(disk);
        vo_reply_error(rep, VO_ERR_INTERNAL, "image '%s': %s", name, error);
        return;
    }
    const char *corrupt = getenv(CORRUPT_ENV);
    const char *bad = NULL; /* the file that cannot be served */
    json_t *files = json_array();
    for (char **s = names; *s && r >= 0; s++) {
        struct stat st;
        char hex[VO_SHA256_HEX_LEN + 1];
        _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, *s);
        int fd = open_file(dir, *s, &st);
        if (fd < 0) {
            r = fd;
            bad = *s;
            break;
        }
        close(fd);
        if ((r = vo_sha256_file(path, hex)) < 0) {
            bad = *s;
            break;
        }
        if (corrupt && !strcmp(corrupt, name) && !strcmp(*s, json_string_value(disk)))
            hex[0] = hex[0] == '0' ? '1' : '0';
        json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", *s, "size_bytes",
                                               (json_int_t)st.st_size, "sha256", hex));
    }
    json_decref(disk);
    if (r < 0) {
        /* Named, with what to fix: only regular files of the image
         * directory are served (a symlink could lead anywhere). */
        vo_reply_error(rep, r == -ENOENT ? VO_ERR_NOT_FOUND : VO_ERR_INTERNAL,
                       "image '%s': its file '%s' (%s/%s) cannot be sent to another host: %s",
                       name, bad ? bad : "?", dir, bad ? bad : "?",
                       r == -ELOOP    ? "it is a symbolic link; only regular files are sent "
                                        "(replace the link with the file itself)"
                       : r == -EINVAL ? "it is not a regular file"
                                      : strerror(-r));
        json_decref(files);
    } else
        vo_reply_json(rep, 200, json_pack("{s:s, s:s?, s:o}", "image", name, "host",
                                          req->d->host_name, "files", files));
    vo_strv_free(names);
}

void vo_api_image_file(VoRequest *req, VoReply *rep)
{
    const char *name = req->params[0], *file = req->params[1];
    _cleanup_free_ char *dir = NULL;
    if (!from_peer(req, rep))
        return;
    json_t *meta = own_image_meta(req, rep, name, &dir);
    if (!meta)
        return;
    bool named = vo_image_file_named(meta, file);
    json_decref(meta);
    if (!named) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "image '%s' has no file '%s' (its files are "
                       "those its " VO_IMAGE_META_FILE " names)", name, file);
        return;
    }
    struct stat st;
    int fd = open_file(dir, file, &st);
    if (fd < 0) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "image '%s': cannot open '%s': %s", name, file,
                       strerror(-fd));
        return;
    }
    rep->file_fd = fd;
    rep->file_size = (uint64_t)st.st_size;
}
