/* store.c: the document store declared in store.h: JSON text keyed by path with a
 * revision per document, compare-and-swap writes, on one SQLite (WAL) connection
 * shared by all threads behind a mutex. */
#include "state/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

#include "util/util.h"

#define SCHEMA_VERSION 1

/* Every write is a single statement, so it is atomic even against other processes
 * using the same file: the CAS check lives in the WHERE / ON CONFLICT clause. */
enum { ST_GET, ST_INSERT, ST_UPSERT, ST_UPDATE, ST_DELETE, ST_LIST, ST_MAX };
static const char *const stmt_sql[ST_MAX] = {
    [ST_GET] = "SELECT rev, value FROM documents WHERE key = ?1",
    [ST_INSERT] = "INSERT INTO documents (key, rev, value) VALUES (?1, 1, ?2) "
                  "ON CONFLICT (key) DO NOTHING",
    [ST_UPSERT] = "INSERT INTO documents (key, rev, value) VALUES (?1, 1, ?2) "
                  "ON CONFLICT (key) DO UPDATE SET rev = rev + 1, value = excluded.value "
                  "RETURNING rev",
    [ST_UPDATE] = "UPDATE documents SET rev = rev + 1, value = ?2 WHERE key = ?1 AND rev = ?3",
    [ST_DELETE] = "DELETE FROM documents WHERE key = ?1 AND (?2 < 0 OR rev = ?2)",
    /* Keys sharing a prefix are contiguous in (binary) key order, starting at the
     * prefix itself: the walk starts there and stops at the first key without it. */
    [ST_LIST] = "SELECT key, value, rev FROM documents WHERE key >= ?1 ORDER BY key",
};

static const char schema_sql[] =
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS documents ("
    "  key TEXT PRIMARY KEY, rev INTEGER NOT NULL, value TEXT NOT NULL);"
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');"
    "COMMIT;";

struct VoStore {
    pthread_mutex_t lock;
    sqlite3 *db;
    sqlite3_stmt *st[ST_MAX];
};

static int sql_err(VoStore *s, int rc, const char *what)
{
    log_error("store: %s: %s", what, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
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

static pthread_mutex_t *store_lock(VoStore *s)
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

static int bind_text(VoStore *s, sqlite3_stmt *st, int idx, const char *text)
{
    int rc = sqlite3_bind_text(st, idx, text, -1, SQLITE_STATIC);
    return rc == SQLITE_OK ? 0 : sql_err(s, rc, "bind");
}

static int bind_int(VoStore *s, sqlite3_stmt *st, int idx, int64_t v)
{
    int rc = sqlite3_bind_int64(st, idx, v);
    return rc == SQLITE_OK ? 0 : sql_err(s, rc, "bind");
}

/* Steps a statement that must run to completion (writes commit here). */
static int step_done(VoStore *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? 0 : sql_err(s, rc, what);
}

static int exec_sql(VoStore *s, const char *sql, int (*cb)(void *, int, char **, char **),
                    void *userdata)
{
    int rc = sqlite3_exec(s->db, sql, cb, userdata, NULL);
    return rc == SQLITE_OK ? 0 : sql_err(s, rc, sql);
}

static int copy_first_column(void *userdata, int ncol, char **vals, char **names _unused_)
{
    char **ret = userdata;
    if (ncol > 0 && vals[0] && !*ret)
        *ret = vo_strdup(vals[0]);
    return 0;
}

VoStore *vo_store_close(VoStore *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < ST_MAX; i++)
        sqlite3_finalize(s->st[i]);
    if (sqlite3_close(s->db) != SQLITE_OK)
        log_warn("store: close: %s", sqlite3_errmsg(s->db));
    pthread_mutex_destroy(&s->lock);
    free(s);
    return NULL;
}

static void vo_store_closep(VoStore **s)
{
    vo_store_close(*s);
}

int vo_store_open(const char *db_path, VoStore **ret)
{
    if (!db_path || !ret)
        return -EINVAL;
    _cleanup_(vo_store_closep) VoStore *s = vo_malloc0(sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);

    int rc = sqlite3_open_v2(db_path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        log_error("store: cannot open %s", db_path);
        return sql_err(s, rc, "open");
    }
    sqlite3_busy_timeout(s->db, 5000);

    _cleanup_free_ char *mode = NULL;
    int r = exec_sql(s, "PRAGMA journal_mode=WAL", copy_first_column, &mode);
    if (r < 0)
        return r;
    if (!mode || strcmp(mode, "wal") != 0)
        log_warn("store: %s: journal mode is %s, not wal", db_path, mode ? mode : "?");
    r = exec_sql(s, "PRAGMA synchronous=NORMAL", NULL, NULL);
    if (r < 0)
        return r;
    r = exec_sql(s, schema_sql, NULL, NULL);
    if (r < 0)
        return r; /* closing the connection rolls the transaction back */

    _cleanup_free_ char *version = NULL;
    r = exec_sql(s, "SELECT value FROM meta WHERE key = 'schema_version'", copy_first_column,
                 &version);
    if (r < 0)
        return r;
    if (!version || atoi(version) != SCHEMA_VERSION) {
        log_error("store: %s has schema version %s, this vireo supports %d", db_path,
                  version ? version : "?", SCHEMA_VERSION);
        return -EPROTONOSUPPORT;
    }

    for (size_t i = 0; i < ST_MAX; i++) {
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                                NULL);
        if (rc != SQLITE_OK)
            return sql_err(s, rc, stmt_sql[i]);
    }
    *ret = TAKE_PTR(s);
    return 0;
}

/* Either output may be NULL (then this is an existence / revision check). */
static int get_locked(VoStore *s, const char *key, char **ret_value, int64_t *ret_rev)
{
    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_GET];
    int r = bind_text(s, st, 1, key);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return sql_err(s, rc, "get");
    if (ret_value) {
        const char *v = (const char *)sqlite3_column_text(st, 1);
        if (!v)
            return -ENOMEM; /* value is NOT NULL, so only an allocation failure */
        *ret_value = vo_strdup(v);
    }
    if (ret_rev)
        *ret_rev = sqlite3_column_int64(st, 0);
    return 0;
}

int vo_store_get(VoStore *s, const char *key, char **ret_value, int64_t *ret_rev)
{
    if (!s || !key)
        return -EINVAL;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    return get_locked(s, key, ret_value, ret_rev);
}

/* After a conditional write matched no row: was the key missing or its revision off? */
static int miss_reason(VoStore *s, const char *key)
{
    int r = get_locked(s, key, NULL, NULL);
    return r == 0 ? -ESTALE : r;
}

static int put_locked(VoStore *s, const char *key, const char *value, int64_t expected_rev,
                      int64_t *ret_rev)
{
    int r;
    if (expected_rev == VO_REV_NEW) {
        _cleanup_reset_ sqlite3_stmt *st = s->st[ST_INSERT];
        if ((r = bind_text(s, st, 1, key)) < 0 || (r = bind_text(s, st, 2, value)) < 0 ||
            (r = step_done(s, st, "insert")) < 0)
            return r;
        if (sqlite3_changes(s->db) == 0)
            return -EEXIST;
        *ret_rev = 1;
        return 0;
    }
    if (expected_rev == VO_REV_ANY) {
        _cleanup_reset_ sqlite3_stmt *st = s->st[ST_UPSERT];
        if ((r = bind_text(s, st, 1, key)) < 0 || (r = bind_text(s, st, 2, value)) < 0)
            return r;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            return sql_err(s, rc, "upsert");
        *ret_rev = sqlite3_column_int64(st, 0);
        return step_done(s, st, "upsert"); /* the statement commits when it completes */
    }
    if (expected_rev < 0)
        return -EINVAL;

    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_UPDATE];
    if ((r = bind_text(s, st, 1, key)) < 0 || (r = bind_text(s, st, 2, value)) < 0 ||
        (r = bind_int(s, st, 3, expected_rev)) < 0 || (r = step_done(s, st, "update")) < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return miss_reason(s, key);
    *ret_rev = expected_rev + 1;
    return 0;
}

int vo_store_put(VoStore *s, const char *key, const char *value, int64_t expected_rev,
                 int64_t *ret_rev)
{
    if (!s || !key || !value)
        return -EINVAL;
    int64_t rev = 0;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    int r = put_locked(s, key, value, expected_rev, &rev);
    if (r == 0 && ret_rev)
        *ret_rev = rev;
    return r;
}

int vo_store_delete(VoStore *s, const char *key, int64_t expected_rev)
{
    if (!s || !key || (expected_rev <= 0 && expected_rev != VO_REV_ANY))
        return -EINVAL;
    _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
    _cleanup_reset_ sqlite3_stmt *st = s->st[ST_DELETE];
    int r;
    if ((r = bind_text(s, st, 1, key)) < 0 || (r = bind_int(s, st, 2, expected_rev)) < 0 ||
        (r = step_done(s, st, "delete")) < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return expected_rev == VO_REV_ANY ? -ENOENT : miss_reason(s, key);
    return 0;
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

/* Copies the matching rows out under the lock, so callbacks run unlocked and may
 * use the store themselves (including modifying the documents being walked). */
static int list_locked(VoStore *s, const char *prefix, Row **ret_rows, size_t *ret_n)
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

int vo_store_list(VoStore *s, const char *prefix, VoStoreListFn fn, void *userdata)
{
    if (!s || !fn)
        return -EINVAL;
    Row *rows = NULL;
    size_t n = 0;
    int r;
    {
        _cleanup_unlock_ pthread_mutex_t *lock = store_lock(s);
        r = list_locked(s, prefix ? prefix : "", &rows, &n);
    }
    for (size_t i = 0; r == 0 && i < n; i++)
        r = fn(rows[i].key, rows[i].value, rows[i].rev, userdata);
    rows_free(rows, n);
    return r;
}
