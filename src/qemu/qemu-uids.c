/* qemu-uids.c: a uid of its own for each VM's QEMU (see qemu-uids.h). */
#include "qemu/qemu-uids.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

int vo_qemu_uid_range_parse(const char *text, uid_t *ret_first, uid_t *ret_last)
{
    char *end = NULL;
    errno = 0;
    unsigned long first = strtoul(text, &end, 10);
    if (errno || end == text || *end != '-' || text[0] == '-')
        return -EINVAL;
    const char *second = end + 1;
    unsigned long last = strtoul(second, &end, 10);
    if (errno || end == second || *end || *second == '-' || first < 1 || first > last ||
        last >= 0x7fffffffUL)
        return -EINVAL;
    *ret_first = (uid_t)first;
    *ret_last = (uid_t)last;
    return 0;
}

static int cmp_uid(const void *a, const void *b)
{
    uid_t x = *(const uid_t *)a, y = *(const uid_t *)b;
    return x < y ? -1 : x > y;
}

int vo_qemu_uid_pick(uid_t first, uid_t last, const uid_t *used, size_t n_used, uid_t *ret,
                     char **ret_error)
{
    uid_t *sorted = vo_malloc0((n_used + 1) * sizeof(*sorted));
    if (n_used)
        memcpy(sorted, used, n_used * sizeof(*sorted));
    qsort(sorted, n_used, sizeof(*sorted), cmp_uid);
    uid_t next = first;
    for (size_t i = 0; i < n_used && next <= last; i++)
        if (sorted[i] == next)
            next++;
    free(sorted);
    if (next > last || next < first) /* past the range (or wrapped) */
        return vo_error_set(ret_error, -EBUSY,
                            "no free uid for QEMU in --qemu-uid-range %u-%u: all %u are in use "
                            "(by other VMs' QEMUs or other processes); widen the range",
                            (unsigned)first, (unsigned)last, (unsigned)(last - first + 1));
    *ret = next;
    return 0;
}

static void add_used(uid_t **used, size_t *n, size_t *cap, uid_t uid, uid_t first, uid_t last)
{
    if (uid < first || uid > last)
        return;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        uid_t *grown = realloc(*used, *cap * sizeof(**used));
        if (!grown)
            abort();
        *used = grown;
    }
    (*used)[(*n)++] = uid;
}

/* The uids of every process's "Uid:" line (a process may exit meanwhile),
 * zombies left out: an exited QEMU a restarted vireod re-attached is not
 * its child, and stays a zombie until whoever adopted it reaps it, but it
 * runs nothing and takes no signal. */
static void scan_processes(uid_t **used, size_t *n, size_t *cap, uid_t first, uid_t last)
{
    DIR *proc = opendir("/proc");
    struct dirent *e;
    while (proc && (e = readdir(proc))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        _cleanup_free_ char *path = vo_asprintf("/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "re");
        char line[256];
        while (f && fgets(line, sizeof(line), f)) {
            unsigned long ids[4];
            if (!strncmp(line, "State:", 6) && strchr(line, 'Z'))
                break;
            if (sscanf(line, "Uid: %lu %lu %lu %lu", &ids[0], &ids[1], &ids[2], &ids[3]) == 4) {
                for (size_t i = 0; i < 4; i++)
                    add_used(used, n, cap, (uid_t)ids[i], first, last);
                break;
            }
        }
        if (f)
            fclose(f);
    }
    if (proc)
        closedir(proc);
}

/* A read lock on all of the file fd (opened read-only) on fd's own open
 * file description (OFD): it lives until the last fd of the description
 * closes, i.e. as long as the QEMU that inherits fd; with that fd QEMU can
 * lock or unlock nothing but its own uid's file. Whether another
 * description holds one: a write lock's test. */
static int uid_taken(int fd)
{
    struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(fd, F_OFD_GETLK, &lk) < 0)
        return -errno;
    return lk.l_type != F_UNLCK;
}

static int take_uid(int fd)
{
    struct flock lk = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
    return fcntl(fd, F_OFD_SETLK, &lk) < 0 ? -errno : 0;
}

/* uid's lock file under the lock dir dfd, opened read-only (made when
 * missing; its name in name), or -errno. */
static int open_uid_file(int dfd, uid_t uid, char name[16])
{
    snprintf(name, 16, "%u", (unsigned)uid);
    int fd = openat(dfd, name, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    return fd < 0 ? -errno : fd;
}

/* lock_dir, made when missing, as an fd: a directory of vireod's user
 * alone. /run/lock is writable by every user: one who made lock_dir first
 * could lock every uid's file (no start), or swap a file a starting QEMU
 * holds (two QEMUs on one uid), or leave a FIFO where a uid's file goes
 * (a claim that never returns). */
static int open_lock_dir(const char *lock_dir, char **ret_error)
{
    (void)vo_mkdir_p(lock_dir, 0700);
    int fd = open(lock_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int r = -errno;
        if (fd >= 0)
            close(fd);
        return vo_error_set(ret_error, r, "cannot open %s to pick QEMU's uid: %s", lock_dir,
                            strerror(-r));
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077)) {
        close(fd);
        return vo_error_set(ret_error, -EPERM, "%s is not a directory of uid %u alone (0700; "
                            "owner %u, mode %04o): remove it", lock_dir, (unsigned)geteuid(),
                            (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
    }
    return fd;
}

int vo_qemu_uid_claim(const char *lock_dir, uid_t first, uid_t last, uid_t *ret,
                      int *ret_lock_fd, char **ret_error)
{
    _cleanup_close_ int dfd = open_lock_dir(lock_dir, ret_error);
    if (dfd < 0)
        return dfd;
    /* One claim at a time on the machine: between the test and the lock. */
    _cleanup_close_ int all = openat(dfd, ".claim", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
                                     0600);
    if (all < 0 || flock(all, LOCK_EX) < 0)
        return vo_error_set(ret_error, -errno, "cannot lock %s/.claim to pick QEMU's uid: %s",
                            lock_dir, strerror(errno));
    uid_t *used = NULL;
    size_t n = 0, cap = 0;
    scan_processes(&used, &n, &cap, first, last);
    int r, fd = -1;
    for (;;) {
        r = vo_qemu_uid_pick(first, last, used, n, ret, ret_error);
        if (r < 0)
            break;
        char name[16];
        fd = open_uid_file(dfd, *ret, name);
        r = fd < 0 ? fd : uid_taken(fd);
        if (r == 0)
            r = take_uid(fd);
        if (r == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
        if (r < 0) {
            vo_error_set(ret_error, r, "cannot lock %s/%s: %s", lock_dir, name, strerror(-r));
            break;
        }
        add_used(&used, &n, &cap, *ret, first, last); /* another QEMU's, still root */
    }
    free(used);
    if (r < 0)
        return r;
    *ret_lock_fd = fd;
    return 0;
}

bool vo_qemu_uid_from_argv(const char *argv_text, uid_t *ret)
{
    const char *at = argv_text ? strstr(argv_text, "\n-run-with\nuser=") : NULL;
    if (!at)
        return false;
    at += strlen("\n-run-with\nuser=");
    char *end = NULL;
    errno = 0;
    unsigned long uid = strtoul(at, &end, 10);
    if (errno || end == at || *end != ':' || *at == '-')
        return false;
    *ret = (uid_t)uid;
    return true;
}

int vo_qemu_uid_hold(const char *lock_dir, uid_t uid, char **ret_error)
{
    _cleanup_close_ int dfd = open_lock_dir(lock_dir, ret_error);
    if (dfd < 0)
        return dfd;
    char name[16];
    int fd = open_uid_file(dfd, uid, name);
    int r = fd < 0 ? fd : take_uid(fd);
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        return vo_error_set(ret_error, r, "cannot lock %s/%s: %s", lock_dir, name, strerror(-r));
    }
    return fd;
}
