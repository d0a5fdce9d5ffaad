/* sha256.h: SHA-256 of a file (OpenSSL libcrypto), as lower-case hex. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define VO_SHA256_HEX_LEN 64

/* Reads path to its end; ret gets 64 hex digits and a NUL. 0 or -errno;
 * -ECANCELED when the calling thread's work is cancelled (util/cancel.h). */
int vo_sha256_file(const char *path, char ret[VO_SHA256_HEX_LEN + 1]);
/* The same, reading at most rate bytes/s (0: no limit). */
int vo_sha256_file_limited(const char *path, uint64_t rate, char ret[VO_SHA256_HEX_LEN + 1]);
/* SHA-256 of len bytes of data. */
void vo_sha256_data(const void *data, size_t len, char ret[VO_SHA256_HEX_LEN + 1]);

/* SHA-256 of a stream, fed in pieces (a file as it is received). */
typedef struct VoSha256 VoSha256;
VoSha256 *vo_sha256_new(void); /* NULL when out of memory */
int vo_sha256_update(VoSha256 *s, const void *data, size_t len); /* 0 or -EIO */
/* The digest as 64 hex digits and a NUL; frees s. 0 or -EIO. */
int vo_sha256_finish(VoSha256 *s, char ret[VO_SHA256_HEX_LEN + 1]);
void vo_sha256_free(VoSha256 *s);
