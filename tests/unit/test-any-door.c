/* test-any-door.c: the pure parts of "any host serves the whole cluster"
 * (cluster/any-door.h): which routes name another host's object, the
 * decision (here, forward, offline), raw etcd keys as events, another
 * host's VM document as the API shows it, and the list sort. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "cluster/any-door.h"
#include "api/route-match.h"
#include "util/util.h"

#define HOST "0b6c3c5e-8f0e-4b43-9a43-8a7d1c2b9f11"

static void test_route_owner(void **state)
{
    (void)state;
    assert_int_equal(vo_route_owner("/v1/vms/{vm}"), VO_ROUTE_OWNER_VM);
    assert_int_equal(vo_route_owner("/v1/vms/{vm}/start"), VO_ROUTE_OWNER_VM);
    assert_int_equal(vo_route_owner("/v1/vms/{vm}/console"), VO_ROUTE_OWNER_VM);
    assert_int_equal(vo_route_owner("/v1/vms/{vm}/snapshots/{snapshot}/revert"),
                     VO_ROUTE_OWNER_VM);
    assert_int_equal(vo_route_owner("/v1/tasks/{id}"), VO_ROUTE_OWNER_TASK);
    assert_int_equal(vo_route_owner("/v1/tasks/{id}/cancel"), VO_ROUTE_OWNER_TASK);
    assert_int_equal(vo_route_owner("/v1/vms"), VO_ROUTE_OWNER_NONE);
    assert_int_equal(vo_route_owner("/v1/tasks"), VO_ROUTE_OWNER_NONE);
    assert_int_equal(vo_route_owner("/v1/vms/{vmx}"), VO_ROUTE_OWNER_NONE);
    assert_int_equal(vo_route_owner("/v1/pools/{pool}"), VO_ROUTE_OWNER_NONE);
    assert_int_equal(vo_route_owner(NULL), VO_ROUTE_OWNER_NONE);
    /* Every route of the table under /v1/vms/{vm} is a VM's, every
     * /v1/tasks/{id} a task's: none is forgotten by the one place that
     * forwards. (A peer route naming a VM elsewhere, such as a cold move's
     * file route, is served where it is asked.) */
    size_t vm_routes = 0;
    for (size_t i = 0; i < vo_n_route_specs; i++) {
        const char *p = vo_route_specs[i].pattern;
        VoRouteOwner o = vo_route_owner(p);
        if (!strncmp(p, "/v1/vms/{vm}", 12)) {
            assert_int_equal(o, VO_ROUTE_OWNER_VM);
            vm_routes++;
        } else if (!strncmp(p, "/v1/tasks/", 10))
            assert_int_equal(o, VO_ROUTE_OWNER_TASK);
        else
            assert_int_equal(o, VO_ROUTE_OWNER_NONE);
    }
    assert_true(vm_routes >= 20);
}

static void test_decide(void **state)
{
    (void)state;
    VoDoorFacts f = { .owner = VO_ROUTE_OWNER_VM, .clustered = true, .found = true,
                      .online = true };
    assert_int_equal(vo_door_decide(&f), VO_DOOR_FORWARD);
    f.online = false;
    assert_int_equal(vo_door_decide(&f), VO_DOOR_OFFLINE);
    f.show = true;
    assert_int_equal(vo_door_decide(&f), VO_DOOR_OFFLINE_DOC);
    f.owner = VO_ROUTE_OWNER_TASK; /* a task of an offline host: no document view */
    assert_int_equal(vo_door_decide(&f), VO_DOOR_OFFLINE);
    f = (VoDoorFacts){ .owner = VO_ROUTE_OWNER_TASK, .clustered = true, .found = true,
                       .online = true };
    assert_int_equal(vo_door_decide(&f), VO_DOOR_FORWARD);
    /* Served here: forwarded already (never twice), ours, nobody's,
     * standalone, a route of no object. */
    VoDoorFacts local[] = {
        { .owner = VO_ROUTE_OWNER_VM, .clustered = true, .found = true, .online = true,
          .forwarded = true },
        { .owner = VO_ROUTE_OWNER_VM, .clustered = true, .found = true, .online = true,
          .here = true },
        { .owner = VO_ROUTE_OWNER_VM, .clustered = true },
        { .owner = VO_ROUTE_OWNER_VM, .found = true, .online = true },
        { .owner = VO_ROUTE_OWNER_NONE, .clustered = true, .found = true, .online = true },
    };
    for (size_t i = 0; i < ELEMENTSOF(local); i++)
        assert_int_equal(vo_door_decide(&local[i]), VO_DOOR_LOCAL);
}

static void test_key_split(void **state)
{
    (void)state;
    const char *host, *rest;
    size_t n;
    assert_true(vo_cluster_key_split("h/" HOST "/vms/abc", &host, &n, &rest));
    assert_int_equal(n, strlen(HOST));
    assert_memory_equal(host, HOST, n);
    assert_string_equal(rest, "vms/abc");
    assert_true(vo_cluster_key_split("h/x/operations/1", &host, &n, &rest));
    assert_int_equal(n, 1);
    static const char *const bad[] = { "h/", "h//vms/a", "h/x", "h/x/", "vms/a",
                                       "cluster/hosts/x", "hx/y/z", "" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_false(vo_cluster_key_split(bad[i], &host, &n, &rest));
    assert_false(vo_cluster_key_split(NULL, &host, &n, &rest));
}

static void test_key_object(void **state)
{
    (void)state;
    char host[64];
    const char *kind, *id;
    assert_true(vo_cluster_key_object("h/" HOST "/vms/v1", host, sizeof(host), &kind, &id));
    assert_string_equal(host, HOST);
    assert_string_equal(kind, "vm");
    assert_string_equal(id, "v1");
    assert_true(vo_cluster_key_object("h/h2/operations/t9", host, sizeof(host), &kind, &id));
    assert_string_equal(host, "h2");
    assert_string_equal(kind, "operation");
    assert_string_equal(id, "t9");
    assert_true(vo_cluster_key_object("h/h2/volumes/default/d", host, sizeof(host), &kind, &id));
    assert_string_equal(kind, "volume");
    assert_string_equal(id, "default/d");
    assert_true(vo_cluster_key_object("cluster/hosts/" HOST, host, sizeof(host), &kind, &id));
    assert_string_equal(kind, "host");
    assert_string_equal(id, HOST);
    assert_string_equal(host, HOST);
    /* Its member document too (the maintenance flag of an offline host). */
    assert_true(vo_cluster_key_object("cluster/members/h2", host, sizeof(host), &kind, &id));
    assert_string_equal(kind, "host");
    assert_string_equal(id, "h2");
    assert_string_equal(host, "h2");
    /* Bookkeeping and other cluster documents make no event. */
    static const char *const none[] = { "h/h2/uses/volumes/default/d/v1", "h/h2/settings/x",
                                        "cluster/names/vms/web", "cluster/members/",
                                        "cluster/manager", "cluster/hosts/", "vms/v1",
                                        "cluster/hosts/a/b", "cluster/members/a/b" };
    for (size_t i = 0; i < ELEMENTSOF(none); i++)
        assert_false(vo_cluster_key_object(none[i], host, sizeof(host), &kind, &id));
    /* A host id longer than the buffer is refused, not cut. */
    char small[4];
    assert_false(vo_cluster_key_object("h/abcd/vms/v", small, sizeof(small), &kind, &id));
    assert_true(vo_cluster_key_object("h/abc/vms/v", small, sizeof(small), &kind, &id));
}

static void test_doc_to_api(void **state)
{
    (void)state;
    const char *doc = "{\"spec\":{\"id\":\"v1\",\"name\":\"web\",\"vcpus\":2,\"memory_mib\":"
                      "512,\"accel\":\"auto\",\"autostart\":false,\"disks\":[]},"
                      "\"status\":{\"state\":\"running\",\"created_at\":1000,"
                      "\"started_at\":5000}}";
    json_t *o = vo_vm_doc_to_api(doc, true, "h2", "online", 65000);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "web");
    assert_string_equal(json_string_value(json_object_get(o, "state")), "running");
    assert_string_equal(json_string_value(json_object_get(o, "host")), "h2");
    assert_string_equal(json_string_value(json_object_get(o, "host_state")), "online");
    assert_int_equal(json_integer_value(json_object_get(o, "uptime_s")), 60);
    assert_int_equal(json_integer_value(json_object_get(o, "vcpus")), 2);
    assert_null(json_object_get(o, "disks")); /* the summary's fields only */
    json_decref(o);
    /* The summary keeps the VM's project: the list filter of a user with
     * roles on projects only reads it (absent, the VM counted as
     * "default"'s: shown to default's users, hidden from its own). */
    const char *team = "{\"spec\":{\"id\":\"v2\",\"name\":\"db\",\"project\":\"team\","
                       "\"ha\":true},\"status\":{\"state\":\"stopped\"}}";
    o = vo_vm_doc_to_api(team, true, "h2", "online", 65000);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "project")), "team");
    assert_true(json_is_true(json_object_get(o, "ha")));
    json_decref(o);
    o = vo_vm_doc_to_api(doc, false, "h2", "offline", 65000);
    assert_non_null(json_object_get(o, "disks"));
    assert_string_equal(json_string_value(json_object_get(o, "created_at")),
                        "1970-01-01T00:00:01Z");
    assert_string_equal(json_string_value(json_object_get(o, "host_state")), "offline");
    json_decref(o);
    const char *stopped = "{\"spec\":{\"id\":\"v1\",\"name\":\"web\"},\"status\":{\"state\":"
                          "\"stopped\",\"started_at\":5000,\"exit_reason\":\"shutdown\"}}";
    o = vo_vm_doc_to_api(stopped, false, NULL, NULL, 65000);
    assert_null(json_object_get(o, "uptime_s"));
    assert_null(json_object_get(o, "host"));
    assert_string_equal(json_string_value(json_object_get(o, "exit_reason")), "shutdown");
    json_decref(o);
    /* HA's fields at the document's top: the manager's note on a VM of an
     * offline host is shown by this view alone while that host is away. */
    const char *held = "{\"spec\":{\"id\":\"v1\",\"name\":\"web\",\"ha\":true},\"status\":"
                       "{\"state\":\"crashed\"},\"ha\":true,\"ha_state\":\"restart limit: "
                       "left where it was\",\"ha_restarts\":[1000,2000],\"ha_start_failed\":true}";
    o = vo_vm_doc_to_api(held, false, "h2", "offline", 65000);
    assert_string_equal(json_string_value(json_object_get(o, "ha_state")),
                        "restart limit: left where it was");
    json_t *restarts = json_object_get(o, "ha_restarts");
    assert_int_equal(json_array_size(restarts), 2);
    assert_string_equal(json_string_value(json_array_get(restarts, 1)), "1970-01-01T00:00:02Z");
    assert_true(json_is_true(json_object_get(o, "ha_start_failed")));
    json_decref(o);
    o = vo_vm_doc_to_api(held, true, "h2", "offline", 65000); /* not in the summary */
    assert_null(json_object_get(o, "ha_state"));
    json_decref(o);
    static const char *const bad[] = { "", "[]", "{}", "{\"spec\":{\"id\":\"v\"},\"status\":{}}",
                                       "{\"spec\":{\"name\":\"n\"},\"status\":{\"state\":\"x\"}}",
                                       "not json" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_null(vo_vm_doc_to_api(bad[i], true, "h", "online", 0));
    assert_null(vo_vm_doc_to_api(NULL, true, "h", "online", 0));
    /* cloud-init's user data and password hash are an admin's to read
     * (GET /v1/vms/{vm}/cloud-init), not every reader's of the VM. */
    const char *ci = "{\"spec\":{\"id\":\"v1\",\"name\":\"web\",\"cloud_init\":{\"user\":"
                     "\"alice\",\"password_hash\":\"$6$salt$hash\",\"user_data\":"
                     "\"#cloud-config\\npassword: secret\\n\"}},\"status\":{\"state\":\"stopped\"}}";
    o = vo_vm_doc_to_api(ci, false, "h2", "offline", 0);
    json_t *settings = json_object_get(o, "cloud_init");
    assert_string_equal(json_string_value(json_object_get(settings, "user")), "alice");
    assert_null(json_object_get(settings, "password_hash"));
    assert_null(json_object_get(settings, "user_data"));
    json_decref(o);
}

static void test_sort(void **state)
{
    (void)state;
    json_t *arr = json_loads("[{\"name\":\"b\",\"host\":\"h1\"},{\"name\":\"a\",\"host\":\"h2\"},"
                             "{\"name\":\"a\",\"host\":\"h1\"},{\"host\":\"h3\"}]", 0, NULL);
    vo_json_array_sort_by(arr, "name", "host", false);
    char *text = json_dumps(arr, JSON_COMPACT);
    assert_string_equal(text, "[{\"host\":\"h3\"},{\"name\":\"a\",\"host\":\"h1\"},"
                              "{\"name\":\"a\",\"host\":\"h2\"},{\"name\":\"b\",\"host\":\"h1\"}]");
    free(text);
    vo_json_array_sort_by(arr, "name", NULL, true);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "name")), "b");
    /* Stable: equal names keep their order. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "host")), "h1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 2), "host")), "h2");
    json_decref(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_owner), cmocka_unit_test(test_decide),
        cmocka_unit_test(test_key_split),   cmocka_unit_test(test_key_object),
        cmocka_unit_test(test_doc_to_api),  cmocka_unit_test(test_sort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
