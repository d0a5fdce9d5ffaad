/* test-rbd-disk.c: a VM disk on an RBD image (storage/rbd-disk.c) and its
 * QEMU arguments (qemu-devices.c): which paths are RBD volumes, the rbd
 * -blockdev (servers, user, key-secret) and the secret object that passes
 * the key by file, never the key itself; an ISO of an rbd pool as the
 * CD-ROM's medium. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "qemu/qemu-devices.h"
#include "storage/rbd-disk.h"
#include "util/util.h"

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

static void test_servers(void **state)
{
    (void)state;
    _cleanup_free_ char *a = dump(vo_rbd_servers("10.0.0.1,10.0.0.2:3300,[fd00::1]:6789,[::1]"));
    assert_string_equal(a, "[{\"host\":\"10.0.0.1\",\"port\":\"6789\"},"
                           "{\"host\":\"10.0.0.2\",\"port\":\"3300\"},"
                           "{\"host\":\"fd00::1\",\"port\":\"6789\"},"
                           "{\"host\":\"::1\",\"port\":\"6789\"}]");
    assert_null(vo_rbd_servers(""));
    assert_null(vo_rbd_servers("[::1"));
}

static void test_disk_argv(void **state)
{
    (void)state;
    char dir[] = "/tmp/vireo-rbd-disk-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *path = vo_asprintf("%s/root.raw", dir);
    VoRbdDisk rbd;
    /* No ceph.json: a plain file volume. */
    assert_int_equal(vo_rbd_disk_of_path(path, &rbd), 0);
    assert_int_equal(vo_rbd_disk_write_conf(dir, "127.0.0.1,10.0.0.2:3300", "vms", "vireo"), 0);
    assert_int_equal(vo_rbd_disk_of_path(path, &rbd), 1);
    assert_string_equal(rbd.pool, "vms");
    assert_string_equal(rbd.image, "root");
    vo_rbd_disk_clear(&rbd);
    /* Only NAME.raw in such a directory. */
    _cleanup_free_ char *other = vo_asprintf("%s/root.qcow2", dir);
    assert_int_equal(vo_rbd_disk_of_path(other, &rbd), 0);

    VoDiskSpec disk = { .path = path, .format = VO_DISK_RAW, .slot = 1 };
    _cleanup_free_ char *file = dump(vo_qemu_disk_file_props(&disk));
    char id[40];
    vo_qemu_disk_secret_id(disk.slot, id);
    _cleanup_free_ char *want = vo_asprintf(
        "{\"auth-client-required\":[\"cephx\"],\"discard\":\"unmap\",\"driver\":\"rbd\","
        "\"image\":\"root\",\"key-secret\":\"%s\",\"node-name\":\"%s\",\"pool\":\"vms\","
        "\"read-only\":false,\"server\":[{\"host\":\"127.0.0.1\",\"port\":\"6789\"},"
        "{\"host\":\"10.0.0.2\",\"port\":\"3300\"}],\"user\":\"vireo\"}",
        id, id + strlen("sec-"));
    assert_string_equal(file, want);
    _cleanup_free_ char *secret = dump(vo_qemu_disk_secret_props(&disk));
    _cleanup_free_ char *want_secret = vo_asprintf(
        "{\"file\":\"%s/key\",\"format\":\"base64\",\"id\":\"%s\",\"qom-type\":\"secret\"}", dir,
        id);
    assert_string_equal(secret, want_secret);
    /* The format layer is raw over it, as for a file. */
    _cleanup_free_ char *format = dump(vo_qemu_disk_format_props(&disk));
    assert_non_null(strstr(format, "\"driver\":\"raw\""));
    /* A file volume: no secret, the file driver. */
    VoDiskSpec plain = { .path = "/var/lib/vireo/pools/default/a.qcow2", .format = VO_DISK_QCOW2 };
    assert_null(vo_qemu_disk_secret_props(&plain));
    _cleanup_free_ char *pfile = dump(vo_qemu_disk_file_props(&plain));
    assert_non_null(strstr(pfile, "\"driver\":\"file\""));

    _cleanup_free_ char *conf = vo_asprintf("%s/ceph.json", dir);
    unlink(conf);
    rmdir(dir);
}

/* An ISO on an rbd pool in the CD-ROM drive: a json: filename of a raw node
 * on a read-only rbd node (no node names: they go with the medium), the key
 * by the CD-ROM's secret object; a file stays a file, without a secret. */
static void test_cdrom_medium(void **state)
{
    (void)state;
    char dir[] = "/tmp/vireo-rbd-cdrom-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *path = vo_asprintf("%s/inst.raw", dir);
    assert_int_equal(vo_rbd_disk_write_conf(dir, "10.0.0.1", "vms", "vireo"), 0);
    _cleanup_free_ char *file = vo_qemu_cdrom_filename(path);
    assert_string_equal(file, "json:{\"file\":{\"auth-client-required\":[\"cephx\"],"
                              "\"driver\":\"rbd\",\"image\":\"inst\",\"key-secret\":"
                              "\"" VO_QEMU_CDROM_SECRET "\",\"pool\":\"vms\",\"read-only\":true,"
                              "\"server\":[{\"host\":\"10.0.0.1\",\"port\":\"6789\"}],"
                              "\"user\":\"vireo\"}}");
    _cleanup_free_ char *secret = dump(vo_qemu_cdrom_secret_props(path));
    _cleanup_free_ char *want = vo_asprintf(
        "{\"file\":\"%s/key\",\"format\":\"base64\",\"id\":\"" VO_QEMU_CDROM_SECRET
        "\",\"qom-type\":\"secret\"}", dir);
    assert_string_equal(secret, want);
    const char *iso = "/var/lib/vireo/pools/default/inst.raw";
    _cleanup_free_ char *plain = vo_qemu_cdrom_filename(iso);
    assert_string_equal(plain, iso);
    assert_null(vo_qemu_cdrom_secret_props(iso));
    _cleanup_free_ char *conf = vo_asprintf("%s/ceph.json", dir);
    unlink(conf);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_servers),
        cmocka_unit_test(test_disk_argv),
        cmocka_unit_test(test_cdrom_medium),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
