/* qemu-uffd.c: a confined QEMU's moment of access to /dev/userfaultfd
 * (qemu-uffd.h). */
#include "qemu/qemu-uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/util.h"

#define UFFD_DEVICE_DEFAULT "/dev/userfaultfd"
/* The device (test-only: VIREO_TEST_UFFD_DEVICE, a file of the test's). */
#define UFFD_DEVICE uffd_device()

static const char *uffd_device(void)
{
    const char *t = getenv("VIREO_TEST_UFFD_DEVICE");
    return t && *t ? t : UFFD_DEVICE_DEFAULT;
}

/* The device opened and locked (flock, exclusive: a grant under way holds
 * it), its owner and mode in *st; a grant a vireod killed in its window left
 * behind (QEMU's group with access, seen under the lock, so no live grant's)
 * is taken back first: root's group, no group access. fd, or -errno. */
static int open_locked(const VoHvDriver *d, struct stat *st)
{
    /* Opening it makes nothing (a userfaultfd comes from its ioctl). */
    int fd = open(UFFD_DEVICE, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX) < 0 || fstat(fd, st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (st->st_gid == d->qemu_gid && (st->st_mode & 0060)) {
        log_warn("%s: QEMU's group was left with access to it (a vireod killed during a "
                 "post-copy's grant): taken back", UFFD_DEVICE);
        int e = fchmod(fd, st->st_mode & 07707) < 0 ? errno : 0;
        if (fchown(fd, (uid_t)-1, 0) < 0 && !e)
            e = errno;
        if (e)
            log_error("cannot take %s back from QEMU's group: %s", UFFD_DEVICE, strerror(e));
        st->st_mode &= ~(mode_t)0070;
        st->st_gid = 0;
    }
    return fd;
}

void vo_qemu_uffd_repair(const VoHvDriver *d)
{
    struct stat st;
    int fd = d && d->qemu_user ? open_locked(d, &st) : -1;
    if (fd >= 0)
        close(fd); /* the lock with it */
}

int vo_qemu_uffd_grant(const VoHvDriver *d, VoQemuUffdGrant *ret, char **ret_error)
{
    *ret = (VoQemuUffdGrant){ .fd = -1 };
    if (!d || !d->qemu_user)
        return 0; /* QEMU runs as root: it opens the device itself */
    struct stat was;
    int fd = open_locked(d, &was);
    if (fd < 0)
        return vo_error_set(ret_error, fd == -ENOENT ? -EOPNOTSUPP : fd,
                            "cannot open and lock %s (needed for a post-copy migration): %s",
                            UFFD_DEVICE, strerror(-fd));
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
    /* Both tried, whichever fails: either one alone shuts QEMU's group out. */
    int e = fchmod(g->fd, g->was.st_mode & 07777) < 0 ? errno : 0;
    if (fchown(g->fd, (uid_t)-1, g->was.st_gid) < 0 && !e)
        e = errno;
    if (e)
        log_error("cannot give %s back (mode %o, group %u): %s", UFFD_DEVICE,
                  (unsigned)(g->was.st_mode & 07777), (unsigned)g->was.st_gid, strerror(e));
    close(g->fd); /* the lock with it */
    g->fd = -1;
}
