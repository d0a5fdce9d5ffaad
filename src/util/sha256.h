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
