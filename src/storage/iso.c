/* iso.c: recognising ISO 9660 images (see iso.h). */
#include "storage/iso.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int vo_iso_probe_at(int fd, uint64_t offset, uint64_t size)
{
    char sig[5];
    if (size < VO_ISO_SIGNATURE_OFFSET + sizeof(sig))
        return 0;
    ssize_t n = pread(fd, sig, sizeof(sig), (off_t)(offset + VO_ISO_SIGNATURE_OFFSET));
    if (n < 0)
        return -errno;
    return n == (ssize_t)sizeof(sig) && !memcmp(sig, "CD001", sizeof(sig));
}

int vo_iso_probe(const char *path)
{
    /* Non-blocking: a FIFO named as an ISO (a domain XML's CD-ROM source)
     * would otherwise hold the request that probes it until a writer came.
     * Only a regular file or a block device can be an image. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct stat st;
    int r = fstat(fd, &st) < 0                               ? -errno
            : !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode) ? 0
                                                             : vo_iso_probe_at(fd, 0, UINT64_MAX);
    close(fd);
    return r;
}
