/* test-etcd-member.c: the etcd member's argv (whole, for a new and a
 * joining member, IPv6, refusals), the member list parser and the
 * --initial-cluster string of a member add. Pure: no etcd runs here
 * (test-etcd-live.c runs two real members). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/etcd-member.h"
#include "util/util.h"

static char *joined(char **argv)
{
    char *s = vo_strdup("");
    for (char **a = argv; *a; a++) {
        char *n = vo_asprintf("%s%s\n", s, *a);
        free(s);
        s = n;
    }
    return s;
}

static void test_argv_new(void **state)
{
    VoEtcdMemberConfig c = { .name = "h1", .state_dir = "/var/lib/vireo", .run_dir = "/run/vireo",
                             .address = "10.0.0.1", .cluster_id = "c-42" };
    _cleanup_strv_ char **argv = NULL;
    assert_int_equal(vo_etcd_member_argv(&c, &argv, NULL), 0);
    _cleanup_free_ char *s = joined(argv);
    assert_string_equal(s,
        "/usr/bin/etcd\n"
        "--name=h1\n"
        "--data-dir=/var/lib/vireo/cluster/etcd\n"
        "--listen-client-urls=https://10.0.0.1:2379,https://127.0.0.1:2379\n"
        "--advertise-client-urls=https://10.0.0.1:2379\n"
        "--listen-peer-urls=https://10.0.0.1:2380\n"
        "--initial-advertise-peer-urls=https://10.0.0.1:2380\n"
        "--initial-cluster=h1=https://10.0.0.1:2380\n"
        "--initial-cluster-state=new\n"
        "--initial-cluster-token=c-42\n"
        "--cert-file=/var/lib/vireo/cluster/host.crt\n"
        "--key-file=/var/lib/vireo/cluster/host.key\n"
        "--trusted-ca-file=/var/lib/vireo/cluster/ca.crt\n"
        "--client-cert-auth\n"
        "--peer-cert-file=/var/lib/vireo/cluster/host.crt\n"
        "--peer-key-file=/var/lib/vireo/cluster/host.key\n"
        "--peer-trusted-ca-file=/var/lib/vireo/cluster/ca.crt\n"
        "--peer-client-cert-auth\n"
        "--enable-grpc-gateway=true\n"
        "--auto-compaction-mode=revision\n"
        "--auto-compaction-retention=10000\n"
        "--quota-backend-bytes=2147483648\n"
        "--heartbeat-interval=100\n"
        "--election-timeout=1000\n"
        "--pre-vote=true\n"
        "--logger=zap\n"
        "--log-outputs=/run/vireo/etcd.log\n");
}

static void test_argv_join(void **state)
{
    VoEtcdMemberConfig c = { .etcd_path = "/opt/etcd", .name = "h2", .state_dir = "/s", .run_dir = "/r",
                             .address = "127.0.0.1", .client_port = 12379, .peer_port = 12380,
                             .cluster_id = "c", .initial_cluster = "h1=https://127.0.0.1:2380,h2=https://127.0.0.1:12380",
                             .existing = true, .quota_backend_bytes = 1 << 30, .heartbeat_ms = 50,
                             .election_ms = 500 };
    _cleanup_strv_ char **argv = NULL;
    assert_int_equal(vo_etcd_member_argv(&c, &argv, NULL), 0);
    _cleanup_free_ char *s = joined(argv);
    assert_string_equal(argv[0], "/opt/etcd");
    /* Loopback as the address: listed once. */
    assert_non_null(strstr(s, "\n--listen-client-urls=https://127.0.0.1:12379\n"));
    assert_non_null(strstr(s, "\n--initial-cluster=h1=https://127.0.0.1:2380,h2=https://127.0.0.1:12380\n"));
    assert_non_null(strstr(s, "\n--initial-cluster-state=existing\n"));
    assert_non_null(strstr(s, "\n--quota-backend-bytes=1073741824\n"));
    assert_non_null(strstr(s, "\n--heartbeat-interval=50\n--election-timeout=500\n"));

    VoEtcdMemberConfig v6 = { .name = "h3", .state_dir = "/s", .run_dir = "/r", .address = "fd00::3",
                              .cluster_id = "c" };
    _cleanup_strv_ char **argv6 = NULL;
    assert_int_equal(vo_etcd_member_argv(&v6, &argv6, NULL), 0);
    _cleanup_free_ char *s6 = joined(argv6);
    assert_non_null(strstr(s6, "\n--listen-client-urls=https://[fd00::3]:2379,https://127.0.0.1:2379\n"));
    assert_non_null(strstr(s6, "\n--initial-cluster=h3=https://[fd00::3]:2380\n"));
    _cleanup_free_ char *u = vo_cluster_url("10.1.1.1", 5);
    assert_string_equal(u, "https://10.1.1.1:5");
}

static void test_argv_refused(void **state)
{
    const VoEtcdMemberConfig good = { .name = "h1", .state_dir = "/s", .run_dir = "/r",
                                      .address = "10.0.0.1", .cluster_id = "c" };
    VoEtcdMemberConfig bad[9];
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        bad[i] = good;
    bad[0].name = "a=b";
    bad[1].name = "a,b";
    bad[2].address = "host.example";
    bad[3].state_dir = "relative";
    bad[4].client_port = 70000;
    bad[5].client_port = 2380; /* same as the peer port */
    bad[6].election_ms = 400;  /* under 5 heartbeats */
    bad[7].cluster_id = NULL;
    bad[8].existing = true;    /* joining without the member add's cluster */
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        char **argv = NULL;
        char *err = NULL;
        if (vo_etcd_member_argv(&bad[i], &argv, &err) != -EINVAL)
            fail_msg("case %zu accepted", i);
        assert_null(argv);
        assert_non_null(err);
        free(err);
    }
}

static const char list_json[] =
    "{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":\"10276657743932975437\","
    "\"raft_term\":\"2\"},\"members\":["
    "{\"ID\":\"10276657743932975437\",\"name\":\"h1\",\"peerURLs\":[\"https://127.0.0.1:2380\"],"
    "\"clientURLs\":[\"https://127.0.0.1:2379\"]},"
    "{\"ID\":\"18446744073709551615\",\"peerURLs\":[\"https://127.0.0.2:2380\",\"https://10.0.0.2:2380\"],"
    "\"isLearner\":true}]}";

static void test_members(void **state)
{
    VoEtcdMembers m = { 0 };
    assert_int_equal(vo_etcd_members_parse(list_json, &m), 0);
    assert_int_equal(m.n, 2);
    assert_true(m.v[0].id == 10276657743932975437ULL);
    assert_string_equal(m.v[0].name, "h1");
    assert_false(m.v[0].learner);
    assert_string_equal(m.v[0].client_urls[0], "https://127.0.0.1:2379");
    assert_true(m.v[1].id == UINT64_MAX);
    assert_string_equal(m.v[1].name, "");
    assert_true(m.v[1].learner);
    assert_int_equal(vo_strv_len(m.v[1].client_urls), 0);
    _cleanup_free_ char *ic = vo_etcd_initial_cluster(&m, UINT64_MAX, "h2");
    assert_string_equal(ic, "h1=https://127.0.0.1:2380,h2=https://127.0.0.2:2380,h2=https://10.0.0.2:2380");
    vo_etcd_members_clear(&m);
    vo_etcd_members_clear(&m);

    const char *bad[] = {
        "", "{}", "{\"members\":{}}", "{\"members\":[1]}", "{\"members\":[{\"name\":\"x\"}]}",
        "{\"members\":[{\"ID\":\"12x\"}]}", "{\"members\":[{\"ID\":\"0\"}]}",
        "{\"members\":[{\"ID\":\"1\",\"peerURLs\":[1]}]}", "{\"members\":[{\"ID\":\"1\",\"isLearner\":\"yes\"}]}",
        "{\"members\":[{\"ID\":\"99999999999999999999\"}]}",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        if (vo_etcd_members_parse(bad[i], &m) != -EBADMSG)
            fail_msg("accepted: %s", bad[i]);
        assert_null(m.v);
    }
    /* An empty list is a list. */
    assert_int_equal(vo_etcd_members_parse("{\"members\":[]}", &m), 0);
    assert_int_equal(m.n, 0);
    vo_etcd_members_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argv_new),
        cmocka_unit_test(test_argv_join),
        cmocka_unit_test(test_argv_refused),
        cmocka_unit_test(test_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
