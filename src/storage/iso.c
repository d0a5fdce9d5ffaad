/* iso.c: recognising ISO 9660 images (see iso.h). */
#include "storage/iso.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = vo_iso_probe_at(fd, 0, UINT64_MAX);
    close(fd);
    return r;
}
