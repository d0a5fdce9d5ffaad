/* util.c: allocation, string vectors, size parsing, clocks and file helpers
 * declared in util.h. */
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void *vo_malloc0(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p)
        abort();
    return p;
}

char *vo_strdup(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

char *vo_vasprintf(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    return s;
}

int vo_error_set(char **ret_error, int r, const char *fmt, ...)
{
    if (ret_error) {
        va_list ap;
        va_start(ap, fmt);
        *ret_error = vo_vasprintf(fmt, ap);
        va_end(ap);
    }
    return r;
}

char *vo_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vo_vasprintf(fmt, ap);
    va_end(ap);
    return s;
}

void vo_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

size_t vo_strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

int vo_strv_push(char ***v, char *s)
{
    size_t n = vo_strv_len(*v);
    char **nv = realloc(*v, (n + 2) * sizeof(char *));
    if (!nv)
        abort();
    nv[n] = s;
    nv[n + 1] = NULL;
    *v = nv;
    return 0;
}

int vo_strv_pushf(char ***v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vo_vasprintf(fmt, ap);
    va_end(ap);
    return vo_strv_push(v, s);
}

char *vo_strv_join(char *const *v, const char *sep)
{
    size_t n = 1;
    for (size_t i = 0; v && v[i]; i++)
        n += strlen(v[i]) + (i ? strlen(sep) : 0);
    char *s = vo_malloc0(n), *p = s;
    for (size_t i = 0; v && v[i]; i++)
        p = stpcpy(i ? stpcpy(p, sep) : p, v[i]);
    return s;
}

int vo_parse_size_default_unit(const char *s, uint64_t bare_unit, uint64_t *ret_bytes)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    char *end = NULL;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    uint64_t unit = bare_unit;
    if (*end) {
        switch (toupper((unsigned char)*end)) {
        case 'B': unit = 1; break;
        case 'K': unit = 1ULL << 10; break;
        case 'M': unit = 1ULL << 20; break;
        case 'G': unit = 1ULL << 30; break;
        case 'T': unit = 1ULL << 40; break;
        default: return -EINVAL;
        }
        end++;
        /* Accept "M", "MB", "MiB" spellings. */
        if (unit != 1 && (*end == 'i' || *end == 'I'))
            end++;
        if (unit != 1 && (*end == 'b' || *end == 'B'))
            end++;
        if (*end)
            return -EINVAL;
    }
    if (n > UINT64_MAX / unit)
        return -ERANGE;
    *ret_bytes = (uint64_t)n * unit;
    return 0;
}

int vo_parse_size(const char *s, uint64_t *ret_bytes)
{
    return vo_parse_size_default_unit(s, 1, ret_bytes);
}

int64_t vo_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec vo_deadline_ms(clockid_t clock, int64_t ms)
{
    struct timespec t;
    clock_gettime(clock, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    return t;
}

int64_t vo_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t vo_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int vo_mkdir_p(const char *path, mode_t mode)
{
    _cleanup_free_ char *p = vo_strdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int vo_read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, len = 0;
    _cleanup_free_ char *buf = vo_malloc0(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap >= max)
                return -EFBIG;
            cap *= 2;
            buf = realloc(buf, cap + 1);
            if (!buf)
                abort();
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = 0;
    if (ret_len)
        *ret_len = len;
    *ret = TAKE_PTR(buf);
    return 0;
}

static int write_file_renamed(const char *path, const char *data, size_t len, bool durable)
{
    _cleanup_free_ char *tmp = vo_asprintf("%s.tmp.%d", path, (int)getpid());
    /* Never through a symlink at the temp name (a directory another user
     * may write in, such as a confined QEMU's run dir): it goes, once. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ELOOP && unlink(tmp) == 0)
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            close(fd);
            unlink(tmp);
            return r;
        }
        off += (size_t)n;
    }
    if ((durable && fsync(fd) < 0) || close(fd) < 0) {
        int r = -errno;
        unlink(tmp);
        return r;
    }
    if (rename(tmp, path) < 0) {
        int r = -errno;
        unlink(tmp);
        return r;
    }
    return 0;
}

int vo_write_file_atomic(const char *path, const char *data, size_t len)
{
    return write_file_renamed(path, data, len, true);
}

int vo_write_run_file_atomic(const char *path, const char *data, size_t len)
{
    return write_file_renamed(path, data, len, false);
}

int vo_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) < 0 ? -errno : 0;
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *de;
    int r = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        _cleanup_free_ char *child = vo_asprintf("%s/%s", path, de->d_name);
        int k = vo_rm_rf(child);
        if (k < 0 && r == 0)
            r = k;
    }
    closedir(d);
    if (rmdir(path) < 0 && r == 0)
        r = -errno;
    return r;
}
