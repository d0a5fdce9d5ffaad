/* backup-restore.c: restoring a backup (qemu-img convert reads each disk's
 * backing chain, every layer named: the backup and those it builds on) into a new VM made from
 * the stored definition, or over the original VM while it is stopped (all
 * its disks or none: files swapped, or RBD images written behind an undo
 * snapshot); and verifying a backup's files against the checksums
 * recorded at creation. */
#include "daemon/backup-internal.h"
#include "daemon/backup-rbd.h"

#include <string.h>
#include <sys/random.h>

#include "conf/names.h"
#include "daemon/host-id.h"
#include "daemon/images.h"
#include "daemon/networks.h"
#include "daemon/snapshots.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "storage/image-header.h"
#include "storage/iscsi-url.h"
#include "storage/qemu-img.h"
#include "storage/volume-path.h"
#include "util/cancel.h"
#include "util/sha256.h"
#include "util/spawn.h"
#include "util/test-hold.h"
#include "util/time-format.h"
#include "util/util.h"

typedef struct {
    VoDaemon *d;
    char *id, *as, *pool;
    VoVm *original; /* restore over this VM, or NULL: into a new VM named as */
    uint64_t rate;  /* bytes/s each copy or read may use (bwlimit_mib); 0: no limit */
} RestoreOp;

static void restore_op_free(void *p)
{
    RestoreOp *op = p;
    free(op->id);
    free(op->as);
    free(op->pool);
    if (op->original)
        vo_vm_unref(op->original);
    free(op);
}

static void report_convert(int percent, void *userdata)
{
    vo_task_progress(userdata, 10 + percent * 80 / 100, "copying disks");
}

/* Every backup the record builds on must still be there. */
static int check_chain(const BackupRef *b, char **ret_error)
{
    json_t *cur = json_incref(b->record);
    int r = 0, depth = 0;
    while (cur && r == 0) {
        const char *parent = json_string_value(json_object_get(cur, "parent"));
        json_t *next = parent ? backup_record_load(b->pool_path, parent) : NULL;
        if (parent && !next)
            r = vo_error_set(ret_error, -EBUSY, "backup '%s' builds on '%s', which is missing",
                             json_string_value(json_object_get(cur, "id")), parent);
        else if (++depth > 10000)
            r = vo_error_set(ret_error, -ELOOP, "the chain of backup '%s' loops", b->id);
        json_decref(cur);
        cur = next;
    }
    json_decref(cur);
    return r;
}

/* The file of one record's disk, resolved against the backup's directory. */
static char *record_file(const char *pool_path, json_t *record, json_t *disk)
{
    return vo_asprintf("%s/%s/%s", pool_path, json_string_value(json_object_get(record, "id")),
                       json_string_value(json_object_get(disk, "file")));
}

/* One backup file against the self-contained rule: a regular file directly in
 * its backup's directory, qcow2 without an external data file, whose backing
 * file is nothing or exactly expected (the parent backup's file of its slot). */
static int check_file(const char *pool_path, json_t *record, json_t *disk, const char *expected,
                      char **ret_error)
{
    const char *id = json_string_value(json_object_get(record, "id"));
    _cleanup_free_ char *dir = vo_asprintf("%s/%s", pool_path, id);
    _cleanup_free_ char *path = record_file(pool_path, record, disk);
    if (!vo_path_inside(dir, path))
        return vo_error_set(ret_error, -EBUSY, "backup file %s is not a regular file inside "
                            "its backup: refusing to restore", path);
    int fd = vo_img_open_regular(path);
    if (fd < 0)
        return vo_error_set(ret_error, -EBUSY, "cannot open backup file %s: %s", path,
                            strerror(-fd));
    VoQcow2Header h;
    int r = vo_qcow2_header_read(fd, &h);
    close(fd);
    if (r < 0)
        return vo_error_set(ret_error, -EBUSY, "backup file %s is not a qcow2 image: refusing "
                            "to restore", path);
    if (h.external_data)
        r = vo_error_set(ret_error, -EBUSY, "backup file %s refers to an external data file: "
                         "only self-contained backups are restored", path);
    else if (h.backing && !expected)
        r = vo_error_set(ret_error, -EBUSY, "backup file %s names backing file '%s' but its "
                         "backup builds on none: refusing to restore", path, h.backing);
    else if (h.backing) {
        _cleanup_free_ char *named = h.backing[0] == '/' ? vo_strdup(h.backing)
                                                         : vo_asprintf("%s/%s", dir, h.backing);
        _cleanup_free_ char *got = realpath(named, NULL), *want = realpath(expected, NULL);
        bool protocol = strchr(h.backing, ':') &&
                        (!strchr(h.backing, '/') || strchr(h.backing, ':') < strchr(h.backing, '/'));
        if (protocol || !got || !want || strcmp(got, want) ||
            (h.backing_format && strcmp(h.backing_format, "qcow2")))
            r = vo_error_set(ret_error, -EBUSY, "backup file %s names backing file '%s', "
                             "which is not the file of the backup it builds on (%s): refusing "
                             "to restore", path, h.backing, expected);
    }
    vo_qcow2_header_clear(&h);
    return r;
}

/* The self-contained rule for a whole chain: every file of the backup and of
 * those it builds on passes check_file, each backing only onto its parent. */
static int check_files(const BackupRef *b, char **ret_error)
{
    json_t *cur = json_incref(b->record);
    int r = 0;
    for (int depth = 0; cur && r == 0 && depth < 10000; depth++) {
        const char *parent_id = json_string_value(json_object_get(cur, "parent"));
        json_t *parent = parent_id ? backup_record_load(b->pool_path, parent_id) : NULL;
        size_t i;
        json_t *disk;
        json_array_foreach(json_object_get(cur, "disks"), i, disk) {
            unsigned slot = (unsigned)json_integer_value(json_object_get(disk, "slot"));
            const char *pfile = parent ? backup_disk_file(parent, slot) : NULL;
            _cleanup_free_ char *expected = pfile ? vo_asprintf("%s/%s/%s", b->pool_path,
                                                                parent_id, pfile) : NULL;
            r = check_file(b->pool_path, cur, disk, expected, ret_error);
            if (r < 0)
                break;
        }
        json_decref(cur);
        cur = parent;
    }
    json_decref(cur);
    return r;
}

/* The record's definition as a restore as a new VM reads it. Its disks'
 * names are not used (each disk gets a new volume: restore_new), so a disk
 * of a record written when specs held host paths needs no volume here: its
 * path goes and a stand-in name (replaced before the VM is defined) takes
 * its place. The rest is converted (vo_vm_spec_upgrade): a kernel or initrd
 * must be an image's that resolves on this host; one that is no image's, or
 * a volume (a record can name any volume, another VM's disk say), is
 * refused, so a record never boots another file. */
static int record_spec(VoDaemon *d, json_t *record, VoVmSpec **ret, char **ret_error)
{
    json_t *doc = json_deep_copy(json_object_get(record, "spec"));
    json_t *disks = json_object_get(doc, "disks"), *disk;
    size_t n;
    json_array_foreach(json_is_array(disks) ? disks : NULL, n, disk) {
        if (!json_is_object(disk))
            continue;
        if (!json_object_get(disk, "slot")) /* the old default: its position */
            json_object_set_new(disk, "slot", json_integer((json_int_t)n));
        json_object_del(disk, "path");
        if (!json_object_get(disk, "volume"))
            json_object_set_new(disk, "volume", json_string(VO_DEFAULT_POOL "/restored"));
    }
    bool changed = false;
    _cleanup_strv_ char **problems = NULL;
    VoVmSpec *spec = NULL;
    int r = vo_vm_spec_upgrade(d, doc, &changed, &problems);
    if (r < 0)
        r = vo_error_set(ret_error, -EBUSY, "the backup's record has no VM definition");
    else if (problems)
        r = vo_error_set(ret_error, -EBUSY, "the backed-up VM's %s: refusing to restore",
                         problems[0]);
    else
        r = vo_vm_spec_from_json(doc, &spec, ret_error);
    json_decref(doc);
    const VoBootFile *boot[] = { r >= 0 ? &spec->kernel_from : NULL,
                                 r >= 0 ? &spec->initrd_from : NULL };
    for (size_t i = 0; r >= 0 && i < ELEMENTSOF(boot); i++) {
        _cleanup_free_ char *path = NULL, *error = NULL;
        const char *key = i ? "initrd" : "kernel";
        if (boot[i]->volume)
            r = vo_error_set(ret_error, -EBUSY, "the backed-up VM's %s is volume '%s': a "
                             "restore as a new VM boots only an image's %s (make it part of "
                             "an image with vireo image import, or restore over the original "
                             "VM): refusing to restore", key, boot[i]->volume, key);
        else if (boot[i]->image &&
                 (r = vo_image_boot_file(d, boot[i]->image, i == 1, &path, &error)) < 0)
            r = vo_error_set(ret_error, -EBUSY, "the backed-up VM's %s: %s: refusing to restore",
                             key, error);
    }
    if (r < 0) {
        vo_vm_spec_free(spec);
        return r;
    }
    *ret = spec;
    return 0;
}

static int check_spec_paths(VoDaemon *d, json_t *record, char **ret_error)
{
    VoVmSpec *spec = NULL;
    int r = record_spec(d, record, &spec, ret_error);
    vo_vm_spec_free(spec);
    return r;
}

/* The files of one disk slot's chain, top first, as check_files validated
 * them: a layer builds on its parent backup's file of the slot only when its
 * header names a backing file (check_file made sure it is exactly that one).
 * The convert gets every layer by name (vo_img_convert_chain), so a header
 * changed after the check can never make qemu-img open another file. */
static int chain_files(const BackupRef *b, unsigned slot, char ***ret, char **ret_error)
{
    json_t *cur = json_incref(b->record);
    _cleanup_strv_ char **layers = NULL;
    int r = 0;
    for (int depth = 0; cur && r == 0; depth++) {
        const char *id = json_string_value(json_object_get(cur, "id"));
        const char *file = backup_disk_file(cur, slot);
        if (!file || depth >= 10000) {
            r = vo_error_set(ret_error, -EBUSY, "backup '%s' has no file for disk slot %u",
                             id ? id : b->id, slot);
            break;
        }
        char *path = vo_asprintf("%s/%s/%s", b->pool_path, id, file);
        vo_strv_push(&layers, path);
        int fd = vo_img_open_regular(path);
        VoQcow2Header h;
        r = fd < 0 ? fd : vo_qcow2_header_read(fd, &h);
        if (fd >= 0)
            close(fd);
        if (r < 0) {
            r = vo_error_set(ret_error, -EBUSY, "cannot read backup file %s: %s", path,
                             strerror(-r));
            break;
        }
        bool backed = h.backing != NULL;
        vo_qcow2_header_clear(&h);
        const char *parent_id = json_string_value(json_object_get(cur, "parent"));
        json_t *parent = backed && parent_id ? backup_record_load(b->pool_path, parent_id) : NULL;
        if (backed && !parent)
            r = vo_error_set(ret_error, -EBUSY, "backup file %s names a backing file but its "
                             "backup builds on none: refusing to restore", path);
        json_decref(cur);
        cur = parent;
    }
    json_decref(cur);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(layers);
    return 0;
}

/* ---- into a new VM ------------------------------------------------------------------ */

static void remove_volumes(VoDaemon *d, char **keys)
{
    for (char **k = keys; k && *k; k++) {
        _cleanup_free_ char *error = NULL;
        if (vo_volume_remove_now(d, *k, &error) < 0)
            log_warn("backups: kept volume %s: %s", *k, error);
    }
}

/* The stored definition with a new id, name and MACs; NICs must find their networks. */
static int new_spec(VoDaemon *d, const BackupRef *b, const char *name, VoVmSpec **ret,
                    VoMacClaims **claims, char **ret_error)
{
    VoVmSpec *spec = NULL;
    int r = record_spec(d, b->record, &spec, ret_error);
    if (r < 0)
        return r;
    char id[37];
    if (vo_uuid_generate(id) < 0)
        abort();
    free(spec->id);
    spec->id = vo_strdup(id);
    free(spec->name);
    spec->name = vo_strdup(name);
    /* A group is joined through placement (the manager checks its policy):
     * the new VM is in none; vireo vm create --group places one. */
    free(spec->group);
    spec->group = NULL;
    for (size_t i = 0; i < spec->n_nics && r >= 0; i++) {
        if (strcmp(spec->nics[i].network, "user") && !vo_network_exists(d, spec->nics[i].network))
            r = vo_error_set(ret_error, -EINVAL, "network '%s' of the backed-up VM does not "
                             "exist", spec->nics[i].network);
        /* claimed in the cluster (mac-claims.h), compared in the VM's write */
        char mac[18];
        int c = r >= 0 ? vo_vms_claim_new_mac(d, claims, name, spec->nics, i, mac) : 0;
        if (c < 0)
            r = c == -EEXIST ? vo_error_set(ret_error, -EBUSY, "no unused MAC address found "
                                            "for NIC %zu; try again", i)
                             : vo_error_set(ret_error, -EAGAIN, "cannot claim a MAC address "
                                            "for NIC %zu: %s", i, strerror(-c));
        if (r < 0)
            break;
        free(spec->nics[i].mac);
        spec->nics[i].mac = vo_strdup(mac);
    }
    if (r < 0) {
        vo_vm_spec_free(spec);
        return r;
    }
    *ret = spec;
    return 0;
}

static int restore_new(VoTask *t, RestoreOp *op, const BackupRef *b, char **ret_error)
{
    VoDaemon *d = op->d;
    const char *pool = op->pool ? op->pool : VO_DEFAULT_POOL;
    VoVmSpec *spec = NULL;
    VoMacClaims *claims = NULL;
    int r = new_spec(d, b, op->as, &spec, &claims, ret_error);
    if (r < 0) {
        vo_mac_claims_release(claims);
        return r;
    }
    _cleanup_strv_ char **made = NULL;
    for (size_t i = 0; r >= 0 && i < spec->n_disks; i++) {
        VoDiskSpec *disk = &spec->disks[i];
        _cleanup_strv_ char **layers = NULL;
        r = chain_files(b, disk->slot, &layers, ret_error);
        if (r < 0)
            break;
        _cleanup_free_ char *volume = vo_volume_free_name(d, pool, spec->name);
        _cleanup_free_ char *path = NULL;
        if (!volume) {
            r = vo_error_set(ret_error, -ENOSPC, "no free volume name in pool '%s'", pool);
            break;
        }
        vo_task_progress(t, 10, "copying disks");
        r = vo_volume_create_from_chain(d, pool, volume, layers, vo_strv_len(layers), op->rate,
                                        t, &path, ret_error);
        if (r < 0)
            break;
        vo_strv_pushf(&made, "%s/%s", pool, volume);
        free(disk->volume);
        disk->volume = vo_asprintf("%s/%s", pool, volume);
        /* An rbd pool's volume is a raw RBD image (the chain flattened into it). */
        disk->format = vo_pool_is_rbd(d, pool) ? VO_DISK_RAW : VO_DISK_QCOW2;
        disk->owned = true;
        disk->shareable = false;
    }
    /* UEFI: a NVRAM volume of its own, from the backup's copy when it has
     * one, else fresh from OVMF's template (never the original VM's). */
    free(TAKE_PTR(spec->nvram));
    const char *nvram_file = json_string_value(json_object_get(b->record, "nvram"));
    if (r >= 0 && spec->firmware == VO_FIRMWARE_UEFI) {
        /* Named as a create names it: "VM-nvram", or the next free name
         * when that one is taken (a volume kept from a deleted VM, say). */
        _cleanup_free_ char *key = NULL, *layer = NULL;
        if (nvram_file && !strchr(nvram_file, '/'))
            layer = vo_asprintf("%s/%s/%s", b->pool_path, b->id, nvram_file);
        r = vo_vm_nvram_create_from(d, spec, pool, layer, &key, ret_error);
        if (r >= 0) {
            vo_strv_pushf(&made, "%s", key);
            spec->nvram = TAKE_PTR(key);
        }
    }
    if (r >= 0) {
        vo_task_progress(t, 95, "defining the VM");
        r = vo_vm_define(d, TAKE_PTR(spec), claims, ret_error);
    }
    vo_mac_claims_release(claims); /* its VM's document holds the MACs now */
    if (r < 0)
        remove_volumes(d, made);
    vo_vm_spec_free(spec);
    return r;
}

/* ---- over the original VM -------------------------------------------------------------- */

/* RBD images are no files to swap: each is written over behind an undo
 * snapshot (backup-rbd.h), all or none. The VM's own RBD snapshots stay
 * (they are the images', still whole); sources are the disks' top layers. */
static int restore_over_rbd(VoTask *t, VoDaemon *d, VoVm *vm, const BackupRef *b,
                            const VoVmSpec *spec, const char *nvram_file, char **ret_error)
{
    char ***sources = vo_malloc0(sizeof(char **) * (spec->n_disks + 2));
    int r = 0;
    for (size_t i = 0; r >= 0 && i < spec->n_disks; i++)
        r = chain_files(b, spec->disks[i].slot, &sources[i], ret_error);
    if (r >= 0 && nvram_file && spec->nvram) {
        if (strchr(nvram_file, '/'))
            r = vo_error_set(ret_error, -EBUSY, "backup '%s' names NVRAM file '%s'", b->id,
                             nvram_file);
        else
            vo_strv_pushf(&sources[spec->n_disks], "%s/%s/%s", b->pool_path, b->id,
                          nvram_file);
    }
    vo_task_progress(t, 10, "writing disks");
    if (r >= 0)
        r = vo_backup_rbd_restore_over(d, vm, spec, sources, ret_error);
    for (size_t i = 0; i <= spec->n_disks; i++)
        vo_strv_free(sources[i]);
    free(sources);
    if (r >= 0)
        vo_backups_forget_base(d, spec->id);
    return r;
}

static int restore_over(VoTask *t, RestoreOp *op, const BackupRef *b, char **ret_error)
{
    VoDaemon *d = op->d;
    VoVm *vm = op->original;
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    bool active = vo_vm_state_active(vm->state);
    pthread_mutex_unlock(&vm->lock);
    int r = 0;
    size_t n_backed = json_array_size(json_object_get(b->record, "disks"));
    if (active)
        r = vo_error_set(ret_error, -EBUSY, "VM '%s' runs: stop it first", spec->name);
    else if (n_backed != spec->n_disks)
        r = vo_error_set(ret_error, -EBUSY, "VM '%s' has %zu disk(s), the backup %zu: restore "
                         "to a new VM with --as NAME", spec->name, spec->n_disks, n_backed);
    for (size_t i = 0; r >= 0 && i < spec->n_disks; i++)
        if (!backup_disk_file(b->record, spec->disks[i].slot) || !spec->disks[i].volume)
            r = vo_error_set(ret_error, -EBUSY, "disk %zu of VM '%s' is not the one backed up "
                             "(or not a volume): restore to a new VM with --as NAME", i,
                             spec->name);
    int rbd = r >= 0 ? vo_backup_rbd_check(d, spec, ret_error) : 0;
    if (rbd < 0)
        r = rbd;
    /* Every volume is checked first, every disk converted next to its
     * volume; only then are the files swapped, all or none, so a failure
     * changes nothing. An iSCSI LUN has no "next to it": it is written over
     * in place, last, once every file is ready (docs/backups-api.md). */
    for (size_t i = 0; r >= 0 && i < spec->n_disks; i++)
        if (vo_volume_is_live_base(d, spec->disks[i].volume))
            r = vo_error_set(ret_error, -EBUSY, "volume '%s' backs linked clones and must stay "
                             "as it is", spec->disks[i].volume);
    /* UEFI: the NVRAM of the backup (when it has one and so does the VM)
     * is put back with the disks, as one more file of the same swap. */
    const char *nvram_file = json_string_value(json_object_get(b->record, "nvram"));
    size_t n_files = spec->n_disks + (nvram_file && spec->nvram ? 1 : 0);
    char **temps = vo_malloc0(sizeof(char *) * (n_files + 1));
    char ***lun_layers = vo_malloc0(sizeof(char **) * (n_files + 1));
    char **lun_paths = vo_malloc0(sizeof(char *) * (n_files + 1));
    char **lun_formats = vo_malloc0(sizeof(char *) * (n_files + 1));
    /* Temp names carry this host's id: a pool may be shared, and each
     * host's start sweeps only its own (sweep.c). */
    _cleanup_free_ char *host = r >= 0 ? vo_host_id(d) : NULL;
    if (r >= 0 && !host)
        r = vo_error_set(ret_error, -EIO, "cannot read or make this host's id (%s/host-id)",
                         d->state_dir);
    /* Each volume marked before anything is written, and only then checked
     * for a VM of any host that has it and runs (a shareable one's other
     * VMs; a start saves "starting" before it reads the mark), nor being
     * attached here (a hot-plug claims the volume before it reads the
     * marks): no VM starts on a volume being written nor on a LUN a restore
     * left torn. An RBD image's mark names the VM whose next start (or
     * restore) rolls it back if a crash cuts this restore short. */
    _cleanup_strv_ char **marked = NULL;
    bool *torn = vo_malloc0(sizeof(bool) * (n_files + 1));
    json_t **before = vo_malloc0(sizeof(json_t *) * (n_files + 1)); /* the marks replaced */
    for (size_t i = 0; r >= 0 && i < n_files; i++) {
        const char *volume = i < spec->n_disks ? spec->disks[i].volume : spec->nvram;
        r = vo_volume_restore_mark(d, volume, vo_task_id(t), rbd > 0 ? spec->id : NULL,
                                   rbd > 0 ? spec->name : NULL, &before[i], ret_error);
        if (r >= 0)
            vo_strv_pushf(&marked, "%s", volume);
        if (r >= 0)
            r = vo_volume_check_no_running_user(d, volume, "a restore writes over it",
                                                ret_error);
        if (r >= 0)
            r = vo_volume_check_not_attaching(d, volume, ret_error);
    }
    if (r >= 0 && (r = vo_test_fault("backup_restore_write")) < 0) /* tests hold or fail it */
        *ret_error = vo_asprintf("test fault before writing: %s", strerror(-r));
    if (r >= 0 && rbd > 0) {
        r = restore_over_rbd(t, d, vm, b, spec, nvram_file, ret_error);
        pthread_mutex_lock(&vm->lock);
        bool undo_left = vm->rbd_restore_undo; /* not rolled back: still torn */
        pthread_mutex_unlock(&vm->lock);
        for (size_t i = 0; r < 0 && i < n_files; i++)
            torn[i] = undo_left;
    }
    for (size_t i = 0; r >= 0 && rbd == 0 && i < n_files; i++) {
        _cleanup_free_ char *path = NULL, *format = NULL;
        _cleanup_strv_ char **layers = NULL;
        const char *volume = i < spec->n_disks ? spec->disks[i].volume : spec->nvram;
        if (i < spec->n_disks)
            r = chain_files(b, spec->disks[i].slot, &layers, ret_error);
        else if (strchr(nvram_file, '/'))
            r = vo_error_set(ret_error, -EBUSY, "backup '%s' names NVRAM file '%s'", b->id,
                             nvram_file);
        else
            vo_strv_push(&layers, vo_asprintf("%s/%s/%s", b->pool_path, b->id, nvram_file));
        if (r >= 0)
            r = vo_volume_lookup(d, volume, &path, &format, NULL, ret_error);
        if (r < 0)
            break;
        if (vo_iscsi_url_is(path)) { /* written last, in place */
            lun_layers[i] = TAKE_PTR(layers);
            lun_paths[i] = TAKE_PTR(path);
            lun_formats[i] = TAKE_PTR(format);
            continue;
        }
        uint32_t rnd = 0;
        (void)getrandom(&rnd, sizeof(rnd), 0);
        char *slash = strrchr(path, '/');
        *slash = 0;
        temps[i] = vo_asprintf("%s/.restore-%s-%08x-%s", path, host, rnd, slash + 1);
        vo_task_progress(t, 10, "copying disks");
        r = vo_img_convert_chain(layers, vo_strv_len(layers), temps[i], format, op->rate,
                                 report_convert, t, ret_error);
        if (r < 0)
            free(TAKE_PTR(temps[i]));
    }
    for (size_t i = 0; r >= 0 && i < n_files; i++)
        if (lun_paths[i]) {
            vo_task_progress(t, 50, "writing over the iSCSI LUN");
            torn[i] = true; /* until the restore ends well */
            r = vo_test_fault("backup_restore_lun_write"); /* tests cut it short here */
            if (r < 0)
                *ret_error = vo_asprintf("test fault while writing: %s", strerror(-r));
            else
                r = vo_img_convert_chain_onto(lun_layers[i], vo_strv_len(lun_layers[i]),
                                              lun_paths[i], lun_formats[i], op->rate,
                                              report_convert, t, ret_error);
            if (r < 0) {
                char *why = vo_asprintf("disk %zu, an iSCSI LUN written in place, is partly "
                                        "the backup's now (marked: no VM with it starts "
                                        "until a restore ends well; restore again): %s", i,
                                        *ret_error ? *ret_error : strerror(-r));
                free(*ret_error);
                *ret_error = why;
            }
        }
    /* The files swapped, those of LUNs written above left out. */
    char **keys = vo_malloc0(sizeof(char *) * (n_files + 1));
    char **files = vo_malloc0(sizeof(char *) * (n_files + 1));
    size_t n_swapped = 0;
    for (size_t i = 0; i < n_files; i++)
        if (temps[i]) {
            keys[n_swapped] = i < spec->n_disks ? spec->disks[i].volume : spec->nvram;
            files[n_swapped++] = temps[i];
        }
    bool luns_written = r >= 0;
    if (r >= 0 && n_swapped)
        r = vo_volumes_replace_files(d, keys, files, n_swapped, ret_error);
    free(keys);
    free(files);
    for (size_t i = 0; i < n_files; i++) {
        if (lun_paths[i] && luns_written && r < 0) { /* the files are the old ones */
            char *why = vo_asprintf("disk %zu, an iSCSI LUN written in place, is the backup's "
                                    "now, its other disks are not (restore again): %s", i,
                                    *ret_error ? *ret_error : strerror(-r));
            free(*ret_error);
            *ret_error = why;
            luns_written = false; /* said once */
        }
        /* The snapshots forgotten below, gone from the LUN's qcow2 layer too
         * (as from a new file): a later one of the same tag is the one a
         * revert finds, and nothing pins the old data. */
        _cleanup_free_ char *left = NULL;
        if (lun_paths[i] && r >= 0 && !strcmp(lun_formats[i], "qcow2") &&
            vo_snapshots_drop_internal(lun_paths[i], &left) < 0)
            log_warn("restore: VM %s: %s", spec->id, left);
        if (temps[i])
            (void)unlink(temps[i]);
        free(temps[i]);
        vo_strv_free(lun_layers[i]);
        free(lun_paths[i]);
        free(lun_formats[i]);
    }
    free(temps);
    free(lun_layers);
    free(lun_paths);
    free(lun_formats);
    if (r >= 0 && rbd == 0) {
        /* The new files hold neither the internal snapshots nor the bitmaps. */
        vo_snapshots_forget(d, spec->id);
        vo_backups_forget_base(d, spec->id);
    }
    /* Whole again (old or the backup's), save a LUN written in part. One
     * that failed before it wrote a volume leaves it as it found it: an
     * earlier restore's mark (a LUN it left torn) is put back; an RBD
     * image's was this VM's, whose rollback came first. */
    for (size_t i = 0; marked && i < n_files && marked[i]; i++)
        if (r >= 0 || !torn[i])
            vo_volume_restore_unmark(d, marked[i], vo_task_id(t),
                                     r >= 0 || rbd > 0 ? NULL : before[i]);
    for (size_t i = 0; i < n_files; i++)
        json_decref(before[i]);
    free(before);
    free(torn);
    vo_vm_spec_free(spec);
    return r;
}

static int task_restore(VoTask *t, void *userdata)
{
    RestoreOp *op = userdata;
    _cleanup_free_ char *error = NULL;
    if (op->original)
        pthread_mutex_lock(&op->original->job);
    pthread_mutex_lock(&vo_backups_lock);
    BackupRef b = { 0 };
    int r = 0;
    if (op->original) { /* a delete that ran first leaves nothing to restore over */
        pthread_mutex_lock(&op->original->lock);
        bool gone = op->original->deleted || op->original->deleting;
        pthread_mutex_unlock(&op->original->lock);
        if (gone)
            r = vo_error_set(&error, -ENOENT, "the VM is being deleted or was deleted");
    }
    if (r >= 0)
        r = backup_find(op->d, op->id, &b, &error);
    if (r >= 0)
        r = backup_if_match(t, &b, &error);
    if (r >= 0)
        r = check_chain(&b, &error);
    if (r >= 0)
        r = check_files(&b, &error);
    if (r >= 0 && !op->original)
        r = check_spec_paths(op->d, b.record, &error);
    if (r >= 0)
        r = op->original ? restore_over(t, op, &b, &error) : restore_new(t, op, &b, &error);
    pthread_mutex_unlock(&vo_backups_lock);
    if (op->original)
        pthread_mutex_unlock(&op->original->job);
    backup_ref_clear(&b);
    if (r < 0)
        return vo_task_fail(t, r, "cannot restore backup '%s': %s", op->id,
                            error ? error : strerror(-r));
    _cleanup_free_ char *original = op->as ? NULL : vo_vm_name(op->original);
    _cleanup_free_ char *done = op->as ? vo_strdup(op->as)
                                        : vo_asprintf("restored over VM '%s'", original);
    vo_task_progress(t, 99, done);
    return 0;
}

int vo_backup_restore(VoDaemon *d, const char *id, const char *as, const char *pool,
                      unsigned bwlimit_mib, bool may_create, json_t **ret_task, char **ret_error)
{
    if (as && !may_create)
        return vo_error_set(ret_error, -EACCES, "as: a restore as a new VM makes a VM, which "
                            "needs the admin role");
    if (bwlimit_mib > VO_BACKUP_BWLIMIT_MAX_MIB)
        return vo_error_set(ret_error, -EINVAL, "bwlimit_mib: %u is out of range (1-%u MiB/s)",
                            bwlimit_mib, VO_BACKUP_BWLIMIT_MAX_MIB);
    if (as && !vo_name_valid(as))
        return vo_error_set(ret_error, -EINVAL, "as: '%s' is invalid: use 1-63 characters of "
                            "a-z, 0-9 and '-', not starting with '-'", as);
    if (pool && !vo_pool_exists(d, pool))
        return vo_error_set(ret_error, -ENOENT, "pool '%s' does not exist", pool);
    BackupRef b = { 0 };
    int r = backup_find(d, id, &b, ret_error);
    if (r < 0)
        return r;
    r = check_chain(&b, ret_error);
    /* Checked again by the task, under the backups lock. */
    if (r >= 0)
        r = check_files(&b, ret_error);
    const char *vm_name = json_string_value(json_object_get(b.record, "vm"));
    const char *vm_id = json_string_value(json_object_get(b.record, "vm_id"));
    VoVm *original = NULL;
    if (r >= 0 && as) {
        _cleanup_vm_ VoVm *taken = vo_vms_find(d, as);
        if (taken)
            r = vo_error_set(ret_error, -EEXIST, "a VM named '%s' already exists: choose "
                             "another name with --as", as);
    } else if (r >= 0) {
        original = vo_vms_find(d, vm_id);
        _cleanup_vm_ VoVm *namesake = original ? NULL : vo_vms_find(d, vm_name);
        if (original && vo_vm_is_active(original))
            r = vo_error_set(ret_error, -EBUSY, "VM '%s' runs: stop it before restoring over "
                             "it, or restore to a new VM with --as NAME", vm_name);
        else if (namesake)
            r = vo_error_set(ret_error, -EEXIST, "another VM is named '%s' now: restore to a new "
                             "VM with --as NAME", vm_name);
        else if (!original && !may_create)
            r = vo_error_set(ret_error, -EACCES, "VM '%s' no longer exists: its restore makes a "
                             "new VM, which needs the admin role", vm_name);
        else if (original && vo_vm_precheck(original, INACTIVE_STATES, "restore over",
                                            ret_error) < 0)
            r = -EBUSY;
        else if (original && pool)
            r = vo_error_set(ret_error, -EINVAL, "pool: a restore over the original VM writes "
                             "into its own volumes; pool is for a new VM (--as)");
        else if (original) { /* disks in rbd pools and others: no one way to put them back */
            pthread_mutex_lock(&original->lock);
            _cleanup_vm_spec_ VoVmSpec *spec = vo_vm_spec_copy(original->spec);
            pthread_mutex_unlock(&original->lock);
            r = vo_backup_rbd_check(d, spec, ret_error);
        }
    }
    if (r >= 0 && !original)
        r = check_spec_paths(d, b.record, ret_error);
    /* Over the original: one of that VM's operations (its job lock); vm_id
     * is the record's, which backup_ref_clear frees. */
    _cleanup_free_ char *vm_key = original ? vo_asprintf("vm/%s", vm_id) : NULL;
    if (r < 0) {
        if (original)
            vo_vm_unref(original);
        backup_ref_clear(&b);
        return r;
    }
    RestoreOp *op = vo_malloc0(sizeof(*op));
    *op = (RestoreOp){ .d = d, .id = vo_strdup(id), .pool = vo_strdup(pool),
                       .as = vo_strdup(as ? as : original ? NULL : vm_name),
                       .original = original, .rate = (uint64_t)bwlimit_mib << 20 };
    backup_ref_clear(&b);
    VoTaskDesc desc = { .kind = "backup-restore", .target = id, .target_id = id,
                        .keys = { BACKUPS_TASK_KEY, vm_key }, .cancellable = true };
    r = vo_tasks_submit(d->tasks, &desc, task_restore, op, restore_op_free, ret_task, ret_error);
    if (r < 0)
        restore_op_free(op);
    return r;
}

/* ---- verify ------------------------------------------------------------------------------ */

static int img_check(const char *path, char **ret_error)
{
    char *argv[] = { "qemu-img", "check", "-q", "-f", "qcow2", (char *)path, NULL };
    _cleanup_free_ char *out = NULL;
    int r = vo_spawn_wait(argv, 3600 * 1000, &out);
    if (r < 0) {
        for (size_t n = out ? strlen(out) : 0; n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ');)
            out[--n] = 0;
        *ret_error = vo_strdup(out && *out ? out : strerror(-r));
    }
    return r;
}

/* Checks one backup's files, read at most rate bytes/s (0: no limit);
 * problems are appended. Returns files checked. */
static size_t verify_one(const char *pool_path, json_t *record, uint64_t rate, json_t *problems)
{
    const char *id = json_string_value(json_object_get(record, "id"));
    size_t n = 0, i;
    json_t *disk;
    json_array_foreach(json_object_get(record, "disks"), i, disk) {
        if (vo_cancelled()) /* the task was cancelled: the caller records nothing */
            break;
        const char *file = json_string_value(json_object_get(disk, "file"));
        const char *want = json_string_value(json_object_get(disk, "sha256"));
        _cleanup_free_ char *path = vo_asprintf("%s/%s/%s", pool_path, id, file);
        char sum[VO_SHA256_HEX_LEN + 1];
        int r = vo_sha256_file_limited(path, rate, sum);
        if (r == -ECANCELED) /* stopped mid-file: not checked */
            break;
        n++;
        if (r < 0) {
            json_array_append_new(problems, json_sprintf("%s/%s: cannot read: %s", id, file,
                                                         strerror(-r)));
            continue;
        }
        if (!want || strcmp(sum, want))
            json_array_append_new(problems, json_sprintf("%s/%s: sha256 mismatch (recorded %s, "
                                                         "now %s)", id, file, want ? want : "none",
                                                         sum));
        _cleanup_free_ char *error = NULL;
        if (img_check(path, &error) < 0)
            json_array_append_new(problems, json_sprintf("%s/%s: qemu-img check: %s", id, file,
                                                         error));
    }
    return n;
}

static int task_verify(VoTask *t, void *userdata)
{
    RestoreOp *op = userdata;
    _cleanup_free_ char *error = NULL;
    pthread_mutex_lock(&vo_backups_lock);
    BackupRef b = { 0 };
    int r = backup_find(op->d, op->id, &b, &error);
    if (r >= 0)
        r = backup_if_match(t, &b, &error);
    json_t *problems = json_array();
    size_t files = 0;
    json_t *cur = r >= 0 ? json_incref(b.record) : NULL;
    for (int depth = 0; cur && depth < 10000 && !vo_cancelled(); depth++) {
        vo_task_progress(t, 10, "checking files");
        files += verify_one(b.pool_path, cur, op->rate, problems);
        const char *parent = json_string_value(json_object_get(cur, "parent"));
        json_t *next = parent ? backup_record_load(b.pool_path, parent) : NULL;
        if (parent && !next)
            json_array_append_new(problems, json_sprintf("%s: builds on '%s', which is missing",
                                                         json_string_value(json_object_get(cur, "id")),
                                                         parent));
        json_decref(cur);
        cur = next;
    }
    json_decref(cur);
    bool ok = json_array_size(problems) == 0;
    _cleanup_free_ char *summary = NULL;
    /* Cancelled: the record keeps its last complete verify. */
    if (r >= 0 && vo_cancelled())
        r = vo_error_set(&error, -ECANCELED, "cancelled after %zu file(s)", files);
    if (r >= 0) {
        json_object_set_new(b.record, "last_verify",
                            json_pack("{s:b, s:o, s:I, s:O}", "ok", ok, "at",
                                      vo_time_json(vo_wall_ms()), "files", (json_int_t)files,
                                      "problems", problems));
        _cleanup_free_ char *dir = vo_asprintf("%s/%s", b.pool_path, b.id);
        if (backup_record_save(dir, b.record) >= 0)
            (void)backup_doc_put(op->d, b.pool, b.record, false);
        size_t i;
        json_t *p;
        summary = vo_strdup("");
        json_array_foreach(problems, i, p) {
            char *next = vo_asprintf("%s%s%s", summary, i ? "; " : "", json_string_value(p));
            free(summary);
            summary = next;
        }
    }
    pthread_mutex_unlock(&vo_backups_lock);
    backup_ref_clear(&b);
    json_decref(problems);
    if (r < 0)
        return vo_task_fail(t, r, "cannot verify backup '%s': %s", op->id,
                            error ? error : strerror(-r));
    if (!ok)
        return vo_task_fail(t, -EIO, "backup '%s' failed verification: %s", op->id, summary);
    _cleanup_free_ char *msg = vo_asprintf("%zu file(s) verified", files);
    vo_task_progress(t, 99, msg);
    return 0;
}

int vo_backup_verify(VoDaemon *d, const char *id, unsigned bwlimit_mib, json_t **ret_task,
                     char **ret_error)
{
    if (bwlimit_mib > VO_BACKUP_BWLIMIT_MAX_MIB)
        return vo_error_set(ret_error, -EINVAL, "bwlimit_mib: %u is out of range (1-%u MiB/s)",
                            bwlimit_mib, VO_BACKUP_BWLIMIT_MAX_MIB);
    BackupRef b = { 0 };
    int r = backup_find(d, id, &b, ret_error);
    backup_ref_clear(&b);
    if (r < 0)
        return r;
    RestoreOp *op = vo_malloc0(sizeof(*op));
    *op = (RestoreOp){ .d = d, .id = vo_strdup(id), .rate = (uint64_t)bwlimit_mib << 20 };
    /* At most one verify per backup: asked again while one is queued or
     * running, the answer is that task (its result is the one wanted). */
    VoTaskDesc desc = { .kind = "backup-verify", .target = id, .target_id = id,
                        .keys = { BACKUPS_TASK_KEY }, .once = true, .cancellable = true };
    r = vo_tasks_submit(d->tasks, &desc, task_verify, op, restore_op_free, ret_task, ret_error);
    if (r != 0)
        restore_op_free(op);
    return r < 0 ? r : 0;
}
