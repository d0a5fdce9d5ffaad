/* storage-rbd.c: making and reading back rbd pools (see storage-rbd.h). */
#include "daemon/storage-rbd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/rbd-spec.h"
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
    (void)unlink(key);
    (void)rmdir(dir);
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
    _cleanup_free_ char *top = vo_asprintf("%s/rbd", d->state_dir);
    _cleanup_free_ char *dir = vo_asprintf("%s/%s", top, spec->name);
    _cleanup_free_ char *key_file = vo_asprintf("%s/key", dir);
    if ((mkdir(top, 0700) < 0 && errno != EEXIST) || mkdir(dir, 0700) < 0) {
        r = -errno;
        explicit_bzero(key, strlen(key));
        return vo_error_set(ret_error, r == -EEXIST ? -EEXIST : r,
                            "cannot make %s for pool '%s': %s", dir, spec->name, strerror(-r));
    }
    int fd = open(key_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t n = strlen(key);
    bool ok = fd >= 0 && write(fd, key, n) == (ssize_t)n && fsync(fd) == 0;
    r = ok ? 0 : -errno;
    if (fd >= 0)
        close(fd);
    explicit_bzero(key, n);
    if (!ok) {
        vo_storage_rbd_discard(dir);
        return vo_error_set(ret_error, r, "cannot write the key of pool '%s': %s", spec->name,
                            strerror(-r));
    }
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
