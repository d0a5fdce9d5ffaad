/* test-qemu-layout.c: the hardware layout record of a QEMU VM: JSON
 * round-trip and refusal of bad records, and the command line of a
 * migration destination built from the layout of a source that had a disk,
 * a NIC, a vCPU and memory hot-plugged: the same devices in the same ports
 * and addresses, the same machine version and boot sizes; and the padded boot
 * memory of TCG VMs with virtio-mem (qemu-argv.c, "TCG and a second RAM
 * block"); and the cloud-init seed drive the source has. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "qemu/qemu-argv.h"
#include "qemu/qemu-devices.h"
#include "qemu/qemu-layout.h"
#include "spec-resolved.h"
#include "util/util.h"


/* A q35 VM with hot-pluggable vCPUs and memory, one disk and one NIC. */
static const char SOURCE_SPEC[] =
    "{\"id\":\"6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10\",\"name\":\"mig\",\"accel\":\"tcg\","
    "\"kernel\":{\"image\":\"k\"},\"vcpus\":2,\"max_vcpus\":4,\"memory_mib\":256,"
    "\"max_memory_mib\":512,\"disks\":[{\"volume\":\"d/root\",\"slot\":0}],"
    "\"nics\":[{\"mac\":\"52:54:00:00:00:01\",\"network\":\"user\",\"slot\":0}]}";

/* The same VM after hot-plugs: a disk in slot 1, a NIC in slot 1, a third
 * vCPU, memory raised to 384 MiB (the daemon keeps the live values in the
 * spec; the boot size stays 256 MiB in QEMU). */
static const char HOTPLUGGED_SPEC[] =
    "{\"id\":\"6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10\",\"name\":\"mig\",\"accel\":\"tcg\","
    "\"kernel\":{\"image\":\"k\"},\"vcpus\":3,\"max_vcpus\":4,\"memory_mib\":384,"
    "\"max_memory_mib\":512,\"disks\":[{\"volume\":\"d/root\",\"slot\":0},"
    "{\"volume\":\"d/data\",\"format\":\"raw\",\"slot\":1}],"
    "\"nics\":[{\"mac\":\"52:54:00:00:00:01\",\"network\":\"user\",\"slot\":0},"
    "{\"mac\":\"52:54:00:00:00:02\",\"network\":\"user\",\"slot\":1}]}";

static const VoQemuCaps caps = { .binary = "qemu-system-x86_64", .kvm_usable = false };
static const VoQemuPaths paths = { .qmp_socket = "/run/x/qmp.sock",
                                   .console_socket = "/run/x/console.sock",
                                   .pidfile = "/run/x/qemu.pid" };

/* What probing the running source would record after the hot-plugs. */
static VoQemuLayout *probed_layout(void)
{
    VoVmSpec *source = test_spec_resolved(SOURCE_SPEC);
    VoQemuLayout *l = vo_qemu_layout_from_spec(source, VO_ACCEL_TCG);
    vo_vm_spec_free(source);
    free(l->machine);
    l->machine = vo_strdup("pc-q35-10.0");
    l->cpu = vo_strdup("qemu64");
    l->vcpu_devices[l->n_vcpu_devices++] = 2; /* room: from_spec allocated vcpus (2) */
    l->virtio_mem_requested = 128 << 20;
    vo_qemu_layout_set_device(l, "rp-disk0", "pcie.0", "0x10.0");
    vo_qemu_layout_set_device(l, "virtio-disk0", "rp-disk0", "0x0.0");
    vo_qemu_layout_set_device(l, "virtio-disk1", "rp-disk1", "0x0.0");
    vo_qemu_layout_set_device(l, "net0", "rp-net0", "0x0.0");
    vo_qemu_layout_set_device(l, "net1", "rp-net1", "0x0.0");
    vo_qemu_layout_set_device(l, "balloon0", "pcie.0", "0x2.0");
    vo_qemu_layout_set_device(l, "virtio-mem0", "pcie.0", "0x3.0");
    return l;
}

static void test_round_trip(void **state)
{
    VoQemuLayout *l = probed_layout();
    json_t *doc = vo_qemu_layout_to_json(l);
    VoQemuLayout *back = NULL;
    char *error = NULL;
    assert_int_equal(vo_qemu_layout_from_json(doc, &back, &error), 0);
    json_t *again = vo_qemu_layout_to_json(back);
    assert_true(json_equal(doc, again));
    assert_string_equal(back->machine, "pc-q35-10.0");
    assert_string_equal(back->cpu, "qemu64");
    assert_int_equal(back->n_vcpu_devices, 2);
    assert_int_equal(back->vcpu_devices[1], 2);
    assert_int_equal(back->boot_memory_mib, 256);
    assert_int_equal(back->max_memory_mib, 512);
    assert_int_equal(back->virtio_mem_requested, 128 << 20);
    assert_int_equal(back->boot_pad_kib, VO_QEMU_TCG_BOOT_PAD_KIB);
    assert_string_equal(vo_qemu_layout_device(back, "net1")->bus, "rp-net1");
    assert_null(vo_qemu_layout_device(back, "net2"));
    /* Text, as a destination receives it, and a copy. */
    char *text = vo_qemu_layout_to_text(l);
    VoQemuLayout *from_text = NULL, *copy = vo_qemu_layout_copy(l);
    assert_int_equal(vo_qemu_layout_from_text(text, &from_text, &error), 0);
    json_t *t = vo_qemu_layout_to_json(from_text), *c = vo_qemu_layout_to_json(copy);
    assert_true(json_equal(doc, t));
    assert_true(json_equal(doc, c));
    json_decref(t);
    json_decref(c);
    free(text);
    json_decref(again);
    json_decref(doc);
    vo_qemu_layout_free(from_text);
    vo_qemu_layout_free(copy);
    vo_qemu_layout_free(back);
    vo_qemu_layout_free(l);
}

static void test_file(void **state)
{
    char dir[] = "/tmp/vireo-test-layout-XXXXXX";
    assert_non_null(mkdtemp(dir));
    VoQemuLayout *l = probed_layout(), *back = NULL;
    char *error = NULL;
    assert_int_equal(vo_qemu_layout_load(dir, &back, &error), -ENOENT);
    free(error);
    error = NULL;
    assert_int_equal(vo_qemu_layout_save(l, dir), 0);
    assert_int_equal(vo_qemu_layout_load(dir, &back, &error), 0);
    json_t *a = vo_qemu_layout_to_json(l), *b = vo_qemu_layout_to_json(back);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    vo_qemu_layout_free(back);
    vo_qemu_layout_free(l);
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, VO_QEMU_LAYOUT_FILE);
    unlink(path);
    rmdir(dir);
}

/* One key of the probed layout's JSON replaced by value (JSON text). */
static int parse_with(const char *key, const char *value, char **ret_error)
{
    VoQemuLayout *l = probed_layout();
    json_t *doc = vo_qemu_layout_to_json(l);
    vo_qemu_layout_free(l);
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    json_t *target = doc;
    const char *dot = strchr(key, '.');
    _cleanup_free_ char *outer = dot ? vo_asprintf("%.*s", (int)(dot - key), key) : NULL;
    if (dot) {
        target = json_object_get(doc, outer);
        key = dot + 1;
    }
    json_object_set_new(target, key, v);
    VoQemuLayout *back = NULL;
    int r = vo_qemu_layout_from_json(doc, &back, ret_error);
    json_decref(doc);
    assert_true(r < 0 || back);
    vo_qemu_layout_free(back);
    return r;
}

static void test_refused(void **state)
{
    static const struct {
        const char *key, *value, *message;
    } cases[] = {
        { "version", "2", "version 2 is not 1" },
        { "surprise", "1", "surprise" },
        { "accel", "\"auto\"", "accel must be kvm or tcg" },
        { "machine", "\"\"", "out of range" },
        { "vcpus.devices", "[2, 1]", "vcpus.devices[1]" },
        { "vcpus.devices", "[4]", "vcpus.devices[0]" },
        { "memory.virtio_mem_requested", "536870912", "out of range" },
        { "memory.boot_pad_kib", "4", "out of range" },
        { "memory.boot_pad_kib", "1024", "out of range" },
        { "memory.boot_pad_kib", "256", "out of range" }, /* QEMU's fast path again */
        { "root_ports", "[{\"driver\":\"virtio-blk-pci\",\"id\":\"x\"}]", "root_ports[0]" },
        { "devices", "[{\"id\":\"a\",\"bus\":\"pcie.0\",\"addr\":\"0x2.0\"},"
                     "{\"id\":\"a\",\"bus\":\"pcie.0\",\"addr\":\"0x3.0\"}]", "listed twice" },
        { "devices", "[{\"id\":\"a\",\"bus\":\"pcie.0\"}]", "devices[0]" },
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        char *error = NULL;
        assert_int_equal(parse_with(cases[i].key, cases[i].value, &error), -EINVAL);
        if (!strstr(error, cases[i].message))
            fail_msg("%s=%s: '%s' lacks '%s'", cases[i].key, cases[i].value, error,
                     cases[i].message);
        free(error);
    }
    VoQemuLayout *l = NULL;
    char *error = NULL;
    assert_int_equal(vo_qemu_layout_from_text("{", &l, &error), -EINVAL);
    free(error);
}

/* The -device (and -object) arguments of an argv, by id. */
static json_t *devices_of(char **argv)
{
    json_t *by_id = json_object();
    for (char **a = argv; *a && a[1]; a++)
        if (!strcmp(*a, "-device") || !strcmp(*a, "-object")) {
            json_t *props = json_loads(a[1], 0, NULL);
            assert_non_null(props);
            json_object_set_new(by_id, json_string_value(json_object_get(props, "id")), props);
        }
    return by_id;
}

static const char *arg_after(char **argv, const char *opt)
{
    for (char **a = argv; *a && a[1]; a++)
        if (!strcmp(*a, opt))
            return a[1];
    return NULL;
}

static void test_destination_after_hotplug(void **state)
{
    VoVmSpec *source = test_spec_resolved(SOURCE_SPEC), *now = test_spec_resolved(HOTPLUGGED_SPEC);
    char *error = NULL;
    /* The source: started from its spec, then the disk, NIC and vCPU 2
     * plugged with the same properties hot-plug uses. */
    char **source_argv = NULL;
    assert_int_equal(vo_qemu_build_argv(source, &caps, &paths, &source_argv, &error), 0);
    json_t *source_devices = devices_of(source_argv);
    json_object_set_new(source_devices, "virtio-disk1", vo_qemu_disk_device_props(now, 1));
    json_object_set_new(source_devices, "net1", vo_qemu_nic_device_props(now, &now->nics[1]));
    json_object_set_new(source_devices, "vcpu2",
                        json_pack("{s:s, s:s, s:i, s:i, s:i}", "driver", "qemu64-x86_64-cpu",
                                  "id", "vcpu2", "socket-id", 0, "core-id", 2, "thread-id", 0));

    VoQemuLayout *layout = probed_layout();
    char **dest_argv = NULL;
    assert_int_equal(vo_qemu_build_argv_layout(now, &caps, &paths, layout, true, &dest_argv,
                                               &error), 0);
    json_t *dest_devices = devices_of(dest_argv);

    /* The same devices; each where the layout says QEMU put it. */
    assert_int_equal(json_object_size(dest_devices), json_object_size(source_devices));
    const char *id;
    json_t *want;
    json_object_foreach(source_devices, id, want) {
        json_t *got = json_object_get(dest_devices, id);
        if (!got)
            fail_msg("the destination lacks %s", id);
        const VoQemuDeviceAddr *at = vo_qemu_layout_device(layout, id);
        const char *key;
        json_t *value;
        json_object_foreach(want, key, value) {
            if (at && (!strcmp(key, "bus") || !strcmp(key, "addr")))
                continue;
            /* The one value a hot-plug changes: what virtio-mem was asked for. */
            if (!strcmp(key, "requested-size"))
                continue;
            if (!json_equal(value, json_object_get(got, key)))
                fail_msg("%s.%s differs from the source's", id, key);
        }
        if (at) {
            assert_string_equal(json_string_value(json_object_get(got, "bus")), at->bus);
            assert_string_equal(json_string_value(json_object_get(got, "addr")), at->addr);
        }
    }
    assert_int_equal(json_integer_value(json_object_get(json_object_get(dest_devices, "virtio-mem0"),
                                                        "requested-size")), 128 << 20);
    /* The ports the source started with: a plain start of the hot-plugged
     * spec would make more (spares above the new slots). */
    json_t *fresh_ports = vo_qemu_root_ports(now);
    assert_true(json_array_size(fresh_ports) != json_array_size(layout->root_ports));
    json_decref(fresh_ports);
    /* Machine version, CPU model, boot sizes; waiting for the stream. */
    assert_string_equal(arg_after(dest_argv, "-machine"), "pc-q35-10.0");
    assert_string_equal(arg_after(dest_argv, "-cpu"), "qemu64");
    assert_string_equal(arg_after(dest_argv, "-m"), "262152k,maxmem=524296k");
    assert_string_equal(arg_after(dest_argv, "-m"), arg_after(source_argv, "-m"));
    assert_string_equal(arg_after(dest_argv, "-smp"), arg_after(source_argv, "-smp"));
    assert_string_equal(arg_after(dest_argv, "-incoming"), "defer");
    assert_null(arg_after(source_argv, "-incoming"));

    json_decref(source_devices);
    json_decref(dest_devices);
    vo_strv_free(source_argv);
    vo_strv_free(dest_argv);
    vo_qemu_layout_free(layout);
    vo_vm_spec_free(source);
    vo_vm_spec_free(now);
}

/* How many arguments of argv after opt contain what. */
static int count_opt(char **argv, const char *opt, const char *what)
{
    int n = 0;
    for (size_t i = 0; argv[i] && argv[i + 1]; i++)
        if (!strcmp(argv[i], opt) && strstr(argv[i + 1], what))
            n++;
    return n;
}

/* A destination has the seed drive its source has, whatever the spec says
 * now: an empty one after `cloud-init set --none` while it ran (the spec
 * has no settings), none when settings came to a VM started without them.
 * The record says so only then (older vireos refuse the key), and refuses
 * another value. */
static void test_seed_drive_as_the_source_has_it(void **state)
{
    VoVmSpec *spec = test_spec_resolved(HOTPLUGGED_SPEC);
    char *error = NULL;
    VoQemuLayout *layout = probed_layout();
    char **argv = NULL;
    /* as the spec says: no settings, no drive; settings, a drive with the seed */
    assert_int_equal(vo_qemu_build_argv_layout(spec, &caps, &paths, layout, true, &argv,
                                               &error), 0);
    assert_int_equal(count_opt(argv, "-drive", "drive-cidata0"), 0);
    vo_strv_free(TAKE_PTR(argv));
    _cleanup_free_ char *plain = vo_qemu_layout_to_text(layout);
    assert_null(strstr(plain, "seed_drive"));

    /* settings dropped while it ran: an empty drive, the spec without settings */
    layout->seed_drive = VO_QEMU_SEED_EMPTY;
    _cleanup_free_ char *text = vo_qemu_layout_to_text(layout);
    assert_non_null(strstr(text, "\"seed_drive\":\"empty\""));
    VoQemuLayout *back = NULL;
    assert_int_equal(vo_qemu_layout_from_text(text, &back, &error), 0);
    assert_int_equal(back->seed_drive, VO_QEMU_SEED_EMPTY);
    assert_int_equal(vo_qemu_build_argv_layout(spec, &caps, &paths, back, true, &argv, &error), 0);
    assert_int_equal(count_opt(argv, "-drive", "if=none,id=drive-cidata0,media=cdrom,readonly=on"),
                     1);
    assert_int_equal(count_opt(argv, "-drive", "cidata.iso"), 0);
    assert_int_equal(count_opt(argv, "-device", "\"id\":\"cidata0\""), 1);
    vo_strv_free(TAKE_PTR(argv));
    vo_qemu_layout_free(back);

    /* settings given to a VM started without them: no drive, though the spec has them */
    spec->cloud_init_path = vo_strdup("/state/vms/x/cidata.iso");
    layout->seed_drive = VO_QEMU_SEED_AS_SPEC;
    assert_int_equal(vo_qemu_build_argv_layout(spec, &caps, &paths, layout, true, &argv,
                                               &error), 0);
    assert_int_equal(count_opt(argv, "-drive", "file=/state/vms/x/cidata.iso"), 1);
    vo_strv_free(TAKE_PTR(argv));
    layout->seed_drive = VO_QEMU_SEED_NONE;
    _cleanup_free_ char *none = vo_qemu_layout_to_text(layout);
    assert_int_equal(vo_qemu_layout_from_text(none, &back, &error), 0);
    assert_int_equal(back->seed_drive, VO_QEMU_SEED_NONE);
    assert_int_equal(vo_qemu_build_argv_layout(spec, &caps, &paths, back, true, &argv, &error), 0);
    assert_int_equal(count_opt(argv, "-drive", "drive-cidata0"), 0);
    assert_int_equal(count_opt(argv, "-device", "cidata0"), 0);
    vo_strv_free(TAKE_PTR(argv));
    vo_qemu_layout_free(back);

    /* another value is refused */
    char *bad = strstr(none, "\"none\"");
    memcpy(bad, "\"nada\"", 6);
    assert_int_equal(vo_qemu_layout_from_text(none, &back, &error), -EINVAL);
    assert_non_null(strstr(error, "seed_drive must be empty or none"));
    free(error);
    vo_qemu_layout_free(layout);
    vo_vm_spec_free(spec);
}

static void test_spec_must_match(void **state)
{
    VoVmSpec *source = test_spec_resolved(SOURCE_SPEC), *now = test_spec_resolved(HOTPLUGGED_SPEC);
    VoQemuLayout *layout = probed_layout();
    char **argv = NULL, *error = NULL;
    /* The layout has disk 1 and NIC 1, the source's spec does not. */
    assert_int_equal(vo_qemu_build_argv_layout(source, &caps, &paths, layout, true, &argv,
                                               &error), -EINVAL);
    assert_non_null(strstr(error, "disk slot 1"));
    assert_null(argv);
    free(error);
    error = NULL;
    /* A layout of a KVM VM on a host without KVM. */
    layout->accel = VO_ACCEL_KVM;
    assert_int_equal(vo_qemu_build_argv_layout(now, &caps, &paths, layout, true, &argv, &error),
                     -ENODEV);
    assert_non_null(strstr(error, "KVM"));
    free(error);
    vo_qemu_layout_free(layout);
    vo_vm_spec_free(source);
    vo_vm_spec_free(now);
}

/* TCG with virtio-mem: the boot memory is 8 KiB more than a multiple of
 * 256 KiB, so QEMU re-arms TCG's dirty tracking of it page by page (its fast
 * path re-arms another RAM block's: lost writes in a migration). Not on KVM,
 * nor without virtio-mem; a layout recorded before the padding (no
 * boot_pad_kib) makes a command line without it, as its source has (its
 * migration is refused before that: test-qemu-migrate.c). */
static void test_tcg_boot_memory_padded(void **state)
{
    static const struct {
        const char *spec;
        VoAccel accel;
        const char *m;
        uint64_t pad_kib;
    } cases[] = {
        { SOURCE_SPEC, VO_ACCEL_TCG, "262152k,maxmem=524296k", VO_QEMU_TCG_BOOT_PAD_KIB },
        { SOURCE_SPEC, VO_ACCEL_KVM, "256,maxmem=512M", 0 },
        { "{\"id\":\"6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10\",\"name\":\"mig\",\"accel\":\"tcg\","
          "\"kernel\":{\"image\":\"k\"},\"vcpus\":1,\"memory_mib\":256}",
          VO_ACCEL_TCG, "256", 0 },
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        VoVmSpec *spec = test_spec_resolved(cases[i].spec);
        VoQemuLayout *l = vo_qemu_layout_from_spec(spec, cases[i].accel);
        assert_int_equal(l->boot_pad_kib, cases[i].pad_kib);
        free(l->machine);
        l->machine = vo_strdup("pc-q35-10.0");
        l->accel = VO_ACCEL_TCG; /* this host has no KVM: built as TCG, sizes as recorded */
        char **argv = NULL, *error = NULL;
        assert_int_equal(vo_qemu_build_argv_layout(spec, &caps, &paths, l, false, &argv, &error),
                         0);
        assert_string_equal(arg_after(argv, "-m"), cases[i].m);
        /* The virtio-mem device's size stays max - boot, without the padding. */
        json_t *devices = devices_of(argv);
        json_t *memdev = json_object_get(devices, VO_QEMU_HOTPLUG_MEMDEV);
        if (memdev)
            assert_int_equal(json_integer_value(json_object_get(memdev, "size")), 256 << 20);
        json_t *doc = vo_qemu_layout_to_json(l);
        assert_int_equal(json_object_get(json_object_get(doc, "memory"), "boot_pad_kib") != NULL,
                         cases[i].pad_kib != 0);
        json_decref(doc);
        json_decref(devices);
        vo_strv_free(argv);
        vo_qemu_layout_free(l);
        vo_vm_spec_free(spec);
    }
    /* An older vireod's record of a TCG source without the padding. */
    VoQemuLayout *l = probed_layout(), *old = NULL;
    json_t *doc = vo_qemu_layout_to_json(l);
    json_object_del(json_object_get(doc, "memory"), "boot_pad_kib");
    char *error = NULL;
    assert_int_equal(vo_qemu_layout_from_json(doc, &old, &error), 0);
    assert_int_equal(old->boot_pad_kib, 0);
    VoVmSpec *now = test_spec_resolved(HOTPLUGGED_SPEC);
    char **argv = NULL;
    assert_int_equal(vo_qemu_build_argv_layout(now, &caps, &paths, old, true, &argv, &error), 0);
    assert_string_equal(arg_after(argv, "-m"), "256,maxmem=512M");
    vo_strv_free(argv);
    vo_vm_spec_free(now);
    json_decref(doc);
    vo_qemu_layout_free(old);
    vo_qemu_layout_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_destination_after_hotplug),
        cmocka_unit_test(test_spec_must_match),
        cmocka_unit_test(test_seed_drive_as_the_source_has_it),
        cmocka_unit_test(test_tcg_boot_memory_padded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
