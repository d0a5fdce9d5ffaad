/* test-quota.c: project quotas' arithmetic (conf/quota.h): a change is
 * refused only for what it raises beyond a limit, with the quota, its
 * limit and the use named; limits to and from JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/quota.h"
#include "vireo/errors.h"

static VoQuota q(int64_t vcpus, int64_t memory_mib, int64_t vms)
{
    return (VoQuota){ .vcpus = vcpus, .memory_mib = memory_mib, .vms = vms };
}

static void test_fits_exactly(void **state)
{
    (void)state;
    VoQuota limits = q(4, 2048, 2), others = q(2, 1024, 1), none = q(0, 0, 0);
    VoQuota vm = q(2, 1024, 1);
    char *error = NULL;
    assert_int_equal(vo_quota_check("p", &limits, &others, &none, &vm, &error), 0);
    assert_null(error);
}

static void test_last_slot_refused(void **state)
{
    (void)state;
    VoQuota limits = q(VO_QUOTA_UNLIMITED, VO_QUOTA_UNLIMITED, 2);
    VoQuota others = q(2, 1024, 2), none = q(0, 0, 0), vm = q(1, 512, 1);
    char *error = NULL;
    assert_int_equal(vo_quota_check("team-a", &limits, &others, &none, &vm, &error),
                     -VO_EQUOTA);
    assert_string_equal(error, "project 'team-a': quota vms is 2 (2 in use); this needs 1");
    free(error);
}

static void test_growth_names_more(void **state)
{
    (void)state;
    VoQuota limits = q(4, VO_QUOTA_UNLIMITED, VO_QUOTA_UNLIMITED);
    VoQuota others = q(1, 0, 1), before = q(2, 512, 1), after = q(4, 512, 1);
    char *error = NULL;
    assert_int_equal(vo_quota_check("p", &limits, &others, &before, &after, &error),
                     -VO_EQUOTA);
    assert_string_equal(error, "project 'p': quota vcpus is 4 (3 in use); this needs 2 more");
    free(error);
}

static void test_over_limit_shrink_allowed(void **state)
{
    (void)state;
    /* A limit lowered below the use: what shrinks or stays passes. */
    VoQuota limits = q(2, 1024, 1), others = q(8, 8192, 3);
    VoQuota before = q(4, 4096, 1), after = q(2, 4096, 1);
    char *error = NULL;
    assert_int_equal(vo_quota_check("p", &limits, &others, &before, &after, &error), 0);
    after.memory_mib = 4097;
    assert_int_equal(vo_quota_check("p", &limits, &others, &before, &after, &error),
                     -VO_EQUOTA);
    assert_non_null(strstr(error, "quota memory_mib is 1024"));
    free(error);
}

static void test_zero_limit(void **state)
{
    (void)state;
    VoQuota limits = q(0, VO_QUOTA_UNLIMITED, VO_QUOTA_UNLIMITED), none = q(0, 0, 0);
    VoQuota vm = q(1, 512, 1);
    char *error = NULL;
    assert_int_equal(vo_quota_check("p", &limits, &none, &none, &vm, &error), -VO_EQUOTA);
    free(error);
}

static void test_add(void **state)
{
    (void)state;
    VoQuota used = q(1, 2, 3), more = q(10, 20, 30);
    used.disk_bytes = 4;
    more.disk_bytes = 40;
    vo_quota_add(&used, &more);
    assert_int_equal(used.vcpus, 11);
    assert_int_equal(used.memory_mib, 22);
    assert_int_equal(used.vms, 33);
    assert_int_equal(used.disk_bytes, 44);
}

/* The disk quota: a new VM's boot disk, a disk added or grown. */
static void test_disk(void **state)
{
    (void)state;
    VoQuota limits, others = q(1, 64, 1), none = { 0 };
    vo_quota_unlimited(&limits);
    limits.disk_bytes = 10000;
    others.disk_bytes = 4000;
    VoQuota vm = q(1, 64, 1);
    vm.disk_bytes = 6000; /* fits exactly */
    char *error = NULL;
    assert_int_equal(vo_quota_check("p", &limits, &others, &none, &vm, &error), 0);
    vm.disk_bytes = 6001;
    assert_int_equal(vo_quota_check("p", &limits, &others, &none, &vm, &error), -VO_EQUOTA);
    assert_string_equal(error, "project 'p': quota disk_bytes is 10000 (4000 in use); "
                        "this needs 6001");
    free(error);
    error = NULL;
    /* A VM of 2000 whose disk grows to 8000: 6000 more, over by 2000. */
    VoQuota before = q(1, 64, 1), after = q(1, 64, 1);
    before.disk_bytes = 2000;
    after.disk_bytes = 8000;
    assert_int_equal(vo_quota_check("p", &limits, &others, &before, &after, &error),
                     -VO_EQUOTA);
    assert_string_equal(error, "project 'p': quota disk_bytes is 10000 (6000 in use); "
                        "this needs 6000 more");
    free(error);
    error = NULL;
    /* A disk removed (or a limit below the use): shrinking passes. */
    limits.disk_bytes = 1000;
    assert_int_equal(vo_quota_check("p", &limits, &others, &after, &before, &error), 0);
    assert_null(error);
}

static void test_json(void **state)
{
    (void)state;
    json_t *in = json_pack("{s:i, s:n}", "vcpus", 8, "vms");
    VoQuota limits;
    char *error = NULL;
    assert_int_equal(vo_quota_from_json(in, &limits, &error), 0);
    assert_int_equal(limits.vcpus, 8);
    assert_int_equal(limits.vms, VO_QUOTA_UNLIMITED);
    assert_int_equal(limits.memory_mib, VO_QUOTA_UNLIMITED);
    json_t *out = vo_quota_to_json(&limits, 1);
    assert_int_equal(json_object_size(out), 1);
    assert_int_equal(json_integer_value(json_object_get(out, "vcpus")), 8);
    json_decref(out);
    json_decref(in);
    in = json_pack("{s:i}", "vcpus", -1);
    assert_int_equal(vo_quota_from_json(in, &limits, &error), -EINVAL);
    assert_non_null(strstr(error, "quotas.vcpus"));
    free(error);
    error = NULL;
    json_decref(in);
    in = json_pack("{s:I}", "disk_bytes", (json_int_t)1 << 40);
    assert_int_equal(vo_quota_from_json(in, &limits, &error), 0);
    assert_int_equal(limits.disk_bytes, (int64_t)1 << 40);
    out = vo_quota_to_json(&limits, 1);
    assert_int_equal(json_integer_value(json_object_get(out, "disk_bytes")), (int64_t)1 << 40);
    json_decref(out);
    json_decref(in);
    in = json_pack("{s:i}", "disks", 1);
    assert_int_equal(vo_quota_from_json(in, &limits, &error), -EINVAL);
    assert_non_null(strstr(error, "unknown quota 'disks'"));
    free(error);
    json_decref(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fits_exactly),
        cmocka_unit_test(test_last_slot_refused),
        cmocka_unit_test(test_growth_names_more),
        cmocka_unit_test(test_over_limit_shrink_allowed),
        cmocka_unit_test(test_zero_limit),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_disk),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
