/* test-firmware.c: a VM spec's firmware (bios/uefi), secure boot and NVRAM
 * volume: parsing, validation, the JSON round-trip, resolution of the NVRAM
 * path, the NVRAM among the VM's volume relations; and image documents'
 * firmware preference. The QEMU argv is in the golden files
 * (tests/golden/qemu-argv/uefi-*). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conf/vm-spec.h"
#include "state/records.h"
#include "state/relations.h"
#include "util/util.h"

static const VoHostLimits limits = { .max_vcpus = 2, .max_memory_mib = 4096 };
#define ID "6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10"
#define HEAD "{\"id\":\"" ID "\",\"name\":\"a\",\"disks\":[{\"volume\":\"default/a-disk0\"}],"

static VoVmSpec *parse(const char *text, char **ret_error)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    VoVmSpec *spec = NULL;
    int r = vo_vm_spec_from_json(doc, &spec, ret_error);
    if (r >= 0 && (r = vo_vm_spec_validate(spec, &limits, ret_error)) < 0)
        spec = vo_vm_spec_free(spec);
    json_decref(doc);
    return spec;
}

static void expect_error(const char *text, const char *fragment)
{
    _cleanup_free_ char *err = NULL;
    VoVmSpec *spec = parse(text, &err);
    if (spec) {
        vo_vm_spec_free(spec);
        fail_msg("accepted: %s", text);
    }
    if (!err || !strstr(err, fragment))
        fail_msg("error '%s' lacks '%s'", err ? err : "(none)", fragment);
}

static void test_firmware_names(void **state)
{
    VoFirmware f;
    assert_int_equal(vo_firmware_from_string("uefi", &f), 0);
    assert_int_equal(f, VO_FIRMWARE_UEFI);
    assert_int_equal(vo_firmware_from_string("bios", &f), 0);
    assert_int_equal(f, VO_FIRMWARE_BIOS);
    assert_int_equal(vo_firmware_from_string("efi", &f), -EINVAL);
    assert_int_equal(vo_firmware_from_string(NULL, &f), -EINVAL);
    assert_string_equal(vo_firmware_to_string(VO_FIRMWARE_UEFI), "uefi");
    assert_null(vo_firmware_to_string(_VO_FIRMWARE_MAX));
}

static void test_spec_round_trip(void **state)
{
    _cleanup_free_ char *err = NULL;
    /* absent: bios, and bios is not written back (old documents stay) */
    VoVmSpec *s = parse(HEAD "\"nics\":[]}", &err);
    assert_non_null(s);
    assert_int_equal(s->firmware, VO_FIRMWARE_BIOS);
    json_t *j = vo_vm_spec_to_json(s);
    assert_null(json_object_get(j, "firmware"));
    assert_null(json_object_get(j, "nvram"));
    json_decref(j);
    vo_vm_spec_free(s);

    s = parse(HEAD "\"firmware\":\"uefi\",\"secure_boot\":true,\"machine\":\"q35\","
                   "\"nvram\":\"default/a-nvram\"}", &err);
    assert_non_null(s);
    assert_int_equal(s->firmware, VO_FIRMWARE_UEFI);
    assert_true(s->secure_boot);
    assert_string_equal(s->nvram, "default/a-nvram");
    j = vo_vm_spec_to_json(s);
    assert_string_equal(json_string_value(json_object_get(j, "firmware")), "uefi");
    assert_true(json_is_true(json_object_get(j, "secure_boot")));
    assert_string_equal(json_string_value(json_object_get(j, "nvram")), "default/a-nvram");
    json_decref(j);
    VoVmSpec *copy = vo_vm_spec_copy(s);
    assert_string_equal(copy->nvram, "default/a-nvram");
    assert_int_equal(copy->firmware, VO_FIRMWARE_UEFI);
    vo_vm_spec_free(copy);

    /* the NVRAM is one of the VM's volumes (a delete of it is refused) */
    json_t *rel = vo_relations_of_vm(s, false);
    bool found = false;
    const char *key;
    json_t *v;
    json_object_foreach(rel, key, v)
        found |= strstr(key, "default/a-nvram") != NULL;
    assert_true(found);
    json_decref(rel);
    vo_vm_spec_free(s);
}

static void test_spec_refusals(void **state)
{
    expect_error(HEAD "\"firmware\":\"efi\"}", "firmware: 'efi' is not one of bios, uefi");
    expect_error(HEAD "\"secure_boot\":true}", "secure_boot: needs firmware uefi");
    expect_error(HEAD "\"firmware\":\"bios\",\"secure_boot\":true}", "needs firmware uefi");
    expect_error(HEAD "\"firmware\":\"uefi\",\"secure_boot\":true,\"machine\":\"pc\"}",
                 "needs machine q35");
    expect_error(HEAD "\"nvram\":\"default/a-nvram\"}", "only a VM with firmware uefi");
    expect_error(HEAD "\"firmware\":\"uefi\",\"nvram\":\"/tmp/x\"}", "is not POOL/NAME");
    expect_error(HEAD "\"firmware\":3}", "firmware");
}

static int volume_path(void *userdata, const char *key, char **ret_path, char **ret_error)
{
    if (!strcmp(key, "default/gone"))
        return vo_error_set(ret_error, -ENOENT, "no such volume");
    *ret_path = vo_asprintf("/pools/%s", key);
    return 0;
}

static int image_file(void *userdata, const char *image, bool initrd, char **ret_path,
                      char **ret_error)
{
    return vo_error_set(ret_error, -ENOENT, "no image");
}

static void test_resolve_nvram(void **state)
{
    _cleanup_free_ char *err = NULL;
    VoSpecResolver res = { volume_path, image_file, NULL };
    VoVmSpec *s = parse(HEAD "\"firmware\":\"uefi\",\"nvram\":\"default/a-nvram\"}", &err);
    assert_non_null(s);
    VoVmSpec *resolved = NULL;
    assert_int_equal(vo_vm_spec_resolve(s, &res, &resolved, &err), 0);
    assert_string_equal(resolved->nvram_path, "/pools/default/a-nvram");
    VoVmSpec *copy = vo_vm_spec_copy(resolved);
    assert_string_equal(copy->nvram_path, "/pools/default/a-nvram");
    vo_vm_spec_unresolve(copy);
    assert_null(copy->nvram_path);
    vo_vm_spec_free(copy);
    vo_vm_spec_free(resolved);
    vo_vm_spec_free(s);

    s = parse(HEAD "\"firmware\":\"uefi\",\"nvram\":\"default/gone\"}", &err);
    assert_non_null(s);
    resolved = NULL;
    free(TAKE_PTR(err));
    assert_int_equal(vo_vm_spec_resolve(s, &res, &resolved, &err), -ENOENT);
    assert_null(resolved);
    assert_non_null(strstr(err, "nvram (volume 'default/gone')"));
    vo_vm_spec_free(s);
}

static void test_image_preference(void **state)
{
    _cleanup_free_ char *err = NULL;
    json_t *meta = json_pack("{s:s, s:s}", "disk", "disk.qcow2", "firmware", "uefi");
    json_t *doc = NULL;
    assert_int_equal(vo_image_doc_make("win", meta, 1, 1, &doc, &err), 0);
    VoImageDoc v;
    assert_int_equal(vo_image_doc_parse(doc, "win", &v), 0);
    assert_string_equal(v.firmware, "uefi");
    json_decref(doc);
    json_decref(meta);

    meta = json_pack("{s:s, s:s}", "disk", "disk.qcow2", "firmware", "coreboot");
    doc = NULL;
    assert_int_equal(vo_image_doc_make("x", meta, 1, 1, &doc, &err), -EINVAL);
    assert_non_null(strstr(err, "firmware 'coreboot'"));
    json_decref(meta);

    /* no preference: NULL (bios unless asked) */
    meta = json_pack("{s:s}", "disk", "disk.qcow2");
    assert_int_equal(vo_image_doc_make("plain", meta, 1, 1, &doc, NULL), 0);
    assert_int_equal(vo_image_doc_parse(doc, "plain", &v), 0);
    assert_null(v.firmware);
    json_decref(doc);
    json_decref(meta);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_firmware_names),
        cmocka_unit_test(test_spec_round_trip),
        cmocka_unit_test(test_spec_refusals),
        cmocka_unit_test(test_resolve_nvram),
        cmocka_unit_test(test_image_preference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
