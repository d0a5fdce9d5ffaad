/* test-vm-import.c: the import parsers: OVF descriptors (units, disks and
 * their files, NICs, firmware, refusals of paths and absurd sizes), libvirt
 * domain XML (mapping and the warnings of what is not mapped), the OVA
 * manifest, and the OVA tar reader (digests; refusal of paths, links,
 * truncation). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/vm-import.h"
#include "storage/ova.h"
#include "util/util.h"

#define ENV_OPEN "<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" " \
                 "xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" "        \
                 "xmlns:rasd=\"urn:rasd\" xmlns:vmw=\"http://www.vmware.com/schema/ovf\">"
#define REFS "<References><File ovf:id=\"f1\" ovf:href=\"disk1.vmdk\"/></References>" \
             "<DiskSection><Disk ovf:diskId=\"d1\" ovf:fileRef=\"f1\" ovf:capacity=\"2\" "  \
             "ovf:capacityAllocationUnits=\"byte * 2^30\" ovf:format=\"http://www.vmware.com/" \
             "interfaces/specifications/vmdk.html#streamOptimized\"/></DiskSection>"
#define ITEM(type, extra) "<Item><rasd:ResourceType>" #type "</rasd:ResourceType>" extra "</Item>"
#define DISK_ITEM ITEM(17, "<rasd:HostResource>ovf:/disk/d1</rasd:HostResource>")
#define MEM_ITEM(q, u) ITEM(4, "<rasd:AllocationUnits>" u "</rasd:AllocationUnits>" \
                              "<rasd:VirtualQuantity>" q "</rasd:VirtualQuantity>")
#define VS(hw) "<VirtualSystem ovf:id=\"web\"><Name>web</Name><VirtualHardwareSection>" hw \
               "</VirtualHardwareSection></VirtualSystem></Envelope>"

static VoImportPlan *ovf_ok(const char *xml)
{
    VoImportPlan *p = NULL;
    _cleanup_free_ char *err = NULL;
    int r = vo_ovf_parse(xml, strlen(xml), &p, &err);
    if (r < 0)
        fail_msg("refused: %s", err);
    return p;
}

static void ovf_refused(const char *xml, const char *fragment)
{
    VoImportPlan *p = NULL;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_ovf_parse(xml, strlen(xml), &p, &err), -EINVAL);
    assert_null(p);
    assert_non_null(err);
    if (!strstr(err, fragment))
        fail_msg("'%s' does not say '%s'", err, fragment);
}

static void test_ovf_maps(void **state)
{
    VoImportPlan *p = ovf_ok(ENV_OPEN REFS VS(
        ITEM(3, "<rasd:VirtualQuantity>4</rasd:VirtualQuantity>")
        MEM_ITEM("2", "byte * 2^30") DISK_ITEM
        ITEM(15, "") /* an empty CD-ROM */
        ITEM(10, "<rasd:Connection>VM Network</rasd:Connection>")
        ITEM(24, "") ITEM(35, "<rasd:ElementName>Sound</rasd:ElementName>")
        "<vmw:Config vmw:key=\"firmware\" vmw:value=\"efi\"/>"));
    assert_string_equal(p->name, "web");
    assert_int_equal(p->vcpus, 4);
    assert_int_equal(p->memory_mib, 2048);
    assert_int_equal(p->n_disks, 1);
    assert_string_equal(p->disks[0].file, "disk1.vmdk");
    assert_string_equal(p->disks[0].format, "vmdk");
    assert_int_equal(p->disks[0].capacity_bytes, 2ULL << 30);
    assert_true(p->has_cdrom && p->uefi && p->display);
    assert_int_equal(p->n_nics, 1);
    assert_string_equal(p->nics[0].network, "VM Network");
    assert_int_equal(vo_strv_len(p->warnings), 1);
    assert_non_null(strstr(p->warnings[0], "'Sound' (resource type 35)"));
    vo_import_plan_free(p);

    /* memory in MB by default, "MegaBytes" too; no CPU item: 1 */
    p = ovf_ok(ENV_OPEN REFS VS(ITEM(4, "<rasd:VirtualQuantity>512</rasd:VirtualQuantity>")
                                    DISK_ITEM));
    assert_int_equal(p->memory_mib, 512);
    assert_int_equal(p->vcpus, 1);
    vo_import_plan_free(p);
    p = ovf_ok(ENV_OPEN REFS VS(MEM_ITEM("256", "MegaBytes") DISK_ITEM));
    assert_int_equal(p->memory_mib, 256);
    vo_import_plan_free(p);

    /* a CD-ROM naming a File of References (its ISO) directly */
    p = ovf_ok(ENV_OPEN "<References><File ovf:id=\"f1\" ovf:href=\"disk1.vmdk\"/>"
               "<File ovf:id=\"iso\" ovf:href=\"tools.iso\"/></References>"
               "<DiskSection><Disk ovf:diskId=\"d1\" ovf:fileRef=\"f1\" ovf:capacity=\"1\"/>"
               "</DiskSection>" VS(MEM_ITEM("64", "MegaBytes") DISK_ITEM
                                   ITEM(15, "<rasd:HostResource>ovf:/file/iso</rasd:HostResource>")));
    assert_int_equal(p->n_disks, 2);
    assert_string_equal(p->disks[1].file, "tools.iso");
    assert_true(p->disks[1].cdrom && p->disks[1].readonly && !p->disks[1].format);
    vo_import_plan_free(p);
}

static void test_ovf_refusals(void **state)
{
    ovf_refused("<Envelope", "not well-formed XML");
    ovf_refused("<Other/>", "not Envelope");
    ovf_refused(ENV_OPEN "</Envelope>", "no VirtualSystem");
    ovf_refused(ENV_OPEN REFS VS(MEM_ITEM("1", "byte * 2^50") DISK_ITEM), "4 TiB");
    ovf_refused(ENV_OPEN REFS VS(MEM_ITEM("99999999999999999999999", "byte") DISK_ITEM),
                "memory");
    ovf_refused(ENV_OPEN REFS VS(MEM_ITEM("1", "furlongs") DISK_ITEM), "memory");
    ovf_refused(ENV_OPEN REFS VS(MEM_ITEM("512", "byte * 2^20")
                                     ITEM(3, "<rasd:VirtualQuantity>100000</rasd:VirtualQuantity>")
                                         DISK_ITEM), "vCPUs");
    ovf_refused(ENV_OPEN REFS VS(MEM_ITEM("512", "byte * 2^20")), "no disk");
    ovf_refused(ENV_OPEN REFS VS(DISK_ITEM), "no memory");
    ovf_refused(ENV_OPEN "<References><File ovf:id=\"f1\" ovf:href=\"../etc/passwd\"/>"
                "</References>" VS(MEM_ITEM("1", "byte * 2^20")), "not a plain file name");
    ovf_refused(ENV_OPEN "<References><File ovf:id=\"f1\" ovf:href=\"http://x/y.vmdk\"/>"
                "</References>" VS(MEM_ITEM("1", "byte * 2^20")), "not a plain file name");
    ovf_refused(ENV_OPEN "<DiskSection><Disk ovf:diskId=\"d1\" ovf:fileRef=\"nope\" "
                "ovf:capacity=\"1\"/></DiskSection>" VS(MEM_ITEM("1", "byte * 2^20")),
                "References does not list");
    ovf_refused(ENV_OPEN REFS VS(MEM_ITEM("64", "byte * 2^20")
                                     ITEM(17, "<rasd:HostResource>ovf:/disk/d9</rasd:HostResource>")),
                "DiskSection does not list");
    ovf_refused(ENV_OPEN REFS VS(MEM_ITEM("64", "byte * 2^20") DISK_ITEM
                                     ITEM(15, "<rasd:HostResource>ovf:/file/f9</rasd:HostResource>")),
                "References does not list");
    ovf_refused(ENV_OPEN "<References><File ovf:id=\"f1\" ovf:href=\"a.vmdk\"/></References>"
                "<DiskSection><Disk ovf:diskId=\"d1\" ovf:fileRef=\"f1\" ovf:capacity=\"1\" "
                "ovf:capacityAllocationUnits=\"byte * 2^60\"/></DiskSection>"
                VS(MEM_ITEM("1", "byte * 2^20")), "64 TiB");
    /* an entity is not expanded, an external one never loaded */
    ovf_refused("<!DOCTYPE Envelope [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
                ENV_OPEN REFS "<VirtualSystem><Name>&x;</Name><VirtualHardwareSection>"
                MEM_ITEM("64", "byte * 2^20") DISK_ITEM
                "</VirtualHardwareSection></VirtualSystem></Envelope>", "names no VM");
}

#define DOMAIN(os, devices) "<domain type='kvm'><name>lv</name>" \
    "<memory unit='MiB'>256</memory><vcpu>2</vcpu>" os "<devices>" devices "</devices>" \
    "<cpu mode='host-passthrough'/></domain>"
#define FILE_DISK "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>" \
                  "<source file='/var/lib/libvirt/images/lv.qcow2'/><target dev='vda'/></disk>"

static void test_libvirt_maps(void **state)
{
    const char *xml = DOMAIN(
        "<os firmware='efi'><type arch='x86_64' machine='pc-q35-8.2'>hvm</type>"
        "<loader readonly='yes' type='pflash' secure='yes'>/usr/share/OVMF/OVMF_CODE.fd</loader>"
        "<nvram>/var/lib/libvirt/qemu/nvram/lv_VARS.fd</nvram><kernel>/boot/vmlinuz</kernel></os>",
        FILE_DISK
        "<disk type='file' device='cdrom'><source file='/isos/d.iso'/><readonly/></disk>"
        "<disk type='block' device='disk'><source dev='/dev/sdb'/><target dev='vdb'/></disk>"
        "<interface type='network'><mac address='52:54:00:01:02:03'/><source network='default'/>"
        "<model type='e1000'/></interface>"
        "<interface type='bridge'><source bridge='br0'/></interface>"
        "<interface type='direct'><source dev='eth0'/></interface>"
        "<graphics type='spice'/><serial type='pty'/><sound model='ich9'/>");
    VoImportPlan *p = NULL;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_libvirt_xml_parse(xml, strlen(xml), &p, &err), 0);
    assert_string_equal(p->name, "lv");
    assert_int_equal(p->vcpus, 2);
    assert_int_equal(p->memory_mib, 256);
    assert_string_equal(p->machine, "pc-q35-8.2");
    assert_true(p->uefi && p->display);
    assert_int_equal(p->n_disks, 2);
    assert_string_equal(p->disks[0].file, "/var/lib/libvirt/images/lv.qcow2");
    assert_string_equal(p->disks[0].format, "qcow2");
    assert_true(p->disks[1].cdrom && p->disks[1].readonly);
    assert_int_equal(p->n_nics, 3);
    assert_string_equal(p->nics[0].network, "default");
    assert_string_equal(p->nics[1].network, "br0");
    assert_null(p->nics[2].network);
    _cleanup_free_ char *all = NULL;
    for (char **w = p->warnings; w && *w; w++) {
        char *joined = vo_asprintf("%s|%s", all ? all : "", *w);
        free(all);
        all = joined;
    }
    const char *expected[] = { "NVRAM", "secure boot", "--kernel-image", "type 'block'",
                               "type 'direct'", "model 'e1000'", "<sound>", "<cpu>" };
    for (size_t i = 0; i < ELEMENTSOF(expected); i++)
        if (!strstr(all, expected[i]))
            fail_msg("no warning about '%s' in %s", expected[i], all);
    assert_null(strstr(all, "serial"));
    vo_import_plan_free(p);

    /* warnings are bounded: 64, then one saying more were left out */
    _cleanup_free_ char *many = vo_strdup("<domain><name>m</name><memory>65536</memory><devices>");
    for (int i = 0; i < 100; i++) {
        char *more = vo_asprintf("%s<sound/>", many);
        free(many);
        many = more;
    }
    char *closed = vo_asprintf("%s</devices></domain>", many);
    free(many);
    many = closed;
    assert_int_equal(vo_libvirt_xml_parse(many, strlen(many), &p, &err), 0);
    assert_int_equal(vo_strv_len(p->warnings), 65);
    assert_string_equal(p->warnings[64], "more warnings were left out");
    vo_import_plan_free(p);
}

static void libvirt_refused(const char *xml, const char *fragment)
{
    VoImportPlan *p = NULL;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_libvirt_xml_parse(xml, strlen(xml), &p, &err), -EINVAL);
    assert_null(p);
    if (!err || !strstr(err, fragment))
        fail_msg("'%s' does not say '%s'", err ? err : "(null)", fragment);
}

static void test_libvirt_refusals(void **state)
{
    libvirt_refused("<domain><name>x</name>", "not well-formed");
    libvirt_refused("<vm/>", "not domain");
    libvirt_refused("<domain><name>x</name><memory unit='TiB'>5</memory></domain>", "4 TiB");
    libvirt_refused("<domain><name>x</name><memory>1024</memory><vcpu>0</vcpu></domain>",
                    "vcpu");
    libvirt_refused(DOMAIN("<os><type arch='aarch64'>hvm</type></os>", ""), "not x86");
    libvirt_refused(DOMAIN("", "<disk type='file' device='disk'><source file='rel.img'/></disk>"),
                    "absolute");
    libvirt_refused(DOMAIN("", "<disk type='file' device='disk'><source file='/a/../b'/></disk>"),
                    "absolute");
    libvirt_refused(DOMAIN("", "<disk type='file'><driver type='qed'/>"
                               "<source file='/a.qed'/></disk>"), "format 'qed'");
    libvirt_refused("<domain><memory>1024</memory></domain>", "names no VM");
}

static void test_manifest(void **state)
{
    const char *mf = "SHA256(a.ovf)= 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\r\n"
                     "SHA1(b.vmdk)= 0123456789abcdef0123456789abcdef01234567\n\n"
                     "SHA1 (c d.nvram) = 0123456789abcdef0123456789abcdef01234567 \n";
    _cleanup_strv_ char **names = NULL, **algos = NULL, **digests = NULL;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_ova_manifest_parse(mf, strlen(mf), &names, &algos, &digests, &err), 0);
    assert_int_equal(vo_strv_len(names), 3);
    assert_string_equal(names[1], "b.vmdk");
    assert_string_equal(names[2], "c d.nvram"); /* BSD's form, as VirtualBox writes it */
    assert_string_equal(algos[2], "SHA1");
    assert_string_equal(algos[0], "SHA256");
    assert_string_equal(digests[0],
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    const char *bad[] = { "MD5(a)= 00", "SHA1(a)= 12", "SHA1(../a)= 0123456789abcdef0123456789abcdef01234567",
                          "no parentheses", "SHA1(a) 0123456789abcdef0123456789abcdef01234567",
                          " (a)= 0123456789abcdef0123456789abcdef01234567" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        char **n = NULL, **a = NULL, **d = NULL;
        char *e = NULL;
        assert_int_equal(vo_ova_manifest_parse(bad[i], strlen(bad[i]), &n, &a, &d, &e), -EINVAL);
        assert_null(n);
        assert_non_null(e);
        free(e);
    }
}

/* A ustar member header (name, size, type) with its checksum. */
static void tar_header(FILE *f, const char *name, size_t size, char type)
{
    unsigned char h[512] = { 0 };
    memcpy(h, name, strlen(name) < 100 ? strlen(name) : 100);
    memcpy(h + 100, "0000644", 8);
    char field[32];
    snprintf(field, sizeof(field), "%011o", (unsigned)size);
    memcpy(h + 124, field, 12);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++)
        sum += h[i];
    snprintf(field, sizeof(field), "%06o", sum & 0777777);
    memcpy(h + 148, field, 7);
    fwrite(h, 1, 512, f);
}

static void tar_member(FILE *f, const char *name, const char *data, char type)
{
    size_t n = strlen(data);
    tar_header(f, name, n, type);
    fwrite(data, 1, n, f);
    static const char pad[512];
    fwrite(pad, 1, (512 - n % 512) % 512, f);
}

static char *write_tar(const char *dir, const char *file, const char *second, char type,
                       bool end)
{
    char *path = vo_asprintf("%s/%s", dir, file);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    tar_member(f, "vm.ovf", "<Envelope/>", '0');
    tar_member(f, second, "disk data", type);
    if (end) {
        static const char zero[1024];
        fwrite(zero, 1, sizeof(zero), f);
    }
    fclose(f);
    return path;
}

static void ova_refused(const char *path, const char *fragment)
{
    VoOva ova;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_ova_open(path, &ova, &err), -EINVAL);
    if (!err || !strstr(err, fragment))
        fail_msg("'%s' does not say '%s'", err ? err : "(null)", fragment);
}

static void test_ova_reader(void **state)
{
    char dir[] = "/tmp/test-vm-import-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *good = write_tar(dir, "good.ova", "disk.vmdk", '0', true);
    VoOva ova;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_ova_open(good, &ova, &err), 0);
    assert_string_equal(ova.ovf, "<Envelope/>");
    assert_null(ova.manifest);
    const VoOvaMember *m = vo_ova_find(&ova, "disk.vmdk");
    assert_non_null(m);
    assert_int_equal(m->size, 9);
    _cleanup_free_ char *out = vo_asprintf("%s/out", dir);
    char sha1[41], sha256[65];
    assert_int_equal(vo_ova_extract(&ova, m, out, sha1, sha256, &err), 0);
    /* printf 'disk data' | sha256sum */
    assert_string_equal(sha256, "2dbc12f751f85cb0962aa38f97d4a69ff43b63d3257a0931bc6d4bc1f7fa2f17");
    assert_string_equal(sha1, "76a88ddfdc7348555b1185ddfbc0dc56d3ff779d");
    char again1[41], again256[65];
    assert_int_equal(vo_ova_digest(&ova, m, again1, again256, &err), 0);
    assert_string_equal(again256, sha256);
    assert_string_equal(again1, sha1);
    /* an existing destination is never written over */
    assert_int_equal(vo_ova_extract(&ova, m, out, sha1, sha256, &err), -EEXIST);
    vo_ova_close(&ova);

    _cleanup_free_ char *dotdot = write_tar(dir, "dotdot.ova", "../x", '0', true);
    ova_refused(dotdot, "has a path");
    _cleanup_free_ char *sub = write_tar(dir, "sub.ova", "a/b", '0', true);
    ova_refused(sub, "has a path");
    _cleanup_free_ char *link = write_tar(dir, "link.ova", "l", '2', true);
    ova_refused(link, "not a plain file");
    _cleanup_free_ char *cut = write_tar(dir, "cut.ova", "d", '0', false);
    ova_refused(cut, "truncated");
    _cleanup_free_ char *twice = write_tar(dir, "twice.ova", "vm.ovf", '0', true);
    ova_refused(twice, "there twice");
    _cleanup_free_ char *junk = vo_asprintf("%s/junk.ova", dir);
    FILE *f = fopen(junk, "wb");
    for (int i = 0; i < 2048; i++)
        fputc('x', f);
    fclose(f);
    ova_refused(junk, "not a tar");
    assert_int_equal(vo_rm_rf(dir), 0);
}

/* A pax record "LEN KEY=VALUE\n" (LEN counts the whole record). */
static char *pax_record(const char *key, const char *value)
{
    size_t body = strlen(key) + strlen(value) + 3; /* ' ', '=', '\n' */
    size_t len = body + 1;
    while (len != body + (size_t)snprintf(NULL, 0, "%zu", len))
        len = body + (size_t)snprintf(NULL, 0, "%zu", len);
    return vo_asprintf("%zu %s=%s\n", len, key, value);
}

/* An OVA of vm.ovf, then a pax header of records, then a ustar member
 * "short" of size_field bytes in its header and data (NULL: none; sparse:
 * the file is extended to hold sparse_size bytes of it). */
static char *write_pax_tar(const char *dir, const char *file, const char *records,
                           size_t size_field, const char *data, uint64_t sparse_size)
{
    char *path = vo_asprintf("%s/%s", dir, file);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    tar_member(f, "vm.ovf", "<Envelope/>", '0');
    tar_member(f, "PaxHeaders/short", records, 'x');
    tar_header(f, "short", size_field, '0');
    if (data) {
        fwrite(data, 1, strlen(data), f);
        static const char pad[512];
        fwrite(pad, 1, (512 - strlen(data) % 512) % 512, f);
    }
    if (sparse_size)
        assert_int_equal(fseeko(f, (off_t)((sparse_size + 511) / 512 * 512), SEEK_CUR), 0);
    static const char zero[1024];
    fwrite(zero, 1, sizeof(zero), f);
    fclose(f);
    return path;
}

/* pax headers: the "size" and "path" of the next member stand (members of
 * 8 GiB and more, long names); a path is checked as a name is; a malformed
 * header is refused. */
static void test_ova_pax(void **state)
{
    char dir[] = "/tmp/test-vm-import-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *path_rec = pax_record("path", "disk-with-a-long-name.vmdk");
    _cleanup_free_ char *size_rec = pax_record("size", "9");
    _cleanup_free_ char *mtime_rec = pax_record("mtime", "1700000000.5");
    _cleanup_free_ char *records = vo_asprintf("%s%s%s", mtime_rec, path_rec, size_rec);
    /* The header's own size field says 0: the pax size stands. */
    _cleanup_free_ char *named = write_pax_tar(dir, "named.ova", records, 0, "disk data", 0);
    VoOva ova;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_ova_open(named, &ova, &err), 0);
    assert_null(vo_ova_find(&ova, "short"));
    const VoOvaMember *m = vo_ova_find(&ova, "disk-with-a-long-name.vmdk");
    assert_non_null(m);
    assert_int_equal(m->size, 9);
    char sha1[41], sha256[65];
    assert_int_equal(vo_ova_digest(&ova, m, sha1, sha256, &err), 0);
    assert_string_equal(sha1, "76a88ddfdc7348555b1185ddfbc0dc56d3ff779d"); /* 'disk data' */
    vo_ova_close(&ova);

    /* 9 GiB (a sparse file): beyond the ustar field's 8 GiB. */
    uint64_t big = 9ULL << 30;
    _cleanup_free_ char *big_text = vo_asprintf("%llu", (unsigned long long)big);
    _cleanup_free_ char *big_rec = pax_record("size", big_text);
    _cleanup_free_ char *big_ova = write_pax_tar(dir, "big.ova", big_rec, 0, NULL, big);
    assert_int_equal(vo_ova_open(big_ova, &ova, &err), 0);
    m = vo_ova_find(&ova, "short");
    assert_non_null(m);
    assert_true(m->size == big);
    vo_ova_close(&ova);

    /* More than the file holds; a path that escapes; malformed records. */
    _cleanup_free_ char *huge_rec = pax_record("size", "99999999999999");
    _cleanup_free_ char *huge = write_pax_tar(dir, "huge.ova", huge_rec, 0, NULL, 0);
    ova_refused(huge, "claims more data");
    _cleanup_free_ char *up_rec = pax_record("path", "../etc/passwd");
    _cleanup_free_ char *up = write_pax_tar(dir, "up.ova", up_rec, 9, "disk data", 0);
    ova_refused(up, "has a path");
    const char *bad[] = { "5 size=9\n", "12 size=9\n", "x size=9\n", "11 size=-9\n",
                          "10 size9\n\n", "99999999999999999999999 size=9\n" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        _cleanup_free_ char *p = write_pax_tar(dir, "bad.ova", bad[i], 9, "disk data", 0);
        ova_refused(p, "malformed");
        unlink(p);
    }
    assert_int_equal(vo_rm_rf(dir), 0);
}

/* The descriptor is digested as it was read and parsed: an OVA rewritten
 * in place after vo_ova_open (the descriptor swapped for another of the
 * same size) does not change the digest the manifest is checked against. */
static void test_ova_descriptor_digest_is_of_what_was_parsed(void **state)
{
    char dir[] = "/tmp/test-vm-import-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *path = write_tar(dir, "swap.ova", "disk.vmdk", '0', true);
    VoOva ova;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_ova_open(path, &ova, &err), 0);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 512, SEEK_SET), 0); /* vm.ovf's data */
    assert_int_equal(fwrite("<Evil0000/>", 1, 11, f), 11);
    assert_int_equal(fclose(f), 0);
    char sha1[41], sha256[65];
    assert_int_equal(vo_ova_digest(&ova, vo_ova_find(&ova, "vm.ovf"), sha1, sha256, &err), 0);
    assert_string_equal(ova.ovf, "<Envelope/>");
    /* printf '<Envelope/>' | sha256sum */
    assert_string_equal(sha256, "cbed3b27295a309da3ce42224e915b8ccb87354e24d40145475bca384c21b5f7");
    assert_string_equal(sha1, "227d19ce9e9056a97b35670463c1bb31891f4ffe");
    vo_ova_close(&ova);
    assert_int_equal(vo_rm_rf(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ovf_maps),       cmocka_unit_test(test_ovf_refusals),
        cmocka_unit_test(test_libvirt_maps),   cmocka_unit_test(test_libvirt_refusals),
        cmocka_unit_test(test_manifest),       cmocka_unit_test(test_ova_reader),
        cmocka_unit_test(test_ova_pax),
        cmocka_unit_test(test_ova_descriptor_digest_is_of_what_was_parsed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
