/* test-join-protocol.c: joins across vireo versions (cluster/join-protocol.c):
 * which checks a joiner's documents need, which a member makes, the
 * joiner's refusal of a member that cannot make one (naming what to
 * upgrade), and a member's refusal of a request needing a check it does
 * not know, while it ignores the fields it does not know. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cluster/join-protocol.h"
#include "util/util.h"

#define MEMBER "https://10.0.0.1:8443"

static json_t *parse(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static void test_needed(void **state)
{
    (void)state;
    json_t *projects = parse("{\"default\":{\"usage\":{}}}"), *empty = json_object();
    json_t *pools = parse("[{\"name\":\"default\",\"type\":\"dir\",\"path\":\"/p\"},"
                          "{\"name\":\"p1\",\"type\":\"dir\",\"path\":\"/q\"}]");
    json_t *builtin_only = parse("[{\"name\":\"default\",\"type\":\"dir\",\"path\":\"/p\"}]");
    json_t *none = json_array();
    _cleanup_strv_ char **legacy = vo_join_checks_needed(empty, none, "default", false);
    assert_int_equal(vo_strv_len(legacy), 3);
    _cleanup_strv_ char **all = vo_join_checks_needed(projects, pools, "default", false);
    assert_int_equal(vo_strv_len(all), 5);
    assert_string_equal(all[3], VO_JOIN_CHECK_PROJECTS);
    assert_string_equal(all[4], VO_JOIN_CHECK_POOLS);
    /* Every host's own "default" pool alone needs no check. */
    _cleanup_strv_ char **builtin = vo_join_checks_needed(empty, builtin_only, "default", false);
    assert_int_equal(vo_strv_len(builtin), 3);
    /* An rbd pool: "pools" of a member of protocol 2; one before it checks
     * the request's "rbd_pools" (which a legacy request carries). */
    json_t *rbd = parse("[{\"name\":\"ceph\",\"type\":\"rbd\",\"path\":\"/r\","
                        "\"rbd\":{\"monitors\":\"m\",\"pool\":\"p\",\"user\":\"u\"}}]");
    _cleanup_strv_ char **rbd_now = vo_join_checks_needed(empty, rbd, "default", false);
    assert_int_equal(vo_strv_len(rbd_now), 4);
    assert_string_equal(rbd_now[3], VO_JOIN_CHECK_POOLS);
    _cleanup_strv_ char **rbd_legacy = vo_join_checks_needed(empty, rbd, "default", true);
    assert_int_equal(vo_strv_len(rbd_legacy), 3);
    _cleanup_strv_ char **dir_legacy = vo_join_checks_needed(empty, pools, "default", true);
    assert_int_equal(vo_strv_len(dir_legacy), 4);
    json_decref(rbd);
    json_decref(builtin_only);
    json_decref(projects);
    json_decref(empty);
    json_decref(pools);
    json_decref(none);
}

/* The joiner's side: this vireo's member takes everything; one before
 * protocol 2 (no "join" with its CA) only the legacy checks; one of a
 * later protocol that dropped a check is refused naming it. */
static void test_member_usable(void **state)
{
    (void)state;
    json_t *projects = parse("{\"default\":{\"usage\":{}}}"), *empty = json_object();
    json_t *pools = parse("[{\"name\":\"p1\",\"type\":\"dir\",\"path\":\"/p\"}]");
    json_t *none = json_array();
    _cleanup_strv_ char **all = vo_join_checks_needed(projects, pools, "default", false);
    _cleanup_strv_ char **legacy = vo_join_checks_needed(empty, none, "default", true);
    /* A host with VMs has projects: a member before protocol 2 checks
     * them (or refuses the field), so it is usable. */
    _cleanup_strv_ char **with_vms = vo_join_checks_needed(projects, none, "default", true);
    json_t *now = vo_join_protocol_json();
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_join_member_usable(MEMBER, now, all, &error), 0);
    assert_int_equal(vo_join_member_usable(MEMBER, NULL, legacy, &error), 0);
    assert_int_equal(vo_join_member_usable(MEMBER, NULL, with_vms, &error), 0);
    assert_null(vo_join_checks_missing(with_vms, NULL)); /* its answer: no "checks" */
    assert_null(error);
    assert_int_equal(vo_join_member_usable(MEMBER, NULL, all, &error), -EPROTONOSUPPORT);
    assert_string_equal(error, MEMBER " runs an older vireo (join protocol 1, this host 2) that "
                        "cannot check this host's pools against the cluster's: "
                        "upgrade vireo on the cluster's hosts first, then join");
    free(error);
    error = NULL;
    json_t *odd = parse("{\"protocol\":2,\"checks\":[\"host\",\"vm-names\",\"networks\","
                        "\"pools\"]}");
    assert_int_equal(vo_join_member_usable(MEMBER, odd, all, &error), -EPROTONOSUPPORT);
    assert_non_null(strstr(error, "cannot check this host's projects against"));
    free(error);
    error = NULL;
    json_t *bad = parse("{\"protocol\":3}");
    assert_int_equal(vo_join_member_usable(MEMBER, bad, all, &error), -EPROTO);
    _cleanup_strv_ char **missing = vo_join_checks_missing(all, json_object_get(odd, "checks"));
    assert_int_equal(vo_strv_len(missing), 1);
    assert_null(vo_join_checks_missing(all, json_object_get(now, "checks")));
    json_decref(now);
    json_decref(odd);
    json_decref(bad);
    json_decref(projects);
    json_decref(empty);
    json_decref(pools);
    json_decref(none);
}

/* The member's side. */
static void test_request_accepted(void **state)
{
    (void)state;
    bool legacy = false;
    _cleanup_free_ char *error = NULL;
    json_t *old = parse("{\"cluster\":\"c\",\"vms\":[],\"networks\":[]}");
    assert_int_equal(vo_join_request_accepted(old, &legacy, &error), 0);
    assert_true(legacy);
    json_t *now = parse("{\"protocol\":2,\"checks\":[\"host\",\"pools\"],\"pools\":[]}");
    assert_int_equal(vo_join_request_accepted(now, &legacy, &error), 0);
    assert_false(legacy);
    /* A later joiner: an unknown field alone is fine (named by no check),
     * a check this member does not make is refused naming it. */
    json_t *later = parse("{\"protocol\":3,\"checks\":[\"host\"],\"hint\":1}");
    assert_int_equal(vo_join_request_accepted(later, &legacy, &error), 0);
    json_t *needs = parse("{\"protocol\":3,\"checks\":[\"host\",\"gpus\",\"pools\"]}");
    assert_int_equal(vo_join_request_accepted(needs, &legacy, &error), -EPROTONOSUPPORT);
    assert_string_equal(error, "this member runs an older vireo (join protocol 2, the joiner 3) "
                        "that cannot check the joiner's gpus: upgrade vireo on this host first");
    free(error);
    error = NULL;
    json_t *bad = parse("{\"protocol\":1,\"checks\":[]}");
    assert_int_equal(vo_join_request_accepted(bad, &legacy, &error), -EINVAL);
    free(error);
    error = NULL;
    json_t *nochecks = parse("{\"protocol\":2}");
    assert_int_equal(vo_join_request_accepted(nochecks, &legacy, &error), -EINVAL);
    json_decref(old);
    json_decref(now);
    json_decref(later);
    json_decref(needs);
    json_decref(bad);
    json_decref(nochecks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_needed),
        cmocka_unit_test(test_member_usable),
        cmocka_unit_test(test_request_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
