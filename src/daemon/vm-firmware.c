/* vm-firmware.c: a VM's firmware (SeaBIOS or OVMF) and its UEFI NVRAM
 * volume: checks that OVMF is installed, makes the NVRAM volume (a qcow2 copy
 * of OVMF's vars template, so internal snapshots include it) beside the VM's
 * boot disk. The spec side is in conf/vm-spec.c, QEMU's in qemu-argv.c. */
#include "daemon/vms.h"
#include "daemon/vm-internal.h"

#include <string.h>
#include <unistd.h>

#include "daemon/storage.h"
#include "util/util.h"

int vo_vm_firmware_check(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    if (spec->firmware != VO_FIRMWARE_UEFI || !d->driver->firmware_check)
        return 0;
    return d->driver->firmware_check(d->driver, spec->firmware, spec->secure_boot, ret_error);
}

/* The pool of the VM's NVRAM: its boot disk's, else default. */
static char *nvram_pool(const VoVmSpec *spec)
{
    const char *key = spec->n_disks && spec->disks[0].volume ? spec->disks[0].volume : NULL;
    const char *slash = key ? strchr(key, '/') : NULL;
    return slash ? vo_asprintf("%.*s", (int)(slash - key), key) : vo_strdup(VO_DEFAULT_POOL);
}

int vo_vm_nvram_create(VoDaemon *d, const VoVmSpec *spec, const char *pool, char **ret_key,
                       char **ret_error)
{
    return vo_vm_nvram_create_from(d, spec, pool, NULL, ret_key, ret_error);
}

int vo_vm_nvram_create_from(VoDaemon *d, const VoVmSpec *spec, const char *pool,
                            const char *copy_of, char **ret_key, char **ret_error)
{
    _cleanup_free_ char *own_pool = pool ? NULL : nvram_pool(spec);
    if (!pool)
        pool = own_pool;
    const char *template = spec->secure_boot ? VO_OVMF_VARS_MS : VO_OVMF_VARS;
    /* "VM-nvram", or "VM-nvramN" when that name is taken (never another's). */
    int r = -EEXIST;
    for (unsigned n = 1; r == -EEXIST && n < 100; n++) {
        _cleanup_free_ char *name = n == 1 ? vo_asprintf("%s-nvram", spec->name)
                                           : vo_asprintf("%s-nvram%u", spec->name, n);
        _cleanup_free_ char *path = NULL, *error = NULL;
        if (strlen(name) > 63) {
            free(name);
            name = vo_asprintf("nvram-%.8s-%u", spec->id, n);
        }
        char *layers[] = { (char *)copy_of };
        r = copy_of ? vo_volume_create_from_chain(d, pool, name, layers, 1, 0, NULL, &path,
                                                  &error)
                    : vo_volume_create_from_base(d, pool, name, template, "raw", NULL, true, 0,
                                                 NULL, &path, &error);
        if (r >= 0)
            *ret_key = vo_asprintf("%s/%s", pool, name);
        else if (r != -EEXIST)
            *ret_error = vo_asprintf("cannot make the UEFI NVRAM volume %s/%s: %s", pool, name,
                                     error ? error : strerror(-r));
    }
    if (r == -EEXIST)
        *ret_error = vo_asprintf("cannot make the UEFI NVRAM volume: every name %s-nvramN in "
                                 "pool '%s' is taken", spec->name, pool);
    return r;
}

int vo_vm_nvram_make(VoVm *vm, const char *pool, char **ret_key, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    _cleanup_vm_spec_ VoVmSpec *now = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *key = NULL;
    int r = vo_vm_nvram_create(vm->d, now, pool, &key, ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    free(vm->spec->nvram);
    vm->spec->nvram = vo_strdup(key);
    pthread_mutex_unlock(&vm->lock);
    *ret_key = TAKE_PTR(key);
    return 0;
}
