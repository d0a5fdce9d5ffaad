/* errors.c: tables for the API error codes in include/vireo/errors.h, and
 * the If-Match refusal every service words the same way. */
#include "vireo/errors.h"

#include <errno.h>
#include <string.h>

#include "util/util.h"

static const struct {
    const char *name;
    int http;
} error_table[] = {
    [VO_ERR_INVALID_ARGUMENT] = { "invalid-argument", 400 },
    [VO_ERR_NOT_FOUND] = { "not-found", 404 },
    [VO_ERR_METHOD_NOT_ALLOWED] = { "method-not-allowed", 405 },
    [VO_ERR_ALREADY_EXISTS] = { "already-exists", 409 },
    [VO_ERR_INVALID_STATE] = { "invalid-state", 409 },
    [VO_ERR_CONFLICT] = { "conflict", 409 },
    [VO_ERR_PAYLOAD_TOO_LARGE] = { "payload-too-large", 413 },
    [VO_ERR_UNSUPPORTED_MEDIA] = { "unsupported-media-type", 415 },
    [VO_ERR_TOO_MANY_REQUESTS] = { "too-many-requests", 429 },
    [VO_ERR_INTERNAL] = { "internal", 500 },
    [VO_ERR_UNAVAILABLE] = { "unavailable", 503 },
    [VO_ERR_INSUFFICIENT_STORAGE] = { "insufficient-storage", 507 },
    [VO_ERR_PRECONDITION_FAILED] = { "precondition-failed", 412 },
    [VO_ERR_REVISION_COMPACTED] = { "revision-compacted", 410 },
    [VO_ERR_UNAUTHENTICATED] = { "unauthenticated", 401 },
    [VO_ERR_BAD_GATEWAY] = { "bad-gateway", 502 },
    [VO_ERR_LOOP_DETECTED] = { "loop-detected", 508 },
    [VO_ERR_PERMISSION_DENIED] = { "permission-denied", 403 },
    [VO_ERR_FENCED] = { "fenced", 409 },
    [VO_ERR_QUOTA_EXCEEDED] = { "quota-exceeded", 409 },
    [VO_ERR_MIGRATION_GONE] = { "migration-gone", 410 },
};
_Static_assert(ELEMENTSOF(error_table) == _VO_ERR_MAX, "error_table out of date");

int vo_if_match_check(int64_t expected, int64_t rev, const char *what, char **ret_error)
{
    if (expected <= 0 || expected == rev)
        return 0;
    return vo_error_set(ret_error, -VO_EIFMATCH, "%s changed: it is at revision %lld, not %lld "
                        "(If-Match); nothing was done: read it again", what, (long long)rev,
                        (long long)expected);
}

/* store_message in place of strerror(errnum) in message. */
static char *store_words(int errnum, const char *message, const char *store_message)
{
    const char *generic = strerror(errnum);
    if (!message)
        return vo_strdup(store_message ? store_message : generic);
    const char *at = store_message ? strstr(message, generic) : NULL;
    if (!at)
        return vo_strdup(message);
    return vo_asprintf("%.*s%s%s", (int)(at - message), message, store_message,
                       at + strlen(generic));
}

char *vo_error_unavailable_message(const char *message, const char *store_message)
{
    return store_words(EAGAIN, message, store_message);
}

char *vo_error_unknown_message(const char *message, const char *store_message)
{
    return store_words(ETIMEDOUT, message, store_message);
}

const char *vo_error_code_name(VoErrorCode code)
{
    return code < _VO_ERR_MAX ? error_table[code].name : "internal";
}

int vo_error_http_status(VoErrorCode code)
{
    return code < _VO_ERR_MAX ? error_table[code].http : 500;
}

VoErrorCode vo_error_from_errno(int negative_errno)
{
    switch (-negative_errno) {
    case EINVAL: case ERANGE: case EDOM: case EPERM: return VO_ERR_INVALID_ARGUMENT;
    case ENOENT: return VO_ERR_NOT_FOUND;
    case EEXIST: return VO_ERR_ALREADY_EXISTS;
    case EBUSY: case EALREADY: case ENOTCONN: return VO_ERR_INVALID_STATE;
    case ESTALE: return VO_ERR_CONFLICT;
    case VO_EIFMATCH: return VO_ERR_PRECONDITION_FAILED;
    case VO_EFENCED: return VO_ERR_FENCED;
    case VO_EQUOTA: return VO_ERR_QUOTA_EXCEEDED;
    case E2BIG: case EMSGSIZE: return VO_ERR_PAYLOAD_TOO_LARGE;
    case ENOTSUP: case ENODEV: case ENETDOWN: return VO_ERR_UNAVAILABLE;
    case EAGAIN: return VO_ERR_UNAVAILABLE; /* busy (the store, say): try again */
    /* The store got no answer to a write (VO_STORE_EUNKNOWN): read first. */
    case ETIMEDOUT: return VO_ERR_UNAVAILABLE;
    case ENOSPC: case EDQUOT: return VO_ERR_INSUFFICIENT_STORAGE;
    case EIDRM: return VO_ERR_MIGRATION_GONE; /* a migration's guest ended (migrate.h) */
    case EUSERS: return VO_ERR_TOO_MANY_REQUESTS; /* the task queue is full (jobs/tasks.h) */
    default: return VO_ERR_INTERNAL;
    }
}
