/* volume-path.c: volume keys and file names, the check that a path really is
 * a regular file directly inside its pool directory once every symlink is
 * resolved, and pool space (see volume-path.h). */
#include "storage/volume-path.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "conf/names.h"
#include "storage/iscsi-url.h"
#include "util/util.h"

int vo_volume_key_split(const char *key, char **ret_pool, char **ret_name)
{
    if (!key)
        return -EINVAL;
    const char *slash = strchr(key, '/');
    if (!slash)
        return -EINVAL;
    _cleanup_free_ char *pool = strndup(key, (size_t)(slash - key));
    if (!pool)
        abort();
    const char *name = slash + 1;
    /* Valid names hold no '/', so "a/b/c" fails here too. */
    if (!vo_name_valid(pool) || !vo_name_valid(name))
        return -EINVAL;
    *ret_pool = TAKE_PTR(pool);
    *ret_name = vo_strdup(name);
    return 0;
}

/* Volume lunN of an iSCSI pool (its path an iscsi:// string): the LUN's
 * string, whatever its format (a qcow2 layer lies on the LUN itself). */
static char *lun_path(const char *pool_url, const char *name)
{
    VoIscsiUrl u;
    char *end = NULL;
    if (strncmp(name, "lun", 3) || !isdigit((unsigned char)name[3]) ||
        (name[3] == '0' && name[4]) || vo_iscsi_url_parse(pool_url, &u) < 0)
        return NULL;
    long lun = strtol(name + 3, &end, 10);
    char *path = NULL;
    if (*end == 0 && lun >= 0 && lun <= 65535 && u.lun < 0) {
        u.lun = (int)lun;
        path = vo_iscsi_url_format(&u);
    }
    vo_iscsi_url_clear(&u);
    return path;
}

char *vo_volume_path(const char *pool_dir, const char *name, const char *format)
{
    if (!pool_dir || !pool_dir[0] || !vo_name_valid(name) || !format)
        return NULL;
    if (strcmp(format, "qcow2") != 0 && strcmp(format, "raw") != 0)
        return NULL;
    if (vo_iscsi_url_is(pool_dir))
        return lun_path(pool_dir, name);
    size_t len = strlen(pool_dir);
    while (len > 1 && pool_dir[len - 1] == '/')
        len--;
    if (len == 1 && pool_dir[0] == '/')
        return vo_asprintf("/%s.%s", name, format);
    return vo_asprintf("%.*s/%s.%s", (int)len, pool_dir, name, format);
}

/* Splits a resolved absolute path into its directory ("/" for the root) and
 * compares that with dir. */
static bool parent_is(const char *resolved, const char *dir)
{
    const char *slash = strrchr(resolved, '/');
    if (!slash)
        return false;
    size_t len = slash == resolved ? 1 : (size_t)(slash - resolved);
    return strlen(dir) == len && strncmp(resolved, dir, len) == 0;
}

bool vo_path_inside(const char *pool_dir, const char *path)
{
    if (!pool_dir || !pool_dir[0] || !path || !path[0])
        return false;
    if (vo_iscsi_url_is(path)) { /* a LUN: no file, no symlink to follow */
        VoIscsiUrl u;
        if (vo_iscsi_url_parse(path, &u) < 0)
            return false;
        bool lun = u.lun >= 0;
        vo_iscsi_url_clear(&u);
        return lun && vo_iscsi_url_is(pool_dir);
    }
    char dir[PATH_MAX];
    if (!realpath(pool_dir, dir))
        return false;

    char resolved[PATH_MAX];
    if (realpath(path, resolved)) {
        struct stat st;
        return parent_is(resolved, dir) && lstat(resolved, &st) == 0 && S_ISREG(st.st_mode);
    }
    if (errno != ENOENT)
        return false;

    /* Missing: but a dangling symlink is "missing" too, and writing through it
     * would create its target wherever it points. Only a true absence passes. */
    struct stat st;
    if (lstat(path, &st) == 0 || errno != ENOENT)
        return false;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return false;
    _cleanup_free_ char *parent = !slash ? vo_strdup(".")
                                 : slash == path ? vo_strdup("/")
                                                 : strndup(path, (size_t)(slash - path));
    if (!parent)
        abort();
    char parent_resolved[PATH_MAX];
    if (!realpath(parent, parent_resolved) || strcmp(parent_resolved, dir) != 0)
        return false;
    /* The resolved name must be missing as well. */
    _cleanup_free_ char *full = vo_asprintf("%s/%s", strcmp(dir, "/") == 0 ? "" : dir, base);
    return lstat(full, &st) < 0 && errno == ENOENT;
}

int vo_fs_usage(const char *path, unsigned long long *ret_capacity,
                unsigned long long *ret_available, unsigned long long *ret_used)
{
    if (!path)
        return -EINVAL;
    struct statvfs sv;
    if (statvfs(path, &sv) < 0)
        return -errno;
    unsigned long long frsize = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
    if (ret_capacity)
        *ret_capacity = (unsigned long long)sv.f_blocks * frsize;
    if (ret_available)
        *ret_available = (unsigned long long)sv.f_bavail * frsize;
    if (ret_used)
        *ret_used = (unsigned long long)(sv.f_blocks - sv.f_bfree) * frsize;
    return 0;
}
