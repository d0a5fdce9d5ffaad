/* peer-file.c: one file pulled from another host of the cluster (see
 * peer-file.h): vo_peer_download's chunks are written to the file and
 * hashed as they come, then size and SHA-256 are compared with what the
 * sender announced. */
#include "daemon/peer-file.h"

#include <string.h>
#include <unistd.h>

#include "cluster/peer-client.h"
#include "util/sha256.h"
#include "util/util.h"

typedef struct {
    const VoPeerFile *f;
    int fd;
    VoSha256 *sha;
    uint64_t got;
} Receive;

static int on_data(const char *data, size_t len, void *userdata)
{
    Receive *rc = userdata;
    if (rc->got + len > rc->f->size)
        return -EFBIG; /* more than announced */
    if (rc->f->task && vo_task_cancelled(rc->f->task))
        return -ECANCELED;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(rc->fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        off += (size_t)n;
    }
    if (vo_sha256_update(rc->sha, data, len) < 0)
        return -EIO;
    rc->got += len;
    if (rc->f->progress)
        rc->f->progress(len, rc->f->userdata);
    return 0;
}

int vo_peer_file_receive(VoDaemon *d, const VoPeerFile *f, int fd, char **ret_error)
{
    Receive rc = { .f = f, .fd = fd, .sha = vo_sha256_new() };
    const char *headers[] = { "X-Vireo-Forwarded: 1", NULL };
    VoPeerResponse resp = { 0 };
    int r = rc.sha ? vo_peer_download(&d->peer_tls, f->url, f->path, headers,
                                      VO_PEER_FILE_STALL_MS, on_data, &rc, &resp)
                   : -ENOMEM;
    if (r == -ECANCELED)
        vo_error_set(ret_error, r, "%s: cancelled", f->name);
    else if (r < 0)
        vo_error_set(ret_error, r == -EFBIG ? -EIO : r, "%s: %s", f->name,
                     r == -EFBIG ? "more bytes than announced (changed on the way)"
                                 : resp.error ? resp.error : strerror(-r));
    else if (resp.status != 200) {
        _cleanup_free_ char *text = vo_peer_answer_text(&resp);
        r = vo_error_set(ret_error, -EIO, "host '%s' answered %d to GET %s: %s", f->peer_name,
                         resp.status, f->path, text);
    }
    else if (rc.got != f->size)
        r = vo_error_set(ret_error, -EIO, "%s: %llu bytes came, %llu were announced (changed "
                         "or cut short on the way)", f->name, (unsigned long long)rc.got,
                         (unsigned long long)f->size);
    if (r == -EFBIG)
        r = -EIO;
    vo_peer_response_clear(&resp);
    char hex[VO_SHA256_HEX_LEN + 1];
    if (r >= 0 && vo_sha256_finish(TAKE_PTR(rc.sha), hex) < 0)
        r = vo_error_set(ret_error, -EIO, "%s: cannot compute its SHA-256", f->name);
    else if (r >= 0 && strcmp(hex, f->sha256))
        r = vo_error_set(ret_error, -EIO, "%s: its SHA-256 is %s, %s was announced (changed "
                         "on the way, or on host '%s' meanwhile)", f->name, hex, f->sha256,
                         f->peer_name);
    vo_sha256_free(rc.sha);
    if (r >= 0 && fsync(fd) < 0)
        r = vo_error_set(ret_error, -errno, "cannot write %s: %s", f->name, strerror(errno));
    return r;
}
