/* storage-internal.h: what the storage files (storage-*.c, the volume
 * service storage.h declares) share: the pool and volume records of the
 * registry and the helpers more than one of them calls. Not for the API
 * layer nor for the rest of the daemon: they use storage.h.
 *
 * Locking: d->storage_lock guards the in-memory lists and is held only while
 * they are read or changed, never across qemu-img; a volume being worked on
 * is marked busy so no second operation starts on it, and one a disk add is
 * attaching is marked attaching until the VM's definition names it (see the
 * claims in daemon.h). Which VM uses a volume or an image is read from the
 * relation documents the VM service writes with each VM (state/relations.h):
 * these files never call the VM code (they sit below it, see
 * docs/internals.md Layers). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/pool-names.h"
#include "daemon/storage.h"
#include "daemon/storage-rbd.h"
#include "state/lease-keeper.h"
#include "state/relations.h"
#include "storage/pool-marker.h"

struct VoPool {
    char *name, *type, *path;
    int64_t created_at;
    int64_t rev; /* of its document; 0 until saved */
    /* A shared pool (pool-marker.h): its document is cluster/pools/NAME and
     * its volumes' cluster/volumes/NAME/VOLUME; id is the marker's. reach
     * and reason: what this host saw when it last checked the marker. */
    bool shared;
    char *id;
    VoPoolReach reach;
    char *reason;
    json_t *rbd; /* an rbd pool's {"monitors","pool","user"} (storage-rbd.h), or NULL */
    int64_t rbd_next_check_ms; /* an rbd pool reached: not asked again before (vo_now_ms) */
};

struct VoVolume {
    char *pool, *name, *format;
    char *backing; /* key "pool/name" of the volume it is a linked clone of, or NULL */
    char *image;   /* image it is a linked clone of, or NULL */
    char *content; /* "iso": an ISO 9660 image (raw, attached as a CD-ROM); NULL: a disk */
    bool shareable;
    bool shared;   /* of a shared pool: a cluster document */
    bool busy;     /* an operation (create, resize, clone, delete) runs on it */
    unsigned attaching; /* disk adds between their check and their commit */
    /* Of a shared volume: keeps the lease of this host's attach lock alive
     * until the attach is recorded or failed (lease-keeper.h). */
    VoLeaseKeeper *attach_keeper;
    bool ready;    /* created; false while its create task runs */
    int64_t created_at;
    int64_t rev;   /* of its document; 0 until saved */
    uint64_t size_bytes; /* an iSCSI LUN's size (as last listed); 0 for others */
    uint64_t virtual_bytes; /* a LUN's qcow2 layer's virtual size (volume format); 0: none */
    /* A restore writing over it, or one that did not end well:
     * {"task","host","host_name","since","in_place"} (storage-restore-mark.c),
     * its document's "restore_incomplete"; NULL: none. */
    json_t *restore;
};

/* storage-users.c */
int vo_storage_member_hosts(VoDaemon *d, char ***ret_ids, char ***ret_names);
bool vo_storage_vm_is_here(VoDaemon *d, const char *vm_id);
int vo_storage_any_host_volume_user(VoDaemon *d, const char *key, VoRelationUser *ret,
                                    char **ret_host);
bool vo_storage_key_is_shared(VoDaemon *d, const char *key);
bool vo_storage_volume_user_at(VoDaemon *d, const char *key, VoRelationUser *ret, char **ret_host);
bool vo_storage_volume_user(VoDaemon *d, const char *key, VoRelationUser *ret);
char *vo_storage_volume_user_name(VoDaemon *d, const char *key);

/* storage-registry.c */
VoPool *vo_storage_pool_find(VoDaemon *d, const char *name);
void vo_storage_pool_free(VoPool *p);
void vo_storage_volume_free(VoVolume *v);
VoVolume *vo_storage_volume_find(VoDaemon *d, const char *pool, const char *name);
int vo_storage_pool_unreachable(const VoPool *p, char **ret_error);
VoPool *vo_storage_pool_for_new_volume(VoDaemon *d, const char *pool, const char *name, int *ret,
                                       char **ret_error);
size_t vo_storage_volume_dependents(VoDaemon *d, const char *key);
char *vo_storage_pool_doc_key(bool shared, const char *name);
char *vo_storage_volume_doc_key(bool shared, const char *pool, const char *name);
int vo_storage_save_pool_as(VoDaemon *d, VoPool *p, int64_t expected, const VoPoolNameClaim *claim,
                            char **ret_error);
int vo_storage_save_pool(VoDaemon *d, VoPool *p, int64_t expected);
int vo_storage_save_volume(VoDaemon *d, VoVolume *v);
void vo_storage_forget_project(VoDaemon *d, const char *pool, const char *name, bool shared);
int vo_storage_delete_volume_doc(VoDaemon *d, const VoVolume *v);
void vo_storage_registry_remove_volume(VoDaemon *d, VoVolume *v);
void vo_storage_registry_add_volume(VoDaemon *d, VoVolume *v);
void vo_storage_registry_add_pool(VoDaemon *d, VoPool *p);

/* storage-load.c */
VoPool *vo_storage_pool_from_doc(const char *value, int64_t rev);
VoVolume *vo_storage_volume_from_doc(const char *value, int64_t rev);
void vo_storage_pool_path_here(VoDaemon *d, VoPool *p);
bool vo_storage_pool_is_networked(const VoPool *p);
void vo_storage_rbd_discard_of(const char *dir, const char *id);

/* storage-reach.c */
bool vo_storage_strv_contains(char *const *v, const char *s);

/* storage-json.c */
void vo_storage_rbd_usage_fill(json_t *o);
json_t *vo_storage_pool_to_json(VoDaemon *d, const VoPool *p);

/* storage-pools.c */
int vo_storage_rbd_pool_of_locked(VoPool *p, VoRbdPool *ret, char **ret_error);
int vo_storage_rbd_pool_of(VoDaemon *d, const char *pool, VoRbdPool *ret, char **ret_error);
int vo_storage_rev_is(int64_t expected, int64_t rev, const char *what, const char *name,
                      char **ret_error);

/* storage-reserve.c */
bool vo_storage_pool_is_shared(VoDaemon *d, const char *name);
bool vo_storage_creating_is_live(VoDaemon *d, const char *pool, const char *lock);
char *vo_storage_creating_holder(const char *path);
int vo_storage_begin_volume_intent(VoDaemon *d, const char *pool, const char *name,
                                   const char *path, bool shared, const char *lock);
void vo_storage_end_volume_intent(VoDaemon *d, const char *pool, const char *name);
int vo_storage_reserve_volume(VoDaemon *d, const char *pool, const char *name, const char *format,
                              char **ret_path, char **ret_error);
int vo_storage_finish_volume(VoDaemon *d, const char *pool, const char *name, const char *path,
                             bool ok, const char *backing, const char *image);
int vo_storage_claim_volume(VoDaemon *d, const char *pool, const char *name, char **ret_path,
                            char **ret_format, char **ret_error);
void vo_storage_release_volume(VoDaemon *d, const char *pool, const char *name);

/* storage-tasks.c */
void vo_storage_report_progress(int percent, void *userdata);
/* Progress of task t in bytes (done of total; "details": bytes_done,
 * bytes_total) under message, which stays the same so that the operation's
 * document is written at most every VO_TASKS_PROGRESS_WRITE_MS. */
void vo_storage_show_bytes(VoTask *t, const char *message, uint64_t done, uint64_t total);
void vo_storage_lease_keeper_stopp(VoLeaseKeeper **k);

/* storage-disks.c */
int vo_storage_rbd_volume_finish(VoDaemon *d, const char *pool, const char *name, const char *path,
                                 const VoRbdPool *rp, int r, const char *backing,
                                 const char *image, char **ret_error);
int vo_storage_attach_lock(VoDaemon *d, const char *pool, const char *name, const char *doing,
                           char **ret_error);

/* storage-iscsi-pool.c */
int vo_storage_iscsi_refuse(const char *pool, const char *what, char **ret_error);
int vo_storage_iscsi_check(VoDaemon *d, const char *pool, const char *what, char **ret_error);
/* Caller holds storage_lock. */
void vo_storage_iscsi_pool_json(VoDaemon *d, const VoPool *p, json_t *o);
int vo_storage_iscsi_pool_drop_luns(VoDaemon *d, const char *name, int64_t expected,
                                    char **ret_error);
