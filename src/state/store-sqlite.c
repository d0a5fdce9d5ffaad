/* store-sqlite.c: the SQLite backend of the store interface (store.h).
 *
 * One file in WAL mode, one connection per VoStore shared by its threads
 * behind a mutex. Schema v2:
 *   documents(key, mod_rev, create_rev, lease, value)  the current state
 *   changes(rev, key, kind, value, prev_value)          the change log
 *   leases(id, ttl_ms)                                  granted leases
 *   meta: schema_version, revision (last committed), compacted (the change
 *         log holds only revisions above it)
 * A transaction is one SQLite transaction (BEGIN IMMEDIATE) that raises the
 * revision in meta by one, so revisions are never reused, also across
 * restarts and when other processes write the same file.
 * Watches read the change log and sleep on a condition variable signalled
 * after each commit. Lease deadlines live in memory (a thread expires them);
 * leases found on open get a fresh deadline. Schema v1 (documents(key, rev,
 * value) with a revision per document) is migrated in place on open. */
#include "state/store.h"

#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

/* How long a write waits for another process's lock on the file. */
#define BUSY_TIMEOUT_MS 5000

#define SCHEMA_VERSION 2
/* Automatic compaction runs every this many commits. */
#define COMPACT_EVERY 256
/* A watch reads the change log this many revisions at a time. */
#define WATCH_WINDOW 256

enum {
    ST_GET_FULL,
    ST_PUT,
    ST_DEL,
    ST_CHANGE,
    ST_LIST,
    ST_META_GET,
    ST_META_SET,
    ST_CHANGES,
    ST_LEASE_KEYS,
    ST_LEASE_ADD,
    ST_LEASE_DEL,
    ST_LEASE_ALL,
    ST_COMPACT,
    ST_BEGIN,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_MAX
};
static const char *const stmt_sql[ST_MAX] = {
    [ST_GET_FULL] = "SELECT mod_rev, value, create_rev FROM documents WHERE key = ?1",
    [ST_PUT] = "INSERT OR REPLACE INTO documents (key, mod_rev, create_rev, lease, value) "
               "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_DEL] = "DELETE FROM documents WHERE key = ?1",
    [ST_CHANGE] = "INSERT INTO changes (rev, key, kind, value, prev_value) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
    /* Keys sharing a prefix are contiguous in (binary) key order, starting at
     * the prefix itself: the walk starts there and stops at the first key
     * without it. */
    [ST_LIST] = "SELECT key, value, mod_rev FROM documents WHERE key >= ?1 ORDER BY key",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_SET] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
    /* ?3 <= key < ?4: the watch's prefix and its successor (the PRIMARY
     * KEY walks the revisions; rows under other prefixes never reach C). */
    [ST_CHANGES] = "SELECT rev, key, kind, value, prev_value FROM changes "
                   "WHERE rev > ?1 AND rev <= ?2 AND key >= ?3 AND key < ?4 ORDER BY rev, key",
    [ST_LEASE_KEYS] = "SELECT key FROM documents WHERE lease = ?1 ORDER BY key",
    [ST_LEASE_ADD] = "INSERT INTO leases (ttl_ms) VALUES (?1)",
    [ST_LEASE_DEL] = "DELETE FROM leases WHERE id = ?1",
    [ST_LEASE_ALL] = "SELECT id, ttl_ms FROM leases",
    [ST_COMPACT] = "DELETE FROM changes WHERE rev <= ?1",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

static const char schema_v2_sql[] =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS documents ("
    "  key TEXT PRIMARY KEY, mod_rev INTEGER NOT NULL, create_rev INTEGER NOT NULL,"
    "  lease INTEGER NOT NULL DEFAULT 0, value TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS documents_lease ON documents (lease);"
    "CREATE TABLE IF NOT EXISTS changes ("
    "  rev INTEGER NOT NULL, key TEXT NOT NULL, kind INTEGER NOT NULL, value TEXT,"
    "  prev_value TEXT, PRIMARY KEY (rev, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS leases ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, ttl_ms INTEGER NOT NULL);";

/* v1 -> v2: each document gets its own revision (1..n in key order), the
 * store revision is n and the (empty) change log starts above it. */
static const char migrate_v1_sql[] =
    "ALTER TABLE documents RENAME TO documents_v1;"
    "%s"
    "INSERT INTO documents (key, mod_rev, create_rev, lease, value)"
    "  SELECT key, ROW_NUMBER() OVER (ORDER BY key), ROW_NUMBER() OVER (ORDER BY key), 0,"
    "         value FROM documents_v1;"
    "DROP TABLE documents_v1;"
    "INSERT OR REPLACE INTO meta (key, value)"
    "  SELECT 'revision', COUNT(*) FROM documents;"
    "INSERT OR REPLACE INTO meta (key, value)"
    "  SELECT 'compacted', COUNT(*) FROM documents;"
    "UPDATE meta SET value = '2' WHERE key = 'schema_version';";

typedef struct {
    int64_t id;
    int64_t ttl_ms;
    int64_t deadline_ms; /* vo_now_ms() clock */
} Lease;

typedef struct {
    VoStore base;
    pthread_mutex_t lock;
    pthread_cond_t changed;     /* broadcast after each commit, wake and close */
    pthread_cond_t lease_timer; /* wakes the lease thread */
    sqlite3 *db;
    sqlite3_stmt *st[ST_MAX];
    bool closing;
    unsigned refs; /* the store itself + each open watch */
    uint64_t commits;
    int64_t keep_changes; /* the change log's length after a compaction */
    Lease *leases;
    size_t n_leases;
    pthread_t lease_thread;
    bool lease_thread_started;
} SqlStore;

struct VoStoreWatch {
    SqlStore *s;
    char *prefix;
    char *prefix_end; /* the first string after every key with prefix */
    int64_t after;
    bool woken;
};

static int sql_err(SqlStore *s, int rc, const char *what)
{
    log_error("store: %s: %s", what, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EAGAIN; /* another process holds the file: the API's 503, retry */
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_TOOBIG:
        return -E2BIG;
    default:
        return -EIO;
    }
}

static pthread_mutex_t *store_lock(SqlStore *s)
{
    pthread_mutex_lock(&s->lock);
    return &s->lock;
}

static void unlockp(pthread_mutex_t **m)
{
    if (*m)
        pthread_mutex_unlock(*m);
}

/* Cached statements are reset on scope exit so bindings (bound SQLITE_STATIC)
 * never outlive the caller's strings and read transactions end promptly. */
static void stmt_resetp(sqlite3_stmt **st)
{
    if (*st) {
        sqlite3_reset(*st);
        sqlite3_clear_bindings(*st);
    }
}

#define _cleanup_unlock_ _cleanup_(unlockp) _unused_
#define _cleanup_reset_ _cleanup_(stmt_resetp)

static int bind_text(SqlStore *s, sqlite3_stmt *st, int idx, const char *text)
{
    int rc = text ? sqlite3_bind_text(st, idx, text, -1, SQLITE_STATIC)
                  : sqlite3_bind_null(st, idx);
    return rc == SQLITE_OK ? 0 : sql_err(s, rc, "bind");
}

static int bind_int(SqlStore *s, sqlite3_stmt *st, int idx, int64_t v)
{
    int rc = sqlite3_bind_int64(st, idx, v);
    return rc == SQLITE_OK ? 0 : sql_err(s, rc, "bind");
}

static int step_done(SqlStore *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? 0 : sql_err(s, rc, what);
}

static int run(SqlStore *s, int which)
{
    _cleanup_reset_ sqlite3_stmt *st = s->st[which];
    return step_done(s, st, stmt_sql[which]);
}

static char *column_dup(sqlite3_stmt *st, int col)
{
    const char *v = (const char *)sqlite3_column_text(st, col);
    return v ? vo_strdup(v) : NULL;
}

static int meta_get(SqlStore *s, const char *key, int64_t *ret)
{
    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_META_GET];
    int r = bind_text(s, st, 1, key);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        *ret = 0;
        return 0;
    }
    if (rc != SQLITE_ROW)
        return sql_err(s, rc, "meta");
    *ret = sqlite3_column_int64(st, 0);
    return 0;
}

static int meta_set(SqlStore *s, const char *key, int64_t v)
{
    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_META_SET];
    int r;
    if ((r = bind_text(s, st, 1, key)) < 0 || (r = bind_int(s, st, 2, v)) < 0)
        return r;
    return step_done(s, st, "meta");
}

/* Either output may be NULL (then this is an existence / revision check). */
static int get_locked(SqlStore *s, const char *key, char **ret_value, int64_t *ret_rev,
                      int64_t *ret_create_rev)
{
    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_GET_FULL];
    int r = bind_text(s, st, 1, key);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return sql_err(s, rc, "get");
    if (ret_value) {
        *ret_value = column_dup(st, 1);
        if (!*ret_value)
            return -ENOMEM; /* value is NOT NULL, so only an allocation failure */
    }
    if (ret_rev)
        *ret_rev = sqlite3_column_int64(st, 0);
    if (ret_create_rev)
        *ret_create_rev = sqlite3_column_int64(st, 2);
    return 0;
}

static int sql_get(VoStore *base, const char *key, char **ret_value, int64_t *ret_rev)
{
    SqlStore *s = (SqlStore *)base;
    if (!key)
        return -EINVAL;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    if (s->closing)
        return -ECANCELED;
    return get_locked(s, key, ret_value, ret_rev, NULL);
}

typedef struct {
    char *key, *value;
    int64_t rev;
} Row;

static void rows_free(Row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].key);
        free(rows[i].value);
    }
    free(rows);
}

static int list_locked(SqlStore *s, const char *prefix, Row **ret_rows, size_t *ret_n)
{
    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_LIST];
    size_t plen = strlen(prefix), n = 0, cap = 0;
    Row *rows = NULL;
    int r = bind_text(s, st, 1, prefix), rc = SQLITE_DONE;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const char *value = (const char *)sqlite3_column_text(st, 1);
        if (!key || !value) {
            r = -ENOMEM;
            break;
        }
        if (strncmp(key, prefix, plen) != 0)
            break; /* past the prefix range */
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            rows = realloc(rows, cap * sizeof(*rows));
            if (!rows)
                abort();
        }
        rows[n++] = (Row){ vo_strdup(key), vo_strdup(value), sqlite3_column_int64(st, 2) };
    }
    if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = sql_err(s, rc, "list");
    if (r < 0) {
        rows_free(rows, n);
        return r;
    }
    *ret_rows = rows;
    *ret_n = n;
    return 0;
}

/* Copies the rows out in one read transaction (one revision), then calls fn
 * unlocked, so callbacks may use the store themselves. */
static int sql_list(VoStore *base, const char *prefix, VoStoreListFn fn, void *userdata,
                    int64_t *ret_rev)
{
    SqlStore *s = (SqlStore *)base;
    if (!fn)
        return -EINVAL;
    Row *rows = NULL;
    size_t n = 0;
    int64_t rev = 0;
    int r;
    {
        _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
        if (s->closing)
            return -ECANCELED;
        if ((r = run(s, ST_BEGIN_READ)) < 0)
            return r;
        r = meta_get(s, "revision", &rev);
        if (r == 0)
            r = list_locked(s, prefix ? prefix : "", &rows, &n);
        (void)run(s, r == 0 ? ST_COMMIT : ST_ROLLBACK);
    }
    if (r == 0 && ret_rev)
        *ret_rev = rev;
    for (size_t i = 0; r == 0 && i < n; i++)
        r = fn(rows[i].key, rows[i].value, rows[i].rev, userdata);
    rows_free(rows, n);
    return r;
}

static int record_change(SqlStore *s, int64_t rev, const char *key, VoStoreOpKind kind,
                         const char *value, const char *prev)
{
    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_CHANGE];
    int r;
    if ((r = bind_int(s, st, 1, rev)) < 0 || (r = bind_text(s, st, 2, key)) < 0 ||
        (r = bind_int(s, st, 3, kind)) < 0 || (r = bind_text(s, st, 4, value)) < 0 ||
        (r = bind_text(s, st, 5, prev)) < 0)
        return r;
    return step_done(s, st, "change log");
}

/* Applies one op at rev inside the open transaction; *changed tells whether
 * it changed anything (a delete of a missing key does not). */
static int apply_op(SqlStore *s, const VoStoreOp *op, int64_t rev, bool *changed)
{
    _cleanup_free_ char *prev = NULL;
    int64_t create_rev = rev;
    int r = get_locked(s, op->key, &prev, NULL, &create_rev);
    if (r < 0 && r != -ENOENT)
        return r;
    bool exists = r == 0;
    if (!exists)
        create_rev = rev;

    if (op->kind == VO_STORE_DELETE) {
        if (!exists)
            return 0;
        _cleanup_reset_ sqlite3_stmt *st = s->st[ST_DEL];
        if ((r = bind_text(s, st, 1, op->key)) < 0 || (r = step_done(s, st, "delete")) < 0)
            return r;
        *changed = true;
        return record_change(s, rev, op->key, VO_STORE_DELETE, NULL, prev);
    }

    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_PUT];
    if ((r = bind_text(s, st, 1, op->key)) < 0 || (r = bind_int(s, st, 2, rev)) < 0 ||
        (r = bind_int(s, st, 3, create_rev)) < 0 || (r = bind_int(s, st, 4, op->lease)) < 0 ||
        (r = bind_text(s, st, 5, op->value)) < 0 || (r = step_done(s, st, "put")) < 0)
        return r;
    *changed = true;
    return record_change(s, rev, op->key, VO_STORE_PUT, op->value, prev);
}

static Lease *lease_find(SqlStore *s, int64_t id)
{
    for (size_t i = 0; i < s->n_leases; i++)
        if (s->leases[i].id == id)
            return &s->leases[i];
    return NULL;
}

static int compact_locked(SqlStore *s, int64_t rev);

/* After a commit: watchers wake, and every COMPACT_EVERY commits the change
 * log is cut to the newest keep_changes revisions. */
static void committed_locked(SqlStore *s, int64_t rev)
{
    pthread_cond_broadcast(&s->changed);
    if (++s->commits % COMPACT_EVERY == 0 && rev > s->keep_changes)
        (void)compact_locked(s, rev - s->keep_changes);
}

static int txn_body(SqlStore *s, const VoStoreCompare *cmps, size_t n_cmps, const VoStoreOp *ops,
                    size_t n_ops, int64_t *ret_rev, size_t *ret_failed)
{
    int r;
    for (size_t i = 0; i < n_cmps; i++) {
        int64_t rev = 0;
        r = get_locked(s, cmps[i].key, NULL, &rev, NULL);
        if (r < 0 && r != -ENOENT)
            return r;
        if (cmps[i].expected_rev == VO_REV_NEW)
            r = r == 0 ? -EEXIST : 0;
        else if (r == 0 && rev != cmps[i].expected_rev)
            r = -ESTALE;
        if (r < 0) {
            if (ret_failed)
                *ret_failed = i;
            return r;
        }
    }
    int64_t rev = 0;
    if ((r = meta_get(s, "revision", &rev)) < 0)
        return r;
    bool changed = false;
    for (size_t i = 0; i < n_ops; i++)
        if ((r = apply_op(s, &ops[i], rev + 1, &changed)) < 0)
            return r;
    if (changed) {
        rev++;
        if ((r = meta_set(s, "revision", rev)) < 0)
            return r;
    }
    *ret_rev = rev;
    return changed ? 1 : 0;
}

static int txn_locked(SqlStore *s, const VoStoreCompare *cmps, size_t n_cmps,
                      const VoStoreOp *ops, size_t n_ops, int64_t *ret_rev, size_t *ret_failed)
{
    int r = run(s, ST_BEGIN);
    if (r < 0)
        return r;
    int64_t rev = 0;
    r = txn_body(s, cmps, n_cmps, ops, n_ops, &rev, ret_failed);
    if (r < 0) {
        (void)run(s, ST_ROLLBACK);
        return r;
    }
    bool changed = r > 0;
    if ((r = run(s, ST_COMMIT)) < 0) {
        (void)run(s, ST_ROLLBACK);
        return r;
    }
    if (changed)
        committed_locked(s, rev);
    if (ret_rev)
        *ret_rev = rev;
    return 0;
}

static int sql_txn(VoStore *base, const VoStoreCompare *cmps, size_t n_cmps, const VoStoreOp *ops,
                   size_t n_ops, int64_t *ret_rev, size_t *ret_failed)
{
    SqlStore *s = (SqlStore *)base;
    if ((n_cmps && !cmps) || (n_ops && !ops))
        return -EINVAL;
    for (size_t i = 0; i < n_cmps; i++)
        if (!cmps[i].key || cmps[i].expected_rev < 0)
            return -EINVAL;
    for (size_t i = 0; i < n_ops; i++) {
        if (!ops[i].key || (ops[i].kind == VO_STORE_PUT && !ops[i].value) ||
            (ops[i].kind != VO_STORE_PUT && ops[i].kind != VO_STORE_DELETE) || ops[i].lease < 0)
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(ops[i].key, ops[j].key) == 0)
                return -EINVAL;
    }
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    if (s->closing)
        return -ECANCELED;
    /* A key put with a lease this store does not hold would never expire. */
    for (size_t i = 0; i < n_ops; i++)
        if (ops[i].kind == VO_STORE_PUT && ops[i].lease && !lease_find(s, ops[i].lease))
            return -EKEYEXPIRED;
    return txn_locked(s, cmps, n_cmps, ops, n_ops, ret_rev, ret_failed);
}

/* One counter of meta ("revision", "compacted"), read under the lock. */
static int meta_read(SqlStore *s, const char *key, int64_t *ret)
{
    if (!ret)
        return -EINVAL;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    if (s->closing)
        return -ECANCELED;
    return meta_get(s, key, ret);
}

static int sql_revision(VoStore *base, int64_t *ret_rev)
{
    return meta_read((SqlStore *)base, "revision", ret_rev);
}

static int compact_locked(SqlStore *s, int64_t rev)
{
    int r = run(s, ST_BEGIN);
    if (r < 0)
        return r;
    int64_t current = 0, compacted = 0;
    if ((r = meta_get(s, "revision", &current)) < 0 ||
        (r = meta_get(s, "compacted", &compacted)) < 0)
        goto fail;
    if (rev > current) {
        r = -EINVAL;
        goto fail;
    }
    if (rev > compacted) {
        _cleanup_reset_ sqlite3_stmt *st = s->st[ST_COMPACT];
        if ((r = bind_int(s, st, 1, rev)) < 0 || (r = step_done(s, st, "compact")) < 0 ||
            (r = meta_set(s, "compacted", rev)) < 0)
            goto fail;
    }
    if ((r = run(s, ST_COMMIT)) < 0)
        goto fail;
    return 0;
fail:
    (void)run(s, ST_ROLLBACK);
    return r;
}

static int sql_compacted(VoStore *base, int64_t *ret_rev)
{
    return meta_read((SqlStore *)base, "compacted", ret_rev);
}

static int sql_compact(VoStore *base, int64_t rev)
{
    SqlStore *s = (SqlStore *)base;
    if (rev < 0)
        return -EINVAL;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    if (s->closing)
        return -ECANCELED;
    int r = compact_locked(s, rev);
    if (r == 0)
        pthread_cond_broadcast(&s->changed); /* watches behind it fail now */
    return r;
}

/* ---- watches ---- */

static void store_unref_locked(SqlStore *s, pthread_mutex_t **lock);

static int sql_watch_open(VoStore *base, const char *prefix, int64_t after_rev,
                          VoStoreWatch **ret)
{
    SqlStore *s = (SqlStore *)base;
    if (!ret || after_rev < 0)
        return -EINVAL;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    if (s->closing)
        return -ECANCELED;
    VoStoreWatch *w = vo_malloc0(sizeof(*w));
    w->s = s;
    w->prefix = vo_strdup(prefix ? prefix : "");
    /* The successor: the last byte below 0xff raised by one, what follows
     * it dropped; "\xff" (above every UTF-8 key) when there is none. */
    w->prefix_end = vo_strdup(w->prefix);
    size_t len = strlen(w->prefix_end);
    while (len > 0 && (unsigned char)w->prefix_end[len - 1] == 0xff)
        w->prefix_end[--len] = '\0';
    if (len > 0)
        w->prefix_end[len - 1] = (char)((unsigned char)w->prefix_end[len - 1] + 1);
    else {
        free(w->prefix_end);
        w->prefix_end = vo_strdup("\xff");
    }
    w->after = after_rev;
    s->refs++;
    *ret = w;
    return 0;
}

static void events_push(VoStoreEvent **events, size_t *n, size_t *cap, VoStoreEvent ev)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *events = realloc(*events, *cap * sizeof(**events));
        if (!*events)
            abort();
    }
    (*events)[(*n)++] = ev;
}

/* Reads the watch's changes in (w->after, upto], advancing w->after. */
static int watch_read_locked(VoStoreWatch *w, int64_t upto, VoStoreEvent **events, size_t *n,
                             size_t *cap)
{
    SqlStore *s = w->s;
    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_CHANGES];
    size_t plen = strlen(w->prefix);
    int r;
    if ((r = bind_int(s, st, 1, w->after)) < 0 || (r = bind_int(s, st, 2, upto)) < 0)
        return r;
    if (sqlite3_bind_text(st, 3, w->prefix, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 4, w->prefix_end, -1, SQLITE_STATIC) != SQLITE_OK)
        return sql_err(s, sqlite3_errcode(s->db), "watch");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 1);
        if (!key)
            return -ENOMEM;
        if (strncmp(key, w->prefix, plen) != 0)
            continue;
        events_push(events, n, cap,
                    (VoStoreEvent){
                        .rev = sqlite3_column_int64(st, 0),
                        .kind = sqlite3_column_int(st, 2) == VO_STORE_DELETE ? VO_STORE_DELETE
                                                                             : VO_STORE_PUT,
                        .key = vo_strdup(key),
                        .value = column_dup(st, 3),
                        .prev_value = column_dup(st, 4),
                    });
    }
    if (rc != SQLITE_DONE)
        return sql_err(s, rc, "watch");
    w->after = upto;
    return 0;
}

/* One look at the change log, at most WATCH_WINDOW revisions (so a watch
 * far behind holds the store's lock only that long at a time): 0 with the
 * events found (maybe none) and *ret_more when the log holds more after. */
static int watch_poll_locked(VoStoreWatch *w, VoStoreEvent **events, size_t *n, bool *ret_more)
{
    SqlStore *s = w->s;
    size_t cap = 0;
    int r = run(s, ST_BEGIN_READ);
    if (r < 0)
        return r;
    int64_t current = 0, compacted = 0;
    if ((r = meta_get(s, "revision", &current)) < 0 ||
        (r = meta_get(s, "compacted", &compacted)) < 0)
        goto out;
    if (w->after < compacted) {
        r = VO_STORE_ECOMPACTED;
        goto out;
    }
    if (w->after < current) {
        int64_t upto = current - w->after > WATCH_WINDOW ? w->after + WATCH_WINDOW : current;
        r = watch_read_locked(w, upto, events, n, &cap);
    }
    *ret_more = r == 0 && w->after < current;
out:
    (void)run(s, ST_COMMIT);
    return r;
}

static struct timespec deadline_in(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static int sql_watch_next(VoStoreWatch *w, int timeout_ms, VoStoreEvent **ret_events,
                          size_t *ret_n)
{
    if (!w || !ret_events || !ret_n)
        return -EINVAL;
    SqlStore *s = w->s;
    VoStoreEvent *events = NULL;
    size_t n = 0;
    struct timespec deadline = deadline_in(timeout_ms > 0 ? timeout_ms : 0);
    int r = 0;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    for (;;) {
        if (s->closing) {
            r = -ECANCELED;
            break;
        }
        if (w->woken) {
            w->woken = false;
            break;
        }
        bool more = false;
        r = watch_poll_locked(w, &events, &n, &more);
        if (r < 0 || n > 0)
            break;
        if (more) {
            /* Nothing for this watch in that window: let writers in, then
             * the next window. */
            pthread_mutex_unlock(&s->lock);
            sched_yield();
            pthread_mutex_lock(&s->lock);
            continue;
        }
        if (timeout_ms == 0)
            break;
        if (timeout_ms < 0)
            pthread_cond_wait(&s->changed, &s->lock);
        else if (pthread_cond_timedwait(&s->changed, &s->lock, &deadline) == ETIMEDOUT) {
            /* A last look: a commit may have landed with the timeout. */
            if (!s->closing && !w->woken) {
                r = watch_poll_locked(w, &events, &n, &more);
                if (r == 0 && n == 0 && more)
                    continue; /* the rest of the log, window by window */
            }
            break;
        }
    }
    if (r < 0) {
        vo_store_events_free(events, n);
        return r;
    }
    *ret_events = events;
    *ret_n = n;
    return 0;
}

static void sql_watch_wake(VoStoreWatch *w)
{
    if (!w)
        return;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(w->s);
    w->woken = true;
    pthread_cond_broadcast(&w->s->changed);
}

static void sql_watch_close(VoStoreWatch *w)
{
    if (!w)
        return;
    SqlStore *s = w->s;
    free(w->prefix);
    free(w->prefix_end);
    free(w);
    pthread_mutex_t *lock = store_lock(s);
    store_unref_locked(s, &lock);
}

/* ---- leases ---- */

static int sql_lease_grant(VoStore *base, int ttl_ms, int64_t *ret_lease)
{
    SqlStore *s = (SqlStore *)base;
    if (ttl_ms <= 0 || !ret_lease)
        return -EINVAL;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    if (s->closing)
        return -ECANCELED;
    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_LEASE_ADD];
    int r;
    if ((r = bind_int(s, st, 1, ttl_ms)) < 0 || (r = step_done(s, st, "lease grant")) < 0)
        return r;
    int64_t id = sqlite3_last_insert_rowid(s->db);
    s->leases = realloc(s->leases, (s->n_leases + 1) * sizeof(*s->leases));
    if (!s->leases)
        abort();
    s->leases[s->n_leases++] = (Lease){ id, ttl_ms, vo_now_ms() + ttl_ms };
    pthread_cond_signal(&s->lease_timer);
    *ret_lease = id;
    return 0;
}

static int sql_lease_keepalive(VoStore *base, int64_t lease)
{
    SqlStore *s = (SqlStore *)base;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    if (s->closing)
        return -ECANCELED;
    Lease *l = lease_find(s, lease);
    if (!l)
        return -ENOENT;
    l->deadline_ms = vo_now_ms() + l->ttl_ms;
    return 0;
}

/* Deletes the lease's keys (one revision, if it had any) and the lease. */
static int revoke_locked(SqlStore *s, int64_t lease)
{
    Lease *l = lease_find(s, lease);
    if (!l)
        return -ENOENT;
    int r = run(s, ST_BEGIN);
    if (r < 0)
        return r;
    char **keys = NULL;
    {
        _cleanup_reset_ sqlite3_stmt *st = s->st[ST_LEASE_KEYS];
        int rc;
        if ((r = bind_int(s, st, 1, lease)) < 0)
            goto fail;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            (void)vo_strv_push(&keys, column_dup(st, 0));
        if (rc != SQLITE_DONE) {
            r = sql_err(s, rc, "lease keys");
            goto fail;
        }
    }
    size_t n_keys = vo_strv_len(keys);
    int64_t rev = 0;
    if (n_keys > 0) {
        VoStoreOp *ops = vo_malloc0(n_keys * sizeof(*ops));
        for (size_t i = 0; i < n_keys; i++)
            ops[i] = (VoStoreOp){ VO_STORE_DELETE, keys[i], NULL, 0 };
        r = txn_body(s, NULL, 0, ops, n_keys, &rev, NULL);
        free(ops);
        if (r < 0)
            goto fail;
    }
    {
        _cleanup_reset_ sqlite3_stmt *st = s->st[ST_LEASE_DEL];
        if ((r = bind_int(s, st, 1, lease)) < 0 || (r = step_done(s, st, "lease revoke")) < 0)
            goto fail;
    }
    if ((r = run(s, ST_COMMIT)) < 0)
        goto fail;
    vo_strv_free(keys);
    *l = s->leases[--s->n_leases];
    if (n_keys > 0)
        committed_locked(s, rev);
    return 0;
fail:
    (void)run(s, ST_ROLLBACK);
    vo_strv_free(keys);
    return r;
}

static int sql_lease_revoke(VoStore *base, int64_t lease)
{
    SqlStore *s = (SqlStore *)base;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    if (s->closing)
        return -ECANCELED;
    return revoke_locked(s, lease);
}

/* Expires leases past their deadline; sleeps until the next one is due. */
static void *lease_thread(void *userdata)
{
    SqlStore *s = userdata;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    while (!s->closing) {
        int64_t now = vo_now_ms(), next = now + 1000;
        for (size_t i = 0; i < s->n_leases;) {
            Lease *l = &s->leases[i];
            if (l->deadline_ms <= now) {
                int64_t id = l->id;
                int r = revoke_locked(s, id);
                if (r < 0) {
                    /* Tried again on the next round; the db may be busy. */
                    log_warn("store: cannot expire lease %lld: %s", (long long)id, strerror(-r));
                    l->deadline_ms = now + 100;
                    i++;
                }
                continue; /* revoke moved the last lease into slot i */
            }
            if (l->deadline_ms < next)
                next = l->deadline_ms;
            i++;
        }
        struct timespec ts = deadline_in((int)(next - now));
        pthread_cond_timedwait(&s->lease_timer, &s->lock, &ts);
    }
    return NULL;
}

static int leases_load(SqlStore *s)
{
    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_LEASE_ALL];
    int rc;
    int64_t now = vo_now_ms();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        s->leases = realloc(s->leases, (s->n_leases + 1) * sizeof(*s->leases));
        if (!s->leases)
            abort();
        int64_t ttl = sqlite3_column_int64(st, 1);
        /* The deadline of an earlier run is unknown: the owner gets a full TTL. */
        s->leases[s->n_leases++] = (Lease){ sqlite3_column_int64(st, 0), ttl, now + ttl };
    }
    return rc == SQLITE_DONE ? 0 : sql_err(s, rc, "leases");
}

/* ---- open / close ---- */

static void store_free(SqlStore *s)
{
    for (size_t i = 0; i < ST_MAX; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        log_warn("store: close: %s", sqlite3_errmsg(s->db));
    s->db = NULL;
    free(s->leases);
    s->leases = NULL;
}

/* Drops one reference; the last one frees the store (and unlocks). */
static void store_unref_locked(SqlStore *s, pthread_mutex_t **lock)
{
    bool last = --s->refs == 0;
    pthread_mutex_unlock(*lock);
    *lock = NULL;
    if (!last)
        return;
    pthread_cond_destroy(&s->changed);
    pthread_cond_destroy(&s->lease_timer);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void sql_close(VoStore *base)
{
    SqlStore *s = (SqlStore *)base;
    pthread_mutex_t *lock = store_lock(s);
    s->closing = true;
    pthread_cond_broadcast(&s->changed);
    pthread_cond_broadcast(&s->lease_timer);
    pthread_mutex_unlock(lock);
    if (s->lease_thread_started)
        pthread_join(s->lease_thread, NULL);
    lock = store_lock(s);
    /* Watches still open only see closing from now on; the db can go. */
    store_free(s);
    store_unref_locked(s, &lock);
}

static int sql_request_timeout_ms(VoStore *base)
{
    (void)base;
    return BUSY_TIMEOUT_MS;
}

static const VoStoreOps sqlite_ops = {
    .name = "sqlite",
    .unavailable_message = "database is busy",
    .close = sql_close,
    .get = sql_get,
    .list = sql_list,
    .txn = sql_txn,
    .revision = sql_revision,
    .watch_open = sql_watch_open,
    .watch_next = sql_watch_next,
    .watch_wake = sql_watch_wake,
    .watch_close = sql_watch_close,
    .lease_grant = sql_lease_grant,
    .lease_keepalive = sql_lease_keepalive,
    .lease_revoke = sql_lease_revoke,
    .compact = sql_compact,
    .compacted = sql_compacted,
    .request_timeout_ms = sql_request_timeout_ms,
};

static int exec_sql(SqlStore *s, const char *sql)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sql_err(s, rc, sql);
}

static int table_exists(SqlStore *s, const char *name, bool *ret)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_err(s, rc, "schema");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sql_err(s, rc, "schema");
    *ret = rc == SQLITE_ROW;
    return 0;
}

static int read_version(SqlStore *s, int64_t *ret)
{
    bool has_meta = false;
    int r = table_exists(s, "meta", &has_meta);
    if (r < 0)
        return r;
    *ret = 0;
    if (!has_meta)
        return 0;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return sql_err(s, rc, "schema");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *ret = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sql_err(s, rc, "schema");
}

/* Creates schema v2 or migrates v1, in one transaction. */
static int schema_setup(SqlStore *s, const char *db_path)
{
    int r = exec_sql(s, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    int64_t version = 0;
    if ((r = read_version(s, &version)) < 0)
        goto fail;
    if (version == 0) {
        _cleanup_free_ char *sql = vo_asprintf(
            "%sINSERT INTO meta (key, value) VALUES ('schema_version', '%d'), ('revision', '0'),"
            " ('compacted', '0');",
            schema_v2_sql, SCHEMA_VERSION);
        r = exec_sql(s, sql);
    } else if (version == 1) {
        log_info("store: %s: migrating schema 1 to %d", db_path, SCHEMA_VERSION);
        _cleanup_free_ char *sql = vo_asprintf(migrate_v1_sql, schema_v2_sql);
        r = exec_sql(s, sql);
    } else if (version != SCHEMA_VERSION) {
        log_error("store: %s has schema version %lld, this vireo supports %d", db_path,
                  (long long)version, SCHEMA_VERSION);
        r = -EPROTONOSUPPORT;
    }
    if (r < 0)
        goto fail;
    return exec_sql(s, "COMMIT");
fail:
    (void)exec_sql(s, "ROLLBACK");
    return r;
}

static void sql_closep(SqlStore **s)
{
    if (*s)
        sql_close(&(*s)->base);
}

int vo_store_open(const char *db_path, VoStore **ret)
{
    return vo_store_open_keeping(db_path, 0, ret);
}

int vo_store_open_keeping(const char *db_path, int64_t keep_changes, VoStore **ret)
{
    if (!db_path || !ret || keep_changes < 0)
        return -EINVAL;
    _cleanup_(sql_closep) SqlStore *s = vo_malloc0(sizeof(*s));
    s->base.ops = &sqlite_ops;
    s->keep_changes = keep_changes ? keep_changes : VO_STORE_SQLITE_KEEP_CHANGES;
    s->refs = 1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->changed, &attr);
    pthread_cond_init(&s->lease_timer, &attr);
    pthread_condattr_destroy(&attr);

    int rc = sqlite3_open_v2(db_path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        log_error("store: cannot open %s", db_path);
        return sql_err(s, rc, "open");
    }
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_err(s, rc, "journal mode");
    rc = sqlite3_step(st);
    const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (!mode || strcmp(mode, "wal") != 0)
        log_warn("store: %s: journal mode is %s, not wal", db_path, mode ? mode : "?");
    sqlite3_finalize(st);
    int r = exec_sql(s, "PRAGMA synchronous=NORMAL");
    if (r < 0)
        return r;
    if ((r = schema_setup(s, db_path)) < 0)
        return r;

    for (size_t i = 0; i < ST_MAX; i++) {
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                                NULL);
        if (rc != SQLITE_OK)
            return sql_err(s, rc, stmt_sql[i]);
    }
    if ((r = leases_load(s)) < 0)
        return r;
    if ((r = -pthread_create(&s->lease_thread, NULL, lease_thread, s)) < 0)
        return r;
    s->lease_thread_started = true;
    *ret = &TAKE_PTR(s)->base;
    return 0;
}
