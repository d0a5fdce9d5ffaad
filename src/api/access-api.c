/* access-api.c: users and API tokens in the store (keys
 * cluster/access/users/NAME and cluster/access/tokens/ID: in a cluster
 * every host sees the same ones) and their routes: /v1/users, /v1/tokens,
 * and the browser's /v1/login, /v1/logout, /v1/whoami. Password hashes and
 * token digests never leave this file's documents: no route returns them. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <microhttpd.h>

#include "api/access-check.h"
#include "api/handlers.h"
#include "conf/names.h"
#include "state/store-json.h"
#include "util/time-format.h"
#include "util/util.h"

#define USERS_PREFIX "cluster/access/users/"
#define TOKENS_PREFIX "cluster/access/tokens/"

static char *user_key(const char *name)
{
    return vo_asprintf(USERS_PREFIX "%s", name);
}

static char *token_key(const char *id)
{
    return vo_asprintf(TOKENS_PREFIX "%s", id);
}

/* The document at key (its revision in *ret_rev, may be NULL), or NULL
 * with *ret_r. */
static json_t *load_doc_rev(VoDaemon *d, const char *key, int64_t *ret_rev, int *ret_r)
{
    _cleanup_free_ char *text = NULL;
    int64_t rev = 0;
    *ret_r = vo_store_get(d->store, key, &text, ret_rev ? ret_rev : &rev);
    if (*ret_r < 0)
        return NULL;
    json_t *doc = json_loads(text, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        *ret_r = -EIO;
        return NULL;
    }
    return doc;
}

static json_t *load_doc(VoDaemon *d, const char *key, int *ret_r)
{
    return load_doc_rev(d, key, NULL, ret_r);
}

static int store_doc(VoDaemon *d, const char *key, json_t *doc, int64_t expected)
{
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    return vo_store_put(d->store, key, text, expected, NULL);
}

/* ---- Authentication (access-check.c calls these) ---- */

/* The user's document and its revision (ret_rev may be NULL), or NULL
 * with *ret_r (-ENOENT for a bad name). */
static json_t *load_user_rev(VoDaemon *d, const char *name, int64_t *ret_rev, int *ret_r)
{
    if (!vo_name_valid(name)) {
        *ret_r = -ENOENT;
        return NULL;
    }
    _cleanup_free_ char *key = user_key(name);
    return load_doc_rev(d, key, ret_rev, ret_r);
}

static json_t *load_user(VoDaemon *d, const char *name, int *ret_r)
{
    return load_user_rev(d, name, NULL, ret_r);
}

/* The answer to a change of user name's document that ended with r. */
static void reply_user_changed(VoReply *rep, int r, const char *name, const char *what)
{
    if (r == -ENOENT)
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "no user '%s'", name);
    else if (r == -ESTALE)
        vo_reply_error(rep, VO_ERR_CONFLICT, "user '%s' changed meanwhile; try again", name);
    else
        vo_reply_errno(rep, r, what);
}

int vo_access_user_role(VoDaemon *d, const char *name, VoRole *ret_role, char **ret_hash)
{
    int r;
    json_t *doc = load_user(d, name, &r);
    if (!doc)
        return r;
    r = vo_role_parse(json_string_value(json_object_get(doc, "role")), ret_role);
    if (r == 0 && ret_hash) {
        const char *h = json_string_value(json_object_get(doc, "password_hash"));
        *ret_hash = h ? vo_strdup(h) : NULL;
    }
    json_decref(doc);
    return r < 0 ? -EIO : 0;
}

int vo_access_session_user(VoDaemon *d, const char *name, int64_t created_wall_ms,
                           VoRole *ret_role)
{
    if (!vo_name_valid(name))
        return -ENOENT;
    _cleanup_free_ char *key = user_key(name);
    int r;
    json_t *doc = load_doc(d, key, &r);
    if (!doc)
        return r;
    r = vo_role_parse(json_string_value(json_object_get(doc, "role")), ret_role) < 0 ? -EIO : 0;
    if (r == 0 && json_integer_value(json_object_get(doc, "password_changed_ms")) > created_wall_ms)
        r = -ESTALE;
    json_decref(doc);
    return r;
}

int vo_access_user_grants(VoDaemon *d, const char *name, VoRole cap, VoPrincipal *p)
{
    p->n_grants = 0;
    int r;
    json_t *doc = load_user(d, name, &r);
    if (!doc)
        return r;
    const char *project;
    json_t *role_text;
    json_object_foreach(json_object_get(doc, "grants"), project, role_text) {
        VoRole role;
        if (p->n_grants == VO_GRANTS_MAX ||
            vo_role_parse(json_string_value(role_text), &role) < 0 || role < VO_ROLE_VIEWER)
            continue;
        VoGrant *g = &p->grants[p->n_grants];
        snprintf(g->project, sizeof(g->project), "%s", project);
        g->role = role < cap ? role : cap;
        if (g->role >= VO_ROLE_VIEWER)
            p->n_grants++;
    }
    json_decref(doc);
    return 0;
}

int vo_access_token_check(VoDaemon *d, const char *text, VoPrincipal *p)
{
    VoTokenParts parts;
    if (vo_access_token_parse(text, &parts) < 0)
        return -EINVAL;
    _cleanup_free_ char *key = token_key(parts.id);
    int r;
    json_t *doc = load_doc(d, key, &r);
    if (!doc)
        return r == -ENOENT ? -EACCES : r;
    char digest[65];
    vo_access_secret_digest(parts.secret, digest);
    const char *stored = json_string_value(json_object_get(doc, "digest"));
    json_int_t expires = json_integer_value(json_object_get(doc, "expires_ms"));
    VoRole role;
    r = -EACCES;
    if (stored && vo_access_equal(stored, digest) && (!expires || expires > vo_wall_ms()) &&
        vo_role_parse(json_string_value(json_object_get(doc, "role")), &role) == 0) {
        p->kind = VO_PRINCIPAL_TOKEN;
        p->role = role;
        snprintf(p->name, sizeof(p->name), "%s", parts.id);
        const char *user = json_string_value(json_object_get(doc, "user"));
        snprintf(p->user, sizeof(p->user), "%s", user ? user : "");
        r = 0;
        /* A user's token lives no longer than its user, and has at most
         * the user's role (even if deleting the tokens with it failed). */
        VoRole user_role;
        if (user) {
            r = vo_access_user_role(d, user, &user_role, NULL);
            if (r == -ENOENT)
                r = -EACCES;
            else if (r == 0) {
                VoRole token_role = p->role;
                if (user_role < p->role)
                    p->role = user_role;
                /* Its user's roles on projects, at most the token's role. */
                r = vo_access_user_grants(d, user, token_role, p);
                if (r == -ENOENT)
                    r = -EACCES;
            }
        }
    }
    json_decref(doc);
    return r;
}

/* ---- Users ---- */

static json_t *user_public(const char *name, json_t *doc)
{
    json_t *grants = json_object_get(doc, "grants");
    return json_pack("{s:s, s:O?, s:O?, s:o}", "name", name, "role",
                     json_object_get(doc, "role"), "created_at", json_object_get(doc, "created_at"),
                     "grants", grants ? json_deep_copy(grants) : json_object());
}

/* 200 with [public(key, doc)] of every document under prefix. */
static void reply_listed(VoRequest *req, VoReply *rep, const char *prefix, const char *what,
                         json_t *(*public)(const char *key, json_t *doc))
{
    json_t *all = json_object();
    int r = vo_store_list_objects(req->d->store, prefix, all);
    if (r < 0) {
        json_decref(all);
        vo_reply_errno(rep, r, what);
        return;
    }
    json_t *list = json_array();
    const char *key;
    json_t *doc;
    json_object_foreach(all, key, doc)
        json_array_append_new(list, public(key, doc));
    json_decref(all);
    vo_reply_json(rep, 200, list);
}

void vo_api_users_list(VoRequest *req, VoReply *rep)
{
    reply_listed(req, rep, USERS_PREFIX, "cannot read the users", user_public);
}

static bool password_ok(VoReply *rep, const char *password)
{
    if (strlen(password) < VO_ACCESS_PASSWORD_MIN) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "password: at least %d characters",
                       VO_ACCESS_PASSWORD_MIN);
        return false;
    }
    if (strlen(password) > 1024) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "password: at most 1024 characters");
        return false;
    }
    return true;
}

void vo_api_user_create(VoRequest *req, VoReply *rep)
{
    const char *name = NULL, *role_text = NULL, *password = NULL;
    if (!vo_request_unpack(req, rep, "{s:s, s:s, s:s}", "name", &name, "role", &role_text,
                           "password", &password))
        return;
    VoRole role;
    if (!vo_name_valid(name)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "name '%s': use 1-63 lower-case letters, "
                       "digits and '-', starting with a letter", name);
        return;
    }
    if (vo_role_parse(role_text, &role) < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "role '%s': one of admin, operator, viewer, "
                       "none (roles on projects only: vireo user grant)", role_text);
        return;
    }
    if (!password_ok(rep, password))
        return;
    _cleanup_free_ char *hash = NULL;
    int r = vo_access_password_hash(password, &hash);
    if (r < 0) {
        vo_reply_errno(rep, r, "cannot hash the password");
        return;
    }
    json_t *doc = json_pack("{s:s, s:s, s:o}", "role", vo_role_name(role), "password_hash", hash,
                            "created_at", vo_time_json(vo_wall_ms()));
    _cleanup_free_ char *key = user_key(name);
    r = store_doc(req->d, key, doc, VO_REV_NEW);
    if (r == -EEXIST)
        vo_reply_error(rep, VO_ERR_ALREADY_EXISTS, "user '%s' exists already", name);
    else if (r < 0)
        vo_reply_errno(rep, r, "cannot store the user");
    else {
        log_info("user '%s' created with role %s", name, vo_role_name(role));
        vo_reply_json(rep, 201, user_public(name, doc));
    }
    json_decref(doc);
}

/* Deletes every token of user (its own tokens go with it). */
static void delete_tokens_of(VoDaemon *d, const char *user)
{
    json_t *all = json_object();
    if (vo_store_list_objects(d->store, TOKENS_PREFIX, all) == 0) {
        const char *id;
        json_t *doc;
        json_object_foreach(all, id, doc) {
            const char *u = json_string_value(json_object_get(doc, "user"));
            if (u && !strcmp(u, user)) {
                _cleanup_free_ char *key = token_key(id);
                (void)vo_store_delete(d->store, key, VO_REV_ANY);
            }
        }
    }
    json_decref(all);
}

void vo_api_user_delete(VoRequest *req, VoReply *rep)
{
    const char *name = req->params[0];
    _cleanup_free_ char *key = vo_name_valid(name) ? user_key(name) : NULL;
    int r = key ? vo_store_delete(req->d->store, key, VO_REV_ANY) : -ENOENT;
    if (r == -ENOENT) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "no user '%s'", name);
        return;
    }
    if (r < 0) {
        vo_reply_errno(rep, r, "cannot delete the user");
        return;
    }
    vo_session_delete_user(name);
    delete_tokens_of(req->d, name);
    log_info("user '%s' deleted (with their sessions and tokens)", name);
    vo_reply_json(rep, 200, json_object());
}

void vo_api_user_password(VoRequest *req, VoReply *rep)
{
    const char *name = req->params[0], *password = NULL;
    if (!vo_request_unpack(req, rep, "{s:s}", "password", &password) || !password_ok(rep, password))
        return;
    int r;
    int64_t rev = 0;
    json_t *doc = load_user_rev(req->d, name, &rev, &r);
    _cleanup_free_ char *hash = NULL;
    if (r == 0)
        r = vo_access_password_hash(password, &hash);
    if (r == 0) {
        json_object_set_new(doc, "password_hash", json_string(hash));
        /* Sessions made before it end on every host (access-check.c). */
        json_object_set_new(doc, "password_changed_ms", json_integer(vo_wall_ms()));
        _cleanup_free_ char *key = user_key(name);
        r = store_doc(req->d, key, doc, rev);
    }
    json_decref(doc);
    if (r < 0)
        reply_user_changed(rep, r, name, "cannot change the password");
    else {
        vo_session_delete_user(name); /* a new password ends the old sessions */
        vo_reply_json(rep, 200, json_object());
    }
}

/* ---- Roles on projects ---- */

/* Sets (role non-NULL) or removes the user's role on project, compared at
 * the revision read; 200 with the user. */
static void change_grant(VoRequest *req, VoReply *rep, const char *project, const char *role)
{
    const char *name = req->params[0];
    int r;
    int64_t rev = 0;
    json_t *doc = load_user_rev(req->d, name, &rev, &r);
    json_t *grants = doc ? json_object_get(doc, "grants") : NULL;
    if (r == 0 && !role && !json_object_get(grants, project)) {
        json_decref(doc);
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "user '%s' has no role on project '%s'", name,
                       project);
        return;
    }
    if (r == 0) {
        if (!json_is_object(grants)) {
            grants = json_object();
            json_object_set_new(doc, "grants", grants);
        }
        if (role)
            json_object_set_new(grants, project, json_string(role));
        else
            json_object_del(grants, project);
        _cleanup_free_ char *key = user_key(name);
        r = store_doc(req->d, key, doc, rev);
    }
    if (r < 0)
        reply_user_changed(rep, r, name, "cannot change the user's roles");
    else {
        log_info("user '%s': role on project '%s' %s%s", name, project, role ? "set to " : "removed",
                 role ? role : "");
        vo_reply_json(rep, 200, user_public(name, doc));
    }
    json_decref(doc);
}

void vo_access_forget_project(VoDaemon *d, const char *project)
{
    json_t *all = json_object();
    if (vo_store_list_objects(d->store, USERS_PREFIX, all) == 0) {
        const char *name;
        json_t *listed;
        json_object_foreach(all, name, listed) {
            if (!json_object_get(json_object_get(listed, "grants"), project))
                continue;
            int r = -ESTALE;
            for (int attempt = 0; attempt < 10 && r == -ESTALE; attempt++) {
                int64_t rev = 0;
                json_t *doc = load_user_rev(d, name, &rev, &r);
                if (doc && json_object_del(json_object_get(doc, "grants"), project) == 0) {
                    _cleanup_free_ char *key = user_key(name);
                    r = store_doc(d, key, doc, rev);
                }
                json_decref(doc);
            }
            if (r < 0 && r != -ENOENT)
                log_warn("project '%s' deleted, but user '%s' keeps a role on it: %s", project,
                         name, strerror(-r));
            else
                log_info("user '%s': role on deleted project '%s' removed", name, project);
        }
    }
    json_decref(all);
}

void vo_api_user_grant(VoRequest *req, VoReply *rep)
{
    const char *project = NULL, *role_text = NULL;
    if (!vo_request_unpack(req, rep, "{s:s, s:s}", "project", &project, "role", &role_text))
        return;
    VoRole role;
    if (vo_role_parse(role_text, &role) < 0 || role == VO_ROLE_NONE) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "role '%s': one of admin, operator, viewer",
                       role_text);
        return;
    }
    if (vo_api_project_named(req, rep, project))
        change_grant(req, rep, project, vo_role_name(role));
}

void vo_api_user_revoke(VoRequest *req, VoReply *rep)
{
    change_grant(req, rep, req->params[1], NULL);
}

/* ---- Tokens ---- */

static json_t *token_public(const char *id, json_t *doc)
{
    json_int_t expires = json_integer_value(json_object_get(doc, "expires_ms"));
    return json_pack("{s:s, s:O?, s:O?, s:O?, s:O?, s:o}", "id", id,
                     "role", json_object_get(doc, "role"), "user", json_object_get(doc, "user"),
                     "created_by", json_object_get(doc, "created_by"),
                     "created_at", json_object_get(doc, "created_at"),
                     "expires_at", expires ? vo_time_json(expires) : json_null());
}

void vo_api_tokens_list(VoRequest *req, VoReply *rep)
{
    reply_listed(req, rep, TOKENS_PREFIX, "cannot read the tokens", token_public);
}

void vo_api_token_create(VoRequest *req, VoReply *rep)
{
    const char *role_text = NULL, *user = NULL, *expires = NULL;
    if (!vo_request_unpack(req, rep, "{s:s, s?s, s?s}", "role", &role_text, "user", &user,
                           "expires", &expires))
        return;
    VoRole role, user_role;
    if (vo_role_parse(role_text, &role) < 0 || role == VO_ROLE_NONE) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "role '%s': one of admin, operator, viewer",
                       role_text);
        return;
    }
    int64_t seconds = 0;
    if (expires && vo_access_duration_parse(expires, &seconds) < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "expires '%s': a duration such as 3600, "
                       "90m, 12h, 30d or 2w", expires);
        return;
    }
    /* A user's own token is theirs (at most their role, deleted with
     * them) unless they name another user: deleting a user ends all
     * their access. */
    const VoPrincipal *who = vo_access_current();
    if (!user && who->kind == VO_PRINCIPAL_USER)
        user = who->name;
    else if (!user && who->kind == VO_PRINCIPAL_TOKEN && who->user[0])
        user = who->user;
    if (user) {
        int r = vo_access_user_role(req->d, user, &user_role, NULL);
        VoPrincipal with_grants = { .role = user_role };
        if (r == 0 && (r = vo_access_user_grants(req->d, user, VO_ROLE_ADMIN, &with_grants)) == 0)
            user_role = vo_principal_role_max(&with_grants); /* a project's role counts */
        if (r == -ENOENT) {
            vo_reply_error(rep, VO_ERR_NOT_FOUND, "user: no user '%s'", user);
            return;
        }
        if (r < 0) {
            vo_reply_errno(rep, r, "cannot read the user");
            return;
        }
        if (role > user_role) {
            vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "role %s: more than user '%s' has (%s)",
                           vo_role_name(role), user, vo_role_name(user_role));
            return;
        }
    }
    /* Nobody makes a token stronger than themselves. */
    if (who->kind != VO_PRINCIPAL_ROOT && who->kind != VO_PRINCIPAL_PEER &&
        role > vo_principal_role_max(who)) {
        vo_reply_error(rep, VO_ERR_PERMISSION_DENIED, "role %s: more than you have (%s)",
                       vo_role_name(role), vo_role_name(vo_principal_role_max(who)));
        return;
    }
    VoTokenParts parts;
    _cleanup_free_ char *text = NULL;
    vo_access_token_new(&parts, &text);
    char digest[65], by[128];
    vo_access_secret_digest(parts.secret, digest);
    vo_principal_describe(who, by, sizeof(by));
    /* The wall clock: kept in the store, read by every host, across boots
     * (the monotonic clock starts again at each boot, and differs per host). */
    int64_t now = vo_wall_ms();
    json_t *doc = json_pack("{s:s, s:s, s:s, s:o, s:I}", "role", vo_role_name(role),
                            "digest", digest, "created_by", by, "created_at", vo_time_json(now),
                            "expires_ms", (json_int_t)(seconds ? now + seconds * 1000 : 0));
    if (user)
        json_object_set_new(doc, "user", json_string(user));
    _cleanup_free_ char *key = token_key(parts.id);
    int r = store_doc(req->d, key, doc, VO_REV_NEW);
    explicit_bzero(parts.secret, sizeof(parts.secret));
    if (r < 0)
        vo_reply_errno(rep, r, "cannot store the token");
    else {
        json_t *out = token_public(parts.id, doc);
        json_object_set_new(out, "secret", json_string(text));
        log_info("token %s created (role %s) by %s", parts.id, vo_role_name(role), by);
        vo_reply_json(rep, 201, out);
    }
    explicit_bzero(text, strlen(text));
    json_decref(doc);
}

void vo_api_token_revoke(VoRequest *req, VoReply *rep)
{
    const char *id = req->params[0];
    bool ok = strlen(id) == VO_ACCESS_TOKEN_ID_LEN && strspn(id, "0123456789abcdef") == strlen(id);
    _cleanup_free_ char *key = ok ? token_key(id) : NULL;
    int r = key ? vo_store_delete(req->d->store, key, VO_REV_ANY) : -ENOENT;
    if (r == -ENOENT)
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "no token '%s' (vireo token list shows them)", id);
    else if (r < 0)
        vo_reply_errno(rep, r, "cannot revoke the token");
    else {
        log_info("token %s revoked", id);
        vo_reply_json(rep, 200, json_object());
    }
}

/* ---- Browser sessions ---- */

static void retry_after(VoReply *rep, int64_t ms)
{
    rep->header_name = "Retry-After";
    snprintf(rep->header_value, sizeof(rep->header_value), "%lld", (long long)((ms + 999) / 1000));
}

/* A hash of nothing anyone knows: an unknown user's login verifies it. */
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char *dummy_hash;
static void make_dummy_hash(void)
{
    char secret[VO_ACCESS_SECRET_LEN + 1];
    vo_access_random_secret(secret);
    if (vo_access_password_hash(secret, &dummy_hash) < 0)
        dummy_hash = NULL;
}

/* Password checks running at once (argon2id, 64 MiB each), at most. */
#define LOGIN_CHECKS_MAX 4
static atomic_int logins_checking;

void vo_api_login(VoRequest *req, VoReply *rep)
{
    const VoPrincipal *who = vo_access_current();
    if (!who->address[0]) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "POST /v1/login is for the HTTPS listener "
                       "(a browser's session); the Unix socket needs no login");
        return;
    }
    const char *user = NULL, *password = NULL;
    if (!vo_request_unpack(req, rep, "{s:s, s:s}", "user", &user, "password", &password))
        return;
    char user_key_b[80], addr_key[80];
    snprintf(user_key_b, sizeof(user_key_b), "user:%s", user);
    snprintf(addr_key, sizeof(addr_key), "addr:%s", who->address);
    int64_t now = vo_now_ms();
    int64_t wait = vo_backoff_locked(user_key_b, now), wait_addr = vo_backoff_locked(addr_key, now);
    if (wait_addr > wait)
        wait = wait_addr;
    if (wait > 0) {
        vo_reply_error(rep, VO_ERR_TOO_MANY_REQUESTS, "too many failed logins %s; try again in "
                       "%lld s", wait_addr >= wait ? "from this address" : "for this user",
                       (long long)((wait + 999) / 1000));
        retry_after(rep, wait);
        return;
    }
    /* Each check takes LOGIN_HASH_MEM of memory and a CPU for a while:
     * only so many at once, whoever sends them. */
    if (atomic_fetch_add(&logins_checking, 1) >= LOGIN_CHECKS_MAX) {
        atomic_fetch_sub(&logins_checking, 1);
        vo_reply_error(rep, VO_ERR_TOO_MANY_REQUESTS, "too many logins are being checked at "
                       "once; try again in 1 s");
        retry_after(rep, 1000);
        return;
    }
    /* The attempt counts as failed before the password is checked, so that
     * guesses sent in parallel cannot all pass the lock-out together. */
    wait = vo_backoff_attempt(user_key_b, now);
    wait_addr = vo_backoff_attempt(addr_key, now);
    if (wait > 0 || wait_addr > 0) {
        atomic_fetch_sub(&logins_checking, 1);
        if (wait_addr > wait)
            wait = wait_addr;
        vo_reply_error(rep, VO_ERR_TOO_MANY_REQUESTS, "too many failed logins %s; try again in "
                       "%lld s", wait_addr >= wait ? "from this address" : "for this user",
                       (long long)((wait + 999) / 1000));
        retry_after(rep, wait);
        return;
    }
    VoRole role = VO_ROLE_VIEWER;
    _cleanup_free_ char *hash = NULL;
    int r = vo_access_user_role(req->d, user, &role, &hash);
    if (r < 0 && r != -ENOENT) {
        atomic_fetch_sub(&logins_checking, 1);
        vo_reply_errno(rep, r, "cannot read the user");
        return;
    }
    /* An unknown user costs as much as a wrong password (no hint by time). */
    pthread_once(&dummy_once, make_dummy_hash);
    bool ok = vo_access_password_verify(hash ? hash : dummy_hash, password) && r == 0 && hash;
    atomic_fetch_sub(&logins_checking, 1);
    log_debug("login of '%s' from %s checked: %s", user, who->address, ok ? "ok" : "refused");
    if (!ok) { /* counted already */
        vo_reply_error(rep, VO_ERR_UNAUTHENTICATED, "wrong user name or password");
        return;
    }
    vo_backoff_succeeded(user_key_b);
    vo_backoff_succeeded(addr_key);
    char sid[VO_ACCESS_SECRET_LEN + 1];
    VoSession s;
    if (vo_session_create(user, role, now, sid, &s) < 0) {
        vo_reply_error(rep, VO_ERR_UNAVAILABLE, "too many open sessions; try again later");
        return;
    }
    vo_strv_pushf(&rep->extra_headers, "Set-Cookie");
    vo_strv_pushf(&rep->extra_headers, "%s=%s; Path=/; Max-Age=%d; HttpOnly; Secure; "
                  "SameSite=Strict", VO_ACCESS_SESSION_COOKIE, sid, VO_SESSION_TTL_S);
    explicit_bzero(sid, sizeof(sid));
    log_info("user '%s' logged in from %s", user, who->address);
    vo_reply_json(rep, 200, json_pack("{s:s, s:s, s:s, s:o}", "user", user, "role",
                                      vo_role_name(role), "csrf_token", s.csrf, "expires_at",
                                      vo_time_json(vo_wall_ms() + (s.expires_ms - now))));
}

void vo_api_logout(VoRequest *req, VoReply *rep)
{
    const VoPrincipal *who = vo_access_current();
    if (who->kind == VO_PRINCIPAL_USER && who->session[0])
        vo_session_delete(who->session);
    vo_strv_pushf(&rep->extra_headers, "Set-Cookie");
    vo_strv_pushf(&rep->extra_headers, "%s=; Path=/; Max-Age=0; HttpOnly; Secure; "
                  "SameSite=Strict", VO_ACCESS_SESSION_COOKIE);
    vo_reply_json(rep, 200, json_object());
}

void vo_api_whoami(VoRequest *req, VoReply *rep)
{
    const VoPrincipal *who = vo_access_current();
    char by[128];
    vo_principal_describe(who, by, sizeof(by));
    json_t *grants = json_object();
    for (size_t i = 0; i < who->n_grants; i++)
        json_object_set_new(grants, who->grants[i].project,
                            json_string(vo_role_name(who->grants[i].role)));
    vo_reply_json(rep, 200, json_pack("{s:s, s:s, s:o}", "principal", by, "role",
                                      vo_role_name(who->kind == VO_PRINCIPAL_ROOT ||
                                                   who->kind == VO_PRINCIPAL_PEER
                                                       ? VO_ROLE_ADMIN : who->role),
                                      "grants", grants));
}
