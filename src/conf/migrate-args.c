/* migrate-args.c: parses the body of POST /v1/vms/{vm}/migrate
 * (migrate-args.h). */
#include "conf/migrate-args.h"

#include <string.h>

#include "conf/names.h"
#include "util/util.h"

int vo_migrate_args_parse(json_t *body, VoMigrateArgs *ret, char **ret_error)
{
    *ret = (VoMigrateArgs){ 0 };
    if (body && !json_is_object(body))
        return vo_error_set(ret_error, -EINVAL, "the body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (!strcmp(key, "to")) {
            if (!json_is_string(v) && !json_is_null(v))
                return vo_error_set(ret_error, -EINVAL, "to: must be a host name or id");
            ret->to = json_string_value(v);
            if (ret->to && !*ret->to)
                return vo_error_set(ret_error, -EINVAL, "to: must be a host name or id");
        } else if (!strcmp(key, "pool")) {
            if (!json_is_string(v) && !json_is_null(v))
                return vo_error_set(ret_error, -EINVAL, "pool: must be a pool name");
            ret->pool = json_string_value(v);
            if (ret->pool && !vo_name_valid(ret->pool))
                return vo_error_set(ret_error, -EINVAL, "pool: '%s' is not a pool name",
                                    ret->pool);
        } else if (!strcmp(key, "max_downtime_ms")) {
            json_int_t ms = json_integer_value(v);
            if (!json_is_integer(v) || ms < 1 || ms > 60000)
                return vo_error_set(ret_error, -EINVAL,
                                    "max_downtime_ms: must be an integer from 1 to 60000");
            ret->max_downtime_ms = (unsigned)ms;
        } else if (!strcmp(key, "bandwidth")) {
            uint64_t bytes = 0;
            if (json_is_integer(v) && json_integer_value(v) > 0) {
                bytes = (uint64_t)json_integer_value(v);
            } else if (json_is_string(v)) {
                _cleanup_free_ char *s = vo_strdup(json_string_value(v));
                size_t n = strlen(s);
                if (n > 2 && !strcmp(s + n - 2, "/s"))
                    s[n - 2] = 0;
                if (vo_parse_size(s, &bytes) < 0)
                    bytes = 0;
            }
            if (!bytes)
                return vo_error_set(ret_error, -EINVAL, "bandwidth: must be bytes per second "
                                    "(a positive integer) or \"SIZE/s\" such as \"100M/s\"");
            ret->bandwidth = bytes;
        } else if (!strcmp(key, "verify_memory")) {
            if (!json_is_boolean(v))
                return vo_error_set(ret_error, -EINVAL, "verify_memory: must be true or false");
            ret->verify_memory = json_is_true(v);
        } else if (!strcmp(key, "converge_timeout_s")) {
            json_int_t sec = json_integer_value(v);
            if (!json_is_integer(v) || sec < 1 || sec > VO_MIGRATE_MAX_CONVERGE_TIMEOUT_S)
                return vo_error_set(ret_error, -EINVAL, "converge_timeout_s: must be an "
                                    "integer from 1 to %d (seconds)",
                                    VO_MIGRATE_MAX_CONVERGE_TIMEOUT_S);
            ret->converge_timeout_s = (unsigned)sec;
        } else if (!strcmp(key, "force_converge")) {
            if (!json_is_boolean(v))
                return vo_error_set(ret_error, -EINVAL, "force_converge: must be true or false");
            ret->force_converge = json_is_true(v);
        } else if (!strcmp(key, "post_copy")) {
            if (!json_is_boolean(v))
                return vo_error_set(ret_error, -EINVAL, "post_copy: must be true or false");
            ret->post_copy = json_is_true(v);
        } else if (!strcmp(key, "resume")) {
            /* false: a migration as without it; true (vireo vm migrate
             * --resume) comes alone and never reaches here. */
            if (!json_is_false(v))
                return vo_error_set(ret_error, -EINVAL, "resume: false here (true retries a "
                                    "post-copy's recovery and takes no other field)");
        } else {
            return vo_error_set(ret_error, -EINVAL, "%s: unknown field (known: to, pool, "
                                "max_downtime_ms, bandwidth, verify_memory, "
                                "converge_timeout_s, force_converge, post_copy, resume)", key);
        }
    }
    return 0;
}

