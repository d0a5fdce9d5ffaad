/* qemu-display.c: screendump, send-key and the one-time VNC password over
 * QMP (see qemu-display.h). */
#include "qemu/qemu-display.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qemu/qemu-argv.h"
#include "qemu/qemu-instance.h"
#include "util/util.h"

/* A screenshot larger than this is refused (a 4K screen's PNG is far less). */
#define SCREENDUMP_MAX (64 * 1024 * 1024)

static int lock_qmp(VoHvInstance *vm, char **ret_error)
{
    pthread_mutex_lock(&vm->qmp_lock);
    if (vm->qmp)
        return 0;
    pthread_mutex_unlock(&vm->qmp_lock);
    return vo_error_set(ret_error, -ENOTCONN, "QEMU's monitor is not connected");
}

static int read_whole(const char *path, char **ret, size_t *ret_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > SCREENDUMP_MAX) {
        close(fd);
        return -EIO;
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *data = vo_malloc0(len);
    while (got < len) {
        ssize_t n = read(fd, data + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(data);
            close(fd);
            return n < 0 ? -errno : -EIO;
        }
        got += (size_t)n;
    }
    close(fd);
    *ret = data;
    *ret_len = len;
    return 0;
}

int vo_qemu_screendump(VoHvInstance *vm, char **ret_png, size_t *ret_len, char **ret_error)
{
    int r = lock_qmp(vm, ret_error);
    if (r < 0)
        return r;
    /* One at a time (under qmp_lock), so the name needs no uniqueness. */
    _cleanup_free_ char *path = vo_asprintf("%s/screendump.png", vm->own_dir);
    (void)unlink(path);
    json_t *args = json_pack("{s:s, s:s}", "filename", path, "format", "png");
    _cleanup_free_ char *error = NULL;
    r = vo_qemu_command(vm, "screendump", args, NULL, &error);
    json_decref(args);
    if (r >= 0) {
        r = read_whole(path, ret_png, ret_len);
        if (r < 0)
            error = vo_asprintf("cannot read QEMU's screendump %s: %s", path, strerror(-r));
    }
    (void)unlink(path);
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r < 0)
        *ret_error = vo_asprintf("QEMU could not take a screenshot: %s",
                                 error ? error : strerror(-r));
    return r;
}

int vo_qemu_send_keys(VoHvInstance *vm, json_t *combos, char **ret_error)
{
    int r = lock_qmp(vm, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *error = NULL;
    size_t i;
    json_t *keys;
    /* QEMU queues the presses and releases of successive commands in order. */
    json_array_foreach(combos, i, keys) {
        json_t *args = json_pack("{s:O}", "keys", keys);
        r = vo_qemu_command(vm, "send-key", args, NULL, &error);
        json_decref(args);
        if (r < 0)
            break;
    }
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r < 0)
        *ret_error = vo_asprintf("QEMU could not press key %zu: %s", i + 1,
                                 error ? error : strerror(-r));
    return r;
}

const char *vo_qemu_vnc_socket(VoHvInstance *vm, bool password)
{
    if (!password)
        return vm->vnc_path;
    /* A QEMU started before vireod made the second VNC server has only the
     * passwordless one, on which a password cannot apply. */
    struct stat st;
    if (stat(vm->vnc_ticket_path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return NULL;
    return vm->vnc_ticket_path;
}

int vo_qemu_vnc_ticket(VoHvInstance *vm, const char *password, unsigned ttl_seconds,
                       char **ret_error)
{
    if (!vo_qemu_vnc_socket(vm, true))
        return vo_error_set(ret_error, -EBUSY, "its QEMU has no VNC server that asks for "
                            "a password (it was started by an older vireod); stop and start "
                            "the VM to get one");
    int r = lock_qmp(vm, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *error = NULL;
    json_t *args = json_pack("{s:s, s:s, s:s}", "protocol", "vnc", "password", password,
                             "display", VO_QEMU_VNC_TICKET_ID);
    r = vo_qemu_command(vm, "set_password", args, NULL, &error);
    json_decref(args);
    if (r >= 0) {
        /* Relative to QEMU's clock: no clock of vireod's is compared. */
        _cleanup_free_ char *when = vo_asprintf("+%u", ttl_seconds);
        args = json_pack("{s:s, s:s, s:s}", "protocol", "vnc", "time", when, "display",
                         VO_QEMU_VNC_TICKET_ID);
        r = vo_qemu_command(vm, "expire_password", args, NULL, &error);
        json_decref(args);
    }
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r < 0)
        return vo_error_set(ret_error, r, "QEMU could not set a VNC password: %s",
                            error ? error : strerror(-r));
    return 0;
}
