/* ova-verify.c: the checks of ova-verify.h: the manifest's coverage of the
 * OVA's members, the .cert file's parser (a signature line, then PEM
 * certificates) and its verification with OpenSSL (EVP_DigestVerify of the
 * manifest's bytes with the signer's key; X509_verify_cert of the signer
 * against the CA bundle or the system's store, the other certificates of
 * the .cert file as untrusted intermediates; a signer whose extended key
 * usage is stated must allow code signing). */
#include <ctype.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <string.h>

#include "storage/ova-verify.h"
#include "util/util.h"

#define MAX_SIGNATURE_BYTES 1024 /* RSA 8192 bits; its line fits MAX_LINE */
#define MAX_LINE 4096
#define MAX_CERTS 8

struct VoOvaCert {
    char *name;      /* the .cert file's, for the errors */
    char algo[8];    /* SHA1 | SHA256 | SHA384 | SHA512 */
    char *file;      /* what the signature line names: the manifest */
    unsigned char *signature;
    size_t signature_len;
    STACK_OF(X509) *certs; /* [0]: the signer's */
};

static bool listed(char *const *names, const char *name)
{
    for (; names && *names; names++)
        if (!strcmp(*names, name))
            return true;
    return false;
}

int vo_ova_manifest_covers(const VoOva *ova, char *const *names, char **ret_error)
{
    for (size_t i = 0; i < ova->n_members; i++) {
        const char *m = ova->members[i].name;
        if ((ova->manifest_name && !strcmp(m, ova->manifest_name)) ||
            (ova->cert_name && !strcmp(m, ova->cert_name)))
            continue;
        if (!listed(names, m))
            return vo_error_set(ret_error, -EINVAL, "OVA: the manifest '%s' does not list '%s' "
                                "(it must list every file of the OVA)", ova->manifest_name, m);
    }
    for (; names && *names; names++)
        if (!vo_ova_find(ova, *names))
            return vo_error_set(ret_error, -EINVAL, "OVA: the manifest '%s' lists '%.64s', "
                                "which the OVA does not hold", ova->manifest_name, *names);
    return 0;
}

static const EVP_MD *digest_of(const char *algo)
{
    return !strcmp(algo, "SHA1")     ? EVP_sha1()
           : !strcmp(algo, "SHA256") ? EVP_sha256()
           : !strcmp(algo, "SHA384") ? EVP_sha384()
           : !strcmp(algo, "SHA512") ? EVP_sha512()
                                     : NULL;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "ALGO(FILE)= HEX" (spaces allowed before "(" and around "=") into c. */
static int parse_signature_line(VoOvaCert *c, const char *line, char **ret_error)
{
    const char *open = strchr(line, '('), *close = strrchr(line, ')');
    if (!open || !close || close < open || open - line >= (ptrdiff_t)sizeof(c->algo))
        return vo_error_set(ret_error, -EINVAL, "OVA: the certificate '%s' does not start with "
                            "its signature line ALGO(MANIFEST)= HEX", c->name);
    size_t algo_len = (size_t)(open - line);
    while (algo_len && line[algo_len - 1] == ' ') /* BSD's "ALGO (FILE) = HEX" too */
        algo_len--;
    memcpy(c->algo, line, algo_len);
    c->algo[algo_len] = '\0';
    if (!digest_of(c->algo))
        return vo_error_set(ret_error, -EINVAL, "OVA: the certificate '%s' signs with '%s', not "
                            "SHA1, SHA256, SHA384 or SHA512", c->name, c->algo);
    c->file = vo_asprintf("%.*s", (int)(close - open - 1), open + 1);
    const char *p = close + 1;
    while (*p == ' ')
        p++;
    if (*p++ != '=')
        return vo_error_set(ret_error, -EINVAL, "OVA: the certificate '%s''s signature line has "
                            "no '=' after '(%.64s)'", c->name, c->file);
    while (*p == ' ')
        p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0 || n % 2 || n / 2 > MAX_SIGNATURE_BYTES)
        return vo_error_set(ret_error, -EINVAL, "OVA: the certificate '%s''s signature is not "
                            "an even number of hex digits (2 to %d)", c->name,
                            2 * MAX_SIGNATURE_BYTES);
    c->signature = vo_malloc0(n / 2);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_value(p[2 * i]), lo = hex_value(p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return vo_error_set(ret_error, -EINVAL, "OVA: the certificate '%s''s signature is "
                                "not hex", c->name);
        c->signature[i] = (unsigned char)(hi << 4 | lo);
    }
    c->signature_len = n / 2;
    return 0;
}

/* The PEM certificates of text (anything between them is skipped). */
static int parse_certs(VoOvaCert *c, const char *text, size_t len, char **ret_error)
{
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    c->certs = sk_X509_new_null();
    if (!bio || !c->certs)
        abort();
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        if (sk_X509_num(c->certs) >= MAX_CERTS) {
            X509_free(x);
            BIO_free(bio);
            return vo_error_set(ret_error, -EINVAL, "OVA: the certificate '%s' holds more than "
                                "%d certificates", c->name, MAX_CERTS);
        }
        sk_X509_push(c->certs, x);
    }
    BIO_free(bio);
    ERR_clear_error(); /* the end of the PEM, or a malformed one after the good */
    if (sk_X509_num(c->certs) == 0)
        return vo_error_set(ret_error, -EINVAL, "OVA: the certificate '%s' holds no certificate "
                            "(-----BEGIN CERTIFICATE-----) after its signature line", c->name);
    return 0;
}

int vo_ova_cert_parse(const char *cert_name, const char *text, size_t len, VoOvaCert **ret,
                      char **ret_error)
{
    VoOvaCert *c = vo_malloc0(sizeof(*c));
    c->name = vo_strdup(cert_name);
    int r = len > INT32_MAX ? vo_error_set(ret_error, -EINVAL, "OVA: the certificate '%s' is "
                                           "too large", cert_name) : 0;
    size_t pos = 0;
    while (r >= 0 && pos < len && isspace((unsigned char)text[pos]))
        pos++;
    const char *start = text + pos, *nl = memchr(start, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - start) : len - pos;
    if (r >= 0 && n && start[n - 1] == '\r')
        n--;
    _cleanup_free_ char *line = vo_asprintf("%.*s", (int)(n < MAX_LINE ? n : MAX_LINE), start);
    if (r >= 0 && (strlen(line) != n || n == 0))
        r = vo_error_set(ret_error, -EINVAL, "OVA: the certificate '%s' does not start with "
                         "its signature line ALGO(MANIFEST)= HEX", cert_name);
    if (r >= 0)
        r = parse_signature_line(c, line, ret_error);
    if (r >= 0) {
        size_t rest = nl ? (size_t)(nl + 1 - text) : len;
        r = parse_certs(c, text + rest, len - rest, ret_error);
    }
    if (r < 0) {
        vo_ova_cert_free(c);
        return r;
    }
    *ret = c;
    return 0;
}

void vo_ova_cert_free(VoOvaCert *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->file);
    free(c->signature);
    sk_X509_pop_free(c->certs, X509_free);
    free(c);
}

const char *vo_ova_cert_signed_file(const VoOvaCert *c)
{
    return c->file;
}

static char *subject_of(X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        abort();
    X509_NAME_print_ex(bio, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    /* A subject longer than 1 KiB is cut there, not left out: who signed
     * is shown either way. */
    char *s = !data || n <= 0 ? vo_strdup("")
              : n > 1024      ? vo_asprintf("%.1021s...", data)
                              : vo_asprintf("%.*s", (int)n, data);
    BIO_free(bio);
    return s;
}

static bool signature_ok(const VoOvaCert *c, X509 *signer, const char *manifest, size_t len)
{
    EVP_PKEY *key = X509_get0_pubkey(signer);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        abort();
    bool ok = key && EVP_DigestVerifyInit(ctx, NULL, digest_of(c->algo), NULL, key) == 1 &&
              EVP_DigestVerify(ctx, c->signature, c->signature_len,
                               (const unsigned char *)manifest, len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* The signer against the CAs: 0, or -EINVAL with OpenSSL's reason. */
static int chain_check(const VoOvaCert *c, X509 *signer, const char *ca_file, char **ret_error)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!store || !ctx)
        abort();
    int r = 0;
    if (ca_file ? X509_STORE_load_file(store, ca_file) != 1
                : X509_STORE_set_default_paths(store) != 1)
        r = vo_error_set(ret_error, -EINVAL, ca_file ? "ca: '%s' holds no PEM certificate"
                                                     : "the system's CA store cannot be read%s",
                         ca_file ? ca_file : "");
    STACK_OF(X509) *others = sk_X509_new_null();
    for (int i = 1; others && i < sk_X509_num(c->certs); i++)
        sk_X509_push(others, sk_X509_value(c->certs, i));
    if (r >= 0 && (!others || X509_STORE_CTX_init(ctx, store, signer, others) != 1))
        abort();
    if (r >= 0 && X509_verify_cert(ctx) != 1) {
        _cleanup_free_ char *subject = subject_of(signer);
        r = vo_error_set(ret_error, -EINVAL, "OVA: the signer of '%s' (%s) is not trusted: %s; "
                         "give the CA that issued its certificate with --ca FILE (\"ca\")",
                         c->name, subject,
                         X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    }
    sk_X509_free(others); /* the certificates stay c's */
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return r;
}

int vo_ova_cert_verify(const VoOvaCert *c, const char *manifest, size_t manifest_len,
                       const char *ca_file, char **ret_signer, char **ret_error)
{
    X509 *signer = sk_X509_value(c->certs, 0);
    if (!signature_ok(c, signer, manifest, manifest_len))
        return vo_error_set(ret_error, -EINVAL, "OVA: the signature in '%s' does not match the "
                            "manifest '%s' and the certificate it holds (an altered manifest, "
                            "or signed by another key)", c->name, c->file);
    int r = chain_check(c, signer, ca_file, ret_error);
    if (r < 0)
        return r;
    /* A certificate for another use (a web server's, which any public CA
     * issues to anyone) does not sign software: one whose extended key
     * usage is stated must include code signing. */
    uint32_t usage = X509_get_extended_key_usage(signer);
    if (usage != UINT32_MAX && !(usage & (XKU_CODE_SIGN | XKU_ANYEKU))) {
        _cleanup_free_ char *subject = subject_of(signer);
        return vo_error_set(ret_error, -EINVAL, "OVA: the signer of '%s' (%s) is not a code "
                            "signing certificate (its extended key usage lacks codeSigning)",
                            c->name, subject);
    }
    *ret_signer = subject_of(signer);
    return 0;
}
