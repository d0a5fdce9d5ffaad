/* move.c: the cold move of a stopped VM to another host of the cluster
 * (move.h; docs/cluster.md, "Moving a stopped VM"; docs/internals.md,
 * "Cold move"), its source side. The task holds the VM's job lock (and
 * migration_task: no start or change meanwhile) from start to end. It
 * hashes each file of the VM's local volumes, asks the target to take the
 * VM (the target's own task pulls the files over the peer route below,
 * move-incoming.c, then runs the ownership transaction and registers the
 * VM), follows that task (its progress shown here, a cancel passed on),
 * and once the VM's documents are the target's drops the VM here and
 * removes the files of its moved volumes. */
#include "daemon/move.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/names.h"
#include "daemon/migrate.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "state/keys.h"
#include "storage/iscsi-url.h"
#include "util/sha256.h"
#include "util/util.h"

#define POLL_MS 500
/* The target not answering this long: the move is judged by the store
 * (the VM's document still here: it failed; gone: it happened). */
#define UNREACHABLE_MS 30000
#define PENDING "(being queued)"

typedef struct {
    VoVm *vm;
    char *pool;
    char *to_id, *to_name, *to_url;
} MoveTask;

static void move_task_free(void *p)
{
    MoveTask *m = p;
    vo_vm_unref(m->vm);
    free(m->pool);
    free(m->to_id);
    free(m->to_name);
    free(m->to_url);
    free(m);
}

/* The volume keys the VM names (disks, kernel, initrd, NVRAM), each once. */
static char **volume_keys(const VoVmSpec *spec)
{
    char **keys = vo_malloc0(sizeof(char *));
    for (size_t i = 0; i < VO_MIGRATE_VOLUMES(spec); i++) {
        const char *key = vo_migrate_volume_at(spec, i);
        bool seen = false;
        for (char **k = keys; key && *k && !seen; k++)
            seen = !strcmp(*k, key);
        if (key && !seen)
            vo_strv_push(&keys, vo_strdup(key));
    }
    return keys;
}

/* Refuses a LUN of this host's own iSCSI pool (made before the host
 * joined): the target host has no such pool, and a LUN is no file to copy.
 * info: vo_volume_move_info's. */
static int lun_stays(const char *key, json_t *info, char **ret_error)
{
    if (json_is_true(json_object_get(info, "shared")) ||
        !vo_iscsi_url_is(json_string_value(json_object_get(info, "path"))))
        return 0;
    return vo_error_set(ret_error, -EBUSY, "volume '%s' is a LUN of this host's own iSCSI pool "
                        "'%s' (made before the host joined the cluster): it cannot move; "
                        "detach it first, or make the pool again as the cluster's "
                        "(docs/storage-san.md)", key,
                        json_string_value(json_object_get(info, "pool")));
}

/* 0, or the first of the VM's volumes that cannot move (lun_stays). */
static int volumes_can_move(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    _cleanup_strv_ char **keys = volume_keys(spec);
    int r = 0;
    for (char **k = keys; *k && r >= 0; k++) {
        json_t *info = NULL;
        r = vo_volume_move_info(d, *k, &info, ret_error);
        if (r >= 0)
            r = lun_stays(*k, info, ret_error);
        json_decref(info);
    }
    return r;
}

/* The local volumes of the VM, each with its size and SHA-256 (hashed
 * now, the VM stopped and held): [{"from","name","format","image"?,
 * "size_bytes","sha256"}]. Shared volumes are left out (nothing to copy). */
static int local_volumes(VoDaemon *d, VoTask *t, const VoVmSpec *spec, json_t **ret,
                         uint64_t *ret_total, char **ret_error)
{
    _cleanup_strv_ char **keys = volume_keys(spec);
    json_t *out = json_array();
    int r = 0;
    *ret_total = 0;
    for (char **k = keys; *k && r >= 0; k++) {
        json_t *info = NULL;
        if ((r = vo_volume_move_info(d, *k, &info, ret_error)) < 0)
            break;
        const char *path = json_string_value(json_object_get(info, "path"));
        const char *backing = json_string_value(json_object_get(info, "backing"));
        struct stat st;
        char hex[VO_SHA256_HEX_LEN + 1];
        if (json_is_true(json_object_get(info, "shared"))) {
            /* on a shared pool: the target reaches the same file */
        } else if (vo_iscsi_url_is(path)) {
            r = lun_stays(*k, info, ret_error);
        } else if (backing) {
            r = vo_error_set(ret_error, -EBUSY, "volume '%s' is a linked clone of volume '%s' "
                             "(not of an image): it cannot move; make it a full copy first "
                             "(vireo volume clone)", *k, backing);
        } else if (stat(path, &st) < 0) {
            r = vo_error_set(ret_error, -errno, "volume '%s': %s: %s", *k, path,
                             strerror(errno));
        } else {
            if (t) {
                _cleanup_free_ char *msg = vo_asprintf("hashing volume '%s'", *k);
                vo_task_progress(t, 2, msg);
            }
            if ((r = vo_sha256_file(path, hex)) < 0)
                vo_error_set(ret_error, r, "volume '%s': cannot hash %s: %s", *k, path,
                             strerror(-r));
            else {
                json_array_append_new(
                    out, json_pack("{s:s, s:O, s:O, s:O*, s:I, s:s}", "from", *k, "name",
                                   json_object_get(info, "name"), "format",
                                   json_object_get(info, "format"), "image",
                                   json_object_get(info, "image"), "size_bytes",
                                   (json_int_t)st.st_size, "sha256", hex));
                *ret_total += (uint64_t)st.st_size;
            }
        }
        json_decref(info);
    }
    if (r < 0) {
        json_decref(out);
        return r;
    }
    *ret = out;
    return 0;
}

/* Whether the VM's document is still in this host's namespace. */
static bool still_here(VoDaemon *d, const char *vm_id)
{
    _cleanup_free_ char *key = vo_key_vm(vm_id);
    int r = vo_store_get(d->store, key, NULL, NULL);
    return r != -ENOENT;
}

typedef enum { FOLLOW_DONE, FOLLOW_FAILED, FOLLOW_CANCELLED } FollowEnd;

/* Follows the target's task to its end; its progress becomes this task's. */
static FollowEnd follow(VoDaemon *d, VoTask *t, MoveTask *m, const char *vm_id,
                        const char *task_id, char **ret_error)
{
    _cleanup_free_ char *path = vo_asprintf("/v1/tasks/%s", task_id);
    _cleanup_free_ char *cancel_path = vo_asprintf("/v1/tasks/%s/cancel", task_id);
    int64_t last_ok = vo_now_ms();
    bool cancel_sent = false;
    for (;;) {
        if (!cancel_sent && vo_task_cancelled(t)) {
            _cleanup_free_ char *cerr = NULL;
            json_t *body = json_object();
            if (vo_migrate_peer_call(d, m->to_url, "POST", cancel_path, body, NULL, &cerr) < 0)
                log_warn("move to %s: cancelling its task %s: %s", m->to_name, task_id, cerr);
            json_decref(body);
            cancel_sent = true;
        }
        json_t *task = NULL;
        _cleanup_free_ char *error = NULL;
        int r = vo_migrate_peer_call(d, m->to_url, "GET", path, NULL, &task, &error);
        if (r < 0) {
            if (vo_now_ms() - last_ok > UNREACHABLE_MS) {
                if (!still_here(d, vm_id))
                    return FOLLOW_DONE; /* the transaction happened */
                vo_error_set(ret_error, -EHOSTUNREACH, "host '%s' does not answer (%s)",
                             m->to_name, error);
                return FOLLOW_FAILED;
            }
            (void)poll(NULL, 0, POLL_MS);
            continue;
        }
        last_ok = vo_now_ms();
        const char *state = json_string_value(json_object_get(task, "state"));
        if (state && !strcmp(state, "succeeded")) {
            json_decref(task);
            return FOLLOW_DONE;
        }
        if (state && (!strcmp(state, "failed") || !strcmp(state, "cancelled"))) {
            const char *msg = json_string_value(
                json_object_get(json_object_get(task, "error"), "message"));
            vo_error_set(ret_error, -EIO, "%s", msg ? msg : state);
            FollowEnd end = !strcmp(state, "cancelled") || cancel_sent ? FOLLOW_CANCELLED
                                                                        : FOLLOW_FAILED;
            json_decref(task);
            return end;
        }
        json_int_t pct = json_integer_value(json_object_get(task, "progress"));
        const char *msg = json_string_value(json_object_get(task, "message"));
        json_t *details = json_object_get(task, "details");
        vo_task_set_details(t, (int)(5 + pct * 90 / 100),
                            cancel_sent ? "cancelling" : msg ? msg : "moving",
                            json_is_object(details) ? json_deep_copy(details)
                                                    : json_pack("{s:s}", "phase", "copy"));
        json_decref(task);
        (void)poll(NULL, 0, POLL_MS);
    }
}

static int task_move(VoTask *t, void *userdata)
{
    MoveTask *m = userdata;
    VoVm *vm = m->vm;
    VoDaemon *d = vm->d;
    int64_t start = vo_now_ms();
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    _cleanup_free_ char *vm_id = vo_strdup(vm->spec->id);
    (void)vo_vm_save_flush(vm); /* the exit's save (vm-save-later.c) before the move reads it */
    VoVmState state = vm->state;
    int64_t rev = vm->rev;
    bool gone = vm->migrated_away;
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *error = NULL;
    int r = 0;
    if (gone || vo_vm_state_active(state))
        r = vo_error_set(&error, -EBUSY, "VM '%s' is %s: only a stopped VM moves (a running "
                         "one: vireo vm migrate)", name,
                         gone ? "migrated away" : vo_vm_state_to_string(state));
    json_t *vols = NULL;
    uint64_t total = 0;
    /* Again under the job: a CD-ROM insert queued before the move ran
     * first. */
    if (r >= 0)
        r = vo_migrate_check_cdrom(d, spec, "vm move", &error);
    if (r >= 0) {
        vo_task_set_details(t, 1, "hashing the VM's local volumes",
                            json_pack("{s:s, s:s}", "phase", "prepare", "to", m->to_name));
        r = local_volumes(d, t, spec, &vols, &total, &error);
    }
    vo_vm_spec_free(spec);
    if (r < 0) {
        vo_migrate_clear_mark(vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, r, "cannot move VM '%s': %s", name, error);
    }

    /* The target takes the VM: its task copies, switches and registers. */
    json_t *req = json_pack("{s:s, s:s, s:s, s:I, s:s, s:O}", "vm", vm_id, "vm_name", name,
                            "source_host", d->host_id, "vm_rev", (json_int_t)rev, "pool",
                            m->pool ? m->pool : VO_DEFAULT_POOL, "volumes", vols);
    json_t *answer = NULL;
    r = vo_migrate_peer_call(d, m->to_url, "POST", "/v1/moves/incoming", req, &answer, &error);
    json_decref(req);
    const char *task_id = json_string_value(json_object_get(json_object_get(answer, "task"),
                                                            "id"));
    if (r >= 0 && !task_id)
        r = vo_error_set(&error, -EPROTO, "the target answered no task");
    if (r < 0) {
        json_decref(answer);
        json_decref(vols);
        vo_migrate_clear_mark(vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, r == -EBUSY || r == -EINVAL ? r : -EIO, "host '%s' cannot take "
                            "VM '%s': %s", m->to_name, name, error);
    }
    _cleanup_free_ char *their_task = vo_strdup(task_id);
    json_decref(answer);
    log_info("vm %s: moving to host %s (its task %s, %llu bytes to copy)", name, m->to_name,
             their_task, (unsigned long long)total);
    FollowEnd end = follow(d, t, m, vm_id, their_task, &error);
    if (end != FOLLOW_DONE) {
        json_decref(vols);
        vo_migrate_clear_mark(vm);
        pthread_mutex_unlock(&vm->job);
        if (end == FOLLOW_CANCELLED) {
            log_info("vm %s: move to %s cancelled; the VM stays here", name, m->to_name);
            return vo_task_fail(t, -ECANCELED, "cancelled: VM '%s' stays on this host", name);
        }
        log_warn("vm %s: move to %s failed: %s", name, m->to_name, error);
        return vo_task_fail(t, -EIO, "the move of VM '%s' to host '%s' failed (the VM stays "
                            "here): %s", name, m->to_name, error);
    }

    /* The VM's documents are the target's: drop it here, then the files of
     * its moved volumes (a failure leaves a file for the sweep: see
     * docs/internals.md, "Cold move"). */
    pthread_mutex_lock(&vm->lock);
    vm->migrated_away = true;
    pthread_mutex_unlock(&vm->lock);
    vo_migrate_clear_mark(vm);
    vo_vm_forget_migrated(vm);
    size_t i;
    json_t *v;
    json_array_foreach(vols, i, v) {
        const char *key = json_string_value(json_object_get(v, "from"));
        _cleanup_free_ char *pool = strndup(key, strcspn(key, "/")), *verr = NULL;
        if (!pool)
            abort();
        if (vo_volume_sync_moved(d, pool, key + strlen(pool) + 1, true, &verr) < 0)
            log_warn("vm %s: moved, but its volume '%s' here stays: %s (the start-up sweep "
                     "reports it)", name, key, verr);
    }
    json_decref(vols);
    pthread_mutex_unlock(&vm->job);
    vo_task_set_result(t, json_pack("{s:s, s:s, s:I, s:I}", "vm", vm_id, "to", m->to_name,
                                    "bytes", (json_int_t)total, "total_time_ms",
                                    (json_int_t)(vo_now_ms() - start)));
    vo_task_set_details(t, 100, "done", json_pack("{s:s, s:I, s:I}", "phase", "done",
                                                  "bytes_copied", (json_int_t)total,
                                                  "bytes_total", (json_int_t)total));
    log_info("vm %s: moved to host %s", name, m->to_name);
    return 0;
}

int vo_vm_move(VoDaemon *d, VoVm *vm, const char *to, const char *pool, json_t **ret_task,
               char **ret_error)
{
    if (pool && !vo_name_valid(pool))
        return vo_error_set(ret_error, -EINVAL, "pool: '%s' is not a pool name", pool);
    /* A UEFI VM's NVRAM moves with its disks (volume_keys), and one whose
     * NVRAM is missing is refused at once; an ISO in its CD-ROM on this
     * host's own pool does not move: refused, saying how. */
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *now = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    int c = vo_migrate_check_cdrom(d, now, "vm move", ret_error);
    if (c >= 0)
        c = vo_migrate_check_nvram(d, now, "vm move", ret_error);
    vo_vm_spec_free(now);
    if (c < 0)
        return c;
    pthread_mutex_lock(&vm->lock);
    VoVmState s = vm->state;
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    _cleanup_free_ char *busy = vo_strdup(vm->migration_task);
    pthread_mutex_unlock(&vm->lock);
    if (vo_vm_state_active(s))
        return vo_error_set(ret_error, -EBUSY, "VM '%s' is %s: use vireo vm migrate to move "
                            "a running VM (vm move is for a stopped one)", name,
                            vo_vm_state_to_string(s));
    if (busy)
        return vo_error_set(ret_error, -EBUSY, "VM '%s' is migrating or moving already (task "
                            "%s)", name, busy);
    VoClusterHost h = { 0 };
    int r = vo_migrate_find_target(d, vm, to, pool, &h, ret_error);
    if (r >= 0) { /* a cluster and a target: then what cannot go there */
        pthread_mutex_lock(&vm->lock);
        now = vo_vm_spec_copy(vm->spec);
        pthread_mutex_unlock(&vm->lock);
        r = volumes_can_move(d, now, ret_error);
        vo_vm_spec_free(now);
        if (r < 0)
            vo_cluster_host_clear(&h);
    }
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    busy = vo_strdup(vm->migration_task);
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    if (!busy) { /* held from here: a start, change or second move is refused */
        vm->migration_task = vo_strdup(PENDING);
        vm->migration_to = vo_strdup(h.name);
    }
    pthread_mutex_unlock(&vm->lock);
    if (busy)
        r = vo_error_set(ret_error, -EBUSY, "VM '%s' is migrating or moving already (task "
                         "%s)", name, busy);
    else
        r = vo_migrate_check_compat(d, vm, spec, h.id, h.name, "move", ret_error);
    vo_vm_spec_free(spec);
    if (r < 0) {
        if (!busy)
            vo_migrate_clear_mark(vm);
        vo_cluster_host_clear(&h);
        return r;
    }
    MoveTask *m = vo_malloc0(sizeof(*m));
    *m = (MoveTask){ .vm = vo_vm_ref(vm), .pool = vo_strdup(pool), .to_id = TAKE_PTR(h.id),
                     .to_name = TAKE_PTR(h.name), .to_url = TAKE_PTR(h.url) };
    vo_cluster_host_clear(&h);
    r = vo_vm_submit(d, vm, "move", task_move, m, move_task_free, ret_task, ret_error);
    if (r < 0) {
        vo_migrate_clear_mark(vm);
        return r;
    }
    pthread_mutex_lock(&vm->lock);
    if (vm->migration_task && !strcmp(vm->migration_task, PENDING)) {
        free(vm->migration_task);
        vm->migration_task = vo_strdup(json_string_value(json_object_get(*ret_task, "id")));
    }
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

/* ---- the peer route the target pulls from ------------------------------------------ */

int vo_move_outgoing_file(VoDaemon *d, const char *vm_id, const char *pool, const char *volume,
                          int *ret_fd, uint64_t *ret_size, char **ret_error)
{
    _cleanup_(vo_vm_unrefp) VoVm *vm = vo_vms_find(d, vm_id);
    if (!vm)
        return vo_error_set(ret_error, -ENOENT, "no VM %s on this host", vm_id);
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, volume);
    pthread_mutex_lock(&vm->lock);
    bool moving = vm->migration_task && !vo_vm_state_active(vm->state) && !vm->migrated_away;
    bool named = false;
    for (size_t i = 0; i < VO_MIGRATE_VOLUMES(vm->spec) && !named; i++) {
        const char *mine = vo_migrate_volume_at(vm->spec, i);
        named = mine && !strcmp(mine, key);
    }
    pthread_mutex_unlock(&vm->lock);
    if (!moving)
        return vo_error_set(ret_error, -EBUSY, "VM %s is not being moved", vm_id);
    if (!named)
        return vo_error_set(ret_error, -ENOENT, "VM %s has no volume '%s'", vm_id, key);
    _cleanup_free_ char *path = NULL;
    int r = vo_volume_file(d, pool, volume, &path, ret_error);
    if (r < 0)
        return r;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    struct stat st;
    if (fd < 0)
        return vo_error_set(ret_error, -errno, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vo_error_set(ret_error, -EIO, "%s is not a regular file", path);
    }
    *ret_fd = fd;
    *ret_size = (uint64_t)st.st_size;
    return 0;
}
