/* peer-file.h: one file pulled from another host of the cluster over the
 * peer API (mutual TLS), streamed into an open file and checked against
 * the size and SHA-256 the sender announced. Shared by the image copy on
 * first use (image-copy.c) and the cold move of a stopped VM's volumes
 * (move-incoming.c). */
#pragma once

#include <stdint.h>

#include "daemon/daemon.h"
#include "jobs/tasks.h"

/* Called after each chunk written (len: its bytes). */
typedef void (*VoPeerFileProgress)(uint64_t len, void *userdata);

typedef struct {
    const char *url;       /* the peer's base URL */
    const char *path;      /* the route that streams the file */
    const char *peer_name; /* for messages */
    const char *name;      /* the file, for messages */
    uint64_t size;         /* as announced */
    const char *sha256;    /* as announced (hex) */
    VoTask *task;          /* checked for a cancel between chunks; may be NULL */
    VoPeerFileProgress progress;
    void *userdata;
} VoPeerFile;

/* Streams f into fd (open for writing, empty), then fsyncs it. 0, or
 * -errno with *ret_error: -ECANCELED (the task was cancelled), -EIO (more
 * or fewer bytes than announced, another SHA-256, the peer's error
 * answer), or the transfer's error (peer unreachable, stalled for
 * VO_PEER_FILE_STALL_MS). fd stays open. */
int vo_peer_file_receive(VoDaemon *d, const VoPeerFile *f, int fd, char **ret_error);

/* A transfer that gets no byte for this long has failed. */
#define VO_PEER_FILE_STALL_MS 60000
