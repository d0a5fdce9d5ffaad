/* backup-records.c: backups as directories in backup pools: finding, reading
 * and writing their records, measuring their files, deleting one without
 * breaking the backups built on it, and the per-VM base of the next
 * incremental backup (see backup-internal.h). A record whose disk files are
 * not plain "diskN.qcow2" names is refused (never a path outside it). */
#include "daemon/backup-internal.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/names.h"
#include "daemon/host-id.h"
#include "daemon/storage.h"
#include "state/keys.h"
#include "qemu/qemu-backup.h"
#include "state/records.h"
#include "storage/backup-id.h"
#include "storage/qemu-img.h"
#include "util/sha256.h"
#include "util/spawn.h"
#include "util/util.h"

static json_t *base_load_rev(VoDaemon *d, const char *vm_id, int64_t *ret_rev);

pthread_mutex_t vo_backups_lock = PTHREAD_MUTEX_INITIALIZER;

static char *host_dir(VoDaemon *d, const char *pool_path, const char *prefix, const char *id)
{
    _cleanup_free_ char *host = vo_host_id(d);
    return host ? vo_asprintf("%s/%s%s-%s", pool_path, prefix, host, id) : NULL;
}

char *backup_partial_path(VoDaemon *d, const char *pool_path, const char *id)
{
    return host_dir(d, pool_path, BACKUP_PARTIAL_PREFIX, id);
}

char *backup_deleting_path(VoDaemon *d, const char *pool_path, const char *id)
{
    return host_dir(d, pool_path, BACKUP_DELETING_PREFIX, id);
}

void backup_ref_clear(BackupRef *b)
{
    free(b->pool);
    free(b->pool_path);
    free(b->id);
    json_decref(b->record);
    *b = (BackupRef){ 0 };
}

json_t *backup_record_load(const char *pool_path, const char *id)
{
    if (!vo_backup_id_valid(id))
        return NULL;
    _cleanup_free_ char *path = vo_asprintf("%s/%s/%s", pool_path, id, BACKUP_RECORD);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(path, 16 << 20, &text, NULL) < 0)
        return NULL;
    json_t *record = json_loads(text, 0, NULL);
    bool ok = json_is_object(record) &&
              !strcmp(json_string_value(json_object_get(record, "id")) ?: "", id) &&
              json_is_array(json_object_get(record, "disks"));
    /* Its files are used in paths: only names that stay inside the backup. */
    size_t i;
    json_t *disk;
    json_array_foreach(ok ? json_object_get(record, "disks") : NULL, i, disk)
        ok = ok && vo_backup_file_valid(json_string_value(json_object_get(disk, "file")));
    if (!ok) {
        if (record)
            log_warn("backups: ignoring %s: not a valid backup record", path);
        json_decref(record);
        return NULL;
    }
    return record;
}

int backup_record_save(const char *dir, json_t *record)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, BACKUP_RECORD);
    _cleanup_free_ char *text = json_dumps(record, JSON_INDENT(2) | JSON_SORT_KEYS);
    int r = vo_write_file_atomic(path, text, strlen(text));
    /* It holds the VM's definition: root's alone, like the disk files. */
    return r < 0 ? r : chmod(path, VO_IMG_FILE_MODE) < 0 ? -errno : 0;
}

int backup_find(VoDaemon *d, const char *id, BackupRef *ret, char **ret_error)
{
    if (!vo_backup_id_valid(id))
        return vo_error_set(ret_error, -EINVAL, "backup id '%s' is invalid: backup ids are "
                            "1-%d characters of a-z, 0-9 and '-'", id ? id : "", VO_BACKUP_ID_MAX);
    _cleanup_free_ char *key = vo_asprintf(BACKUP_DOC_PREFIX "%s", id);
    _cleanup_free_ char *text = NULL, *path = NULL, *error = NULL;
    int64_t rev = 0;
    json_t *doc = vo_store_get(d->store, key, &text, &rev) == 0 ? json_loads(text, 0, NULL)
                                                                 : NULL;
    const char *pool = json_string_value(json_object_get(doc, "pool"));
    json_t *record = pool && vo_backup_pool_path(d, pool, &path, &error) >= 0
                         ? backup_record_load(path, id) : NULL;
    if (record)
        *ret = (BackupRef){ .pool = vo_strdup(pool), .pool_path = TAKE_PTR(path),
                            .id = vo_strdup(id), .record = record, .rev = rev };
    json_decref(doc);
    return record ? 0 : vo_error_set(ret_error, -ENOENT, "backup '%s' does not exist", id);
}

int backup_if_match(VoTask *t, const BackupRef *b, char **ret_error)
{
    _cleanup_free_ char *what = vo_asprintf("backup '%s'", b->id);
    return vo_if_match_check(vo_task_if_match(t), b->rev, what, ret_error);
}

int backup_doc_put(VoDaemon *d, const char *pool, json_t *record, bool create)
{
    const char *id = json_string_value(json_object_get(record, "id"));
    _cleanup_free_ char *key = vo_asprintf(BACKUP_DOC_PREFIX "%s", id);
    _cleanup_free_ char *old = NULL;
    int64_t rev = VO_REV_NEW;
    /* An update takes the revision it reads here, not one its caller read:
     * the record's truth is backup.json in the pool (pools may be shared
     * between hosts), which the caller has just written; the document
     * mirrors the newest file. Read right before the put, the revision still
     * makes it a compare-and-swap: a writer in between wins, this put fails
     * (-ESTALE, logged) and the next start rewrites the document from the
     * file (vo_backups_load). */
    int r = create ? -ENOENT : vo_store_get(d->store, key, &old, &rev);
    if (r < 0 && r != -ENOENT)
        return r;
    json_t *old_doc = old ? json_loads(old, 0, NULL) : NULL;
    if (!pool)
        pool = json_string_value(json_object_get(old_doc, "pool"));
    if (r == -ENOENT)
        rev = VO_REV_NEW;
    r = 0;
    if (pool) {
        json_t *doc = vo_backup_doc_make(record, pool);
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(doc);
        r = vo_store_put(d->store, key, text, rev, NULL);
        if (r < 0)
            log_warn("backups: cannot write %s: %s", key, strerror(-r));
    }
    json_decref(old_doc);
    return r;
}

int backup_doc_delete(VoDaemon *d, const char *id)
{
    _cleanup_free_ char *key = vo_asprintf(BACKUP_DOC_PREFIX "%s", id);
    int64_t rev = 0;
    /* At the revision read here (see backup_doc_put): the backup's files
     * are already out of the way (renamed to .deleting-), so whatever the
     * document says now, it goes; a writer in between makes this fail, and
     * the next start drops a document whose files are gone. */
    int r = vo_store_get(d->store, key, NULL, &rev);
    if (r >= 0)
        r = vo_store_delete(d->store, key, rev);
    if (r < 0 && r != -ENOENT)
        log_warn("backups: cannot delete %s: %s (the next start drops it)", key, strerror(-r));
    return r == -ENOENT ? 0 : r;
}

static int cmp_created(const void *a, const void *b)
{
    json_t *ra = *(json_t *const *)a, *rb = *(json_t *const *)b;
    json_int_t ta = json_integer_value(json_object_get(ra, "created_ms"));
    json_int_t tb = json_integer_value(json_object_get(rb, "created_ms"));
    if (ta != tb)
        return ta < tb ? -1 : 1;
    return strcmp(json_string_value(json_object_get(ra, "id")),
                  json_string_value(json_object_get(rb, "id")));
}

json_t *backup_records_in(const char *pool_path)
{
    json_t *arr = NULL;
    (void)backup_records_read(pool_path, &arr);
    return arr;
}

int backup_records_read(const char *pool_path, json_t **ret)
{
    json_t **items = NULL;
    size_t n = 0;
    DIR *dir = opendir(pool_path);
    int r = dir ? 0 : -errno;
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        json_t *record = e->d_name[0] == '.' ? NULL : backup_record_load(pool_path, e->d_name);
        if (!record)
            continue;
        items = realloc(items, sizeof(json_t *) * (n + 1));
        if (!items)
            abort();
        items[n++] = record;
    }
    if (dir)
        closedir(dir);
    if (n)
        qsort(items, n, sizeof(json_t *), cmp_created);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, items[i]);
    free(items);
    *ret = arr;
    return r;
}

const char *backup_disk_file(json_t *record, unsigned slot)
{
    size_t i;
    json_t *disk;
    json_array_foreach(json_object_get(record, "disks"), i, disk)
        if (json_integer_value(json_object_get(disk, "slot")) == (json_int_t)slot)
            return json_string_value(json_object_get(disk, "file"));
    return NULL;
}

int backup_disk_measure(const char *path, json_t *disk, char **ret_error)
{
    char sum[VO_SHA256_HEX_LEN + 1];
    struct stat st;
    int r = vo_sha256_file(path, sum);
    if (r >= 0 && stat(path, &st) < 0)
        r = -errno;
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read %s: %s", path, strerror(-r));
    json_object_set_new(disk, "sha256", json_string(sum));
    json_object_set_new(disk, "stored_bytes", json_integer((json_int_t)st.st_blocks * 512));
    return 0;
}

void backup_record_total(json_t *record)
{
    json_int_t total = 0;
    size_t i;
    json_t *disk;
    json_array_foreach(json_object_get(record, "disks"), i, disk)
        total += json_integer_value(json_object_get(disk, "stored_bytes"));
    json_object_set_new(record, "stored_bytes", json_integer(total));
}

/* qemu-img rebase (safe mode: the data the old backing chain gave and the new
 * one does not is copied into file); new_backing "" makes file stand alone. */
static int rebase(const char *file, const char *new_backing, char **ret_error)
{
    char *argv[] = { "qemu-img", "rebase", "-q", "-f", "qcow2", "-b", (char *)new_backing,
                     "-F", "qcow2", (char *)file, NULL };
    if (!new_backing[0]) { /* no backing format without a backing file */
        argv[7] = (char *)file;
        argv[8] = NULL;
    }
    _cleanup_free_ char *out = NULL;
    int r = vo_spawn_wait(argv, 3600 * 1000, &out);
    if (r < 0) {
        for (size_t n = out ? strlen(out) : 0; n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ');)
            out[--n] = 0;
        return vo_error_set(ret_error, r, "qemu-img rebase %s: %s", file,
                            out && *out ? out : strerror(-r));
    }
    return 0;
}

/* Makes child independent of parent_id (the backup being deleted): its
 * files are rebased onto the parent's parent (grand_id, or nothing). */
static int rebase_child(VoDaemon *d, const char *pool_path, json_t *child,
                        const char *grand_id, json_t *grand, char **ret_error)
{
    const char *child_id = json_string_value(json_object_get(child, "id"));
    _cleanup_free_ char *dir = vo_asprintf("%s/%s", pool_path, child_id);
    size_t i;
    json_t *disk;
    json_array_foreach(json_object_get(child, "disks"), i, disk) {
        const char *file = json_string_value(json_object_get(disk, "file"));
        unsigned slot = (unsigned)json_integer_value(json_object_get(disk, "slot"));
        const char *grand_file = grand ? backup_disk_file(grand, slot) : NULL;
        _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, file);
        _cleanup_free_ char *backing = grand_file ? vo_asprintf("../%s/%s", grand_id, grand_file)
                                                  : vo_strdup("");
        int r = rebase(path, backing, ret_error);
        if (r >= 0)
            r = backup_disk_measure(path, disk, ret_error);
        if (r < 0)
            return r;
    }
    json_object_set_new(child, "parent", grand ? json_string(grand_id) : json_null());
    if (!grand)
        json_object_set_new(child, "kind", json_string("full"));
    backup_record_total(child);
    int r = backup_record_save(dir, child);
    if (r >= 0)
        (void)backup_doc_put(d, NULL, child, false);
    return r;
}

int backup_delete_locked(VoDaemon *d, const char *pool_path, const char *id, VoTask *t,
                         char **ret_error)
{
    json_t *record = backup_record_load(pool_path, id);
    if (!record)
        return vo_error_set(ret_error, -ENOENT, "backup '%s' does not exist", id);
    const char *grand_id = json_string_value(json_object_get(record, "parent"));
    json_t *grand = grand_id ? backup_record_load(pool_path, grand_id) : NULL;
    json_t *all = backup_records_in(pool_path);
    int r = 0;
    size_t i;
    json_t *other;
    json_array_foreach(all, i, other) {
        if (strcmp(json_string_value(json_object_get(other, "parent")) ?: "", id))
            continue;
        if (t)
            vo_task_progress(t, 30, "rebasing the backups built on it");
        r = rebase_child(d, pool_path, other, grand_id, grand, ret_error);
        if (r < 0)
            break;
    }
    json_decref(all);
    json_decref(grand);
    if (r >= 0) {
        /* The record out of the pool first (a rename), then the document
         * (a crash between leaves a document whose record is gone, dropped
         * at the next start), then the files. */
        _cleanup_free_ char *dir = vo_asprintf("%s/%s", pool_path, id);
        _cleanup_free_ char *gone = backup_deleting_path(d, pool_path, id);
        if (!gone)
            r = vo_error_set(ret_error, -EIO, "cannot delete %s: no host id", dir);
        else if (rename(dir, gone) < 0)
            r = vo_error_set(ret_error, -errno, "cannot delete %s: %s", dir, strerror(errno));
        else {
            (void)backup_doc_delete(d, id);
            (void)vo_rm_rf(gone);
        }
    }
    if (r >= 0) {
        /* A VM whose next incremental backup would build on it starts over. */
        const char *vm_id = json_string_value(json_object_get(record, "vm_id"));
        int64_t base_rev = 0;
        json_t *base = vm_id ? base_load_rev(d, vm_id, &base_rev) : NULL;
        if (base && !strcmp(json_string_value(json_object_get(base, "backup")) ?: "", id)) {
            /* At the revision read: a backup that moved the base on meanwhile keeps it. */
            _cleanup_free_ char *key = vo_key_backup_base(vm_id);
            (void)vo_store_delete(d->store, key, base_rev);
        }
        json_decref(base);
    }
    json_decref(record);
    return r;
}

/* ---- the base of a VM's next incremental backup ----------------------------- */

static json_t *base_load_rev(VoDaemon *d, const char *vm_id, int64_t *ret_rev)
{
    _cleanup_free_ char *key = vo_key_backup_base(vm_id);
    _cleanup_free_ char *text = NULL;
    if (vo_store_get(d->store, key, &text, ret_rev) < 0)
        return NULL;
    return json_loads(text, 0, NULL);
}

json_t *backup_base_load(VoDaemon *d, const char *vm_id)
{
    return base_load_rev(d, vm_id, NULL);
}

void backup_base_save(VoDaemon *d, const char *vm_id, json_t *base)
{
    _cleanup_free_ char *key = vo_key_backup_base(vm_id);
    _cleanup_free_ char *text = json_dumps(base, JSON_COMPACT | JSON_SORT_KEYS);
    /* VO_REV_ANY: only the VM's backup task (holding its job lock) saves its
     * base, and the newest backup is the base whatever was there before. */
    int r = vo_store_put(d->store, key, text, VO_REV_ANY, NULL);
    if (r < 0)
        log_error("backups: cannot save %s: %s", key, strerror(-r));
}

void vo_backups_forget_base(VoDaemon *d, const char *vm_id)
{
    _cleanup_free_ char *key = vo_key_backup_base(vm_id);
    /* VO_REV_ANY: the VM's disks changed under the base (revert, restore,
     * delete), so no base is valid any more, whichever revision it has. */
    (void)vo_store_delete(d->store, key, VO_REV_ANY);
}

/* ---- start-up: documents and pools ------------------------------------------------ */

static int collect_doc(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t *docs = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    if (!doc)
        doc = json_object(); /* unreadable: differs from any record, or is dropped */
    json_object_set_new(doc, "_rev", json_integer(rev));
    json_object_set_new(docs, key + strlen(BACKUP_DOC_PREFIX), doc);
    return 0;
}

/* The pool's backup.json files are the truth (a pool may be shared with
 * other hosts, which add and delete backups in it): see backups.h. */
static void backups_reconcile(VoDaemon *d)
{
    json_t *docs = json_object(), *found = json_object();
    (void)vo_store_list(d->store, BACKUP_DOC_PREFIX, collect_doc, docs);
    json_t *revs = json_object(); /* id: revision, out of the documents compared */
    const char *id;
    json_t *doc;
    json_object_foreach(docs, id, doc) {
        json_object_set(revs, id, json_object_get(doc, "_rev"));
        json_object_del(doc, "_rev");
    }
    _cleanup_strv_ char **pools = vo_backup_pool_names(d);
    char **unreadable = NULL;
    for (char **p = pools; p && *p; p++) {
        _cleanup_free_ char *path = NULL, *error = NULL;
        struct stat st;
        if (vo_backup_pool_path(d, *p, &path, &error) < 0 || stat(path, &st) < 0 ||
            !S_ISDIR(st.st_mode)) {
            log_warn("backups: pool '%s' cannot be read; its backups stay listed", *p);
            vo_strv_pushf(&unreadable, "%s", *p);
            continue;
        }
        json_t *records = NULL;
        int r = backup_records_read(path, &records);
        if (r < 0) {
            log_warn("backups: pool '%s' (%s) cannot be listed: %s; its backups stay listed",
                     *p, path, strerror(-r));
            vo_strv_pushf(&unreadable, "%s", *p);
            json_decref(records);
            continue;
        }
        size_t i;
        json_t *record;
        json_array_foreach(records, i, record)
            json_object_set_new(found, json_string_value(json_object_get(record, "id")),
                                vo_backup_doc_make(record, *p));
        /* Empty while documents say it has backups: a share not mounted
         * yet, most likely; the plan keeps them (vo_backup_docs_plan). */
        size_t recorded = 0;
        json_object_foreach(docs, id, doc)
            if (!strcmp(json_string_value(json_object_get(doc, "pool")) ?: "", *p))
                recorded++;
        if (json_array_size(records) == 0 && recorded > 0)
            log_warn("backups: pool '%s' (%s) holds no backup while %zu are recorded in it "
                     "(not mounted yet?); they stay listed", *p, path, recorded);
        json_decref(records);
    }
    json_t *plan = vo_backup_docs_plan(docs, found, unreadable);
    json_t *what;
    json_object_foreach(plan, id, what) {
        const char *action = json_string_value(what);
        _cleanup_free_ char *key = vo_asprintf(BACKUP_DOC_PREFIX "%s", id);
        int64_t rev = json_integer_value(json_object_get(revs, id));
        json_t *want = json_object_get(found, id);
        _cleanup_free_ char *text = want ? json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        int r = 0;
        if (!strcmp(action, "adopt")) {
            r = vo_store_put(d->store, key, text, VO_REV_NEW, NULL);
            if (r >= 0)
                log_info("backups: adopted backup '%s' found in pool '%s'", id,
                         json_string_value(json_object_get(want, "pool")));
        } else if (!strcmp(action, "update"))
            r = vo_store_put(d->store, key, text, rev, NULL);
        else if (!strcmp(action, "drop")) {
            r = vo_store_delete(d->store, key, rev);
            if (r >= 0)
                log_warn("backups: backup '%s' is gone from pool '%s'; dropped from the list",
                         id, json_string_value(json_object_get(json_object_get(docs, id),
                                                               "pool")) ?: "?");
        }
        if (r < 0)
            log_warn("backups: cannot %s %s: %s", action, key, strerror(-r));
    }
    json_decref(plan);
    json_decref(revs);
    json_decref(found);
    json_decref(docs);
    vo_strv_free(unreadable);
}

void vo_backups_load(VoDaemon *d)
{
    _cleanup_free_ char *vms_run = vo_asprintf("%s/vms", d->run_dir);
    DIR *runs = opendir(vms_run);
    struct dirent *v;
    while (runs && (v = readdir(runs))) {
        if (v->d_name[0] == '.')
            continue;
        _cleanup_free_ char *work = vo_asprintf("%s/%s", vms_run, v->d_name);
        vo_qemu_backup_kill_leftover(work);
    }
    if (runs)
        closedir(runs);

    /* Only this host's own leftovers: a shared pool may hold other hosts'
     * backups in progress. */
    _cleanup_free_ char *host = vo_host_id(d);
    _cleanup_free_ char *partial = host ? vo_asprintf(BACKUP_PARTIAL_PREFIX "%s-", host) : NULL;
    _cleanup_free_ char *deleting = host ? vo_asprintf(BACKUP_DELETING_PREFIX "%s-", host) : NULL;
    _cleanup_strv_ char **pools = host ? vo_backup_pool_names(d) : NULL;
    for (char **p = pools; p && *p; p++) {
        _cleanup_free_ char *path = NULL, *error = NULL;
        if (vo_backup_pool_path(d, *p, &path, &error) < 0)
            continue;
        DIR *dir = opendir(path);
        struct dirent *e;
        while (dir && (e = readdir(dir))) {
            if (strncmp(e->d_name, partial, strlen(partial)) &&
                strncmp(e->d_name, deleting, strlen(deleting)))
                continue;
            _cleanup_free_ char *leftover = vo_asprintf("%s/%s", path, e->d_name);
            log_info("backups: removing %s (an interrupted backup or delete)", leftover);
            (void)vo_rm_rf(leftover);
        }
        if (dir)
            closedir(dir);
    }
    backups_reconcile(d);
}
