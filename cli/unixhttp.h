/* unixhttp.h: one HTTP/1.1 request with an in-memory body over vireod's Unix
 * socket, without libcurl: loading libcurl and the ~30 libraries it pulls in
 * costs every command ~10 ms, more than all the rest of `vireo vm list`. */
#pragma once

#include <stddef.h>

typedef struct {
    long status;
    char *body; /* NUL-terminated; len excludes the NUL */
    size_t len;
} UnixHttpReply;

/* METHOD path on the socket at socket_path, with body (body_len bytes,
 * content_type) or none (body NULL), answered within timeout_ms. Returns 0
 * with the answer in *ret (whatever its status), or -errno: the connect's
 * error (-ENOENT, -ECONNREFUSED, ...; *ret_connect_failed set), -ETIMEDOUT,
 * -EBADMSG for a malformed answer, -EFBIG for one over max_len bytes. */
int unix_http_request(const char *socket_path, const char *method, const char *path,
                      const char *content_type, const char *body, size_t body_len,
                      const char *user_agent, int timeout_ms, size_t max_len,
                      UnixHttpReply *ret, int *ret_connect_failed);
