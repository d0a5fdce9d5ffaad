/* iso.c: recognising ISO 9660 images (see iso.h). */
#include "storage/iso.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int vo_iso_probe(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char sig[5];
    ssize_t n = pread(fd, sig, sizeof(sig), VO_ISO_SIGNATURE_OFFSET);
    int r = n < 0 ? -errno : 0;
    close(fd);
    if (r < 0)
        return r;
    return n == (ssize_t)sizeof(sig) && !memcmp(sig, "CD001", sizeof(sig));
}
