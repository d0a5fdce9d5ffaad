/* sha256.c: SHA-256 of a file through OpenSSL's EVP digest interface. */
#include "util/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>

#include "util/util.h"

int vo_sha256_file(const char *path, char ret[VO_SHA256_HEX_LEN + 1])
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return -ENOMEM;
    }
    static const size_t chunk = 1 << 20;
    _cleanup_free_ unsigned char *buf = vo_malloc0(chunk);
    int r = 0;
    for (;;) {
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
