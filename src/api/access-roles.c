/* access-roles.c: the role each API request needs, decided from its method
 * and route pattern alone, so that routes added anywhere get a role without
 * touching routes.def: reads are a viewer's, VM lifecycle, consoles,
 * snapshots and backups an operator's, the rest (and any route not named
 * here) an admin's. */
#include <errno.h>
#include <string.h>

#include "api/access.h"

static const char *const role_names[] = { "viewer", "operator", "admin" };

const char *vo_role_name(VoRole role)
{
    if (role == VO_ROLE_NONE)
        return "none";
    return role >= VO_ROLE_VIEWER && role <= VO_ROLE_ADMIN ? role_names[role] : "admin";
}

int vo_role_parse(const char *text, VoRole *ret)
{
    if (text && !strcmp(text, "none")) {
        *ret = VO_ROLE_NONE;
        return 0;
    }
    for (int i = VO_ROLE_VIEWER; i <= VO_ROLE_ADMIN; i++)
        if (text && !strcmp(text, role_names[i])) {
            *ret = (VoRole)i;
            return 0;
        }
    return -EINVAL;
}

typedef struct {
    const char *method; /* NULL: any */
    const char *pattern;
    VoRole role;
} RoleRule;

/* Exceptions to "GET/HEAD: viewer; else admin", first match wins. */
static const RoleRule rules[] = {
    /* Reads that are more than reads. */
    { "GET", "/v1/vms/{vm}/console", VO_ROLE_OPERATOR },   /* a shell on the serial line */
    { "GET", "/v1/vms/{vm}/vnc", VO_ROLE_OPERATOR },
    { "GET", "/v1/vms/{vm}/display", VO_ROLE_OPERATOR },
    { "GET", "/v1/vms/{vm}/screenshot", VO_ROLE_OPERATOR },
    { "GET", "/v1/pools/{pool}/volumes/{volume}/data", VO_ROLE_ADMIN }, /* a whole disk */
    { "GET", "/v1/users", VO_ROLE_ADMIN },
    { "GET", "/v1/tokens", VO_ROLE_ADMIN },
    { "GET", "/v1/moves/outgoing/{vm}/volumes/{volume}", VO_ROLE_ADMIN },
    { "GET", "/v1/vms/{vm}/cloud-init", VO_ROLE_ADMIN }, /* user data: keys, password hashes */
    /* VM lifecycle. */
    { "POST", "/v1/vms/{vm}/start", VO_ROLE_OPERATOR },
    { "POST", "/v1/vms/{vm}/stop", VO_ROLE_OPERATOR },
    { "POST", "/v1/vms/{vm}/reboot", VO_ROLE_OPERATOR },
    { "POST", "/v1/vms/{vm}/pause", VO_ROLE_OPERATOR },
    { "POST", "/v1/vms/{vm}/resume", VO_ROLE_OPERATOR },
    { "POST", "/v1/vms/{vm}/send-keys", VO_ROLE_OPERATOR },
    { "POST", "/v1/vms/{vm}/screenshot", VO_ROLE_OPERATOR },
    { "POST", "/v1/vms/{vm}/vnc-ticket", VO_ROLE_OPERATOR }, /* a console, as GET .../vnc */
    /* Snapshots and backups. */
    { "POST", "/v1/vms/{vm}/snapshots", VO_ROLE_OPERATOR },
    { "DELETE", "/v1/vms/{vm}/snapshots/{snapshot}", VO_ROLE_OPERATOR },
    { "POST", "/v1/vms/{vm}/snapshots/{snapshot}/revert", VO_ROLE_OPERATOR },
    { "POST", "/v1/vms/{vm}/backups", VO_ROLE_OPERATOR },
    { "POST", "/v1/backups/{backup}/verify", VO_ROLE_OPERATOR },
    { "POST", "/v1/backups/{backup}/restore", VO_ROLE_OPERATOR },
    /* The operations an operator started. */
    { "POST", "/v1/tasks/{id}/cancel", VO_ROLE_OPERATOR },
    { "DELETE", "/v1/tasks/{id}", VO_ROLE_OPERATOR },
    /* Every authenticated client may end its own session. */
    { "POST", "/v1/logout", VO_ROLE_VIEWER },
};

/* A read whose last segment names a console (a route added elsewhere
 * that the table does not name yet): an operator's, not a viewer's. */
static bool console_like(const char *pattern)
{
    const char *last = strrchr(pattern, '/');
    last = last ? last + 1 : pattern;
    return strstr(last, "console") || strstr(last, "vnc") || strstr(last, "display") ||
           strstr(last, "screenshot") || strstr(last, "spice") || strstr(last, "websock");
}

VoRole vo_access_role_needed(const char *method, const char *pattern)
{
    if (!method || !pattern)
        return VO_ROLE_ADMIN;
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if ((!rules[i].method || !strcmp(rules[i].method, method)) &&
            !strcmp(rules[i].pattern, pattern))
            return rules[i].role;
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
        return console_like(pattern) ? VO_ROLE_OPERATOR : VO_ROLE_VIEWER;
    return VO_ROLE_ADMIN;
}

bool vo_access_route_public(const char *method, const char *pattern)
{
    return method && pattern && !strcmp(method, "POST") && !strcmp(pattern, "/v1/login");
}

bool vo_access_route_scoped(const char *method, const char *pattern)
{
    if (!method || !pattern)
        return false;
    if (!strcmp(pattern, "/v1/vms") || !strncmp(pattern, "/v1/vms/{vm}", 12))
        return true;
    bool read = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    /* Volumes and networks (object-gate.c decides on each); not an upload
     * (PUT .../data streams past the gate), and pools read only. */
    if ((!strncmp(pattern, "/v1/pools/{pool}/volumes", 24) && strcmp(method, "PUT")) ||
        !strcmp(pattern, "/v1/networks") || !strcmp(pattern, "/v1/networks/{network}") ||
        (read && (!strcmp(pattern, "/v1/volumes") || !strcmp(pattern, "/v1/pools") ||
                  !strcmp(pattern, "/v1/pools/{pool}"))))
        return true;
    return (read && (!strcmp(pattern, "/v1/projects") ||
                     !strcmp(pattern, "/v1/projects/{project}") ||
                     !strcmp(pattern, "/v1/tasks/{id}") || !strcmp(pattern, "/v1/whoami"))) ||
           (!strcmp(method, "POST") && !strcmp(pattern, "/v1/logout"));
}

VoRole vo_principal_role_in(const VoPrincipal *p, const char *project)
{
    VoRole role = p->role;
    for (size_t i = 0; project && i < p->n_grants; i++)
        if (!strcmp(p->grants[i].project, project) && p->grants[i].role > role)
            role = p->grants[i].role;
    return role;
}

VoRole vo_principal_role_max(const VoPrincipal *p)
{
    VoRole role = p->role;
    for (size_t i = 0; i < p->n_grants; i++)
        if (p->grants[i].role > role)
            role = p->grants[i].role;
    return role;
}

bool vo_principal_scoped(const VoPrincipal *p)
{
    return (p->kind == VO_PRINCIPAL_USER || p->kind == VO_PRINCIPAL_TOKEN) &&
           p->role < p->needed;
}
