/* qemu-uffd.c: a confined QEMU's moment of access to /dev/userfaultfd
 * (qemu-uffd.h). */
#include "qemu/qemu-uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/util.h"

#define UFFD_DEVICE "/dev/userfaultfd"

int vo_qemu_uffd_grant(const VoHvDriver *d, VoQemuUffdGrant *ret, char **ret_error)
{
    *ret = (VoQemuUffdGrant){ .fd = -1 };
    if (!d || !d->qemu_user)
        return 0; /* QEMU runs as root: it opens the device itself */
    /* Opening it makes nothing (a userfaultfd comes from its ioctl). */
    int fd = open(UFFD_DEVICE, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vo_error_set(ret_error, errno == ENOENT ? -EOPNOTSUPP : -errno,
                            "cannot open %s (needed for a post-copy migration): %s",
                            UFFD_DEVICE, strerror(errno));
    struct stat was;
    if (flock(fd, LOCK_EX) < 0 || fstat(fd, &was) < 0) {
        int e = errno;
        close(fd);
        return vo_error_set(ret_error, -e, "cannot lock %s: %s", UFFD_DEVICE, strerror(e));
    }
    if (fchown(fd, (uid_t)-1, d->qemu_gid) < 0 || fchmod(fd, (was.st_mode & 07777) | 0060) < 0) {
        int e = errno;
        (void)fchown(fd, (uid_t)-1, was.st_gid);
        close(fd);
        return vo_error_set(ret_error, -e, "cannot give %s to QEMU's group: %s", UFFD_DEVICE,
                            strerror(e));
    }
    *ret = (VoQemuUffdGrant){ .fd = fd, .was = was };
    return 0;
}

void vo_qemu_uffd_revoke(VoQemuUffdGrant *g)
{
    if (g->fd < 0)
        return;
    if (fchmod(g->fd, g->was.st_mode & 07777) < 0 || fchown(g->fd, (uid_t)-1, g->was.st_gid) < 0)
        log_error("cannot give %s back (mode %o, group %u): %s", UFFD_DEVICE,
                  (unsigned)(g->was.st_mode & 07777), (unsigned)g->was.st_gid, strerror(errno));
    close(g->fd); /* the lock with it */
    g->fd = -1;
}
