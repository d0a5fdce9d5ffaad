/* vm-cloudinit.c: a VM's cloud-init NoCloud seed: the ISO (volume label
 * cidata: user-data, meta-data, network-config) vireod writes into the VM's
 * own state directory (STATE/vms/ID/cidata.iso, deleted with the VM) from the
 * spec's "cloud_init" settings, remade whenever they (or the VM's first MAC)
 * change; and the show/set operations on the settings. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/vm-internal.h"
#include "util/spawn.h"
#include "util/util.h"

/* One seed written at a time (starts, migrations and edits of different VMs
 * are rare and each write takes milliseconds). */
static pthread_mutex_t seed_lock = PTHREAD_MUTEX_INITIALIZER;

static int render(const VoVmSpec *spec, VoCloudInitSeed *ret)
{
    return vo_cloud_init_render(spec->cloud_init, spec->id, spec->name,
                                spec->n_nics ? spec->nics[0].mac : NULL, ret);
}

static int write_doc(const char *dir, const char *name, const char *text)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, name);
    return vo_write_file_atomic(path, text, strlen(text));
}

/* The ISO of the files in dir at out: genisoimage, else xorriso. */
static int make_iso(const char *dir, const char *out, char **ret_error)
{
    _cleanup_free_ char *output = NULL;
    int r;
    if (access("/usr/bin/genisoimage", X_OK) == 0) {
        char *argv[] = { "genisoimage", "-quiet", "-input-charset", "utf-8", "-volid", "cidata",
                         "-joliet", "-rock", "-output", (char *)out, (char *)dir, NULL };
        r = vo_spawn_wait(argv, 30000, &output);
    } else {
        char *argv[] = { "xorriso", "-as", "mkisofs", "-quiet", "-volid", "cidata", "-joliet",
                         "-rock", "-output", (char *)out, (char *)dir, NULL };
        r = vo_spawn_wait(argv, 30000, &output);
    }
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot make the cloud-init seed ISO (genisoimage or "
                            "xorriso; scripts/install-deps.sh installs them): %s",
                            output && *output ? output : strerror(-r));
    return 0;
}

int vo_vm_cloud_init_seed(VoDaemon *d, const VoVmSpec *spec, char **ret_path, char **ret_error)
{
    VoCloudInitSeed seed = { 0 };
    int r = render(spec, &seed);
    if (r < 0) {
        vo_cloud_init_seed_clear(&seed);
        return vo_error_set(ret_error, r, "cannot write the cloud-init seed of VM '%s'",
                            spec->name);
    }
    _cleanup_free_ char *dir = vo_vm_state_dir(d, spec->id);
    _cleanup_free_ char *iso = vo_asprintf("%s/cidata.iso", dir);
    _cleanup_free_ char *stamp = vo_asprintf("%s/cidata.id", dir);
    _cleanup_free_ char *tmp = vo_asprintf("%s/.cidata.XXXXXX", dir);
    _cleanup_free_ char *tmp_iso = NULL, *have = NULL;
    pthread_mutex_lock(&seed_lock);
    /* Unchanged settings: the ISO there is the one (its instance-id names
     * the whole content). */
    size_t len = 0;
    struct stat st;
    if (vo_read_file(stamp, 4096, &have, &len) >= 0 && !strcmp(have, seed.instance_id) &&
        stat(iso, &st) == 0) {
        r = 0;
        goto done;
    }
    if ((r = vo_mkdir_p(dir, 0700)) < 0 || !mkdtemp(tmp)) {
        r = r < 0 ? r : -errno;
        vo_error_set(ret_error, r, "cannot make a directory in %s: %s", dir, strerror(-r));
        free(TAKE_PTR(tmp));
        goto done;
    }
    tmp_iso = vo_asprintf("%s.iso", tmp);
    if ((r = write_doc(tmp, "user-data", seed.user_data)) < 0 ||
        (r = write_doc(tmp, "meta-data", seed.meta_data)) < 0 ||
        (seed.network_config && (r = write_doc(tmp, "network-config", seed.network_config)) < 0)) {
        vo_error_set(ret_error, r, "cannot write the cloud-init seed's files: %s", strerror(-r));
        goto done;
    }
    if ((r = make_iso(tmp, tmp_iso, ret_error)) < 0)
        goto done;
    if (rename(tmp_iso, iso) < 0) {
        r = vo_error_set(ret_error, -errno, "cannot rename the seed to %s: %m", iso);
        goto done;
    }
    free(TAKE_PTR(tmp_iso));
    r = vo_write_file_atomic(stamp, seed.instance_id, strlen(seed.instance_id));
    if (r < 0)
        vo_error_set(ret_error, r, "cannot write %s: %s", stamp, strerror(-r));
    else
        log_info("VM '%s': cloud-init seed %s (instance-id %s)", spec->name, iso,
                 seed.instance_id);
done:
    if (tmp)
        (void)vo_rm_rf(tmp);
    if (tmp_iso)
        (void)unlink(tmp_iso);
    pthread_mutex_unlock(&seed_lock);
    vo_cloud_init_seed_clear(&seed);
    if (r >= 0)
        *ret_path = TAKE_PTR(iso);
    return r;
}

/* Drops the seed of a VM whose cloud-init settings went. */
static void seed_remove(VoDaemon *d, const char *id)
{
    _cleanup_free_ char *dir = vo_vm_state_dir(d, id);
    _cleanup_free_ char *iso = vo_asprintf("%s/cidata.iso", dir);
    _cleanup_free_ char *stamp = vo_asprintf("%s/cidata.id", dir);
    (void)unlink(stamp);
    (void)unlink(iso);
}

json_t *vo_vm_cloud_init_json(VoDaemon *d, VoVm *vm)
{
    (void)d;
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    json_t *o;
    VoCloudInitSeed seed = { 0 };
    if (!spec->cloud_init)
        o = json_pack("{s:n}", "settings");
    else if (render(spec, &seed) < 0)
        o = json_pack("{s:o}", "settings", vo_cloud_init_to_json(spec->cloud_init));
    else
        o = json_pack("{s:o, s:s, s:s, s:s, s:s*}", "settings",
                      vo_cloud_init_to_json(spec->cloud_init), "instance_id", seed.instance_id,
                      "user_data", seed.user_data, "meta_data", seed.meta_data,
                      "network_config", seed.network_config);
    vo_cloud_init_seed_clear(&seed);
    vo_vm_spec_free(spec);
    return o;
}

typedef struct {
    VoVm *vm;
    VoCloudInit *settings; /* NULL: none */
} CloudInitOp;

static void op_free(void *p)
{
    CloudInitOp *op = p;
    vo_vm_unref(op->vm);
    vo_cloud_init_free(op->settings);
    free(op);
}

/* A running VM's QEMU gets the new seed (path; NULL: none) in its seed
 * drive, so a reboot inside the guest (or `vm reboot`) applies the settings
 * as a start would. A VM started without a seed has no such drive: its
 * settings apply at its next start, as when the driver cannot change it. */
static void seed_swap(VoTask *t, VoVm *vm, VoHvInstance *hv, const char *path)
{
    _cleanup_free_ char *error = NULL, *name = vo_vm_name(vm);
    VoHvDriver *drv = vm->d->driver;
    int r = drv->seed_change ? drv->seed_change(hv, path, &error) : -EOPNOTSUPP;
    if (r >= 0 || (r == -ENODEV && !path)) { /* ejected, or nothing to eject */
        log_info("VM '%s': the running VM's cloud-init seed %s", name,
                 path ? "changed: its next boot applies the settings"
                 : r >= 0 ? "ejected" : "removed (it started without one)");
        return;
    }
    _cleanup_free_ char *msg = NULL;
    if (r == -ENODEV)
        msg = vo_strdup("the running VM started without a cloud-init seed: the settings apply "
                        "at its next start");
    else if (r == -EOPNOTSUPP)
        msg = vo_asprintf("the %s driver cannot change a running VM's cloud-init seed: the "
                          "settings apply at its next start", drv->name);
    else
        msg = vo_asprintf("the running VM keeps its cloud-init seed until it is stopped and "
                          "started (%s)", error ? error : strerror(-r));
    if (r == -ENODEV)
        log_info("VM '%s': %s", name, msg);
    else
        log_warn("VM '%s': %s", name, msg);
    vo_task_progress(t, 100, msg);
}

static int task_cloud_init(VoTask *t, void *userdata)
{
    CloudInitOp *op = userdata;
    VoVm *vm = op->vm;
    VoHvInstance *hv = NULL;
    VoVmSpec *next = NULL;
    int r = vo_vm_lock_for_change(t, vm, "change the cloud-init settings of", &hv, &next);
    if (r < 0)
        return r;
    _cleanup_free_ char *error = NULL, *path = NULL;
    vo_cloud_init_free(next->cloud_init);
    next->cloud_init = TAKE_PTR(op->settings);
    /* The new seed is written before the settings are saved: a seed that
     * cannot be made leaves the VM as it was. */
    if (next->cloud_init)
        r = vo_vm_cloud_init_seed(vm->d, next, &path, &error);
    _cleanup_free_ char *id = vo_strdup(next->id);
    bool gone = !next->cloud_init;
    if (r >= 0)
        r = vo_vm_commit_spec(vm, TAKE_PTR(next));
    vo_vm_spec_free(next);
    if (r >= 0 && gone)
        seed_remove(vm->d, id);
    if (r >= 0 && hv)
        seed_swap(t, vm, hv, path);
    pthread_mutex_unlock(&vm->job);
    if (r < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, r, "cannot change the cloud-init settings of VM '%s': %s", name,
                            error ? error : strerror(-r));
    }
    return 0;
}

int vo_vm_cloud_init_set(VoDaemon *d, VoVm *vm, json_t *settings, json_t **ret_task,
                         char **ret_error)
{
    int r = vo_vm_precheck(vm, INACTIVE_STATES | IN(VO_VM_RUNNING),
                           "change the cloud-init settings of", ret_error);
    if (r < 0)
        return r;
    VoCloudInit *ci = NULL;
    if (settings && !json_is_null(settings) &&
        (r = vo_cloud_init_from_json(settings, &ci, ret_error)) < 0)
        return r;
    CloudInitOp *op = vo_malloc0(sizeof(*op));
    op->vm = vo_vm_ref(vm);
    op->settings = ci;
    return vo_vm_submit(d, vm, "cloud-init-set", task_cloud_init, op, op_free, ret_task,
                        ret_error);
}
