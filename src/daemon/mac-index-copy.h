/* mac-index-copy.h: the MAC-ghost sweep's copy of the cluster's MAC index
 * (mac-ghosts.c): its held entries (those naming a VM, "vm_id"), brought up
 * to date each round from a watch on the index, so a round reads only what
 * changed since the last one (a whole read of 10,000 entries is about
 * 1 MB). The index is read whole only at the first round and after the
 * watch was lost (a compaction dropped changes it had not read, the store
 * unreachable). */
#pragma once

#include <stddef.h>

#include "state/store.h"

typedef struct VoMacIndexCopy VoMacIndexCopy;

/* An empty copy of the entries under prefix in s (read at the first
 * update). */
VoMacIndexCopy *vo_mac_index_copy_new(VoStore *s, const char *prefix);
void vo_mac_index_copy_free(VoMacIndexCopy *c);

/* Brings the copy up to date: the changes its watch saw since the last
 * update, or a whole read (the first, or the watch lost). 0 or the store's
 * -errno (the copy is then read whole at the next update). *ret_bytes (may
 * be NULL): the bytes of keys and values read. */
int vo_mac_index_copy_update(VoMacIndexCopy *c, size_t *ret_bytes);

/* Calls fn(key, text, rev, userdata) for up to max held entries after key
 * after (NULL: from the first), in key order: how many. */
size_t vo_mac_index_copy_after(VoMacIndexCopy *c, const char *after, size_t max,
                               VoStoreListFn fn, void *userdata);

/* How many held entries the copy has. */
size_t vo_mac_index_copy_size(const VoMacIndexCopy *c);
