/* etag.c: ETag for documents the store keeps under one key (pools, volumes,
 * networks, snapshots, images, backups, operations): the document's store
 * revision. If-Match
 * is parsed by vo_request_if_match (server-reply.c) and passed down: the daemon
 * compares it under the object's lock beside the write (or the task does,
 * before it changes anything). vo_api_if_match_key is only an early answer
 * for work queued as a task (a volume delete, a snapshot revert or delete, a
 * backup delete, restore or verify),
 * so a stale request gets its 412 at once rather than as the task's error,
 * and for a clone or upload, which read the volume rather than write it. */
#include "api/handlers.h"
#include "util/util.h"

int64_t vo_api_key_rev(VoDaemon *d, const char *key)
{
    char *value = NULL;
    int64_t rev = 0;
    if (vo_store_get(d->store, key, &value, &rev) < 0)
        return 0;
    free(value);
    return rev;
}

bool vo_api_if_match_key(VoRequest *req, VoReply *rep, const char *key, const char *what)
{
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return false;
    if (!want)
        return true;
    int64_t rev = vo_api_key_rev(req->d, key);
    if (!rev) /* missing: the handler answers 404 */
        return true;
    return vo_reply_precondition(rep, want, rev, what);
}
