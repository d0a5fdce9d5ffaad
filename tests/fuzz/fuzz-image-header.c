/* fuzz-image-header.c: libFuzzer target for the qcow2 header reader
 * (storage/image-header.c), which reads volume files that guests and
 * uploads fill. The input is written as a file in a private temporary
 * directory and its backing chain read. Backing file names are kept inside
 * that directory: the bytes the header points at as the name have every '/'
 * replaced (the reader resolves relative names against the file's
 * directory), so no run reaches a host file. */
#include <endian.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "storage/image-header.h"

static char dir[] = "/tmp/vireo-fuzz-image-header.XXXXXX";
static char path[sizeof(dir) + 8];

static void remove_dir(void)
{
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof(path), "%s/img", dir);
    atexit(remove_dir);
    return 0;
}

static uint64_t be64_at(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

static uint32_t be32_at(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return be32toh(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size + 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    if (size >= 20) {
        uint64_t off = be64_at(copy + 8);
        uint32_t len = be32_at(copy + 16);
        for (uint64_t i = off; i < size && i - off < len; i++)
            if (copy[i] == '/')
                copy[i] = '_';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (size && write(fd, copy, size) != (ssize_t)size))
        abort();
    close(fd);
    free(copy);

    VoImgInfo info;
    int r = vo_img_header_chain(path, &info);
    if (r == 0) {
        FUZZ_CHECK(info.n_layers >= 1 && info.n_layers <= 16);
        FUZZ_CHECK(!strcmp(info.layers[0].path, path));
        for (size_t i = 0; i < info.n_layers; i++)
            FUZZ_CHECK(info.layers[i].format && info.layers[i].path);
        vo_img_info_clear(&info);
    } else {
        FUZZ_CHECK(r == -ENOENT || r == -EIO || r == -ELOOP || r == -EISDIR ||
                   r == -ENAMETOOLONG || r == -ENOTDIR);
    }
    return 0;
}
