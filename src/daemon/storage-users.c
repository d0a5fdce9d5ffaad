/* storage-users.c: who uses a volume or an image: the VMs of this host and,
 * for a shared pool's volume, of every host of the cluster (their relation
 * documents). Shares storage-internal.h with the other storage files. */
#include "daemon/storage-internal.h"

#include <string.h>

#include "storage/volume-path.h"

static int collect_member(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    char ***lists = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *name = json_string_value(json_object_get(doc, "name"));
    const char *id = strrchr(key, '/');
    if (id && id[1]) {
        vo_strv_pushf(&lists[0], "%s", id + 1);
        vo_strv_pushf(&lists[1], "%s", name ? name : id + 1);
    }
    json_decref(doc);
    return 0;
}

/* The cluster's hosts (cluster/members/): ids and names, as strvs. */
int vo_storage_member_hosts(VoDaemon *d, char ***ret_ids, char ***ret_names)
{
    char **lists[2] = { NULL, NULL };
    int r = vo_store_list(d->store, "cluster/members/", collect_member, lists);
    *ret_ids = lists[0];
    *ret_names = lists[1];
    return r;
}

/* Whether this host's relations name VM vm_id (a VM of this host). */
bool vo_storage_vm_is_here(VoDaemon *d, const char *vm_id)
{
    _cleanup_free_ char *key = vo_asprintf("vms/%s", vm_id), *doc = NULL;
    return vo_store_get(d->store, key, &doc, NULL) == 0;
}

/* A VM of any host using volume key (a shared pool's volume: every host's
 * relations): the first that runs, else the first (as relations.h's), with
 * its host's name in *ret_host (malloc'd; NULL for this host). 1 with *ret
 * filled, 0 when none, or the store's error. A VM of this host that does
 * not run (the one a restore writes over) hides no other host's that does. */
int vo_storage_any_host_volume_user(VoDaemon *d, const char *key, VoRelationUser *ret,
                                    char **ret_host)
{
    *ret_host = NULL;
    int r = vo_relations_volume_user(d->store, key, ret);
    if (r < 0 || !d->cluster_store || (r > 0 && ret->active))
        return r;
    bool found = r > 0;
    /* The other hosts' relation documents, through the raw handle
     * (h/<host-id>/uses/volumes/<pool>/<volume>/<vm-id>). */
    _cleanup_strv_ char **ids = NULL, **names = NULL;
    r = vo_storage_member_hosts(d, &ids, &names);
    for (size_t i = 0; r >= 0 && ids && ids[i]; i++) {
        if (!strcmp(ids[i], d->host_id))
            continue;
        _cleanup_free_ char *prefix = vo_asprintf("h/%s/uses/volumes/%s/", ids[i], key);
        VoRelationUser u = { 0 };
        r = vo_store_list(d->cluster_store, prefix, vo_relation_first_user, &u);
        if (r >= 0 && u.vm_id && (!found || u.active)) {
            if (found)
                vo_relation_user_clear(ret);
            free(*ret_host);
            *ret = u;
            *ret_host = vo_strdup(names[i]);
            found = true;
            if (u.active)
                return 1;
        } else
            vo_relation_user_clear(&u);
    }
    if (r < 0 && found) {
        vo_relation_user_clear(ret);
        free(TAKE_PTR(*ret_host));
    }
    return r < 0 ? r : found ? 1 : 0;
}

bool vo_storage_key_is_shared(VoDaemon *d, const char *key)
{
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(key, &pool, &name) < 0)
        return false;
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, pool);
    bool shared = p && p->shared;
    pthread_mutex_unlock(&d->storage_lock);
    return shared;
}

/* The VM volume key is attached to (*ret filled), or false; *ret_host: its
 * host's name when another host's (malloc'd), else NULL. A store that
 * cannot be read counts as in use: a rule is never broken for want of it.
 * For a shared pool's volume, VMs of every host count. */
bool vo_storage_volume_user_at(VoDaemon *d, const char *key, VoRelationUser *ret, char **ret_host)
{
    *ret_host = NULL;
    int r = vo_storage_key_is_shared(d, key)
                ? vo_storage_any_host_volume_user(d, key, ret, ret_host)
                : vo_relations_volume_user(d->store, key, ret);
    if (r < 0) {
        log_error("store: cannot read the users of volume %s: %s", key, strerror(-r));
        *ret = (VoRelationUser){ .vm_id = vo_strdup("?"), .name = vo_strdup("(unknown)"),
                                 .active = true };
        return true;
    }
    return r > 0;
}

/* The same for messages ("VM '%s'"): a VM of another host is named with
 * its host ("db' on host 'h2"). */
bool vo_storage_volume_user(VoDaemon *d, const char *key, VoRelationUser *ret)
{
    _cleanup_free_ char *host = NULL;
    bool used = vo_storage_volume_user_at(d, key, ret, &host);
    if (used && host) {
        char *named = vo_asprintf("%s' on host '%s", ret->name, host);
        free(ret->name);
        ret->name = named;
    }
    return used;
}

/* The name of the VM key is attached to (malloc'd), or NULL. */
char *vo_storage_volume_user_name(VoDaemon *d, const char *key)
{
    VoRelationUser u;
    if (!vo_storage_volume_user(d, key, &u))
        return NULL;
    char *name = TAKE_PTR(u.name);
    vo_relation_user_clear(&u);
    return name;
}
