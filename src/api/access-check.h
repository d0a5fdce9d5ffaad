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
