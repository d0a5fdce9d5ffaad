/* cluster-api.c: /v1/cluster...: init, tokens, join (on the joining host),
 * join-request and ca (a member's side of a join, the two routes the TLS
 * listener serves without a client certificate), show, leave; and
 * DELETE /v1/hosts/{host}. */
#include <string.h>

#include "api/handlers.h"
#include "cluster/join-token.h"
#include "daemon/cluster.h"
#include "util/util.h"

/* A cluster change's error: token problems are 401, an unreachable member
 * 502, hosts whose versions cannot join 409, the rest by errno. */
static void reply_cluster_error(VoReply *rep, int r, const char *error)
{
    if (r == -EACCES || r == -EKEYREJECTED)
        vo_reply_error(rep, VO_ERR_UNAUTHENTICATED, "%s", error ? error : "not allowed");
    else if (r == -EKEYEXPIRED)
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s", error ? error : "token expired");
    else if (r == -EHOSTUNREACH || r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EPROTO)
        vo_reply_error(rep, VO_ERR_BAD_GATEWAY, "%s", error ? error : strerror(-r));
    else if (r == -EAGAIN)
        vo_reply_error(rep, VO_ERR_UNAVAILABLE, "%s", error ? error : "cluster has no quorum");
    else if (r == -EPROTONOSUPPORT) /* versions that cannot join: join-protocol.h */
        vo_reply_error(rep, VO_ERR_INVALID_STATE, "%s", error ? error : "upgrade vireo first");
    else
        vo_reply_errno(rep, r, error);
}

void vo_api_cluster_init(VoRequest *req, VoReply *rep)
{
    const char *address = NULL;
    if (!vo_request_unpack(req, rep, "{s?s}", "address", &address))
        return;
    json_t *answer = NULL;
    _cleanup_free_ char *error = NULL;
    int r = vo_cluster_init(req->d, address, &answer, &error);
    if (r < 0) {
        reply_cluster_error(rep, r, error);
        return;
    }
    vo_reply_json(rep, 200, answer);
    vo_cluster_reexec_after_reply(req->d);
    rep->quit_after = true;
}

void vo_api_cluster_token(VoRequest *req, VoReply *rep)
{
    json_int_t ttl = VO_JOIN_TOKEN_DEFAULT_TTL_S;
    if (!vo_request_unpack(req, rep, "{s?I}", "ttl_s", &ttl))
        return;
    VoDaemon *d = req->d;
    if (!d->cluster) {
        vo_reply_error(rep, VO_ERR_INVALID_STATE,
                       "this host is not in a cluster: make one with 'vireo cluster init'");
        return;
    }
    if (ttl < 60 || ttl > 7 * 24 * 3600) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "ttl_s %lld is out of range: a token lives 1 minute to 7 days",
                       (long long)ttl);
        return;
    }
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL), *error = NULL;
    json_t *answer = NULL;
    int r = vo_cluster_token(d, d->cluster_store, d->cluster->cluster_id, dir,
                             d->cluster->address, d->cluster->api_port, ttl, &answer, &error);
    if (r < 0)
        reply_cluster_error(rep, r, error);
    else
        vo_reply_json(rep, 201, answer);
}

void vo_api_cluster_join(VoRequest *req, VoReply *rep)
{
    const char *member = NULL, *token = NULL, *address = NULL;
    if (!vo_request_unpack(req, rep, "{s?s, s:s, s?s}", "member", &member, "token", &token,
                           "address", &address))
        return;
    json_t *answer = NULL;
    _cleanup_free_ char *error = NULL;
    int r = vo_cluster_join(req->d, member, token, address, &answer, &error);
    if (r < 0) {
        reply_cluster_error(rep, r, error);
        return;
    }
    vo_reply_json(rep, 200, answer);
    vo_cluster_reexec_after_reply(req->d);
    rep->quit_after = true;
}

void vo_api_cluster_join_request(VoRequest *req, VoReply *rep)
{
    if (!req->body) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "a join request needs a JSON body");
        return;
    }
    json_t *answer = NULL;
    _cleanup_free_ char *error = NULL;
    int r = vo_cluster_admit(req->d, req->body, &answer, &error);
    if (r < 0)
        reply_cluster_error(rep, r, error);
    else
        vo_reply_json(rep, 200, answer);
}

void vo_api_cluster_ca(VoRequest *req, VoReply *rep)
{
    json_t *answer = NULL;
    int r = vo_cluster_ca(req->d, &answer);
    if (r == -ENOTCONN)
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "this host is not in a cluster");
    else if (r < 0)
        vo_reply_errno(rep, r, "cannot read the cluster CA");
    else
        vo_reply_json(rep, 200, answer);
}

void vo_api_cluster_show(VoRequest *req, VoReply *rep)
{
    int r = 0;
    json_t *doc = vo_cluster_show(req->d, &r);
    if (!doc)
        vo_reply_errno(rep, r, "cannot read the cluster");
    else
        vo_reply_json(rep, 200, doc);
}

void vo_api_cluster_leave(VoRequest *req, VoReply *rep)
{
    if (!vo_request_unpack(req, rep, "{}"))
        return;
    _cleanup_free_ char *error = NULL;
    json_t *doc = NULL;
    int r = vo_cluster_leave(req->d, &doc, &error);
    if (r < 0) {
        reply_cluster_error(rep, r, error);
        return;
    }
    vo_reply_json(rep, 200, doc);
    vo_cluster_reexec_after_reply(req->d);
    rep->quit_after = true;
}

void vo_api_host_remove(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *error = NULL;
    int r = vo_cluster_host_remove(req->d, req->params[0], &error);
    if (r < 0)
        reply_cluster_error(rep, r, error);
    else {
        vo_reply_json(rep, 200, json_pack("{s:s}", "removed", req->params[0]));
    }
}
