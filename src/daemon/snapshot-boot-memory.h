/* snapshot-boot-memory.h: whether a memory snapshot's state fits the boot
 * memory of the QEMU it is loaded into. QEMU refuses a state whose boot
 * memory (pc.ram) has another size only after it has reverted the disks,
 * and leaves the VM paused with the snapshot's disks and today's RAM; a
 * TCG VM with memory hot-plug has a few KiB more boot memory since
 * qemu-argv.c's boot_pad_kib, so its snapshots from before no longer fit
 * once it was started again. */
#pragma once

#include <jansson.h>
#include <stdint.h>

/* The record's key in a snapshot's document (internal: not in the API). */
#define VO_SNAPSHOT_BOOT_MEMORY_KEY "boot_memory_kib"

/* Records now_kib (VoHvResources.boot_memory_kib at the save) in snapshot
 * doc. */
void vo_snapshot_boot_memory_record(json_t *doc, uint64_t now_kib);
/* 0 when the memory state of snapshot doc loads into a QEMU whose boot
 * memory is now_kib; else -EBUSY with *ret_error. A snapshot without the
 * record was saved by a vireod that never padded: its boot memory was
 * whole MiB. */
int vo_snapshot_boot_memory_check(json_t *doc, uint64_t now_kib, char **ret_error);
