/* migrate-api.c: live migration routes. POST /v1/vms/{vm}/migrate queues
 * the source's migration task (any door forwards it to the VM's host);
 * /v1/migrations/incoming/... are the destination's peer routes, which
 * only another host of the cluster calls (over the mutual-TLS listener;
 * refused on the Unix socket). See daemon/migrate.h. */
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>

#include "api/handlers.h"
#include "daemon/maintenance.h"
#include "daemon/migrate.h"
#include "util/util.h"

void vo_api_vm_migrate(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    if (!vm)
        return;
    VoMigrateArgs args;
    char *error = NULL;
    int r = vo_migrate_args_parse(req->body, &args, &error);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        free(error);
        return;
    }
    json_t *task = NULL;
    r = vo_vm_migrate(req->d, vm, &args, &task, &error);
    vo_reply_task(rep, r, task, error);
}

typedef struct {
    gnutls_x509_crt_t crt;
    bool found;
} MemberMatch;

/* A member document whose name or address the certificate is for. */
static int match_member(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)key;
    (void)rev;
    MemberMatch *m = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *name = json_string_value(json_object_get(doc, "name"));
    const char *address = json_string_value(json_object_get(doc, "address"));
    if ((name && gnutls_x509_crt_check_hostname(m->crt, name)) ||
        (address && gnutls_x509_crt_check_hostname(m->crt, address)))
        m->found = true;
    json_decref(doc);
    return m->found ? 1 : 0;
}

/* Whether the client certificate of the session is a cluster host's: its
 * CN or SAN names a member of cluster/members/ (by name or address). The
 * listener already checked the CA signed it. */
static bool cert_of_member(VoDaemon *d, gnutls_session_t session)
{
    unsigned n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(session, &n);
    if (!chain || n == 0 || !d->cluster_store)
        return false;
    MemberMatch m = { 0 };
    if (gnutls_x509_crt_init(&m.crt) < 0)
        return false;
    if (gnutls_x509_crt_import(m.crt, &chain[0], GNUTLS_X509_FMT_DER) >= 0)
        (void)vo_store_list(d->cluster_store, "cluster/members/", match_member, &m);
    gnutls_x509_crt_deinit(m.crt);
    return m.found;
}

/* Peer routes answer only a cluster host: a TLS client certificate the
 * cluster CA signed (the listener checks it before any handler runs) for
 * a member of the cluster (its name or address). */
static bool from_peer(VoRequest *req, VoReply *rep)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (info && info->tls_session && cert_of_member(req->d, info->tls_session))
        return true;
    if (info && info->tls_session) {
        vo_reply_error(rep, VO_ERR_UNAUTHENTICATED, "this route is for the hosts of the "
                       "cluster only: the client certificate names no member of the cluster");
        return false;
    }
    vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "this route is for the hosts of the cluster "
                   "only (their mutual-TLS listener); use POST /v1/vms/{vm}/migrate");
    return false;
}

void vo_api_migration_prepare(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    json_t *ret = NULL;
    char *error = NULL;
    int r = vo_migration_prepare(req->d, req->body, &ret, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 201, ret);
    free(error);
}

void vo_api_migration_digest(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    json_t *ret = NULL;
    char *error = NULL;
    int r = vo_migration_digest(req->d, req->params[0], &ret, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, ret);
    free(error);
}

void vo_api_migration_commit(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    char *error = NULL;
    int r = vo_migration_commit(req->d, req->params[0], req->body, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_pack("{s:s}", "state", "committed"));
    free(error);
}

void vo_api_migration_abort(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    char *error = NULL;
    int r = vo_migration_abort(req->d, req->params[0], &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_pack("{s:s}", "state", "aborted"));
    free(error);
}

void vo_api_migration_alive(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    char *error = NULL;
    int r = vo_migration_alive(req->d, req->params[0], &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_pack("{s:s}", "state", "waiting"));
    free(error);
}

/* A stopped VM moved here by its host's evacuation (daemon/maintenance.h). */
void vo_api_migration_moved(VoRequest *req, VoReply *rep)
{
    if (!from_peer(req, rep))
        return;
    char *error = NULL;
    int r = vo_host_adopt_moved(req->d, req->body, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_pack("{s:s}", "state", "adopted"));
    free(error);
}
