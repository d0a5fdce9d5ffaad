/* peer-sndbuf.h: widening the send buffer of the process at the other end of
 * a connected Unix stream socket (QEMU's console, see peer-sndbuf.c). */
#pragma once

/* Sets the send buffer of the peer's own socket (the process that listened
 * on the path fd is connected to; found in its fd table by pidfd_getfd) to
 * bytes, forced past net.core.wmem_max where allowed. 0 when done;
 * -EADDRNOTAVAIL for a peer with no path (a socketpair), -ENOENT when the
 * peer holds no such socket (yet), -ESRCH when the peer has ended (its
 * pid may be another's), other -errno (-EPERM: not allowed, or not past
 * net.core.wmem_max, to which it is then widened). */
int vo_unix_grow_peer_sndbuf(int fd, int bytes);
