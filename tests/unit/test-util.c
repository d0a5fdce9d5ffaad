/* test-util.c: size parsing, string vectors, API error mapping and the
 * KVM-usability probe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "qemu/qemu-caps.h"
#include "util/util.h"
#include "vireo/errors.h"

static void test_parse_size(void **state)
{
    uint64_t v = 0;
    assert_int_equal(vo_parse_size("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(vo_parse_size("4K", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(vo_parse_size("512M", &v), 0);
    assert_int_equal(v, 512ULL << 20);
    assert_int_equal(vo_parse_size("2g", &v), 0);
    assert_int_equal(v, 2ULL << 30);
    assert_int_equal(vo_parse_size("1T", &v), 0);
    assert_int_equal(v, 1ULL << 40);
    assert_int_equal(vo_parse_size("3GiB", &v), 0);
    assert_int_equal(v, 3ULL << 30);
    assert_int_equal(vo_parse_size_default_unit("256", 1 << 20, &v), 0);
    assert_int_equal(v, 256ULL << 20);

    assert_int_equal(vo_parse_size("", &v), -EINVAL);
    assert_int_equal(vo_parse_size("M", &v), -EINVAL);
    assert_int_equal(vo_parse_size("-1G", &v), -EINVAL);
    assert_int_equal(vo_parse_size("12X", &v), -EINVAL);
    assert_int_equal(vo_parse_size("1.5G", &v), -EINVAL);
    assert_int_equal(vo_parse_size("10GG", &v), -EINVAL);
    assert_int_equal(vo_parse_size(" 1G", &v), -EINVAL);
    assert_int_equal(vo_parse_size("99999999999999999999", &v), -ERANGE);
    assert_int_equal(vo_parse_size("99999999999T", &v), -ERANGE);
}

static void test_strv(void **state)
{
    _cleanup_strv_ char **v = NULL;
    assert_int_equal(vo_strv_len(v), 0);
    vo_strv_push(&v, vo_strdup("a"));
    vo_strv_pushf(&v, "%s-%d", "b", 2);
    assert_int_equal(vo_strv_len(v), 2);
    assert_string_equal(v[1], "b-2");
    assert_null(v[2]);
}

static void test_error_mapping(void **state)
{
    assert_int_equal(vo_error_from_errno(-EINVAL), VO_ERR_INVALID_ARGUMENT);
    assert_int_equal(vo_error_from_errno(-ENOENT), VO_ERR_NOT_FOUND);
    assert_int_equal(vo_error_from_errno(-EEXIST), VO_ERR_ALREADY_EXISTS);
    assert_int_equal(vo_error_from_errno(-EBUSY), VO_ERR_INVALID_STATE);
    assert_int_equal(vo_error_from_errno(-ESTALE), VO_ERR_CONFLICT);
    assert_int_equal(vo_error_from_errno(-EIO), VO_ERR_INTERNAL);
    assert_int_equal(vo_error_from_errno(-ENOSPC), VO_ERR_INSUFFICIENT_STORAGE);
    assert_int_equal(vo_error_http_status(VO_ERR_INSUFFICIENT_STORAGE), 507);
    assert_int_equal(vo_error_http_status(VO_ERR_NOT_FOUND), 404);
    assert_int_equal(vo_error_http_status(VO_ERR_ALREADY_EXISTS), 409);
    assert_int_equal(vo_error_http_status(VO_ERR_PAYLOAD_TOO_LARGE), 413);
    assert_int_equal(vo_error_http_status(VO_ERR_UNSUPPORTED_MEDIA), 415);
    assert_string_equal(vo_error_code_name(VO_ERR_INVALID_STATE), "invalid-state");
    for (int c = 0; c < _VO_ERR_MAX; c++) {
        assert_non_null(vo_error_code_name((VoErrorCode)c));
        assert_true(vo_error_http_status((VoErrorCode)c) >= 400);
    }
}

static char tmpdir[] = "/tmp/vireo-test-util-XXXXXX";

static char *write_tmp(const char *name, const char *content)
{
    char *p = vo_asprintf("%s/%s", tmpdir, name);
    assert_int_equal(vo_write_file_atomic(p, content, strlen(content)), 0);
    return p;
}

static void test_kvm_probe(void **state)
{
    assert_non_null(mkdtemp(tmpdir));
    _cleanup_free_ char *dev = write_tmp("kvm", "");
    _cleanup_free_ char *vmx = write_tmp("cpuinfo-vmx", "processor\t: 0\nflags\t\t: fpu vme vmx sse\n");
    _cleanup_free_ char *svm = write_tmp("cpuinfo-svm", "flags\t: fpu svm\n");
    _cleanup_free_ char *none = write_tmp("cpuinfo-pvm", "flags\t: fpu vme hypervisor sse4_2\n");
    _cleanup_free_ char *missing = vo_asprintf("%s/no-such-kvm", tmpdir);
    _cleanup_free_ char *reason = NULL;

    assert_true(vo_qemu_kvm_usable(dev, vmx, NULL));
    assert_true(vo_qemu_kvm_usable(dev, svm, NULL));
    /* A /dev/kvm that opens is not enough (PVM): the CPU must show vmx or svm. */
    assert_false(vo_qemu_kvm_usable(dev, none, &reason));
    assert_non_null(strstr(reason, "neither vmx nor svm"));
    free(TAKE_PTR(reason));
    assert_false(vo_qemu_kvm_usable(missing, vmx, &reason));
    assert_non_null(strstr(reason, "cannot be opened"));
    assert_int_equal(vo_rm_rf(tmpdir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_strv),
        cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_kvm_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
