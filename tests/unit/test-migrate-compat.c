/* test-migrate-compat.c: the checks before a VM moves
 * (cluster/migrate-compat.c): each reason alone, several at once, a VM with
 * CPU model host to an identical and to a different host, a named model's
 * flags, stopped VMs, and unusable input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/migrate-compat.h"
#include "qemu/qemu-caps.h"
#include "util/util.h"

/* A record as hosts.c publishes it: online tcg, 16 GiB, 4 CPUs, ratios
 * 1.0 / 4.0, nothing committed, QEMU 10.0's machine types. */
static json_t *record(const char *id, const char *name)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s,s,s,s], s:[s], s:I, s:I, s:f, s:f, s:I, "
                     "s:I, s:f, s:[s,s,s,s], s:s, s:I}",
                     "id", id, "name", name, "state", "online", "accel", "tcg", "cpu_model",
                     "AMD EPYC 7B13", "cpu_flags", "aes", "avx", "avx2", "sse4_2", "pools",
                     "default", "memory_mib", (json_int_t)16384, "cpus", (json_int_t)4,
                     "mem_ratio", 1.0, "cpu_ratio", 4.0, "committed_memory_mib", (json_int_t)0,
                     "committed_vcpus", (json_int_t)0, "load", 0.0, "machines", "pc",
                     "pc-i440fx-10.0", "pc-q35-10.0", "q35", "version", "0.1", "vms",
                     (json_int_t)0);
}

static VoNicSpec nics[] = {
    { .mac = "52:54:00:00:00:01", .network = "lan", .slot = 0 },
    { .mac = "52:54:00:00:00:02", .network = "user", .slot = 1 },
    { .mac = "52:54:00:00:00:03", .network = "lan", .slot = 2 },
};

static VoVmSpec vm_spec(void)
{
    return (VoVmSpec){ .id = "vm-1", .name = "web", .vcpus = 2, .memory_mib = 2048,
                       .max_vcpus = 2, .max_memory_mib = 2048, .accel = VO_ACCEL_AUTO,
                       .machine = "q35", .nics = nics, .n_nics = 3 };
}

#define LAYOUT_TCG "{\"machine\":\"pc-q35-10.0\",\"accel\":\"tcg\"}"
static const char *const nets[] = { "lan", "dmz", NULL };

typedef struct {
    json_t *src, *dst;
    VoVmSpec spec;
    VoMigrateCompat c;
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    f->src = record("id-a", "a");
    f->dst = record("id-b", "b");
    f->spec = vm_spec();
    f->c = (VoMigrateCompat){ .source_record = f->src, .target_record = f->dst,
                              .spec = &f->spec, .layout = LAYOUT_TCG, .target_networks = nets };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    json_decref(f->src);
    json_decref(f->dst);
    free(f);
    return 0;
}

/* -EXDEV with reasons that contain want (NULL: the check passes). Returns
 * the reasons for more checks (the caller frees). */
static char *check(const VoMigrateCompat *c, const char *want)
{
    char *reasons = NULL;
    int r = vo_migrate_compat_check(c, &reasons);
    if (!want) {
        if (r != 0)
            fail_msg("expected no reason, got: %s", reasons ? reasons : "?");
        assert_null(reasons);
        return NULL;
    }
    assert_int_equal(r, -EXDEV);
    assert_non_null(reasons);
    if (!strstr(reasons, want))
        fail_msg("'%s' not in: %s", want, reasons);
    return reasons;
}

static size_t count_reasons(const char *s)
{
    size_t n = 1;
    for (const char *p = s; (p = strstr(p, "; ")); p += 2)
        n++;
    return n;
}

static void test_fits(void **state)
{
    Fixture *f = *state;
    check(&f->c, NULL);
    f->c.layout = NULL; /* stopped: the spec's machine alias */
    check(&f->c, NULL);
}

static void set_str(json_t *o, const char *key, const char *value)
{
    json_object_set_new(o, key, json_string(value));
}

static void test_state(void **state)
{
    Fixture *f = *state;
    f->c.target_record = NULL;
    free(check(&f->c, "the target host is offline"));
    f->c.target_record = f->dst;
    set_str(f->dst, "state", "maintenance");
    char *r = check(&f->c, "host b is in maintenance");
    assert_int_equal(count_reasons(r), 1);
    free(r);
    set_str(f->dst, "state", "fenced");
    free(check(&f->c, "host b is fenced"));
    set_str(f->dst, "state", "online");
    f->c.target_record = f->src;
    r = check(&f->c, "host a is the VM's own host (the source)");
    assert_int_equal(count_reasons(r), 1);
    free(r);
}

static void test_accel(void **state)
{
    Fixture *f = *state;
    f->c.layout = "{\"machine\":\"pc-q35-10.0\",\"accel\":\"kvm\"}";
    char *r = check(&f->c, "accelerator: the VM runs with kvm, host b has tcg");
    assert_int_equal(count_reasons(r), 1);
    free(r);
    /* A layout without "accel" (the fake driver's): the source's counts. */
    f->c.layout = "{\"driver\":\"fake\"}";
    set_str(f->src, "accel", "kvm");
    free(check(&f->c, "the VM runs with kvm, host b has tcg"));
    set_str(f->dst, "accel", "kvm");
    check(&f->c, NULL);
    /* Stopped: only a VM that asks for kvm needs it. */
    f->c.layout = NULL;
    set_str(f->dst, "accel", "tcg");
    check(&f->c, NULL);
    f->spec.accel = VO_ACCEL_KVM;
    free(check(&f->c, "accelerator: the VM needs kvm, host b has tcg"));
}

static void test_cpu_host_identical(void **state)
{
    Fixture *f = *state;
    set_str(f->src, "accel", "kvm");
    set_str(f->dst, "accel", "kvm");
    f->c.layout = "{\"machine\":\"pc-q35-10.0\",\"accel\":\"kvm\",\"cpu\":\"host\"}";
    check(&f->c, NULL);
}

static void test_cpu_host_different(void **state)
{
    Fixture *f = *state;
    set_str(f->src, "accel", "kvm");
    set_str(f->dst, "accel", "kvm");
    set_str(f->dst, "cpu_model", "Intel Xeon Gold 6338");
    json_object_set_new(f->dst, "cpu_flags", json_pack("[s,s,s]", "aes", "avx512f", "sse4_2"));
    f->c.layout = "{\"machine\":\"pc-q35-10.0\",\"accel\":\"kvm\",\"cpu\":\"host\"}";
    char *r = check(&f->c, "CPU: host b's CPU model is 'Intel Xeon Gold 6338', the VM (cpu "
                           "host) needs 'AMD EPYC 7B13'");
    assert_non_null(strstr(r, "host b lacks CPU flags avx,avx2"));
    assert_non_null(strstr(r, "host b has CPU flags the VM (cpu host) lacks: avx512f"));
    assert_int_equal(count_reasons(r), 3);
    free(r);
    /* Same model, one flag more on the target: still not identical. */
    set_str(f->dst, "cpu_model", "AMD EPYC 7B13");
    json_object_set_new(f->dst, "cpu_flags",
                        json_pack("[s,s,s,s,s]", "aes", "avx", "avx2", "sse4_2", "vaes"));
    r = check(&f->c, "has CPU flags the VM (cpu host) lacks: vaes");
    assert_int_equal(count_reasons(r), 1);
    free(r);
}

static void test_cpu_flags_few(void **state)
{
    Fixture *f = *state;
    set_str(f->src, "accel", "kvm");
    set_str(f->dst, "accel", "kvm");
    json_t *many = json_array();
    for (int i = 0; i < 20; i++)
        json_array_append_new(many, json_sprintf("f%02d", i));
    json_object_set_new(f->src, "cpu_flags", many);
    json_object_set_new(f->dst, "cpu_flags", json_array());
    f->c.layout = "{\"machine\":\"pc-q35-10.0\",\"accel\":\"kvm\",\"cpu\":\"host\"}";
    char *r = check(&f->c, "lacks CPU flags f00,f01,f02,f03,f04,f05,f06,f07 and 12 more");
    free(r);
}

static void test_cpu_named(void **state)
{
    Fixture *f = *state;
    f->c.layout = "{\"machine\":\"pc-q35-10.0\",\"accel\":\"tcg\",\"cpu\":\"EPYC\","
                  "\"cpu_flags\":[\"avx\",\"sha_ni\",\"aes\",\"vaes\"]}";
    char *r = check(&f->c, "CPU model EPYC: host b lacks CPU flags sha_ni,vaes");
    assert_int_equal(count_reasons(r), 1);
    free(r);
    f->c.layout = "{\"machine\":\"pc-q35-10.0\",\"accel\":\"tcg\",\"cpu\":\"EPYC\","
                  "\"cpu_flags\":[\"avx\",\"aes\"]}";
    check(&f->c, NULL);
}

/* TCG with memory hot-plug: a layout without the boot-memory padding (an
 * older vireod's QEMU) cannot move; padded, KVM or without hot-plug it can. */
static void test_tcg_boot_padding(void **state)
{
    Fixture *f = *state;
    f->c.layout = "{\"machine\":\"pc-q35-10.0\",\"accel\":\"tcg\","
                  "\"memory\":{\"boot_mib\":256,\"max_mib\":512}}";
    char *r = check(&f->c, "without TCG's boot-memory padding");
    assert_int_equal(count_reasons(r), 1);
    free(r);
    f->c.layout = "{\"machine\":\"pc-q35-10.0\",\"accel\":\"tcg\","
                  "\"memory\":{\"boot_mib\":256,\"max_mib\":512,\"boot_pad_kib\":8}}";
    check(&f->c, NULL);
    f->c.layout = "{\"machine\":\"pc-q35-10.0\",\"accel\":\"tcg\","
                  "\"memory\":{\"boot_mib\":256,\"max_mib\":256}}";
    check(&f->c, NULL);
    set_str(f->dst, "accel", "kvm");
    f->c.layout = "{\"machine\":\"pc-q35-10.0\",\"accel\":\"kvm\","
                  "\"memory\":{\"boot_mib\":256,\"max_mib\":512}}";
    check(&f->c, NULL);
}

static void test_machine(void **state)
{
    Fixture *f = *state;
    f->c.layout = "{\"machine\":\"pc-q35-10.1\",\"accel\":\"tcg\"}";
    char *r = check(&f->c, "machine type pc-q35-10.1 is not available on host b (it has: pc, "
                           "pc-i440fx-10.0, pc-q35-10.0, q35)");
    assert_int_equal(count_reasons(r), 1);
    free(r);
    json_object_del(f->dst, "machines");
    free(check(&f->c, "machine type pc-q35-10.1: host b does not say which machine types"));
}

/* A UEFI VM only to a host with OVMF (its record's "firmware"); secure
 * boot needs OVMF's secure-boot build; a BIOS VM goes anywhere. */
static void test_firmware(void **state)
{
    Fixture *f = *state;
    f->spec.firmware = VO_FIRMWARE_UEFI;
    _cleanup_free_ char *older = check(&f->c, "firmware: the VM boots UEFI, and host b does "
                                              "not say which firmware it has (its vireod is "
                                              "older)");
    assert_int_equal(count_reasons(older), 1);
    json_object_set_new(f->dst, "firmware", json_pack("[s]", "bios"));
    _cleanup_free_ char *none = check(&f->c, "firmware: the VM boots UEFI, and host b has no "
                                             "OVMF (install the ovmf package there)");
    assert_int_equal(count_reasons(none), 1);
    f->c.layout = NULL; /* stopped (vm move): the same rule */
    _cleanup_free_ char *cold = check(&f->c, "has no OVMF");
    json_object_set_new(f->dst, "firmware", json_pack("[s,s]", "bios", "uefi"));
    check(&f->c, NULL);
    f->spec.secure_boot = true;
    free(check(&f->c, "firmware: the VM boots UEFI with secure boot, and host b has no OVMF "
                      "with secure boot"));
    json_object_set_new(f->dst, "firmware", json_pack("[s,s,s]", "bios", "uefi",
                                                      "uefi-secure-boot"));
    check(&f->c, NULL);
    /* BIOS: the record's firmware is not asked. */
    f->spec.firmware = VO_FIRMWARE_BIOS;
    f->spec.secure_boot = false;
    json_object_set_new(f->dst, "firmware", json_array());
    check(&f->c, NULL);
}

static void test_networks(void **state)
{
    Fixture *f = *state;
    static const char *const only_dmz[] = { "dmz", NULL };
    f->c.target_networks = only_dmz;
    char *r = check(&f->c, "network lan (NIC 0) does not exist on host b");
    assert_int_equal(count_reasons(r), 1); /* lan named once, user needs nothing */
    free(r);
    f->c.target_networks = NULL;
    free(check(&f->c, "network lan (NIC 0)"));
}

/* A target's network of another project is refused, named once; one of
 * the VM's project or of none is fine. */
static void test_network_projects(void **state)
{
    Fixture *f = *state;
    static const char *const both[] = { "dmz", "lan", NULL };
    static const char *const of_q[] = { "", "q", NULL };
    static const char *const of_p[] = { "q", "p", NULL };
    static const char *const of_none[] = { "q", "", NULL };
    f->c.target_networks = both;
    f->c.target_network_projects = of_q;
    f->spec.project = "p";
    char *r = check(&f->c, "network lan (NIC 0) on host b belongs to project 'q' and the VM to "
                           "project 'p'");
    assert_int_equal(count_reasons(r), 1);
    free(r);
    f->c.target_network_projects = of_p;
    check(&f->c, NULL);
    f->c.target_network_projects = of_none;
    check(&f->c, NULL);
    /* A VM of no project is of "default". */
    f->spec.project = NULL;
    f->c.target_network_projects = of_q;
    free(check(&f->c, "belongs to project 'q' and the VM to project 'default'"));
}

static void test_room(void **state)
{
    Fixture *f = *state;
    json_object_set_new(f->dst, "committed_memory_mib", json_integer(15000));
    char *r = check(&f->c, "memory: host b needs 2048 MiB, 1384 MiB free (ratio 1.0)");
    assert_int_equal(count_reasons(r), 1);
    free(r);
    /* The target's overcommit ratio counts. */
    json_object_set_new(f->dst, "mem_ratio", json_real(1.5));
    check(&f->c, NULL);
    json_object_set_new(f->dst, "committed_vcpus", json_integer(15));
    free(check(&f->c, "vCPUs: host b needs 2 vCPUs, 1 free (ratio 4.0)"));
}

static void test_several(void **state)
{
    Fixture *f = *state;
    set_str(f->dst, "state", "maintenance");
    f->c.layout = "{\"machine\":\"pc-q35-11.0\",\"accel\":\"kvm\"}";
    f->c.target_networks = NULL;
    json_object_set_new(f->dst, "committed_memory_mib", json_integer(16000));
    json_object_set_new(f->dst, "committed_vcpus", json_integer(16));
    char *r = check(&f->c, "host b is in maintenance; accelerator: the VM runs with kvm, host b "
                           "has tcg; machine type pc-q35-11.0 is not available on host b");
    assert_non_null(strstr(r, "; network lan (NIC 0) does not exist on host b; memory: host b "
                              "needs 2048 MiB, 384 MiB free (ratio 1.0); vCPUs: host b needs 2 "
                              "vCPUs, 0 free (ratio 4.0)"));
    assert_int_equal(count_reasons(r), 6);
    free(r);
}

static void test_bad_input(void **state)
{
    Fixture *f = *state;
    char *r = NULL;
    f->c.layout = "not json";
    assert_int_equal(vo_migrate_compat_check(&f->c, &r), -EINVAL);
    assert_non_null(strstr(r, "layout is not a JSON object"));
    free(r);
    r = NULL;
    f->c.layout = LAYOUT_TCG;
    f->c.spec = NULL;
    assert_int_equal(vo_migrate_compat_check(&f->c, &r), -EINVAL);
    free(r);
    f->c.spec = &f->spec;
    /* A target record that does not parse is a reason, not a crash. */
    json_object_set_new(f->dst, "memory_mib", json_string("lots"));
    free(check(&f->c, "host b: its record cannot be read"));
}

/* What a host publishes as its "machines": QEMU's list, aliases included. */
static void test_machines_parse(void **state)
{
    (void)state;
    const char *help = "Supported machines are:\n"
                       "microvm              microvm (i386)\n"
                       "pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-10.0)\n"
                       "pc-i440fx-10.0       Standard PC (i440FX + PIIX, 1996) (default)\n"
                       "q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-10.0)\n"
                       "pc-q35-10.0          Standard PC (Q35 + ICH9, 2009)\n"
                       "none                 empty machine\n";
    char **m = vo_qemu_machines_parse(help);
    const char *want[] = { "microvm", "none", "pc", "pc-i440fx-10.0", "pc-q35-10.0", "q35" };
    assert_int_equal(vo_strv_len(m), ELEMENTSOF(want));
    for (size_t i = 0; i < ELEMENTSOF(want); i++)
        assert_string_equal(m[i], want[i]);
    vo_strv_free(m);
    m = vo_qemu_machines_parse("");
    assert_non_null(m);
    assert_null(m[0]);
    vo_strv_free(m);
}

/* What a host publishes as its "qemu_version": the number of --version's
 * first line, without the distribution's suffix. */
static void test_version_parse(void **state)
{
    (void)state;
    char *v = vo_qemu_version_parse("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-1)\n"
                                    "Copyright (c) 2003-2025 Fabrice Bellard and the QEMU "
                                    "Project developers\n");
    assert_string_equal(v, "10.0.2");
    free(v);
    v = vo_qemu_version_parse("QEMU emulator version 9.2.92\n"); /* a release candidate */
    assert_string_equal(v, "9.2.92");
    free(v);
    assert_null(vo_qemu_version_parse(""));
    assert_null(vo_qemu_version_parse(NULL));
    assert_null(vo_qemu_version_parse("qemu-system-x86_64: unknown option\n"));
    assert_null(vo_qemu_version_parse("QEMU emulator version (unknown)\n"));
    assert_null(vo_qemu_version_parse("QEMU emulator version 10.\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_firmware, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpu_host_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpu_host_different, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpu_flags_few, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpu_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcg_boot_padding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_networks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_network_projects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test(test_machines_parse),
        cmocka_unit_test(test_version_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
