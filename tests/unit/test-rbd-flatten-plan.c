/* test-rbd-flatten-plan.c: which volumes `vireo volume flatten` takes, what
 * becomes of the parent's snapshot, and librbd's progress in bytes
 * (storage/rbd-flatten-plan.c): no Ceph needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/rbd-flatten-plan.h"

/* v's check: its result, and that a refusal names the volume and has words. */
static int check(const VoFlattenVolume *v, const char *words)
{
    char *error = NULL;
    int r = vo_flatten_check(v, &error);
    if (r < 0) {
        assert_non_null(error);
        assert_non_null(strstr(error, v->key));
        if (words && !strstr(error, words))
            fail_msg("'%s' lacks '%s'", error, words);
    } else
        assert_null(error);
    free(error);
    return r;
}

static void only_linked_clones_in_rbd_pools(void **state)
{
    (void)state;
    /* A VM clone's linked disk, a VM disk cloned from an image's base, and
     * one only Ceph knows is a clone (flattened records, or made by hand). */
    VoFlattenVolume v = { .key = "ceph1/web2-disk0", .pool_type = "rbd",
                          .backing = "ceph1/web-disk0" };
    assert_int_equal(check(&v, NULL), 0);
    v = (VoFlattenVolume){ .key = "ceph1/web-disk0", .pool_type = "rbd", .image = "debian" };
    assert_int_equal(check(&v, NULL), 0);
    v = (VoFlattenVolume){ .key = "ceph1/x", .pool_type = "rbd", .has_parent = true };
    assert_int_equal(check(&v, NULL), 0);
    /* No clone: nothing to flatten (400, naming it). */
    v = (VoFlattenVolume){ .key = "ceph1/data", .pool_type = "rbd" };
    assert_int_equal(check(&v, "no linked clone"), -EINVAL);
    v = (VoFlattenVolume){ .key = "ceph1/debian-12", .pool_type = "rbd", .content = "iso",
                           .has_parent = true };
    assert_int_equal(check(&v, "ISO"), -EINVAL);
    /* A dir pool's linked clone: the full copy that makes one whole is named. */
    v = (VoFlattenVolume){ .key = "default/web2", .pool_type = "dir",
                           .backing = "default/golden" };
    assert_int_equal(check(&v, "vireo volume clone default/web2"), -EINVAL);
    v = (VoFlattenVolume){ .key = "default/plain", .pool_type = "dir" };
    assert_int_equal(check(&v, "no linked clone"), -EINVAL);
    /* A LUN is never a clone. */
    v = (VoFlattenVolume){ .key = "san/lun-0-1", .pool_type = "iscsi" };
    assert_int_equal(check(&v, "iSCSI LUN"), -EINVAL);
    v = (VoFlattenVolume){ .key = "x/y", .pool_type = NULL };
    assert_int_equal(check(&v, "flatten is for"), -EINVAL);
}

static void parent_snapshots_by_who_made_them(void **state)
{
    (void)state;
    /* A VM clone's own snapshot, named for it: removed. */
    assert_int_equal(vo_flatten_parent_snap("web-disk0", "vireo.clone.web2-disk0", "web2-disk0"),
                     VO_FLATTEN_SNAP_DROP);
    /* Named for another clone: not this clone's to remove. */
    assert_int_equal(vo_flatten_parent_snap("web-disk0", "vireo.clone.web3-disk0", "web2-disk0"),
                     VO_FLATTEN_SNAP_KEEP);
    /* An image's base: shared by the image's VMs, it stays with the image. */
    assert_int_equal(vo_flatten_parent_snap("vireo.image.debian", "base", "web-disk0"),
                     VO_FLATTEN_SNAP_KEEP_BASE);
    /* Made outside vireo: never touched. */
    assert_int_equal(vo_flatten_parent_snap("golden", "base", "web-disk0"), VO_FLATTEN_SNAP_KEEP);
    assert_int_equal(vo_flatten_parent_snap("vireo.image.debian", "mine", "web-disk0"),
                     VO_FLATTEN_SNAP_KEEP);
    assert_int_equal(vo_flatten_parent_snap(NULL, NULL, "web-disk0"), VO_FLATTEN_SNAP_KEEP);
}

static void progress_in_bytes(void **state)
{
    (void)state;
    const uint64_t mib = 1ull << 20, tib = 1ull << 40;
    assert_int_equal(vo_rbd_progress_bytes(0, 16, 64 * mib), 0);
    assert_int_equal(vo_rbd_progress_bytes(4, 16, 64 * mib), 16 * mib);
    assert_int_equal(vo_rbd_progress_bytes(16, 16, 64 * mib), 64 * mib);
    assert_int_equal(vo_rbd_progress_bytes(17, 16, 64 * mib), 64 * mib); /* never beyond */
    assert_int_equal(vo_rbd_progress_bytes(0, 0, 64 * mib), 0);
    /* 64 TiB of 4 MiB objects: no overflow, half is half. */
    assert_int_equal(vo_rbd_progress_bytes(8ull << 20, 16ull << 20, 64 * tib), 32 * tib);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(only_linked_clones_in_rbd_pools),
        cmocka_unit_test(parent_snapshots_by_who_made_them),
        cmocka_unit_test(progress_in_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
