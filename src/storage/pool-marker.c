/* pool-marker.c: a shared pool's marker file (see pool-marker.h). */
#include "storage/pool-marker.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

static char *marker_path(const char *dir)
{
    return vo_asprintf("%s/%s", dir, VO_POOL_MARKER_FILE);
}

int vo_pool_marker_read(const char *dir, char **ret_id, char **ret_name)
{
    *ret_id = *ret_name = NULL;
    struct stat st;
    if (stat(dir, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    _cleanup_free_ char *path = marker_path(dir);
    _cleanup_free_ char *text = NULL;
    int r = vo_read_file(path, 4096, &text, NULL);
    if (r < 0)
        return r;
    json_t *doc = json_loads(text, 0, NULL);
    const char *id = NULL, *name = NULL;
    if (!doc || json_unpack(doc, "{s:s, s:s}", "id", &id, "name", &name) < 0 || !id[0]) {
        json_decref(doc);
        return -EBADMSG;
    }
    *ret_id = vo_strdup(id);
    *ret_name = vo_strdup(name);
    json_decref(doc);
    return 0;
}

int vo_pool_marker_write(const char *dir, const char *id, const char *name,
                         char **ret_error)
{
    _cleanup_free_ char *path = marker_path(dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) {
        _cleanup_free_ char *other_id = NULL, *other_name = NULL;
        if (vo_pool_marker_read(dir, &other_id, &other_name) >= 0)
            return vo_error_set(ret_error, -EEXIST, "path: '%s' is already shared pool '%s' "
                                "(id %s, marker %s): use that pool, or another directory",
                                dir, other_name, other_id, path);
        return vo_error_set(ret_error, -EEXIST, "path: '%s' already holds %s, which is not "
                            "a pool marker vireo can read: remove it if no pool uses the "
                            "directory", dir, path);
    }
    if (fd < 0)
        return vo_error_set(ret_error, -errno, "cannot write the pool marker %s: %s", path,
                            strerror(errno));
    json_t *doc = json_pack("{s:s, s:s, s:I}", "id", id, "name", name, "created_at",
                            (json_int_t)vo_wall_ms());
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    size_t len = strlen(text);
    int r = 0;
    if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) < 0)
        r = -(errno ? errno : EIO);
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r < 0) {
        (void)unlink(path);
        return vo_error_set(ret_error, r, "cannot write the pool marker %s: %s", path,
                            strerror(-r));
    }
    return 0;
}

void vo_pool_marker_remove(const char *dir, const char *id)
{
    _cleanup_free_ char *other_id = NULL, *other_name = NULL;
    if (vo_pool_marker_read(dir, &other_id, &other_name) < 0 || strcmp(other_id, id))
        return;
    _cleanup_free_ char *path = marker_path(dir);
    (void)unlink(path);
}

VoPoolReach vo_pool_marker_check(const char *dir, const char *id, char **ret_reason)
{
    *ret_reason = NULL;
    _cleanup_free_ char *other_id = NULL, *other_name = NULL;
    int r = vo_pool_marker_read(dir, &other_id, &other_name);
    if (r == -ENOTDIR || (r == -ENOENT && access(dir, F_OK) < 0)) {
        *ret_reason = vo_asprintf("path %s is missing or not a directory on this host: mount "
                                  "the shared directory there", dir);
        return VO_POOL_NO_PATH;
    }
    if (r == -ENOENT) {
        *ret_reason = vo_asprintf("%s has no pool marker (%s): it is not the shared "
                                  "directory here; mount it at %s", dir, VO_POOL_MARKER_FILE,
                                  dir);
        return VO_POOL_NO_MARKER;
    }
    if (r < 0) {
        *ret_reason = vo_asprintf("cannot read the pool marker in %s: %s", dir,
                                  r == -EBADMSG ? "not a vireo pool marker" : strerror(-r));
        return VO_POOL_BAD_MARKER;
    }
    if (strcmp(other_id, id)) {
        *ret_reason = vo_asprintf("%s holds the marker of another pool ('%s', id %s): mount "
                                  "this pool's directory there", dir, other_name, other_id);
        return VO_POOL_OTHER_MARKER;
    }
    return VO_POOL_REACHABLE;
}

const char *vo_pool_reach_to_string(VoPoolReach r)
{
    switch (r) {
    case VO_POOL_REACHABLE: return "reachable";
    case VO_POOL_NO_PATH: return "no-path";
    case VO_POOL_NO_MARKER: return "no-marker";
    case VO_POOL_OTHER_MARKER: return "other-pool";
    case VO_POOL_BAD_MARKER: return "bad-marker";
    case VO_POOL_NO_CLUSTER: return "no-cluster";
    }
    return "unknown";
}
