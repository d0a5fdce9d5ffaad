/* test-ova-verify.c: an OVA's manifest and certificate (storage/ova-verify.c)
 * with keys and certificates made here by the openssl command (a root CA,
 * an intermediate CA, a vendor's certificate, another CA) and OVAs made by
 * tar: a good signature (with the root given as the CA bundle, the
 * intermediate from the .cert), a manifest altered after signing, a
 * signature of another key, an untrusted signer, an expired one, a web
 * server's certificate (not for code signing), the system's store,
 * malformed .cert files, a signer with a subject over 1 KiB, and a
 * manifest that leaves out or adds a file. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/ova-verify.h"
#include "util/util.h"

static char dir[] = "/tmp/test-ova-verify-XXXXXX";

static void run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *cmd = NULL;
    if (vasprintf(&cmd, fmt, ap) < 0)
        abort();
    va_end(ap);
    _cleanup_free_ char *quiet = vo_asprintf("cd %s && (%s) >/dev/null 2>&1", dir, cmd);
    if (system(quiet) != 0) {
        fprintf(stderr, "failed: %s\n", cmd);
        abort();
    }
}

static char *slurp(const char *name, size_t *ret_len)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, name);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(vo_read_file(path, 1024 * 1024, &text, &len), 0);
    if (ret_len)
        *ret_len = len;
    return text;
}

static void spit(const char *name, const char *text)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char MANIFEST[] = "SHA256(vm.ovf)= 0123456789abcdef0123456789abcdef0123456789abcdef"
                               "0123456789abcdef\nSHA1(disk.vmdk)= "
                               "0123456789abcdef0123456789abcdef01234567\n";

/* "ALGO(vm.mf)= HEX\n" of key's signature of manifest, then the PEM files
 * named after it (up to a NULL). */
static char *cert_text(const char *algo, const char *key, const char *manifest, ...)
{
    spit("sign.mf", manifest);
    run("openssl dgst -%s -sign %s -out sig.bin sign.mf", algo, key);
    size_t n = 0;
    _cleanup_free_ char *sig = slurp("sig.bin", &n);
    _cleanup_free_ char *hex = vo_malloc0(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        sprintf(hex + 2 * i, "%02x", (unsigned char)sig[i]);
    char upper[8];
    snprintf(upper, sizeof(upper), "%s", algo);
    for (char *p = upper; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    char *text = vo_asprintf("%s(vm.mf)= %s\n", upper, hex);
    va_list ap;
    va_start(ap, manifest);
    for (const char *f; (f = va_arg(ap, const char *));) {
        _cleanup_free_ char *pem = slurp(f, NULL), *old = text;
        text = vo_asprintf("%s%s", old, pem);
    }
    va_end(ap);
    return text;
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        abort();
    spit("ca.ext", "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n");
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout root.key -out root.pem -days 3 -subj /CN=Test-Root");
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout other.key -out other.pem -days 3 -subj /CN=Other-CA");
    run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout mid.key -out mid.csr -subj /CN=Test-Intermediate && "
        "openssl x509 -req -in mid.csr -CA root.pem -CAkey root.key -CAcreateserial "
        "-extfile ca.ext -out mid.pem -days 3");
    run("openssl req -newkey rsa:2048 -nodes -keyout vendor.key -out vendor.csr "
        "-subj /O=Vendor/CN=appliances && openssl x509 -req -in vendor.csr -CA mid.pem "
        "-CAkey mid.key -CAcreateserial -out vendor.pem -days 3");
    /* the vendor's key in certificates for code signing, and for a web server */
    spit("code.ext", "extendedKeyUsage=codeSigning\n");
    spit("web.ext", "extendedKeyUsage=serverAuth,clientAuth\n");
    run("openssl x509 -req -in vendor.csr -CA mid.pem -CAkey mid.key -CAcreateserial "
        "-extfile code.ext -out code.pem -days 3");
    run("openssl x509 -req -in vendor.csr -CA mid.pem -CAkey mid.key -CAcreateserial "
        "-extfile web.ext -out web.pem -days 3");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vo_rm_rf(dir);
    return 0;
}

/* verify's result for text over manifest with ca (a file of dir, or NULL). */
static int verify(const char *text, const char *manifest, const char *ca, char **signer,
                  char **error)
{
    VoOvaCert *c = NULL;
    int r = vo_ova_cert_parse("vm.cert", text, strlen(text), &c, error);
    if (r < 0)
        return r;
    assert_string_equal(vo_ova_cert_signed_file(c), "vm.mf");
    _cleanup_free_ char *ca_path = ca ? vo_asprintf("%s/%s", dir, ca) : NULL;
    r = vo_ova_cert_verify(c, manifest, strlen(manifest), ca_path, signer, error);
    vo_ova_cert_free(c);
    return r;
}

static void test_good_signature(void **state)
{
    (void)state;
    /* the vendor's certificate, then its intermediate CA; the root is --ca */
    _cleanup_free_ char *text = cert_text("sha256", "vendor.key", MANIFEST, "vendor.pem",
                                             "mid.pem", NULL);
    _cleanup_free_ char *signer = NULL, *error = NULL;
    assert_int_equal(verify(text, MANIFEST, "root.pem", &signer, &error), 0);
    assert_string_equal(signer, "CN=appliances,O=Vendor");
    /* SHA-512, and a CRLF file */
    _cleanup_free_ char *t512 = cert_text("sha512", "vendor.key", MANIFEST, "vendor.pem",
                                             "mid.pem", NULL);
    char *nl = strchr(t512, '\n');
    _cleanup_free_ char *crlf = vo_asprintf("%.*s\r%s", (int)(nl - t512), t512, nl);
    _cleanup_free_ char *s2 = NULL;
    assert_int_equal(verify(crlf, MANIFEST, "root.pem", &s2, &error), 0);
    /* BSD's form of the signature line */
    _cleanup_free_ char *bsd = vo_strdup(text);
    char *paren = strchr(bsd, '(');
    _cleanup_free_ char *spaced = vo_asprintf("SHA256 (vm.mf) =%s", strchr(paren, '=') + 1);
    _cleanup_free_ char *s4 = NULL;
    assert_int_equal(verify(spaced, MANIFEST, "root.pem", &s4, &error), 0);
    /* a certificate for code signing */
    _cleanup_free_ char *code = cert_text("sha256", "vendor.key", MANIFEST, "code.pem",
                                          "mid.pem", NULL);
    _cleanup_free_ char *s5 = NULL;
    assert_int_equal(verify(code, MANIFEST, "root.pem", &s5, &error), 0);
    /* a self-signed vendor given as its own CA */
    _cleanup_free_ char *self = cert_text("sha256", "other.key", MANIFEST, "other.pem", NULL);
    _cleanup_free_ char *s3 = NULL;
    assert_int_equal(verify(self, MANIFEST, "other.pem", &s3, &error), 0);
    assert_string_equal(s3, "CN=Other-CA");
}

/* A signer whose subject is longer than 1 KiB (RFC 2253): it is cut, not
 * left out. */
static void test_long_subject_is_cut(void **state)
{
    (void)state;
    _cleanup_free_ char *subj = vo_strdup("");
    for (int i = 0; i < 20; i++) {
        _cleanup_free_ char *old = subj;
        subj = vo_asprintf("%s/OU=unit-%02d-%s", old, i,
                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    }
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout long.key -out long.pem -days 3 -subj '%s/CN=long'", subj);
    _cleanup_free_ char *text = cert_text("sha256", "long.key", MANIFEST, "long.pem", NULL);
    _cleanup_free_ char *signer = NULL, *error = NULL;
    assert_int_equal(verify(text, MANIFEST, "long.pem", &signer, &error), 0);
    assert_int_equal(strlen(signer), 1024);
    assert_memory_equal(signer, "CN=long,OU=unit-19-", 19);
    assert_string_equal(signer + 1021, "...");
}

static void test_refused_signatures(void **state)
{
    (void)state;
    _cleanup_free_ char *text = cert_text("sha256", "vendor.key", MANIFEST, "vendor.pem",
                                             "mid.pem", NULL);
    char *signer = NULL;
    /* the manifest altered after signing (a disk's digest changed) */
    _cleanup_free_ char *altered = vo_strdup(MANIFEST);
    altered[strlen(altered) - 2] = '8';
    _cleanup_free_ char *e1 = NULL;
    assert_int_equal(verify(text, altered, "root.pem", &signer, &e1), -EINVAL);
    assert_non_null(strstr(e1, "the signature in 'vm.cert' does not match the manifest 'vm.mf'"));
    /* signed by another key than the certificate's */
    _cleanup_free_ char *other_key = cert_text("sha256", "other.key", MANIFEST,
                                               "vendor.pem", "mid.pem", NULL);
    _cleanup_free_ char *e2 = NULL;
    assert_int_equal(verify(other_key, MANIFEST, "root.pem", &signer, &e2), -EINVAL);
    assert_non_null(strstr(e2, "does not match"));
    /* a good signature whose signer chains to no CA given */
    _cleanup_free_ char *e3 = NULL;
    assert_int_equal(verify(text, MANIFEST, "other.pem", &signer, &e3), -EINVAL);
    assert_non_null(strstr(e3, "the signer of 'vm.cert' (CN=appliances,O=Vendor) is not "
                               "trusted: unable to get local issuer certificate; give the CA"));
    /* ... nor to the system's store */
    _cleanup_free_ char *e4 = NULL;
    assert_int_equal(verify(text, MANIFEST, NULL, &signer, &e4), -EINVAL);
    assert_non_null(strstr(e4, "is not trusted"));
    /* the intermediate left out of the .cert */
    _cleanup_free_ char *alone = cert_text("sha256", "vendor.key", MANIFEST, "vendor.pem",
                                           NULL);
    _cleanup_free_ char *e5 = NULL;
    assert_int_equal(verify(alone, MANIFEST, "root.pem", &signer, &e5), -EINVAL);
    assert_non_null(strstr(e5, "is not trusted"));
    /* a web server's certificate (any public CA issues one to anyone) */
    _cleanup_free_ char *web = cert_text("sha256", "vendor.key", MANIFEST, "web.pem", "mid.pem",
                                         NULL);
    _cleanup_free_ char *e7 = NULL;
    assert_int_equal(verify(web, MANIFEST, "root.pem", &signer, &e7), -EINVAL);
    assert_string_equal(e7, "OVA: the signer of 'vm.cert' (CN=appliances,O=Vendor) is not a "
                            "code signing certificate (its extended key usage lacks "
                            "codeSigning)");
    /* the vendor's certificate expired (a day of 2020) */
    spit("ca.cnf", "[ca]\ndefault_ca=c\n[c]\ndatabase=index.txt\nnew_certs_dir=.\n"
                   "serial=serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n");
    run("rm -f index.txt && touch index.txt && echo 01 >serial && openssl ca -batch "
        "-config ca.cnf -cert mid.pem -keyfile mid.key -in vendor.csr -out expired.pem "
        "-startdate 20200101000000Z -enddate 20200102000000Z");
    _cleanup_free_ char *expired = cert_text("sha256", "vendor.key", MANIFEST, "expired.pem",
                                             "mid.pem", NULL);
    _cleanup_free_ char *e8 = NULL;
    assert_int_equal(verify(expired, MANIFEST, "root.pem", &signer, &e8), -EINVAL);
    assert_non_null(strstr(e8, "is not trusted: certificate has expired"));
    /* a CA file with no certificate */
    spit("empty.pem", "nothing here\n");
    _cleanup_free_ char *e6 = NULL;
    assert_int_equal(verify(text, MANIFEST, "empty.pem", &signer, &e6), -EINVAL);
    assert_non_null(strstr(e6, "empty.pem' holds no PEM certificate"));
    assert_null(signer);
}

static void test_malformed_certs(void **state)
{
    (void)state;
    _cleanup_free_ char *pem = slurp("vendor.pem", NULL);
    static const struct {
        const char *line, *error;
    } bad[] = {
        { "", "does not start with its signature line" },
        { "-----BEGIN CERTIFICATE-----", "does not start with its signature line" },
        { "MD5(vm.mf)= 00", "signs with 'MD5', not SHA1" },
        { "SHA256(vm.mf) 00", "has no '=' after '(vm.mf)'" },
        { "SHA256(vm.mf)= ", "not an even number of hex digits" },
        { "SHA256(vm.mf)= abc", "not an even number of hex digits" },
        { "SHA256(vm.mf)= zz", "signature is not hex" },
        { "SHA256(vm.mf)= 00\n", "holds no certificate" }, /* and no PEM */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bool no_pem = strchr(bad[i].line, '\n') != NULL;
        _cleanup_free_ char *text = vo_asprintf("%s\n%s", bad[i].line, no_pem ? "junk\n" : pem);
        VoOvaCert *c = NULL;
        _cleanup_free_ char *error = NULL;
        assert_int_equal(vo_ova_cert_parse("vm.cert", text, strlen(text), &c, &error), -EINVAL);
        if (!strstr(error, bad[i].error))
            fail_msg("case %zu: '%s' lacks '%s'", i, error, bad[i].error);
        assert_non_null(strstr(error, "'vm.cert'"));
        assert_null(c);
    }
    /* a NUL byte in the signature line */
    static const char nul[] = "SHA256(vm.mf)= 00\0 00\n";
    VoOvaCert *c = NULL;
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_ova_cert_parse("vm.cert", nul, sizeof(nul) - 1, &c, &error), -EINVAL);
    /* the signed file is what the line names */
    _cleanup_free_ char *other = vo_asprintf("SHA1(other.mf)= 0011\n%s", pem);
    assert_int_equal(vo_ova_cert_parse("vm.cert", other, strlen(other), &c, NULL), 0);
    assert_string_equal(vo_ova_cert_signed_file(c), "other.mf");
    vo_ova_cert_free(c);
}

/* An OVA made by tar of the files named, in that order. */
static void open_ova(const char *files, VoOva *ova)
{
    run("rm -f t.ova && tar --format=ustar -cf t.ova %s", files);
    _cleanup_free_ char *path = vo_asprintf("%s/t.ova", dir), *error = NULL;
    if (vo_ova_open(path, ova, &error) < 0)
        fail_msg("%s", error);
}

static void test_manifest_covers_the_ova(void **state)
{
    (void)state;
    spit("vm.ovf", "<Envelope/>");
    spit("disk.vmdk", "disk");
    spit("nvram", "vars");
    spit("vm.mf", MANIFEST);
    _cleanup_free_ char *text = cert_text("sha256", "vendor.key", MANIFEST, "vendor.pem", NULL);
    spit("vm.cert", text);
    char *names[] = { "vm.ovf", "disk.vmdk", NULL };
    VoOva ova;
    open_ova("vm.ovf disk.vmdk vm.mf vm.cert", &ova);
    assert_string_equal(ova.cert_name, "vm.cert");
    assert_int_equal(ova.cert_len, strlen(text));
    assert_string_equal(ova.manifest_name, "vm.mf");
    assert_int_equal(vo_ova_manifest_covers(&ova, names, NULL), 0);
    vo_ova_close(&ova);
    /* a member the manifest leaves out */
    open_ova("vm.ovf disk.vmdk nvram vm.mf", &ova);
    assert_null(ova.cert);
    _cleanup_free_ char *e1 = NULL;
    assert_int_equal(vo_ova_manifest_covers(&ova, names, &e1), -EINVAL);
    assert_string_equal(e1, "OVA: the manifest 'vm.mf' does not list 'nvram' (it must list "
                            "every file of the OVA)");
    vo_ova_close(&ova);
    /* a file the manifest lists and the OVA lacks */
    open_ova("vm.ovf vm.mf", &ova);
    _cleanup_free_ char *e2 = NULL;
    assert_int_equal(vo_ova_manifest_covers(&ova, names, &e2), -EINVAL);
    assert_string_equal(e2, "OVA: the manifest 'vm.mf' lists 'disk.vmdk', which the OVA does "
                            "not hold");
    vo_ova_close(&ova);
    /* two certificates */
    run("cp vm.cert b.cert");
    _cleanup_free_ char *path = vo_asprintf("%s/t.ova", dir), *e3 = NULL;
    run("rm -f t.ova && tar --format=ustar -cf t.ova vm.ovf vm.mf vm.cert b.cert");
    assert_int_equal(vo_ova_open(path, &ova, &e3), -EINVAL);
    assert_string_equal(e3, "OVA: two certificates ('vm.cert' and 'b.cert')");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_signature),
        cmocka_unit_test(test_long_subject_is_cut),
        cmocka_unit_test(test_refused_signatures),
        cmocka_unit_test(test_malformed_certs),
        cmocka_unit_test(test_manifest_covers_the_ova),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
