/* storage-rbd-shared.c: an rbd pool's key and reachability on every host of
 * a cluster (see storage-rbd-shared.h). */
#include "daemon/storage-rbd-shared.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "daemon/storage-rbd.h"
#include "state/store.h"
#include "util/util.h"

int vo_storage_rbd_publish_key(VoDaemon *d, const char *name, const char *id,
                               const char *dir, char **ret_error)
{
    _cleanup_free_ char *key_file = vo_asprintf("%s/key", dir), *key = NULL;
    int r = vo_read_file(key_file, 4096, &key, NULL);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the key of pool '%s' (%s): %s", name,
                            key_file, strerror(-r));
    key[strcspn(key, "\r\n")] = '\0';
    json_t *doc = json_pack("{s:s, s:s, s:s}", "pool", name, "id", id, "key", key);
    explicit_bzero(key, strlen(key));
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    /* Under the pool's id, made new: two hosts creating a pool of one name
     * at once each publish their own, and the one whose pool document is
     * not made removes only its own (under the name, the loser's key would
     * replace the winner's, then its removal leave the winner's pool with
     * no key for the other hosts). */
    _cleanup_free_ char *doc_key = vo_asprintf(VO_RBD_POOL_KEYS_PREFIX "%s", id);
    r = vo_store_put(d->store, doc_key, text, VO_REV_NEW, NULL);
    explicit_bzero(text, strlen(text));
    free(text);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot publish the key of pool '%s' to the "
                            "cluster: %s", name, strerror(-r));
    return 0;
}

void vo_storage_pool_key_unpublish(VoDaemon *d, const char *id)
{
    _cleanup_free_ char *doc_key = vo_asprintf(VO_RBD_POOL_KEYS_PREFIX "%s", id);
    /* Any revision: its pool is gone (or never was), so is the key. */
    int r = vo_store_delete(d->store, doc_key, VO_REV_ANY);
    if (r < 0 && r != -ENOENT)
        log_warn("cannot remove the published credential of pool %s: %s", id, strerror(-r));
}

/* This host's copy of the pool's directory, from the published key. */
static int write_local_dir(VoDaemon *d, const char *name, const char *id, json_t *props,
                           const char *dir, char **ret_error)
{
    const char *monitors = NULL, *pool = NULL, *user = NULL;
    if (!props || json_unpack(props, "{s:s, s:s, s:s}", "monitors", &monitors, "pool", &pool,
                              "user", &user) < 0)
        return vo_error_set(ret_error, -EINVAL, "pool '%s' has no Ceph settings", name);
    _cleanup_free_ char *doc_key = vo_asprintf(VO_RBD_POOL_KEYS_PREFIX "%s", id);
    char *text = NULL;
    int r = vo_store_get(d->store, doc_key, &text, NULL);
    if (r < 0)
        return vo_error_set(ret_error, r, "the key of pool '%s' cannot be read from the "
                            "cluster: %s", name, strerror(-r));
    json_t *doc = json_loads(text, 0, NULL);
    explicit_bzero(text, strlen(text));
    free(text);
    const char *key = json_string_value(json_object_get(doc, "key"));
    r = key ? vo_storage_rbd_write_dir(dir, name, key, monitors, pool, user, ret_error)
            : vo_error_set(ret_error, -EBADMSG, "the key of pool '%s' in the cluster is "
                           "unreadable", name);
    if (key)
        explicit_bzero((char *)key, strlen(key));
    json_decref(doc);
    if (r >= 0 && (r = vo_storage_rbd_write_id(dir, id)) < 0) {
        vo_storage_rbd_discard(dir);
        return vo_error_set(ret_error, r, "cannot write the id of pool '%s' in %s: %s", name,
                            dir, strerror(-r));
    }
    if (r >= 0)
        log_info("rbd: pool '%s': wrote this host's key and settings (%s)", name, dir);
    return r == -EEXIST ? 0 : r; /* written meanwhile by another check */
}

VoPoolReach vo_storage_rbd_reach(VoDaemon *d, const char *name, const char *id, json_t *props,
                                 const char *dir, char **ret_reason)
{
    *ret_reason = NULL;
    _cleanup_free_ char *key_file = vo_asprintf("%s/key", dir);
    _cleanup_free_ char *error = NULL;
    _cleanup_free_ char *id_here = vo_storage_rbd_dir_id(dir);
    if (access(key_file, F_OK) == 0 && (!id_here || strcmp(id_here, id))) {
        /* An earlier pool's of that name (or half-written): its key and
         * monitors are not this pool's. */
        log_info("rbd: pool '%s': %s is not this pool's (id %s, not %s); writing it again",
                 name, dir, id_here ? id_here : "none", id);
        vo_storage_rbd_discard(dir);
    }
    if (access(key_file, F_OK) < 0 && write_local_dir(d, name, id, props, dir, &error) < 0) {
        *ret_reason = TAKE_PTR(error);
        return VO_POOL_NO_CLUSTER;
    }
    VoRbdPool rp;
    int r = vo_storage_rbd_load(dir, props, &rp, &error);
    if (r >= 0) {
        VoRbdConf c = vo_rbd_pool_conf(&rp);
        r = vo_rbd_check(&c, &error);
        vo_rbd_pool_clear(&rp);
    }
    if (r < 0) {
        *ret_reason = vo_asprintf("the Ceph cluster cannot be reached from this host: %s",
                                  error ? error : strerror(-r));
        return VO_POOL_NO_CLUSTER;
    }
    return VO_POOL_REACHABLE;
}
