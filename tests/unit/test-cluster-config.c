/* test-cluster-config.c: STATE/cluster/cluster.json: round trip, defaults,
 * and every refusal naming its field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster-config.h"
#include "util/util.h"

static void test_round_trip(void **state)
{
    char *eps[] = { "https://10.0.0.1:2379", "https://10.0.0.2:2379", NULL };
    VoClusterConfig c = { .cluster_id = "c1", .address = "10.0.0.1", .api_port = 8443,
                          .etcd_client_port = 2379, .etcd_peer_port = 2380, .etcd_member = true,
                          .etcd_name = "h1", .etcd_initial_cluster = "h1=https://10.0.0.1:2380",
                          .endpoints = eps };
    char dir[] = "/tmp/vireo-cc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(vo_cluster_config_save(dir, &c), 0);
    _cleanup_free_ char *state_dir = vo_strdup(dir);
    /* load reads STATE/cluster/cluster.json: make that layout. */
    _cleanup_free_ char *cdir = vo_asprintf("%s/cluster", dir);
    assert_int_equal(vo_mkdir_p(cdir, 0700), 0);
    assert_int_equal(vo_cluster_config_save(cdir, &c), 0);
    VoClusterConfig got;
    char *error = NULL;
    assert_int_equal(vo_cluster_config_load(state_dir, &got, &error), 0);
    assert_string_equal(got.cluster_id, "c1");
    assert_string_equal(got.address, "10.0.0.1");
    assert_true(got.etcd_member && !got.etcd_existing);
    assert_string_equal(got.etcd_name, "h1");
    assert_string_equal(got.endpoints[1], "https://10.0.0.2:2379");
    assert_null(got.endpoints[2]);
    vo_cluster_config_clear(&got);
    assert_int_equal(vo_rm_rf(dir), 0);

    /* Standalone: no file. */
    assert_int_equal(vo_cluster_config_load("/nonexistent-vireo", &got, &error), -ENOENT);
}

static void test_defaults_and_urls(void **state)
{
    VoClusterConfig c;
    char *error = NULL;
    assert_int_equal(vo_cluster_config_parse("{\"version\":1,\"cluster_id\":\"x\",\"address\":"
                                             "\"fd00::1\",\"endpoints\":[\"https://[fd00::1]:2379\"]}",
                                             &c, &error),
                     0);
    assert_int_equal(c.api_port, VO_CLUSTER_API_PORT);
    assert_int_equal(c.etcd_peer_port, VO_ETCD_PEER_PORT);
    assert_false(c.etcd_member);
    _cleanup_free_ char *url = vo_cluster_url(c.address, c.api_port);
    assert_string_equal(url, "https://[fd00::1]:8443");
    _cleanup_free_ char *url4 = vo_cluster_url("10.1.2.3", 2379);
    assert_string_equal(url4, "https://10.1.2.3:2379");
    vo_cluster_config_clear(&c);
}

static void test_refusals(void **state)
{
    static const struct {
        const char *text, *names;
    } cases[] = {
        { "[]", "not a JSON object" },
        { "{\"version\":2}", "version" },
        { "{\"version\":1,\"cluster_id\":\"x\",\"address\":\"10.0.0.1\",\"endpoints\":[\"https://a\"],\"bogus\":1}",
          "bogus" },
        { "{\"version\":1,\"address\":\"10.0.0.1\",\"endpoints\":[\"https://a\"]}", "cluster_id" },
        { "{\"version\":1,\"cluster_id\":\"x\",\"address\":\"../etc\",\"endpoints\":[\"https://a\"]}",
          "address" },
        { "{\"version\":1,\"cluster_id\":\"x\",\"address\":\"10.0.0.1\",\"endpoints\":[]}", "endpoints" },
        { "{\"version\":1,\"cluster_id\":\"x\",\"address\":\"10.0.0.1\",\"endpoints\":[\"http://a\"]}",
          "endpoint 1" },
        { "{\"version\":1,\"cluster_id\":\"x\",\"address\":\"10.0.0.1\",\"api_port\":0,\"endpoints\":[\"https://a\"]}",
          "api_port" },
        { "{\"version\":1,\"cluster_id\":\"x\",\"address\":\"10.0.0.1\",\"etcd_member\":true,\"endpoints\":[\"https://a\"]}",
          "etcd_name" },
        { "{\"version\":1,\"version\":1}", "not a JSON object" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        VoClusterConfig c;
        char *error = NULL;
        assert_int_equal(vo_cluster_config_parse(cases[i].text, &c, &error), -EINVAL);
        assert_non_null(error);
        if (!strstr(error, cases[i].names))
            fail_msg("case %zu: '%s' does not name '%s'", i, error, cases[i].names);
        free(error);
        assert_null(c.cluster_id);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_defaults_and_urls),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
