/* unix-socket.c: Unix stream sockets by path (see unix-socket.h). */
#include "util/unix-socket.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/util.h"

static int make_address(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    strcpy(sa->sun_path, path);
    return 0;
}

int vo_unix_connect(const char *path, int extra_type_flags)
{
    struct sockaddr_un sa;
    int r = make_address(path, &sa);
    if (r < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | extra_type_flags, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int vo_unix_connect_wait(const char *path, int timeout_ms)
{
    int64_t deadline = vo_now_ms() + timeout_ms;
    for (;;) {
        /* Non-blocking: a listener whose backlog is full (a stopped or
         * stuck process) answers EAGAIN instead of holding the caller. */
        int fd = vo_unix_connect(path, SOCK_NONBLOCK);
        if (fd >= 0 || (fd != -EAGAIN && fd != -EINTR))
            return fd;
        int64_t left = deadline - vo_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        poll(NULL, 0, left < 20 ? (int)left : 20);
    }
}

int vo_unix_listen(const char *path, int mode)
{
    struct sockaddr_un sa;
    int r = make_address(path, &sa);
    if (r < 0)
        return r;
    int live = vo_unix_connect(path, 0);
    if (live >= 0) {
        close(live);
        return -EADDRINUSE;
    }
    (void)unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0 ||
        chmod(path, (mode_t)mode) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}
