/* storage.h: pools and volumes inside vireod: the registry (persisted as
 * pools/NAME and volumes/POOL/NAME documents), the refusal rules (in use,
 * backing another volume, escaping the pool), and the volume operations the
 * API runs as tasks. The block work itself is qemu-img's (storage/qemu-img.h). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/storage-spec.h"
#include "daemon/daemon.h"
#include "daemon/storage-rbd.h"
#include "jobs/tasks.h"

#define VO_DEFAULT_POOL "default"
/* Backups (backups.h) go to pools of this type: directories that hold no
 * volumes. The default one is made under STATE/pools on first use. */
#define VO_BACKUP_POOL_TYPE "backup"
#define VO_DEFAULT_BACKUP_POOL "backup"

/* Shared pools (docs/storage-api.md, "Shared pools"): a dir pool every host
 * of a cluster mounts at one path, checked through its marker file
 * (storage/pool-marker.h). Its document and its volumes' are the cluster's:
 *   cluster/pools/<pool>             {"name","type","path","created_at",
 *                                     "shared": true, "id"}
 *   cluster/volumes/<pool>/<volume>  as volumes/<pool>/<volume>
 * Every host lists them at start and follows their changes (pool-watch.c).
 * On one host (SQLite) they are stored under the same keys. */
#define VO_SHARED_POOLS_PREFIX "cluster/pools/"
#define VO_SHARED_POOLS_PREFIX_NS "cluster/pools"
#define VO_SHARED_VOLUMES_PREFIX "cluster/volumes/"
#define VO_SHARED_VOLUMES_PREFIX_NS "cluster/volumes"
/* cluster/volume-attach/<pool>/<volume> {"host","host_name"}: the lock a
 * host holds (on a lease) while it attaches a shared volume that is not
 * shareable (storage-disks.c, vo_storage_attach_lock). */
#define VO_VOLUME_ATTACH_PREFIX "cluster/volume-attach/"
#define VO_VOLUME_ATTACH_TTL_MS 30000

/* How often the pool watch asks Ceph again about an rbd pool it reached
 * (one it did not reach: every VO_POOL_CHECK_MS). */
#define VO_POOL_RBD_CHECK_MS 10000

/* Makes sure the default pool exists, then loads every pool and volume
 * (this host's and the shared ones) and checks the shared pools' markers
 * (a cluster's rbd and iSCSI pools are checked by the pool watch's threads:
 * a Ceph or a target that does not answer would hold vireod's start). */
int vo_storage_load(VoDaemon *d);
/* Reads the marker of every shared directory pool again; true when a pool
 * became reachable or unreachable here. Never waits on Ceph. */
bool vo_storage_check_pools(VoDaemon *d);
/* Asks the monitors of every shared rbd pool due a check (one reached:
 * every VO_POOL_RBD_CHECK_MS; one not: every call), one pool after the
 * other, each bounded by VO_RBD_TIMEOUT_S; true when a pool became
 * reachable or unreachable here. Only pool-watch.c's rbd thread calls it. */
bool vo_storage_check_rbd_pools(VoDaemon *d);
/* The same for the shared iSCSI pools: a login to each one's target and a
 * LUN listing (bounded, 10 s each). Only pool-watch.c's iSCSI thread calls
 * it: a target that does not answer never delays the rbd pools' checks. */
bool vo_storage_check_iscsi_pools(VoDaemon *d);
/* A change of a key under cluster/pools/ or cluster/volumes/ (value NULL: a
 * deleted key) at revision rev, from the store's watch: the registry
 * follows it (older revisions than what it holds are ignored). */
void vo_storage_apply_change(VoDaemon *d, const char *key, const char *value, int64_t rev);
/* Lists the shared pools and volumes again (after a lost watch) and drops
 * those gone. 0 or the store's error. */
int vo_storage_relist_shared(VoDaemon *d);
/* Called (from the watch's thread) when shared pools came or went or their
 * reachability changed; the hosts service registers its refresh. */
typedef void (*VoStoragePoolsChangedFn)(VoDaemon *d);
void vo_storage_set_pools_changed(VoStoragePoolsChangedFn fn);
void vo_storage_notify_pools_changed(VoDaemon *d);
/* The document key of pool name / volume pool/name (pools/... or
 * cluster/pools/...), malloc'd: for ETags. */
char *vo_pool_key(VoDaemon *d, const char *name);
char *vo_volume_doc_key(VoDaemon *d, const char *pool, const char *name);

/* Pools. */
json_t *vo_pools_list_json(VoDaemon *d);
/* The same without asking a Ceph cluster (an rbd pool's sizes are 0): for
 * callers that need names and reachability only. */
json_t *vo_pools_list_json_quick(VoDaemon *d);
int vo_pool_get_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error);
/* shared: a shared pool (dir only): its marker is written in path
 * (exclusively: a directory marked already is refused, naming its pool). */
int vo_pool_create(VoDaemon *d, const char *name, const char *type, const char *path,
                   bool shared, json_t **ret, char **ret_error);
/* True when pool is an rbd pool (its volumes are raw RBD images). */
bool vo_pool_is_rbd(VoDaemon *d, const char *pool);
/* 1 with *ret (the pool's settings and key: vo_rbd_pool_clear) and
 * *ret_image when volume key "pool/name" is in an rbd pool, 0 when it is
 * not, -errno with *ret_error when its pool's settings cannot be read. */
int vo_volume_rbd_image(VoDaemon *d, const char *key, VoRbdPool *ret, char **ret_image,
                        char **ret_error);
/* Removes image's base RBD image (linked clones' parent) from every rbd
 * pool that has one: -errno with *ret_error naming the pool when a cluster
 * cannot be asked or still has clones of it. */
int vo_rbd_pools_forget_image(VoDaemon *d, const char *image, char **ret_error);
/* An rbd pool (Ceph RBD, storage-rbd.h) from a checked spec of type rbd:
 * the cluster is reached and the pool checked first (bounded). */
int vo_pool_create_rbd(VoDaemon *d, const VoPoolSpec *spec, json_t **ret, char **ret_error);
/* expected > 0 (here and below): the revision of the document the caller
 * read (If-Match), compared under the storage lock right beside the write;
 * another answers -VO_EIFMATCH (412) and nothing changes. 0: any.
 * An rbd pool that keeps intents of RBD images a crash left (sweep-kept.h)
 * is refused (-EBUSY naming them) unless force: then their records go and
 * the images, if any, stay in Ceph (logged). */
int vo_pool_delete(VoDaemon *d, const char *name, int64_t expected, bool force,
                   char **ret_error);

/* iSCSI pools (docs/storage-san.md): the target's disk LUNs are the
 * volumes (lunN, raw until formatted), listed at create and on refresh. */
#define VO_ISCSI_POOL_TYPE "iscsi"
typedef struct {
    const char *name;
    const char *portal;      /* IP[:PORT] */
    const char *target;      /* IQN */
    const char *chap_user;   /* or NULL; with chap_secret */
    const char *chap_secret; /* kept in STATE/secrets (0600), never shown */
} VoIscsiPoolArgs;
/* Logs in and lists the LUNs first: a bad portal or IQN, a target that does
 * not answer or refuses the login is -EINVAL (nothing is left behind). */
int vo_pool_create_iscsi(VoDaemon *d, const VoIscsiPoolArgs *args, json_t **ret,
                         char **ret_error);
/* Lists an iSCSI pool's LUNs again (new LUNs become volumes, sizes follow,
 * LUNs gone and attached to no VM are dropped); -EBUSY when the target does
 * not answer. For other pools it just returns the pool. */
int vo_pool_refresh(VoDaemon *d, const char *name, json_t **ret, char **ret_error);
/* Puts a format layer (qcow2) on LUN volume pool/name (qemu-img create over
 * iscsi://): its data is lost; refused while a VM has it attached. */
int vo_volume_format(VoDaemon *d, const char *pool, const char *name, const char *format,
                     char **ret_error);

/* Volumes. */
json_t *vo_volumes_list_json(VoDaemon *d, const char *pool);
int vo_volume_get_json(VoDaemon *d, const char *pool, const char *name, json_t **ret,
                       char **ret_error);

typedef struct {
    const char *pool, *name;
    const char *format;      /* qcow2 (default) or raw */
    uint64_t size_bytes;     /* for a new empty volume */
    const char *import_path; /* or: convert this file (qcow2/raw/vmdk/vhdx/vdi) */
    bool import_owned;       /* import_path is a temp file of ours: delete it after */
    const char *content;     /* "iso": import_path must be an ISO 9660 image (one is
                              * detected anyway); kept raw, with content iso */
    const char *project;     /* or NULL: the project it is made in, its virtual size
                              * checked against the project's disk quota (the
                              * documents: state/project-objects.h) */
} VoVolumeCreateArgs;

int vo_volume_create(VoDaemon *d, const VoVolumeCreateArgs *args, json_t **ret_task,
                     json_t **ret_volume, char **ret_error);
int vo_volume_delete(VoDaemon *d, const char *pool, const char *name, int64_t expected,
                     json_t **ret_task, char **ret_error);
/* A linked clone in an rbd pool made whole (storage-flatten.c): a task;
 * refused (-EINVAL) for a volume that is no clone, of a dir or iSCSI pool,
 * naming it and what to do instead. */
int vo_volume_flatten(VoDaemon *d, const char *pool, const char *name, int64_t expected,
                      json_t **ret_task, char **ret_error);
int vo_volume_resize(VoDaemon *d, const char *pool, const char *name, uint64_t size,
                     bool allow_shrink, int64_t expected, json_t **ret_task, char **ret_error);
/* Resizes volume key through the running VM that holds it: -ENOTCONN when
 * none does (the file is then resized here). The VM service, above this
 * one, registers it at start-up; until then every resize is offline. */
typedef int (*VoOnlineResizeFn)(VoDaemon *d, const char *key, uint64_t size, char **ret_error);
void vo_storage_set_online_resize(VoOnlineResizeFn fn);
/* Counts delta more bytes (less when negative) of disk for the VM here that
 * has volume key as a disk, checked against its project's disk quota
 * (-VO_EQUOTA with *ret_error; 0 when no VM here has it): the VM service
 * registers it at start-up, and a resize that grows an attached volume asks
 * it first (and again with -delta when the resize failed). */
typedef int (*VoDiskGrowFn)(VoDaemon *d, const char *key, int64_t delta, char **ret_error);
void vo_storage_set_disk_grow(VoDiskGrowFn fn);
/* project (may be NULL): the clone's (counting its virtual size against
 * the project's disk quota; docs/projects.md). */
int vo_volume_clone(VoDaemon *d, const char *pool, const char *name, const char *target_key,
                    bool linked, const char *project, json_t **ret_task, json_t **ret_volume,
                    char **ret_error);
/* Holds a ready volume busy (no attach, resize, clone or delete starts on
 * it; one being attached refuses it) until vo_volume_unclaim: 0, or -ENOENT
 * or -EBUSY with *ret_error. */
int vo_volume_claim(VoDaemon *d, const char *pool, const char *name, char **ret_error);
void vo_volume_unclaim(VoDaemon *d, const char *pool, const char *name);
/* Marks a volume shareable (several VMs may attach it; QEMU's image locking
 * is off for it) or not. Refused while it is attached. */
int vo_volume_set_shareable(VoDaemon *d, const char *pool, const char *name, bool shareable,
                            int64_t expected, char **ret_error);
/* The file of a volume (for download); -ENOENT when unknown. */
int vo_volume_file(VoDaemon *d, const char *pool, const char *name, char **ret_path,
                   char **ret_error);
/* A temp file in the pool for an upload that becomes pool/name. */
int vo_volume_upload_path(VoDaemon *d, const char *pool, const char *name, char **ret_path,
                          char **ret_error);

/* For a VM clone's disk in an rbd pool (synchronous): a new volume
 * POOL/name of src_key's pool, inside Ceph: a full copy of src_key's
 * image, or (linked) an RBD clone of a new protected snapshot of it, its
 * backing volume src_key (which then cannot be deleted while the clone
 * exists; the source's VM keeps writing its image). *ret_path its path. */
int vo_volume_create_rbd_copy(VoDaemon *d, const char *src_key, const char *name, bool linked,
                              VoTask *task, char **ret_path, char **ret_error);
/* For VM disks (called from VM tasks, synchronous). Creates POOL/NAME as a
 * linked clone of base (or a full copy when full_clone), sized size (0: as
 * base), and returns its key and path. */
int vo_volume_create_from_base(VoDaemon *d, const char *pool, const char *name,
                               const char *base_path, const char *base_format,
                               const char *base_image, bool full_clone, uint64_t size,
                               VoTask *task, char **ret_path, char **ret_error);
/* A full copy (qcow2) of the qcow2 chain layers[0] (top) .. layers[n-1]
 * (base), each layer's backing pinned (vo_img_convert_chain); rate: bytes/s
 * the copy may use (0: no limit). */
int vo_volume_create_from_chain(VoDaemon *d, const char *pool, const char *name,
                                char *const *layers, size_t n_layers, uint64_t rate,
                                VoTask *task, char **ret_path, char **ret_error);
int vo_volume_create_empty(VoDaemon *d, const char *pool, const char *name, const char *format,
                           uint64_t size, VoTask *task, char **ret_path, char **ret_error);
/* Copies ISO 9660 image iso_path into the new volume pool/name, raw with
 * content iso (what vireo volume import makes of an .iso; a CD-ROM takes
 * it). A dir pool only; not an ISO: -EINVAL. */
int vo_volume_create_iso(VoDaemon *d, const char *pool, const char *name, const char *iso_path,
                         VoTask *task, char **ret_error);
/* Deletes now (no task); refuses when it backs another volume. */
int vo_volume_remove_now(VoDaemon *d, const char *key, char **ret_error);
/* A free name "PREFIX-diskN" in pool. */
char *vo_volume_free_name(VoDaemon *d, const char *pool, const char *prefix);
/* A free name "PREFIX-KINDn" in pool (kind: "disk", "cdrom"). */
char *vo_volume_free_name_as(VoDaemon *d, const char *pool, const char *prefix,
                             const char *kind);
/* Path and format of an existing volume key ("pool/name"). */
int vo_volume_lookup(VoDaemon *d, const char *key, char **ret_path, char **ret_format,
                     bool *ret_shareable, char **ret_error);
/* 0 when volume key exists and holds an ISO image (content iso): what a
 * CD-ROM takes; -ENOENT (unknown) or -EINVAL (a disk) with a message. */
int vo_volume_check_iso(VoDaemon *d, const char *key, char **ret_error);
/* The key ("POOL/NAME", malloc'd) of the volume whose file path is (compared
 * as given and with symlinks resolved), or NULL: for definitions written
 * when specs held paths, and for naming the volume a path given where a
 * name belongs is. */
char *vo_volume_key_of_path(VoDaemon *d, const char *path);
/* For a disk add: claims existing volume key (path, format, shareable
 * given) until vo_volume_attach_release, which the add calls once the VM's
 * definition names the volume, or the add failed. Refused (-EBUSY) when it
 * backs linked clones, is busy (clone, resize, delete), or is not shareable
 * and another add holds it; while held, linked clones, deletes, resizes and
 * a change of shareable are refused. The caller then checks the VMs. */
int vo_volume_attach_claim(VoDaemon *d, const char *key, char **ret_path, char **ret_format,
                           bool *ret_shareable, char **ret_error);
void vo_volume_attach_release(VoDaemon *d, const char *key);

/* 0, or -EBUSY (409) "pool 'P' is not reachable on this host: <reason>" for a
 * shared pool this host does not reach; 0 for an unknown pool too. */
int vo_pool_check_reachable(VoDaemon *d, const char *name, char **ret_error);
/* Right before the VM's definition naming the volume is saved: for a shared,
 * non-shareable volume, renews this host's attach lock so that it outlasts
 * the save (a full TTL from now, longer than a store call may take), or
 * -EBUSY (409) when it was lost. 0 for other volumes. */
int vo_volume_attach_confirm(VoDaemon *d, const char *key, char **ret_error);
/* How many VMs and detached linked clones use image NAME. */
int vo_image_users(VoDaemon *d, const char *image);
/* "POOL/NAME, ..." of the volumes that are linked clones of image, or NULL. */
char *vo_image_clone_names(VoDaemon *d, const char *image);
/* How many VMs of the other hosts of the cluster were made from image NAME
 * (an image kept in a shared pool is every host's); 0 when standalone. */
int vo_image_users_elsewhere(VoDaemon *d, const char *image);
/* Whether linked clones are built on volume key (then it must not change). */
bool vo_volume_is_base(VoDaemon *d, const char *key);
/* vo_volume_is_base, where its clones read the volume's data as it is (a
 * dir pool's qcow2 backing file), so it must stay as it is (no resize, no
 * restore over it). An rbd pool's volume never is: its linked clones (VM
 * clones, rbd-vm-clone.h) read a snapshot of its image. */
bool vo_volume_is_live_base(VoDaemon *d, const char *key);
bool vo_pool_exists(VoDaemon *d, const char *name);
/* Whether volume key of a local pool of this host is gone: 1 (neither in
 * the registry, also while being made, nor in the store), 0, or -EAGAIN
 * when this host cannot tell (its pool unknown here, or shared). */
int vo_volume_gone_here(VoDaemon *d, const char *key);
/* The directory of shared pool name (malloc'd in *ret_path) and whether
 * this host reaches it; -ENOENT when there is none, -EINVAL when name is a
 * local pool, both with *ret_error. For images kept in a shared pool. */
int vo_shared_pool_path(VoDaemon *d, const char *name, char **ret_path, bool *ret_reachable,
                        char **ret_error);

/* For backups. The directory of backup pool name (NULL: the default backup
 * pool, made on first use); -EINVAL when name is not a backup pool. */
int vo_backup_pool_path(VoDaemon *d, const char *name, char **ret_path, char **ret_error);
/* Names of every backup pool (strv). */
char **vo_backup_pool_names(VoDaemon *d);
/* Puts new_files[i] (in the volume's directory, in its format) in place of
 * the file of volume keys[i], for all n or none (-EBUSY when one backs
 * linked clones or is busy); the volumes are no longer linked clones. For a
 * restore. */
int vo_volumes_replace_files(VoDaemon *d, char *const *keys, char *const *new_files, size_t n,
                             char **ret_error);
/* 0, or -EBUSY when a VM of any host that has volume key attached runs (a
 * shareable volume's other VMs), *ret_error ending with why (in brackets):
 * a restore writes an iSCSI LUN over in place, under any VM reading it; a
 * VM clone's copy of a disk another VM writes would be torn. */
int vo_volume_check_no_running_user(VoDaemon *d, const char *key, const char *why,
                                    char **ret_error);

/* The restore mark (storage-restore-mark.c): a restore over a VM marks each
 * volume it writes over, task_id its task's, before its first write and
 * before it checks that no VM having the volume runs (*ret_previous: the
 * mark it replaced, a reference, or NULL; -EBUSY over the mark of another
 * restore that runs, or of another VM's rbd restore cut short). undo_vm
 * (an RBD image's restore, written behind its VM's undo snapshot): the id
 * (and name) of the VM whose next start or restore rolls the volume back
 * when a crash cuts the restore short; its mark then stays until that
 * rollback (vo_volume_restore_settle), not swept, never cleared by hand
 * while that VM exists, and refuses other VMs' starts and restores. unmark: the restore ended and the volume is whole
 * (old or the backup's): while the mark is still task_id's it goes, or
 * put_back takes its place (a restore that failed before writing the
 * volume puts back the mark it found). While marked, no VM with the
 * volume starts (vo_volume_check_restore: -EBUSY, 409, naming the task running or saying
 * a restore did not finish). A mark left on an iSCSI LUN (written in place:
 * partly the backup's) stays until a restore ends well or the user clears
 * it (-EBUSY while its task runs, here or on another host that is online);
 * a file volume's (its swap is all or nothing) goes at this host's next
 * start (sweep). */
int vo_volume_restore_mark(VoDaemon *d, const char *key, const char *task_id,
                           const char *undo_vm, const char *undo_vm_name,
                           json_t **ret_previous, char **ret_error);
void vo_volume_restore_unmark(VoDaemon *d, const char *key, const char *task_id,
                              json_t *put_back);
/* vm_id (may be NULL): the VM that starts, whose own rbd restore cut short
 * is no refusal (its start rolls it back first). */
int vo_volume_check_restore(VoDaemon *d, const char *key, const char *vm_id,
                            char **ret_error);
/* After VM vm_id's rollback of an rbd restore cut short (or none was
 * needed): the mark such a restore of that VM left on volume key goes. */
void vo_volume_restore_settle(VoDaemon *d, const char *key, const char *vm_id);
/* A restore's, after its mark: -EBUSY while a disk add of this host holds
 * volume key (vo_volume_attach_claim, until the VM's definition names it):
 * the add reads the marks after its claim, so of the two one sees the
 * other (another host's add reads them again once its VM's definition
 * names the disk, vm-disks.c). */
int vo_volume_check_not_attaching(VoDaemon *d, const char *key, char **ret_error);
int vo_volume_restore_clear(VoDaemon *d, const char *pool, const char *name, char **ret_error);
void vo_volume_restore_marks_sweep(VoDaemon *d);

/* Live migration of local disks (docs/internals.md, "Live migration of
 * local disks"). Destination: reserves pool/name for an incoming disk (busy;
 * its path resolves; no document: the source's ownership transaction moves
 * it here) under an intent owned by that document, so a crash before the
 * move leaves nothing; -EEXIST when the name or its file is taken here,
 * -ENOENT when the pool does not exist, -EINVAL for a shared pool. The
 * caller makes the file. keep: the document arrived (read back; the intent
 * ends); drop: the migration failed (file, reservation and intent go). */
int vo_volume_incoming_reserve(VoDaemon *d, const char *pool, const char *name,
                               const char *format, char **ret_path, char **ret_error);
int vo_volume_incoming_keep(VoDaemon *d, const char *pool, const char *name);
void vo_volume_incoming_drop(VoDaemon *d, const char *pool, const char *name);
/* Source: before the ownership transaction, an intent naming volume key's
 * file owned by its document here (which the transaction deletes): a crash
 * after the transaction leaves the file to the start-up sweep. end: moved
 * (the transaction succeeded): file and registry entry go; else only the
 * intent does. */
int vo_volume_moving_begin(VoDaemon *d, const char *key, char **ret_error);
void vo_volume_moving_end(VoDaemon *d, const char *key, bool moved);
/* A migration settled after its task ended (migrate-recover.c: in the
 * background or at start): volume key's moving intent, if any, ends as the
 * start-up sweep ends it, with its file and registry entry when its
 * document here is gone (moved), alone when the document is here; kept
 * when the store cannot say. */
void vo_volume_moving_settle(VoDaemon *d, const char *key);

/* Cold move (move.c, move-incoming.c). Destination: the temp file template
 * (".upload-HOST-NAME-XXXXXX", for mkstemp; the start-up sweep takes one a
 * crash left) and final path of a volume pool/name of format that moves
 * here; the pool must be this host's own and reachable, the name free. */
int vo_volume_move_in_paths(VoDaemon *d, const char *pool, const char *name, const char *format,
                            char **ret_tmp, char **ret_final, char **ret_error);
/* After the move's transaction, the registry follows volume pool/name's
 * document (a host's own pool): added when it is here now, dropped when it
 * is gone (then its file is removed too when remove_file). */
int vo_volume_sync_moved(VoDaemon *d, const char *pool, const char *name, bool remove_file,
                         char **ret_error);
/* Source: what a move needs to know of volume key ("pool/name"): {"key",
 * "pool", "name", "format", "shared", "image"?, "backing"?, "path"}. */
int vo_volume_move_info(VoDaemon *d, const char *key, json_t **ret, char **ret_error);
