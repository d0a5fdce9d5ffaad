/* store.h: the document store: JSON documents keyed by path ("vms/<id>"),
 * each with a revision; writes are compare-and-swap. SQLite (WAL) backend.
 * All functions are thread-safe (one connection behind a mutex). */
#pragma once

#include <stdint.h>

typedef struct VoStore VoStore;

/* Revision conventions for vo_store_put / vo_store_delete:
 *   expected_rev == VO_REV_NEW: the key must not exist (create),
 *   expected_rev == VO_REV_ANY: unconditional write,
 *   expected_rev  > 0         : the stored revision must equal it, else -ESTALE. */
#define VO_REV_NEW 0
#define VO_REV_ANY (-1)

int vo_store_open(const char *db_path, VoStore **ret);
VoStore *vo_store_close(VoStore *s);

/* Returns 0, -ENOENT when missing. *ret_value is malloc'd JSON text. */
int vo_store_get(VoStore *s, const char *key, char **ret_value, int64_t *ret_rev);

/* Returns 0 and the new revision (revisions start at 1 and grow by one per write),
 * -EEXIST when VO_REV_NEW and the key exists, -ESTALE on a revision mismatch,
 * -ENOENT when expected_rev > 0 and the key is missing. */
int vo_store_put(VoStore *s, const char *key, const char *value, int64_t expected_rev,
                 int64_t *ret_rev);

/* Returns 0, -ENOENT, or -ESTALE on revision mismatch (VO_REV_ANY skips the check). */
int vo_store_delete(VoStore *s, const char *key, int64_t expected_rev);

/* Calls fn for each key starting with prefix, in key order. A non-zero return
 * from fn stops the walk and is returned. */
typedef int (*VoStoreListFn)(const char *key, const char *value, int64_t rev, void *userdata);
int vo_store_list(VoStore *s, const char *prefix, VoStoreListFn fn, void *userdata);
