/* vm-disks.c: a VM's disks as vireo volumes: which VM uses a volume, online
 * resize through QEMU, adding and removing disks (of a stopped VM, or
 * hot-plugged into a running one), and turning a stopped VM into an image
 * (template). */
#include <string.h>
#include <sys/stat.h>

#include "conf/names.h"
#include "daemon/images.h"
#include "daemon/object-projects.h"
#include "daemon/rbd-dead-clients.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "storage/volume-path.h"
#include "util/test-hold.h"
#include "util/util.h"

/* Caller holds vm->lock: index of the disk that is volume key, or -1. */
static ssize_t disk_index(VoVm *vm, const char *key)
{
    for (size_t i = 0; i < vm->spec->n_disks; i++)
        if (vm->spec->disks[i].volume && !strcmp(vm->spec->disks[i].volume, key))
            return (ssize_t)i;
    return -1;
}

/* A disk, or the kernel or initrd it boots. */
static bool uses_volume(VoVm *vm, const void *key)
{
    const VoVmSpec *s = vm->spec;
    return disk_index(vm, key) >= 0 || (s->kernel_from.volume && !strcmp(s->kernel_from.volume, key)) ||
           (s->initrd_from.volume && !strcmp(s->initrd_from.volume, key));
}

char *vo_vms_volume_user(VoDaemon *d, const char *key)
{
    VoVm *vm = vo_vms_find_if(d, uses_volume, key);
    if (!vm)
        return NULL;
    pthread_mutex_lock(&vm->lock);
    char *name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    vo_vm_unref(vm);
    return name;
}

int vo_vm_resize_volume_online(VoDaemon *d, const char *key, uint64_t size, char **ret_error)
{
    _cleanup_vm_ VoVm *vm = vo_vms_find_if(d, uses_volume, key);
    if (!vm)
        return -ENOTCONN;
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    ssize_t index = disk_index(vm, key);
    unsigned slot = index >= 0 ? vm->spec->disks[index].slot : 0;
    VoHvInstance *hv = vo_vm_state_active(vm->state) ? vm->hv : NULL;
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *name = vo_vm_name(vm);
    int r = -ENOTCONN;
    if (hv && index >= 0) {
        r = d->driver->resize_disk(hv, slot, size);
        if (r == -EOPNOTSUPP)
            r = -ENOTCONN;
        else if (r < 0)
            *ret_error = vo_asprintf("QEMU refused to resize disk %zd of VM '%s' (%s)", index,
                                     name, strerror(-r));
    }
    pthread_mutex_unlock(&vm->job);
    return r;
}

/* A volume its project counts (made with a project: object-projects.h)
 * is not counted again; a shareable one of no project (an admin's, which
 * VMs of several projects may attach) is counted by none of them. */
int64_t vo_vm_volume_virtual_size(VoDaemon *d, const char *key)
{
    _cleanup_free_ char *pool = NULL, *name = NULL, *error = NULL, *project = NULL;
    json_t *doc = NULL;
    int64_t counted = 0;
    if (vo_volume_project(d, key, &project, &counted) >= 0 && project && counted > 0)
        return 0;
    if (vo_volume_key_split(key, &pool, &name) < 0 ||
        vo_volume_get_json(d, pool, name, &doc, &error) < 0)
        return 0;
    bool shared_by_vms = !project && json_is_true(json_object_get(doc, "shareable"));
    int64_t size = json_integer_value(json_object_get(doc, "virtual_size_bytes"));
    json_decref(doc);
    return shared_by_vms ? 0 : size;
}

/* A disk (not a kernel or initrd). */
static bool has_disk(VoVm *vm, const void *key)
{
    return disk_index(vm, key) >= 0;
}

int vo_vm_volume_grow(VoDaemon *d, const char *key, int64_t delta, char **ret_error)
{
    /* A volume its project counts: its own figure grows (checked), in the
     * project it has when the growth commits (a move to another project on
     * another host meanwhile is never undone). */
    int r = vo_volume_project_grow(d, key, delta, ret_error);
    if (r != 0)
        return r < 0 ? r : 0;
    /* A shareable volume of no project is counted by no VM
     * (vo_vm_volume_virtual_size). */
    _cleanup_free_ char *project = NULL, *path = NULL, *format = NULL, *error = NULL;
    int64_t counted = 0;
    bool shareable = false;
    if (vo_volume_project(d, key, &project, &counted) >= 0 && !project &&
        vo_volume_lookup(d, key, &path, &format, &shareable, &error) >= 0 && shareable)
        return 0;
    _cleanup_vm_ VoVm *vm = vo_vms_find_if(d, has_disk, key);
    return vm ? vo_vm_disk_bytes_change(vm, delta, ret_error) : 0;
}

json_t *vo_vm_disks_json(VoVm *vm)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&vm->lock);
    for (size_t i = 0; i < vm->spec->n_disks; i++) {
        const VoDiskSpec *disk = &vm->spec->disks[i];
        json_t *o = json_pack("{s:I, s:s, s:s, s:b, s:b}", "index", (json_int_t)i,
                              "format", vo_disk_format_to_string(disk->format),
                              "bus", "virtio", "readonly", disk->readonly, "shareable",
                              disk->shareable);
        json_object_set_new(o, "volume", disk->volume ? json_string(disk->volume) : json_null());
        json_object_set_new(o, "boot", json_boolean(i == 0));
        json_object_set_new(o, "owned", json_boolean(disk->owned));
        json_object_set_new(o, "slot", json_integer(disk->slot));
        json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&vm->lock);
    vo_vm_json_add_disk_paths(vm->d, arr); /* this host's files, outside vm->lock */
    return arr;
}

typedef struct {
    VoVm *vm;
    char *volume, *pool, *format, *image;
    uint64_t size;
    size_t index;
    int64_t reserved; /* disk bytes taken in the project for the disk added */
    bool image_claimed; /* a template holds op->image (vo_image_name_claim) */
} DiskOp;

static void disk_op_free(void *p)
{
    DiskOp *op = p;
    if (op->image_claimed)
        vo_image_name_release(op->vm->d, op->image);
    vo_vm_unref(op->vm);
    free(op->volume);
    free(op->pool);
    free(op->format);
    free(op->image);
    free(op);
}

/* Takes the job lock and checks the VM is stopped; false (lock released) when not. */
static bool lock_stopped(VoTask *t, VoVm *vm, const char *verb, int *ret)
{
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    if ((*ret = vo_vm_check_if_match(t, vm)) < 0)
        return false;
    bool active = vo_vm_state_active(vm->state);
    pthread_mutex_unlock(&vm->lock);
    if (!active)
        return true;
    _cleanup_free_ char *name = vo_vm_name(vm);
    pthread_mutex_unlock(&vm->job);
    *ret = vo_task_fail(t, -EBUSY, "cannot %s VM '%s' while it runs: stop it first", verb, name);
    return false;
}

/* The volume the new disk is: made now (op->size) or the existing op->volume,
 * claimed (*ret_claimed; released by the caller once the definition names it
 * or the add failed) and then checked against the VMs. *ret_created: the
 * name when made now. */
static int disk_volume(VoDaemon *d, VoVm *vm, DiskOp *op, VoTask *t, char **ret_path,
                       char **ret_format, bool *ret_shareable, char **ret_created,
                       bool *ret_claimed, char **ret_error)
{
    int r;
    if (!op->volume) {
        vo_task_progress(t, 20, "creating the volume");
        _cleanup_free_ char *created = vo_volume_free_name(d, op->pool, vm->spec->name);
        r = created ? vo_volume_create_empty(d, op->pool, created, op->format, op->size, t,
                                             ret_path, ret_error)
                    : -ENOSPC;
        if (r >= 0) {
            op->volume = vo_asprintf("%s/%s", op->pool, created);
            *ret_format = vo_strdup(op->format);
            *ret_created = TAKE_PTR(created);
        }
        return r;
    }
    /* The claim first: a linked clone or a second attach that starts now is
     * refused; one that finished before is seen below. */
    r = vo_volume_attach_claim(d, op->volume, ret_path, ret_format, ret_shareable, ret_error);
    if (r < 0)
        return r;
    *ret_claimed = true;
    _cleanup_free_ char *user = vo_vms_volume_user(d, op->volume);
    if (user && !*ret_shareable) {
        *ret_error = vo_asprintf("volume '%s' is already attached to VM '%s' (mark it shareable "
                                 "to share it)", op->volume, user);
        r = -EBUSY;
    }
    return r;
}

/* Disk index of spec goes from it (its path and volume freed). */
static void spec_drop_disk(VoVmSpec *spec, size_t index)
{
    VoDiskSpec *removed = &spec->disks[index];
    free(removed->path);
    free(removed->volume);
    memmove(removed, removed + 1, sizeof(VoDiskSpec) * (spec->n_disks - index - 1));
    spec->n_disks--;
}

/* A hot-plug undone after the definition was saved with its disk (slot):
 * saved again without it (QEMU did not plug it). <0: that save failed, the
 * disk stays in the definition. */
static int drop_saved_disk(VoVm *vm, unsigned slot)
{
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *next = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    for (size_t i = 0; i < next->n_disks; i++)
        if (next->disks[i].slot == slot) {
            spec_drop_disk(next, i);
            break;
        }
    int r = vo_vm_commit_spec(vm, next);
    if (r < 0)
        log_warn("vm: a disk QEMU did not plug stays in the definition (remove it): %s",
                 strerror(-r));
    return r;
}

/* A disk add that failed: the room taken for it in the VM's project
 * (vo_vm_disk_add) is given back. */
static void give_back(DiskOp *op)
{
    _cleanup_free_ char *error = NULL;
    if (op->reserved && vo_vm_disk_bytes_change(op->vm, -op->reserved, &error) < 0)
        log_warn("vm: cannot give back the %lld disk bytes reserved for a disk: %s",
                 (long long)op->reserved, error);
}

/* QEMU plugs disk index of spec (the VM's saved definition) into the
 * running VM hv (blockdev-add, device_add). */
static int plug_disk(VoDaemon *d, VoHvInstance *hv, const VoVmSpec *spec, size_t index,
                     VoTask *t, char **ret_error)
{
    vo_task_progress(t, 60, "plugging the disk into the running VM");
    /* The driver gets the definition with this host's paths. */
    VoVmSpec *resolved = NULL;
    int r = vo_vm_resolve(d, spec, &resolved, ret_error);
    /* An RBD disk's new watcher is its QEMU's Ceph client (rbd-dead-clients.h). */
    _cleanup_strv_ char **watchers = r >= 0 ? vo_rbd_clients_watching(d, spec) : NULL;
    if (r >= 0)
        r = d->driver->disk_attach(hv, resolved, index, ret_error);
    if (r >= 0) {
        _cleanup_free_ char *run_dir = vo_vm_run_dir(d, spec->id);
        vo_rbd_clients_record(d, spec, watchers, run_dir);
    }
    vo_vm_spec_free(resolved);
    return r;
}

/* Stopped VM: the disk joins its definition. Running VM: the definition
 * naming the disk is saved first, then QEMU plugs it in, and a plug that
 * fails takes it out of the definition again. Saved first, the VM's
 * relation (active) says it has the volume before QEMU opens it: a restore
 * of any host that marks the volume after the save finds this VM running
 * with it (vo_volume_check_no_running_user) and writes nothing, and one
 * that marked it before is seen here, the marks read again after the save
 * (of two racing, one sees the other). A vireod that dies between the save
 * and the plug leaves the disk in the definition only: the VM's next start
 * plugs it, a remove meanwhile takes QEMU's DeviceNotFound for the device
 * gone (qemu-hotplug.c), and a migration meanwhile is refused by its
 * destination (the layout lacks the slot: vo_qemu_layout_check_spec). */
static int task_disk_add(VoTask *t, void *userdata)
{
    DiskOp *op = userdata;
    VoVm *vm = op->vm;
    VoDaemon *d = vm->d;
    VoHvInstance *hv = NULL;
    VoVmSpec *next = NULL;
    int r = vo_vm_lock_for_change(t, vm, "add a disk to", &hv, &next);
    if (r < 0) {
        give_back(op);
        return r;
    }
    _cleanup_free_ char *error = NULL, *path = NULL, *format = NULL, *created = NULL;
    bool shareable = false, claimed = false, kept = false;
    if (next->n_disks >= VO_VM_MAX_DISKS) {
        error = vo_asprintf("the VM already has %zu disks, the most it can have is %d",
                            next->n_disks, VO_VM_MAX_DISKS);
        r = -EINVAL;
    }
    if (r >= 0)
        r = disk_volume(d, vm, op, t, &path, &format, &shareable, &created, &claimed, &error);
    if (r >= 0 && hv) /* plugged into a running VM: not a volume a restore marked (and */
        r = vo_volume_check_restore(d, op->volume, NULL, &error); /* again once saved) */
    if (r >= 0) {
        next->disks = realloc(next->disks, sizeof(VoDiskSpec) * (next->n_disks + 1));
        if (!next->disks)
            abort();
        unsigned slot = vo_vm_spec_free_disk_slot(next);
        next->disks[next->n_disks++] = (VoDiskSpec){
            .slot = slot, .volume = vo_strdup(op->volume),
            .shareable = shareable, .owned = created != NULL,
            .format = !strcmp(format, "raw") ? VO_DISK_RAW : VO_DISK_QCOW2 };
        /* The attach lock must still hold when the definition is saved:
         * otherwise the disk comes out again. */
        if (claimed)
            r = vo_volume_attach_confirm(d, op->volume, &error);
        size_t index = next->n_disks - 1;
        VoVmSpec *saved = r >= 0 && hv ? vo_vm_spec_copy(next) : NULL;
        if (r >= 0)
            r = vo_vm_commit_spec(vm, TAKE_PTR(next));
        /* Its save refused by the VM's project (the volume's moved meanwhile). */
        if (r < 0 && !error)
            error = vo_vm_save_refusal(r);
        if (r >= 0 && saved) {
            r = vo_volume_check_restore(d, op->volume, NULL, &error);
            if (r >= 0)
                r = plug_disk(d, hv, saved, index, t, &error);
            if (r < 0)
                kept = drop_saved_disk(vm, slot) < 0;
        }
        vo_vm_spec_free(saved);
    }
    vo_vm_spec_free(next);
    pthread_mutex_unlock(&vm->job);
    if (claimed) /* the definition names it now, or the add failed */
        vo_volume_attach_release(d, op->volume);
    /* A disk the definition still names (kept) keeps its volume and the
     * room its project counts for it. */
    if (r < 0 && created && !kept) {
        _cleanup_free_ char *ignored = NULL;
        (void)vo_volume_remove_now(d, op->volume, &ignored);
    }
    if (r < 0 && !kept)
        give_back(op);
    if (r < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        const char *stays =
            kept ? " (the disk stays in its definition, not plugged: remove it)" : "";
        return vo_task_fail(t, r, "cannot add a disk to VM '%s': %s%s", name,
                            error ? error : strerror(-r), stays);
    }
    return 0;
}

int vo_vm_disk_add(VoDaemon *d, VoVm *vm, const VoVmDiskAdd *add, json_t **ret_task,
                   char **ret_error)
{
    int r = vo_vm_precheck(vm, INACTIVE_STATES | IN(VO_VM_RUNNING), "add a disk to", ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    size_t n_disks = vm->spec->n_disks;
    pthread_mutex_unlock(&vm->lock);
    if (n_disks >= VO_VM_MAX_DISKS) {
        *ret_error = vo_asprintf("the VM already has %zu disks, the most it can have is %d",
                                 n_disks, VO_VM_MAX_DISKS);
        return -EINVAL;
    }
    if (!add->volume && (add->size_bytes == 0 || add->size_bytes > (64ULL << 40))) {
        *ret_error = vo_strdup("give an existing volume (POOL/NAME) or size_bytes for a new one "
                               "(1 byte to 64 TiB)");
        return -EINVAL;
    }
    if (!add->volume && add->pool && !vo_pool_exists(d, add->pool)) {
        *ret_error = vo_asprintf("pool '%s' does not exist", add->pool);
        return -ENOENT;
    }
    if (!add->volume && add->format && strcmp(add->format, "qcow2") && strcmp(add->format, "raw")) {
        *ret_error = vo_asprintf("format: '%s' is not qcow2 or raw", add->format);
        return -EINVAL;
    }
    if (add->volume && vo_volume_is_base(d, add->volume)) {
        *ret_error = vo_asprintf("volume '%s' backs linked clones: attaching it would let a VM "
                                 "write under them; clone it instead", add->volume);
        return -EBUSY;
    }
    if (add->volume) {
        _cleanup_free_ char *path = NULL, *format = NULL;
        bool shareable = false;
        r = vo_volume_lookup(d, add->volume, &path, &format, &shareable, ret_error);
        if (r < 0)
            return r == -ENOENT ? -EINVAL : r;
        pthread_mutex_lock(&vm->lock);
        _cleanup_free_ char *vm_name = vo_strdup(vm->spec->name);
        _cleanup_free_ char *project = vo_strdup(vo_vm_spec_project(vm->spec));
        pthread_mutex_unlock(&vm->lock);
        if ((r = vo_vm_object_allowed(d, vm_name, project, true, add->volume, ret_error)) < 0)
            return r;
        _cleanup_free_ char *user = vo_vms_volume_user(d, add->volume);
        if (user && !shareable) {
            *ret_error = vo_asprintf("volume '%s' is already attached to VM '%s'", add->volume,
                                     user);
            return -EBUSY;
        }
    }
    /* An HA VM's disks are all shared (docs/ha.md): checked on the disk
     * as it would be added. */
    pthread_mutex_lock(&vm->lock);
    bool ha = vm->spec->ha;
    _cleanup_free_ char *vm_name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    if (ha) {
        _cleanup_free_ char *key = add->volume ? vo_strdup(add->volume)
                                               : vo_asprintf("%s/new", add->pool ? add->pool
                                                                                 : VO_DEFAULT_POOL);
        VoDiskSpec disk = { .volume = key };
        VoVmSpec probe = { .name = vm_name, .disks = &disk, .n_disks = 1 };
        _cleanup_free_ char *why = NULL;
        if (vo_vm_ha_check_disks(d, &probe, &why) < 0)
            return vo_error_set(ret_error, -EBUSY, "VM '%s' is highly available: %s must be "
                                "in a shared pool (or switch HA off first: vireo vm set %s "
                                "--ha off)", vm_name,
                                add->volume ? add->volume : "the new disk", vm_name);
    }
    DiskOp *op = vo_malloc0(sizeof(*op));
    op->vm = vo_vm_ref(vm);
    op->volume = vo_strdup(add->volume);
    op->pool = vo_strdup(add->pool ? add->pool : VO_DEFAULT_POOL);
    op->format = vo_strdup(add->format ? add->format : "qcow2");
    op->size = add->size_bytes;
    /* Its size counts against the project's disk quota before the task
     * makes or attaches it (given back when the add fails). */
    int64_t size = add->volume ? vo_vm_volume_virtual_size(d, add->volume)
                               : (int64_t)add->size_bytes;
    if (size > 0 && (r = vo_vm_disk_bytes_change(vm, size, ret_error)) < 0) {
        disk_op_free(op);
        return r;
    }
    op->reserved = size > 0 ? size : 0;
    int64_t reserved = op->reserved; /* op is freed when the submit is refused */
    r = vo_vm_submit(d, vm, "disk-add", task_disk_add, op, disk_op_free, ret_task, ret_error);
    if (r < 0 && reserved) {
        _cleanup_free_ char *ignored = NULL;
        (void)vo_vm_disk_bytes_change(vm, -reserved, &ignored);
    }
    return r;
}

/* Running VM: the guest must release the disk (device_del, DEVICE_DELETED)
 * before the definition loses it; when it does not, the disk stays. */
static int task_disk_remove(VoTask *t, void *userdata)
{
    DiskOp *op = userdata;
    VoVm *vm = op->vm;
    VoDaemon *d = vm->d;
    VoHvInstance *hv = NULL;
    VoVmSpec *next = NULL;
    int r = vo_vm_lock_for_change(t, vm, "remove a disk from", &hv, &next);
    if (r < 0)
        return r;
    _cleanup_free_ char *error = NULL;
    if (op->index == 0) {
        error = vo_strdup("disk 0 is the boot disk and cannot be removed");
        r = -EINVAL;
    } else if (op->index >= next->n_disks) {
        error = vo_asprintf("the VM has no disk %zu (it has %zu)", op->index, next->n_disks);
        r = -ENOENT;
    }
    if (r >= 0 && hv) {
        vo_task_progress(t, 30, "waiting for the guest to release the disk");
        r = d->driver->disk_detach(hv, next->disks[op->index].slot, &error);
    }
    int64_t freed = 0;
    if (r >= 0) {
        const char *volume = next->disks[op->index].volume;
        freed = volume ? vo_vm_volume_virtual_size(d, volume) : 0;
        spec_drop_disk(next, op->index);
        r = vo_vm_commit_spec(vm, TAKE_PTR(next));
    }
    vo_vm_spec_free(next);
    pthread_mutex_unlock(&vm->job);
    _cleanup_free_ char *ignored = NULL;
    if (r >= 0 && freed > 0 && vo_vm_disk_bytes_change(vm, -freed, &ignored) < 0)
        log_warn("vm: cannot give back the %lld disk bytes of a removed disk: %s",
                 (long long)freed, ignored);
    if (r < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, r, "cannot remove disk %zu from VM '%s': %s", op->index, name,
                            error ? error : strerror(-r));
    }
    return 0;
}

int vo_vm_disk_remove(VoDaemon *d, VoVm *vm, size_t index, json_t **ret_task, char **ret_error)
{
    if (index == 0) {
        *ret_error = vo_strdup("disk 0 is the boot disk and cannot be removed");
        return -EINVAL;
    }
    int r = vo_vm_precheck(vm, INACTIVE_STATES | IN(VO_VM_RUNNING), "remove a disk from",
                           ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    size_t n = vm->spec->n_disks;
    pthread_mutex_unlock(&vm->lock);
    if (index >= n) {
        *ret_error = vo_asprintf("the VM has no disk %zu (it has %zu)", index, n);
        return -ENOENT;
    }
    DiskOp *op = vo_malloc0(sizeof(*op));
    op->vm = vo_vm_ref(vm);
    op->index = index;
    return vo_vm_submit(d, vm, "disk-remove", task_disk_remove, op, disk_op_free, ret_task,
                        ret_error);
}

static int task_template(VoTask *t, void *userdata)
{
    DiskOp *op = userdata;
    VoVm *vm = op->vm;
    VoDaemon *d = vm->d;
    int r = 0;
    if (!lock_stopped(t, vm, "make a template of", &r)) {
        vo_image_name_release(d, op->image);
        op->image_claimed = false;
        return r;
    }
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *stored = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *error = NULL;
    VoVmSpec *spec = NULL;
    r = vo_vm_resolve(d, stored, &spec, &error);
    if (r < 0) {
        vo_image_name_release(d, op->image);
        op->image_claimed = false;
        pthread_mutex_unlock(&vm->job);
        r = vo_task_fail(t, r, "cannot make image '%s' from VM '%s': %s", op->image,
                         stored->name, error);
        vo_vm_spec_free(stored);
        return r;
    }
    vo_vm_spec_free(stored);
    vo_task_progress(t, 5, "flattening the boot disk");
    VoImageBuild b = { .name = op->image, .disk_path = spec->disks[0].path,
                       .disk_format = vo_disk_format_to_string(spec->disks[0].format),
                       .kernel = spec->kernel, .initrd = spec->initrd, .cmdline = spec->cmdline,
                       .template_of = spec->name };
    r = vo_image_build(d, &b, t, &error);
    vo_image_name_release(d, op->image); /* built (it exists now) or not */
    op->image_claimed = false;
    pthread_mutex_unlock(&vm->job);
    if (r < 0)
        r = vo_task_fail(t, r, "cannot make image '%s' from VM '%s': %s", op->image, spec->name,
                         error ? error : strerror(-r));
    vo_vm_spec_free(spec);
    return r;
}

int vo_vm_template(VoDaemon *d, VoVm *vm, const char *image, json_t **ret_task, char **ret_error)
{
    int r = vo_vm_precheck(vm, INACTIVE_STATES, "make a template of", ret_error);
    if (r < 0)
        return r;
    if (!vo_name_valid(image)) {
        *ret_error = vo_asprintf("image: '%s' is invalid: use 1-63 characters of a-z, 0-9 and "
                                 "'-', not starting with '-'", image ? image : "");
        return -EINVAL;
    }
    r = vo_image_name_claim(d, image, ret_error);
    if (r < 0)
        return r;
    DiskOp *op = vo_malloc0(sizeof(*op));
    op->vm = vo_vm_ref(vm);
    op->image = vo_strdup(image);
    op->image_claimed = true;
    return vo_vm_submit(d, vm, "template", task_template, op, disk_op_free, ret_task, ret_error);
}

/* ---- restores ------------------------------------------------------------------------ */

int vo_vm_spec_check_restores(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    int r = 0;
    for (size_t i = 0; r >= 0 && i < spec->n_disks; i++)
        if (spec->disks[i].volume)
            r = vo_volume_check_restore(d, spec->disks[i].volume, spec->id, ret_error);
    if (r >= 0 && spec->nvram)
        r = vo_volume_check_restore(d, spec->nvram, spec->id, ret_error);
    return r;
}

void vo_vm_spec_settle_restores(VoDaemon *d, const VoVmSpec *spec)
{
    for (size_t i = 0; i < spec->n_disks; i++)
        if (spec->disks[i].volume)
            vo_volume_restore_settle(d, spec->disks[i].volume, spec->id);
    if (spec->nvram)
        vo_volume_restore_settle(d, spec->nvram, spec->id);
}

int vo_vm_start_check_restores(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    _cleanup_free_ char *point = vo_asprintf("vm_start_restore_check@%s", spec->name);
    vo_test_hold(point); /* tests start a restore while the VM is starting */
    return vo_vm_spec_check_restores(d, spec, ret_error);
}

int vo_vm_check_restores(VoVm *vm, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    _cleanup_vm_spec_ VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    return vo_vm_spec_check_restores(vm->d, spec, ret_error);
}
