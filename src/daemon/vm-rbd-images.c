/* vm-rbd-images.c: the RBD images behind a VM's disks and NVRAM (see
 * vm-rbd-images.h). */
#include "daemon/vm-rbd-images.h"

#include <errno.h>
#include <stdlib.h>

#include "daemon/storage.h"
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
