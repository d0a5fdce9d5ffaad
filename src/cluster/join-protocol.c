/* join-protocol.c: the checks a join needs and a member makes, and the
 * decisions on both sides (join-protocol.h). */
#include "cluster/join-protocol.h"

#include <errno.h>
#include <string.h>

#include "util/util.h"

/* What a member before protocol 2 makes of the fields it reads: the last
 * such vireo also checks "projects" (quotas) and the rbd pools of
 * "rbd_pools", and every one reads a request strictly (a field it does not
 * know is refused, never skipped). */
static const char *const legacy_checks[] = { VO_JOIN_CHECK_HOST, VO_JOIN_CHECK_VMS,
                                             VO_JOIN_CHECK_NETWORKS, VO_JOIN_CHECK_PROJECTS,
                                             NULL };

const char *const vo_join_checks_made[] = { VO_JOIN_CHECK_HOST,     VO_JOIN_CHECK_VMS,
                                            VO_JOIN_CHECK_NETWORKS, VO_JOIN_CHECK_PROJECTS,
                                            VO_JOIN_CHECK_POOLS,    VO_JOIN_CHECK_MACS,
                                            NULL };

static bool in_list(const char *const *list, const char *name)
{
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(list[i], name))
            return true;
    return false;
}

static bool in_json(const json_t *array, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), name))
            return true;
    return false;
}

char **vo_join_checks_needed(const json_t *projects, const json_t *pools,
                             const char *builtin_pool, bool legacy_member)
{
    char **needed = NULL;
    vo_strv_pushf(&needed, "%s", VO_JOIN_CHECK_HOST);
    vo_strv_pushf(&needed, "%s", VO_JOIN_CHECK_VMS);
    vo_strv_pushf(&needed, "%s", VO_JOIN_CHECK_NETWORKS);
    if (json_object_size(projects))
        vo_strv_pushf(&needed, "%s", VO_JOIN_CHECK_PROJECTS);
    size_t i;
    json_t *v;
    bool pools_to_check = false;
    json_array_foreach(pools, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        bool rbd = json_is_object(json_object_get(v, "rbd"));
        pools_to_check |= (!name || strcmp(name, builtin_pool) != 0) && !(legacy_member && rbd);
    }
    if (pools_to_check)
        vo_strv_pushf(&needed, "%s", VO_JOIN_CHECK_POOLS);
    return needed;
}

char **vo_join_checks_missing(char *const *needed, const json_t *offered)
{
    char **missing = NULL;
    for (size_t i = 0; needed && needed[i]; i++)
        if (offered ? !in_json(offered, needed[i]) : !in_list(legacy_checks, needed[i]))
            vo_strv_pushf(&missing, "%s", needed[i]);
    return missing;
}

int vo_join_member_usable(const char *member, const json_t *member_join, char *const *needed,
                          char **ret_error)
{
    const json_t *offered = json_object_get(member_join, "checks");
    if (member_join && !json_is_array(offered))
        return vo_error_set(ret_error, -EPROTO, "%s describes its joins in a form this vireod "
                            "does not understand (no list of checks)", member);
    _cleanup_strv_ char **missing = vo_join_checks_missing(needed, offered);
    if (!missing)
        return 0;
    _cleanup_free_ char *list = vo_strv_join(missing, ", ");
    json_int_t protocol = member_join ? json_integer_value(json_object_get(member_join,
                                                                           "protocol"))
                                      : 1;
    return vo_error_set(ret_error, -EPROTONOSUPPORT,
                        "%s runs an older vireo (join protocol %" JSON_INTEGER_FORMAT ", this "
                        "host %d) that cannot check this host's %s against the cluster's: "
                        "upgrade vireo on the cluster's hosts first, then join",
                        member, protocol, VO_JOIN_PROTOCOL, list);
}

int vo_join_request_accepted(const json_t *req, bool *ret_legacy, char **ret_error)
{
    const json_t *protocol = json_object_get(req, "protocol");
    const json_t *checks = json_object_get(req, "checks");
    *ret_legacy = protocol == NULL;
    if (!protocol)
        return 0;
    if (!json_is_integer(protocol) || json_integer_value(protocol) < 2 || !json_is_array(checks))
        return vo_error_set(ret_error, -EINVAL, "invalid join request: a protocol 2 or later "
                            "with a list of checks");
    char **unknown = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(checks, i, v) {
        if (!json_is_string(v)) {
            vo_strv_free(unknown);
            return vo_error_set(ret_error, -EINVAL, "invalid join request: checks are names");
        }
        if (!in_list(vo_join_checks_made, json_string_value(v)))
            vo_strv_pushf(&unknown, "%s", json_string_value(v));
    }
    if (!unknown)
        return 0;
    _cleanup_free_ char *list = vo_strv_join(unknown, ", ");
    vo_strv_free(unknown);
    return vo_error_set(ret_error, -EPROTONOSUPPORT,
                        "this member runs an older vireo (join protocol %d, the joiner %" JSON_INTEGER_FORMAT
                        ") that cannot check the joiner's %s: upgrade vireo on this host first",
                        VO_JOIN_PROTOCOL, json_integer_value(protocol), list);
}

json_t *vo_join_protocol_json(void)
{
    json_t *checks = json_array();
    for (size_t i = 0; vo_join_checks_made[i]; i++)
        json_array_append_new(checks, json_string(vo_join_checks_made[i]));
    return json_pack("{s:i, s:o}", "protocol", VO_JOIN_PROTOCOL, "checks", checks);
}
