/* vm-cdrom.c: the ISO in a VM's CD-ROM drive: insert and eject, on a stopped
 * VM (its definition only) or a running one (a QMP media change first, then
 * the definition, which records the volume as used by the VM). An HA VM
 * takes only an ISO of a shared pool (docs/ha.md). */
#include <string.h>

#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "util/util.h"

typedef struct {
    VoVm *vm;
    char *volume; /* NULL: eject */
} CdromOp;

static void cdrom_op_free(void *p)
{
    CdromOp *op = p;
    vo_vm_unref(op->vm);
    free(op->volume);
    free(op);
}

/* An HA VM's ISO is of a shared pool (docs/ha.md): another host must be
 * able to start the VM with it. */
static int ha_iso_check(VoDaemon *d, const char *vm, const char *iso, char **ret_error)
{
    if (vo_volume_is_shared(d, iso))
        return 0;
    return vo_error_set(ret_error, -EBUSY, "VM '%s' is highly available: the ISO '%s' is on "
                        "this host's own pool, so no other host could start the VM with it "
                        "(use an ISO of a shared pool, or switch HA off first: vireo vm set "
                        "%s --ha off)", vm, iso, vm);
}

static int task_cdrom(VoTask *t, void *userdata)
{
    CdromOp *op = userdata;
    VoVm *vm = op->vm;
    const char *verb = op->volume ? "insert a CD into" : "eject the CD of";
    VoHvInstance *hv = NULL;
    VoVmSpec *next = NULL;
    int r = vo_vm_lock_for_change(t, vm, verb, &hv, &next);
    if (r < 0)
        return r;
    _cleanup_free_ char *error = NULL, *path = NULL, *format = NULL;
    if (hv && !next->has_cdrom)
        r = vo_error_set(&error, -EBUSY, "it has no CD-ROM drive and runs: stop it and insert "
                         "the CD then (a stopped VM gets a drive)");
    if (r >= 0 && op->volume)
        r = vo_volume_check_iso(vm->d, op->volume, &error);
    if (r >= 0 && op->volume && next->ha) /* checked under the job: a --ha on waits for it */
        r = ha_iso_check(vm->d, next->name, op->volume, &error);
    if (r >= 0 && op->volume && hv)
        r = vo_volume_lookup(vm->d, op->volume, &path, &format, NULL, &error);
    if (r >= 0 && hv) {
        if (!vm->d->driver->cdrom_change)
            r = vo_error_set(&error, -EOPNOTSUPP, "this hypervisor driver cannot change media");
        else
            r = vm->d->driver->cdrom_change(hv, path, &error);
    }
    if (r >= 0) {
        next->has_cdrom = true;
        free(next->cdrom);
        next->cdrom = vo_strdup(op->volume);
        r = vo_vm_commit_spec(vm, TAKE_PTR(next));
    }
    vo_vm_spec_free(next);
    pthread_mutex_unlock(&vm->job);
    if (r < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, r, "cannot %s VM '%s': %s", verb, name,
                            error ? error : strerror(-r));
    }
    return 0;
}

int vo_vm_cdrom_set(VoDaemon *d, VoVm *vm, const char *volume, json_t **ret_task,
                    char **ret_error)
{
    int r = vo_vm_precheck(vm, INACTIVE_STATES | IN(VO_VM_RUNNING),
                           volume ? "insert a CD into" : "eject the CD of", ret_error);
    if (r < 0)
        return r;
    /* Checked now too, so a wrong name is a 4xx answer, not a failed task. */
    if (volume && (r = vo_volume_check_iso(d, volume, ret_error)) < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    bool running = vm->state == VO_VM_RUNNING, drive = vm->spec->has_cdrom;
    bool ha = vm->spec->ha;
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    if (volume && ha && (r = ha_iso_check(d, name, volume, ret_error)) < 0)
        return r;
    if (running && !drive)
        return vo_error_set(ret_error, -EBUSY, "the VM has no CD-ROM drive and runs: stop it "
                            "first (a stopped VM gets a drive at insert), or create VMs with "
                            "--cdrom");
    CdromOp *op = vo_malloc0(sizeof(*op));
    op->vm = vo_vm_ref(vm);
    op->volume = vo_strdup(volume);
    return vo_vm_submit(d, vm, volume ? "cdrom-insert" : "cdrom-eject", task_cdrom, op,
                        cdrom_op_free, ret_task, ret_error);
}
