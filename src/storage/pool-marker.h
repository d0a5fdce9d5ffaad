/* pool-marker.h: the marker file of a shared pool. A shared pool is a
 * directory every host mounts at the same path (NFS, say); the host that
 * creates the pool writes PATH/.vireo-pool.json = {"id", "name",
 * "created_at"} (created exclusively: a directory already marked is another
 * pool's), and every host checks that it sees the marker with the pool's id
 * before it counts the pool as reachable. No daemon state here: files only. */
#pragma once

#include <stdbool.h>

#define VO_POOL_MARKER_FILE ".vireo-pool.json"

/* Why a host cannot use a shared pool (VO_POOL_REACHABLE: it can). */
typedef enum {
    VO_POOL_REACHABLE = 0,
    VO_POOL_NO_PATH,      /* the path is missing or not a directory */
    VO_POOL_NO_MARKER,    /* the directory has no marker (not mounted here?) */
    VO_POOL_OTHER_MARKER, /* the marker names another pool */
    VO_POOL_BAD_MARKER,   /* the marker cannot be read or parsed */
    VO_POOL_NO_CLUSTER,   /* an rbd pool: its Ceph cluster does not answer here */
} VoPoolReach;

/* Writes the marker of pool id/name in dir, exclusively. -EEXIST with
 * *ret_error naming the pool the existing marker belongs to; other -errno
 * with *ret_error. */
int vo_pool_marker_write(const char *dir, const char *id, const char *name,
                         char **ret_error);
/* Removes the marker when it is pool id's (a failed create, a deleted pool). */
void vo_pool_marker_remove(const char *dir, const char *id);
/* Reads dir's marker: 0 with *ret_id and *ret_name (malloc'd), -ENOENT when
 * there is none, -ENOTDIR when dir is no directory, -EBADMSG when it is not
 * a marker, other -errno. */
int vo_pool_marker_read(const char *dir, char **ret_id, char **ret_name);
/* Whether dir is pool id's directory here; *ret_reason (malloc'd, NULL when
 * reachable) says why not, in words naming what to fix. */
VoPoolReach vo_pool_marker_check(const char *dir, const char *id, char **ret_reason);
const char *vo_pool_reach_to_string(VoPoolReach r);
