/* sha256.c: SHA-256 of a file through OpenSSL's EVP digest interface, read
 * as fast as the disk allows or paced to a rate; the calling thread's cancel
 * token (util/cancel.h) stops it between chunks. */
#include "util/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>

#include "util/cancel.h"
#include "util/util.h"

/* Waits until ms_from_start after start (vo_now_ms), or until cancel is
 * asked; false when it was. */
static bool pace(int64_t start, int64_t ms_from_start)
{
    for (;;) {
        if (vo_cancelled())
            return false;
        int64_t left = start + ms_from_start - vo_now_ms();
        if (left <= 0)
            return true;
        struct pollfd p = { .fd = vo_cancel_fd(), .events = POLLIN };
        (void)poll(&p, p.fd >= 0 ? 1 : 0, (int)(left < 1000 ? left : 1000));
    }
}

int vo_sha256_file_limited(const char *path, uint64_t rate, char ret[VO_SHA256_HEX_LEN + 1])
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return -ENOMEM;
    }
    /* Paced: chunks of about a tenth of a second's worth, so the pace is
     * even and a cancel is seen within one. */
    size_t chunk = 1 << 20;
    if (rate && rate / 10 < chunk)
        chunk = rate / 10 > 4096 ? (size_t)(rate / 10) : 4096;
    _cleanup_free_ unsigned char *buf = vo_malloc0(chunk);
    int64_t start = vo_now_ms();
    uint64_t done = 0;
    int r = 0;
    for (;;) {
        if (vo_cancelled()) {
            r = -ECANCELED;
            break;
        }
        ssize_t n = read(fd, buf, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            r = -EIO;
            break;
        }
        done += (uint64_t)n;
        if (rate && !pace(start, (int64_t)(done * 1000 / rate))) {
            r = -ECANCELED;
            break;
        }
    }
    unsigned char digest[32];
    unsigned len = 0;
    if (r == 0 && (EVP_DigestFinal_ex(ctx, digest, &len) != 1 || len != sizeof(digest)))
        r = -EIO;
    EVP_MD_CTX_free(ctx);
    if (r < 0)
        return r;
    for (unsigned i = 0; i < len; i++)
        snprintf(ret + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

int vo_sha256_file(const char *path, char ret[VO_SHA256_HEX_LEN + 1])
{
    return vo_sha256_file_limited(path, 0, ret);
}

void vo_sha256_data(const void *data, size_t len, char ret[VO_SHA256_HEX_LEN + 1])
{
    VoSha256 *s = vo_sha256_new();
    if (!s || vo_sha256_update(s, data, len) < 0 || vo_sha256_finish(s, ret) < 0)
        abort();
}

/* ---- streams ---- */

struct VoSha256 {
    EVP_MD_CTX *ctx;
};

VoSha256 *vo_sha256_new(void)
{
    VoSha256 *s = vo_malloc0(sizeof(*s));
    s->ctx = EVP_MD_CTX_new();
    if (!s->ctx || EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1) {
        vo_sha256_free(s);
        return NULL;
    }
    return s;
}

int vo_sha256_update(VoSha256 *s, const void *data, size_t len)
{
    return EVP_DigestUpdate(s->ctx, data, len) == 1 ? 0 : -EIO;
}

int vo_sha256_finish(VoSha256 *s, char ret[VO_SHA256_HEX_LEN + 1])
{
    unsigned char digest[32];
    unsigned len = 0;
    int r = EVP_DigestFinal_ex(s->ctx, digest, &len) == 1 && len == sizeof(digest) ? 0 : -EIO;
    vo_sha256_free(s);
    for (unsigned i = 0; r == 0 && i < len; i++)
        snprintf(ret + 2 * i, 3, "%02x", digest[i]);
    return r;
}

void vo_sha256_free(VoSha256 *s)
{
    if (!s)
        return;
    EVP_MD_CTX_free(s->ctx);
    free(s);
}
