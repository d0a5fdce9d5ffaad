/* test-conf.c: VM spec parsing, validation, round-trips, names, UUIDs, MACs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "conf/names.h"
#include "conf/vm-spec.h"
#include "util/util.h"

static const VoHostLimits limits = { .max_vcpus = 2, .max_memory_mib = 4096 };
#define ID "6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10"

/* Parses and validates text; returns the error message or NULL when valid. */
static char *check(const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    assert_non_null(doc);
    VoVmSpec *spec = NULL;
    char *err = NULL;
    int r = vo_vm_spec_from_json(doc, &spec, &err);
    if (r >= 0)
        r = vo_vm_spec_validate(spec, &limits, &err);
    json_decref(doc);
    vo_vm_spec_free(spec);
    if (r < 0)
        assert_non_null(err);
    return err;
}

static void expect_error(const char *text, const char *fragment)
{
    _cleanup_free_ char *err = check(text);
    if (!err)
        fail_msg("accepted: %s", text);
    if (!strstr(err, fragment))
        fail_msg("error '%s' lacks '%s'", err, fragment);
}

/* The HA fields (docs/ha.md): parsed, checked, and kept by a round-trip;
 * absent means off, priority 0, no group. */
static void test_ha_fields(void **state)
{
    (void)state;
    json_t *doc = json_loads("{\"id\":\"" ID "\",\"name\":\"web\",\"ha\":true,"
                             "\"ha_priority\":-7,\"ha_group\":\"db\"}", 0, NULL);
    VoVmSpec *spec = NULL;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_vm_spec_from_json(doc, &spec, &err), 0);
    json_decref(doc);
    assert_true(spec->ha);
    assert_int_equal(spec->ha_priority, -7);
    assert_string_equal(spec->ha_group, "db");
    VoVmSpec *copy = vo_vm_spec_copy(spec);
    assert_true(copy->ha);
    assert_int_equal(copy->ha_priority, -7);
    assert_string_equal(copy->ha_group, "db");
    vo_vm_spec_free(copy);
    vo_vm_spec_free(spec);
    doc = json_loads("{\"id\":\"" ID "\",\"name\":\"web\"}", 0, NULL);
    assert_int_equal(vo_vm_spec_from_json(doc, &spec, &err), 0);
    json_decref(doc);
    assert_false(spec->ha);
    assert_int_equal(spec->ha_priority, 0);
    assert_null(spec->ha_group);
    json_t *out = vo_vm_spec_to_json(spec);
    assert_null(json_object_get(out, "ha")); /* absent = off: old readers see nothing new */
    json_decref(out);
    vo_vm_spec_free(spec);
    expect_error("{\"id\":\"" ID "\",\"name\":\"w\",\"ha\":\"yes\"}", "ha");
    expect_error("{\"id\":\"" ID "\",\"name\":\"w\",\"ha_priority\":1001}", "ha_priority");
    expect_error("{\"id\":\"" ID "\",\"name\":\"w\",\"ha_group\":\"Bad_Group\"}",
                 "ha_group");
}

static void test_names(void **state)
{
    assert_true(vo_name_valid("web1"));
    assert_true(vo_name_valid("a"));
    assert_true(vo_name_valid("a-b-0"));
    char longest[64];
    memset(longest, 'a', 63);
    longest[63] = 0;
    assert_true(vo_name_valid(longest));
    char too_long[65];
    memset(too_long, 'a', 64);
    too_long[64] = 0;
    assert_false(vo_name_valid(too_long));
    assert_false(vo_name_valid(""));
    assert_false(vo_name_valid(NULL));
    assert_false(vo_name_valid("-web"));
    assert_false(vo_name_valid("Web"));
    assert_false(vo_name_valid("a_b"));
    assert_false(vo_name_valid("a/b"));
    assert_false(vo_name_valid(".."));
    assert_false(vo_name_valid("a.b"));
    assert_false(vo_name_valid("a b"));
}

static void test_uuid_and_mac(void **state)
{
    char a[37], b[37], mac[18];
    assert_int_equal(vo_uuid_generate(a), 0);
    assert_int_equal(vo_uuid_generate(b), 0);
    assert_true(vo_uuid_valid(a));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_false(vo_uuid_valid("not-a-uuid"));
    assert_int_equal(vo_mac_generate(mac), 0);
    assert_true(vo_mac_valid(mac));
    assert_int_equal(strncmp(mac, "52:54:00:", 9), 0);
    assert_false(vo_mac_valid("01:00:5e:00:00:01")); /* multicast */
    assert_false(vo_mac_valid("52:54:00:00:00"));
    assert_false(vo_mac_valid("52-54-00-00-00-01"));
    /* All zeros: refused where a user gives it (vo_mac_is_zero), but a VM
     * document that has it still loads. */
    assert_true(vo_mac_is_zero("00:00:00:00:00:00"));
    assert_false(vo_mac_is_zero("52:54:00:00:00:00"));
    assert_null(check("{\"id\":\"" ID "\",\"name\":\"z\",\"vcpus\":1,\"memory_mib\":512,"
                      "\"kernel\":{\"image\":\"k\"},\"disks\":[{\"volume\":\"default/d\"}],"
                      "\"nics\":[{\"mac\":\"00:00:00:00:00:00\"}]}"));
}

static void test_valid_and_round_trip(void **state)
{
    const char *text = "{\"id\":\"" ID "\",\"name\":\"web1\",\"vcpus\":2,\"memory_mib\":512,"
                       "\"kernel\":{\"image\":\"k\"},\"cmdline\":\"console=ttyS0\","
                       "\"disks\":[{\"volume\":\"default/d\"}],"
                       "\"nics\":[{\"mac\":\"52:54:00:01:02:03\"}],\"autostart\":true}";
    assert_null(check(text));
    json_t *doc = json_loads(text, 0, NULL);
    VoVmSpec *spec = NULL;
    assert_int_equal(vo_vm_spec_from_json(doc, &spec, NULL), 0);
    assert_int_equal(spec->vcpus, 2);
    assert_int_equal(spec->memory_mib, 512);
    assert_true(spec->autostart);
    assert_int_equal(spec->disks[0].format, VO_DISK_QCOW2);
    assert_string_equal(spec->disks[0].volume, "default/d");
    assert_null(spec->disks[0].path);
    assert_string_equal(spec->kernel_from.image, "k");
    assert_null(spec->kernel);
    assert_string_equal(spec->nics[0].network, "user");
    VoVmSpec *copy = vo_vm_spec_copy(spec);
    json_t *a = vo_vm_spec_to_json(spec), *b = vo_vm_spec_to_json(copy);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    json_decref(doc);
    vo_vm_spec_free(spec);
    vo_vm_spec_free(copy);
}

static void test_refusals(void **state)
{
    expect_error("{\"id\":\"" ID "\",\"name\":\"Bad\",\"kernel\":{\"image\":\"k\"}}", "name: 'Bad' is invalid");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"vcpus\":3,\"kernel\":{\"image\":\"k\"}}", "1..2 on this host");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"vcpus\":0,\"kernel\":{\"image\":\"k\"}}", "vcpus");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"memory_mib\":31,\"kernel\":{\"image\":\"k\"}}", "32 MiB..");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"memory_mib\":4097,\"kernel\":{\"image\":\"k\"}}", "4096 MiB");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"accel\":\"xen\",\"kernel\":{\"image\":\"k\"}}", "accel");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"vcpus\":\"2\",\"kernel\":{\"image\":\"k\"}}", "vcpus");
    expect_error("{\"id\":\"x\",\"name\":\"a\",\"kernel\":{\"image\":\"k\"}}", "not a UUID");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"initrd\":{\"image\":\"k\"}}", "need a kernel");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"disks\":[{\"volume\":\"p/a\",\"format\":\"vmdk\"}]}",
                 "not qcow2 or raw");
    /* Names, never host paths: a disk's path, a kernel or initrd path. */
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"disks\":[{\"path\":\"/d.qcow2\"}]}",
                 "disks[0].path: a VM spec names volumes, not host paths: give \"volume\"");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"disks\":[{\"volume\":\"p/a\",\"path\":\"/a\"}]}",
                 "not host paths");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":\"/k/vmlinux\"}",
                 "kernel: a VM spec names images and volumes, not host paths");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":{\"image\":\"k\"},\"initrd\":\"/i\"}",
                 "initrd: a VM spec names images");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"disks\":[{\"format\":\"raw\"}]}", "volume");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"disks\":[{\"volume\":\"/abs/x.qcow2\"}]}",
                 "disks[0].volume: '/abs/x.qcow2' is not POOL/NAME");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"disks\":[{\"volume\":\"nopool\"}]}",
                 "is not POOL/NAME");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":{\"image\":\"k\",\"volume\":\"p/v\"}}",
                 "kernel: give exactly one of image or volume");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":{}}", "exactly one");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":{\"file\":\"/k\"}}", "kernel.file: unknown key");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":{\"image\":\"../k\"}}",
                 "kernel.image: '../k' is not an image name");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":{\"volume\":\"/k\"}}",
                 "kernel.volume: '/k' is not POOL/NAME");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":{\"image\":\"k\"},\"nics\":[{\"mac\":\"52:54:00:00:00:01\","
                 "\"network\":\"Lan/x\"}]}", "not a network name");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":{\"image\":\"k\"},\"cmdline\":\"a\\nb\"}", "one line");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":{\"image\":\"k\"},\"extra\":1}", "extra");
}

/* max_vcpus / max_memory_mib: default to the values (no hot-plug), are kept
 * through JSON, and must lie between the value and the host's limit. */
static void test_hotplug_maximums(void **state)
{
    json_t *doc = json_loads("{\"id\":\"" ID "\",\"name\":\"a\",\"vcpus\":1,\"memory_mib\":128,"
                             "\"kernel\":{\"image\":\"k\"}}", 0, NULL);
    VoVmSpec *spec = NULL;
    assert_int_equal(vo_vm_spec_from_json(doc, &spec, NULL), 0);
    assert_int_equal(spec->max_vcpus, 1);
    assert_int_equal(spec->max_memory_mib, 128);
    assert_false(vo_vm_spec_vcpu_hotplug(spec));
    assert_false(vo_vm_spec_memory_hotplug(spec));
    spec->max_vcpus = 2;
    spec->max_memory_mib = 384;
    VoVmSpec *copy = vo_vm_spec_copy(spec);
    assert_int_equal(copy->max_vcpus, 2);
    assert_int_equal(copy->max_memory_mib, 384);
    assert_true(vo_vm_spec_vcpu_hotplug(copy));
    assert_true(vo_vm_spec_memory_hotplug(copy));
    vo_vm_spec_free(copy);
    vo_vm_spec_free(spec);
    json_decref(doc);

    assert_null(check("{\"id\":\"" ID "\",\"name\":\"a\",\"vcpus\":1,\"max_vcpus\":2,"
                      "\"memory_mib\":128,\"max_memory_mib\":4096,\"kernel\":{\"image\":\"k\"}}"));
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"vcpus\":2,\"max_vcpus\":1,\"kernel\":{\"image\":\"k\"}}",
                 "max_vcpus: 1 is out of range (vcpus 2..2 on this host)");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"max_vcpus\":3,\"kernel\":{\"image\":\"k\"}}",
                 "max_vcpus: 3 is out of range");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"memory_mib\":256,\"max_memory_mib\":128,"
                 "\"kernel\":{\"image\":\"k\"}}", "max_memory: 128 MiB is out of range (memory 256 MiB..4096 MiB");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"memory_mib\":256,\"max_memory_mib\":5000,"
                 "\"kernel\":{\"image\":\"k\"}}", "..4096 MiB on this host");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"memory_mib\":129,\"max_memory_mib\":256,"
                 "\"kernel\":{\"image\":\"k\"}}", "multiples of 2 MiB");
    expect_error("{\"id\":\"" ID "\",\"name\":\"a\",\"max_vcpus\":\"2\",\"kernel\":{\"image\":\"k\"}}",
                 "max_vcpus: expected an integer");
    /* Without hot-plug an odd size is fine. */
    assert_null(check("{\"id\":\"" ID "\",\"name\":\"a\",\"memory_mib\":129,\"kernel\":{\"image\":\"k\"}}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ha_fields),
        cmocka_unit_test(test_uuid_and_mac),
        cmocka_unit_test(test_valid_and_round_trip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_hotplug_maximums),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
