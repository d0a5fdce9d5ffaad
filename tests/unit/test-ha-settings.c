/* test-ha-settings.c: the cluster's HA restart limit as PATCH
 * /v1/cluster/ha sets it (daemon/ha-settings.c): bad bodies change
 * nothing, and a set of one field keeps the other as stored at its put,
 * not as read before (another host may set it meanwhile). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "held-write.h"

#include "daemon/ha-settings.h"
#include "state/store.h"
#include "util/util.h"

typedef SettingsFixture Fixture;

static int setup(void **state)
{
    return settings_fixture_setup(state, "ha-settings", false);
}

static int teardown(void **state)
{
    return settings_fixture_teardown(state);
}

/* PATCH with body (JSON text): its status, the settings after in *ret. */
static int set(Fixture *f, const char *body, VoHaLimit *ret)
{
    json_t *b = json_loads(body, 0, NULL), *doc = NULL;
    _cleanup_free_ char *error = NULL;
    int r = vo_ha_settings_set(&f->d, b, &doc, &error);
    json_decref(b);
    json_decref(doc);
    assert_int_equal(vo_ha_limit_get(&f->d, ret), 0);
    return r;
}

static void test_bad_bodies_change_nothing(void **state)
{
    Fixture *f = *state;
    VoHaLimit l;
    assert_int_equal(set(f, "{\"max_restarts\": 0}", &l), -EINVAL);
    assert_int_equal(set(f, "{\"window_minutes\": 10081}", &l), -EINVAL);
    assert_int_equal(set(f, "{\"max_restarts\": 2, \"other\": 1}", &l), -EINVAL);
    assert_int_equal(set(f, "{}", &l), -EINVAL);
    assert_int_equal(l.max_restarts, VO_HA_MAX_RESTARTS_DEFAULT);
    assert_int_equal(set(f, "{\"max_restarts\": 2}", &l), 0);
    assert_int_equal(l.max_restarts, 2);
    assert_int_equal(l.window_ms, VO_HA_WINDOW_MINUTES_DEFAULT * 60000LL);
}

static void *set_window(void *userdata)
{
    VoHaLimit l;
    return (void *)(intptr_t)set(userdata, "{\"window_minutes\": 30}", &l);
}

/* A set of the window held between its read and its put while another
 * host sets the restarts: both hold after. */
static void test_set_keeps_the_other_field_set_meanwhile(void **state)
{
    Fixture *f = *state;
    /* The other host's PATCH {"max_restarts": 5} meanwhile. */
    assert_int_equal(test_held_write(f->dir, "ha-settings-put", set_window, f, f->store,
                                     VO_HA_SETTINGS_KEY,
                                     "{\"max_restarts\":5,\"window_minutes\":10}"),
                     0);
    VoHaLimit l;
    assert_int_equal(vo_ha_limit_get(&f->d, &l), 0);
    assert_int_equal(l.window_ms, 30 * 60000LL);
    assert_int_equal(l.max_restarts, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_bodies_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_keeps_the_other_field_set_meanwhile, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
