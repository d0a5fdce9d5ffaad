/* peer-sndbuf.c: widening the send buffer of the process at the other end of
 * a connected Unix stream socket.
 *
 * Why: QEMU's 16550 hands its chardev one byte per send, and Linux charges
 * each one-byte send about 768 bytes of the sender's send buffer, so the
 * default 208 KiB holds only 278 unread bytes. Once full, QEMU keeps the
 * byte in the UART (THR not empty) until its main loop sees the socket
 * writable again, and OVMF's serial driver gives up a whole string when
 * THR stays busy past its write timeout (about 1.5 ms of stall at 115200
 * baud: TerminalDxe sets the port's timeout to two characters' time). So a
 * console reader scheduled a few milliseconds late loses firmware output.
 * QEMU has no option for its socket's buffer; its accepted socket is
 * reached with pidfd_getfd (docs/internals.md, Serial consoles). */
#include "util/peer-sndbuf.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/spawn.h"

/* Is theirs a connected (not listening) stream socket bound to addr? */
static bool is_peer_socket(int theirs, const struct sockaddr_un *addr, socklen_t addr_len)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(theirs, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
        return false;
    len = sizeof(listening);
    if (getsockopt(theirs, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || listening)
        return false;
    struct sockaddr_un own;
    socklen_t own_len = sizeof(own);
    if (getsockname(theirs, (struct sockaddr *)&own, &own_len) < 0 || own.sun_family != AF_UNIX)
        return false;
    return own_len == addr_len && memcmp(own.sun_path, addr->sun_path,
                                         addr_len - offsetof(struct sockaddr_un, sun_path)) == 0;
}

/* 0 when theirs got bytes; -EPERM when only SO_SNDBUF was allowed and
 * net.core.wmem_max stopped it short (it is widened that far). */
static int set_sndbuf(int theirs, int bytes)
{
    if (setsockopt(theirs, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) == 0)
        return 0;
    int forced = -errno;
    if (setsockopt(theirs, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)) < 0)
        return -errno;
    int got = 0;
    socklen_t len = sizeof(got);
    if (getsockopt(theirs, SOL_SOCKET, SO_SNDBUF, &got, &len) < 0)
        return -errno;
    return got / 2 >= bytes ? 0 : forced; /* Linux reports twice what it was given */
}

/* Is the other end of *fd (a connected socket) still open? */
static bool peer_still_open(pid_t pid, void *fd)
{
    (void)pid;
    struct pollfd p = { .fd = *(int *)fd, .events = POLLRDHUP };
    return poll(&p, 1, 0) >= 0 && !(p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

int vo_unix_grow_peer_sndbuf(int fd, int bytes)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    struct sockaddr_un peer;
    socklen_t peer_len = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) < 0)
        return -errno;
    if (peer.sun_family != AF_UNIX || peer_len <= offsetof(struct sockaddr_un, sun_path) ||
        peer.sun_path[0] == '\0')
        return -EADDRNOTAVAIL;
    /* QEMU's end still open after the pidfd is taken: the pidfd is QEMU's,
     * not a process that got its pid after QEMU ended (its fds are looked
     * at by the pid, in /proc). */
    int pidfd = vo_pidfd_open_if(cred.pid, peer_still_open, &fd);
    if (pidfd < 0)
        return pidfd;
    char dir_path[64];
    snprintf(dir_path, sizeof(dir_path), "/proc/%d/fd", (int)cred.pid);
    DIR *dir = opendir(dir_path);
    if (!dir) {
        int r = -errno;
        close(pidfd);
        return r;
    }
    int r = -ENOENT;
    for (struct dirent *e; (e = readdir(dir));) {
        char target[64];
        ssize_t n = readlinkat(dirfd(dir), e->d_name, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strncmp(target, "socket:", 7) != 0)
            continue;
        int theirs = (int)syscall(SYS_pidfd_getfd, pidfd, atoi(e->d_name), 0);
        if (theirs < 0) {
            if (errno == EBADF)
                continue; /* closed meanwhile */
            r = -errno; /* -EPERM, or -EMFILE here: not "no such socket" */
            break;
        }
        bool found = is_peer_socket(theirs, &peer, peer_len);
        if (found)
            r = set_sndbuf(theirs, bytes);
        close(theirs);
        if (found)
            break;
    }
    closedir(dir);
    close(pidfd);
    return r;
}
