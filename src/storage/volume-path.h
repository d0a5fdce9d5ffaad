/* volume-path.h: where a volume lives in its pool, and the checks that keep
 * every volume file inside its pool directory. */
#pragma once

#include <stdbool.h>

/* "POOL/NAME" -> pool and name, both valid names (see conf/names.h). Returns
 * 0 or -EINVAL. *ret_pool and *ret_name are malloc'd. */
int vo_volume_key_split(const char *key, char **ret_pool, char **ret_name);

/* POOL_DIR/NAME.EXT for a valid name and format ("qcow2" -> .qcow2, "raw" -> .raw);
 * NULL when the name or format is invalid. */
char *vo_volume_path(const char *pool_dir, const char *name, const char *format);

/* True when path, with every symlink resolved, is a regular file directly
 * inside pool_dir (also resolved). Missing files are resolved by their parent.
 * Guards against symlinks planted in a pool pointing elsewhere. */
bool vo_path_inside(const char *pool_dir, const char *path);

/* Free bytes for an unprivileged writer at path (statvfs), and totals. */
int vo_fs_usage(const char *path, unsigned long long *ret_capacity,
                unsigned long long *ret_available, unsigned long long *ret_used);
