/* vm-clone.c: a VM's clone (POST /v1/vms/{vm}/clone, docs/api.md). The
 * source must be stopped; the clone is made on the source's host: a new VM
 * with the source's settings (CPUs, memory, firmware, display, boot order,
 * cloud-init settings, NICs on the same networks, project, group), new MACs
 * claimed in the cluster's MAC index, the UEFI NVRAM a copy of the
 * source's, and each disk: of a dir pool, a full copy (qcow2) in the target
 * pool or its own pool; of an rbd pool, made inside Ceph in its own pool
 * (rbd-vm-clone.h): a full copy of the RBD image, or with full false a
 * linked clone (an RBD snapshot of the source's image, protected, and a
 * clone of it: the source keeps writing its image; its volume backs the
 * clone, so it cannot be deleted while the clone exists). It gets no
 * snapshots, backups or HA flag, and a new id (so cloud-init sees a new
 * instance-id). The clone is registered as a VM being made at the request
 * (vm-register.c: its name, MACs and project room taken, as a create does),
 * so a second request of its name is refused before anything is copied; a
 * failure unregisters it. It can be cancelled (vireo task cancel): a copy
 * stops at once (qemu-img's, or an RBD image's between two objects) and
 * what was made goes, as on a failure. Linked clones of dir disks are refused: a volume
 * that backs linked clones cannot be a VM's disk (storage rules), and the
 * source keeps its disks. An intent record names each volume before it is
 * made; on any failure what was made goes again (and a vireod that dies
 * midway removes it at its next start). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "conf/names.h"
#include "daemon/fence.h"
#include "daemon/mac-claims.h"
#include "daemon/migrate-safe.h"
#include "daemon/networks.h"
#include "daemon/storage.h"
#include "daemon/sweep.h"
#include "daemon/vm-internal.h"
#include "jobs/tasks.h"
#include "state/keys.h"
#include "state/project-usage.h"
#include "state/relations.h"
#include "state/store.h"
#include "storage/volume-path.h"
#include "util/test-hold.h"
#include "util/util.h"

typedef struct {
    VoVm *vm;    /* the source */
    VoVm *clone; /* registered, provisioning, until the task made it */
    char *name;  /* the clone's */
    char *pool;  /* where its volumes go; NULL: each disk's own pool */
    bool full;   /* false: its rbd disks are linked clones (RBD snapshot + clone) */
} CloneOp;

static void clone_op_free(void *userdata)
{
    CloneOp *op = userdata;
    vo_vm_unref(op->vm);
    if (op->clone)
        vo_vm_unref(op->clone);
    free(op->name);
    free(op->pool);
    free(op);
}

/* A clone cancelled before it ran: its name, MACs and project room go. */
static void clone_op_undo(void *userdata)
{
    CloneOp *op = userdata;
    vo_vm_unregister_provisioning(op->clone);
}

/* The pool of volume key "POOL/NAME". */
static char *pool_of_key(const char *key)
{
    char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return vo_strdup(key);
    free(name);
    return pool;
}

/* Pool pool's type ("dir", "rbd", ...; malloc'd), or NULL with a 400
 * naming what when it does not exist here. */
static char *pool_type(VoDaemon *d, const char *pool, const char *what, char **ret_error)
{
    json_t *doc = NULL;
    _cleanup_free_ char *ignored = NULL;
    int r = vo_pool_get_json(d, pool, &doc, &ignored);
    char *type = r >= 0 ? vo_strdup(json_string_value(json_object_get(doc, "type"))) : NULL;
    json_decref(doc);
    if (!type)
        (void)vo_error_set(ret_error, -EINVAL, "%s: pool '%s' does not exist here (see vireo "
                           "pool list)", what, pool);
    return type;
}

/* Where a volume of the source in pool own (what: which) is cloned to:
 * into (the request's pool, or NULL) for a dir pool's, its own pool for an
 * rbd pool's (inside Ceph); a linked clone (!full) for rbd pools only. */
static int check_clone_pool(VoDaemon *d, const char *own, const char *into, bool full,
                            bool disk, const char *what, char **ret_error)
{
    _cleanup_free_ char *type = pool_type(d, own, what, ret_error);
    _cleanup_free_ char *into_type = into && type ? pool_type(d, into, "pool", ret_error) : NULL;
    if (!type || (into && !into_type))
        return -EINVAL;
    bool rbd = !strcmp(type, "rbd") && disk;
    if (!rbd && strcmp(type, "dir"))
        return vo_error_set(ret_error, -EINVAL, "%s: pool '%s' is a %s pool: a VM clone copies "
                            "%s in dir%s pools only (not supported yet for %s pools)", what, own,
                            type, disk ? "disks" : "the UEFI NVRAM", disk ? " and rbd" : "",
                            type);
    if (rbd && into && strcmp(into, own))
        return vo_error_set(ret_error, -EINVAL, "pool: %s is in rbd pool '%s', and a VM clone "
                            "makes its disks of rbd pools inside their own pool: leave pool out "
                            "or give '%s'", what, own, own);
    if (!rbd && into && strcmp(into_type, "dir"))
        return vo_error_set(ret_error, -EINVAL, "pool: pool '%s' is a %s pool: %s, in a dir "
                            "pool, is copied into a dir pool", into, into_type, what);
    if (!rbd && !full)
        return vo_error_set(ret_error, -EINVAL, "full: a linked VM clone is not possible for "
                            "%s in dir pool '%s' (a volume that backs linked clones cannot be a "
                            "VM's disk, and the source keeps its disks; linked clones are made "
                            "of disks in rbd pools): leave full out or give true", what, own);
    return vo_pool_check_reachable(d, rbd || !into ? own : into, ret_error);
}

/* Each of the source's volumes (disks, NVRAM) can be cloned as asked. */
static int check_source_pools(VoDaemon *d, VoVm *vm, const char *into, bool full,
                              char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    _cleanup_vm_spec_ VoVmSpec *s = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    int r = 0;
    for (size_t i = 0; r >= 0 && i < s->n_disks; i++) {
        _cleanup_free_ char *pool = pool_of_key(s->disks[i].volume);
        _cleanup_free_ char *what = vo_asprintf("disk %zu (%s)", i, s->disks[i].volume);
        r = check_clone_pool(d, pool, into, full, true, what, ret_error);
    }
    if (r >= 0 && s->nvram) { /* a copy in into when that is a dir pool, else in its own */
        _cleanup_free_ char *pool = pool_of_key(s->nvram);
        _cleanup_free_ char *type = into ? pool_type(d, into, "pool", ret_error) : NULL;
        if (into && !type)
            return -EINVAL;
        r = check_clone_pool(d, pool, type && !strcmp(type, "dir") ? into : NULL, true, false,
                             "the UEFI NVRAM", ret_error);
    }
    if (r >= 0 && into && !s->n_disks && !s->nvram) {
        _cleanup_free_ char *type = pool_type(d, into, "pool", ret_error);
        r = type ? 0 : -EINVAL;
    }
    return r;
}

/* The clone's spec: the source's settings under a new id and name, no HA,
 * its disks, NVRAM and MACs still to be filled in. */
static VoVmSpec *clone_spec(const VoVmSpec *src, const char *id, const char *name)
{
    VoVmSpec *s = vo_vm_spec_copy(src);
    free(s->id);
    free(s->name);
    s->id = vo_strdup(id);
    s->name = vo_strdup(name);
    s->ha = false;
    s->ha_priority = 0;
    free(s->ha_group);
    s->ha_group = NULL;
    free(s->nvram);
    s->nvram = NULL;
    for (size_t i = 0; i < s->n_nics; i++) {
        free(s->nics[i].mac);
        s->nics[i].mac = NULL;
    }
    return s;
}

/* Drops the last of strv keys (one not made). */
static void keys_drop_last(char **keys)
{
    size_t n = vo_strv_len(keys);
    free(keys[n - 1]);
    keys[n - 1] = NULL;
}

/* Copies each disk of the resolved source src into a new volume of the
 * clone s (keys lists each before it is made, in the intent record). */
static int copy_disks(VoDaemon *d, CloneOp *op, VoTask *t, const VoVmSpec *src, VoVmSpec *s,
                      char ***keys, char **ret_error)
{
    int r = 0;
    for (size_t i = 0; r >= 0 && i < s->n_disks; i++) {
        VoDiskSpec *k = &s->disks[i];
        _cleanup_free_ char *own = pool_of_key(k->volume);
        bool rbd = vo_pool_is_rbd(d, own); /* cloned inside its own pool (Ceph) */
        _cleanup_free_ char *pool = op->pool && !rbd ? vo_strdup(op->pool) : vo_strdup(own);
        _cleanup_free_ char *volume = vo_volume_free_name_as(d, pool, s->name, "disk");
        if (!volume)
            return vo_error_set(ret_error, -ENOSPC, "no free volume name for '%s' in pool "
                                "'%s'", s->name, pool);
        if (vo_task_cancelled(t)) /* before the next disk; a copy stops at once */
            return vo_error_set(ret_error, -ECANCELED, "cancelled");
        vo_task_progress(t, (int)(5 + 80 * i / s->n_disks), "copying the disks");
        /* A shareable disk another VM runs with is being written: refused,
         * not copied torn (the source's job lock does not hold that VM). */
        if (src->disks[i].shareable &&
            (r = vo_volume_check_no_running_user(d, k->volume, "a VM clone would copy a disk "
                                                 "being written", ret_error)) < 0)
            return r;
        vo_strv_pushf(keys, "%s/%s", pool, volume);
        if ((r = vo_intent_vm_volumes(d, s->id, NULL, *keys)) < 0) {
            keys_drop_last(*keys); /* not made: never removed */
            return vo_error_set(ret_error, r, "cannot record the clone in the store: %s",
                                strerror(-r));
        }
        _cleanup_free_ char *path = NULL;
        if (rbd)
            r = vo_volume_create_rbd_copy(d, k->volume, volume, !op->full, t, &path,
                                          ret_error);
        else
            r = vo_volume_create_from_base(d, pool, volume, src->disks[i].path,
                                           vo_disk_format_to_string(src->disks[i].format), NULL,
                                           true, 0, t, &path, ret_error);
        if (r < 0) { /* not made (maybe another's name now): never removed */
            keys_drop_last(*keys);
            (void)vo_intent_vm_volumes(d, s->id, NULL, *keys);
            return r;
        }
        free(k->volume);
        k->volume = vo_asprintf("%s/%s", pool, volume);
        k->format = rbd ? VO_DISK_RAW : VO_DISK_QCOW2;
        k->owned = true;
        k->shareable = false;
        if (vo_migrate_fault("clone-exit-after-disk")) /* test: vireod dies */
            _exit(70);
        /* Tests make a clone fail here, a disk made, to see it removed. */
        if ((r = vo_test_fault("vm-clone-disk")) < 0)
            return vo_error_set(ret_error, r, "test fault after disk %zu: %s", i, strerror(-r));
    }
    return r;
}

/* New MACs for the clone's NICs, claimed in *claims. */
static int new_macs(VoDaemon *d, VoVmSpec *s, VoMacClaims **claims, char **ret_error)
{
    for (size_t i = 0; i < s->n_nics; i++) {
        char mac[18] = "";
        (void)vo_vms_new_nic_mac(d, NULL, s->nics, i, claims, s->name, mac);
        if (!mac[0])
            return vo_error_set(ret_error, -EAGAIN, "cannot claim a new MAC address for NIC "
                                "%zu in the store: clone again", i + 1);
        s->nics[i].mac = vo_strdup(mac);
    }
    return 0;
}

/* The clone's spec once its disks are made: the source's (stored) under
 * the registered clone's id, name and MACs. */
static VoVmSpec *clone_spec_of(const VoVmSpec *stored, VoVm *clone)
{
    pthread_mutex_lock(&clone->lock);
    VoVmSpec *s = clone_spec(stored, clone->spec->id, clone->spec->name);
    for (size_t i = 0; i < s->n_nics && i < clone->spec->n_nics; i++)
        s->nics[i].mac = vo_strdup(clone->spec->nics[i].mac);
    pthread_mutex_unlock(&clone->lock);
    return s;
}

static int task_clone(VoTask *t, void *userdata)
{
    CloneOp *op = userdata;
    VoVm *vm = op->vm, *clone = op->clone;
    VoDaemon *d = vm->d;
    /* The clone's job lock for the whole task (a forced delete of it waits,
     * then finds it gone); the source's keeps the source stopped (no start,
     * no disk change) until its disks are copied. */
    pthread_mutex_lock(&clone->job);
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    int r = vo_vm_check_if_match(t, vm); /* a stale If-Match: both locks released */
    if (r < 0) {
        vo_vm_unregister_provisioning(clone);
        pthread_mutex_unlock(&clone->job);
        return r;
    }
    bool active = vo_vm_state_active(vm->state);
    VoVmSpec *stored = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    pthread_mutex_lock(&clone->lock);
    bool gone = clone->deleted;
    char *id = vo_strdup(clone->spec->id);
    pthread_mutex_unlock(&clone->lock);
    _cleanup_free_ char *error = NULL, *nvram = NULL;
    _cleanup_strv_ char **keys = NULL;
    VoVmSpec *src = NULL, *spec = NULL;
    if (gone)
        r = vo_error_set(&error, -ENOENT, "VM '%s' was deleted before it was made", op->name);
    if (r >= 0 && active)
        r = vo_error_set(&error, -EBUSY, "VM '%s' is running: stop it first", stored->name);
    if (r >= 0)
        r = vo_vm_resolve(d, stored, &src, &error);
    if (r >= 0) {
        spec = clone_spec_of(stored, clone);
        r = copy_disks(d, op, t, src, spec, &keys, &error);
    }
    if (r >= 0 && src->firmware == VO_FIRMWARE_UEFI && src->nvram_path) {
        vo_task_progress(t, 88, "copying the UEFI NVRAM");
        _cleanup_free_ char *pool = op->pool && !vo_pool_is_rbd(d, op->pool)
                                        ? vo_strdup(op->pool)
                                        : pool_of_key(stored->nvram);
        if ((r = vo_vm_nvram_create_from(d, spec, pool, src->nvram_path, &nvram, &error)) >= 0) {
            spec->nvram = vo_strdup(nvram);
            vo_strv_pushf(&keys, "%s", nvram); /* made: recorded (a moment after) */
            if ((r = vo_intent_vm_volumes(d, id, NULL, keys)) < 0)
                error = vo_asprintf("cannot record the clone in the store: %s", strerror(-r));
        }
    }
    pthread_mutex_unlock(&vm->job); /* the source's files are read */
    if (r >= 0) {
        vo_task_progress(t, 95, "saving the VM");
        r = vo_vm_register_done(clone, TAKE_PTR(spec), &error); /* takes spec */
    }
    vo_vm_spec_free(spec);
    vo_vm_spec_free(src);
    _cleanup_free_ char *source = vo_strdup(stored->name);
    vo_vm_spec_free(stored);
    if (r < 0) { /* nothing half-made: the clone and the volumes made go again */
        vo_vm_unregister_provisioning(clone);
        for (char **k = keys; k && *k; k++) {
            _cleanup_free_ char *ignored = NULL;
            if (vo_volume_remove_now(d, *k, &ignored) < 0)
                log_warn("clone %s: kept volume %s: %s", op->name, *k, ignored);
        }
        if (keys)
            vo_intent_vm_end(d, id);
        pthread_mutex_unlock(&clone->job);
        free(id);
        return vo_task_fail(t, r, "cannot clone VM '%s' as '%s': %s", source, op->name,
                            error ? error : strerror(-r));
    }
    if (keys)
        vo_intent_vm_end(d, id); /* the clone's document owns them now */
    pthread_mutex_unlock(&clone->job);
    log_info("vm %s: cloned from %s (%s)", op->name, source, id);
    vo_networks_refresh_hosts(d);
    vo_task_set_result(t, json_pack("{s:s, s:s}", "vm", op->name, "id", id));
    free(id);
    return 0;
}

/* The source's disks' virtual sizes: the clone's room in its project. */
static int64_t source_disk_bytes(VoDaemon *d, const VoVmSpec *s)
{
    int64_t sum = 0;
    for (size_t i = 0; i < s->n_disks; i++) {
        int64_t size = vo_vm_volume_virtual_size(d, s->disks[i].volume);
        sum += size > 0 ? size : 0;
    }
    return sum;
}

/* Registers the clone of source (spec stored) named name as a VM being
 * made: no disks yet, new MACs (claimed, made its own by the write). */
static int register_clone(VoDaemon *d, const VoVmSpec *stored, const char *name, VoVm **ret,
                          char **ret_error)
{
    char id[37] = "";
    int r = vo_uuid_generate(id);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot make an id: %s", strerror(-r));
    VoVmSpec *spec = clone_spec(stored, id, name);
    /* Its disks and NVRAM come once made: until then none are its own. */
    for (size_t i = 0; i < spec->n_disks; i++) {
        free(spec->disks[i].path);
        free(spec->disks[i].volume);
    }
    spec->n_disks = 0;
    VoMacClaims *claims = NULL;
    r = new_macs(d, spec, &claims, ret_error);
    if (r >= 0)
        r = vo_vm_register_provisioning(d, spec, claims, source_disk_bytes(d, stored), ret,
                                        ret_error);
    else
        vo_vm_spec_free(spec);
    vo_mac_claims_release(claims);
    return r;
}

int vo_vm_clone(VoDaemon *d, VoVm *vm, const char *name, bool full, const char *pool,
                json_t **ret_task, char **ret_error)
{
    if (!vo_name_valid(name))
        return vo_error_set(ret_error, -EINVAL, "name: '%s' is invalid: use 1-63 characters "
                            "of a-z, 0-9 and '-', not starting with '-'", name ? name : "");
    if (vo_uuid_valid(name))
        return vo_error_set(ret_error, -EINVAL, "name: '%s' looks like a VM id (a UUID); give "
                            "the VM a name that does not", name);
    int r = vo_vm_precheck(vm, INACTIVE_STATES, "clone", ret_error);
    if (r < 0) {
        if (r == -EBUSY && strstr(*ret_error, ": it is ")) {
            char *more = vo_asprintf("%s (stop it first: only a stopped VM is cloned)",
                                     *ret_error);
            free(*ret_error);
            *ret_error = more;
        }
        return r;
    }
    /* Here, or (its name claim) on another host of the cluster: said at
     * once; the registration below settles a race for the name. */
    _cleanup_vm_ VoVm *taken = vo_vms_find(d, name);
    _cleanup_free_ char *name_key = vo_key_vm_name(name), *claim = NULL;
    if (taken || vo_store_get(d->store, name_key, &claim, NULL) >= 0) {
        *ret_error = vo_vm_name_taken_message(d, name);
        return -EEXIST;
    }
    if ((r = check_source_pools(d, vm, pool, full, ret_error)) < 0)
        return r;
    if ((r = vo_fence_check_start(d, ret_error)) < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    _cleanup_vm_spec_ VoVmSpec *stored = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    VoVm *clone = NULL;
    if ((r = register_clone(d, stored, name, &clone, ret_error)) < 0)
        return r;
    CloneOp *op = vo_malloc0(sizeof(*op));
    op->vm = vo_vm_ref(vm);
    op->clone = vo_vm_ref(clone);
    op->name = vo_strdup(name);
    op->pool = vo_strdup(pool);
    op->full = full;
    /* Keyed on the clone too: a delete of it queued meanwhile waits. */
    pthread_mutex_lock(&clone->lock);
    _cleanup_free_ char *clone_key = vo_key_vm_task(clone->spec->id);
    pthread_mutex_unlock(&clone->lock);
    r = vo_vm_submit_cancellable(d, vm, "clone", clone_key, task_clone, op, clone_op_free,
                                 clone_op_undo, ret_task, ret_error);
    if (r < 0) /* refused (the queue is full): the name is free again */
        vo_vm_unregister_provisioning(clone);
    vo_vm_unref(clone);
    return r;
}
