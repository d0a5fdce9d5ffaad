/* access-check.c: every request on the HTTPS listener for users is
 * authenticated (API token or browser session) and its role checked
 * against the route before any handler, or any of its body, is reached. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "api/access-check.h"
#include "util/util.h"

static void client_address(struct MHD_Connection *conn, char *out, size_t size)
{
    snprintf(out, size, "unknown");
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)size);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)size);
}

/* Whether Origin is https://HOST, HOST the request's Host header. */
static bool same_origin(const char *origin, const char *host)
{
    return host && host[0] && !strncasecmp(origin, "https://", 8) &&
           !strcasecmp(origin + 8, host);
}

static bool is_read(const char *method)
{
    return !strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "OPTIONS");
}

bool vo_access_check(VoDaemon *d, struct MHD_Connection *conn, const char *method,
                     const char *pattern, VoPrincipal *p, VoReply *rep)
{
    memset(p, 0, sizeof(*p));
    client_address(conn, p->address, sizeof(p->address));
    if (vo_access_route_public(method, pattern))
        return true; /* the login handler counts its own failures */
    char addr_key[80];
    /* Bad tokens count apart from failed logins: a password guesser does
     * not lock out the scripts that share its address. */
    snprintf(addr_key, sizeof(addr_key), "token-addr:%s", p->address);
    const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *cookies = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cookie");
    const char *bearer = vo_access_bearer(authz);
    char sid[VO_ACCESS_SECRET_LEN + 2];
    bool has_session = !bearer && cookies &&
        vo_access_cookie_get(cookies, VO_ACCESS_SESSION_COOKIE, sid, sizeof(sid)) == 0;
    if (bearer) {
        int64_t now = vo_now_ms(), wait = vo_backoff_locked(addr_key, now);
        if (wait > 0) {
            vo_reply_error(rep, VO_ERR_TOO_MANY_REQUESTS, "too many bad tokens from this "
                           "address; try again in %lld s", (long long)((wait + 999) / 1000));
            rep->header_name = "Retry-After";
            snprintf(rep->header_value, sizeof(rep->header_value), "%lld",
                     (long long)((wait + 999) / 1000));
            return false;
        }
        int r = vo_access_token_check(d, bearer, p);
        if (r == -EINVAL || r == -EACCES) {
            vo_backoff_failed(addr_key, now);
            vo_reply_error(rep, VO_ERR_UNAUTHENTICATED, r == -EINVAL
                           ? "Authorization: Bearer: not a vireo API token (vireo_ID_SECRET)"
                           : "Authorization: Bearer: the token is unknown, revoked or expired");
            return false;
        }
        if (r < 0) {
            vo_reply_errno(rep, r, "cannot check the token");
            return false;
        }
        /* Failures in a row: a good token clears them (else a script's
         * occasional expired token added up to 15 min lock-outs of every
         * token from its address). */
        vo_backoff_succeeded(addr_key);
    } else if (has_session) {
        VoSession s;
        if (vo_session_find(sid, vo_now_ms(), &s) < 0) {
            vo_reply_error(rep, VO_ERR_UNAUTHENTICATED, "the session has ended (expired, logged "
                           "out, or vireod restarted); log in again (POST /v1/login)");
            return false;
        }
        VoRole now_role;
        int r = vo_access_session_user(d, s.user, s.created_wall_ms, &now_role);
        if (r == -ENOENT || r == -ESTALE) {
            vo_session_delete(sid);
            vo_reply_error(rep, VO_ERR_UNAUTHENTICATED, "the session has ended (%s); log in "
                           "again (POST /v1/login)", r == -ENOENT ? "the user was deleted"
                                                                 : "the password was changed");
            return false;
        }
        if (r < 0) {
            vo_reply_errno(rep, r, "cannot check the session's user");
            return false;
        }
        p->kind = VO_PRINCIPAL_USER;
        p->role = now_role < s.role ? now_role : s.role;
        if ((r = vo_access_user_grants(d, s.user, VO_ROLE_ADMIN, p)) < 0) {
            vo_reply_errno(rep, r, "cannot read the user's roles on projects");
            return false;
        }
        snprintf(p->name, sizeof(p->name), "%s", s.user);
        snprintf(p->session, sizeof(p->session), "%.43s", sid);
        /* A browser names the page that made the request: a session is
         * used only from vireod's own origin (a WebSocket to a console
         * carries no CSRF token; SameSite does not tell ports apart). */
        const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
        if (origin && !same_origin(origin, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                                       "Host"))) {
            vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "a session is used only from "
                           "vireod's own pages: Origin '%.100s' is not this server's", origin);
            return false;
        }
        const char *csrf = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                       VO_ACCESS_CSRF_HEADER);
        if (!is_read(method) && (!csrf || !vo_access_equal(csrf, s.csrf))) {
            vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "a change with a session cookie must "
                           "carry the session's CSRF token (header %s, from POST /v1/login)",
                           VO_ACCESS_CSRF_HEADER);
            return false;
        }
    } else {
        vo_reply_error(rep, VO_ERR_UNAUTHENTICATED, "%s", authz
                       ? "Authorization: only Bearer tokens are accepted (vireo token create)"
                       : "credentials required: Authorization: Bearer TOKEN (vireo token "
                         "create), or a session (POST /v1/login)");
        return false;
    }
    return vo_access_authorize(method, pattern, p, rep);
}

bool vo_access_authorize(const char *method, const char *pattern, VoPrincipal *p, VoReply *rep)
{
    VoRole needed = pattern ? vo_access_role_needed(method, pattern) : VO_ROLE_VIEWER;
    p->needed = needed;
    /* A role on projects only: the route's object decides (project-gate.c). */
    if (p->role < needed && p->n_grants && vo_access_route_scoped(method, pattern) &&
        vo_principal_role_max(p) >= needed)
        return true;
    if (p->role < needed) {
        char who[128];
        vo_principal_describe(p, who, sizeof(who));
        /* Its roles on projects too, when it has some ("; operator on
         * project 'team-a'"). */
        char grants[256] = "";
        for (size_t i = 0, n = 0; i < p->n_grants && n < sizeof(grants); i++)
            n += (size_t)snprintf(grants + n, sizeof(grants) - n, "%s %s on project '%s'",
                                  i ? "," : ";", vo_role_name(p->grants[i].role),
                                  p->grants[i].project);
        vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "%s %s needs the %s role; %s has %s%s",
                       method, pattern, vo_role_name(needed), who, vo_role_name(p->role),
                       grants);
        return false;
    }
    return true;
}

bool vo_access_forwarded(struct MHD_Connection *conn, bool from_peer, VoPrincipal *p,
                         bool *ret_named, VoReply *rep)
{
    *ret_named = false;
    const char *text = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, VO_PRINCIPAL_HEADER);
    if (!text)
        return true;
    if (!from_peer) {
        /* A user's request, or the Unix socket's: nobody names another
         * principal but a host of the cluster. */
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s: only a host of the cluster (its "
                       "certificate) may name the principal of a request; remove the header",
                       VO_PRINCIPAL_HEADER);
        return false;
    }
    char *why = NULL;
    VoPrincipal named;
    if (vo_principal_header_parse(text, &named, &why) < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s: %s", VO_PRINCIPAL_HEADER,
                       why ? why : "not valid");
        free(why);
        return false;
    }
    *p = named;
    *ret_named = true;
    return true;
}
