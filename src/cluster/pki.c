/* pki.c: the cluster CA and host certificates with OpenSSL 3's EVP and X509
 * interfaces: key generation (EC P-256), signing, PEM in and out, atomic
 * PEM files (keys 0600 from the first byte), fingerprints and chain checks.
 * Every OpenSSL failure is logged once here with OpenSSL's own error text. */
#include "cluster/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

/* Both end up in a certificate's subject CN, which X.509 caps at 64 bytes:
 * a host name is one DNS label, the CA's CN is "vireo cluster " and the id. */
#define HOST_NAME_MAX_LEN 63
#define CLUSTER_ID_MAX_LEN 48
/* Certificates start an hour back: hosts' clocks may differ a little. */
#define NOT_BEFORE_SKEW_S (-3600)

/* Logs what failed with OpenSSL's queued errors, clears them, returns r. */
static int ossl_fail(int r, const char *what)
{
    char all[1024] = "";
    size_t used = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof(one));
        int n = snprintf(all + used, sizeof(all) - used, "%s%s", used ? "; " : "", one);
        if (n < 0 || (size_t)n >= sizeof(all) - used)
            break;
        used += (size_t)n;
    }
    log_error("pki: %s failed: %s", what, used ? all : "(no OpenSSL error)");
    ERR_clear_error();
    return r;
}

void vo_pki_pair_clear(VoPkiPair *p)
{
    if (!p)
        return;
    if (p->key_pem) {
        OPENSSL_cleanse(p->key_pem, strlen(p->key_pem));
        free(p->key_pem);
    }
    free(p->cert_pem);
    p->cert_pem = p->key_pem = NULL;
}

/* A password callback that never gives one: an encrypted key fails to load
 * instead of OpenSSL prompting on a terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    return 0;
}

static X509 *cert_parse(const char *pem)
{
    if (!pem)
        return NULL;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return NULL;
    X509 *x = PEM_read_bio_X509(bio, NULL, no_password, NULL);
    BIO_free(bio);
    return x;
}

static EVP_PKEY *key_parse(const char *pem)
{
    if (!pem)
        return NULL;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return NULL;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
    BIO_free(bio);
    return k;
}

/* A copy of the memory BIO's contents, NUL-terminated. */
static char *bio_take(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0)
        return NULL;
    char *s = vo_malloc0((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    return s;
}

static int pem_out(X509 *x, EVP_PKEY *key, VoPkiPair *ret)
{
    BIO *cb = BIO_new(BIO_s_mem());
    BIO *kb = BIO_new(BIO_s_secmem());
    int r = 0;
    if (!cb || !kb || PEM_write_bio_X509(cb, x) != 1 ||
        PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1) {
        r = ossl_fail(-ENOMEM, "writing PEM");
    } else {
        ret->cert_pem = bio_take(cb);
        ret->key_pem = bio_take(kb);
        if (!ret->cert_pem || !ret->key_pem) {
            vo_pki_pair_clear(ret);
            r = -EIO;
        }
    }
    BIO_free(cb);
    BIO_free(kb);
    return r;
}

static EVP_PKEY *key_new(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!k)
        (void)ossl_fail(-EIO, "EC P-256 key generation");
    return k;
}

/* A positive random 159-bit serial (RFC 5280: at most 20 octets, > 0). */
static int set_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    int ok = bn && BN_rand(bn, 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1;
    if (ok && BN_is_zero(bn))
        ok = BN_set_word(bn, 1) == 1;
    ok = ok && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? 0 : ossl_fail(-EIO, "serial number");
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok ? 0 : ossl_fail(-EIO, value);
}

/* A version 3 certificate for key with subject CN cn, valid days from an
 * hour ago, issued by issuer (NULL: by itself). */
static X509 *cert_new(EVP_PKEY *key, const char *cn, X509 *issuer, long days)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    if (!x || !name || X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) < 0 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), NOT_BEFORE_SKEW_S) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) ||
        X509_set_pubkey(x, key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) != 1 ||
        X509_set_subject_name(x, name) != 1 ||
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) != 1) {
        (void)ossl_fail(-EIO, "certificate fields");
        X509_free(x);
        x = NULL;
    }
    X509_NAME_free(name);
    return x;
}

static bool cluster_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > CLUSTER_ID_MAX_LEN)
        return false;
    for (const char *c = id; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.'))
            return false;
    return true;
}

int vo_pki_ca_make(const char *cluster_id, VoPkiPair *ret_ca)
{
    if (!cluster_id_ok(cluster_id))
        return -EINVAL;
    EVP_PKEY *key = key_new();
    if (!key)
        return -EIO;
    _cleanup_free_ char *cn = vo_asprintf("vireo cluster %s", cluster_id);
    X509 *x = cert_new(key, cn, NULL, VO_PKI_CA_DAYS);
    int r = x ? 0 : -EIO;
    X509V3_CTX ctx;
    if (r == 0) {
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509V3_set_ctx_nodb(&ctx);
        /* Subject key id first: the authority key id is taken from it. */
        r = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
        if (r == 0)
            r = add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        if (r == 0)
            r = add_ext(x, &ctx, NID_subject_key_identifier, "hash");
        if (r == 0)
            r = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
    }
    if (r == 0 && X509_sign(x, key, EVP_sha256()) <= 0)
        r = ossl_fail(-EIO, "signing the CA certificate");
    VoPkiPair out = { 0 };
    if (r == 0)
        r = pem_out(x, key, &out);
    X509_free(x);
    EVP_PKEY_free(key);
    if (r == 0)
        *ret_ca = out;
    return r;
}

static bool host_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > HOST_NAME_MAX_LEN || s[0] == '-' || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || (*c == '.' && c[1] != '.')))
            return false;
    return true;
}

static int push_ip(GENERAL_NAMES *gens, const char *address)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(address);
    GENERAL_NAME *g = ip ? GENERAL_NAME_new() : NULL;
    if (!g) {
        ASN1_OCTET_STRING_free(ip);
        return -EIO;
    }
    GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
    if (sk_GENERAL_NAME_push(gens, g) <= 0) {
        GENERAL_NAME_free(g);
        return -ENOMEM;
    }
    return 0;
}

static int push_dns(GENERAL_NAMES *gens, const char *name)
{
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    GENERAL_NAME *g = s ? GENERAL_NAME_new() : NULL;
    if (!g || ASN1_STRING_set(s, name, -1) != 1) {
        ASN1_IA5STRING_free(s);
        GENERAL_NAME_free(g);
        return -ENOMEM;
    }
    GENERAL_NAME_set0_value(g, GEN_DNS, s);
    if (sk_GENERAL_NAME_push(gens, g) <= 0) {
        GENERAL_NAME_free(g);
        return -ENOMEM;
    }
    return 0;
}

/* SAN: IP:address, IP:127.0.0.1 (unless that is address), DNS:host_name. */
static int add_san(X509 *x, const char *address, const char *host_name)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    if (!gens)
        return -ENOMEM;
    int r = push_ip(gens, address);
    if (r == 0 && strcmp(address, "127.0.0.1") != 0)
        r = push_ip(gens, "127.0.0.1");
    if (r == 0)
        r = push_dns(gens, host_name);
    if (r == 0 && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
        r = ossl_fail(-EIO, "subjectAltName");
    GENERAL_NAMES_free(gens);
    return r;
}

int vo_pki_host_issue(const VoPkiPair *ca, const char *address, const char *host_name,
                      VoPkiPair *ret_host, char **ret_error)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (!address || (inet_pton(AF_INET, address, buf) != 1 && inet_pton(AF_INET6, address, buf) != 1))
        return vo_error_set(ret_error, -EINVAL, "host address '%s' is not an IPv4 or IPv6 address",
                            address ? address : "");
    if (!host_name_ok(host_name))
        return vo_error_set(ret_error, -EINVAL,
                            "host name '%s' is not a DNS name (letters, digits, '-' and '.', at most 63)",
                            host_name ? host_name : "");
    X509 *ca_cert = cert_parse(ca ? ca->cert_pem : NULL);
    EVP_PKEY *ca_key = key_parse(ca ? ca->key_pem : NULL);
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    VoPkiPair out = { 0 };
    int r = 0;
    if (!ca_cert || !ca_key) {
        r = ossl_fail(-EINVAL, "reading the CA certificate and key");
        vo_error_set(ret_error, r, "the cluster CA certificate or key is not valid PEM");
    } else if (EVP_PKEY_eq(X509_get0_pubkey(ca_cert), ca_key) != 1) {
        ERR_clear_error();
        r = vo_error_set(ret_error, -EKEYREJECTED, "the cluster CA key does not belong to its certificate");
    } else if (!(key = key_new()) || !(x = cert_new(key, host_name, ca_cert, VO_PKI_HOST_DAYS))) {
        r = vo_error_set(ret_error, -EIO, "making the host key and certificate failed (see the log)");
    } else if (X509_cmp_time(X509_get0_notAfter(ca_cert), NULL) <= 0) {
        r = vo_error_set(ret_error, -EKEYEXPIRED, "the cluster CA certificate has expired");
    } else {
        /* A host certificate never outlives the CA that signed it. */
        if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca_cert)) > 0 &&
            X509_set1_notAfter(x, X509_get0_notAfter(ca_cert)) != 1)
            r = ossl_fail(-EIO, "clamping the host certificate's validity");
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, ca_cert, x, NULL, NULL, 0);
        X509V3_set_ctx_nodb(&ctx);
        if (r == 0)
            r = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE");
        if (r == 0)
            r = add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature");
        if (r == 0)
            r = add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
        if (r == 0)
            r = add_ext(x, &ctx, NID_subject_key_identifier, "hash");
        if (r == 0)
            r = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
        if (r == 0)
            r = add_san(x, address, host_name);
        if (r == 0 && X509_sign(x, ca_key, EVP_sha256()) <= 0)
            r = ossl_fail(-EIO, "signing the host certificate");
        if (r == 0)
            r = pem_out(x, key, &out);
        if (r < 0)
            vo_error_set(ret_error, r, "making the host certificate failed (see the log)");
    }
    X509_free(x);
    EVP_PKEY_free(key);
    X509_free(ca_cert);
    EVP_PKEY_free(ca_key);
    if (r == 0)
        *ret_host = out;
    return r;
}

/* path written by tmp + fsync + rename; the file has mode from its
 * creation on (fchmod: the umask can neither widen nor narrow it). */
static int write_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
    _cleanup_free_ char *tmp = vo_asprintf("%s.tmp.%d", path, (int)getpid());
    (void)unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 0600);
    if (fd < 0)
        return -errno;
    int r = fchmod(fd, mode) < 0 ? -errno : 0;
    for (size_t off = 0; r == 0 && off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            r = -errno;
        else
            off += (size_t)n;
    }
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        (void)unlink(tmp);
    return r;
}

int vo_pki_pair_write(const char *dir, const char *name, const VoPkiPair *p)
{
    if (!p || !p->cert_pem || !name || !*name || strchr(name, '/'))
        return -EINVAL;
    int r = vo_mkdir_p(dir, 0700);
    if (r < 0)
        return r;
    if (p->key_pem) {
        _cleanup_free_ char *kp = vo_asprintf("%s/%s.key", dir, name);
        if ((r = write_atomic(kp, p->key_pem, strlen(p->key_pem), 0600)) < 0)
            return r;
    }
    _cleanup_free_ char *cp = vo_asprintf("%s/%s.crt", dir, name);
    if ((r = write_atomic(cp, p->cert_pem, strlen(p->cert_pem), 0644)) < 0)
        return r;
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        return -errno;
    return 0;
}

#define PEM_MAX (64 * 1024)

int vo_pki_pair_load(const char *dir, const char *name, bool want_key, VoPkiPair *ret)
{
    _cleanup_free_ char *cp = vo_asprintf("%s/%s.crt", dir, name);
    VoPkiPair p = { 0 };
    int r = vo_read_file(cp, PEM_MAX, &p.cert_pem, NULL);
    if (r < 0)
        return r;
    if (want_key) {
        _cleanup_free_ char *kp = vo_asprintf("%s/%s.key", dir, name);
        if ((r = vo_read_file(kp, PEM_MAX, &p.key_pem, NULL)) < 0) {
            vo_pki_pair_clear(&p);
            return r;
        }
    }
    X509 *x = cert_parse(p.cert_pem);
    EVP_PKEY *k = want_key ? key_parse(p.key_pem) : NULL;
    if (!x || (want_key && !k)) {
        r = ossl_fail(-EINVAL, !x ? "reading the certificate" : "reading the private key");
        log_error("pki: %s/%s.crt or .key: not a PEM certificate or key", dir, name);
    } else if (want_key && EVP_PKEY_eq(X509_get0_pubkey(x), k) != 1) {
        ERR_clear_error();
        log_error("pki: %s/%s.key does not belong to %s", dir, name, cp);
        r = -EKEYREJECTED;
    }
    X509_free(x);
    EVP_PKEY_free(k);
    if (r < 0) {
        vo_pki_pair_clear(&p);
        return r;
    }
    *ret = p;
    return 0;
}

int vo_pki_fingerprint(const char *cert_pem, char ret[VO_SHA256_HEX_LEN + 1])
{
    X509 *x = cert_parse(cert_pem);
    if (!x)
        return ossl_fail(-EINVAL, "reading a certificate");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok = X509_digest(x, EVP_sha256(), md, &n) == 1 && n == 32;
    X509_free(x);
    if (!ok)
        return ossl_fail(-EIO, "certificate digest");
    for (unsigned i = 0; i < n; i++)
        snprintf(ret + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* One verification of cert against ca for purpose; 0 or -EKEYREJECTED. */
static int verify_one(X509 *ca, X509 *cert, int purpose, char **ret_error)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int r = 0;
    if (!store || !ctx || X509_STORE_add_cert(store, ca) != 1 ||
        X509_STORE_CTX_init(ctx, store, cert, NULL) != 1 ||
        X509_STORE_CTX_set_purpose(ctx, purpose) != 1) {
        r = ossl_fail(-ENOMEM, "certificate verification setup");
    } else if (X509_verify_cert(ctx) != 1) {
        int e = X509_STORE_CTX_get_error(ctx);
        ERR_clear_error();
        r = vo_error_set(ret_error, -EKEYREJECTED, "certificate not accepted by the cluster CA: %s",
                         X509_verify_cert_error_string(e));
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return r;
}

int vo_pki_verify(const char *ca_cert_pem, const char *cert_pem, char **ret_error)
{
    X509 *ca = cert_parse(ca_cert_pem);
    X509 *cert = cert_parse(cert_pem);
    int r;
    if (!ca || !cert) {
        ERR_clear_error();
        r = vo_error_set(ret_error, -EINVAL, "%s is not a PEM certificate",
                         !ca ? "the CA certificate" : "the certificate");
    } else if ((r = verify_one(ca, cert, X509_PURPOSE_SSL_SERVER, ret_error)) == 0) {
        r = verify_one(ca, cert, X509_PURPOSE_SSL_CLIENT, ret_error);
    }
    X509_free(ca);
    X509_free(cert);
    return r;
}
