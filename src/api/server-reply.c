/* server-reply.c: the replies and request helpers of vireod's HTTP server
 * (http.h; part of server.c) that every handler uses: JSON answers, the
 * error envelope from a code or an errno, a task's or a document's answer,
 * the request's JSON unpacked, its index parameters, If-Match and the
 * precondition refused, and who is asking (TLS, a member). */
#include "api/http.h"
#include "api/server-internal.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>

#include "api/peer-member.h"
#include "util/util.h"

void vo_reply_json(VoReply *rep, int status, json_t *json)
{
    json_decref(rep->json);
    rep->status = status;
    rep->json = json;
}

void vo_reply_error(VoReply *rep, VoErrorCode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vo_vasprintf(fmt, ap);
    va_end(ap);
    vo_reply_json(rep, vo_error_http_status(code),
                  json_pack("{s:{s:s, s:s}}", "error", "code", vo_error_code_name(code),
                            "message", msg));
    free(msg);
}

void vo_reply_errno(VoReply *rep, int negative_errno, const char *message)
{
    /* -EAGAIN comes from the store: its backend says what it means (SQLite
     * "database is busy", etcd "cluster has no quorum"). */
    _cleanup_free_ char *unavailable = negative_errno == -EAGAIN
        ? vo_error_unavailable_message(message, rep->unavailable_message)
        : negative_errno == -ETIMEDOUT && rep->unknown_message
        ? vo_error_unknown_message(message, rep->unknown_message) : NULL;
    if (unavailable)
        message = unavailable;
    vo_reply_error(rep, vo_error_from_errno(negative_errno), "%s",
                   message ? message : strerror(-negative_errno));
    /* Busy (the store held by another process, say): 503, and when to ask
     * again. VO_STORE_ECOMPACTED (-ERANGE) surfaces only from watches, which
     * GET /v1/events answers itself (410, or an error event). */
    if (negative_errno == -EAGAIN && !rep->header_name) {
        rep->header_name = "Retry-After";
        snprintf(rep->header_value, sizeof(rep->header_value), "1");
    }
}

/* Unpacks the body strictly; fills rep with 400 naming the problem. */
bool vo_request_unpack(VoRequest *req, VoReply *rep, const char *fmt, ...)
{
    if (!req->body)
        req->body = json_object();
    json_error_t jerr;
    va_list ap;
    va_start(ap, fmt);
    int r = json_vunpack_ex(req->body, &jerr, JSON_STRICT, fmt, ap);
    va_end(ap);
    if (r < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "invalid request body: %s", jerr.text);
        return false;
    }
    return true;
}

void vo_reply_task(VoReply *rep, int r, json_t *task, char *error)
{
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 202, json_pack("{s:o}", "task", task));
    free(error);
}

void vo_reply_found(VoReply *rep, int r, json_t *doc, char *error)
{
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, doc);
    free(error);
}

bool vo_request_index(VoRequest *req, VoReply *rep, size_t i, const char *what, size_t *ret)
{
    const char *text = req->params[i];
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (!text[0] || *end || text[0] == '-' || errno || v > 1000) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s: '%s' is not an index (0, 1, ...)",
                       what, text);
        return false;
    }
    *ret = (size_t)v;
    return true;
}

/* The view an ETag of an answer cut to its caller names after its
 * revision (VoReply's etag_view): "-" and 16 hex digits. No write takes
 * one: only a read of a pool gives a view, to a caller with roles on
 * projects only (project-gate.c), and such a caller writes no pool; so a
 * view in a write's If-Match is one no read gave its caller (412). */
static bool etag_view_suffix(const char *s)
{
    if (*s++ != '-' || strlen(s) != 16)
        return false;
    return strspn(s, "0123456789abcdef") == 16;
}

bool vo_request_if_match(VoRequest *req, VoReply *rep, int64_t *ret_rev)
{
    *ret_rev = 0;
    const char *v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "If-Match");
    if (!v)
        return true;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!strcmp(v, "*"))
        return true;
    if (!strncmp(v, "W/", 2))
        v += 2;
    char text[48]; /* a revision, and the view of an answer cut to its caller */
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    char *end = NULL;
    if (n > 0 && n < sizeof(text)) {
        memcpy(text, v, n);
        text[n] = '\0';
        errno = 0;
        long long rev = strtoll(text, &end, 10);
        bool number = text[0] != '-' && text[0] != '+' && !errno && rev > 0;
        if (number && etag_view_suffix(end)) {
            vo_reply_error(rep, VO_ERR_PRECONDITION_FAILED,
                           "If-Match: view %s is not one a read of this document gave you "
                           "(a write takes the revision alone: \"%lld\")", end + 1, rev);
            return false;
        }
        if (number && !*end) {
            *ret_rev = rev;
            /* Tasks the handler queues carry it, to compare where they act. */
            vo_tasks_set_if_match(rev);
            return true;
        }
    }
    vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                   "If-Match: expected one revision as an ETag gives it (\"42\")");
    return false;
}

bool vo_reply_precondition(VoReply *rep, int64_t expected, int64_t current, const char *what)
{
    if (expected <= 0 || expected == current)
        return true;
    vo_reply_error(rep, VO_ERR_PRECONDITION_FAILED,
                   "%s changed: it is at revision %lld, not %lld (If-Match); read it again",
                   what, (long long)current, (long long)expected);
    return false;
}

bool vo_request_over_tls(VoRequest *req)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    return info && info->tls_session;
}

bool vo_request_from_member(VoRequest *req, VoReply *rep, const char *instead)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!info || !info->tls_session) {
        vo_reply_error(rep, VO_ERR_UNAUTHENTICATED, "%s is for the hosts of the cluster only, "
                       "over their mutual-TLS listener%s%s", req->path, instead ? "; use " : "",
                       instead ? instead : "");
        return false;
    }
    unsigned n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(info->tls_session, &n);
    if (chain && n > 0 && vo_peer_cert_is_member(req->d->cluster_store, &chain[0],
                                                 GNUTLS_X509_FMT_DER))
        return true;
    vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "%s is for the hosts of the cluster only: "
                   "the client certificate names no member of the cluster", req->path);
    return false;
}

bool vo_request_query_bool(VoRequest *req, const char *key)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
    return v && (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"));
}
