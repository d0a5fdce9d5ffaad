/* rbd-failure.c: a failed Ceph call's kind and its retry delay (see
 * rbd-failure.h). */
#include "storage/rbd-failure.h"

#include <errno.h>

VoRbdFailure vo_rbd_failure_kind(int err)
{
    switch (err < 0 ? -err : err) {
    case EBUSY:
        return VO_RBD_FAIL_BUSY;
    /* What librados answers when the monitors or OSDs do not (its own
     * timeouts: VO_RBD_TIMEOUT_S), or a connection that broke. */
    case ETIMEDOUT:
    case ENOTCONN:
    case ESHUTDOWN:
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETUNREACH:
    case ENETDOWN:
    case EAGAIN:
    case EINTR:
        return VO_RBD_FAIL_UNREACHABLE;
    /* ENOENT too: the calls answer an image that does not exist as done
     * (0), so an -ENOENT that fails one is the Ceph pool's (the pool's
     * settings name none: deleted, or renamed with the image in it). */
    default: /* EACCES, EPERM, EINVAL, EIO, ...: the same answer next time */
        return VO_RBD_FAIL_PERMANENT;
    }
}

const char *vo_rbd_failure_name(VoRbdFailure kind)
{
    switch (kind) {
    case VO_RBD_FAIL_UNREACHABLE:
        return "unreachable";
    case VO_RBD_FAIL_BUSY:
        return "busy";
    case VO_RBD_FAIL_PERMANENT:
        break;
    }
    return "permanent";
}

int64_t vo_rbd_retry_delay_ms(VoRbdFailure kind, unsigned tries)
{
    switch (kind) {
    case VO_RBD_FAIL_UNREACHABLE:
        return 0;
    case VO_RBD_FAIL_BUSY: {
        int64_t delay = VO_RBD_BUSY_RETRY_MS;
        for (unsigned i = 1; i < tries && delay < VO_RBD_BUSY_RETRY_MAX_MS; i++)
            delay *= 2;
        return delay < VO_RBD_BUSY_RETRY_MAX_MS ? delay : VO_RBD_BUSY_RETRY_MAX_MS;
    }
    case VO_RBD_FAIL_PERMANENT:
        break;
    }
    return VO_RBD_PERMANENT_RETRY_MS;
}
