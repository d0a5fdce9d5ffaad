/* extents.h: the byte ranges an image export copies (storage/rbd-export.c):
 * extents as a diff lists them, each rounded out to whole clusters (qcow2's
 * 64 KiB) but never past the image's end, then sorted and merged. Pure: no
 * I/O, so the rounding is unit-tested (tests/unit/test-extents.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t start, end; /* [start, end) */
} VoExtent;

typedef struct {
    VoExtent *v;
    size_t n, cap;
    uint64_t size;    /* the image's size: no range ends past it */
    uint64_t cluster; /* the rounding unit, a power of two or any non-zero */
} VoExtents;

/* Adds [offset, offset + len) rounded out to cluster and cut at size;
 * -ENOMEM when the array cannot grow. An extent at or past size adds
 * nothing. */
int vo_extents_add(VoExtents *x, uint64_t offset, uint64_t len);
/* Sorts the ranges and merges overlapping and touching ones;
 * returns their bytes. */
uint64_t vo_extents_merge(VoExtents *x);
void vo_extents_clear(VoExtents *x);
