/* image-header.c: reading qcow2 headers and stat for sizes and backing chains
 * (see image-header.h). Nothing here follows a name out of the trusted
 * directories or reads a raw file's bytes as a header. */
#include "storage/image-header.h"

#include <endian.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

#define MAX_LAYERS 16
#define QCOW2_MAGIC 0x514649fbU /* "QFI\xfb" */
#define EXT_BACKING_FORMAT 0xe2792acaU
#define INCOMPAT_EXTERNAL_DATA (1ULL << 2)
#define HEADER_READ 4096 /* header and its extensions are read from the first cluster */

void vo_qcow2_header_clear(VoQcow2Header *h)
{
    if (!h)
        return;
    free(h->backing);
    free(h->backing_format);
    *h = (VoQcow2Header){ 0 };
}

static uint32_t be32_at(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return be32toh(v);
}

static uint64_t be64_at(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

int vo_qcow2_header_read(int fd, VoQcow2Header *ret)
{
    *ret = (VoQcow2Header){ 0 };
    uint8_t *hdr = vo_malloc0(HEADER_READ);
    ssize_t n = pread(fd, hdr, HEADER_READ, 0);
    int r = 0;
    if (n < 0)
        r = -errno;
    else if (n < 72 || be32_at(hdr) != QCOW2_MAGIC)
        r = -EINVAL;
    uint32_t version = r == 0 ? be32_at(hdr + 4) : 0;
    if (r == 0 && version != 2 && version != 3)
        r = -EINVAL;
    VoQcow2Header h = { .virtual_size = r == 0 ? be64_at(hdr + 24) : 0 };
    size_t ext_start = 72;
    if (r == 0 && version == 3) {
        if (n < 104)
            r = -EIO;
        else {
            h.external_data = (be64_at(hdr + 72) & INCOMPAT_EXTERNAL_DATA) != 0;
            ext_start = be32_at(hdr + 100);
        }
    }
    /* Header extensions: type, length, data padded to 8 bytes; type 0 ends them. */
    for (size_t off = ext_start; r == 0 && off + 8 <= (size_t)n;) {
        uint32_t type = be32_at(hdr + off), len = be32_at(hdr + off + 4);
        if (type == 0 || off + 8 + len > (size_t)n)
            break;
        if (type == EXT_BACKING_FORMAT && len > 0 && len < 32) { /* the last one counts */
            free(h.backing_format);
            h.backing_format = strndup((const char *)hdr + off + 8, len);
        }
        off += 8 + (((size_t)len + 7) & ~(size_t)7);
    }
    uint64_t backing_offset = r == 0 ? be64_at(hdr + 8) : 0;
    uint32_t backing_len = r == 0 ? be32_at(hdr + 16) : 0;
    free(hdr);
    if (r == 0 && backing_offset && backing_len) {
        char name[1024];
        if (backing_len > 1023)
            r = -EIO;
        else if (pread(fd, name, backing_len, (off_t)backing_offset) != (ssize_t)backing_len)
            r = -EIO;
        else {
            name[backing_len] = 0;
            h.backing = vo_strdup(name);
        }
    }
    if (r < 0) {
        vo_qcow2_header_clear(&h);
        return r;
    }
    *ret = h;
    return 0;
}

int vo_img_open_regular(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct stat st;
    int r = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* Whether resolved rpath lies inside resolved rdir. */
static bool resolved_within(const char *rdir, const char *rpath)
{
    size_t len = strlen(rdir);
    if (len == 1) /* "/" holds everything */
        return true;
    return strncmp(rpath, rdir, len) == 0 && rpath[len] == '/';
}

bool vo_path_under(const char *dir, const char *path)
{
    if (!dir || !path)
        return false;
    char rdir[PATH_MAX], rpath[PATH_MAX];
    return realpath(dir, rdir) && realpath(path, rpath) && resolved_within(rdir, rpath);
}

/* qemu reads "json:{...}", "nbd:..." and other protocol prefixes from a
 * backing name; such a name is never a plain file. */
static bool protocol_name(const char *name)
{
    const char *colon = strchr(name, ':');
    const char *slash = strchr(name, '/');
    return colon && (!slash || colon < slash);
}

/* roots are resolved already (see image-header.h): path is resolved once. */
static bool trusted(char *const *roots, const char *path)
{
    char rpath[PATH_MAX];
    if (!roots || !realpath(path, rpath))
        return false;
    for (char *const *r = roots; *r; r++)
        if (resolved_within(*r, rpath))
            return true;
    return false;
}

/* One layer read as format: its sizes and, for qcow2 with a backing file,
 * the next file's path and format. */
static int read_layer(const char *path, const char *format, VoImgLayer *ret, char **ret_next,
                      char **ret_next_format)
{
    *ret_next = NULL;
    *ret_next_format = NULL;
    int fd = vo_img_open_regular(path);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    *ret = (VoImgLayer){ .path = vo_strdup(path), .format = vo_strdup(format),
                         .actual_size = (uint64_t)st.st_blocks * 512,
                         .virtual_size = (uint64_t)st.st_size };
    if (strcmp(format, "qcow2")) { /* raw: the guest's bytes, never a header */
        close(fd);
        return 0;
    }
    VoQcow2Header h;
    int r = vo_qcow2_header_read(fd, &h);
    close(fd);
    if (r < 0)
        return r;
    ret->virtual_size = h.virtual_size;
    if (h.backing) {
        if (h.backing[0] == '/' || protocol_name(h.backing))
            *ret_next = TAKE_PTR(h.backing);
        else {
            _cleanup_free_ char *dir = vo_strdup(path);
            char *slash = strrchr(dir, '/');
            *ret_next = slash ? (*slash = 0, vo_asprintf("%s/%s", dir, h.backing))
                              : vo_strdup(h.backing);
        }
        *ret_next_format = vo_strdup(h.backing_format ? h.backing_format : "raw");
    }
    vo_qcow2_header_clear(&h);
    return 0;
}

int vo_img_header_chain(const char *path, const char *format, char *const *roots,
                        VoImgInfo *ret)
{
    *ret = (VoImgInfo){ 0 };
    if (!path || !format)
        return -EINVAL;
    ret->layers = vo_malloc0(sizeof(VoImgLayer) * MAX_LAYERS);
    _cleanup_free_ char *current = vo_strdup(path), *current_format = vo_strdup(format);
    while (current) {
        if (ret->n_layers == MAX_LAYERS) {
            vo_img_info_clear(ret);
            return -ELOOP;
        }
        VoImgLayer *l = &ret->layers[ret->n_layers];
        bool first = ret->n_layers == 0;
        bool known = !strcmp(current_format, "qcow2") || !strcmp(current_format, "raw");
        bool named_out = !first && (!known || protocol_name(current));
        if (!first && !named_out && access(current, F_OK) < 0) {
            /* Missing: that is the answer; a file made after this check
             * (perhaps outside the roots) is never opened. */
            int r = errno == ENOENT ? -ENOENT : -errno;
            vo_img_info_clear(ret);
            return r;
        }
        if (named_out || (!first && !trusted(roots, current))) {
            /* Named outside what we trust: reported, never opened. */
            *l = (VoImgLayer){ .path = TAKE_PTR(current),
                               .format = vo_strdup(VO_IMG_UNTRUSTED) };
            ret->n_layers++;
            break;
        }
        char *next = NULL, *next_format = NULL;
        int r = read_layer(current, current_format, l, &next, &next_format);
        if (l->path)
            ret->n_layers++; /* so that clearing frees it, also on error */
        if (r < 0) {
            free(next);
            free(next_format);
            vo_img_info_clear(ret);
            return r;
        }
        free(current);
        free(current_format);
        current = next;
        current_format = next_format;
    }
    return 0;
}
