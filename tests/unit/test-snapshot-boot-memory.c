/* test-snapshot-boot-memory.c: a memory snapshot's boot memory size against
 * the QEMU it would load into (daemon/snapshot-boot-memory.c): recorded and
 * equal loads; a padded TCG QEMU (qemu-argv.c, boot_pad_kib) refuses a
 * snapshot saved unpadded, recorded or saved by an older vireod (no
 * record: whole MiB), and the other way round. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/snapshot-boot-memory.h"
#include "qemu/qemu-layout.h"

#define UNPADDED_KIB (256u << 10)
#define PADDED_KIB (UNPADDED_KIB + VO_QEMU_TCG_BOOT_PAD_KIB)

static int check(json_t *doc, uint64_t now_kib, const char *want_in_error)
{
    char *error = NULL;
    int r = vo_snapshot_boot_memory_check(doc, now_kib, &error);
    if (want_in_error) {
        assert_non_null(error);
        if (!strstr(error, want_in_error))
            fail_msg("'%s' not in '%s'", want_in_error, error);
    } else {
        assert_null(error);
    }
    free(error);
    return r;
}

static void test_recorded(void **state)
{
    json_t *doc = json_pack("{s:s}", "name", "s1");
    vo_snapshot_boot_memory_record(doc, PADDED_KIB);
    assert_int_equal(check(doc, PADDED_KIB, NULL), 0);
    assert_int_equal(check(doc, UNPADDED_KIB, "saved from one with 262152 KiB"), -EBUSY);
    vo_snapshot_boot_memory_record(doc, UNPADDED_KIB);
    assert_int_equal(check(doc, UNPADDED_KIB, NULL), 0);
    assert_int_equal(check(doc, PADDED_KIB, "snapshot 's1'"), -EBUSY);
    json_decref(doc);
}

/* Saved by a vireod before the record (and the padding): whole MiB. */
static void test_unrecorded_is_whole_mib(void **state)
{
    json_t *doc = json_pack("{s:s}", "name", "old");
    assert_int_equal(check(doc, UNPADDED_KIB, NULL), 0);
    assert_int_equal(check(doc, PADDED_KIB, "has 262152 KiB of boot memory"), -EBUSY);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded),
        cmocka_unit_test(test_unrecorded_is_whole_mib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
