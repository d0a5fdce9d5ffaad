/* test-pki.c: the cluster CA and host certificates: what is in them (read
 * back with OpenSSL), files written with the right modes and loaded back,
 * fingerprints and verification cross-checked with the openssl command,
 * and refusals (bad address or name, foreign CA, mismatched key). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cluster/pki.h"
#include "util/spawn.h"
#include "util/util.h"

static X509 *parse(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

static void assert_p256(X509 *x)
{
    EVP_PKEY *k = X509_get0_pubkey(x);
    assert_non_null(k);
    assert_true(EVP_PKEY_is_a(k, "EC"));
    char group[64];
    size_t n = 0;
    assert_int_equal(EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), &n), 1);
    assert_string_equal(group, "prime256v1");
}

/* Days from now to the certificate's notAfter. */
static int days_left(X509 *x)
{
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
    return days;
}

static char *cn(X509 *x)
{
    char buf[256];
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf)) > 0);
    return vo_strdup(buf);
}

static void test_ca(void **state)
{
    VoPkiPair ca = { 0 };
    assert_int_equal(vo_pki_ca_make("c-123", &ca), 0);
    assert_non_null(strstr(ca.cert_pem, "BEGIN CERTIFICATE"));
    assert_non_null(strstr(ca.key_pem, "BEGIN PRIVATE KEY"));
    X509 *x = parse(ca.cert_pem);
    _cleanup_free_ char *name = cn(x);
    assert_string_equal(name, "vireo cluster c-123");
    assert_int_equal(X509_check_ca(x), 1);
    assert_true(X509_get_key_usage(x) & KU_KEY_CERT_SIGN);
    assert_int_equal(X509_check_issued(x, x), X509_V_OK); /* self-signed */
    assert_p256(x);
    int d = days_left(x);
    assert_true(d >= 3650 && d <= 3654);
    X509_free(x);
    vo_pki_pair_clear(&ca);
    vo_pki_pair_clear(&ca); /* idempotent */

    assert_int_equal(vo_pki_ca_make("", &ca), -EINVAL);
    assert_int_equal(vo_pki_ca_make("a b", &ca), -EINVAL);
}

static bool san_has(GENERAL_NAMES *gens, int type, const char *text)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != type)
            continue;
        if (type == GEN_DNS && !strcmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), text))
            return true;
        if (type == GEN_IPADD) {
            ASN1_OCTET_STRING *want = a2i_IPADDRESS(text);
            bool eq = want && ASN1_STRING_cmp(want, g->d.iPAddress) == 0;
            ASN1_OCTET_STRING_free(want);
            if (eq)
                return true;
        }
    }
    return false;
}

static void test_host(void **state)
{
    VoPkiPair ca = { 0 }, host = { 0 }, host2 = { 0 };
    assert_int_equal(vo_pki_ca_make("c1", &ca), 0);
    assert_int_equal(vo_pki_host_issue(&ca, "10.1.2.3", "node-a.example", &host, NULL), 0);
    X509 *x = parse(host.cert_pem), *cax = parse(ca.cert_pem);
    _cleanup_free_ char *name = cn(x);
    assert_string_equal(name, "node-a.example");
    assert_int_equal(X509_check_issued(cax, x), X509_V_OK);
    assert_int_equal(X509_check_ca(x), 0);
    assert_p256(x);
    int d = days_left(x);
    assert_true(d >= 1825 && d <= 1827);
    uint32_t ku = X509_get_key_usage(x);
    assert_true(ku & KU_DIGITAL_SIGNATURE);
    assert_false(ku & KU_KEY_CERT_SIGN);
    uint32_t eku = X509_get_extended_key_usage(x);
    assert_true(eku & XKU_SSL_SERVER);
    assert_true(eku & XKU_SSL_CLIENT);
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(gens);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 3);
    assert_true(san_has(gens, GEN_IPADD, "10.1.2.3"));
    assert_true(san_has(gens, GEN_IPADD, "127.0.0.1"));
    assert_true(san_has(gens, GEN_DNS, "node-a.example"));
    GENERAL_NAMES_free(gens);
    /* Serials: positive, random. */
    assert_int_equal(vo_pki_host_issue(&ca, "127.0.0.1", "b", &host2, NULL), 0);
    X509 *x2 = parse(host2.cert_pem);
    BIGNUM *s1 = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    BIGNUM *s2 = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x2), NULL);
    assert_false(BN_is_negative(s1));
    assert_false(BN_is_zero(s1));
    assert_int_not_equal(BN_cmp(s1, s2), 0);
    BN_free(s1);
    BN_free(s2);
    /* 127.0.0.1 as the address is named once. */
    gens = X509_get_ext_d2i(x2, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 2);
    GENERAL_NAMES_free(gens);
    X509_free(x2);
    vo_pki_pair_clear(&host2);
    /* IPv6. */
    assert_int_equal(vo_pki_host_issue(&ca, "fd00::5", "v6", &host2, NULL), 0);
    x2 = parse(host2.cert_pem);
    gens = X509_get_ext_d2i(x2, NID_subject_alt_name, NULL, NULL);
    assert_true(san_has(gens, GEN_IPADD, "fd00::5"));
    GENERAL_NAMES_free(gens);
    X509_free(x2);
    vo_pki_pair_clear(&host2);

    X509_free(x);
    X509_free(cax);
    vo_pki_pair_clear(&host);
    vo_pki_pair_clear(&ca);
}

static void test_host_refused(void **state)
{
    VoPkiPair ca = { 0 }, other = { 0 }, host = { 0 };
    assert_int_equal(vo_pki_ca_make("c1", &ca), 0);
    assert_int_equal(vo_pki_ca_make("c2", &other), 0);
    char *err = NULL;
    assert_int_equal(vo_pki_host_issue(&ca, "10.0.0.300", "a", &host, &err), -EINVAL);
    assert_non_null(strstr(err, "10.0.0.300"));
    free(err);
    err = NULL;
    assert_int_equal(vo_pki_host_issue(&ca, "node", "a", &host, &err), -EINVAL);
    free(err);
    err = NULL;
    /* Names longer than a certificate's CN may hold are refused up front
     * (not a failure deep in OpenSSL); the longest allowed ones work. */
    char name63[64], name64[65];
    memset(name63, 'n', 63);
    name63[63] = 0;
    memset(name64, 'n', 64);
    name64[64] = 0;
    assert_int_equal(vo_pki_host_issue(&ca, "10.0.0.1", name63, &host, NULL), 0);
    vo_pki_pair_clear(&host);
    char id48[49], id49[50];
    memset(id48, 'c', 48);
    id48[48] = 0;
    memset(id49, 'c', 49);
    id49[49] = 0;
    VoPkiPair ca48 = { 0 }, ca49 = { 0 };
    assert_int_equal(vo_pki_ca_make(id48, &ca48), 0);
    assert_int_equal(vo_pki_ca_make(id49, &ca49), -EINVAL);
    vo_pki_pair_clear(&ca48);
    const char *bad_names[] = { "", "a b", "a,DNS:evil", "-a", "a..b", "a.", "é", name64 };
    for (size_t i = 0; i < ELEMENTSOF(bad_names); i++) {
        assert_int_equal(vo_pki_host_issue(&ca, "10.0.0.1", bad_names[i], &host, &err), -EINVAL);
        assert_non_null(strstr(err, "host name"));
        free(err);
        err = NULL;
    }
    /* A CA certificate with another CA's key. */
    VoPkiPair mixed = { .cert_pem = ca.cert_pem, .key_pem = other.key_pem };
    assert_int_equal(vo_pki_host_issue(&mixed, "10.0.0.1", "a", &host, &err), -EKEYREJECTED);
    free(err);
    err = NULL;
    VoPkiPair garbage = { .cert_pem = (char *)"nope", .key_pem = (char *)"nope" };
    assert_int_equal(vo_pki_host_issue(&garbage, "10.0.0.1", "a", &host, &err), -EINVAL);
    free(err);
    assert_null(host.cert_pem);
    vo_pki_pair_clear(&ca);
    vo_pki_pair_clear(&other);
}

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/vireo-test-pki.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return vo_strdup(tmpl);
}

static mode_t mode_of(const char *dir, const char *file)
{
    _cleanup_free_ char *p = vo_asprintf("%s/%s", dir, file);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 07777;
}

static void test_files(void **state)
{
    _cleanup_free_ char *top = tmpdir();
    _cleanup_free_ char *dir = vo_asprintf("%s/cluster", top);
    VoPkiPair ca = { 0 }, host = { 0 }, back = { 0 };
    assert_int_equal(vo_pki_ca_make("c1", &ca), 0);
    assert_int_equal(vo_pki_host_issue(&ca, "10.0.0.1", "h1", &host, NULL), 0);
    mode_t old = umask(0);
    assert_int_equal(vo_pki_pair_write(dir, "ca", &ca), 0);
    umask(old);
    assert_int_equal(vo_pki_pair_write(dir, "host", &host), 0);
    assert_int_equal(mode_of(top, "cluster"), 0700);
    assert_int_equal(mode_of(dir, "ca.key"), 0600);
    assert_int_equal(mode_of(dir, "ca.crt"), 0644);
    assert_int_equal(mode_of(dir, "host.key"), 0600);
    /* Nothing left over from tmp + rename. */
    _cleanup_free_ char *ls_out = NULL;
    char *ls[] = { (char *)"ls", (char *)"-A", dir, NULL };
    assert_int_equal(vo_spawn_wait(ls, 5000, &ls_out), 0);
    assert_string_equal(ls_out, "ca.crt\nca.key\nhost.crt\nhost.key\n");

    assert_int_equal(vo_pki_pair_load(dir, "ca", true, &back), 0);
    assert_string_equal(back.cert_pem, ca.cert_pem);
    assert_string_equal(back.key_pem, ca.key_pem);
    vo_pki_pair_clear(&back);
    assert_int_equal(vo_pki_pair_load(dir, "host", false, &back), 0);
    assert_null(back.key_pem);
    vo_pki_pair_clear(&back);
    /* Rewritten (rename over the old file). */
    assert_int_equal(vo_pki_pair_write(dir, "host", &host), 0);

    /* The openssl command agrees: the host certificate chains to the CA
     * for TLS server and client use. */
    _cleanup_free_ char *ca_path = vo_asprintf("%s/ca.crt", dir);
    _cleanup_free_ char *host_path = vo_asprintf("%s/host.crt", dir);
    const char *purposes[] = { "sslserver", "sslclient" };
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *out = NULL;
        char *verify[] = { (char *)"openssl", (char *)"verify", (char *)"-purpose", (char *)purposes[i],
                           (char *)"-CAfile", ca_path, host_path, NULL };
        assert_int_equal(vo_spawn_wait(verify, 10000, &out), 0);
    }
    /* Fingerprint as openssl prints it (colons and case aside). */
    char fp[VO_SHA256_HEX_LEN + 1];
    assert_int_equal(vo_pki_fingerprint(ca.cert_pem, fp), 0);
    _cleanup_free_ char *out = NULL;
    char *fpargv[] = { (char *)"openssl", (char *)"x509", (char *)"-noout", (char *)"-fingerprint",
                       (char *)"-sha256", (char *)"-in", ca_path, NULL };
    assert_int_equal(vo_spawn_wait(fpargv, 10000, &out), 0);
    char want[VO_SHA256_HEX_LEN + 1];
    size_t n = 0;
    for (const char *c = strchr(out, '=') + 1; *c && *c != '\n'; c++)
        if (*c != ':' && n < VO_SHA256_HEX_LEN)
            want[n++] = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
    want[n] = 0;
    assert_string_equal(fp, want);
    char fp2[VO_SHA256_HEX_LEN + 1];
    assert_int_equal(vo_pki_fingerprint(host.cert_pem, fp2), 0);
    assert_string_not_equal(fp, fp2);
    assert_int_equal(vo_pki_fingerprint("junk", fp2), -EINVAL);

    /* A key that belongs to another certificate. */
    VoPkiPair mixed = { .cert_pem = host.cert_pem, .key_pem = ca.key_pem };
    assert_int_equal(vo_pki_pair_write(dir, "mixed", &mixed), 0);
    assert_int_equal(vo_pki_pair_load(dir, "mixed", true, &back), -EKEYREJECTED);
    assert_null(back.cert_pem);
    VoPkiPair junk = { .cert_pem = (char *)"junk\n", .key_pem = (char *)"junk\n" };
    assert_int_equal(vo_pki_pair_write(dir, "junk", &junk), 0);
    assert_int_equal(vo_pki_pair_load(dir, "junk", true, &back), -EINVAL);
    assert_int_equal(vo_pki_pair_load(dir, "absent", true, &back), -ENOENT);
    assert_int_equal(vo_pki_pair_write(dir, "a/b", &host), -EINVAL);

    vo_pki_pair_clear(&ca);
    vo_pki_pair_clear(&host);
    assert_int_equal(vo_rm_rf(top), 0);
}

static void test_verify(void **state)
{
    VoPkiPair ca = { 0 }, other = { 0 }, host = { 0 }, foreign = { 0 };
    assert_int_equal(vo_pki_ca_make("c1", &ca), 0);
    assert_int_equal(vo_pki_ca_make("c1", &other), 0); /* same name, other key */
    assert_int_equal(vo_pki_host_issue(&ca, "10.0.0.1", "h1", &host, NULL), 0);
    assert_int_equal(vo_pki_host_issue(&other, "10.0.0.1", "h1", &foreign, NULL), 0);
    assert_int_equal(vo_pki_verify(ca.cert_pem, host.cert_pem, NULL), 0);
    char *err = NULL;
    assert_int_equal(vo_pki_verify(ca.cert_pem, foreign.cert_pem, &err), -EKEYREJECTED);
    assert_non_null(strstr(err, "not accepted by the cluster CA"));
    free(err);
    err = NULL;
    assert_int_equal(vo_pki_verify(other.cert_pem, host.cert_pem, NULL), -EKEYREJECTED);
    /* The CA's own certificate is no host certificate. */
    assert_int_equal(vo_pki_verify(ca.cert_pem, ca.cert_pem, NULL), -EKEYREJECTED);
    assert_int_equal(vo_pki_verify(ca.cert_pem, "junk", &err), -EINVAL);
    free(err);
    assert_int_equal(vo_pki_verify(NULL, host.cert_pem, NULL), -EINVAL);
    vo_pki_pair_clear(&ca);
    vo_pki_pair_clear(&other);
    vo_pki_pair_clear(&host);
    vo_pki_pair_clear(&foreign);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_host_refused),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
