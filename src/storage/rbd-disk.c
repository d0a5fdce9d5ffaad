/* rbd-disk.c: VM disks on RBD images for QEMU's rbd driver (see rbd-disk.h). */
#include "storage/rbd-disk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

void vo_rbd_disk_clear(VoRbdDisk *d)
{
    free(d->pool);
    free(d->image);
    free(d->user);
    free(d->key_file);
    json_decref(d->servers);
    *d = (VoRbdDisk){ 0 };
}

json_t *vo_rbd_servers(const char *monitors)
{
    if (!monitors || !*monitors)
        return NULL;
    json_t *out = json_array();
    _cleanup_free_ char *copy = vo_strdup(monitors);
    char *save = NULL;
    for (char *m = strtok_r(copy, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        const char *host = m, *port = "6789";
        if (m[0] == '[') {
            char *end = strchr(m, ']');
            if (!end) {
                json_decref(out);
                return NULL;
            }
            *end = 0;
            host = m + 1;
            if (end[1] == ':')
                port = end + 2;
        } else {
            char *colon = strchr(m, ':');
            if (colon) {
                *colon = 0;
                port = colon + 1;
            }
        }
        json_array_append_new(out, json_pack("{s:s, s:s}", "host", host, "port", port));
    }
    return out;
}

int vo_rbd_disk_of_path(const char *path, VoRbdDisk *ret)
{
    *ret = (VoRbdDisk){ 0 };
    const char *slash = path ? strrchr(path, '/') : NULL;
    size_t n = slash ? strlen(slash + 1) : 0;
    if (!slash || n <= 4 || strcmp(slash + 1 + n - 4, ".raw"))
        return 0;
    _cleanup_free_ char *dir = strndup(path, (size_t)(slash - path));
    _cleanup_free_ char *conf = vo_asprintf("%s/ceph.json", dir);
    if (access(conf, F_OK) < 0)
        return 0;
    json_error_t jerr;
    json_t *doc = json_load_file(conf, 0, &jerr);
    const char *monitors = NULL, *pool = NULL, *user = NULL;
    if (!doc || json_unpack(doc, "{s:s, s:s, s:s}", "monitors", &monitors, "pool", &pool,
                            "user", &user) < 0) {
        json_decref(doc);
        return -EINVAL;
    }
    json_t *servers = vo_rbd_servers(monitors);
    if (!servers) {
        json_decref(doc);
        return -EINVAL;
    }
    *ret = (VoRbdDisk){ .pool = vo_strdup(pool), .image = strndup(slash + 1, n - 4),
                        .user = vo_strdup(user), .key_file = vo_asprintf("%s/key", dir),
                        .servers = servers };
    json_decref(doc);
    return 1;
}

json_t *vo_rbd_disk_blockdev(const VoRbdDisk *d, const char *node_name, const char *secret_id,
                             bool readonly)
{
    /* auth-client-required cephx: never fall back to no authentication. */
    return json_pack("{s:s, s:s, s:s, s:s, s:O, s:s, s:s, s:[s], s:b, s:s}", "driver", "rbd",
                     "node-name", node_name, "pool", d->pool, "image", d->image, "server",
                     d->servers, "user", d->user, "key-secret", secret_id,
                     "auth-client-required", "cephx", "read-only", readonly, "discard", "unmap");
}

json_t *vo_rbd_disk_secret(const VoRbdDisk *d, const char *secret_id)
{
    /* format base64: the file holds the key as Ceph writes it; QEMU decodes
     * it and hands librados the base64 again. */
    return json_pack("{s:s, s:s, s:s, s:s}", "qom-type", "secret", "id", secret_id, "format",
                     "base64", "file", d->key_file);
}

int vo_rbd_disk_write_conf(const char *pool_dir, const char *monitors, const char *pool,
                           const char *user)
{
    _cleanup_free_ char *path = vo_asprintf("%s/ceph.json", pool_dir);
    json_t *doc = json_pack("{s:s, s:s, s:s}", "monitors", monitors, "pool", pool, "user", user);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    int r = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return r;
}
