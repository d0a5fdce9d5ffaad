/* image-header.h: a volume's size, allocation and backing chain read straight
 * from the files (qcow2 header, stat), without running qemu-img: cheap enough
 * to list thousands of volumes. qemu-img info stays the authority for `show`.
 * Files are only read as qcow2 when their recorded format says so (a raw
 * file's first bytes belong to the guest), and backing files are only opened
 * inside the directories the caller trusts (pools, the images directory). */
#pragma once

#include <stdbool.h>

#include "storage/qemu-img.h"

/* The format a chain layer gets when its file is named outside every trusted
 * directory (or through a protocol prefix): it is neither opened nor followed. */
#define VO_IMG_UNTRUSTED "untrusted"

/* What one qcow2 header says, read without opening anything it names. */
typedef struct {
    uint64_t virtual_size;
    char *backing;        /* the backing file name as written, or NULL */
    char *backing_format; /* from the header extension, or NULL when absent */
    bool external_data;   /* an external data file (incompatible feature bit 2) */
} VoQcow2Header;

void vo_qcow2_header_clear(VoQcow2Header *h);

/* Reads the qcow2 header of the open file fd. -EINVAL when it is not qcow2
 * (no magic, or a header that does not hold together), -EIO when short. */
int vo_qcow2_header_read(int fd, VoQcow2Header *ret);

/* Opens path for reading a header: a regular file only, never blocking (a
 * FIFO or device is -EINVAL, not waited on). Returns the fd or -errno. */
int vo_img_open_regular(const char *path);

/* Fills info with path's chain, nearest first. format is the recorded format
 * of path: "raw" is never read as qcow2 (one raw layer of the file's size);
 * "qcow2" is followed through its header's backing file name (relative names
 * resolve against the file's directory), each next layer read as the format
 * its header records (raw when none). A backing file is only opened when,
 * with every symlink resolved, it lies inside one of roots (directories
 * given resolved, as realpath gives them: a listing resolves them once for
 * all its volumes; NULL-terminated; NULL follows nothing): otherwise the chain ends with a layer of format
 * VO_IMG_UNTRUSTED naming it. At most 16 layers. actual_size is
 * st_blocks * 512. -ENOENT/-EIO/-EINVAL/-ELOOP on failure. */
int vo_img_header_chain(const char *path, const char *format, char *const *roots,
                        VoImgInfo *ret);

/* True when path, with every symlink resolved, is inside dir (also resolved)
 * at any depth. False for paths that do not resolve. */
bool vo_path_under(const char *dir, const char *path);
