/* fuzz-image-header.c: libFuzzer target for the qcow2 header reader
 * (storage/image-header.c), which reads volume files that guests and
 * uploads fill. The input is written as a file in a private temporary
 * directory and its backing chain read, as qcow2 and as raw; the header
 * bytes are also parsed alone (vo_qcow2_header_read on a memfd). The chain
 * is read with the temporary directory as the only trusted root, so backing
 * names are left as the fuzzer wrote them: anything outside that directory
 * must come back as an untrusted layer, never opened. */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "storage/image-header.h"

/* BASE/vireo-fuzz-image-header.PID, BASE being /dev/shm (tmpfs: ext4 would
 * flush the file each time it is truncated and written again) or else /tmp.
 * libFuzzer leaves with _exit after a crash, a timeout or Ctrl-C, so the
 * directories of dead runs are removed at the next start. */
#define DIR_PREFIX "vireo-fuzz-image-header."
static const char *base;
static char dir[64];
static char path[sizeof(dir) + 8];

static void remove_dir_of(const char *d)
{
    char p[sizeof(path)];
    snprintf(p, sizeof(p), "%s/img", d);
    unlink(p);
    rmdir(d);
}

static void remove_dir(void)
{
    remove_dir_of(dir);
}

static void remove_stale_dirs(void)
{
    DIR *tmp = opendir(base);
    struct dirent *e;
    while (tmp && (e = readdir(tmp))) {
        if (strncmp(e->d_name, DIR_PREFIX, strlen(DIR_PREFIX)))
            continue;
        char *end;
        long pid = strtol(e->d_name + strlen(DIR_PREFIX), &end, 10);
        if (*end || pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH)) {
            char d[sizeof(dir) + 256];
            snprintf(d, sizeof(d), "%s/%s", base, e->d_name);
            remove_dir_of(d);
        }
    }
    if (tmp)
        closedir(tmp);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    remove_stale_dirs();
    snprintf(dir, sizeof(dir), "%s/" DIR_PREFIX "%d", base, (int)getpid());
    remove_dir();
    if (mkdir(dir, 0700) < 0)
        abort();
    snprintf(path, sizeof(path), "%s/img", dir);
    atexit(remove_dir);
    return 0;
}

static void write_input(const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    close(fd);
}

static void check_chain(int r, VoImgInfo *info)
{
    if (r < 0) {
        FUZZ_CHECK(r == -ENOENT || r == -EIO || r == -ELOOP || r == -EISDIR || r == -EINVAL ||
                   r == -ENAMETOOLONG || r == -ENOTDIR);
        return;
    }
    FUZZ_CHECK(info->n_layers >= 1 && info->n_layers <= 16);
    FUZZ_CHECK(!strcmp(info->layers[0].path, path));
    for (size_t i = 0; i < info->n_layers; i++) {
        FUZZ_CHECK(info->layers[i].format && info->layers[i].path);
        /* Only files inside the directory are ever read. */
        if (strcmp(info->layers[i].format, VO_IMG_UNTRUSTED))
            FUZZ_CHECK(vo_path_under(dir, info->layers[i].path));
    }
    vo_img_info_clear(info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VoImgInfo info;
    int mfd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
    if (mfd < 0 || (size && write(mfd, data, size) != (ssize_t)size))
        abort();
    VoQcow2Header h;
    int r = vo_qcow2_header_read(mfd, &h);
    close(mfd);
    if (r == 0) {
        FUZZ_CHECK(!h.backing || strlen(h.backing) <= 1023);
        FUZZ_CHECK(!h.backing_format || strlen(h.backing_format) < 32);
        vo_qcow2_header_clear(&h);
    } else {
        FUZZ_CHECK(r == -EINVAL || r == -EIO);
    }
    write_input(data, size);
    char *roots[] = { dir, NULL };
    check_chain(vo_img_header_chain(path, "qcow2", roots, &info), &info);
    check_chain(vo_img_header_chain(path, "raw", roots, &info), &info);
    return 0;
}
