/* store.h: the document store: JSON documents keyed by path ("vms/<id>"),
 * with what etcd offers, behind one interface (an ops table) so the backend
 * can change: SQLite on one host (store-sqlite.c), etcd in a cluster.
 *
 * Revisions. The store has one revision counter: every successful write (a
 * put, a delete, or a whole transaction) raises it by one and never reuses a
 * value, also across restarts and deletes. A document carries the revision of
 * its last change (mod_rev); a deleted and re-created key gets a new one, so
 * a stale writer never wins (no ABA).
 *
 * Conditions. Every write states what it expects of each key it writes:
 *   VO_REV_NEW: the key must not exist (create),
 *   > 0       : its mod_rev must equal this,
 *   VO_REV_ANY: no condition; only where a comment at the call says why.
 *
 * Changes. Every write is kept in a change log, in revision order, so a
 * watcher can read every change after a revision, none lost and none twice.
 * The log is compacted (old entries dropped); a watch from a revision older
 * than the compaction fails with VO_STORE_ECOMPACTED.
 *
 * Leases. A key put with a lease disappears (a delete in the change log)
 * when the lease expires: its owner stopped renewing it within its TTL.
 *
 * All functions are thread-safe, but close must not run while other calls
 * on the handle (watches aside) still run in other threads. Errors are
 * negative errnos; -EAGAIN: the backend is busy (SQLite: another process
 * holds the database; etcd: unreachable, no quorum), nothing changed, try
 * again (the API answers 503 with Retry-After). VO_STORE_EUNKNOWN: a write
 * (txn, put, delete, lease call, compact) got no answer after it was sent
 * (etcd only; SQLite never returns it): it may or may not have been
 * applied; read before retrying (the API answers 503 in the backend's
 * words, without Retry-After). */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct VoStore VoStore;
typedef struct VoStoreWatch VoStoreWatch;

#define VO_REV_NEW 0
#define VO_REV_ANY (-1)

/* A watch asked for a revision the change log no longer holds. */
#define VO_STORE_ECOMPACTED (-ERANGE)
/* A write's outcome is unknown (see above). */
#define VO_STORE_EUNKNOWN (-ETIMEDOUT)

typedef enum { VO_STORE_PUT, VO_STORE_DELETE } VoStoreOpKind;

/* One condition of a transaction: the key's state must match expected_rev
 * (the conventions above; VO_REV_ANY is not allowed here). */
typedef struct {
    const char *key;
    int64_t expected_rev;
} VoStoreCompare;

/* One write of a transaction. lease: 0, or a lease the key is bound to. */
typedef struct {
    VoStoreOpKind kind;
    const char *key;
    const char *value; /* PUT only */
    int64_t lease;
} VoStoreOp;

/* One committed change, as a watch reports it. value is NULL for a delete;
 * prev_value is the value before (NULL when the key was new). */
typedef struct {
    int64_t rev;
    VoStoreOpKind kind;
    char *key;
    char *value;
    char *prev_value;
} VoStoreEvent;

void vo_store_events_free(VoStoreEvent *events, size_t n);

typedef int (*VoStoreListFn)(const char *key, const char *value, int64_t rev, void *userdata);

/* What a backend implements. struct VoStore comes first in each backend's
 * own struct. */
typedef struct {
    const char *name; /* "sqlite", "etcd" */
    /* What -EAGAIN means on this backend, for the API's 503 message
     * ("database is busy", "cluster has no quorum"). */
    const char *unavailable_message;
    /* What VO_STORE_EUNKNOWN means on this backend, or NULL (never). */
    const char *unknown_message;
    void (*close)(VoStore *s);
    int (*get)(VoStore *s, const char *key, char **ret_value, int64_t *ret_rev);
    /* Walks keys with prefix in key order, all as of one revision (returned
     * in *ret_rev, may be NULL). A non-zero return from fn stops the walk
     * and is returned. */
    int (*list)(VoStore *s, const char *prefix, VoStoreListFn fn, void *userdata,
                int64_t *ret_rev);
    /* All compares hold, then every op is applied at one new revision; or
     * nothing changes. Returns 0 and the new revision; -EEXIST (a VO_REV_NEW
     * compare found the key), -ENOENT (a compare on a revision found no key)
     * or -ESTALE (a revision differed), with the compare's index in
     * *ret_failed (may be NULL); -EKEYEXPIRED: an op's lease is expired or
     * unknown (*ret_failed untouched). A key appears in ops at most once. */
    int (*txn)(VoStore *s, const VoStoreCompare *cmps, size_t n_cmps, const VoStoreOp *ops,
               size_t n_ops, int64_t *ret_rev, size_t *ret_failed);
    int (*revision)(VoStore *s, int64_t *ret_rev);
    /* Every change to keys with prefix after after_rev, in order. */
    int (*watch_open)(VoStore *s, const char *prefix, int64_t after_rev, VoStoreWatch **ret);
    /* Waits up to timeout_ms for changes; returns 0 with *ret_n >= 0 (0:
     * timed out or woken), VO_STORE_ECOMPACTED when changes were lost to a
     * compaction (or, on etcd, the caller left too many unread: more than
     * 64 MiB or a million changes queued), -ECANCELED once the store is
     * closing. */
    int (*watch_next)(VoStoreWatch *w, int timeout_ms, VoStoreEvent **ret_events, size_t *ret_n);
    /* Makes a watch_next blocked in another thread return now. */
    void (*watch_wake)(VoStoreWatch *w);
    void (*watch_close)(VoStoreWatch *w);
    int (*lease_grant)(VoStore *s, int ttl_ms, int64_t *ret_lease);
    int (*lease_keepalive)(VoStore *s, int64_t lease); /* -ENOENT: expired or unknown */
    int (*lease_revoke)(VoStore *s, int64_t lease);    /* deletes its keys now */
    /* Drops the change log up to and including rev. */
    int (*compact)(VoStore *s, int64_t rev);
    /* The revision the change log was compacted up to (0: never): a watch
     * from after_rev >= it resumes, an older one gets VO_STORE_ECOMPACTED.
     * So it is the oldest revision a client can resume after. */
    int (*compacted)(VoStore *s, int64_t *ret_rev);
    /* Since when (unix ms) reads are answered without a quorum, possibly
     * stale; 0: they are linearizable. NULL: never (SQLite). */
    int64_t (*stale_since)(VoStore *s);
    /* The longest this client waits for one request before it gives up on
     * it (etcd: its timeout on each endpoint it may try in turn; SQLite:
     * its busy timeout). NULL: VO_STORE_REQUEST_TIMEOUT_MS. */
    int (*request_timeout_ms)(VoStore *s);
} VoStoreOps;

struct VoStore {
    const VoStoreOps *ops;
};

/* The SQLite backend: one file, a change log kept for the newest
 * VO_STORE_SQLITE_KEEP_CHANGES changes (compacted as it grows), lease timers
 * in a thread of its own. */
#define VO_STORE_SQLITE_KEEP_CHANGES 10000
/* The fewest changes vireod's --event-history may keep. */
#define VO_STORE_SQLITE_MIN_KEEP_CHANGES 100
int vo_store_open(const char *db_path, VoStore **ret);
/* The same, keeping the newest keep_changes changes (0: the default). */
int vo_store_open_keeping(const char *db_path, int64_t keep_changes, VoStore **ret);
VoStore *vo_store_close(VoStore *s);

/* The etcd backend (store-etcd.c): etcd 3.4's JSON gateway over libcurl.
 * Keys map to etcd keys (docs/internals.md, "etcd backend"): on a handle
 * with a host id, "cluster/..." to "vireo/cluster/..." and every other key
 * to "vireo/h/<host-id>/<key>"; with host_id NULL (a raw handle) every key k
 * to "vireo/k". Revisions are etcd's own. Limits: a transaction holds at
 * most VO_STORE_ETCD_MAX_TXN_OPS compares and as many ops (-E2BIG beyond);
 * a lease's TTL is whole seconds (rounded up, at least etcd's minimum,
 * about 2 s). No endpoint reachable, or no answer to a read within
 * timeout_ms (etcd down, no quorum): -EAGAIN; no answer to a write once it
 * was sent: VO_STORE_EUNKNOWN. An answer beyond 64 MiB: -EMSGSIZE.
 * Without a quorum, get and list answer from a member (serializable,
 * vo_store_stale_read() says so) at once once the store knows it is lost
 * (a linearizable request failed; shared by every handle on the same
 * endpoints), until a probe (a linearizable read every second) succeeds. */
#define VO_STORE_ETCD_MAX_TXN_OPS 128
typedef struct {
    const char *endpoints; /* comma-separated "https://IP:PORT" or "http://IP:PORT" */
    const char *host_id;   /* NULL: a raw handle */
    const char *ca_file, *cert_file, *key_file; /* NULL for plain http */
    int timeout_ms;        /* per request; 0: 8000 */
} VoEtcdOptions;
int vo_store_open_etcd(const VoEtcdOptions *o, VoStore **ret);

/* Reads that may be stale. A backend that cannot serve a linearizable read
 * (etcd without a quorum) answers get and list from what a member holds
 * (revision never: it stays linearizable, and its -EAGAIN says "no quorum")
 * and notes it in the calling thread: vo_store_stale_read() then returns
 * since when (unix ms) reads are stale, until vo_store_stale_reset(). The
 * API resets it before each request and marks the answer when it is set. */
void vo_store_stale_reset(void);
int64_t vo_store_stale_read(void);
void vo_store_stale_note(int64_t since_ms); /* backends */
#define VO_STORE_REQUEST_TIMEOUT_MS 10000
static inline int vo_store_request_timeout_ms(VoStore *s)
{
    return s && s->ops->request_timeout_ms ? s->ops->request_timeout_ms(s)
                                           : VO_STORE_REQUEST_TIMEOUT_MS;
}

static inline int64_t vo_store_stale_since(VoStore *s)
{
    return s && s->ops->stale_since ? s->ops->stale_since(s) : 0;
}

/* Returns 0, -ENOENT when missing. *ret_value is malloc'd JSON text. */
static inline int vo_store_get(VoStore *s, const char *key, char **ret_value, int64_t *ret_rev)
{
    return s->ops->get(s, key, ret_value, ret_rev);
}

/* One-key transactions. put returns 0 and the new revision; -EEXIST when
 * VO_REV_NEW and the key exists, -ESTALE on a revision mismatch, -ENOENT when
 * expected_rev > 0 and the key is missing, -EKEYEXPIRED when the lease is
 * expired or unknown. delete returns 0, -ENOENT, or -ESTALE (VO_REV_ANY
 * skips the check). */
int vo_store_put(VoStore *s, const char *key, const char *value, int64_t expected_rev,
                 int64_t *ret_rev);
int vo_store_put_lease(VoStore *s, const char *key, const char *value, int64_t expected_rev,
                       int64_t lease, int64_t *ret_rev);
int vo_store_delete(VoStore *s, const char *key, int64_t expected_rev);

static inline int vo_store_list(VoStore *s, const char *prefix, VoStoreListFn fn, void *userdata)
{
    return s->ops->list(s, prefix, fn, userdata, NULL);
}

/* How many keys start with prefix: *ret_n, or a negative errno. */
int vo_store_count(VoStore *s, const char *prefix, size_t *ret_n);

/* Test-only (store-fault.c): with $VIREO_TEST_STORE_FAULTS set to a
 * directory, a file there named put@KEY or delete@KEY ('/' in KEY as '+')
 * holding "N ERR" fails the next N transactions writing KEY that way with
 * ERR (util/fault-file.h), nothing written; 0 otherwise. A file named
 * lost@put@KEY (or lost@delete@KEY) lets the transaction be applied and
 * then answers ERR as *ret_lost (an answer lost: VO_STORE_EUNKNOWN with
 * "1 ETIMEDOUT"). While a file put@KEY.hold (delete@KEY.hold) is there, a
 * transaction writing KEY that way waits before it is made (at most two
 * minutes), having created put@KEY.held: a slow store, held by the test. */
int vo_store_test_fault(const VoStoreOp *ops, size_t n_ops, int *ret_lost);

static inline int vo_store_txn(VoStore *s, const VoStoreCompare *cmps, size_t n_cmps,
                               const VoStoreOp *ops, size_t n_ops, int64_t *ret_rev,
                               size_t *ret_failed)
{
    int lost = 0;
    int r = vo_store_test_fault(ops, n_ops, &lost);
    if (r >= 0)
        r = s->ops->txn(s, cmps, n_cmps, ops, n_ops, ret_rev, ret_failed);
    return r >= 0 && lost < 0 ? lost : r;
}
