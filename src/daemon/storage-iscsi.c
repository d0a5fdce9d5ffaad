/* storage-iscsi.c: listing an iSCSI target's LUNs through libiscsi (the
 * userspace initiator; no kernel iSCSI here) and the pool's CHAP secret
 * file (see storage-iscsi.h). */
#include "daemon/storage-iscsi.h"

#include <errno.h>
#include <fcntl.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

/* Seconds a login or a command may take before the scan gives up. */
#define SCAN_TIMEOUT_S 10

static int cmp_lun(const void *a, const void *b)
{
    return ((const VoIscsiLun *)a)->lun - ((const VoIscsiLun *)b)->lun;
}

static char *read_secret(const char *path)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (vo_read_file(path, 4096, &text, &len) < 0)
        return NULL;
    text[strcspn(text, "\r\n")] = 0;
    return TAKE_PTR(text);
}

/* A target reports a UNIT ATTENTION (a reset, a change) once per LUN and
 * session: the command is sent again, a few times at most. */
static bool unit_attention(struct scsi_task *t)
{
    return t && t->status == SCSI_STATUS_CHECK_CONDITION &&
           t->sense.key == SCSI_SENSE_UNIT_ATTENTION;
}

static struct scsi_task *inquiry(struct iscsi_context *c, int lun)
{
    struct scsi_task *t = iscsi_inquiry_sync(c, lun, 0, 0, 255);
    for (int i = 0; i < 3 && unit_attention(t); i++) {
        scsi_free_scsi_task(t);
        t = iscsi_inquiry_sync(c, lun, 0, 0, 255);
    }
    return t;
}

static struct scsi_task *read_capacity(struct iscsi_context *c, int lun)
{
    struct scsi_task *t = iscsi_readcapacity16_sync(c, lun);
    for (int i = 0; i < 3 && unit_attention(t); i++) {
        scsi_free_scsi_task(t);
        t = iscsi_readcapacity16_sync(c, lun);
    }
    return t;
}

/* Whether lun is a disk (peripheral type 0, present), and its size. */
static bool lun_disk(struct iscsi_context *c, int lun, uint64_t *ret_size)
{
    struct scsi_task *t = inquiry(c, lun);
    bool disk = false;
    if (t && t->status == SCSI_STATUS_GOOD) {
        struct scsi_inquiry_standard *inq = scsi_datain_unmarshall(t);
        disk = inq && inq->qualifier == SCSI_INQUIRY_PERIPHERAL_QUALIFIER_CONNECTED &&
               inq->device_type == SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_DIRECT_ACCESS;
    }
    if (t)
        scsi_free_scsi_task(t);
    if (!disk)
        return false;
    t = read_capacity(c, lun);
    bool ok = false;
    if (t && t->status == SCSI_STATUS_GOOD) {
        struct scsi_readcapacity16 *rc = scsi_datain_unmarshall(t);
        if (rc) {
            *ret_size = (rc->returned_lba + 1) * (uint64_t)rc->block_length;
            ok = true;
        }
    }
    if (t)
        scsi_free_scsi_task(t);
    return ok;
}

/* libiscsi's last error, without its trailing newline (malloc'd). */
static char *error_of(struct iscsi_context *c)
{
    const char *e = iscsi_get_error(c);
    char *s = vo_strdup(e && e[0] ? e : "no detail");
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ' || s[len - 1] == '.'))
        s[--len] = 0;
    return s;
}

int vo_iscsi_scan(const VoIscsiUrl *u, const char *initiator, VoIscsiLun **ret, size_t *ret_n,
                  char **ret_error)
{
    *ret = NULL;
    *ret_n = 0;
    struct iscsi_context *c = iscsi_create_context(initiator);
    if (!c)
        return vo_error_set(ret_error, -ENOMEM, "cannot make an iSCSI context");
    int r = 0;
    _cleanup_free_ char *portal = vo_asprintf("%s:%u", u->host, u->port);
    iscsi_set_timeout(c, SCAN_TIMEOUT_S); /* PDUs: login, commands */
    /* The TCP connect is no PDU: a portal that drops packets would hold the
     * request for the kernel's SYN retries (about 2 min); 3 retries end it
     * after about 15 s. */
    iscsi_set_tcp_syncnt(c, 3);
    iscsi_set_targetname(c, u->target);
    iscsi_set_session_type(c, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(c, ISCSI_HEADER_DIGEST_NONE_CRC32C);
    if (u->user) {
        _cleanup_free_ char *secret = u->secret ? read_secret(u->secret) : NULL;
        if (!secret)
            r = vo_error_set(ret_error, -EIO, "cannot read the CHAP secret of the pool");
        else
            iscsi_set_initiator_username_pwd(c, u->user, secret);
    }
    _cleanup_free_ char *why = NULL;
    if (r == 0 && iscsi_connect_sync(c, portal) < 0)
        r = vo_error_set(ret_error, -EHOSTUNREACH, "portal %s does not answer (%s)", portal,
                         (why = error_of(c)));
    if (r == 0 && iscsi_login_sync(c) < 0)
        r = vo_error_set(ret_error, -EACCES, "login to target %s at %s refused (check the IQN, "
                         "the target's ACL and the CHAP user and secret): %s", u->target, portal,
                         (why = error_of(c)));
    struct scsi_task *t = r == 0 ? iscsi_reportluns_sync(c, 0, 16384) : NULL;
    if (r == 0 && (!t || t->status != SCSI_STATUS_GOOD))
        r = vo_error_set(ret_error, -EIO, "target %s: REPORT LUNS failed: %s", u->target,
                         (why = error_of(c)));
    struct scsi_reportluns_list *list = r == 0 ? scsi_datain_unmarshall(t) : NULL;
    if (r == 0 && !list)
        r = vo_error_set(ret_error, -EIO, "target %s: cannot read its LUN list", u->target);
    VoIscsiLun *luns = NULL;
    size_t n = 0;
    for (uint32_t i = 0; r == 0 && i < list->num; i++) {
        uint64_t size = 0;
        int lun = list->luns[i];
        if (!lun_disk(c, lun, &size))
            continue;
        luns = realloc(luns, sizeof(*luns) * (n + 1));
        if (!luns)
            abort();
        luns[n++] = (VoIscsiLun){ .lun = lun, .size_bytes = size };
    }
    if (t)
        scsi_free_scsi_task(t);
    if (r == 0)
        (void)iscsi_logout_sync(c);
    iscsi_destroy_context(c);
    if (r < 0) {
        free(luns);
        return r;
    }
    if (n)
        qsort(luns, n, sizeof(*luns), cmp_lun);
    *ret = luns;
    *ret_n = n;
    return 0;
}

char *vo_iscsi_secret_path(const char *state_dir, const char *pool)
{
    return vo_asprintf("%s/secrets/iscsi-%s.chap", state_dir, pool);
}

int vo_iscsi_secret_write(const char *state_dir, const char *pool, const char *secret)
{
    _cleanup_free_ char *dir = vo_asprintf("%s/secrets", state_dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -errno;
    _cleanup_free_ char *path = vo_iscsi_secret_path(state_dir, pool);
    _cleanup_free_ char *tmp = vo_asprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    size_t len = strlen(secret);
    int r = write(fd, secret, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -EIO;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}
