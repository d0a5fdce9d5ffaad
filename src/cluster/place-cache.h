/* place-cache.h: the manager's placement inputs kept in memory: the
 * documents under the prefixes placement reads (member documents, live
 * records, groups, group members, cluster settings, networks' projects),
 * listed once and then kept current by a watch, so a placement reads no
 * store (docs/internals.md, Placement, "The snapshot in memory").
 *
 * Each prefix is listed at its own revision; the watch on "cluster/" starts
 * after the oldest of them, and an event is applied only when it is newer
 * than its prefix's list and than the key's own document (so the replayed
 * part changes nothing twice). A watch error or a compaction makes the
 * cache list everything again (not usable meanwhile: vo_place_cache_usable
 * is false, the caller reads the store itself). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "state/store.h"

/* The watched prefix and the cached ones under it. */
#define VO_PLACE_CACHE_WATCH "cluster/"
#define VO_PLACE_CACHE_MEMBERS "cluster/members/"
#define VO_PLACE_CACHE_RECORDS "cluster/hosts/"
#define VO_PLACE_CACHE_GROUPS "cluster/groups/"
#define VO_PLACE_CACHE_GROUP_MEMBERS "cluster/group-members/"
#define VO_PLACE_CACHE_SETTINGS "cluster/settings/"
#define VO_PLACE_CACHE_NETWORK_OWNERS "cluster/object-projects/network/" /* networks' projects */

typedef enum {
    VO_PLACE_CACHE_P_MEMBERS,
    VO_PLACE_CACHE_P_RECORDS,
    VO_PLACE_CACHE_P_GROUPS,
    VO_PLACE_CACHE_P_GROUP_MEMBERS,
    VO_PLACE_CACHE_P_SETTINGS,
    VO_PLACE_CACHE_P_NETWORK_OWNERS,
    VO_PLACE_CACHE_N_PREFIXES,
} VoPlaceCachePrefix;

typedef struct VoPlaceCache VoPlaceCache;

/* An empty cache on store (not usable until loaded). */
VoPlaceCache *vo_place_cache_new(VoStore *store);
/* Stops its watch thread (when started) and frees it. NULL is fine. */
void vo_place_cache_free(VoPlaceCache *c);

/* Lists every prefix (replacing what the cache held) and makes it usable;
 * *ret_watch_from: the revision to watch after. 0 or the store's -errno. */
int vo_place_cache_load(VoPlaceCache *c, int64_t *ret_watch_from);
/* Applies watched events (in revision order). */
void vo_place_cache_apply(VoPlaceCache *c, const VoStoreEvent *events, size_t n);

/* Loads (unless loaded already: then it watches from the load's revision),
 * then keeps the cache current from a thread of its own (re-listing after
 * a watch error or a compaction). 0, or the load's -errno (nothing
 * started). */
int vo_place_cache_start(VoPlaceCache *c);

/* Reading: between lock and unlock, the documents below stay as they are
 * (borrowed references, valid until unlock). */
void vo_place_cache_lock(VoPlaceCache *c);
void vo_place_cache_unlock(VoPlaceCache *c);
/* Loaded and its watch not broken since. */
bool vo_place_cache_usable(VoPlaceCache *c);
/* The newest revision the cache holds (every change of the watched prefix
 * up to it is applied). */
int64_t vo_place_cache_rev(VoPlaceCache *c);
/* The documents of a prefix: {rest-of-key: {"doc": {...}, "rev": n}}. */
json_t *vo_place_cache_docs(VoPlaceCache *c, VoPlaceCachePrefix p);
/* One document (rest of its key after the prefix), or NULL. */
json_t *vo_place_cache_doc(VoPlaceCache *c, VoPlaceCachePrefix p, const char *rest);
/* The members of group: a new object {full key: doc} as groups.c lists it. */
json_t *vo_place_cache_group_members(VoPlaceCache *c, const char *group);

/* Without the lock held: waits up to timeout_ms until the cache is usable
 * and holds revision rev (also through a re-list); whether it does. */
bool vo_place_cache_wait(VoPlaceCache *c, int64_t rev, int timeout_ms);
