/* vm-rbd-images.c: the RBD images behind a VM's disks and NVRAM (see
 * vm-rbd-images.h). */
#include "daemon/vm-rbd-images.h"

#include <errno.h>
#include <stdlib.h>

#include "daemon/storage.h"
#include "storage/rbd-snap.h"
#include "util/util.h"

void vo_vm_rbd_images_free(VoVmRbdImage *images, size_t n)
{
    for (size_t i = 0; images && i < n; i++) {
        vo_rbd_pool_clear(&images[i].pool);
        free(images[i].image);
    }
    free(images);
}

int vo_vm_rbd_images(VoDaemon *d, const VoVmSpec *spec, const char *needs, VoVmRbdImage **ret,
                     size_t *ret_n, char **ret_error)
{
    size_t n = spec->n_disks + (spec->nvram ? 1 : 0), found = 0;
    VoVmRbdImage *images = vo_malloc0(sizeof(*images) * (n ? n : 1));
    const char *other = NULL;
    int r = 0;
    for (size_t i = 0; i < n && r >= 0; i++) {
        VoVmRbdImage *k = &images[found];
        k->nvram = i == spec->n_disks;
        k->volume = k->nvram ? spec->nvram : spec->disks[i].volume;
        r = vo_volume_rbd_image(d, k->volume, &k->pool, &k->image, ret_error);
        if (r > 0)
            found++;
        else if (r == 0 && !other)
            other = k->volume ? k->volume : "?";
    }
    if (r >= 0 && found > 0 && other)
        r = vo_error_set(ret_error, -EINVAL, "volume '%s' of VM '%s' is not in an rbd pool: %s",
                         other, spec->name, needs);
    if (r < 0 || found == 0) {
        vo_vm_rbd_images_free(images, found);
        return r < 0 ? r : 0;
    }
    *ret = images;
    *ret_n = found;
    return 1;
}

int vo_vm_rbd_images_rollback(VoDaemon *d, const VoVmSpec *spec, const char *needs,
                              const char *tag, char **ret_error)
{
    VoVmRbdImage *disks = NULL;
    size_t n = 0;
    int r = vo_vm_rbd_images(d, spec, needs, &disks, &n, ret_error);
    if (r <= 0)
        return r < 0 ? r : vo_error_set(ret_error, -EINVAL, "VM '%s' has no RBD disks",
                                        spec->name);
    bool *has = vo_malloc0(sizeof(bool) * n);
    for (size_t i = 0; i < n && r >= 0; i++) {
        VoRbdConf c = vo_rbd_pool_conf(&disks[i].pool);
        r = vo_rbd_snap_exists(&c, disks[i].image, tag, ret_error);
        has[i] = r > 0;
        if (r == 0 && !disks[i].nvram)
            r = vo_error_set(ret_error, -ENOENT, "volume '%s' has no snapshot '%s' (added "
                             "after it was taken?): nothing was reverted", disks[i].volume, tag);
    }
    for (size_t i = 0; i < n && r >= 0; i++)
        if (has[i]) {
            VoRbdConf c = vo_rbd_pool_conf(&disks[i].pool);
            r = vo_rbd_snap_rollback(&c, disks[i].image, tag, ret_error);
        }
    free(has);
    vo_vm_rbd_images_free(disks, n);
    return r < 0 ? r : 0;
}

int vo_vm_rbd_images_snap_remove(VoDaemon *d, const VoVmSpec *spec, const char *needs,
                                 const char *tag, char **ret_error)
{
    VoVmRbdImage *disks = NULL;
    size_t n = 0;
    int r = vo_vm_rbd_images(d, spec, needs, &disks, &n, ret_error);
    for (size_t i = 0; r > 0 && i < n; i++) {
        VoRbdConf c = vo_rbd_pool_conf(&disks[i].pool);
        int k = vo_rbd_snap_remove(&c, disks[i].image, tag, ret_error);
        if (k < 0)
            r = k;
    }
    vo_vm_rbd_images_free(disks, n);
    return r < 0 ? r : 0;
}
