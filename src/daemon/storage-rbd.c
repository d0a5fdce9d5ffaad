/* storage-rbd.c: making and reading back rbd pools (see storage-rbd.h). */
#include "daemon/storage-rbd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/names.h"
#include "conf/rbd-spec.h"
#include "storage/image-header.h"
#include "storage/qemu-img.h"
#include "storage/rbd-clone.h"
#include "storage/rbd-disk.h"
#include "storage/rbd-vm-clone.h"
#include "util/spawn.h"
#include "util/util.h"

void vo_rbd_pool_clear(VoRbdPool *p)
{
    free(p->monitors);
    free(p->pool);
    free(p->user);
    if (p->key)
        explicit_bzero(p->key, strlen(p->key));
    free(p->key);
    free(p->key_file);
    *p = (VoRbdPool){ 0 };
}

/* The whole of a small file (a keyring), or NULL with errno set. */
static char *read_small(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    char *buf = vo_malloc0(65537);
    ssize_t n = read(fd, buf, 65536);
    int e = errno;
    close(fd);
    if (n < 0) {
        free(buf);
        errno = e;
        return NULL;
    }
    return buf;
}

void vo_storage_rbd_discard(const char *dir)
{
    _cleanup_free_ char *key = vo_asprintf("%s/key", dir);
    _cleanup_free_ char *conf = vo_asprintf("%s/ceph.json", dir);
    _cleanup_free_ char *id = vo_asprintf("%s/pool-id", dir);
    (void)unlink(key);
    (void)unlink(conf);
    (void)unlink(id);
    (void)rmdir(dir);
}

char *vo_storage_rbd_dir_id(const char *dir)
{
    _cleanup_free_ char *path = vo_asprintf("%s/pool-id", dir);
    char *id = NULL;
    if (vo_read_file(path, 64, &id, NULL) < 0)
        return NULL;
    id[strcspn(id, "\r\n")] = '\0';
    return id;
}

int vo_storage_rbd_write_id(const char *dir, const char *id)
{
    _cleanup_free_ char *path = vo_asprintf("%s/pool-id", dir);
    return vo_write_file_atomic(path, id, strlen(id));
}

char *vo_storage_rbd_dir(VoDaemon *d, const char *name)
{
    return vo_asprintf("%s/rbd/%s", d->state_dir, name);
}

int vo_storage_rbd_write_dir(const char *dir, const char *name, const char *key,
                             const char *monitors, const char *pool, const char *user,
                             char **ret_error)
{
    _cleanup_free_ char *top = vo_strdup(dir);
    *strrchr(top, '/') = '\0';
    _cleanup_free_ char *key_file = vo_asprintf("%s/key", dir);
    if ((mkdir(top, 0700) < 0 && errno != EEXIST) || mkdir(dir, 0700) < 0) {
        int r = -errno;
        return vo_error_set(ret_error, r, "cannot make %s for pool '%s': %s", dir, name,
                            strerror(-r));
    }
    int fd = open(key_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t n = strlen(key);
    bool ok = fd >= 0 && write(fd, key, n) == (ssize_t)n && fsync(fd) == 0;
    int r = ok ? 0 : -errno;
    if (fd >= 0)
        close(fd);
    if (ok && (r = vo_rbd_disk_write_conf(dir, monitors, pool, user)) < 0)
        ok = false;
    if (!ok) {
        vo_storage_rbd_discard(dir);
        return vo_error_set(ret_error, r, "cannot write the key of pool '%s': %s", name,
                            strerror(-r));
    }
    return 0;
}

int vo_storage_rbd_prepare(VoDaemon *d, const VoPoolSpec *spec, char **ret_dir,
                           json_t **ret_props, char **ret_error)
{
    _cleanup_free_ char *text = read_small(spec->keyring);
    if (!text)
        return vo_error_set(ret_error, -EINVAL, "keyring: cannot read '%s': %s", spec->keyring,
                            strerror(errno));
    _cleanup_free_ char *key = NULL;
    int r = vo_rbd_keyring_key(text, spec->user, &key, ret_error);
    explicit_bzero(text, strlen(text));
    if (r < 0)
        return -EINVAL;
    VoRbdConf conf = { .monitors = spec->monitors, .pool = spec->rbd_pool, .user = spec->user,
                       .key = key };
    r = vo_rbd_check(&conf, ret_error);
    if (r < 0) {
        explicit_bzero(key, strlen(key));
        /* The cluster said no, or could not be reached: what the request
         * named is wrong (monitors, pool, user or key), a 400. */
        return -EINVAL;
    }
    _cleanup_free_ char *dir = vo_storage_rbd_dir(d, spec->name);
    r = vo_storage_rbd_write_dir(dir, spec->name, key, spec->monitors, spec->rbd_pool,
                                 spec->user, ret_error);
    explicit_bzero(key, strlen(key));
    if (r < 0)
        return r;
    *ret_props = json_pack("{s:s, s:s, s:s}", "monitors", spec->monitors, "pool",
                           spec->rbd_pool, "user", spec->user);
    *ret_dir = TAKE_PTR(dir);
    return 0;
}

int vo_storage_rbd_load(const char *dir, json_t *props, VoRbdPool *ret, char **ret_error)
{
    *ret = (VoRbdPool){ 0 };
    const char *monitors = NULL, *pool = NULL, *user = NULL;
    if (!props || json_unpack(props, "{s:s, s:s, s:s}", "monitors", &monitors, "pool", &pool,
                              "user", &user) < 0)
        return vo_error_set(ret_error, -EINVAL, "the rbd pool at %s has no Ceph settings", dir);
    _cleanup_free_ char *key_file = vo_asprintf("%s/key", dir);
    char *key = read_small(key_file);
    if (!key)
        return vo_error_set(ret_error, -EIO, "cannot read the key of the rbd pool (%s): %s",
                            key_file, strerror(errno));
    key[strcspn(key, "\r\n")] = 0;
    *ret = (VoRbdPool){ .monitors = vo_strdup(monitors), .pool = vo_strdup(pool),
                        .user = vo_strdup(user), .key = key, .key_file = TAKE_PTR(key_file) };
    return 0;
}

/* A new RBD image of size bytes, filled from src (of src_format; NULL: a
 * "json:" chain spec); removed again when the copy fails. */
static int import_sized(const VoRbdPool *rp, const char *image, const char *src,
                        const char *src_format, uint64_t size, VoRbdProgressFn progress,
                        void *userdata, char **ret_error)
{
    VoRbdConf c = vo_rbd_pool_conf(rp);
    int r = vo_rbd_image_create(&c, image, size, ret_error);
    if (r < 0)
        return r;
    r = vo_storage_rbd_write(rp, image, src, src_format, size, progress, userdata, ret_error);
    if (r < 0)
        (void)vo_rbd_image_remove(&c, image, NULL);
    return r;
}

int vo_storage_rbd_import(const VoRbdPool *rp, const char *image, const char *src,
                          const char *src_format, uint64_t size, VoRbdProgressFn progress,
                          void *userdata, char **ret_error)
{
    VoImgInfo info = { 0 };
    int r = vo_img_info(src, src_format, &info, ret_error);
    if (r < 0)
        return r;
    uint64_t vsize = info.n_layers ? info.layers[0].virtual_size : 0;
    vo_img_info_clear(&info);
    return import_sized(rp, image, src, src_format, size < vsize ? vsize : size, progress,
                        userdata, ret_error);
}

int vo_storage_rbd_chain_size(char *const *layers, uint64_t *ret_size, char **ret_error)
{
    int fd = layers && layers[0] ? vo_img_open_regular(layers[0]) : -EINVAL;
    VoQcow2Header h;
    int r = fd < 0 ? fd : vo_qcow2_header_read(fd, &h);
    if (fd >= 0)
        close(fd);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the qcow2 header of %s: %s",
                            layers && layers[0] ? layers[0] : "(none)", strerror(-r));
    *ret_size = h.virtual_size;
    vo_qcow2_header_clear(&h);
    return 0;
}

int vo_storage_rbd_import_chain(const VoRbdPool *rp, const char *image, char *const *layers,
                                size_t n, char **ret_error)
{
    uint64_t size = 0;
    int r = vo_storage_rbd_chain_size(layers, &size, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *chain = vo_img_chain_spec(layers, n);
    if (!chain)
        return vo_error_set(ret_error, -EINVAL, "invalid image chain (%zu layer(s), each an "
                            "absolute path)", n);
    return import_sized(rp, image, chain, NULL, size, NULL, NULL, ret_error);
}

typedef struct {
    uint64_t size;
    VoRbdProgressFn fn;
    void *userdata;
} WriteProgress;

/* qemu-img's percent as bytes of the image's size. */
static void write_progress(int percent, void *userdata)
{
    WriteProgress *w = userdata;
    w->fn(w->size / 100 * (uint64_t)percent + w->size % 100 * (uint64_t)percent / 100, w->size,
          w->userdata);
}

int vo_storage_rbd_write(const VoRbdPool *rp, const char *image, const char *src,
                         const char *src_format, uint64_t size, VoRbdProgressFn progress,
                         void *userdata, char **ret_error)
{
    /* QEMU writes into the image it opens itself (its rbd driver); the key
     * goes by file (a secret object), never in argv. */
    json_t *servers = vo_rbd_servers(rp->monitors);
    _cleanup_free_ char *target = vo_asprintf("driver=raw,file.driver=rbd,file.pool=%s,"
                                              "file.image=%s,file.user=%s,"
                                              "file.key-secret=vo-key,"
                                              "file.auth-client-required.0=cephx",
                                              rp->pool, image, rp->user);
    size_t i;
    json_t *s;
    json_array_foreach(servers, i, s) {
        char *more = vo_asprintf("%s,file.server.%zu.host=%s,file.server.%zu.port=%s", target, i,
                                 json_string_value(json_object_get(s, "host")), i,
                                 json_string_value(json_object_get(s, "port")));
        free(target);
        target = more;
    }
    json_decref(servers);
    _cleanup_free_ char *secret = vo_asprintf("secret,id=vo-key,format=base64,file=%s",
                                              rp->key_file);
    char *argv[] = { "qemu-img", "convert", "-p", "-n", "--object", secret,
                     "--target-image-opts", "-f", (char *)src_format, (char *)src, target, NULL };
    if (!src_format) { /* "-f FORMAT" out */
        argv[7] = argv[9];
        argv[8] = argv[10];
        argv[9] = NULL;
    }
    WriteProgress w = { .size = size, .fn = progress, .userdata = userdata };
    _cleanup_free_ char *error = NULL;
    int r = vo_img_run_convert(argv, progress ? write_progress : NULL, &w, &error);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot copy %s into RBD image %s/%s: %s", src,
                            rp->pool, image, error);
    return 0;
}

/* One base import at a time in this vireod: two VMs made at once from one
 * image import it once. */
static pthread_mutex_t base_lock = PTHREAD_MUTEX_INITIALIZER;

/* Caller holds base_lock. */
static int base_ensure(const VoRbdPool *rp, const char *base, const char *src,
                       const char *src_format, char **ret_error)
{
    VoRbdConf c = vo_rbd_pool_conf(rp);
    int r = vo_rbd_base_ready(&c, base, ret_error);
    if (r == 0) {
        /* A half-made base (no protected snapshot: a crash while it was
         * sealed) goes first; a base with clones is never half-made. */
        r = vo_rbd_base_remove(&c, base, ret_error);
        char uuid[37] = "";
        (void)vo_uuid_generate(uuid);
        _cleanup_free_ char *part = vo_asprintf("%s.part-%.8s", base, uuid);
        if (r >= 0)
            r = vo_storage_rbd_import(rp, part, src, src_format, 0, NULL, NULL, ret_error);
        if (r >= 0) {
            r = vo_rbd_base_seal(&c, part, base, ret_error);
            if (r < 0) {
                _cleanup_free_ char *ignored = NULL;
                (void)vo_rbd_base_remove(&c, part, &ignored);
                if (r == -EEXIST) { /* made meanwhile by another host: use it */
                    free(TAKE_PTR(*ret_error));
                    r = 0;
                }
            }
        }
    }
    return r < 0 ? r : 0;
}

int vo_storage_rbd_clone_image(const VoRbdPool *rp, const char *image_name, const char *src,
                               const char *src_format, const char *child, uint64_t size,
                               char **ret_error)
{
    _cleanup_free_ char *base = vo_asprintf(VO_RBD_BASE_PREFIX "%s", image_name);
    VoRbdConf c = vo_rbd_pool_conf(rp);
    /* The clone under the lock too: a base is never removed between its
     * check and the clone (forget_image and forget_bases take the lock). */
    pthread_mutex_lock(&base_lock);
    int r = base_ensure(rp, base, src, src_format, ret_error);
    if (r >= 0)
        r = vo_rbd_clone(&c, base, child, size, ret_error);
    pthread_mutex_unlock(&base_lock);
    return r;
}

int vo_storage_rbd_forget_image(const VoRbdPool *rp, const char *image_name, char **ret_error)
{
    _cleanup_free_ char *base = vo_asprintf(VO_RBD_BASE_PREFIX "%s", image_name);
    VoRbdConf c = vo_rbd_pool_conf(rp);
    pthread_mutex_lock(&base_lock);
    int r = vo_rbd_base_remove(&c, base, ret_error);
    pthread_mutex_unlock(&base_lock);
    return r;
}

void vo_storage_rbd_forget_bases(const VoRbdPool *rp)
{
    VoRbdConf c = vo_rbd_pool_conf(rp);
    _cleanup_strv_ char **bases = NULL;
    _cleanup_free_ char *error = NULL;
    pthread_mutex_lock(&base_lock);
    if (vo_rbd_list_prefixed(&c, VO_RBD_BASE_PREFIX, &bases, &error) < 0)
        log_warn("rbd: kept the image bases in Ceph pool %s: %s", rp->pool, error);
    for (char **b = bases; b && *b; b++) {
        if (strstr(*b, ".part-")) /* another pool's import may be under way */
            continue;
        free(TAKE_PTR(error));
        if (vo_rbd_base_remove(&c, *b, &error) < 0)
            log_info("rbd: kept image base %s/%s: %s", rp->pool, *b, error);
    }
    pthread_mutex_unlock(&base_lock);
}

int vo_storage_rbd_remove_half_made(const char *path, char **ret_error)
{
    _cleanup_free_ char *dir = vo_strdup(path);
    char *slash = strrchr(dir, '/');
    size_t n = slash ? strlen(slash + 1) : 0;
    if (!slash || n <= 4 || strcmp(slash + 1 + n - 4, ".raw"))
        return 0;
    *slash = '\0';
    _cleanup_free_ char *image = vo_asprintf("%.*s", (int)(n - 4), slash + 1);
    const char *pool_name = strrchr(dir, '/');
    _cleanup_free_ char *conf_file = vo_asprintf("%s/ceph.json", dir);
    json_t *props = pool_name ? json_load_file(conf_file, 0, NULL) : NULL;
    if (!props) /* no rbd pool's directory */
        return 0;
    VoRbdPool rp;
    int r = vo_storage_rbd_load(dir, props, &rp, ret_error);
    json_decref(props);
    if (r < 0)
        return r;
    _cleanup_free_ char *volume = vo_asprintf("%s/%s", pool_name + 1, image);
    VoRbdConf c = vo_rbd_pool_conf(&rp);
    int marked = vo_rbd_image_marked(&c, image, volume, ret_error);
    r = marked > 0 ? vo_rbd_image_remove(&c, image, ret_error) : marked;
    /* A full copy to it (vm clone) cut short: its partial image, never
     * marked, goes too (only a later copy to the same name would remove it). */
    int part = r >= 0 ? vo_rbd_image_copy_part_remove(&c, image, ret_error) : 0;
    vo_rbd_pool_clear(&rp);
    if (r < 0 || part < 0)
        return r < 0 ? r : part;
    return marked > 0 || part > 0;
}
