/* rbd-flatten-plan.c: the flatten's decisions (rbd-flatten-plan.h). */
#include "storage/rbd-flatten-plan.h"

#include <errno.h>
#include <string.h>

#include "storage/rbd-clone.h"
#include "storage/rbd-vm-clone.h"
#include "util/util.h"

int vo_flatten_check(const VoFlattenVolume *v, char **ret_error)
{
    const char *type = v->pool_type ? v->pool_type : "?";
    if (!strcmp(type, "iscsi"))
        return vo_error_set(ret_error, -EINVAL, "volume '%s' is an iSCSI LUN: a LUN is never a "
                            "linked clone, so there is nothing to flatten", v->key);
    if (!strcmp(type, "dir")) {
        if (!v->backing && !v->image)
            return vo_error_set(ret_error, -EINVAL, "volume '%s' is no linked clone (it has "
                                "no backing file): there is nothing to flatten", v->key);
        return vo_error_set(ret_error, -EINVAL, "volume '%s' is in dir pool: flatten is for "
                            "rbd pools; a dir pool's linked clone is a qcow2 file on its "
                            "backing file, and a full copy has none: vireo volume clone %s "
                            "POOL/NEW, then use NEW in its place", v->key, v->key);
    }
    if (strcmp(type, "rbd"))
        return vo_error_set(ret_error, -EINVAL, "volume '%s' is in a %s pool: flatten is for "
                            "linked clones in rbd pools", v->key, type);
    if (v->content && !strcmp(v->content, "iso"))
        return vo_error_set(ret_error, -EINVAL, "volume '%s' is an ISO image, no linked clone: "
                            "there is nothing to flatten", v->key);
    if (!v->backing && !v->image && !v->has_parent)
        return vo_error_set(ret_error, -EINVAL, "volume '%s' is no linked clone (its RBD image "
                            "has no parent): there is nothing to flatten", v->key);
    return 0;
}

VoFlattenSnap vo_flatten_parent_snap(const char *parent_image, const char *snap,
                                     const char *clone_name)
{
    if (!parent_image || !snap)
        return VO_FLATTEN_SNAP_KEEP;
    if (!strncmp(snap, VO_RBD_CLONE_SNAP_PREFIX, strlen(VO_RBD_CLONE_SNAP_PREFIX)))
        return clone_name && !strcmp(snap + strlen(VO_RBD_CLONE_SNAP_PREFIX), clone_name)
                   ? VO_FLATTEN_SNAP_DROP
                   : VO_FLATTEN_SNAP_KEEP; /* named for another clone: not this one's */
    if (!strncmp(parent_image, VO_RBD_BASE_PREFIX, strlen(VO_RBD_BASE_PREFIX)) &&
        !strcmp(snap, VO_RBD_BASE_SNAP))
        return VO_FLATTEN_SNAP_KEEP_BASE;
    return VO_FLATTEN_SNAP_KEEP;
}

uint64_t vo_rbd_progress_bytes(uint64_t done, uint64_t total, uint64_t size)
{
    if (!total || done >= total)
        return total ? size : 0;
    /* done/total of size without overflow: size may be 64 TiB, total objects many. */
    return (uint64_t)((long double)size * (long double)done / (long double)total);
}
