/* qcow2-fit.h: the virtual size of a qcow2 image that must fit in a fixed
 * room (an iSCSI LUN's qcow2 layer, docs/storage-san.md): the largest whose
 * fully allocated image, as `qemu-img measure` of the installed QEMU
 * reckons it, plus room for the VM's persistent dirty bitmaps, fits. A
 * layer as large as the LUN runs out of space as the guest fills its disk
 * (an I/O error near full): the metadata needs room too. */
#pragma once

#include <stdint.h>

/* Clusters of vireo's qcow2 images (qemu-img's default). */
#define VO_QCOW2_CLUSTER (64u * 1024u)

/* Bytes a qcow2 image of virtual size `size` keeps beside its fully
 * allocated measure for persistent dirty bitmaps: two bitmaps (a full
 * backup adds one before it drops the old) of one bit per cluster, each
 * with its table and directory cluster, and one refcount block for them. */
uint64_t vo_qcow2_bitmap_room(uint64_t size);
/* The largest virtual size (a multiple of VO_QCOW2_CLUSTER) whose fully
 * allocated qcow2 image and bitmaps (vo_qcow2_bitmap_room) fit in room
 * bytes: 0 with *ret_size, -ENOSPC when none does, or -errno from
 * qemu-img with *ret_error. */
int vo_qcow2_fit(uint64_t room, uint64_t *ret_size, char **ret_error);
