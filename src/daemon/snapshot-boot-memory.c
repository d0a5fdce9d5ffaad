/* snapshot-boot-memory.c: a memory snapshot's boot memory size, recorded at
 * the save and checked before a load (snapshot-boot-memory.h). */
#include "daemon/snapshot-boot-memory.h"

#include <errno.h>

#include "util/util.h"

void vo_snapshot_boot_memory_record(json_t *doc, uint64_t now_kib)
{
    json_object_set_new(doc, VO_SNAPSHOT_BOOT_MEMORY_KEY, json_integer((json_int_t)now_kib));
}

int vo_snapshot_boot_memory_check(json_t *doc, uint64_t now_kib, char **ret_error)
{
    json_t *then = json_object_get(doc, VO_SNAPSHOT_BOOT_MEMORY_KEY);
    uint64_t then_kib = json_is_integer(then) ? (uint64_t)json_integer_value(then)
                                              : now_kib & ~(uint64_t)1023;
    if (then_kib == now_kib)
        return 0;
    return vo_error_set(ret_error, -EBUSY,
                        "the VM's QEMU has %llu KiB of boot memory and snapshot '%s' was saved "
                        "from one with %llu KiB (TCG's boot-memory padding, docs/cluster.md): "
                        "its memory state does not load into it",
                        (unsigned long long)now_kib,
                        json_string_value(json_object_get(doc, "name")) ?: "?",
                        (unsigned long long)then_kib);
}
