/* storage-rbd.h: the daemon side of rbd pools (Ceph RBD): what a pool
 * records (monitors, Ceph pool, user; the cephx key in a 0600 file in the
 * pool's own directory under STATE/rbd/, never in a document, argv or API
 * answer) and how it is made and checked. The Ceph calls are
 * storage/rbd-client.h's. */
#pragma once

#include <jansson.h>

#include "conf/storage-spec.h"
#include "daemon/daemon.h"
#include "storage/rbd-client.h"

#define VO_RBD_POOL_TYPE "rbd"

/* An rbd pool's settings and key, read back (strings malloc'd). */
typedef struct {
    char *monitors, *pool, *user, *key;
    char *key_file; /* DIR/key: what QEMU reads (-object secret,file=) */
} VoRbdPool;

void vo_rbd_pool_clear(VoRbdPool *p);
static inline VoRbdConf vo_rbd_pool_conf(const VoRbdPool *p)
{
    return (VoRbdConf){ .monitors = p->monitors, .pool = p->pool, .user = p->user,
                        .key = p->key };
}

/* For a create request of type rbd: reads the key from spec->keyring,
 * connects to the cluster and checks the pool (bounded), then makes the
 * pool's directory STATE/rbd/NAME (0700) with the key file (0600). 0 with
 * *ret_dir (the pool's path) and *ret_props ({"monitors","pool","user"}),
 * or -errno with *ret_error and nothing left behind. */
int vo_storage_rbd_prepare(VoDaemon *d, const VoPoolSpec *spec, char **ret_dir,
                           json_t **ret_props, char **ret_error);
/* The pool's directory on this host: STATE/rbd/NAME (malloc'd). */
char *vo_storage_rbd_dir(VoDaemon *d, const char *name);
/* Makes dir (0700; STATE/rbd made when missing) with the key file (0600)
 * and ceph.json; a dir that exists already is -EEXIST. Nothing is left
 * behind on failure. */
int vo_storage_rbd_write_dir(const char *dir, const char *name, const char *key,
                             const char *monitors, const char *pool, const char *user,
                             char **ret_error);
/* Removes what prepare made (the key file and the directory; the pool-id
 * file too). */
void vo_storage_rbd_discard(const char *dir);
/* A cluster's rbd pool: dir/pool-id names the pool (its id) whose key and
 * settings dir holds, so a directory left by an earlier pool of that name
 * (deleted while this host was down, or written again by a check racing
 * its delete) is told from the current one's. The id (malloc'd), or NULL:
 * none (a host's own pool), unreadable. */
char *vo_storage_rbd_dir_id(const char *dir);
/* Writes dir/pool-id (atomically). 0 or -errno. */
int vo_storage_rbd_write_id(const char *dir, const char *id);
/* A new RBD image `image` holding the disk image src (of src_format), at
 * least size bytes: made (librbd), then filled by qemu-img convert through
 * QEMU's rbd driver, its progress (-p: percent) given as bytes of the
 * image's size (progress may be NULL); removed again when the copy fails. */
int vo_storage_rbd_import(const VoRbdPool *rp, const char *image, const char *src,
                          const char *src_format, uint64_t size, VoRbdProgressFn progress,
                          void *userdata, char **ret_error);
/* The same for the qcow2 chain layers[0] (top) .. layers[n-1] (a backup's
 * files, as the caller checked them), opened through vo_img_chain_spec:
 * every layer by name, no backing name read from a header followed; the
 * image of the top layer's virtual size, read from its header alone. */
int vo_storage_rbd_import_chain(const VoRbdPool *rp, const char *image, char *const *layers,
                                size_t n, char **ret_error);
/* The virtual size of chain layers[0] (a qcow2 file), from its header
 * (nothing it names is opened). 0 or -errno with *ret_error. */
int vo_storage_rbd_chain_size(char *const *layers, uint64_t *ret_size, char **ret_error);
/* Writes the disk image src (of src_format; or NULL: src a "json:" spec,
 * vo_img_chain_spec) over the whole of the existing RBD image `image` (qemu-img
 * convert -n through QEMU's rbd driver), which is at least as large; its
 * progress as bytes of size (progress may be NULL). */
int vo_storage_rbd_write(const VoRbdPool *rp, const char *image, const char *src,
                         const char *src_format, uint64_t size, VoRbdProgressFn progress,
                         void *userdata, char **ret_error);
/* A new RBD image `child` as a linked clone of vireo image image_name
 * (whose disk is src, of src_format), at least size bytes: the image's
 * base (VO_RBD_BASE_PREFIX + image_name, with its protected snapshot) is
 * imported into the Ceph pool first when it is not there yet, once (one
 * import at a time in this vireod; made under a temporary name and renamed
 * when complete, so a crash or a second maker never leaves a half base). */
int vo_storage_rbd_clone_image(const VoRbdPool *rp, const char *image_name, const char *src,
                               const char *src_format, const char *child, uint64_t size,
                               char **ret_error);
/* Removes image_name's base from the rbd pool (none there: 0); -EBUSY
 * naming its clones while some exist. */
int vo_storage_rbd_forget_image(const VoRbdPool *rp, const char *image_name, char **ret_error);
/* After an rbd pool was deleted: removes the image bases in its Ceph pool
 * that have no clones (another vireo pool on that Ceph pool may have some:
 * those stay), logging what stays. */
void vo_storage_rbd_forget_bases(const VoRbdPool *rp);
/* After a crash: path (STATE/rbd/POOL/NAME.raw, an intent's) names the
 * RBD image of volume POOL/NAME that a create cut short; it is removed
 * when it carries that volume's mark (vo_rbd_image_mark), and so is the
 * partial image of a full copy to it (rbd-vm-clone.h). 1 when one was
 * removed, 0 when path is no rbd volume's or there is neither, -errno
 * (*ret_error) when Ceph cannot be asked (bounded: VO_RBD_TIMEOUT_S). */
int vo_storage_rbd_remove_half_made(const char *path, char **ret_error);
/* Reads an rbd pool's settings (props) and its key (DIR/key). */
int vo_storage_rbd_load(const char *dir, json_t *props, VoRbdPool *ret, char **ret_error);
