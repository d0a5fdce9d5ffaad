/* join-token.c: join tokens made, encoded (base64url of compact JSON),
 * parsed strictly (every field checked, unknown fields refused) and checked
 * against the stored hash of their secret in constant time. */
#include "cluster/join-token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "util/time-format.h"
#include "util/util.h"

#define NAME_MAX_LEN 64
#define ADDRESS_MAX_LEN 255
#define TOKEN_ID_BYTES 8
#define SECRET_BYTES 32
#define NOT_A_TOKEN "token is not a vireo join token"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *base64url_encode(const unsigned char *in, size_t n)
{
    char *out = vo_malloc0(n / 3 * 4 + 5);
    char *o = out;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64url[v >> 18 & 63];
        *o++ = b64url[v >> 12 & 63];
        *o++ = b64url[v >> 6 & 63];
        *o++ = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = b64url[v >> 18 & 63];
        *o++ = b64url[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = b64url[v >> 18 & 63];
        *o++ = b64url[v >> 12 & 63];
        *o++ = b64url[v >> 6 & 63];
    }
    *o = 0;
    return out;
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Strict: only the url alphabet, no padding, no length of 1 mod 4, unused
 * trailing bits zero (so that every token has exactly one spelling). */
static int base64url_decode(const char *in, size_t n, unsigned char **ret, size_t *ret_len)
{
    if (n % 4 == 1)
        return -EILSEQ;
    _cleanup_free_ unsigned char *out = vo_malloc0(n / 4 * 3 + 3);
    size_t len = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value(in[i]);
        if (v < 0)
            return -EILSEQ;
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -EILSEQ;
    *ret = TAKE_PTR(out);
    *ret_len = len;
    return 0;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

static bool is_hex(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

/* "HOST:PORT" or "[V6]:PORT": printable, no spaces, port 1..65535. */
static bool address_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > ADDRESS_MAX_LEN)
        return false;
    for (const char *c = s; *c; c++)
        if (*c <= ' ' || *c >= 127 || *c == '/' || *c == '@')
            return false;
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5)
        return false;
    long port = 0;
    for (const char *c = colon + 1; *c; c++) {
        if (*c < '0' || *c > '9')
            return false;
        port = port * 10 + (*c - '0');
    }
    if (port < 1 || port > 65535)
        return false;
    if (s[0] == '[')
        return colon[-1] == ']' && colon - s > 2;
    return memchr(s, ':', (size_t)(colon - s)) == NULL; /* a bare IPv6 needs brackets */
}

void vo_join_token_clear(VoJoinToken *t)
{
    if (!t)
        return;
    free(t->cluster);
    free(t->id);
    free(t->address);
    OPENSSL_cleanse(t->secret, sizeof(t->secret));
    memset(t, 0, sizeof(*t));
}

int vo_join_token_make(const char *cluster, const char *ca_sha256, const char *address,
                       int64_t ttl_s, int64_t now_s, VoJoinToken *ret, char **ret_error)
{
    if (!cluster || !name_ok(cluster))
        return vo_error_set(ret_error, -EINVAL, "cluster id '%s' is not 1-64 letters, digits, '-', '_' or '.'",
                            cluster ? cluster : "");
    if (!ca_sha256 || !is_hex(ca_sha256, VO_JOIN_TOKEN_HEX_LEN, VO_JOIN_TOKEN_HEX_LEN))
        return vo_error_set(ret_error, -EINVAL, "CA fingerprint is not 64 lower-case hex digits");
    if (!address || !address_ok(address))
        return vo_error_set(ret_error, -EINVAL, "join address '%s' is not ADDRESS:PORT",
                            address ? address : "");
    if (ttl_s <= 0 || now_s < 0 || ttl_s > INT64_MAX - now_s)
        return vo_error_set(ret_error, -EINVAL, "token lifetime %lld s is not positive",
                            (long long)ttl_s);
    unsigned char id[TOKEN_ID_BYTES], secret[SECRET_BYTES];
    if (RAND_bytes(id, sizeof(id)) != 1 || RAND_bytes(secret, sizeof(secret)) != 1)
        return vo_error_set(ret_error, -EIO, "no random bytes for a join token");
    VoJoinToken t = { .cluster = vo_strdup(cluster), .expires = now_s + ttl_s,
                      .address = vo_strdup(address) };
    t.id = vo_malloc0(2 * sizeof(id) + 1);
    hex(id, sizeof(id), t.id);
    hex(secret, sizeof(secret), t.secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    memcpy(t.ca_sha256, ca_sha256, VO_JOIN_TOKEN_HEX_LEN + 1);
    *ret = t;
    return 0;
}

char *vo_join_token_encode(const VoJoinToken *t)
{
    json_t *doc = json_pack("{s:i, s:s, s:s, s:s, s:I, s:s, s:s}", "v", VO_JOIN_TOKEN_VERSION,
                            "cluster", t->cluster, "id", t->id, "secret", t->secret, "expires",
                            (json_int_t)t->expires, "ca_sha256", t->ca_sha256, "address", t->address);
    if (!doc)
        abort(); /* only on a NULL field or no memory: a caller's bug */
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text)
        abort();
    char *out = base64url_encode((const unsigned char *)text, strlen(text));
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    return out;
}

int vo_join_token_parse(const char *text, int64_t now_s, VoJoinToken *ret, char **ret_error)
{
    size_t n = text ? strnlen(text, VO_JOIN_TOKEN_MAX_LEN + 1) : 0;
    if (n == 0 || n > VO_JOIN_TOKEN_MAX_LEN)
        return vo_error_set(ret_error, -EILSEQ, NOT_A_TOKEN " (%s)",
                            n ? "too long" : "it is empty");
    _cleanup_free_ unsigned char *raw = NULL;
    size_t raw_len = 0;
    if (base64url_decode(text, n, &raw, &raw_len) < 0)
        return vo_error_set(ret_error, -EILSEQ, NOT_A_TOKEN " (not base64url text)");
    json_error_t jerr;
    json_t *root = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, &jerr);
    OPENSSL_cleanse(raw, raw_len);
    if (!json_is_object(root)) {
        json_decref(root);
        return vo_error_set(ret_error, -EBADMSG, NOT_A_TOKEN " (no JSON object inside)");
    }
    int r = 0;
    json_t *v = json_object_get(root, "v");
    const char *cluster, *id, *secret, *ca, *address;
    json_int_t version, expires;
    if (!json_is_integer(v))
        r = vo_error_set(ret_error, -EINVAL, NOT_A_TOKEN " (no version field 'v')");
    else if (json_integer_value(v) != VO_JOIN_TOKEN_VERSION)
        r = vo_error_set(ret_error, -EPROTONOSUPPORT,
                         "token version %lld is not supported by this vireo (it reads version %d)",
                         (long long)json_integer_value(v), VO_JOIN_TOKEN_VERSION);
    else if (json_unpack_ex(root, &jerr, JSON_STRICT, "{s:I, s:s, s:s, s:s, s:I, s:s, s:s}", "v",
                            &version, "cluster", &cluster, "id", &id, "secret", &secret, "expires",
                            &expires, "ca_sha256", &ca, "address", &address) < 0)
        r = vo_error_set(ret_error, -EINVAL, NOT_A_TOKEN " (%s)", jerr.text);
    else if (!name_ok(cluster))
        r = vo_error_set(ret_error, -EINVAL, NOT_A_TOKEN " (bad cluster id)");
    else if (!is_hex(id, 1, NAME_MAX_LEN))
        r = vo_error_set(ret_error, -EINVAL, NOT_A_TOKEN " (bad token id)");
    else if (!is_hex(secret, VO_JOIN_TOKEN_HEX_LEN, VO_JOIN_TOKEN_HEX_LEN))
        r = vo_error_set(ret_error, -EINVAL, NOT_A_TOKEN " (bad secret)");
    else if (!is_hex(ca, VO_JOIN_TOKEN_HEX_LEN, VO_JOIN_TOKEN_HEX_LEN))
        r = vo_error_set(ret_error, -EINVAL, NOT_A_TOKEN " (bad CA fingerprint)");
    else if (!address_ok(address))
        r = vo_error_set(ret_error, -EINVAL, NOT_A_TOKEN " (bad address)");
    else if (expires <= 0)
        r = vo_error_set(ret_error, -EINVAL, NOT_A_TOKEN " (bad expiry)");
    else if (expires <= now_s) {
        char when[32];
        vo_time_format((int64_t)expires * 1000, when);
        r = vo_error_set(ret_error, -EKEYEXPIRED,
                         "token expired at %s: make a new one on a cluster host", when);
    } else {
        VoJoinToken t = { .cluster = vo_strdup(cluster), .id = vo_strdup(id), .expires = expires,
                          .address = vo_strdup(address) };
        memcpy(t.secret, secret, VO_JOIN_TOKEN_HEX_LEN + 1);
        memcpy(t.ca_sha256, ca, VO_JOIN_TOKEN_HEX_LEN + 1);
        *ret = t;
    }
    json_decref(root);
    return r;
}

void vo_join_token_secret_hash(const char *secret, char ret[VO_JOIN_TOKEN_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(secret, strlen(secret), md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        abort(); /* SHA-256 is always there in libcrypto */
    hex(md, n, ret);
}

json_t *vo_join_token_record(const VoJoinToken *t)
{
    char h[VO_JOIN_TOKEN_HEX_LEN + 1];
    vo_join_token_secret_hash(t->secret, h);
    return json_pack("{s:s, s:I}", "secret_sha256", h, "expires", (json_int_t)t->expires);
}

int vo_join_token_check(const VoJoinToken *t, const json_t *record, int64_t now_s, char **ret_error)
{
    const char *stored = json_string_value(json_object_get(record, "secret_sha256"));
    json_t *exp = json_object_get(record, "expires");
    if (!stored || !is_hex(stored, VO_JOIN_TOKEN_HEX_LEN, VO_JOIN_TOKEN_HEX_LEN) ||
        !json_is_integer(exp) || json_integer_value(exp) <= 0)
        return vo_error_set(ret_error, -EINVAL, "stored join token record is malformed");
    char h[VO_JOIN_TOKEN_HEX_LEN + 1];
    vo_join_token_secret_hash(t->secret, h);
    int differ = CRYPTO_memcmp(h, stored, VO_JOIN_TOKEN_HEX_LEN);
    OPENSSL_cleanse(h, sizeof(h));
    if (differ)
        return vo_error_set(ret_error, -EACCES, "join token is not valid");
    if (json_integer_value(exp) <= now_s) {
        char when[32];
        vo_time_format((int64_t)json_integer_value(exp) * 1000, when);
        return vo_error_set(ret_error, -EKEYEXPIRED, "token expired at %s: make a new one on a cluster host", when);
    }
    return 0;
}
