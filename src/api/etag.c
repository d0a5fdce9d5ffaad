/* etag.c: ETag and If-Match for documents the store keeps under one key
 * (pools, volumes, networks, snapshots, operations): the ETag is the
 * document's store revision. These checks read the revision and compare
 * before the handler acts: a pre-check, not part of the write (VMs compare
 * under the VM's lock instead, see vms-api.c). */
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
