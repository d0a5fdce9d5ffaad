/* migrate-peer.c: a live migration's calls to its peer vireod (the
 * destination's migration routes, migrate-incoming.c) and the TLS of the
 * QEMU streams between the hosts (migrate.h). Shared by the source's task
 * (migrate.c), the switch (migrate-switch.c), post-copy's recovery
 * (migrate-resume.c) and the settling after a restart (migrate-recover.c). */
#include "daemon/migrate.h"
#include "daemon/migrate-internal.h"

#include <string.h>

#include "cluster/peer-client.h"
#include "util/util.h"

/* METHOD url+path with a JSON body; 0 with the peer's 2xx answer in *ret
 * (may be NULL), or -errno with *ret_error (its error message, or why it
 * could not be reached). 410 (migration-gone) is -EIDRM. */
int vo_migrate_peer_call_timeout(VoDaemon *d, const char *url, const char *method,
                                 const char *path, json_t *body, int timeout_ms, json_t **ret,
                                 char **ret_error)
{
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    const char *headers[] = { "Content-Type: application/json", NULL };
    VoPeerResponse resp = { 0 };
    int r = vo_peer_request(&d->peer_tls, url, method, path, headers, text,
                            text ? strlen(text) : 0, timeout_ms, &resp);
    if (r < 0) {
        vo_error_set(ret_error, r, "%s", resp.error ? resp.error : strerror(-r));
        vo_peer_response_clear(&resp);
        return r;
    }
    json_t *doc = resp.body ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    if (resp.status < 200 || resp.status > 299) {
        const char *msg = json_string_value(
            json_object_get(json_object_get(doc, "error"), "message"));
        r = resp.status == 409 ? -EBUSY : resp.status == 404 ? -ENOENT
            : resp.status == 410 ? -EIDRM : resp.status < 500 ? -EINVAL : -EIO;
        vo_error_set(ret_error, r, "%s (HTTP %d)", msg ? msg : "no reason given", resp.status);
        json_decref(doc);
    } else if (ret) {
        *ret = doc;
    } else {
        json_decref(doc);
    }
    vo_peer_response_clear(&resp);
    return r;
}

int vo_migrate_peer_call(VoDaemon *d, const char *url, const char *method, const char *path,
                         json_t *body, json_t **ret, char **ret_error)
{
    return vo_migrate_peer_call_timeout(d, url, method, path, body, PEER_TIMEOUT_MS, ret,
                                        ret_error);
}

const VoHvMigrationTls *vo_migration_tls(VoDaemon *d, VoHvMigrationTls *buf)
{
    if (!d->cluster || !d->peer_tls.cert_file)
        return NULL;
    /* No host name: the destination's certificate must carry the address
     * of the URI it listens on (a host certificate carries its address). */
    *buf = (VoHvMigrationTls){ .ca_cert = d->peer_tls.ca_file, .cert = d->peer_tls.cert_file,
                               .key = d->peer_tls.key_file };
    return buf;
}
