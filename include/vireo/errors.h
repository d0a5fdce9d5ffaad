/* errors.h: the machine-readable error codes of the REST API, shared by vireod
 * (which maps internal negative errnos onto them) and the CLI. */
#pragma once

typedef enum {
    VO_ERR_INVALID_ARGUMENT, /* 400: the request is malformed or a value is out of range */
    VO_ERR_NOT_FOUND,        /* 404: no such VM, image, task or route */
    VO_ERR_METHOD_NOT_ALLOWED, /* 405 */
    VO_ERR_ALREADY_EXISTS,   /* 409: the name is taken */
    VO_ERR_INVALID_STATE,    /* 409: not possible in the VM's current state */
    VO_ERR_CONFLICT,         /* 409: concurrent modification */
    VO_ERR_PAYLOAD_TOO_LARGE,  /* 413 */
    VO_ERR_UNSUPPORTED_MEDIA,  /* 415: body is not application/json */
    VO_ERR_TOO_MANY_REQUESTS,  /* 429: too many operations waiting; try again later */
    VO_ERR_INTERNAL,         /* 500 */
    VO_ERR_UNAVAILABLE,      /* 503: a host facility (KVM, QEMU) is missing */
    VO_ERR_INSUFFICIENT_STORAGE, /* 507: the pool has no room for it */
    VO_ERR_PRECONDITION_FAILED, /* 412: If-Match names another revision than the document's */
    VO_ERR_REVISION_COMPACTED,  /* 410: an event stream asked to resume from a revision no longer kept */
    VO_ERR_UNAUTHENTICATED,     /* 401: the TCP listener's client showed no certificate the cluster CA signed */
    VO_ERR_BAD_GATEWAY,         /* 502: the host that owns the object did not answer (peer API) */
    VO_ERR_LOOP_DETECTED,       /* 508: a request forwarded by a peer would be forwarded again */
    VO_ERR_PERMISSION_DENIED,   /* 403: a peer-only route, a certificate of the cluster CA that names no member */
    VO_ERR_FENCED,              /* 409: this host fenced itself (lost its lease): it starts nothing */
    VO_ERR_QUOTA_EXCEEDED,      /* 409: the change would take its project over a quota */
    VO_ERR_MIGRATION_GONE,      /* 410: peer route: the VM here runs a later start, not that migration's guest */
    _VO_ERR_MAX,
} VoErrorCode;

/* The header of a read answered from data that may be stale (a cluster
 * without a quorum): "cluster has no quorum since <RFC 3339 time>". */
#define VO_STALE_HEADER "Vireo-Stale"

/* The errno internal code returns when a write names a revision (If-Match)
 * the document is no longer at: the API's 412 precondition-failed. */
#define VO_EIFMATCH EBADE

/* The errno internal code returns when this host fenced itself (RUN/fenced,
 * docs/ha.md) and a VM start is refused: the API's 409 fenced. */
#define VO_EFENCED ENOLINK

/* The errno internal code returns when a change would take a project over
 * one of its quotas (conf/quota.h): the API's 409 quota-exceeded. */
#define VO_EQUOTA EXFULL

const char *vo_error_code_name(VoErrorCode code);
int vo_error_http_status(VoErrorCode code);
/* Map a negative errno returned by internal code onto an API error. */
VoErrorCode vo_error_from_errno(int negative_errno);
