/* backups.c: taking VM backups (see backups.h): the create task under the
 * VM's job lock (QEMU's backup jobs for a running VM, qemu-storage-daemon for
 * a stopped one), retention, listing, and the delete task. The choice between
 * an incremental and a full backup: incremental only when asked, when the
 * VM's previous successful backup is still in the same pool with the same
 * disks (slots, files and sizes), and when QEMU reports every disk's bitmap
 * (named after the VM) usable; otherwise the backup is full and its record
 * says why ("reason"). A failed backup keeps the base only when its jobs
 * certainly failed (no bitmap synchronised); otherwise the next is full. */
#include "daemon/backup-internal.h"

#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "conf/cloud-init.h"
#include "daemon/backup-rbd.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "qemu/qemu-backup.h"
#include "state/records.h"
#include "storage/backup-id.h"
#include "storage/qemu-img.h"
#include "util/spawn.h"
#include "util/time-format.h"
#include "util/util.h"

/* ---- the API's view ----------------------------------------------------------- */

/* A record as the API shows it: its internal fields dropped, spec only when
 * asked for. */
static json_t *backup_view(json_t *record, const char *pool, bool with_spec)
{
    json_t *o = json_deep_copy(record);
    json_object_del(o, "created_ms");
    if (!with_spec)
        json_object_del(o, "spec");
    vo_cloud_init_json_redact(json_object_get(json_object_get(o, "spec"), "cloud_init"));
    json_object_set_new(o, "pool", json_string(pool));
    if (!json_object_get(o, "last_verify"))
        json_object_set_new(o, "last_verify", json_null());
    return o;
}

static int collect_doc(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t *doc = json_loads(value, 0, NULL);
    if (json_is_object(doc))
        json_array_append_new(userdata, doc);
    else
        json_decref(doc);
    return 0;
}

json_t *vo_backups_list_json(VoDaemon *d, const char *vm)
{
    json_t *docs = json_array(), *arr = json_array();
    (void)vo_store_list(d->store, BACKUP_DOC_PREFIX, collect_doc, docs);
    _cleanup_strv_ char **pools = vo_backup_pool_names(d);
    vo_backup_docs_sort(docs, pools);
    size_t i;
    json_t *r;
    json_array_foreach(docs, i, r) {
        const char *pool = json_string_value(json_object_get(r, "pool"));
        bool listed = false; /* a pool deleted meanwhile: not listed */
        for (char **p = pools; p && *p && pool && !listed; p++)
            listed = !strcmp(*p, pool);
        if (!listed || (vm && strcmp(json_string_value(json_object_get(r, "vm")) ?: "", vm) &&
                        strcmp(json_string_value(json_object_get(r, "vm_id")) ?: "", vm)))
            continue;
        json_array_append_new(arr, backup_view(r, pool, false));
    }
    json_decref(docs);
    return arr;
}

int vo_backup_get_json(VoDaemon *d, const char *id, json_t **ret, char **ret_error)
{
    BackupRef b = { 0 };
    int r = backup_find(d, id, &b, ret_error);
    if (r >= 0)
        *ret = backup_view(b.record, b.pool, true);
    backup_ref_clear(&b);
    return r;
}

/* ---- create ---------------------------------------------------------------------- */

typedef struct {
    VoVm *vm;
    char *pool;
    bool incremental;
    unsigned keep_last;
    unsigned bwlimit_mib;
} CreateOp;

static void create_op_free(void *p)
{
    CreateOp *op = p;
    vo_vm_unref(op->vm);
    free(op->pool);
    free(op);
}


static json_t *disks_signature(const VoVmSpec *spec, const uint64_t *sizes)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < spec->n_disks; i++)
        json_array_append_new(arr, json_pack("{s:I, s:s, s:I}", "slot",
                                             (json_int_t)spec->disks[i].slot, "volume",
                                             spec->disks[i].volume, "virtual_size",
                                             (json_int_t)sizes[i]));
    return arr;
}

/* The previous backup the next one may build on, or NULL with *ret_why. */
static json_t *usable_base(json_t *base, const char *pool, const char *pool_path,
                           json_t *signature, char **ret_why)
{
    const char *prev = json_string_value(json_object_get(base, "backup"));
    json_t *parent = NULL;
    if (!prev)
        *ret_why = vo_strdup("there is no earlier backup of this VM to build on (or its disks "
                             "changed outside backups since)");
    else if (json_is_true(json_object_get(base, "in_progress")))
        *ret_why = vo_strdup("the previous backup of this VM was interrupted");
    else if (strcmp(json_string_value(json_object_get(base, "pool")) ?: "", pool))
        *ret_why = vo_asprintf("the previous backup '%s' is in pool '%s'", prev,
                               json_string_value(json_object_get(base, "pool")));
    else if (!(parent = backup_record_load(pool_path, prev)))
        *ret_why = vo_asprintf("the previous backup '%s' no longer exists", prev);
    else if (!json_equal(json_object_get(base, "disks"), signature)) {
        *ret_why = vo_strdup("the VM's disks changed since the previous backup");
        json_decref(TAKE_PTR(parent));
    }
    return parent;
}

/* Keeps the newest keep of the VM's backups in the pool. */
static void apply_retention(VoDaemon *d, const char *pool_path, const char *vm_id, unsigned keep)
{
    json_t *all = backup_records_in(pool_path);
    json_t *mine = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r)
        if (!strcmp(json_string_value(json_object_get(r, "vm_id")) ?: "", vm_id))
            json_array_append(mine, r);
    for (size_t k = 0; json_array_size(mine) > keep && k + keep < json_array_size(mine); k++) {
        const char *id = json_string_value(json_object_get(json_array_get(mine, k), "id"));
        _cleanup_free_ char *error = NULL;
        if (backup_delete_locked(d, pool_path, id, NULL, &error) < 0)
            log_warn("backups: keep-last could not delete '%s': %s", id, error);
        else
            log_info("backups: deleted '%s' (keep-last %u)", id, keep);
    }
    json_decref(mine);
    json_decref(all);
}

typedef struct {
    VoDaemon *d;
    VoTask *t;
    VoVmSpec *spec;
    VoHvInstance *hv; /* NULL: the VM is not running */
    const CreateOp *op;
    char *copying;    /* the task's message while the disks are copied */
    VoVm *vm;
    bool paused;      /* with hv: its vCPUs are stopped */
    /* A running VM's guest file systems were frozen at the instant; or why
     * not (NULL for a stopped VM: nothing to freeze). */
    bool quiesced;
    char *quiesce_reason;
} CreateCtx;

/* The backup's instant (VoHvBackupPlan.quiesce): the guest agent freezes the
 * guest's file systems before it and thaws them after. */
static void quiesce(bool freeze, void *userdata)
{
    CreateCtx *c = userdata;
    if (!c->hv) /* a stopped VM (qemu-storage-daemon copies it): no guest to freeze */
        return;
    if (!freeze) {
        if (c->quiesced)
            vo_vm_agent_thaw(c->vm, c->hv);
        return;
    }
    free(TAKE_PTR(c->quiesce_reason));
    if (c->paused) {
        c->quiesce_reason = vo_strdup("the VM is paused: its guest cannot freeze its file "
                                      "systems");
        return;
    }
    vo_task_progress(c->t, 5, "freezing the guest's file systems (guest agent)");
    c->quiesced = vo_vm_agent_freeze(c->vm, c->hv, &c->quiesce_reason);
    if (c->quiesced)
        free(TAKE_PTR(c->quiesce_reason));
}

static void report_copy(int percent, void *userdata)
{
    CreateCtx *c = userdata;
    vo_task_progress(c->t, 5 + percent * 85 / 100, c->copying);
}

static int do_create(CreateCtx *c, char **ret_id, char **ret_error)
{
    VoDaemon *d = c->d;
    const VoVmSpec *spec = c->spec;
    _cleanup_free_ char *pool_path = NULL;
    int r = vo_backup_pool_path(d, c->op->pool, &pool_path, ret_error);
    if (r < 0)
        return r;
    const char *pool = c->op->pool ? c->op->pool : VO_DEFAULT_BACKUP_POOL;
    uint32_t suffix = 0;
    if (getrandom(&suffix, sizeof(suffix), 0) < 0)
        suffix = (uint32_t)vo_now_ms();
    int64_t created = vo_wall_ms(), started = vo_now_ms();
    _cleanup_free_ char *id = vo_backup_id_make(spec->name, created, suffix);
    _cleanup_free_ char *partial = backup_partial_path(d, pool_path, id);
    _cleanup_free_ char *final = vo_asprintf("%s/%s", pool_path, id);
    if (!partial)
        return vo_error_set(ret_error, -EIO, "cannot read or make this host's id in %s",
                            d->state_dir);
    if (mkdir(partial, 0750) < 0)
        return vo_error_set(ret_error, -errno, "cannot create %s: %s", partial, strerror(errno));

    /* What is being backed up: files, or RBD images (backup-rbd.h). */
    int rbd = vo_backup_rbd_check(d, spec, ret_error);
    r = rbd < 0 ? rbd : 0;
    _cleanup_free_ uint64_t *sizes = vo_malloc0(sizeof(uint64_t) * (spec->n_disks + 1));
    if (r >= 0 && rbd)
        r = vo_backup_rbd_sizes(d, spec, sizes, ret_error);
    for (size_t i = 0; r >= 0 && !rbd && i < spec->n_disks; i++) {
        VoImgInfo info = { 0 };
        r = vo_img_info(spec->disks[i].path, vo_disk_format_to_string(spec->disks[i].format),
                        &info, ret_error);
        if (r >= 0)
            sizes[i] = info.layers[0].virtual_size;
        vo_img_info_clear(&info);
    }
    json_t *signature = disks_signature(spec, sizes);
    json_t *base = backup_base_load(d, spec->id);
    _cleanup_free_ char *why_full = NULL;
    json_t *parent = NULL;
    if (r >= 0 && c->op->incremental)
        parent = usable_base(base, pool, pool_path, signature, &why_full);
    const char *parent_id = json_string_value(json_object_get(parent, "id"));

    /* The plan: per disk its target, and for an incremental its parent file. */
    VoHvBackupDisk *disks = vo_malloc0(sizeof(VoHvBackupDisk) * (spec->n_disks + 1));
    char **strings = NULL; /* owns the paths the plan points to */
    for (size_t i = 0; i < spec->n_disks; i++) {
        const VoDiskSpec *disk = &spec->disks[i];
        vo_strv_pushf(&strings, "%s/disk%u.qcow2", partial, disk->slot);
        disks[i] = (VoHvBackupDisk){ .slot = disk->slot, .path = disk->path,
                                     .format = disk->format, .readonly = disk->readonly,
                                     .virtual_size = sizes[i],
                                     .target_path = strings[vo_strv_len(strings) - 1] };
        const char *pfile = parent ? backup_disk_file(parent, disk->slot) : NULL;
        if (pfile) {
            vo_strv_pushf(&strings, "../%s/%s", parent_id, pfile);
            disks[i].parent_path = strings[vo_strv_len(strings) - 1];
        }
    }
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, spec->id);
    _cleanup_free_ char *bitmap = vo_asprintf(VO_BACKUP_BITMAP_PREFIX "%s", spec->id);
    VoHvBackupPlan plan = { .disks = disks, .n_disks = spec->n_disks,
                            .incremental = parent != NULL, .bitmap = bitmap, .work_dir = run_dir,
                            .speed = (uint64_t)c->op->bwlimit_mib << 20,
                            .progress = report_copy, .quiesce = quiesce, .userdata = c };
    c->copying = c->op->bwlimit_mib ? vo_asprintf("copying disks (at most %u MiB/s)",
                                                  c->op->bwlimit_mib)
                                    : vo_strdup("copying disks");
    VoHvBackupResult result = { 0 };
    _cleanup_free_ char *nvram_file = spec->nvram_path ? vo_asprintf("%s/nvram.qcow2", partial)
                                                       : NULL;

    /* Until it ends, the VM's base says a backup is under way: if vireod
     * dies meanwhile, the next backup is a full one. */
    const char *prev = json_string_value(json_object_get(base, "backup"));
    json_t *pending = json_pack("{s:o, s:s, s:O, s:b}", "backup",
                                parent && prev ? json_string(prev) : json_null(), "pool", pool,
                                "disks", signature, "in_progress", 1);
    bool began = r >= 0;
    if (began && rbd) /* what a crash or a failure left (the base's are kept) */
        vo_backup_rbd_prune(d, spec, prev);
    if (began) {
        backup_base_save(d, spec->id, pending);
        vo_task_progress(c->t, 5, parent ? "starting an incremental backup"
                                         : "starting a full backup");
        if (rbd) /* the VM paused for the instant unless it is (or is stopped) */
            r = vo_backup_rbd_take(d, spec, c->hv && !c->paused ? c->hv : NULL, id, parent_id,
                                   &plan, nvram_file, &result, ret_error);
        else if (c->hv)
            r = d->driver->backup ? d->driver->backup(c->hv, &plan, &result, ret_error)
                                  : vo_error_set(ret_error, -EOPNOTSUPP, "the %s driver "
                                                 "cannot back up a running VM", d->driver->name);
        else
            r = vo_qemu_backup_offline(&plan, &result, ret_error);
    }

    json_t *record = NULL;
    if (r >= 0) {
        vo_task_progress(c->t, 92, "recording checksums");
        bool incremental = result.incremental;
        json_t *list = json_array();
        for (size_t i = 0; r >= 0 && i < spec->n_disks; i++) {
            json_t *disk = json_pack("{s:I, s:I, s:s, s:I}", "slot", (json_int_t)disks[i].slot,
                                     "index", (json_int_t)i, "file",
                                     strrchr(disks[i].target_path, '/') + 1, "virtual_size",
                                     (json_int_t)sizes[i]);
            r = backup_disk_measure(disks[i].target_path, disk, ret_error);
            json_array_append_new(list, disk);
        }
        /* UEFI: the NVRAM (boot entries, keys), a full copy in every backup,
         * taken once the disks are copied (OVMF writes it only when the
         * guest changes a variable). -U: a running QEMU holds its lock.
         * An RBD NVRAM was exported from its snapshot with the disks. */
        if (r >= 0 && nvram_file && !rbd) {
            char *argv[] = { "qemu-img", "convert", "-U", "-f", "qcow2", "-O", "qcow2",
                             spec->nvram_path, nvram_file, NULL };
            _cleanup_free_ char *out = NULL;
            r = vo_spawn_wait(argv, 60000, &out);
            if (r < 0)
                vo_error_set(ret_error, r, "cannot copy the UEFI NVRAM %s: %s",
                             spec->nvram_path, out && *out ? out : strerror(-r));
        }
        const char *reason = why_full ? why_full : result.reason;
        record = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:b, s:o, s:o}", "id", id, "vm",
                           spec->name, "vm_id", spec->id, "kind",
                           incremental ? "incremental" : "full", "created_at",
                           vo_time_json(created), "created_ms", (json_int_t)created,
                           "vm_running", c->hv != NULL, "disks", list, "spec",
                           vo_vm_spec_to_json(spec));
        json_object_set_new(record, "parent", incremental ? json_string(parent_id) : json_null());
        json_object_set_new(record, "reason", c->op->incremental && !incremental && reason
                                                  ? json_string(reason) : json_null());
        json_object_set_new(record, "duration_ms", json_integer(vo_now_ms() - started));
        /* Whether the guest's file systems were frozen at the instant. */
        json_object_set_new(record, "quiesced", json_boolean(c->quiesced));
        _cleanup_free_ char *why = c->quiesced          ? NULL
                                   : c->quiesce_reason ? vo_strdup(c->quiesce_reason)
                                   : c->hv ? vo_asprintf("the %s driver does not quiesce "
                                                         "backups", d->driver->name)
                                           : vo_strdup("the VM was not running");
        json_object_set_new(record, "quiesce_reason", why ? json_string(why) : json_null());
        if (nvram_file)
            json_object_set_new(record, "nvram", json_string("nvram.qcow2"));
        backup_record_total(record);
        if (r >= 0 && (r = backup_record_save(partial, record)) < 0)
            vo_error_set(ret_error, r, "cannot write the backup's record: %s", strerror(-r));
        if (r >= 0 && rename(partial, final) < 0)
            r = vo_error_set(ret_error, -errno, "cannot rename %s: %s", partial, strerror(errno));
        /* Files first, then the document, which lists the backup. A crash
         * between leaves a complete backup that the next start adopts. */
        if (r >= 0 && (r = backup_doc_put(d, pool, record, true)) < 0) {
            vo_error_set(ret_error, r, "cannot record the backup in the store: %s",
                         strerror(-r));
            if (rename(final, partial) < 0) /* removed below, as a partial one */
                (void)vo_rm_rf(final);
        }
    }
    if (r < 0) {
        (void)vo_rm_rf(partial);
        /* An incremental whose jobs certainly failed left the bitmaps as
         * they were, so the base stands. After anything else (jobs that
         * succeeded or may have, then a failure) the next backup is full. */
        json_object_set_new(pending, "backup", parent && result.incremental &&
                                                   result.jobs_failed && prev
                                                   ? json_string(prev) : json_null());
    } else
        json_object_set_new(pending, "backup", json_string(id));
    json_object_set_new(pending, "in_progress", json_false());
    if (began) /* a backup that never began leaves the base alone */
        backup_base_save(d, spec->id, pending);
    if (r >= 0) {
        log_info("vm %s: backup %s (%s, %lld bytes)", spec->name, id,
                 json_string_value(json_object_get(record, "kind")),
                 (long long)json_integer_value(json_object_get(record, "stored_bytes")));
        if (rbd) /* the snapshots of the new backup are the next one's base */
            vo_backup_rbd_prune(d, spec, id);
        if (c->op->keep_last)
            apply_retention(d, pool_path, spec->id, c->op->keep_last);
        *ret_id = TAKE_PTR(id);
    }
    json_decref(record);
    json_decref(pending);
    json_decref(signature);
    json_decref(base);
    json_decref(parent);
    free(result.reason);
    vo_strv_free(strings);
    free(disks);
    free(TAKE_PTR(c->copying));
    return r;
}

static int task_create(VoTask *t, void *userdata)
{
    CreateOp *op = userdata;
    VoVm *vm = op->vm;
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    if (vo_vm_check_if_match(t, vm) < 0)
        return -VO_EIFMATCH;
    VoVmSpec *stored = vo_vm_spec_copy(vm->spec);
    CreateCtx c = { .d = vm->d, .t = t, .op = op, .vm = vm,
                    .hv = vo_vm_state_active(vm->state) ? vm->hv : NULL,
                    .paused = vm->state == VO_VM_PAUSED };
    bool transient = vm->state == VO_VM_STARTING || vm->state == VO_VM_STOPPING;
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *error = NULL, *id = NULL;
    /* The disks' files on this host; the record keeps the spec (names only). */
    int r = vo_vm_resolve(vm->d, stored, &c.spec, &error);
    if (r < 0)
        c.spec = TAKE_PTR(stored);
    vo_vm_spec_free(stored);
    if (r >= 0 && transient)
        r = vo_error_set(&error, -EBUSY, "the VM is starting or stopping; try again");
    else if (r >= 0) {
        pthread_mutex_lock(&vo_backups_lock);
        r = do_create(&c, &id, &error);
        pthread_mutex_unlock(&vo_backups_lock);
    }
    pthread_mutex_unlock(&vm->job);
    if (r >= 0) {
        vo_task_set_result(t, json_pack("{s:s}", "backup", id));
        vo_task_progress(t, 99, id);
    } else
        r = vo_task_fail(t, r, "cannot back up VM '%s': %s", c.spec->name,
                         r == -ENOSPC ? "the backup pool is full (No space left on device)"
                                      : error ? error : strerror(-r));
    vo_vm_spec_free(c.spec);
    free(c.quiesce_reason);
    return r;
}

/* A VM with disks in rbd pools and others is refused (400) at once, not
 * failed half-way in the task: its disks would have no one instant. */
static int refuse_mixed_disks(VoDaemon *d, VoVm *vm, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    _cleanup_vm_spec_ VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    int r = vo_backup_rbd_check(d, spec, ret_error);
    return r < 0 ? r : 0;
}

int vo_backup_create(VoDaemon *d, VoVm *vm, const VoBackupCreateArgs *args, json_t **ret_task,
                     char **ret_error)
{
    int r = vo_vm_precheck(vm, ACTIVE_STATES | INACTIVE_STATES, "back up", ret_error);
    if (r < 0)
        return r;
    if (args->keep_last > 1000)
        return vo_error_set(ret_error, -EINVAL, "keep_last: %u is out of range (1-1000, or 0 "
                            "for all)", args->keep_last);
    if (args->bwlimit_mib > VO_BACKUP_BWLIMIT_MAX_MIB)
        return vo_error_set(ret_error, -EINVAL, "bwlimit_mib: %u is out of range (1-%u MiB/s)",
                            args->bwlimit_mib, VO_BACKUP_BWLIMIT_MAX_MIB);
    pthread_mutex_lock(&vm->lock);
    bool no_disks = vm->spec->n_disks == 0;
    pthread_mutex_unlock(&vm->lock);
    if (no_disks) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_error_set(ret_error, -EINVAL, "VM '%s' has no disk to back up", name);
    }
    if ((r = refuse_mixed_disks(d, vm, ret_error)) < 0)
        return r;
    _cleanup_free_ char *path = NULL;
    r = vo_backup_pool_path(d, args->pool, &path, ret_error);
    if (r < 0)
        return r;
    CreateOp *op = vo_malloc0(sizeof(*op));
    *op = (CreateOp){ .vm = vo_vm_ref(vm), .pool = vo_strdup(args->pool),
                      .incremental = args->incremental, .keep_last = args->keep_last,
                      .bwlimit_mib = args->bwlimit_mib };
    return vo_vm_submit_keyed(d, vm, "backup-create", BACKUPS_TASK_KEY, task_create, op,
                              create_op_free, ret_task, ret_error);
}

/* ---- delete ------------------------------------------------------------------------ */

typedef struct {
    VoDaemon *d;
    char *id;
} IdOp;

static void id_op_free(void *p)
{
    IdOp *op = p;
    free(op->id);
    free(op);
}

static int task_delete(VoTask *t, void *userdata)
{
    IdOp *op = userdata;
    _cleanup_free_ char *error = NULL;
    BackupRef b = { 0 };
    pthread_mutex_lock(&vo_backups_lock);
    int r = backup_find(op->d, op->id, &b, &error);
    if (r >= 0)
        r = backup_if_match(t, &b, &error);
    if (r >= 0)
        r = backup_delete_locked(op->d, b.pool_path, op->id, t, &error);
    pthread_mutex_unlock(&vo_backups_lock);
    backup_ref_clear(&b);
    return r < 0 ? vo_task_fail(t, r, "cannot delete backup '%s': %s", op->id,
                                error ? error : strerror(-r))
                 : 0;
}

int vo_backup_delete(VoDaemon *d, const char *id, json_t **ret_task, char **ret_error)
{
    BackupRef b = { 0 };
    int r = backup_find(d, id, &b, ret_error);
    backup_ref_clear(&b);
    if (r < 0)
        return r;
    IdOp *op = vo_malloc0(sizeof(*op));
    *op = (IdOp){ .d = d, .id = vo_strdup(id) };
    VoTaskDesc desc = { .kind = "backup-delete", .target = id, .target_id = id,
                        .keys = { BACKUPS_TASK_KEY } };
    r = vo_tasks_submit(d->tasks, &desc, task_delete, op, id_op_free, ret_task, ret_error);
    if (r < 0)
        id_op_free(op);
    return r;
}
