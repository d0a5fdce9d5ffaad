/* qemu-hotplug.c: disks and NICs plugged into and out of a running QEMU over
 * QMP. A disk is two block nodes (blockdev-add) and a virtio-blk device
 * (device_add); a NIC a netdev (its tap passed with getfd) and a virtio-net
 * device. Properties come from qemu-devices.c, as on the command line. Every
 * attach undoes its own steps when a later one fails; a detach waits for the
 * guest to release the device (DEVICE_DELETED) before it frees the backend.
 * Every change is recorded in the VM's hardware layout (qemu-layout.h). */
#include "qemu/qemu-hotplug.h"

#include <string.h>

#include "qemu/qemu-confine.h"
#include "qemu/qemu-devices.h"
#include "qemu/qemu-instance.h"
#include "util/util.h"

/* One QMP command with args (stolen); its error text (if any) goes to *ret_error. */
static int run(VoHvInstance *vm, const char *cmd, json_t *args, char **ret_error)
{
    int r = vo_qemu_confine_execute(vm, cmd, args, NULL, ret_error);
    json_decref(args);
    return r;
}

/* Cleanup step after a failure: its own error is only logged. */
static void undo(VoHvInstance *vm, const char *cmd, const char *key, const char *id)
{
    _cleanup_free_ char *error = NULL;
    if (run(vm, cmd, json_pack("{s:s}", key, id), &error) < 0)
        log_warn("QMP %s %s (undoing a hot-plug) failed: %s", cmd, id,
                 error ? error : "no answer");
}

static int lock_qmp(VoHvInstance *vm, char **ret_error)
{
    pthread_mutex_lock(&vm->qmp_lock);
    if (vm->qmp)
        return 0;
    pthread_mutex_unlock(&vm->qmp_lock);
    *ret_error = vo_strdup("QEMU's monitor is not connected");
    return -ENOTCONN;
}

/* Whether QEMU has a device with this id: 1 or 0, or -errno with
 * *ret_error. Caller holds qmp_lock. */
static int has_device(VoHvInstance *vm, const char *id, char **ret_error)
{
    json_t *args = json_pack("{s:s}", "path", "/machine/peripheral"), *list = NULL;
    _cleanup_free_ char *error = NULL;
    int r = vo_qmp_execute(vm->qmp, "qom-list", args, QMP_TIMEOUT_MS, &list, &error);
    json_decref(args);
    if (r < 0) {
        *ret_error = vo_asprintf("QEMU could not list its devices: %s", error ? error : strerror(-r));
        return r;
    }
    bool found = false;
    size_t i;
    json_t *prop;
    json_array_foreach(list, i, prop)
        if (!strcmp(json_string_value(json_object_get(prop, "name")) ?: "", id))
            found = true;
    json_decref(list);
    return found;
}

/* Whether QEMU has the root port a device would plug into (the VM got
 * only a few spare ones at start; see qemu-devices.c). Caller holds qmp_lock. */
static int check_port(VoHvInstance *vm, const VoVmSpec *spec, const char *port, const char *what,
                      char **ret_error)
{
    if (!vo_qemu_uses_root_ports(spec))
        return 0;
    int r = has_device(vm, port, ret_error);
    if (r != 0)
        return r < 0 ? r : 0;
    *ret_error = vo_asprintf("no free hot-plug port for another %s: the VM got a few spare "
                             "ports when it started and they are in use; stop and start it "
                             "(or add the %s while it is stopped)", what, what);
    return -ENOSPC;
}

/* Takes qmp_lock to plug a device into port; on failure (no monitor, no
 * free port) the lock is not held and *ret_error says why. */
static int lock_for_plug(VoHvInstance *vm, const VoVmSpec *spec, const char *port,
                         const char *what, char **ret_error)
{
    int r = lock_qmp(vm, ret_error);
    if (r < 0)
        return r;
    r = check_port(vm, spec, port, what, ret_error);
    if (r < 0)
        pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}

int vo_qemu_disk_attach(VoHvInstance *vm, const VoVmSpec *spec, size_t index, char **ret_error)
{
    const VoDiskSpec *disk = &spec->disks[index];
    VoQemuDiskNames names;
    vo_qemu_disk_names(disk->slot, &names);
    int r = lock_for_plug(vm, spec, names.port, "disk", ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *error = NULL;
    const char *step = "open its file (blockdev-add)";
    /* A disk whose file needs a secret (an RBD key, an iSCSI CHAP secret):
     * its secret object first, read from its file (one left by an earlier
     * plug of this slot goes first). */
    char secret_id[40];
    vo_qemu_disk_secret_id(disk->slot, secret_id);
    json_t *secret = vo_qemu_disk_secret_props(disk);
    bool with_secret = secret != NULL;
    if (secret) {
        _cleanup_free_ char *ignored = NULL;
        (void)run(vm, "object-del", json_pack("{s:s}", "id", secret_id), &ignored);
        step = "add its secret (object-add)";
        r = run(vm, "object-add", secret, &error);
    }
    if (r >= 0) {
        step = "open its file (blockdev-add)";
        r = run(vm, "blockdev-add", vo_qemu_disk_file_props(disk), &error);
    }
    if (r >= 0) {
        step = "open its format layer (blockdev-add)";
        r = run(vm, "blockdev-add", vo_qemu_disk_format_props(disk), &error);
        if (r >= 0) {
            step = "plug the device (device_add)";
            r = run(vm, "device_add", vo_qemu_disk_device_props(spec, index), &error);
            if (r < 0)
                undo(vm, "blockdev-del", "node-name", names.format_node);
        }
        if (r < 0)
            undo(vm, "blockdev-del", "node-name", names.file_node);
    }
    if (r < 0 && with_secret && strcmp(step, "add its secret (object-add)"))
        undo(vm, "object-del", "id", secret_id);
    if (r >= 0)
        vo_qemu_layout_changed(vm);
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r < 0)
        *ret_error = vo_asprintf("QEMU could not %s for %s: %s", step, disk->path,
                                 error ? error : strerror(-r));
    return r;
}

/* device_del of id, then the wait for the guest to let go of it. Caller
 * holds qmp_lock. what: "disk"/"NIC", for messages. */
static int unplug_device(VoHvInstance *vm, const char *id, const char *what, unsigned slot,
                         char **ret_error)
{
    /* A DEVICE_DELETED left over from an earlier unplug that timed out (the
     * guest let go later) must not answer for this one. */
    while (vo_qmp_wait_event(vm->qmp, "DEVICE_DELETED", "device", id, 0, NULL) == 0)
        ;
    _cleanup_free_ char *error = NULL;
    int r = run(vm, "device_del", json_pack("{s:s}", "id", id), &error);
    if (r == -EIO && error && !strncmp(error, "DeviceNotFound:", 15))
        return 0; /* released after an earlier, timed out, unplug */
    if (r < 0) {
        *ret_error = vo_asprintf("QEMU refused to unplug %s %s: %s", what, id,
                                 error ? error : strerror(-r));
        return r;
    }
    r = vo_qmp_wait_event(vm->qmp, "DEVICE_DELETED", "device", id, VO_QEMU_UNPLUG_TIMEOUT_MS,
                          NULL);
    if (r == -ETIMEDOUT)
        *ret_error = vo_asprintf("the guest did not release %s %u within %d s (its OS must "
                                 "support PCI hot-unplug and be running); it stays attached: "
                                 "try again, or stop the VM and remove it then",
                                 what, slot, VO_QEMU_UNPLUG_TIMEOUT_MS / 1000);
    else if (r < 0)
        *ret_error = vo_asprintf("lost QEMU's monitor while unplugging %s %u", what, slot);
    return r;
}

/* A backend object to delete once its device is gone: QMP cmd {key: id}. */
typedef struct {
    const char *cmd, *key, *id;
} Backend;

/* Unplugs device (see unplug_device), then deletes its backends in order. A
 * failure to delete one leaks it in QEMU until it stops, no more. */
static int detach(VoHvInstance *vm, const char *device, const char *what, unsigned slot,
                  const Backend *backends, size_t n_backends, char **ret_error)
{
    int r = lock_qmp(vm, ret_error);
    if (r < 0)
        return r;
    r = unplug_device(vm, device, what, slot, ret_error);
    for (size_t i = 0; r >= 0 && i < n_backends; i++)
        undo(vm, backends[i].cmd, backends[i].key, backends[i].id);
    if (r >= 0)
        vo_qemu_layout_changed(vm);
    pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}

int vo_qemu_disk_detach(VoHvInstance *vm, unsigned slot, char **ret_error)
{
    VoQemuDiskNames names;
    vo_qemu_disk_names(slot, &names);
    const Backend nodes[] = { { "blockdev-del", "node-name", names.format_node },
                              { "blockdev-del", "node-name", names.file_node } };
    int r = detach(vm, names.device, "disk", slot, nodes, ELEMENTSOF(nodes), ret_error);
    /* An iSCSI disk's CHAP secret object, if it had one (none: QEMU says so,
     * quietly ignored). */
    char secret_id[40];
    vo_qemu_disk_secret_id(slot, secret_id);
    _cleanup_free_ char *error = NULL;
    if (r >= 0 && lock_qmp(vm, &error) >= 0) {
        (void)run(vm, "object-del", json_pack("{s:s}", "id", secret_id), &error);
        pthread_mutex_unlock(&vm->qmp_lock);
    }
    return r;
}

int vo_qemu_nic_attach(VoHvInstance *vm, const VoVmSpec *spec, const VoNicSpec *nic, int tap_fd,
                       char **ret_error)
{
    VoQemuNicNames names;
    vo_qemu_nic_names(nic->slot, &names);
    char fdname[40];
    snprintf(fdname, sizeof(fdname), "tap-%s", names.device);
    int r = lock_for_plug(vm, spec, names.port, "NIC", ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *error = NULL;
    const char *step = "take the tap (getfd)";
    if (tap_fd >= 0) {
        json_t *args = json_pack("{s:s}", "fdname", fdname);
        r = vo_qmp_execute_fd(vm->qmp, "getfd", args, tap_fd, QMP_TIMEOUT_MS, NULL, &error);
        json_decref(args);
    }
    if (r >= 0) {
        step = "make the backend (netdev_add)";
        r = run(vm, "netdev_add", vo_qemu_nic_netdev_props(nic, tap_fd >= 0 ? fdname : NULL),
                &error);
        if (r >= 0) {
            step = "plug the device (device_add)";
            r = run(vm, "device_add", vo_qemu_nic_device_props(spec, nic), &error);
            if (r < 0)
                undo(vm, "netdev_del", "id", names.netdev);
        } else if (tap_fd >= 0) {
            undo(vm, "closefd", "fdname", fdname); /* netdev_add did not take it */
        }
    }
    if (r >= 0)
        vo_qemu_layout_changed(vm);
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r < 0)
        *ret_error = vo_asprintf("QEMU could not %s for NIC %s: %s", step, nic->mac,
                                 error ? error : strerror(-r));
    return r;
}

int vo_qemu_nic_detach(VoHvInstance *vm, unsigned slot, char **ret_error)
{
    VoQemuNicNames names;
    vo_qemu_nic_names(slot, &names);
    /* netdev_del closes QEMU's tap fd: the tap goes. */
    const Backend netdev[] = { { "netdev_del", "id", names.netdev } };
    return detach(vm, names.device, "NIC", slot, netdev, ELEMENTSOF(netdev), ret_error);
}

/* The ISO at path (NULL: none) into the CD-ROM drive id (what: its name in
 * errors). */
static int change_medium(VoHvInstance *vm, const char *id, const char *what, const char *path,
                         char **ret_error)
{
    int r = lock_qmp(vm, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *error = NULL;
    /* The tray is forced open (a guest that mounted the CD locks it), the
     * old medium goes, the new one goes in and the tray closes: the guest
     * sees a media change. */
    _cleanup_free_ char *medium = NULL;
    /* An ISO on an rbd pool: its pool's key as the secret object first (one
     * left by an earlier medium goes: it may be another pool's), then a
     * json: filename naming it; no file to hand over. */
    json_t *secret = path ? vo_qemu_cdrom_secret_props(path) : NULL;
    if (secret) {
        _cleanup_free_ char *ignored = NULL;
        (void)run(vm, "object-del", json_pack("{s:s}", "id", VO_QEMU_CDROM_SECRET), &ignored);
        r = run(vm, "object-add", secret, &error);
        if (r >= 0 && !(medium = vo_qemu_cdrom_filename(path)))
            r = vo_error_set(&error, -EINVAL, "cannot read the rbd pool's conf of %s", path);
    } else if (path)
        r = vo_qemu_confine_path(vm, path, true, &medium, &error);
    if (path) {
        if (r >= 0)
            r = run(vm, "blockdev-change-medium",
                    json_pack("{s:s, s:s, s:s, s:s, s:b}", "id", id, "filename",
                              medium, "format", "raw", "read-only-mode", "read-only", "force", 1),
                    &error);
    } else
        r = run(vm, "eject", json_pack("{s:s, s:b}", "id", id, "force", 1), &error);
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r < 0)
        *ret_error = vo_asprintf("QEMU could not %s %s: %s", path ? "change" : "eject", what,
                                 error ? error : strerror(-r));
    return r;
}

int vo_qemu_cdrom_change(VoHvInstance *vm, const char *path, char **ret_error)
{
    return change_medium(vm, VO_QEMU_CDROM_ID, "the CD-ROM", path, ret_error);
}

int vo_qemu_seed_change(VoHvInstance *vm, const char *path, char **ret_error)
{
    /* A VM started without a seed has no seed drive: -ENODEV, which the
     * caller tells apart from a failed change (nothing is opened for it). */
    int r = lock_qmp(vm, ret_error);
    if (r < 0)
        return r;
    r = has_device(vm, VO_QEMU_CIDATA_ID, ret_error);
    if (r == 0 && vm->layout) {
        /* A migration's destination must have no seed drive either, though
         * the spec now has settings (qemu-layout.h, VoQemuSeedDrive). */
        vm->layout->seed_drive = path ? VO_QEMU_SEED_NONE : VO_QEMU_SEED_AS_SPEC;
        int saved = vo_qemu_layout_save(vm->layout, vm->run_dir);
        if (saved < 0)
            log_warn("the hardware layout of the VM in %s was not saved: %s", vm->run_dir,
                     strerror(-saved));
    }
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r == 0)
        return vo_error_set(ret_error, -ENODEV, "it started without a seed: no seed drive");
    return r < 0 ? r : change_medium(vm, VO_QEMU_CIDATA_ID, "the cloud-init seed's CD-ROM",
                                     path, ret_error);
}
