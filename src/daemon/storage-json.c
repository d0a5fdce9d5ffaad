/* storage-json.c: pools and volumes as the API answers them (JSON), with an
 * rbd pool's sizes asked of Ceph. Shares storage-internal.h with the other
 * storage files. */
#include "daemon/storage-internal.h"

#include <dirent.h>
#include <string.h>

#include "conf/names.h"
#include "daemon/pool-kept.h"
#include "daemon/storage-iscsi.h"
#include "daemon/sweep-kept.h"
#include "storage/image-header.h"
#include "storage/rbd-clone.h"
#include "storage/volume-path.h"
#include "util/time-format.h"

/* An rbd pool's sizes in o (what vo_storage_pool_to_json made) from the cluster: its
 * raw capacity and free bytes, the pool's bytes; else reason says why.
 * Asks the cluster (up to VO_RBD_TIMEOUT_S): call without storage_lock. */
void vo_storage_rbd_usage_fill(json_t *o)
{
    json_t *props = json_object_get(o, "rbd");
    const char *dir = json_string_value(json_object_get(o, "path"));
    if (!props || !dir)
        return;
    VoRbdPool rp;
    _cleanup_free_ char *rbd_error = NULL;
    uint64_t cap = 0, avail = 0, used = 0;
    if (vo_storage_rbd_load(dir, props, &rp, &rbd_error) >= 0) {
        VoRbdConf c = vo_rbd_pool_conf(&rp);
        if (vo_rbd_pool_usage(&c, &cap, &avail, &used, &rbd_error) < 0)
            cap = avail = used = 0;
        vo_rbd_pool_clear(&rp);
    }
    json_object_set_new(o, "capacity_bytes", json_integer((json_int_t)cap));
    json_object_set_new(o, "allocation_bytes", json_integer((json_int_t)used));
    json_object_set_new(o, "available_bytes", json_integer((json_int_t)avail));
    if (rbd_error && json_is_null(json_object_get(o, "reason")))
        json_object_set_new(o, "reason", json_string(rbd_error));
}

/* Caller holds storage_lock. An rbd pool's sizes are 0 here: the caller adds
 * them after it lets go of the lock (vo_storage_rbd_usage_fill). */
json_t *vo_storage_pool_to_json(VoDaemon *d, const VoPool *p)
{
    unsigned long long cap = 0, avail = 0, used = 0;
    if (!p->rbd)
        (void)vo_fs_usage(p->path, &cap, &avail, &used);
    size_t n = 0;
    for (size_t i = 0; i < d->n_volumes; i++)
        if (!strcmp(d->volumes[i]->pool, p->name))
            n++;
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "name", p->name, "type",
                          p->type, "path", p->path, "capacity_bytes", (json_int_t)cap,
                          "allocation_bytes", (json_int_t)used, "available_bytes",
                          (json_int_t)avail, "volumes", (json_int_t)n, "created_at",
                          vo_time_json(p->created_at));
    /* A local pool is its host's; a shared one every host's that reaches it
     * (reachable and reason: on this host; the API adds every host's). */
    json_object_set_new(o, "shared", json_boolean(p->shared));
    json_object_set_new(o, "id", p->shared ? json_string(p->id) : json_null());
    json_object_set_new(o, "host", !p->shared && d->host_name ? json_string(d->host_name)
                                                              : json_null());
    json_object_set_new(o, "reachable", json_boolean(p->reach == VO_POOL_REACHABLE));
    json_object_set_new(o, "reason", p->reason && p->reach != VO_POOL_REACHABLE
                                         ? json_string(p->reason) : json_null());
    vo_storage_iscsi_pool_json(d, p, o);
    if (p->rbd) {
        json_object_set_new(o, "rbd", json_deep_copy(p->rbd));
        /* Images a crash left that would not go yet, and why (sweep-kept.h):
         * this host's; a shared pool's GET adds every other host's
         * (kept_intents_fill). */
        json_t *kept_list = vo_sweep_kept_json(p->name);
        size_t i;
        json_t *k;
        json_array_foreach(kept_list, i, k)
            json_object_set_new(k, "host", d->host_name ? json_string(d->host_name)
                                                        : json_null());
        json_object_set_new(o, "kept_intents", kept_list);
    }
    return o;
}

static int cmp_name(const void *a, const void *b)
{
    const char *na = json_string_value(json_object_get(*(json_t *const *)a, "key"));
    const char *nb = json_string_value(json_object_get(*(json_t *const *)b, "key"));
    if (!na)
        na = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    if (!nb)
        nb = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(na, nb);
}

static json_t *sorted_array(json_t **items, size_t n)
{
    if (n)
        qsort(items, n, sizeof(json_t *), cmp_name);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, items[i]);
    free(items);
    return arr;
}

static json_t *pools_list(VoDaemon *d, bool rbd_sizes)
{
    pthread_mutex_lock(&d->storage_lock);
    json_t **items = vo_malloc0(sizeof(json_t *) * (d->n_pools + 1));
    size_t n = d->n_pools;
    for (size_t i = 0; i < n; i++)
        items[i] = vo_storage_pool_to_json(d, d->pools[i]);
    pthread_mutex_unlock(&d->storage_lock);
    for (size_t i = 0; rbd_sizes && i < n; i++)
        vo_storage_rbd_usage_fill(items[i]);
    return sorted_array(items, n);
}

json_t *vo_pools_list_json(VoDaemon *d)
{
    return pools_list(d, true);
}

json_t *vo_pools_list_json_quick(VoDaemon *d)
{
    return pools_list(d, false);
}

/* A shared rbd pool's kept intents of the other hosts (pool-kept.h) added
 * to o's. Reads the store: call without storage_lock. */
static void kept_intents_fill(VoDaemon *d, json_t *o)
{
    json_t *list = json_object_get(o, "kept_intents");
    if (!list || !json_is_true(json_object_get(o, "shared")))
        return;
    int r = vo_pool_kept_others(d, json_string_value(json_object_get(o, "name")), list);
    if (r < 0)
        log_warn("storage: cannot read the other hosts' kept intents of pool '%s': %s",
                 json_string_value(json_object_get(o, "name")), strerror(-r));
}

int vo_pool_get_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    VoPool *p = vo_storage_pool_find(d, name);
    if (p)
        *ret = vo_storage_pool_to_json(d, p);
    pthread_mutex_unlock(&d->storage_lock);
    if (!p) {
        *ret_error = vo_asprintf("pool '%s' does not exist", name);
        return -ENOENT;
    }
    vo_storage_rbd_usage_fill(*ret);
    kept_intents_fill(d, *ret);
    return 0;
}

/* A volume's description; the sizes and chain come from qemu-img (outside the lock). */
typedef struct {
    char *pool, *name, *format, *path, *backing, *image, *content;
    bool shareable, ready;
    int64_t created_at;
    uint64_t size_bytes; /* an iSCSI LUN's */
    uint64_t virtual_bytes; /* an iSCSI LUN's qcow2 layer's, or 0 */
    char *rbd_dir; /* an rbd pool's volume: its pool's directory and settings (copies) */
    json_t *rbd;
    json_t *restore; /* its restore mark (a copy), or NULL */
} VolumeView;

static void view_clear(VolumeView *v)
{
    free(v->pool);
    free(v->name);
    free(v->format);
    free(v->path);
    free(v->backing);
    free(v->image);
    free(v->content);
    free(v->rbd_dir);
    json_decref(v->rbd);
    json_decref(v->restore);
}

/* Caller holds storage_lock. */
static void view_of(VoDaemon *d, const VoVolume *v, VolumeView *ret)
{
    VoPool *p = vo_storage_pool_find(d, v->pool);
    *ret = (VolumeView){ .pool = vo_strdup(v->pool), .name = vo_strdup(v->name),
                         .format = vo_strdup(v->format),
                         .path = p ? vo_volume_path(p->path, v->name, v->format) : NULL,
                         .backing = vo_strdup(v->backing), .image = vo_strdup(v->image),
                         .content = vo_strdup(v->content), .shareable = v->shareable, .ready = v->ready,
                         .created_at = v->created_at, .size_bytes = v->size_bytes,
                         .virtual_bytes = v->virtual_bytes,
                         /* Copied here: view_to_json runs without the lock. */
                         .rbd_dir = p && p->rbd ? vo_strdup(p->path) : NULL,
                         .rbd = p && p->rbd ? json_deep_copy(p->rbd) : NULL,
                         .restore = v->restore ? json_deep_copy(v->restore) : NULL };
}

/* Where backing files may be: every pool and every image directory (linked
 * clones of images; an image directory may be a symlink the operator made),
 * resolved once here for a whole listing. Caller holds storage_lock. */
static char **trusted_roots(VoDaemon *d)
{
    char **roots = NULL;
    char resolved[PATH_MAX];
    for (size_t i = 0; i < d->n_pools; i++)
        if (realpath(d->pools[i]->path, resolved))
            vo_strv_pushf(&roots, "%s", resolved);
    _cleanup_free_ char *images = vo_asprintf("%s/images", d->state_dir);
    DIR *dir = opendir(images);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        _cleanup_free_ char *image = vo_asprintf("%s/%s", images, e->d_name);
        if (vo_name_valid(e->d_name) && realpath(image, resolved))
            vo_strv_pushf(&roots, "%s", resolved);
    }
    if (dir)
        closedir(dir);
    return roots;
}

static json_t *view_to_json(VoDaemon *d, const VolumeView *v, char *const *roots)
{
    _cleanup_free_ char *key = vo_asprintf("%s/%s", v->pool, v->name);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o}", "pool", v->pool, "name",
                          v->name, "key", key, "path", v->path ? v->path : "", "format",
                          v->format, "shareable", v->shareable, "created_at",
                          vo_time_json(v->created_at));
    VoImgInfo info = { 0 };
    json_t *chain = json_array();
    uint64_t vsize = 0, alloc = 0;
    /* Read from the headers, not qemu-img: listing 1000 volumes stays cheap.
     * Only as the recorded format, and backing files only inside roots. */
    VoRbdPool rp;
    _cleanup_free_ char *rbd_error = NULL;
    if (v->ready && v->rbd && vo_storage_rbd_load(v->rbd_dir, v->rbd, &rp, &rbd_error) >= 0) {
        VoRbdConf c = vo_rbd_pool_conf(&rp);
        (void)vo_rbd_image_usage(&c, v->name, &vsize, &alloc, &rbd_error);
        json_object_set_new(o, "rbd_image", json_sprintf("%s/%s", rp.pool, v->name));
        /* A linked clone's parent: its image's base snapshot. */
        char *parent = v->image ? vo_rbd_image_parent(&c, v->name) : NULL;
        json_object_set_new(o, "rbd_parent", parent ? json_string(parent) : json_null());
        free(parent);
        vo_rbd_pool_clear(&rp);
    } else if (v->ready && v->path &&
               vo_img_header_chain(v->path, v->format, roots, &info) >= 0 && info.n_layers > 0) {
        vsize = info.layers[0].virtual_size;
        alloc = info.layers[0].actual_size;
        for (size_t i = 1; i < info.n_layers; i++)
            json_array_append_new(chain, json_pack("{s:s, s:s}", "path", info.layers[i].path,
                                                   "format", info.layers[i].format));
    }
    vo_img_info_clear(&info);
    VoIscsiUrl lun;
    if (v->path && vo_iscsi_url_parse(v->path, &lun) == 0) { /* a LUN: no file to read */
        vsize = alloc = v->size_bytes;
        /* A qcow2 layer smaller than the LUN: its metadata's room (qcow2-fit.h). */
        if (v->virtual_bytes && !strcmp(v->format, "qcow2"))
            vsize = v->virtual_bytes;
        json_object_set_new(o, "lun", json_integer(lun.lun));
        json_object_set_new(o, "lun_size_bytes", json_integer((json_int_t)v->size_bytes));
        vo_iscsi_url_clear(&lun);
    }
    json_object_set_new(o, "virtual_size_bytes", json_integer((json_int_t)vsize));
    json_object_set_new(o, "allocation_bytes", json_integer((json_int_t)alloc));
    json_object_set_new(o, "backing", chain);
    json_object_set_new(o, "backing_volume", v->backing ? json_string(v->backing) : json_null());
    json_object_set_new(o, "image", v->image ? json_string(v->image) : json_null());
    json_object_set_new(o, "content", json_string(v->content ? v->content : "disk"));
    VoRelationUser u;
    _cleanup_free_ char *host = NULL;
    bool attached = vo_storage_volume_user_at(d, key, &u, &host);
    json_object_set_new(o, "attached_to", attached ? json_string(u.name) : json_null());
    /* The VM's host (a shared pool's volume may be another host's VM's). */
    json_object_set_new(o, "attached_host",
                        !attached ? json_null()
                        : host    ? json_string(host)
                                  : d->host_name ? json_string(d->host_name) : json_null());
    if (attached)
        vo_relation_user_clear(&u);
    json_object_set_new(o, "state", json_string(v->ready ? "ready" : "creating"));
    json_object_set(o, "restore_incomplete", v->restore ? v->restore : json_null());
    return o;
}

json_t *vo_volumes_list_json(VoDaemon *d, const char *pool)
{
    pthread_mutex_lock(&d->storage_lock);
    VolumeView *views = vo_malloc0(sizeof(VolumeView) * (d->n_volumes + 1));
    size_t n = 0;
    for (size_t i = 0; i < d->n_volumes; i++)
        if (!pool || !strcmp(d->volumes[i]->pool, pool))
            view_of(d, d->volumes[i], &views[n++]);
    _cleanup_strv_ char **roots = trusted_roots(d);
    pthread_mutex_unlock(&d->storage_lock);
    json_t **items = vo_malloc0(sizeof(json_t *) * (n + 1));
    for (size_t i = 0; i < n; i++) {
        items[i] = view_to_json(d, &views[i], roots);
        view_clear(&views[i]);
    }
    free(views);
    return sorted_array(items, n);
}

int vo_volume_get_json(VoDaemon *d, const char *pool, const char *name, json_t **ret,
                       char **ret_error)
{
    VolumeView view;
    pthread_mutex_lock(&d->storage_lock);
    VoVolume *v = vo_storage_volume_find(d, pool, name);
    if (v)
        view_of(d, v, &view);
    _cleanup_strv_ char **roots = trusted_roots(d);
    pthread_mutex_unlock(&d->storage_lock);
    if (!v) {
        *ret_error = vo_asprintf("volume '%s/%s' does not exist", pool, name);
        return -ENOENT;
    }
    *ret = view_to_json(d, &view, roots);
    view_clear(&view);
    return 0;
}
