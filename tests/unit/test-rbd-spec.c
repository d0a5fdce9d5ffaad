/* test-rbd-spec.c: an rbd pool's create request (conf/rbd-spec.c and the
 * rbd part of conf/storage-spec.c): monitors, Ceph pool and user names, the
 * key read out of a keyring, and what a body of type rbd must and must not
 * hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "conf/rbd-spec.h"
#include "conf/storage-spec.h"
#include "util/util.h"

static void test_monitors(void **state)
{
    (void)state;
    const char *good[] = { "10.0.0.1", "10.0.0.1:6789", "10.0.0.1,10.0.0.2:3300",
                           "[::1]", "[fd00::5]:3300,127.0.0.1" };
    for (size_t i = 0; i < ELEMENTSOF(good); i++)
        if (!vo_rbd_monitors_valid(good[i]))
            fail_msg("refused %s", good[i]);
    const char *bad[] = { "", "mon1", "10.0.0.1,", ",10.0.0.1", "10.0.0.1,,10.0.0.2",
                          "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:", "10.0.0.1:x",
                          "::1", "[::1", "[::1]x", "10.0.0.1 ,10.0.0.2", "300.0.0.1",
                          "1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,"
                          "1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        if (vo_rbd_monitors_valid(bad[i]))
            fail_msg("accepted %s", bad[i]);
    assert_false(vo_rbd_monitors_valid(NULL));
}

static void test_names(void **state)
{
    (void)state;
    assert_true(vo_rbd_pool_name_valid("vms"));
    assert_true(vo_rbd_pool_name_valid("Vireo_vms-1.ssd"));
    assert_false(vo_rbd_pool_name_valid(".rgw"));
    assert_false(vo_rbd_pool_name_valid(""));
    assert_false(vo_rbd_pool_name_valid("a/b"));
    assert_false(vo_rbd_pool_name_valid("a b"));
    assert_true(vo_rbd_user_valid("vireo"));
    assert_true(vo_rbd_user_valid("admin"));
    assert_false(vo_rbd_user_valid("client.vireo"));
    assert_false(vo_rbd_user_valid("a:b"));
    char longer[70];
    memset(longer, 'a', 64);
    longer[64] = 0;
    assert_false(vo_rbd_user_valid(longer));
}

static void test_keyring(void **state)
{
    (void)state;
    char *key = NULL, *error = NULL;
    const char *two = "[client.admin]\n\tkey = AAAA==\n\tcaps mon = \"allow *\"\n"
                      "[client.vireo]\n  key=BBBB+/==  \r\n";
    assert_int_equal(vo_rbd_keyring_key(two, "vireo", &key, &error), 0);
    assert_string_equal(key, "BBBB+/==");
    free(key);
    assert_int_equal(vo_rbd_keyring_key(two, "admin", &key, &error), 0);
    assert_string_equal(key, "AAAA==");
    free(key);
    /* Not there: named; of two sections, no guess. */
    assert_int_equal(vo_rbd_keyring_key(two, "other", &key, &error), -ENOENT);
    assert_non_null(strstr(error, "client.other"));
    free(error);
    /* One section (ceph auth get-key output into a file of another name): its key. */
    assert_int_equal(vo_rbd_keyring_key("[client.x]\nkey = CCCC\n", "vireo", &key, &error), 0);
    assert_string_equal(key, "CCCC");
    free(key);
    assert_int_equal(vo_rbd_keyring_key("key = DDDD\n", "vireo", &key, &error), -ENOENT);
    free(error);
    assert_int_equal(vo_rbd_keyring_key("[client.vireo]\nkey = not base64!\n", "vireo", &key,
                                        &error), -EINVAL);
    assert_non_null(strstr(error, "not a cephx key"));
    free(error);
    assert_int_equal(vo_rbd_keyring_key("", "vireo", &key, &error), -ENOENT);
    free(error);
}

/* The error for a pool body, or NULL (then *ret filled) when accepted. */
static char *pool_error(const char *text, VoPoolSpec *ret)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    char *error = NULL;
    int r = vo_pool_spec_from_json(doc, ret, &error);
    json_decref(doc);
    if (r < 0) {
        assert_int_equal(r, -EINVAL);
        assert_null(ret->name);
        assert_non_null(error);
    }
    return error;
}

#define RBD_BODY(extra)                                                                    \
    "{\"name\": \"ceph1\", \"type\": \"rbd\", \"monitors\": \"10.0.0.1,10.0.0.2\", "         \
    "\"pool\": \"vms\", \"user\": \"vireo\", \"keyring\": \"/etc/ceph/k\"" extra "}"

static void assert_pool_refused(const char *text, const char *needle)
{
    VoPoolSpec s;
    char *e = pool_error(text, &s);
    if (!e)
        fail_msg("%s: accepted", text);
    if (!strstr(e, needle))
        fail_msg("%s: '%s' does not mention '%s'", text, e, needle);
    free(e);
}

static void test_pool_spec(void **state)
{
    (void)state;
    VoPoolSpec s;
    assert_null(pool_error(RBD_BODY(""), &s));
    assert_string_equal(s.type, "rbd");
    assert_string_equal(s.monitors, "10.0.0.1,10.0.0.2");
    assert_string_equal(s.rbd_pool, "vms");
    assert_string_equal(s.user, "vireo");
    assert_string_equal(s.keyring, "/etc/ceph/k");
    assert_null(s.path);
    vo_pool_spec_clear(&s);
    assert_pool_refused(RBD_BODY(", \"path\": \"/srv\""), "path");
    assert_pool_refused(RBD_BODY(", \"shared\": true"), "shared");
    assert_pool_refused(RBD_BODY(", \"secret\": \"x\""), "secret");
    assert_pool_refused("{\"name\": \"c\", \"type\": \"rbd\", \"pool\": \"vms\", \"user\": \"u\", "
                        "\"keyring\": \"/k\"}", "monitors");
    assert_pool_refused("{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": \"mon1\", \"pool\": "
                        "\"vms\", \"user\": \"u\", \"keyring\": \"/k\"}", "monitors: 'mon1'");
    assert_pool_refused("{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": \"10.0.0.1\", "
                        "\"pool\": \".x\", \"user\": \"u\", \"keyring\": \"/k\"}", "pool: '.x'");
    assert_pool_refused("{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": \"10.0.0.1\", "
                        "\"pool\": \"vms\", \"user\": \"client.u\", \"keyring\": \"/k\"}",
                        "user: 'client.u'");
    assert_pool_refused("{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": \"10.0.0.1\", "
                        "\"pool\": \"vms\", \"user\": \"u\", \"keyring\": \"k\"}",
                        "keyring: 'k'");
    assert_pool_refused("{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": \"10.0.0.1\", "
                        "\"pool\": \"vms\", \"user\": \"u\"}", "keyring");
    /* The rbd fields belong to rbd pools only; a dir pool still needs its path. */
    assert_pool_refused("{\"name\": \"d\", \"path\": \"/srv\", \"monitors\": \"10.0.0.1\"}",
                        "for rbd pools");
    assert_pool_refused("{\"name\": \"d\"}", "path");
    assert_pool_refused("{\"name\": \"d\", \"type\": \"lvm\", \"path\": \"/srv\"}",
                        "dir, backup, iscsi or rbd");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monitors),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_keyring),
        cmocka_unit_test(test_pool_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
