/* test-drs-config.c: the cluster's DRS settings as PUT /v1/cluster/drs
 * sets them (daemon/drs-config.c): bad bodies change nothing, and a set
 * of one field keeps the other as stored at its put, not as read before
 * (another host may set it meanwhile). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "held-write.h"

#include "cluster/cluster-config.h"
#include "daemon/drs-settings.h"
#include "state/store.h"
#include "util/util.h"
#include "vireo/errors.h"

typedef SettingsFixture Fixture;

static int setup(void **state)
{
    return settings_fixture_setup(state, "drs-config", true);
}

static int teardown(void **state)
{
    return settings_fixture_teardown(state);
}

/* PUT with body (JSON text): its result, the settings after in *ret. */
static int set(Fixture *f, const char *body, VoDrsSettings *ret)
{
    json_t *b = json_loads(body, 0, NULL), *doc = NULL;
    _cleanup_free_ char *error = NULL;
    int r = vo_drs_settings_set(&f->d, b, &doc, &error);
    json_decref(b);
    json_decref(doc);
    assert_int_equal(vo_drs_settings_get(&f->d, ret), 0);
    return r;
}

static void test_bad_bodies_change_nothing(void **state)
{
    Fixture *f = *state;
    VoDrsSettings s;
    assert_int_equal(set(f, "{\"mode\": \"sometimes\"}", &s), -EINVAL);
    assert_int_equal(set(f, "{\"level\": 6}", &s), -EINVAL);
    assert_int_equal(set(f, "{\"mode\": \"auto\", \"level\": 0}", &s), -EINVAL);
    assert_int_equal(set(f, "{\"level\": 2, \"other\": 1}", &s), -EINVAL);
    assert_int_equal(set(f, "{}", &s), -EINVAL);
    assert_int_equal(s.mode, VO_DRS_OFF);
    assert_int_equal(s.level, VO_DRS_LEVEL_DEFAULT);
    assert_int_equal(set(f, "{\"mode\": \"manual\"}", &s), 0);
    assert_int_equal(s.mode, VO_DRS_MANUAL);
    assert_int_equal(s.level, VO_DRS_LEVEL_DEFAULT);
    assert_int_equal(set(f, "{\"level\": 1}", &s), 0);
    assert_int_equal(s.mode, VO_DRS_MANUAL);
    assert_int_equal(s.level, 1);
}

static void *set_level(void *userdata)
{
    VoDrsSettings s;
    return (void *)(intptr_t)set(userdata, "{\"level\": 5}", &s);
}

/* A set of the level held between its read and its put while another
 * host sets the mode: both hold after. */
static void test_set_keeps_the_other_field_set_meanwhile(void **state)
{
    Fixture *f = *state;
    VoDrsSettings s;
    assert_int_equal(set(f, "{\"mode\": \"manual\", \"level\": 3}", &s), 0);
    /* The other host's PUT {"mode": "auto"} meanwhile. */
    assert_int_equal(test_held_write(f->dir, "drs-settings-put", set_level, f, f->store,
                                     VO_DRS_SETTINGS_KEY, "{\"level\":3,\"mode\":\"auto\"}"),
                     0);
    assert_int_equal(vo_drs_settings_get(&f->d, &s), 0);
    assert_int_equal(s.level, 5);
    assert_int_equal(s.mode, VO_DRS_AUTO);
}

/* A set whose document changes under each of its tries gives up with
 * -ESTALE (the API's 409) and changes nothing; one try fewer and it holds. */
static void test_changed_under_every_try_is_a_conflict(void **state)
{
    Fixture *f = *state;
    VoDrsSettings s;
    _cleanup_free_ char *fault = vo_asprintf("%s/put@cluster+drs", f->dir);
    setenv("VIREO_TEST_STORE_FAULTS", f->dir, 1);
    assert_int_equal(vo_write_file_atomic(fault, "5 ESTALE", 8), 0);
    json_t *b = json_pack("{s:s}", "mode", "auto"), *doc = NULL;
    _cleanup_free_ char *error = NULL;
    int r = vo_drs_settings_set(&f->d, b, &doc, &error);
    json_decref(b);
    assert_int_equal(r, -ESTALE);
    assert_null(doc);
    assert_non_null(strstr(error, "changed under this set 5 times"));
    assert_int_equal(vo_error_http_status(vo_error_from_errno(r)), 409);
    assert_int_equal(access(fault, F_OK), -1); /* every try was made */
    assert_int_equal(vo_drs_settings_get(&f->d, &s), 0);
    assert_int_equal(s.mode, VO_DRS_OFF);
    assert_int_equal(vo_write_file_atomic(fault, "4 ESTALE", 8), 0);
    assert_int_equal(set(f, "{\"mode\": \"auto\"}", &s), 0);
    unsetenv("VIREO_TEST_STORE_FAULTS");
    assert_int_equal(s.mode, VO_DRS_AUTO);
}

/* A standalone host has no DRS settings to set. */
static void test_standalone_is_refused(void **state)
{
    Fixture *f = *state;
    f->d.cluster = NULL;
    json_t *b = json_pack("{s:s}", "mode", "auto"), *doc = NULL;
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_drs_settings_set(&f->d, b, &doc, &error), -ENOTCONN);
    assert_non_null(strstr(error, "not in a cluster"));
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_bodies_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_keeps_the_other_field_set_meanwhile, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_changed_under_every_try_is_a_conflict, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_standalone_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
