/* storage-iscsi-shared.c: an iSCSI pool's initiator, CHAP secret and
 * reachability on every host of a cluster (see storage-iscsi-shared.h). */
#include "daemon/storage-iscsi-shared.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/migrate-safe.h"
#include "daemon/storage-iscsi.h"
#include "daemon/storage-rbd-shared.h"
#include "state/store.h"
#include "util/fault-file.h"
#include "util/test-hold.h"
#include "util/util.h"

char *vo_iscsi_host_initiator(VoDaemon *d)
{
    return vo_asprintf("iqn.2026-12.org.vireo:%s", d->host_id ? d->host_id : "host");
}

char *vo_iscsi_path_here(VoDaemon *d, const char *name, const char *path)
{
    VoIscsiUrl u;
    if (!path || vo_iscsi_url_parse(path, &u) < 0)
        return NULL;
    free(u.initiator);
    u.initiator = vo_iscsi_host_initiator(d);
    free(u.secret);
    u.secret = u.user ? vo_iscsi_secret_path(d->state_dir, name) : NULL;
    char *here = vo_iscsi_url_format(&u);
    vo_iscsi_url_clear(&u);
    return here;
}

static char *secret_key(const char *id)
{
    /* The prefix of the rbd pools' keys: one place for the cluster's pool
     * credentials, each under its pool's id. */
    return vo_asprintf(VO_RBD_POOL_KEYS_PREFIX "%s", id);
}

int vo_storage_iscsi_publish_secret(VoDaemon *d, const char *name, const char *id,
                                    const char *secret, char **ret_error)
{
    json_t *doc = json_pack("{s:s, s:s, s:s}", "pool", name, "id", id, "chap_secret", secret);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *key = secret_key(id);
    int r = vo_store_put(d->store, key, text, VO_REV_NEW, NULL);
    explicit_bzero(text, strlen(text));
    free(text);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot publish the CHAP secret of pool '%s' to the "
                            "cluster: %s", name, strerror(-r));
    return 0;
}

/* The pools whose checks use this host's copy of the secret while the
 * published one cannot be read: a line when that starts and one when it
 * ends, not one a check. */
static pthread_mutex_t copy_used_lock = PTHREAD_MUTEX_INITIALIZER;
static char **copy_used;

/* Whether pool name is in copy_used, which it joins (used true) or leaves;
 * caller holds copy_used_lock. */
static bool copy_used_set(const char *name, bool used)
{
    size_t n = vo_strv_len(copy_used), i = 0;
    while (i < n && strcmp(copy_used[i], name))
        i++;
    bool was = i < n;
    if (used && !was) {
        vo_strv_pushf(&copy_used, "%s", name);
    } else if (!used && was) {
        free(copy_used[i]);
        memmove(&copy_used[i], &copy_used[i + 1], (n - i) * sizeof(char *));
    }
    return was;
}

/* Test-only: the read of the published secret fails as the file
 * iscsi-secret-read in $VIREO_TEST_MIGRATE_FAULT says ("N ERR",
 * util/fault-file.h): a store that does not answer for this one read. */
static int secret_read_fault(void)
{
    const char *dir = getenv("VIREO_TEST_MIGRATE_FAULT");
    return dir && *dir ? vo_fault_file_take(dir, "iscsi-secret-read") : 0;
}

/* This host's copy of the secret, from the published one: written at every
 * check (a pool deleted and made again under its name has a new secret).
 * When the store cannot be read (it does not answer: not when the secret
 * is gone, -ENOENT), the copy this host has is used as it is: the target
 * still takes it, and a store that is slow for a moment must not make the
 * pool unreachable until the next check. */
static int write_secret_here(VoDaemon *d, const char *name, const char *id, char **ret_error)
{
    _cleanup_free_ char *key = secret_key(id);
    char *text = NULL;
    int r = secret_read_fault();
    if (r == 0)
        r = vo_store_get(d->store, key, &text, NULL);
    _cleanup_free_ char *copy = vo_iscsi_secret_path(d->state_dir, name);
    bool use_copy = r < 0 && r != -ENOENT && access(copy, R_OK) == 0;
    pthread_mutex_lock(&copy_used_lock);
    bool was = copy_used_set(name, use_copy);
    pthread_mutex_unlock(&copy_used_lock);
    if (use_copy && !was)
        log_warn("pool '%s': its CHAP secret cannot be read from the cluster (%s): this "
                 "host's copy is used until it can", name, strerror(-r));
    else if (was && r >= 0)
        log_info("pool '%s': its CHAP secret is read from the cluster again", name);
    if (use_copy)
        return 0;
    if (r < 0)
        return vo_error_set(ret_error, r, "the CHAP secret of pool '%s' cannot be read from "
                            "the cluster: %s", name, strerror(-r));
    json_t *doc = json_loads(text, 0, NULL);
    explicit_bzero(text, strlen(text));
    free(text);
    if (vo_migrate_fault("iscsi-secret-write-pause")) /* test: the pool deleted meanwhile */
        vo_migrate_fault_wait("iscsi-secret-write-go", 60000);
    const char *secret = json_string_value(json_object_get(doc, "chap_secret"));
    r = secret ? vo_iscsi_secret_write(d->state_dir, name, secret) : -EBADMSG;
    if (secret)
        explicit_bzero((char *)secret, strlen(secret));
    json_decref(doc);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot keep the CHAP secret of pool '%s' here: %s",
                            name, strerror(-r));
    return 0;
}

VoPoolReach vo_storage_iscsi_reach(VoDaemon *d, const char *name, const char *id,
                                   const char *path, char **ret_reason)
{
    *ret_reason = NULL;
    VoIscsiUrl u;
    if (vo_iscsi_url_parse(path, &u) < 0) {
        *ret_reason = vo_asprintf("pool '%s': its target is unreadable", name);
        return VO_POOL_NO_CLUSTER;
    }
    _cleanup_free_ char *error = NULL;
    int r = u.user ? write_secret_here(d, name, id, &error) : 0;
    if (vo_migrate_fault("iscsi-check-pause")) /* test: a target that holds the check */
        vo_migrate_fault_wait("iscsi-check-go", 120000);
    _cleanup_free_ char *point = vo_asprintf("iscsi_check@%s", name);
    vo_test_hold(point); /* tests hold one pool's check (util/test-hold.h) */
    VoIscsiLun *luns = NULL;
    size_t n = 0;
    if (r >= 0 && (r = vo_iscsi_scan(&u, u.initiator, &luns, &n, &error)) < 0) {
        char *why = vo_asprintf("the iSCSI target %s at %s:%u cannot be used from this host: "
                                "%s", u.target, u.host, u.port, error);
        free(error);
        error = why;
    }
    free(luns);
    vo_iscsi_url_clear(&u);
    if (r < 0) {
        *ret_reason = TAKE_PTR(error);
        return VO_POOL_NO_CLUSTER;
    }
    return VO_POOL_REACHABLE;
}
