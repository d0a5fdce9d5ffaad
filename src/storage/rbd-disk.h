/* rbd-disk.h: a VM disk on an RBD image, as QEMU's rbd block driver opens it.
 * A volume of an rbd pool has the path POOL-DIR/NAME.raw, where POOL-DIR
 * (STATE/rbd/POOL) holds ceph.json ({"monitors","pool","user"}) and the
 * cephx key (key, 0600); no file NAME.raw exists. From such a path this
 * builds the -blockdev props (driver rbd, server list, user, key-secret)
 * and the -object secret that hands QEMU the key by file, never in argv. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

typedef struct {
    char *pool, *image, *user;
    char *key_file;  /* POOL-DIR/key */
    json_t *servers; /* [{"host","port"}] */
} VoRbdDisk;

/* 1 and *ret filled when path is an rbd pool's volume, 0 when not (a
 * file), -errno when its pool's ceph.json is unreadable. */
int vo_rbd_disk_of_path(const char *path, VoRbdDisk *ret);
void vo_rbd_disk_clear(VoRbdDisk *d);
/* The servers array of a monitors string "IP[:PORT][,...]" (port 6789
 * when none). NULL when it does not parse. */
json_t *vo_rbd_servers(const char *monitors);
/* -blockdev props of the rbd node: key-secret names secret_id. */
json_t *vo_rbd_disk_blockdev(const VoRbdDisk *d, const char *node_name, const char *secret_id,
                             bool readonly);
/* The secret object's props ({"qom-type":"secret","id","file"}). */
json_t *vo_rbd_disk_secret(const VoRbdDisk *d, const char *secret_id);
/* Writes POOL-DIR/ceph.json (0600). 0 or -errno. */
int vo_rbd_disk_write_conf(const char *pool_dir, const char *monitors, const char *pool,
                           const char *user);
