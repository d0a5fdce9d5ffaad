/* test-qemu-devices.c: the JSON builders shared by the QEMU command line and
 * hot-plug: names from slots, devices on their root ports (q35) or not (pc),
 * and the root port layout (unique ids, addresses and chassis numbers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "qemu/qemu-devices.h"
#include "util/util.h"

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static VoVmSpec *spec_of(const char *machine, const char *kernel)
{
    VoVmSpec *s = vo_malloc0(sizeof(*s));
    s->machine = vo_strdup(machine);
    s->kernel = kernel ? vo_strdup(kernel) : NULL;
    s->n_disks = 2;
    s->disks = vo_malloc0(sizeof(VoDiskSpec) * 2);
    s->disks[0] = (VoDiskSpec){ .path = vo_strdup("/d/a.qcow2"), .slot = 0 };
    s->disks[1] = (VoDiskSpec){ .path = vo_strdup("/d/b.raw"), .format = VO_DISK_RAW,
                                .slot = 7, .shareable = true };
    s->n_nics = 1;
    s->nics = vo_malloc0(sizeof(VoNicSpec));
    s->nics[0] = (VoNicSpec){ .mac = vo_strdup("52:54:00:00:00:01"), .network = vo_strdup("x"),
                              .slot = 2 };
    return s;
}

static void test_names(void **state)
{
    VoQemuDiskNames d;
    vo_qemu_disk_names(12, &d);
    assert_string_equal(d.file_node, "file-disk12");
    assert_string_equal(d.format_node, "disk12");
    assert_string_equal(d.device, "virtio-disk12");
    assert_string_equal(d.port, "rp-disk12");
    VoQemuNicNames n;
    vo_qemu_nic_names(3, &n);
    assert_string_equal(n.netdev, "hostnet3");
    assert_string_equal(n.device, "net3");
    assert_string_equal(n.port, "rp-net3");
}

static void test_disk_props(void **state)
{
    _cleanup_vm_spec_ VoVmSpec *q35 = spec_of("q35", NULL);
    json_t *file = vo_qemu_disk_file_props(&q35->disks[1]);
    assert_string_equal(str(file, "node-name"), "file-disk7");
    assert_string_equal(str(file, "filename"), "/d/b.raw");
    assert_string_equal(str(file, "locking"), "off"); /* shareable */
    json_decref(file);
    json_t *fmt = vo_qemu_disk_format_props(&q35->disks[1]);
    assert_string_equal(str(fmt, "driver"), "raw");
    assert_string_equal(str(fmt, "node-name"), "disk7");
    assert_string_equal(str(fmt, "file"), "file-disk7");
    json_decref(fmt);
    json_t *dev = vo_qemu_disk_device_props(q35, 1);
    assert_string_equal(str(dev, "id"), "virtio-disk7");
    assert_string_equal(str(dev, "drive"), "disk7");
    assert_string_equal(str(dev, "bus"), "rp-disk7");
    assert_int_equal(json_integer_value(json_object_get(dev, "bootindex")), 2); /* firmware boot */
    json_decref(dev);

    _cleanup_vm_spec_ VoVmSpec *pc = spec_of("pc", "/k/vmlinux");
    dev = vo_qemu_disk_device_props(pc, 0);
    assert_null(json_object_get(dev, "bus"));       /* pci.0, ACPI hot-plug */
    assert_null(json_object_get(dev, "bootindex")); /* direct kernel boot */
    json_decref(dev);
}

static void test_nic_props(void **state)
{
    _cleanup_vm_spec_ VoVmSpec *q35 = spec_of("q35", "/k/vmlinux");
    json_t *tap = vo_qemu_nic_netdev_props(&q35->nics[0], "tap-net2");
    assert_string_equal(str(tap, "type"), "tap");
    assert_string_equal(str(tap, "id"), "hostnet2");
    assert_string_equal(str(tap, "fd"), "tap-net2");
    assert_true(json_is_false(json_object_get(tap, "vhost")));
    json_decref(tap);
    json_t *user = vo_qemu_nic_netdev_props(&q35->nics[0], NULL);
    assert_string_equal(str(user, "type"), "user");
    assert_null(json_object_get(user, "fd"));
    json_decref(user);
    json_t *dev = vo_qemu_nic_device_props(q35, &q35->nics[0]);
    assert_string_equal(str(dev, "id"), "net2");
    assert_string_equal(str(dev, "netdev"), "hostnet2");
    assert_string_equal(str(dev, "mac"), "52:54:00:00:00:01");
    assert_string_equal(str(dev, "bus"), "rp-net2");
    json_decref(dev);
}

/* Every port once, addresses and chassis numbers unique, function 0 of each
 * pcie.0 slot multifunction, no IO window. */
static void check_ports(json_t *ports, size_t want)
{
    assert_int_equal(json_array_size(ports), want);
    for (size_t i = 0; i < want; i++) {
        json_t *p = json_array_get(ports, i);
        assert_string_equal(str(p, "driver"), "pcie-root-port");
        assert_string_equal(str(p, "bus"), "pcie.0");
        assert_int_equal(json_integer_value(json_object_get(p, "io-reserve")), 0);
        const char *addr = str(p, "addr");
        assert_int_equal(json_is_true(json_object_get(p, "multifunction")),
                         strstr(addr, ".0") != NULL);
        for (size_t j = 0; j < i; j++) {
            json_t *o = json_array_get(ports, j);
            assert_string_not_equal(str(o, "id"), str(p, "id"));
            assert_string_not_equal(str(o, "addr"), addr);
            assert_int_not_equal(json_integer_value(json_object_get(o, "chassis")),
                                 json_integer_value(json_object_get(p, "chassis")));
        }
    }
}

static void test_root_ports(void **state)
{
    _cleanup_vm_spec_ VoVmSpec *q35 = spec_of("q35", NULL);
    json_t *ports = vo_qemu_root_ports(q35);
    /* Disk slots 0 and 7 in use: ports 0..7 plus 3 spare; NIC slot 2: 0..2 plus 2. */
    check_ports(ports, 11 + 5);
    assert_string_equal(str(json_array_get(ports, 0), "id"), "rp-disk0");
    assert_string_equal(str(json_array_get(ports, 10), "id"), "rp-disk10");
    assert_string_equal(str(json_array_get(ports, 11), "id"), "rp-net0");
    assert_string_equal(str(json_array_get(ports, 15), "id"), "rp-net4");
    json_decref(ports);

    /* Spares never go beyond the most disks a VM can have. */
    q35->disks[1].slot = 14;
    ports = vo_qemu_root_ports(q35);
    check_ports(ports, VO_VM_MAX_DISKS + 5);
    json_decref(ports);

    /* A slot above the usual range gets its port too. */
    q35->disks[1].slot = 20;
    ports = vo_qemu_root_ports(q35);
    check_ports(ports, 21 + 5);
    assert_string_equal(str(json_array_get(ports, 20), "id"), "rp-disk20");
    json_decref(ports);

    _cleanup_vm_spec_ VoVmSpec *pc = spec_of("pc", NULL);
    ports = vo_qemu_root_ports(pc);
    assert_int_equal(json_array_size(ports), 0);
    json_decref(ports);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_disk_props),
        cmocka_unit_test(test_nic_props),
        cmocka_unit_test(test_root_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
