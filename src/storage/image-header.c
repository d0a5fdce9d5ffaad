/* image-header.c: reading qcow2 headers and stat for sizes and backing chains
 * (see image-header.h). */
#include "storage/image-header.h"

#include <endian.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

#define MAX_LAYERS 16
#define QCOW2_MAGIC 0x514649fbU /* "QFI\xfb" */

/* One layer: its sizes, and (qcow2 with a backing file) the next file's path. */
static int read_layer(const char *path, VoImgLayer *ret, char **ret_next)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return -errno;
    uint8_t hdr[72];
    ssize_t n = pread(fd, hdr, sizeof(hdr), 0);
    uint32_t magic = 0;
    if (n >= 32)
        memcpy(&magic, hdr, 4);
    *ret = (VoImgLayer){ .path = vo_strdup(path), .actual_size = (uint64_t)st.st_blocks * 512 };
    *ret_next = NULL;
    if (n < 32 || be32toh(magic) != QCOW2_MAGIC) {
        ret->format = vo_strdup("raw");
        ret->virtual_size = (uint64_t)st.st_size;
        return 0;
    }
    uint64_t backing_offset, size;
    uint32_t backing_len;
    memcpy(&backing_offset, hdr + 8, 8);
    memcpy(&backing_len, hdr + 16, 4);
    memcpy(&size, hdr + 24, 8);
    ret->format = vo_strdup("qcow2");
    ret->virtual_size = be64toh(size);
    backing_offset = be64toh(backing_offset);
    backing_len = be32toh(backing_len);
    if (backing_offset == 0 || backing_len == 0)
        return 0;
    if (backing_len > 1023)
        return -EIO;
    char name[1024];
    if (pread(fd, name, backing_len, (off_t)backing_offset) != (ssize_t)backing_len)
        return -EIO;
    name[backing_len] = 0;
    if (name[0] == '/') {
        *ret_next = vo_strdup(name);
    } else {
        _cleanup_free_ char *dir = vo_strdup(path);
        char *slash = strrchr(dir, '/');
        *ret_next = slash ? (*slash = 0, vo_asprintf("%s/%s", dir, name)) : vo_strdup(name);
    }
    return 0;
}

int vo_img_header_chain(const char *path, VoImgInfo *ret)
{
    *ret = (VoImgInfo){ 0 };
    ret->layers = vo_malloc0(sizeof(VoImgLayer) * MAX_LAYERS);
    _cleanup_free_ char *current = vo_strdup(path);
    while (current) {
        if (ret->n_layers == MAX_LAYERS) {
            vo_img_info_clear(ret);
            return -ELOOP;
        }
        char *next = NULL;
        int r = read_layer(current, &ret->layers[ret->n_layers], &next);
        if (ret->layers[ret->n_layers].path)
            ret->n_layers++; /* so that clearing frees it, also on error */
        if (r < 0) {
            free(next);
            vo_img_info_clear(ret);
            return r;
        }
        free(current);
        current = next;
    }
    return 0;
}
