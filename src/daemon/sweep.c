/* sweep.c: intent records for long operations that make files, and the
 * start-up sweep of what a crash left half-made (see sweep.h). */
#include "daemon/sweep.h"

#include <dirent.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/names.h"
#include "daemon/host-id.h"
#include "daemon/migrate-safe.h"
#include "daemon/storage-rbd.h"
#include "daemon/storage.h"
#include "daemon/sweep-kept.h"
#include "state/keys.h"
#include "state/owner-state.h"
#include "storage/rbd-failure.h"
#include "storage/volume-path.h"
#include "util/util.h"

#define INTENTS_PREFIX "intents/"
#define UPLOAD_PREFIX ".upload-"
#define BUILD_PREFIX ".build-"
#define DELETING_PREFIX ".deleting-" /* image-import.c: an image being deleted */
#define RESTORE_PREFIX ".restore-"  /* backup-restore.c: new disk files */
#define REPLACED_PREFIX ".replaced-" /* storage-backup.c, storage-disks.c: old files moved aside */

int vo_intent_begin(VoDaemon *d, const char *id, const char *owner, const char *const *paths,
                    size_t n)
{
    return vo_intent_begin_volumes(d, id, owner, paths, n, NULL);
}

int vo_intent_begin_volumes(VoDaemon *d, const char *id, const char *owner,
                            const char *const *paths, size_t n, char *const *volumes)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        if (paths[i])
            json_array_append_new(list, json_string(paths[i]));
    json_t *doc = json_pack("{s:s, s:o, s:I}", "owner", owner, "paths", list, "created_at",
                            (json_int_t)vo_wall_ms());
    if (volumes) {
        json_t *keys = json_array();
        for (char *const *v = volumes; *v; v++)
            json_array_append_new(keys, json_string(*v));
        json_object_set_new(doc, "volumes", keys);
    }
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *key = vo_asprintf(INTENTS_PREFIX "%s", id);
    if (!text)
        return -ENOMEM;
    int r = vo_store_put(d->store, key, text, VO_REV_NEW, NULL);
    if (r != -EEXIST)
        return r;
    /* Left by an earlier operation on the same object whose end could not
     * delete it: the caller holds the object's claim now, so it is ours. */
    int64_t rev = 0;
    r = vo_store_get(d->store, key, NULL, &rev);
    return r < 0 ? r : vo_store_put(d->store, key, text, rev, NULL);
}

int vo_intent_vm_volumes(VoDaemon *d, const char *vm_id, const char *scratch,
                         char *const *volumes)
{
    _cleanup_free_ char *key = vo_key_vm(vm_id);
    const char *paths[] = { scratch };
    char *none[] = { NULL };
    return vo_intent_begin_volumes(d, key, key, paths, scratch ? 1 : 0,
                                   volumes ? volumes : none);
}

void vo_intent_vm_end(VoDaemon *d, const char *vm_id)
{
    _cleanup_free_ char *key = vo_key_vm(vm_id);
    vo_intent_end(d, key);
}

void vo_intent_end(VoDaemon *d, const char *id)
{
    _cleanup_free_ char *key = vo_asprintf(INTENTS_PREFIX "%s", id);
    /* VO_REV_ANY: only the operation holding the object's claim writes its
     * intent (begin above, this end), so whatever revision it has is ours. */
    int r = vo_store_delete(d->store, key, VO_REV_ANY);
    if (r < 0 && r != -ENOENT)
        log_warn("cannot remove intent %s: %s (the next start removes it)", key, strerror(-r));
}

/* ---- the sweep ------------------------------------------------------------ */

typedef struct {
    char **keys;
    char **values;
    char **revs; /* decimal */
} Docs;

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    Docs *docs = userdata;
    vo_strv_push(&docs->keys, vo_strdup(key));
    vo_strv_push(&docs->values, vo_strdup(value));
    vo_strv_pushf(&docs->revs, "%lld", (long long)rev);
    return 0;
}

/* What the store says of owner key (owner-state.h): only GONE lets the
 * sweep remove what the key owns. The test-only fault point
 * sweep-owner-read-fails (migrate-safe.h) makes one read fail as an etcd
 * that does not answer does. UNKNOWN is logged, naming what stays. */
static VoOwnerState owner_state(VoDaemon *d, const char *key, const char *what)
{
    int err = 0;
    VoOwnerState st = vo_migrate_fault("sweep-owner-read-fails")
                          ? (err = -EAGAIN, VO_OWNER_UNKNOWN)
                          : vo_store_owner_state(d->store, key, &err);
    if (st == VO_OWNER_UNKNOWN)
        log_warn("sweep: kept %s: the store cannot say whether %s exists (%s); the next "
                 "start tries again", what, key, strerror(-err));
    return st;
}

/* A path vireod itself wrote into an intent: absolute, no "..". */
static bool plain_path(const char *p)
{
    return p && p[0] == '/' && !strstr(p, "/../") && strcmp(p, "/") &&
           !(strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/.."));
}

static bool remove_logged(const char *path, const char *why);

static bool strv_has(char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (!strcmp(v[i], s))
            return true;
    return false;
}

/* The rbd pool directory (STATE/rbd/POOL) of volume path `path`
 * (malloc'd). */
static char *path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    return vo_asprintf("%.*s", (int)(slash ? slash - path : 0), path);
}

/* An rbd pool's volume path names an RBD image, not a file: the image a
 * create cut short goes when it carries the volume's mark. Only after a
 * crash, so the wait on Ceph (bounded) is rare, and once per pool whose
 * Ceph does not answer (t->down). 0 when done (removed, or none), else
 * -errno with t->pool and t->error. */
static int remove_rbd_image(const char *path, VoSweepTry *t)
{
    _cleanup_free_ char *dir = path_dir(path);
    _cleanup_free_ char *error = NULL;
    int r;
    if (strv_has(t->down, dir)) {
        r = -ETIMEDOUT;
        error = vo_strdup("not asked: its Ceph did not answer earlier in this sweep");
    } else if ((r = vo_storage_rbd_remove_half_made(path, &error)) < 0 &&
               vo_rbd_failure_kind(r) == VO_RBD_FAIL_UNREACHABLE)
        vo_strv_push(&t->down, vo_strdup(dir));
    if (r > 0)
        log_info("removed RBD image of %s: half-made when vireod stopped", path);
    /* An image that does not exist is r == 0 already: an -ENOENT here is
     * the Ceph pool's, the image maybe still in it (a pool renamed). */
    if (r >= 0)
        return 0;
    const char *pool = strrchr(dir, '/');
    if (!t->quiet_unreachable || vo_rbd_failure_kind(r) != VO_RBD_FAIL_UNREACHABLE)
        log_warn("sweep: kept the RBD image of %s (half-made when vireod stopped) and its "
                 "intent: %s (%s)", path, error ? error : strerror(-r),
                 vo_rbd_failure_name(vo_rbd_failure_kind(r)));
    free(t->pool);
    free(t->error);
    t->pool = vo_strdup(pool ? pool + 1 : dir);
    t->error = TAKE_PTR(error);
    return r;
}

int vo_sweep_intent(VoDaemon *d, const char *key, const char *text, VoSweepTry *t)
{
    json_t *doc = json_loads(text, 0, NULL);
    const char *owner = json_string_value(json_object_get(doc, "owner"));
    _cleanup_free_ char *what = vo_asprintf("the files (and RBD images) of %s", key);
    VoOwnerState st = owner ? owner_state(d, owner, what) : VO_OWNER_GONE;
    int r = st == VO_OWNER_UNKNOWN ? 0 : 1;
    if (st == VO_OWNER_GONE) {
        size_t k;
        json_t *p;
        json_array_foreach(json_object_get(doc, "paths"), k, p) {
            const char *path = json_string_value(p);
            /* The operation that made it says so after the restart. */
            if (plain_path(path) && remove_logged(path, "half-made when vireod stopped") &&
                owner)
                vo_tasks_note_cleanup(d->tasks, owner, path);
            int k_r = plain_path(path) ? remove_rbd_image(path, t) : 0;
            if (k_r < 0)
                r = k_r;
        }
    }
    json_decref(doc);
    return r;
}

static void sweep_intents(VoDaemon *d)
{
    VoSweepTry t = { 0 }; /* its pools found down: for the whole sweep */
    Docs docs = { 0 };
    (void)vo_store_list(d->store, INTENTS_PREFIX, collect, &docs);
    for (size_t i = 0; docs.keys && docs.keys[i]; i++) {
        json_t *doc = json_loads(docs.values[i], 0, NULL);
        bool later = json_object_get(doc, "volumes"); /* once the pools are loaded */
        json_decref(doc);
        if (later)
            continue;
        int r = vo_sweep_intent(d, docs.keys[i], docs.values[i], &t);
        if (r > 0)
            (void)vo_store_delete(d->store, docs.keys[i], strtoll(docs.revs[i], NULL, 10));
        else if (r < 0) /* the record stays, and is tried again while running */
            vo_sweep_kept_add(d, docs.keys[i], t.pool, r, t.error);
    }
    vo_sweep_try_clear(&t);
    vo_strv_free(docs.keys);
    vo_strv_free(docs.values);
    vo_strv_free(docs.revs);
}

/* An intent with volumes whose owner (a VM document) does not exist: its
 * volumes and paths go. Compared on the owner's document being absent, read
 * now: a VM that was saved keeps everything. False when the store cannot
 * say: everything stays, the record too. *down: the pools whose Ceph did
 * not answer in this sweep (strv): their volumes are kept without asking
 * again, so a Ceph that is down costs one connection's timeout per pool
 * and sweep, not one per volume. */
static bool remove_intent_volumes(VoDaemon *d, const char *intent, json_t *doc, char ***down)
{
    const char *owner = json_string_value(json_object_get(doc, "owner"));
    _cleanup_free_ char *what = vo_asprintf("the volumes and files of %s", intent);
    VoOwnerState st = owner ? owner_state(d, owner, what) : VO_OWNER_GONE;
    if (st != VO_OWNER_GONE)
        return st == VO_OWNER_EXISTS;
    size_t k;
    json_t *v;
    json_array_foreach(json_object_get(doc, "volumes"), k, v) {
        const char *key = json_string_value(v);
        _cleanup_free_ char *error = NULL;
        if (!key)
            continue;
        _cleanup_free_ char *pool = NULL, *name = NULL;
        bool split = vo_volume_key_split(key, &pool, &name) >= 0;
        int r;
        if (split && strv_has(*down, pool)) {
            r = -ETIMEDOUT;
            error = vo_strdup("not asked: its pool's Ceph did not answer earlier in this sweep");
        } else if ((r = vo_volume_remove_now(d, key, &error)) < 0 && split &&
                   vo_rbd_failure_kind(r) == VO_RBD_FAIL_UNREACHABLE &&
                   vo_pool_is_rbd(d, pool)) {
            vo_strv_push(down, vo_strdup(pool));
        }
        if (r >= 0)
            log_info("removed volume %s: made for %s, which a stop cut short", key,
                     owner ? owner : "?");
        else if (r != -ENOENT)
            log_warn("kept volume %s (made for %s, which a stop cut short): %s", key,
                     owner ? owner : "?", error ? error : strerror(-r));
    }
    json_array_foreach(json_object_get(doc, "paths"), k, v) {
        const char *path = json_string_value(v);
        if (plain_path(path))
            remove_logged(path, "half-made when vireod stopped");
    }
    return true;
}

void vo_sweep_volumes_after_load(VoDaemon *d)
{
    Docs docs = { 0 };
    _cleanup_strv_ char **down = NULL; /* pools whose Ceph did not answer */
    (void)vo_store_list(d->store, INTENTS_PREFIX, collect, &docs);
    for (size_t i = 0; docs.keys && docs.keys[i]; i++) {
        json_t *doc = json_loads(docs.values[i], 0, NULL);
        if (json_object_get(doc, "volumes") && remove_intent_volumes(d, docs.keys[i], doc, &down))
            (void)vo_store_delete(d->store, docs.keys[i], strtoll(docs.revs[i], NULL, 10));
        json_decref(doc);
    }
    vo_strv_free(docs.keys);
    vo_strv_free(docs.values);
    vo_strv_free(docs.revs);
}

/* Calls fn for each entry of dir but "." and "..", with its full path. */
static void for_each_entry(const char *dir, void (*fn)(const char *path, const char *name,
                                                        const void *arg),
                           const void *arg)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, e->d_name);
        fn(path, e->d_name, arg);
    }
    closedir(dh);
}

/* Whether it removed something. */
static bool remove_logged(const char *path, const char *why)
{
    int r = vo_rm_rf(path);
    if (r >= 0)
        log_info("removed %s: %s", path, why);
    else if (r != -ENOENT)
        log_warn("cannot remove %s: %s", path, strerror(-r));
    return r >= 0;
}

/* Whether path is (not through a symlink) a directory, or a regular file. */
static bool is_kind(const char *path, bool dir)
{
    struct stat st;
    return lstat(path, &st) == 0 && (dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

typedef struct {
    const char *prefix;
    bool dirs; /* directories, else regular files */
} Prefixed;

static void remove_if_prefixed(const char *path, const char *name, const void *arg)
{
    const Prefixed *p = arg;
    if (!strncmp(name, p->prefix, strlen(p->prefix)) && is_kind(path, p->dirs))
        remove_logged(path, "left by an operation cut short");
}

/* Removes dir's entries whose name starts with prefix (directories when
 * dirs, else regular files). */
static void remove_prefixed(const char *dir, const char *prefix, bool dirs)
{
    for_each_entry(dir, remove_if_prefixed, &(Prefixed){ .prefix = prefix, .dirs = dirs });
}

/* Restoring over a VM moves each old disk file aside as ".replaced-FILE"
 * for a moment; one whose FILE is missing goes back (never removed). */
static void put_back_if_replaced(const char *aside, const char *name, const void *arg)
{
    const char *dir = arg;
    if (strncmp(name, REPLACED_PREFIX, strlen(REPLACED_PREFIX)))
        return;
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, name + strlen(REPLACED_PREFIX));
    struct stat st;
    if (lstat(path, &st) == 0 || errno != ENOENT)
        log_warn("%s: left by a restore cut short; kept (%s exists)", aside, path);
    else if (rename(aside, path) < 0)
        log_warn("cannot put %s back: %s", aside, strerror(errno));
    else
        log_info("put %s back: a restore was cut short", path);
}

/* Only this host's upload and restore temps ("PREFIX" HOST "-..."): a pool
 * may be shared, and another host's may be in use. */
static void sweep_pool(const char *path, const char *host)
{
    if (host) {
        _cleanup_free_ char *upload = vo_asprintf(UPLOAD_PREFIX "%s-", host);
        _cleanup_free_ char *restore = vo_asprintf(RESTORE_PREFIX "%s-", host);
        remove_prefixed(path, upload, false);
        remove_prefixed(path, restore, false);
    }
    for_each_entry(path, put_back_if_replaced, path);
}

static void sweep_pools(VoDaemon *d)
{
    _cleanup_free_ char *host = vo_host_id(d);
    if (!host)
        log_warn("no host id: upload and restore leftovers in pools are kept");
    Docs docs = { 0 };
    (void)vo_store_list(d->store, "pools/", collect, &docs);
    for (size_t i = 0; docs.keys && docs.keys[i]; i++) {
        json_t *doc = json_loads(docs.values[i], 0, NULL);
        const char *type = json_string_value(json_object_get(doc, "type"));
        const char *path = json_string_value(json_object_get(doc, "path"));
        if (type && !strcmp(type, "dir") && plain_path(path))
            sweep_pool(path, host);
        json_decref(doc);
    }
    vo_strv_free(docs.keys);
    vo_strv_free(docs.values);
    vo_strv_free(docs.revs);
    /* The default pool before its document was first saved. */
    _cleanup_free_ char *def = vo_asprintf("%s/pools/default", d->state_dir);
    sweep_pool(def, host);
}

/* images/.build-NAME directories: an image import (or template) cut short;
 * the operation that made one names it after the restart. */
static void remove_if_build_dir(const char *path, const char *name, const void *arg)
{
    VoDaemon *d = (VoDaemon *)arg;
    if (strncmp(name, BUILD_PREFIX, strlen(BUILD_PREFIX)) || !is_kind(path, true))
        return;
    if (remove_logged(path, "left by an image import cut short")) {
        _cleanup_free_ char *owner = vo_asprintf("images/%s", name + strlen(BUILD_PREFIX));
        vo_tasks_note_cleanup(d->tasks, owner, path);
    }
}

/* images/.deleting-NAME: an image delete cut short (its files were moved
 * aside first; a symlink to a directory is removed as the link). */
static void remove_if_deleting(const char *path, const char *name, const void *arg)
{
    struct stat st;
    if (!strncmp(name, DELETING_PREFIX, strlen(DELETING_PREFIX)) && lstat(path, &st) == 0 &&
        (S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)))
        remove_logged(path, "an image delete was cut short");
}

/* images/NAME directories without image.json: an image is renamed into
 * place whole (image-import.c), so only a delete cut short (vo_rm_rf
 * half done) leaves one, and it would block the name for ever. */
static void remove_if_broken_image(const char *path, const char *name, const void *arg)
{
    _cleanup_free_ char *meta = vo_asprintf("%s/image.json", path);
    struct stat st;
    if (name[0] != '.' && is_kind(path, true) && lstat(meta, &st) < 0 && errno == ENOENT)
        remove_logged(path, "an image delete was cut short");
}

/* "FILE.tmp.PID": vo_write_file_atomic's file before its rename. */
static bool atomic_temp(const char *name)
{
    const char *t = strstr(name, ".tmp.");
    if (!t || t == name || !t[5])
        return false;
    for (const char *p = t + 5; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

static void remove_if_atomic_temp(const char *path, const char *name, const void *arg)
{
    if (atomic_temp(name) && is_kind(path, false) && unlink(path) == 0)
        log_info("removed %s: a write cut short", path);
}

static void remove_atomic_temps_in(const char *path, const char *name, const void *arg)
{
    if (name[0] != '.' && is_kind(path, true))
        for_each_entry(path, remove_if_atomic_temp, NULL);
}

/* In each directory under top (not through symlinks): the temp files. */
static void sweep_atomic_temps(const char *top)
{
    for_each_entry(top, remove_atomic_temps_in, NULL);
}

/* BASE/vms/ID directories of VMs with no document: a create cut short (the
 * document is saved once its disk is made) or a delete cut short. Not
 * those of a migration cut short (RUN/migrations/ID.json): its QEMU is
 * found through them and ended by migrate-recover.c, which removes them. */
static void remove_if_no_vm(const char *path, const char *name, const void *arg)
{
    VoDaemon *d = (VoDaemon *)arg;
    if (!vo_uuid_valid(name))
        return;
    _cleanup_free_ char *intent = vo_asprintf("%s/migrations/%s.json", d->run_dir, name);
    if (access(intent, F_OK) == 0)
        return;
    _cleanup_free_ char *key = vo_asprintf("vms/%s", name);
    if (is_kind(path, true) && owner_state(d, key, path) == VO_OWNER_GONE)
        remove_logged(path, "no VM has that id");
}

static void sweep_vm_dirs(VoDaemon *d, const char *base)
{
    _cleanup_free_ char *top = vo_asprintf("%s/vms", base);
    for_each_entry(top, remove_if_no_vm, d);
}

void vo_sweep_at_start(VoDaemon *d)
{
    sweep_intents(d);
    sweep_pools(d);
    _cleanup_free_ char *images = vo_asprintf("%s/images", d->state_dir);
    for_each_entry(images, remove_if_build_dir, d);
    for_each_entry(images, remove_if_broken_image, NULL);
    for_each_entry(images, remove_if_deleting, NULL);
    sweep_vm_dirs(d, d->state_dir);
    sweep_vm_dirs(d, d->run_dir);
    sweep_atomic_temps(images);
    /* vm-import.c: the disks copied out of an OVA, in ".NAME-XXXXXX". */
    _cleanup_free_ char *imports = vo_asprintf("%s/imports", d->state_dir);
    remove_prefixed(imports, ".", true);
    const char *bases[] = { d->state_dir, d->run_dir }, *subs[] = { "vms", "networks" };
    for (size_t i = 0; i < ELEMENTSOF(bases); i++)
        for (size_t k = 0; k < ELEMENTSOF(subs); k++) {
            _cleanup_free_ char *top = vo_asprintf("%s/%s", bases[i], subs[k]);
            sweep_atomic_temps(top);
        }
}
