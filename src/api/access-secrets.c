/* access-secrets.c: passwords (argon2id, libsodium), API tokens and
 * session secrets (random, stored as SHA-256), and the parsing of the
 * Authorization and Cookie headers and of durations. */
#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/access.h"
#include "util/util.h"

static void sodium_ready(void)
{
    if (sodium_init() < 0)
        abort();
}

int vo_access_password_hash(const char *password, char **ret_hash)
{
    sodium_ready();
    if (!password || !password[0])
        return -EINVAL;
    char out[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return -ENOMEM;
    *ret_hash = vo_strdup(out);
    return 0;
}

bool vo_access_password_verify(const char *hash, const char *password)
{
    sodium_ready();
    if (!hash || !password || strlen(hash) >= crypto_pwhash_STRBYTES)
        return false;
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

void vo_access_random_secret(char out[VO_ACCESS_SECRET_LEN + 1])
{
    sodium_ready();
    unsigned char raw[32];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, VO_ACCESS_SECRET_LEN + 1, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
}

int vo_access_token_new(VoTokenParts *ret, char **ret_text)
{
    sodium_ready();
    unsigned char id[VO_ACCESS_TOKEN_ID_LEN / 2];
    randombytes_buf(id, sizeof(id));
    sodium_bin2hex(ret->id, sizeof(ret->id), id, sizeof(id));
    vo_access_random_secret(ret->secret);
    *ret_text = vo_asprintf("vireo_%s_%s", ret->id, ret->secret);
    return 0;
}

static bool is_b64url(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_';
}

int vo_access_token_parse(const char *text, VoTokenParts *ret)
{
    if (!text || strncmp(text, "vireo_", 6) != 0)
        return -EINVAL;
    const char *id = text + 6;
    for (size_t i = 0; i < VO_ACCESS_TOKEN_ID_LEN; i++)
        if (!isxdigit((unsigned char)id[i]) || isupper((unsigned char)id[i]))
            return -EINVAL;
    const char *secret = id + VO_ACCESS_TOKEN_ID_LEN;
    if (*secret++ != '_' || strlen(secret) != VO_ACCESS_SECRET_LEN)
        return -EINVAL;
    for (size_t i = 0; i < VO_ACCESS_SECRET_LEN; i++)
        if (!is_b64url(secret[i]))
            return -EINVAL;
    memcpy(ret->id, id, VO_ACCESS_TOKEN_ID_LEN);
    ret->id[VO_ACCESS_TOKEN_ID_LEN] = '\0';
    memcpy(ret->secret, secret, VO_ACCESS_SECRET_LEN + 1);
    return 0;
}

void vo_access_secret_digest(const char *secret, char out[65])
{
    sodium_ready();
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
    sodium_bin2hex(out, 65, h, sizeof(h));
}

bool vo_access_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i < lb ? i : 0]);
    return diff == 0 && lb > 0;
}

const char *vo_access_bearer(const char *authorization)
{
    if (!authorization)
        return NULL;
    while (*authorization == ' ')
        authorization++;
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *t = authorization + 7;
    while (*t == ' ')
        t++;
    return *t ? t : NULL;
}

int vo_access_cookie_get(const char *header, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        size_t n = strcspn(p, ";");
        if (n > nlen && !strncmp(p, name, nlen) && p[nlen] == '=') {
            size_t vlen = n - nlen - 1;
            while (vlen > 0 && p[nlen + vlen] == ' ')
                vlen--;
            if (vlen + 1 > size)
                return -EINVAL;
            memcpy(out, p + nlen + 1, vlen);
            out[vlen] = '\0';
            return 0;
        }
        p += n;
    }
    return -ENOENT;
}

int vo_access_duration_parse(const char *text, int64_t *ret_seconds)
{
    if (!text || !isdigit((unsigned char)text[0]))
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || v == 0)
        return -EINVAL;
    int64_t unit = 1;
    if (*end) {
        if (end[1])
            return -EINVAL;
        switch (*end) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        case 'w': unit = 7 * 86400; break;
        default: return -EINVAL;
        }
    }
    if (v > (unsigned long long)(INT64_C(100) * 366 * 86400) / (unsigned long long)unit)
        return -EINVAL; /* beyond a century */
    *ret_seconds = (int64_t)v * unit;
    return 0;
}
