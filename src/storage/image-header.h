/* image-header.h: a volume's size, allocation and backing chain read straight
 * from the files (qcow2 header, stat), without running qemu-img: cheap enough
 * to list thousands of volumes. qemu-img info stays the authority for `show`. */
#pragma once

#include "storage/qemu-img.h"

/* Fills info with path's chain, nearest first: qcow2 files are followed
 * through their header's backing file name (relative names resolve against
 * the file's directory); any other file ends the chain as "raw". At most 16
 * layers. actual_size is st_blocks * 512. -ENOENT/-EIO/-ELOOP on failure. */
int vo_img_header_chain(const char *path, VoImgInfo *ret);
