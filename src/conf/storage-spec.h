/* storage-spec.h: what a client asks for when it creates a pool or a volume
 * (the POST bodies of /v1/pools and /v1/pools/NAME/volumes): strict JSON
 * parsing and every check that needs no I/O (names, types, formats, sizes,
 * absolute paths). The daemon checks the rest (the directory exists, the name
 * is free, the file is readable). No I/O here. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The largest volume vireo makes. */
#define VO_VOLUME_MAX_BYTES (64ULL << 40)

typedef struct {
    char *name;
    char *type; /* "dir" (default), "backup", "iscsi" or "rbd" */
    char *path; /* absolute (dir and backup pools) */
    bool shared; /* a directory every host of a cluster mounts at path */
    /* type "iscsi" (no path): the target (docs/storage-san.md) */
    char *portal, *target, *chap_user, *chap_secret;
    /* rbd pools (Ceph RBD, conf/rbd-spec.h): all four, and no path */
    char *monitors; /* "IP[:PORT][,...]" */
    char *rbd_pool; /* the Ceph pool ("pool" in the request) */
    char *user;     /* cephx id, without "client." */
    char *keyring;  /* absolute path of a keyring file with its key */
} VoPoolSpec;

typedef struct {
    char *name;
    char *format;        /* "qcow2" (default) or "raw" */
    uint64_t size_bytes; /* 1..VO_VOLUME_MAX_BYTES for a new empty volume, */
    char *import_path;   /* or an absolute path of a file to convert */
    char *content;       /* "iso" (an ISO 9660 image kept raw, as it is) or NULL: detected */
    char *project;       /* the project it is made in, or NULL: none */
} VoVolumeSpec;

void vo_pool_spec_clear(VoPoolSpec *s);
void vo_volume_spec_clear(VoVolumeSpec *s);

/* Parse and check a request body. Unknown keys and wrong types are refused.
 * 0 and *ret filled (clear it after), or -EINVAL with *ret_error (malloc'd)
 * naming what to fix and *ret left empty. A NULL doc is an empty body. */
int vo_pool_spec_from_json(json_t *doc, VoPoolSpec *ret, char **ret_error);
int vo_volume_spec_from_json(json_t *doc, VoVolumeSpec *ret, char **ret_error);
