/* access-principal.c: the principal a forwarded request carries from the
 * host that authenticated it to the host that serves it (header
 * X-Vireo-Principal, docs/security.md "Forwarded requests"): its encoding
 * as one line of JSON and its strict parsing. Pure: unit-tested and fuzzed
 * (tests/fuzz/fuzz-principal.c). Whether the header is believed at all is
 * the server's decision (only from a cluster peer: api/server-request.c). */
#include <errno.h>
#include <stdint.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/access.h"

static const char *kind_name(VoPrincipalKind kind)
{
    switch (kind) {
    case VO_PRINCIPAL_ROOT: return "root";
    case VO_PRINCIPAL_USER: return "user";
    case VO_PRINCIPAL_TOKEN: return "token";
    default: return NULL; /* none and peer are never passed on */
    }
}

json_t *vo_principal_members_json(void)
{
    return json_pack("[s, s]", "host", "uid");
}

unsigned vo_principal_members_parse(json_t *names)
{
    unsigned members = 0;
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) {
        const char *name = json_string_value(v);
        if (name && !strcmp(name, "host"))
            members |= VO_PRINCIPAL_MEMBER_HOST;
        else if (name && !strcmp(name, "uid"))
            members |= VO_PRINCIPAL_MEMBER_UID;
    }
    return members;
}

int vo_principal_header_encode_for(const VoPrincipal *p, unsigned members, char **ret)
{
    *ret = NULL;
    const char *kind = kind_name(p->kind);
    if (!kind)
        return 0;
    /* Another uid than root's, to a receiver that cannot be told: it would
     * audit it as root. Never sent so. */
    if (p->kind == VO_PRINCIPAL_ROOT && p->uid != 0 && !(members & VO_PRINCIPAL_MEMBER_UID))
        return -EPROTO;
    json_t *o = json_pack("{s:i, s:s}", "v", VO_PRINCIPAL_HEADER_VERSION, "kind", kind);
    if (!o)
        return -ENOMEM;
    if (p->kind != VO_PRINCIPAL_ROOT) {
        json_t *grants = json_object();
        for (size_t i = 0; i < p->n_grants && i < VO_GRANTS_MAX; i++)
            json_object_set_new(grants, p->grants[i].project,
                                json_string(vo_role_name(p->grants[i].role)));
        json_object_set_new(o, "name", json_string(p->name));
        json_object_set_new(o, "role", json_string(vo_role_name(p->role)));
        json_object_set_new(o, "grants", grants);
        if (p->kind == VO_PRINCIPAL_TOKEN && p->user[0])
            json_object_set_new(o, "user", json_string(p->user));
    }
    if (p->address[0])
        json_object_set_new(o, "address", json_string(p->address));
    if (p->kind == VO_PRINCIPAL_ROOT && p->host[0] && (members & VO_PRINCIPAL_MEMBER_HOST))
        json_object_set_new(o, "host", json_string(p->host));
    if (p->kind == VO_PRINCIPAL_ROOT && p->uid != 0)
        json_object_set_new(o, "uid", json_integer((json_int_t)p->uid));
    /* ASCII on one line: a valid HTTP header value whatever the names hold. */
    char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_SORT_KEYS);
    json_decref(o);
    if (!text)
        return -ENOMEM;
    if (strlen(text) > VO_PRINCIPAL_HEADER_MAX) {
        free(text);
        return -E2BIG;
    }
    *ret = text;
    return 0;
}

bool vo_principal_members_matter(const VoPrincipal *p)
{
    return p->kind == VO_PRINCIPAL_ROOT;
}

char *vo_principal_header_encode(const VoPrincipal *p)
{
    char *text = NULL;
    return vo_principal_header_encode_for(p, VO_PRINCIPAL_MEMBERS_ALL, &text) < 0 ? NULL : text;
}

static int fail(char **ret_error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **ret_error, const char *fmt, ...)
{
    if (ret_error) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(ret_error, fmt, ap) < 0)
            *ret_error = NULL;
        va_end(ap);
    }
    return -EINVAL;
}

/* A name as the principal's fields hold them: 1 to size - 1 bytes, printable
 * ASCII without spaces (user names, token ids, project names, addresses
 * are all of that form). */
static bool plain_text(const char *s, size_t size)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= size)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/* Copies the string member key of o into out (size bytes); absent is
 * "" unless required. */
static int copy_field(json_t *o, const char *key, bool required, char *out, size_t size,
                      char **ret_error)
{
    json_t *v = json_object_get(o, key);
    if (!v && !required)
        return 0;
    if (!json_is_string(v) || !plain_text(json_string_value(v), size))
        return fail(ret_error, "%s: %s", key, v ? "not a name of 1 to 63 printable characters"
                                                : "missing");
    snprintf(out, size, "%s", json_string_value(v));
    return 0;
}

int vo_principal_header_parse(const char *text, VoPrincipal *ret, char **ret_error)
{
    if (ret_error)
        *ret_error = NULL;
    if (!text || strlen(text) > VO_PRINCIPAL_HEADER_MAX)
        return fail(ret_error, "longer than %d bytes", VO_PRINCIPAL_HEADER_MAX);
    json_error_t jerr;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return fail(ret_error, "not a JSON object");
    }
    VoPrincipal p = { .kind = VO_PRINCIPAL_NONE };
    int r = 0;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "v") && strcmp(key, "kind") && strcmp(key, "name") &&
            strcmp(key, "user") && strcmp(key, "role") && strcmp(key, "grants") &&
            strcmp(key, "address") && strcmp(key, "host") && strcmp(key, "uid")) {
            r = fail(ret_error, "unknown member '%.40s'", key);
            goto out;
        }
    }
    v = json_object_get(o, "v");
    if (!json_is_integer(v) || json_integer_value(v) != VO_PRINCIPAL_HEADER_VERSION) {
        r = fail(ret_error, "v: version %d expected", VO_PRINCIPAL_HEADER_VERSION);
        goto out;
    }
    const char *kind = json_string_value(json_object_get(o, "kind"));
    if (kind && !strcmp(kind, "root"))
        p.kind = VO_PRINCIPAL_ROOT;
    else if (kind && !strcmp(kind, "user"))
        p.kind = VO_PRINCIPAL_USER;
    else if (kind && !strcmp(kind, "token"))
        p.kind = VO_PRINCIPAL_TOKEN;
    else {
        r = fail(ret_error, "kind: root, user or token expected");
        goto out;
    }
    if ((r = copy_field(o, "address", false, p.address, sizeof(p.address), ret_error)) < 0)
        goto out;
    if (p.kind == VO_PRINCIPAL_ROOT) {
        /* The Unix socket's: full access, as it had on the first host. */
        if (json_object_get(o, "name") || json_object_get(o, "user") ||
            json_object_get(o, "role") || json_object_get(o, "grants")) {
            r = fail(ret_error, "root: only kind, address, host and uid are given");
            goto out;
        }
        /* Which uid of that socket (absent: root's). */
        json_t *uid = json_object_get(o, "uid");
        if (uid && (!json_is_integer(uid) || json_integer_value(uid) < 0 ||
                    json_integer_value(uid) >= (json_int_t)UINT32_MAX)) {
            r = fail(ret_error, "uid: a uid (0 to %u) expected", UINT32_MAX - 1);
            goto out;
        }
        p.uid = uid ? (uint32_t)json_integer_value(uid) : 0;
        /* Whose root: the host of the Unix socket (audited root@HOST). */
        if ((r = copy_field(o, "host", false, p.host, sizeof(p.host), ret_error)) < 0)
            goto out;
        p.role = VO_ROLE_ADMIN;
        goto done;
    }
    if ((r = copy_field(o, "name", true, p.name, sizeof(p.name), ret_error)) < 0 ||
        (r = copy_field(o, "user", false, p.user, sizeof(p.user), ret_error)) < 0)
        goto out;
    if (json_object_get(o, "host") || json_object_get(o, "uid")) {
        r = fail(ret_error, "host, uid: only root names its host and uid");
        goto out;
    }
    if (p.kind == VO_PRINCIPAL_USER && p.user[0]) {
        r = fail(ret_error, "user: only a token names its user");
        goto out;
    }
    if (vo_role_parse(json_string_value(json_object_get(o, "role")), &p.role) < 0) {
        r = fail(ret_error, "role: none, viewer, operator or admin expected");
        goto out;
    }
    json_t *grants = json_object_get(o, "grants");
    if (grants && !json_is_object(grants)) {
        r = fail(ret_error, "grants: an object of project: role expected");
        goto out;
    }
    if (json_object_size(grants) > VO_GRANTS_MAX) {
        r = fail(ret_error, "grants: more than %d", VO_GRANTS_MAX);
        goto out;
    }
    json_object_foreach(grants, key, v) {
        VoGrant *g = &p.grants[p.n_grants];
        if (!plain_text(key, sizeof(g->project)) ||
            vo_role_parse(json_string_value(v), &g->role) < 0 || g->role < VO_ROLE_VIEWER) {
            r = fail(ret_error, "grants: '%.64s' is not a project with a role (viewer, operator "
                     "or admin)", key);
            goto out;
        }
        snprintf(g->project, sizeof(g->project), "%s", key);
        p.n_grants++;
    }
done:
    *ret = p;
out:
    json_decref(o);
    return r;
}
