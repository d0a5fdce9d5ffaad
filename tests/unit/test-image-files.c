/* test-image-files.c: what copy on first use trusts of the wire
 * (storage/image-files.c): file names an image may have (plain, never out
 * of the image directory), the files an image.json names, manifests, and
 * the streamed SHA-256 (util/sha256.c) against the file one and known
 * vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/image-files.h"
#include "util/sha256.h"
#include "util/util.h"

#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_file_names(void **state)
{
    (void)state;
    const char *good[] = { "image.json", "disk.qcow2", "vmlinux", "initrd.img", "a", "x-y_z.1" };
    for (size_t i = 0; i < ELEMENTSOF(good); i++)
        assert_true(vo_image_file_name_ok(good[i]));
    const char *bad[] = { "", ".", "..", "../image.json", "/etc/passwd", "a/b", ".build-x",
                          ".deleting-x", "a\nb", "tab\there", "del\x7f" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_false(vo_image_file_name_ok(bad[i]));
    assert_false(vo_image_file_name_ok(NULL));
    char long_name[300];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_false(vo_image_file_name_ok(long_name));
}

static void test_files_of(void **state)
{
    (void)state;
    json_t *meta = json_pack("{s:s, s:s, s:s, s:s}", "name", "x", "disk", "disk.qcow2", "kernel",
                             "vmlinux", "initrd", "initrd.img");
    char **names = NULL;
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_image_files_of(meta, &names, &error), 0);
    assert_int_equal(vo_strv_len(names), 4);
    assert_string_equal(names[0], "image.json");
    assert_string_equal(names[1], "disk.qcow2");
    vo_strv_free(names);
    assert_true(vo_image_file_named(meta, "vmlinux"));
    assert_true(vo_image_file_named(meta, "image.json"));
    assert_false(vo_image_file_named(meta, "other"));
    assert_false(vo_image_file_named(meta, "../x/vmlinux"));
    json_decref(meta);

    /* A disk that escapes, or is missing, or is image.json itself: refused. */
    const char *disks[] = { "../../etc/shadow", "/etc/shadow", "image.json", NULL };
    for (size_t i = 0; i < ELEMENTSOF(disks); i++) {
        meta = disks[i] ? json_pack("{s:s}", "disk", disks[i]) : json_object();
        names = NULL;
        free(error);
        error = NULL;
        assert_int_equal(vo_image_files_of(meta, &names, &error), -EINVAL);
        assert_null(names);
        assert_non_null(strstr(error, "disk"));
        assert_false(vo_image_file_named(meta, "image.json"));
        json_decref(meta);
    }
    meta = json_pack("{s:s, s:s}", "disk", "d", "kernel", "../k");
    free(error);
    error = NULL;
    assert_int_equal(vo_image_files_of(meta, &names, &error), -EINVAL);
    assert_non_null(strstr(error, "kernel"));
    json_decref(meta);
}

static json_t *file(const char *name, json_int_t size, const char *sha)
{
    return json_pack("{s:s, s:I, s:s}", "name", name, "size_bytes", size, "sha256", sha);
}

static void test_manifest(void **state)
{
    (void)state;
    VoImageManifest m = { 0 };
    _cleanup_free_ char *error = NULL;
    json_t *doc = json_pack("{s:s, s:[o, o]}", "image", "img", "files",
                            file("image.json", 10, SHA_ABC), file("disk.qcow2", 0, SHA_EMPTY));
    assert_int_equal(vo_image_manifest_parse(doc, "img", &m, &error), 0);
    assert_int_equal(m.n_files, 2);
    assert_string_equal(m.files[1].name, "disk.qcow2");
    assert_int_equal(m.files[0].size, 10);
    assert_string_equal(m.files[1].sha256, SHA_EMPTY);
    vo_image_manifest_clear(&m);
    /* Another image's manifest. */
    assert_int_equal(vo_image_manifest_parse(doc, "other", &m, &error), -EINVAL);
    json_decref(doc);

    struct {
        json_t *doc;
        const char *says;
    } bad[] = {
        { json_pack("{s:s, s:[o]}", "image", "img", "files", file("../evil", 1, SHA_ABC)),
          "not a plain file name" },
        { json_pack("{s:s, s:[o]}", "image", "img", "files", file("/etc/passwd", 1, SHA_ABC)),
          "not a plain file name" },
        { json_pack("{s:s, s:[o, o]}", "image", "img", "files", file("image.json", 1, SHA_ABC),
                    file("image.json", 1, SHA_ABC)), "twice" },
        { json_pack("{s:s, s:[o]}", "image", "img", "files", file("disk", 1, SHA_ABC)),
          "no image.json" },
        { json_pack("{s:s, s:[o]}", "image", "img", "files", file("image.json", -1, SHA_ABC)),
          "no size" },
        { json_pack("{s:s, s:[o]}", "image", "img", "files", file("image.json", 1, "abc")),
          "SHA-256" },
        { json_pack("{s:s, s:[o]}", "image", "img", "files",
                    file("image.json", 1, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD")),
          "SHA-256" },
        { json_pack("{s:s, s:[]}", "image", "img", "files"), "no files" },
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        free(error);
        error = NULL;
        assert_int_equal(vo_image_manifest_parse(bad[i].doc, "img", &m, &error), -EINVAL);
        if (!strstr(error, bad[i].says))
            fail_msg("case %zu: '%s' does not say '%s'", i, error, bad[i].says);
        assert_null(m.files);
        json_decref(bad[i].doc);
    }
}

static void test_digest(void **state)
{
    (void)state;
    char hex[VO_SHA256_HEX_LEN + 1];
    VoSha256 *s = vo_sha256_new();
    assert_int_equal(vo_sha256_finish(s, hex), 0);
    assert_string_equal(hex, SHA_EMPTY);
    s = vo_sha256_new();
    assert_int_equal(vo_sha256_update(s, "a", 1), 0);
    assert_int_equal(vo_sha256_update(s, "bc", 2), 0);
    assert_int_equal(vo_sha256_finish(s, hex), 0);
    assert_string_equal(hex, SHA_ABC);
    assert_true(vo_sha256_hex_ok(hex));
    assert_false(vo_sha256_hex_ok("ba78"));

    /* In pieces of any size, as received: equal to the file's digest. */
    char path[] = "/tmp/vireo-image-files-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = 3 * 1024 * 1024 + 17;
    unsigned char *buf = vo_malloc0(len);
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(i * 7 + (i >> 11));
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
    char want[VO_SHA256_HEX_LEN + 1];
    assert_int_equal(vo_sha256_file(path, want), 0);
    s = vo_sha256_new();
    for (size_t off = 0, piece = 1; off < len; off += piece, piece = piece * 3 + 1) {
        size_t n = off + piece > len ? len - off : piece;
        assert_int_equal(vo_sha256_update(s, buf + off, n), 0);
    }
    assert_int_equal(vo_sha256_finish(s, hex), 0);
    assert_string_equal(hex, want);
    /* One byte changed: another digest. */
    buf[len / 2] ^= 1;
    s = vo_sha256_new();
    assert_int_equal(vo_sha256_update(s, buf, len), 0);
    assert_int_equal(vo_sha256_finish(s, hex), 0);
    assert_string_not_equal(hex, want);
    vo_sha256_free(NULL);
    free(buf);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_names),
        cmocka_unit_test(test_files_of),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
