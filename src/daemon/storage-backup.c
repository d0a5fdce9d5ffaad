/* storage-backup.c: storage for backups: the backup pools' paths and
 * names, and a restore's new files put in place of its volumes' (backups.c,
 * backup-restore.c). Shares storage-internal.h with the other storage
 * files. */
#include "daemon/storage-internal.h"

#include <string.h>

#include "storage/volume-path.h"

int vo_backup_pool_path(VoDaemon *d, const char *name, char **ret_path, char **ret_error)
{
    if (!name)
        name = VO_DEFAULT_BACKUP_POOL;
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, name);
    int r = 0;
    if (!p && !strcmp(name, VO_DEFAULT_BACKUP_POOL)) {
        /* Made on first use, like the default pool. */
        p = vo_malloc0(sizeof(*p));
        *p = (VoPool){ .name = vo_strdup(name), .type = vo_strdup(VO_BACKUP_POOL_TYPE),
                       .path = vo_asprintf("%s/pools/%s", d->state_dir, name),
                       .created_at = vo_wall_ms() };
        r = vo_mkdir_p(p->path, 0750);
        if (r < 0)
            *ret_error = vo_asprintf("cannot create backup pool '%s': %s", name, strerror(-r));
        else /* a host's own: off the shared names (pool-names.h), saying so */
            r = vo_storage_save_pool_as(d, p, VO_REV_NEW, NULL, ret_error);
        if (r < 0) {
            vo_storage_pool_free(p);
            p = NULL;
        } else
            vo_storage_registry_add_pool(d, p);
    } else if (!p) {
        *ret_error = vo_asprintf("pool '%s' does not exist (see: vireo pool list)", name);
        r = -ENOENT;
    } else if (strcmp(p->type, VO_BACKUP_POOL_TYPE)) {
        *ret_error = vo_asprintf("pool '%s' is a %s pool: backups go to a backup pool (vireo pool "
                                 "create NAME --type backup --path DIR)", name, p->type);
        r = -EINVAL;
        p = NULL;
    }
    if (p)
        *ret_path = vo_strdup(p->path);
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

char **vo_backup_pool_names(VoDaemon *d)
{
    char **names = NULL;
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < d->n_pools; i++)
        if (!strcmp(d->pools[i]->type, VO_BACKUP_POOL_TYPE))
            vo_strv_pushf(&names, "%s", d->pools[i]->name);
    pthread_mutex_unlock(&d->storage_lock);
    return names;
}

int vo_volume_check_no_running_user(VoDaemon *d, const char *key, const char *why,
                                    char **ret_error)
{
    VoRelationUser u = { 0 };
    /* The first active user when any runs (a store error: one that runs). */
    int r = vo_storage_volume_user(d, key, &u) && u.active
                ? vo_error_set(ret_error, -EBUSY, "volume '%s' is attached to VM '%s' too, "
                               "which runs: stop it first (%s)", key, u.name, why)
                : 0;
    vo_relation_user_clear(&u);
    return r;
}

/* Every volume is checked and claimed first; each old file is renamed aside
 * until every new one is in place, and put back when one cannot be. */
int vo_volumes_replace_files(VoDaemon *d, char *const *keys, char *const *new_files, size_t n,
                             char **ret_error)
{
    char **pools = vo_malloc0(sizeof(char *) * (n + 1)), **names = vo_malloc0(sizeof(char *) * (n + 1));
    char **paths = vo_malloc0(sizeof(char *) * (n + 1)), **asides = vo_malloc0(sizeof(char *) * (n + 1));
    size_t claimed = 0, swapped = 0;
    int r = 0;
    for (; r >= 0 && claimed < n; claimed++) {
        if (vo_volume_key_split(keys[claimed], &pools[claimed], &names[claimed]) < 0)
            r = vo_error_set(ret_error, -EINVAL, "'%s' is not POOL/NAME", keys[claimed]);
        else
            r = vo_storage_claim_volume(d, pools[claimed], names[claimed], &paths[claimed], NULL,
                                        ret_error);
        if (r < 0)
            break;
        /* After the claim: a linked clone of it cannot start any more. */
        if (vo_volume_is_base(d, keys[claimed])) {
            r = vo_error_set(ret_error, -EBUSY, "volume '%s' backs linked clones and must stay "
                             "as it is", keys[claimed]);
            claimed++; /* released with the others below */
            break;
        }
    }
    for (; r >= 0 && swapped < n; swapped++) {
        char *slash = strrchr(paths[swapped], '/');
        asides[swapped] = vo_asprintf("%.*s/.replaced-%s", (int)(slash - paths[swapped]),
                                      paths[swapped], slash + 1);
        if (rename(paths[swapped], asides[swapped]) < 0) {
            r = vo_error_set(ret_error, -errno, "cannot move %s aside: %s", paths[swapped],
                             strerror(errno));
            break;
        }
        if (rename(new_files[swapped], paths[swapped]) < 0) {
            r = vo_error_set(ret_error, -errno, "cannot replace %s: %s", paths[swapped],
                             strerror(errno));
            if (rename(asides[swapped], paths[swapped]) < 0)
                log_error("storage: cannot put %s back: %s", paths[swapped], strerror(errno));
            break;
        }
    }
    /* All or nothing: on failure the old files go back. */
    for (size_t i = 0; i < swapped; i++) {
        if (r < 0 && rename(asides[i], paths[i]) < 0)
            log_error("storage: cannot put %s back: %s", paths[i], strerror(errno));
        else if (r >= 0)
            (void)unlink(asides[i]);
    }
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < claimed; i++) {
        VoVolume *v = vo_storage_volume_find(d, pools[i], names[i]);
        if (v && r >= 0) {
            /* A file of its own now: no longer a linked clone of anything. */
            free(TAKE_PTR(v->backing));
            free(TAKE_PTR(v->image));
            int saved = vo_storage_save_volume(d, v);
            if (saved < 0 && r >= 0)
                r = vo_error_set(ret_error, saved, "cannot save volume '%s': %s", keys[i],
                                 strerror(-saved));
        }
        if (v)
            v->busy = false;
    }
    pthread_mutex_unlock(&d->storage_lock);
    vo_strv_free(pools);
    vo_strv_free(names);
    vo_strv_free(paths);
    vo_strv_free(asides);
    return r;
}
