/* vm-ha.c: the rule that an HA VM's disks are shared (docs/ha.md, "HA VMs
 * and recovery"): a VM that may be restarted on another host needs every
 * disk, a kernel or initrd volume, its UEFI NVRAM and the ISO in its
 * CD-ROM in a shared pool every host reaches. */
#include <string.h>

#include "daemon/storage.h"
#include "daemon/vms.h"
#include "util/util.h"

bool vo_volume_is_shared(VoDaemon *d, const char *key)
{
    const char *slash = key ? strchr(key, '/') : NULL;
    if (!slash)
        return false;
    _cleanup_free_ char *pool = strndup(key, (size_t)(slash - key));
    _cleanup_free_ char *path = NULL, *error = NULL;
    bool reachable = false;
    return pool && vo_shared_pool_path(d, pool, &path, &reachable, &error) == 0;
}

int vo_vm_ha_check_disks(VoDaemon *d, const VoVmSpec *s, char **ret_error)
{
    for (size_t i = 0; i < s->n_disks; i++)
        if (s->disks[i].volume && !vo_volume_is_shared(d, s->disks[i].volume))
            return vo_error_set(ret_error, -EBUSY,
                                "ha: VM '%s' cannot be highly available: disk %zu (volume "
                                "'%s') is not in a shared pool, so no other host can start "
                                "it (move it to a shared pool, or detach it)",
                                s->name, i, s->disks[i].volume);
    const VoBootFile *boot[] = { &s->kernel_from, &s->initrd_from };
    const char *what[] = { "kernel", "initrd" };
    for (size_t i = 0; i < ELEMENTSOF(boot); i++)
        if (boot[i]->volume && !vo_volume_is_shared(d, boot[i]->volume))
            return vo_error_set(ret_error, -EBUSY,
                                "ha: VM '%s' cannot be highly available: its %s (volume "
                                "'%s') is not in a shared pool", s->name, what[i],
                                boot[i]->volume);
    int r = vo_vm_ha_check_cdrom(d, s->name, s->cdrom, ret_error);
    if (r < 0)
        return r;
    if (s->nvram && !vo_volume_is_shared(d, s->nvram))
        return vo_error_set(ret_error, -EBUSY,
                            "ha: VM '%s' cannot be highly available: its UEFI NVRAM (volume "
                            "'%s') is not in a shared pool (make the VM in a shared pool, or "
                            "use --firmware bios)", s->name, s->nvram);
    return 0;
}

int vo_vm_ha_check_cdrom(VoDaemon *d, const char *vm, const char *iso, char **ret_error)
{
    if (!iso || vo_volume_is_shared(d, iso))
        return 0;
    return vo_error_set(ret_error, -EBUSY, "ha: VM '%s' cannot be highly available: the ISO "
                        "'%s' in its CD-ROM is on this host's own pool, so no other host could "
                        "start it (eject it first: vireo vm cdrom eject %s; or use an ISO of a "
                        "shared pool)", vm, iso, vm);
}
