/* access.h: who may use the HTTPS listener for users, and what they may do
 * (docs/security.md, "Access"). Pure parts, unit-tested: the role table
 * (access-roles.c), password hashing, token and cookie parsing
 * (access-secrets.c), the failure backoff and the browser sessions held in
 * memory (access-guard.c). The daemon's side: users and tokens in the store
 * and the routes (access-api.c), the check of every request (access-check.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Roles, in increasing power: each can do what the ones before it can. */
typedef enum {
    VO_ROLE_NONE = -1,    /* no role on the whole cluster: only its projects' (grants) */
    VO_ROLE_VIEWER = 0,   /* reads only */
    VO_ROLE_OPERATOR = 1, /* VM lifecycle, consoles, snapshots, backups */
    VO_ROLE_ADMIN = 2,    /* everything */
} VoRole;

const char *vo_role_name(VoRole role);
/* "admin", "operator", "viewer" (and "none" for VO_ROLE_NONE): 0, or -EINVAL. */
int vo_role_parse(const char *text, VoRole *ret);

/* The role a request needs, from its method and route pattern (as in
 * routes.def): GET/HEAD a viewer's, VM lifecycle, consoles, snapshots and
 * backups an operator's, everything else (and any route the table does not
 * know) an admin's. */
VoRole vo_access_role_needed(const char *method, const char *pattern);
/* Routes a client calls before it has credentials (POST /v1/login). */
bool vo_access_route_public(const char *method, const char *pattern);

/* Passwords: libsodium's argon2id, salted, as its encoded string.
 * 0, -EINVAL (empty) or -ENOMEM. */
int vo_access_password_hash(const char *password, char **ret_hash);
bool vo_access_password_verify(const char *hash, const char *password);
#define VO_ACCESS_PASSWORD_MIN 8

/* API tokens: "vireo_<id>_<secret>", id 16 hex digits (public: list,
 * revoke, audit), secret 43 characters of base64url (32 random bytes);
 * only the secret's SHA-256 is stored. */
#define VO_ACCESS_TOKEN_ID_LEN 16
#define VO_ACCESS_SECRET_LEN 43
typedef struct {
    char id[VO_ACCESS_TOKEN_ID_LEN + 1];
    char secret[VO_ACCESS_SECRET_LEN + 1];
} VoTokenParts;
/* A new token: its parts and *ret_text (the whole, shown once). */
int vo_access_token_new(VoTokenParts *ret, char **ret_text);
/* 0, or -EINVAL when text is not of that form. */
int vo_access_token_parse(const char *text, VoTokenParts *ret);
/* A random 32-byte secret in base64url (sessions, CSRF tokens). */
void vo_access_random_secret(char out[VO_ACCESS_SECRET_LEN + 1]);
/* SHA-256 of secret as 64 hex digits. */
void vo_access_secret_digest(const char *secret, char out[65]);
/* Compares two NUL-terminated strings in time independent of their content. */
bool vo_access_equal(const char *a, const char *b);

/* "Bearer TOKEN" (scheme case-insensitive): a pointer to TOKEN, or NULL. */
const char *vo_access_bearer(const char *authorization);
/* The value of cookie name in a Cookie header into out: 0, -ENOENT, or
 * -EINVAL (too long for out). */
int vo_access_cookie_get(const char *header, const char *name, char *out, size_t size);
#define VO_ACCESS_SESSION_COOKIE "vireo_session"
#define VO_ACCESS_CSRF_HEADER "X-CSRF-Token"
/* "90s", "45m", "12h", "30d", "2w" or plain seconds: 0, or -EINVAL. */
int vo_access_duration_parse(const char *text, int64_t *ret_seconds);

/* ---- Failure backoff (per user, per client address) ----
 * After VO_BACKOFF_FREE failures in a row, a key is locked for 1 s, then
 * twice as long after each further failure, at most VO_BACKOFF_MAX_MS;
 * a success clears it. Bounded: at most VO_BACKOFF_MAX_KEYS keys (the
 * oldest unlocked ones give way). Thread-safe. */
#define VO_BACKOFF_FREE 5
#define VO_BACKOFF_MAX_MS (15 * 60 * 1000)
#define VO_BACKOFF_MAX_KEYS 4096
/* How long key stays locked (ms), 0 when it is not. */
int64_t vo_backoff_locked(const char *key, int64_t now_ms);
void vo_backoff_failed(const char *key, int64_t now_ms);
/* Checks and counts in one step: the ms key stays locked (nothing
 * counted), or 0 with one failure counted already, before the outcome is
 * known, so that attempts made in parallel cannot all pass the check;
 * vo_backoff_succeeded clears it. */
int64_t vo_backoff_attempt(const char *key, int64_t now_ms);
void vo_backoff_succeeded(const char *key);
void vo_backoff_reset_all(void); /* tests */

/* ---- Browser sessions (in memory: a restart logs everyone out) ---- */
#define VO_SESSION_TTL_S (12 * 3600)
#define VO_SESSION_MAX 4096
typedef struct {
    char user[64];
    VoRole role;
    char csrf[VO_ACCESS_SECRET_LEN + 1];
    int64_t expires_ms;
    int64_t created_wall_ms; /* compared with the user's password_changed_ms */
} VoSession;
/* A new session: *ret_id (the cookie's value) and ret->csrf. -ENOSPC when
 * VO_SESSION_MAX live sessions exist. */
int vo_session_create(const char *user, VoRole role, int64_t now_ms,
                      char ret_id[VO_ACCESS_SECRET_LEN + 1], VoSession *ret);
/* 0 with *ret filled, -ENOENT (unknown or expired). */
int vo_session_find(const char *id, int64_t now_ms, VoSession *ret);
void vo_session_delete(const char *id);
void vo_session_delete_user(const char *user);

/* ---- Roles on a project (docs/projects.md) ----
 * A user may hold a role on a project besides (or instead of: role none)
 * one on the whole cluster; on the objects of that project the higher of
 * the two counts. */
#define VO_GRANTS_MAX 16
typedef struct {
    char project[64];
    VoRole role;
} VoGrant;

/* Routes a principal with a role only on projects may reach when its
 * cluster role falls short: the decision is then the object's (its
 * project's role: api/project-gate.c): the VMs' routes, reads of projects,
 * a task by id, whoami and logout. */
bool vo_access_route_scoped(const char *method, const char *pattern);

/* ---- Who asks (the request's principal) ---- */
typedef enum {
    VO_PRINCIPAL_NONE,  /* not authenticated (POST /v1/login) */
    VO_PRINCIPAL_ROOT,  /* the Unix socket */
    VO_PRINCIPAL_PEER,  /* a cluster member over the mutual-TLS listener */
    VO_PRINCIPAL_USER,  /* a session of a user */
    VO_PRINCIPAL_TOKEN, /* an API token */
} VoPrincipalKind;
typedef struct {
    VoPrincipalKind kind;
    VoRole role;
    char name[64];     /* the user's name, the token's id */
    char user[64];     /* a token's user ("" when none) */
    char session[VO_ACCESS_SECRET_LEN + 1]; /* a session's id */
    char address[64];  /* the client's address (TCP) */
    char host[64];     /* root: the host whose Unix socket it came from (in a
                        * cluster, so that another host audits "root@HOST") */
    uint32_t uid;      /* root: the Unix socket peer's uid (SO_PEERCRED). The
                        * socket is root's (0660 root:root), so whoever may
                        * open it has root's access, but a uid other than 0
                        * is audited as itself ("uid:N", "uid:N@HOST"), never
                        * as root */
    VoGrant grants[VO_GRANTS_MAX]; /* its roles on projects */
    size_t n_grants;
    VoRole needed;     /* the role the request's route needs (access-check.c) */
} VoPrincipal;
/* The principal's role on the objects of project: the higher of its
 * cluster role and its grant there. */
VoRole vo_principal_role_in(const VoPrincipal *p, const char *project);
/* Its highest role anywhere (cluster or any project). */
VoRole vo_principal_role_max(const VoPrincipal *p);
/* Whether its cluster role falls short of the request's route, which it
 * may reach through a project role (the project gate decides). */
bool vo_principal_scoped(const VoPrincipal *p);
/* "user:NAME", "token:ID", "root" ("root@HOST" with p->host; "uid:N",
 * "uid:N@HOST" for another uid of the Unix socket), "peer": for audit. */
void vo_principal_describe(const VoPrincipal *p, char *out, size_t size);
/* The principal of the request on the calling thread (the server sets it
 * around each handler); never NULL. */
const VoPrincipal *vo_access_current(void);
void vo_access_set_current(const VoPrincipal *p);

/* ---- The principal of a forwarded request (access-principal.c) ----
 * A host that forwards a request to another host of the cluster (any
 * door, placement, api/forward.c) names who made it in this header, one
 * line of JSON: {"v":1,"kind":"user"|"token"|"root","name","user" (a
 * token's),"role","grants":{project:role},"address","host" (root's
 * only: the host of its Unix socket),"uid" (root's only, when not 0: the
 * Unix socket peer's uid)}. The target believes
 * it only on its peers' listener, from a client certificate of the cluster
 * CA, and then checks and audits the request as that principal's
 * (api/server-request.c); anywhere else the header is refused (400). Neither
 * session ids nor secrets travel: the first host has checked them. */
#define VO_PRINCIPAL_HEADER "X-Vireo-Principal"
#define VO_PRINCIPAL_HEADER_VERSION 1
#define VO_PRINCIPAL_HEADER_MAX 4096
/* The header's value for p (malloc'd), or NULL for a principal that is
 * not passed on (none; a peer's own request stays a peer's). */
char *vo_principal_header_encode(const VoPrincipal *p);

/* The optional members a receiver understands. A host publishes its own in
 * its live record ("principal_members": ["host","uid"], daemon/hosts.c);
 * a host that publishes none is older and parses only the first form
 * (strictly: an unknown member is 400), so a forward to it leaves them
 * out. */
#define VO_PRINCIPAL_MEMBER_HOST 0x1u
#define VO_PRINCIPAL_MEMBER_UID 0x2u
#define VO_PRINCIPAL_MEMBERS_ALL (VO_PRINCIPAL_MEMBER_HOST | VO_PRINCIPAL_MEMBER_UID)
/* Those this vireod understands, as its live record publishes them (a
 * JSON array of names), and the flags of such an array (unknown names
 * ignored; NULL: none). */
json_t *vo_principal_members_json(void);
unsigned vo_principal_members_parse(json_t *names);
/* The header's value for p as a receiver that understands members reads
 * it: 0 with *ret (malloc'd; NULL for a principal not passed on), or
 * -EPROTO when the receiver could not be told who p is without naming
 * more than p: a uid of the Unix socket other than root's (it would read
 * root); "host" alone is left out (the receiver audits "root"). -E2BIG:
 * longer than VO_PRINCIPAL_HEADER_MAX. */
int vo_principal_header_encode_for(const VoPrincipal *p, unsigned members, char **ret);
/* Whether p's header depends on what the receiver understands (a root's:
 * its host and uid): when not, a forward need not read the receiver's
 * record to encode it. */
bool vo_principal_members_matter(const VoPrincipal *p);
/* 0 with *ret filled (root: the admin role), or -EINVAL with *ret_error
 * (malloc'd; ret_error may be NULL) and *ret untouched. Strict: unknown
 * members, names that are not 1-63 printable characters, unknown roles,
 * more than VO_GRANTS_MAX grants are refused. */
int vo_principal_header_parse(const char *text, VoPrincipal *ret, char **ret_error);
