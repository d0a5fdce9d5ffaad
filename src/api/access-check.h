/* access-check.h: the check of every request on the HTTPS listener for
 * users (access-check.c), and the handlers of access-api.c's helpers. */
#pragma once

#include "api/access.h"
#include "api/http.h"

/* Authenticates the request from its headers (Authorization: Bearer, or
 * the session cookie with X-CSRF-Token on a change) and checks that its
 * principal's role covers the route (pattern NULL: a route that does not
 * exist, which any authenticated client may be told). True with *p filled;
 * false with rep filled: 401 unauthenticated, 403 permission-denied (the
 * role needed named; a session's change without its CSRF token), 429 with
 * Retry-After (this address failed too often). */
bool vo_access_check(VoDaemon *d, struct MHD_Connection *conn, const char *method,
                     const char *pattern, VoPrincipal *p, VoReply *rep);

/* The role check of vo_access_check alone, for a principal authenticated
 * already (a user's request forwarded by a peer, X-Vireo-Principal): sets
 * p->needed; true when p's role (or, on a route a project role reaches,
 * its highest project role: api/project-gate.c decides) covers the route,
 * else false with rep filled (403 naming the role needed and p's). */
bool vo_access_authorize(const char *method, const char *pattern, VoPrincipal *p, VoReply *rep);

/* The principal a peer names for a request it forwards (X-Vireo-Principal,
 * access.h). No header: true, *ret_named false (a peer's own request, or
 * the listener's usual principal). With it: believed only when from_peer
 * (the request came with a client certificate of the cluster CA): true,
 * *p the named principal and *ret_named; else, or when it does not parse,
 * false with rep filled (400). The caller then checks the route with
 * vo_access_authorize, as for a local request. */
bool vo_access_forwarded(struct MHD_Connection *conn, bool from_peer, VoPrincipal *p,
                         bool *ret_named, VoReply *rep);

/* Users and tokens in the store (access-api.c). */
int vo_access_user_role(VoDaemon *d, const char *name, VoRole *ret_role, char **ret_hash);
/* Whether a session's user still exists with the password it logged in
 * with (a user deleted or a password changed on another host of the
 * cluster ends the sessions here too): 0 with *ret_role (the user's role
 * now), -ENOENT (no such user), -ESTALE (password changed since
 * created_wall_ms), or the store's error. */
int vo_access_session_user(VoDaemon *d, const char *name, int64_t created_wall_ms,
                           VoRole *ret_role);
/* The user's roles on projects into p->grants, each at most cap (a
 * token's role); 0, -ENOENT, or the store's error. */
int vo_access_user_grants(VoDaemon *d, const char *name, VoRole cap, VoPrincipal *p);
/* Removes every user's role on project (a deleted project: a new one of
 * the same name must not give the old grantees their roles back); best
 * effort, each user compared at the revision read and retried. */
void vo_access_forget_project(VoDaemon *d, const char *project);
/* 0 with p filled for a valid, unexpired token; -EINVAL (not a token),
 * -EACCES (unknown, revoked, expired or wrong secret), or the store's error. */
int vo_access_token_check(VoDaemon *d, const char *text, VoPrincipal *p);
