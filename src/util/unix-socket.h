/* unix-socket.h: connecting to and listening on Unix stream sockets by path. */
#pragma once

/* A connected SOCK_STREAM|SOCK_CLOEXEC socket (plus extra_type_flags, e.g.
 * SOCK_NONBLOCK), or -errno (-ENAMETOOLONG when path does not fit). */
int vo_unix_connect(const char *path, int extra_type_flags);

/* A non-blocking connected socket to path; a listener whose backlog is full
 * (its process stopped or stuck) is retried until timeout_ms, then
 * -ETIMEDOUT. Other errors (-ENOENT, -ECONNREFUSED) are answered at once. */
int vo_unix_connect_wait(const char *path, int timeout_ms);

/* A listening socket bound to path with the given mode. A socket file nobody
 * answers on is stale and replaced; a live one gives -EADDRINUSE. */
int vo_unix_listen(const char *path, int mode);
