/* sha256.h: SHA-256 of a file (OpenSSL libcrypto), as lower-case hex. */
#pragma once

#define VO_SHA256_HEX_LEN 64

/* Reads path to its end; ret gets 64 hex digits and a NUL. 0 or -errno. */
int vo_sha256_file(const char *path, char ret[VO_SHA256_HEX_LEN + 1]);
