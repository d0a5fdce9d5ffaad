/* iso.h: recognising ISO 9660 images (CD/DVD installer media) by the
 * signature of their primary volume descriptor. */
#pragma once

#include <stdint.h>

/* Byte offset of the "CD001" standard identifier: volume descriptor 16
 * (sector 16 of 2048 bytes), after its one-byte type. */
#define VO_ISO_SIGNATURE_OFFSET 32769

/* 1 when the file at path is an ISO 9660 image, 0 when it is not (also when
 * it is too short, or neither a regular file nor a block device: a FIFO is
 * never waited on), -errno when it cannot be read. */
int vo_iso_probe(const char *path);
/* The same for the size bytes at offset of open file fd (an OVA's member). */
int vo_iso_probe_at(int fd, uint64_t offset, uint64_t size);
