/* test-iso-cdrom.c: ISO volumes and CD-ROMs: the ISO 9660 signature probe,
 * the volume spec's content, a VM spec's cdrom and boot order (parsing,
 * validation, round-trip, bootindex) and the QEMU argv of a blank VM that
 * boots its installer CD (a file's path, or an ISO of an rbd pool by a json:
 * filename and the key's secret object). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/storage-spec.h"
#include "conf/vm-spec.h"
#include "qemu/qemu-argv.h"
#include "state/relations.h"
#include "storage/iso.h"
#include "storage/rbd-disk.h"
#include "util/util.h"

static const VoHostLimits limits = { .max_vcpus = 2, .max_memory_mib = 4096 };
#define ID "6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10"
#define HEAD "{\"id\":\"" ID "\",\"name\":\"a\","

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

static void test_iso_probe(void **state)
{
    char path[] = "/tmp/vireo-test-iso-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char zeros[40000] = { 0 };
    assert_int_equal(write(fd, zeros, sizeof(zeros)), sizeof(zeros));
    assert_int_equal(vo_iso_probe(path), 0);
    assert_int_equal(pwrite(fd, "CD001", 5, VO_ISO_SIGNATURE_OFFSET), 5);
    assert_int_equal(vo_iso_probe(path), 1);
    /* too short to hold the signature */
    assert_int_equal(ftruncate(fd, 1000), 0);
    assert_int_equal(vo_iso_probe(path), 0);
    close(fd);
    unlink(path);
    assert_int_equal(vo_iso_probe(path), -ENOENT);

    /* A FIFO (a domain XML's CD-ROM source naming one) is no image, and
     * probing it does not wait for a writer: the alarm ends a probe that
     * blocks. */
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(10);
    assert_int_equal(vo_iso_probe(path), 0);
    alarm(0);
    unlink(path);
}

static void test_volume_spec_content(void **state)
{
    VoVolumeSpec s;
    char *err = NULL;
    json_t *doc = json_pack("{s:s, s:s, s:s}", "name", "cd", "import_path", "/x.iso", "content",
                            "iso");
    assert_int_equal(vo_volume_spec_from_json(doc, &s, &err), 0);
    assert_string_equal(s.content, "iso");
    vo_volume_spec_clear(&s);
    json_decref(doc);
    doc = json_pack("{s:s, s:s, s:s}", "name", "cd", "import_path", "/x.iso", "content", "dvd");
    assert_int_equal(vo_volume_spec_from_json(doc, &s, &err), -EINVAL);
    assert_non_null(strstr(err, "content: 'dvd' is not iso"));
    free(TAKE_PTR(err));
    json_decref(doc);
    doc = json_pack("{s:s, s:I, s:s}", "name", "cd", "size_bytes", (json_int_t)1 << 20,
                    "content", "iso");
    assert_int_equal(vo_volume_spec_from_json(doc, &s, &err), -EINVAL);
    assert_non_null(strstr(err, "give import_path"));
    free(err);
    json_decref(doc);
}

static void test_spec_cdrom_and_boot(void **state)
{
    char *err = NULL;
    VoVmSpec *s = parse(HEAD "\"disks\":[{\"volume\":\"p/d\"}],\"cdrom\":{\"volume\":\"p/iso\"},"
                        "\"boot\":[\"cdrom\",\"disk\",\"network\"]}", &err);
    assert_non_null(s);
    assert_true(s->has_cdrom);
    assert_string_equal(s->cdrom, "p/iso");
    assert_int_equal(s->n_boot, 3);
    assert_int_equal(s->boot[0], VO_BOOT_CDROM);
    /* firmware boot: the CD first, then the disks, then the NICs */
    assert_int_equal(vo_vm_spec_bootindex(s, VO_BOOT_CDROM, 0), 1);
    assert_int_equal(vo_vm_spec_bootindex(s, VO_BOOT_DISK, 0), 65);
    assert_int_equal(vo_vm_spec_bootindex(s, VO_BOOT_NETWORK, 1), 130);
    json_t *a = vo_vm_spec_to_json(s);
    VoVmSpec *copy = vo_vm_spec_copy(s);
    json_t *b = vo_vm_spec_to_json(copy);
    assert_true(json_equal(a, b));
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "cdrom"), "volume")),
                        "p/iso");
    assert_int_equal(json_array_size(json_object_get(a, "boot")), 3);
    json_decref(a);
    json_decref(b);
    vo_vm_spec_free(copy);
    /* the ISO in the drive is used by the VM: a volume delete finds it */
    json_t *rel = vo_relations_of_vm(s, false);
    assert_non_null(json_object_get(rel, "uses/volumes/p/iso/" ID));
    assert_non_null(json_object_get(rel, "uses/volumes/p/d/" ID));
    json_decref(rel);
    vo_vm_spec_free(s);

    /* an empty drive; the default order: disks, then the CD; no NIC boot */
    s = parse(HEAD "\"disks\":[{\"volume\":\"p/d\"}],\"cdrom\":{}}", &err);
    assert_non_null(s);
    assert_true(s->has_cdrom);
    assert_null(s->cdrom);
    assert_int_equal(vo_vm_spec_bootindex(s, VO_BOOT_DISK, 0), 1);
    assert_int_equal(vo_vm_spec_bootindex(s, VO_BOOT_CDROM, 0), 65);
    assert_int_equal(vo_vm_spec_bootindex(s, VO_BOOT_NETWORK, 0), -1);
    a = vo_vm_spec_to_json(s);
    assert_true(json_is_object(json_object_get(a, "cdrom")));
    assert_null(json_object_get(json_object_get(a, "cdrom"), "volume"));
    assert_null(json_object_get(a, "boot"));
    json_decref(a);
    vo_vm_spec_free(s);

    /* direct kernel boot: no bootindex at all */
    s = parse(HEAD "\"kernel\":{\"image\":\"k\"},\"cdrom\":{},\"boot\":[\"cdrom\"]}", &err);
    assert_non_null(s);
    assert_int_equal(vo_vm_spec_bootindex(s, VO_BOOT_CDROM, 0), -1);
    vo_vm_spec_free(s);
    /* a CD-ROM alone is something to boot */
    s = parse(HEAD "\"cdrom\":{\"volume\":\"p/iso\"}}", &err);
    assert_non_null(s);
    vo_vm_spec_free(s);
}

static void test_spec_refusals(void **state)
{
    expect_error(HEAD "\"disks\":[{\"volume\":\"p/d\"}],\"boot\":[\"cdrom\"]}", "no CD-ROM drive");
    expect_error(HEAD "\"disks\":[{\"volume\":\"p/d\"}],\"boot\":[\"disk\",\"disk\"]}",
                 "disk is listed twice");
    expect_error(HEAD "\"disks\":[{\"volume\":\"p/d\"}],\"boot\":[\"floppy\"]}",
                 "boot[0]: expected one of disk, cdrom, network");
    expect_error(HEAD "\"disks\":[{\"volume\":\"p/d\"}],\"boot\":[]}", "at least one");
    expect_error(HEAD "\"disks\":[{\"volume\":\"p/d\"}],\"cdrom\":{\"volume\":\"iso\"}}",
                 "cdrom.volume: 'iso' is not POOL/NAME");
    expect_error(HEAD "\"disks\":[{\"volume\":\"p/d\"}],\"cdrom\":{\"path\":\"/x.iso\"}}",
                 "cdrom.path: unknown key");
    expect_error(HEAD "\"disks\":[{\"volume\":\"p/d\"}],\"cdrom\":\"p/iso\"}",
                 "cdrom: expected an object");
    expect_error(HEAD "\"memory_mib\":64}", "a disk, a kernel or a CD-ROM");
}

static int volume_path(void *userdata, const char *key, char **ret_path, char **ret_error)
{
    *ret_path = vo_asprintf("/pools/%s.img", key);
    return 0;
}

static int image_file(void *userdata, const char *image, bool initrd, char **ret_path,
                      char **ret_error)
{
    return -ENOENT;
}

static bool argv_has(char **argv, const char *opt, const char *fragment)
{
    for (size_t i = 0; argv[i] && argv[i + 1]; i++)
        if (!strcmp(argv[i], opt) && strstr(argv[i + 1], fragment))
            return true;
    return false;
}

static void test_argv_blank_vm_with_installer(void **state)
{
    char *err = NULL;
    VoVmSpec *s = parse(HEAD "\"disks\":[{\"volume\":\"p/d\"}],\"cdrom\":{\"volume\":\"p/iso\"},"
                        "\"boot\":[\"cdrom\",\"disk\"],\"nics\":[{\"mac\":\"52:54:00:01:02:03\"}]}",
                        &err);
    assert_non_null(s);
    VoSpecResolver res = { .volume_path = volume_path, .image_file = image_file };
    VoVmSpec *resolved = NULL;
    assert_int_equal(vo_vm_spec_resolve(s, &res, &resolved, &err), 0);
    assert_string_equal(resolved->cdrom_path, "/pools/p/iso.img");
    VoQemuCaps caps = { .binary = "qemu-system-x86_64" };
    VoQemuPaths paths = { .qmp_socket = "/r/qmp", .console_socket = "/r/console",
                          .pidfile = "/r/pid" };
    char **argv = NULL;
    assert_int_equal(vo_qemu_build_argv(resolved, &caps, &paths, &argv, &err), 0);
    assert_true(argv_has(argv, "-boot", "strict=on"));
    assert_true(argv_has(argv, "-drive", "if=none,id=drive-cdrom0,media=cdrom,readonly=on,"
                                         "format=raw,file=/pools/p/iso.img"));
    assert_true(argv_has(argv, "-device", "\"driver\":\"ide-cd\",\"id\":\"cdrom0\",\"bus\":"
                                          "\"ide.1\",\"drive\":\"drive-cdrom0\",\"bootindex\":1"));
    assert_true(argv_has(argv, "-device", "\"bootindex\":65"));
    /* the NIC is not in the boot list */
    assert_false(argv_has(argv, "-device", "\"bootindex\":129"));
    assert_false(argv_has(argv, "-kernel", ""));
    vo_strv_free(argv);
    argv = NULL;

    /* an empty drive: the device without a medium */
    free(TAKE_PTR(resolved->cdrom));
    free(TAKE_PTR(resolved->cdrom_path));
    assert_int_equal(vo_qemu_build_argv(resolved, &caps, &paths, &argv, &err), 0);
    assert_false(argv_has(argv, "-drive", "cdrom"));
    assert_true(argv_has(argv, "-device", "\"driver\":\"ide-cd\",\"id\":\"cdrom0\",\"bus\":"
                                          "\"ide.1\",\"bootindex\":1"));
    vo_strv_free(argv);
    argv = NULL;

    /* A comma in a file's path is doubled (QEMU's option syntax): it
     * cannot end the value and start an option of its own. */
    resolved->cdrom_path = vo_strdup("/pools/p,x/iso.img");
    assert_int_equal(vo_qemu_build_argv(resolved, &caps, &paths, &argv, &err), 0);
    assert_true(argv_has(argv, "-drive", "readonly=on,format=raw,file=/pools/p,,x/iso.img"));
    vo_strv_free(argv);
    argv = NULL;
    free(TAKE_PTR(resolved->cdrom_path));

    /* An ISO of an rbd pool: the key's secret object before the -drive that
     * names it, the medium a json: filename (its commas doubled) of a
     * read-only rbd node, the drive read-only too. */
    char dir[] = "/tmp/vireo-cdrom-argv-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(vo_rbd_disk_write_conf(dir, "10.0.0.1", "vms", "vireo"), 0);
    resolved->cdrom_path = vo_asprintf("%s/inst.raw", dir);
    assert_int_equal(vo_qemu_build_argv(resolved, &caps, &paths, &argv, &err), 0);
    ssize_t secret = -1, drive = -1;
    for (size_t i = 0; argv[i] && argv[i + 1]; i++) {
        if (!strcmp(argv[i], "-object") && strstr(argv[i + 1], "\"id\":\"sec-cdrom0\""))
            secret = (ssize_t)i;
        if (!strcmp(argv[i], "-drive") && strstr(argv[i + 1], "id=drive-cdrom0"))
            drive = (ssize_t)i;
    }
    assert_true(secret >= 0 && drive > secret);
    assert_non_null(strstr(argv[drive + 1], "readonly=on,format=raw,file=json:{\"file\":{"
                                            "\"auth-client-required\":[\"cephx\"],,\"driver\""
                                            ":\"rbd\",,\"image\":\"inst\",,"));
    assert_non_null(strstr(argv[drive + 1], ",,\"read-only\":true,,"));
    assert_null(strstr(argv[drive + 1], "\"node-name\""));
    vo_strv_free(argv);
    _cleanup_free_ char *conf = vo_asprintf("%s/ceph.json", dir);
    unlink(conf);
    rmdir(dir);
    vo_vm_spec_free(resolved);
    vo_vm_spec_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iso_probe),
        cmocka_unit_test(test_volume_spec_content),
        cmocka_unit_test(test_spec_cdrom_and_boot),
        cmocka_unit_test(test_spec_refusals),
        cmocka_unit_test(test_argv_blank_vm_with_installer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
