/* test-cluster-net.c: the pure parts of cluster networks: the spec's
 * cluster and vni keys, the VXLAN plan with one FDB entry per peer host, FDB
 * changes as hosts join and leave, VNI and IPAM choice, dnsmasq's cluster
 * configuration and the nft bridge rules of the anycast gateway. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "network/cidr.h"
#include "network/cluster-net.h"
#include "network/dhcp-release.h"
#include "network/net-exec.h"
#include "network/net-plan.h"
#include "network/net-spec.h"
#include "network/nft-rules.h"
#include "util/util.h"

#define DIR "/run/vireo/networks/web"
#define WEB_DOC "{\"name\":\"web\",\"type\":\"nat\",\"subnet\":\"10.50.0.0/24\",\"cluster\":true," \
                "\"vni\":8400000}"

static uint32_t ip(const char *s)
{
    uint32_t a;
    if (vo_ipv4_parse(s, &a, NULL) < 0)
        fail_msg("bad address %s", s);
    return a;
}

static VoNetSpec *parse(const char *text, char **ret_error)
{
    json_t *doc = json_loads(text, 0, NULL);
    if (!doc)
        fail_msg("bad test JSON %s", text);
    VoNetSpec *s = NULL;
    int r = vo_net_spec_from_json(doc, &s, ret_error);
    json_decref(doc);
    if (r >= 0 && vo_net_spec_validate(s, ret_error) < 0)
        s = vo_net_spec_free(s);
    return s;
}

static VoNetSpec *good(const char *text)
{
    _cleanup_free_ char *err = NULL;
    VoNetSpec *s = parse(text, &err);
    if (!s)
        fail_msg("refused: %s: %s", text, err);
    return s;
}

static void expect_bad(const char *text, const char *fragment)
{
    _cleanup_free_ char *err = NULL;
    VoNetSpec *s = parse(text, &err);
    if (s) {
        vo_net_spec_free(s);
        fail_msg("accepted: %s", text);
    }
    if (!err || !strstr(err, fragment))
        fail_msg("%s: error '%s' lacks '%s'", text, err, fragment);
}

static void test_spec(void **state)
{
    VoNetSpec *s = good(WEB_DOC);
    assert_true(s->cluster);
    assert_int_equal(s->vni, 8400000);
    json_t *j = vo_net_spec_to_json(s);
    _cleanup_free_ char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    assert_string_equal(text, "{\"bridge\":\"vbr-web\",\"cluster\":true,\"dhcp\":true,\"name\":"
                              "\"web\",\"subnet\":\"10.50.0.0/24\",\"type\":\"nat\",\"vni\":"
                              "8400000}");
    VoNetSpec *copy = vo_net_spec_copy(s);
    assert_true(copy->cluster);
    assert_int_equal(copy->vni, 8400000);
    vo_net_spec_free(copy);
    vo_net_spec_free(s);
    VoNetSpec *br = good("{\"name\":\"lan\",\"type\":\"bridge\",\"bridge\":\"br0\",\"cluster\":true}");
    assert_true(br->cluster);
    vo_net_spec_free(br);
    expect_bad("{\"name\":\"a\",\"type\":\"nat\",\"subnet\":\"10.1.0.0/24\",\"vni\":9000000}",
               "vni: only cluster nat networks");
    expect_bad("{\"name\":\"a\",\"type\":\"isolated\",\"subnet\":\"10.1.0.0/24\",\"cluster\":true}",
               "vni: a cluster isolated network needs one");
    expect_bad("{\"name\":\"a\",\"type\":\"vlan\",\"uplink\":\"eth0\",\"vlan_id\":3,"
               "\"cluster\":true}", "cluster: not allowed for vlan networks");
    expect_bad("{\"name\":\"a\",\"type\":\"bridge\",\"bridge\":\"br0\",\"vni\":5}",
               "vni: not allowed for bridge networks");
    expect_bad("{\"name\":\"a\",\"type\":\"nat\",\"cluster\":1}", "cluster: expected a boolean");

    /* Conflicts: a cluster VNI against a standalone vxlan network's. */
    VoNetSpec *web = good(WEB_DOC);
    VoNetSpec *vx = good("{\"name\":\"ov\",\"type\":\"vxlan\",\"vni\":8400000,\"remotes\":"
                         "[\"192.0.2.2\"]}");
    const VoNetSpec *others[] = { vx };
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_net_spec_check_conflicts(web, others, 1, &err), -EEXIST);
    assert_non_null(strstr(err, "vni: 8400000 is already used by network 'ov'"));
    vo_net_spec_free(web);
    vo_net_spec_free(vx);
}

static const VoHostCaps all_caps = { .has_bridge = true, .has_vlan = false, .has_vxlan = true,
                                     .has_nftables = true };
static const VoHostLink host_links[] = { { "lo", false, NULL }, { "eth0", false, NULL } };

static char *setup_text(const char *doc, const VoNetPlanInput *in, int want_r, char **ret_error)
{
    VoNetSpec *s = good(doc);
    VoNetPlan *p = NULL;
    int r = vo_net_plan_setup(s, in, &p, ret_error);
    vo_net_spec_free(s);
    assert_int_equal(r, want_r);
    if (r < 0)
        return NULL;
    char *text = vo_net_plan_render(p);
    vo_net_plan_free(p);
    return text;
}

static void test_plan(void **state)
{
    /* Two peers, the host itself among the members, one listed twice. */
    uint32_t peers[] = { ip("192.168.50.2"), ip("192.168.50.1"), ip("192.168.50.3"),
                         ip("192.168.50.2") };
    VoNetPlanInput in = { all_caps, host_links, ELEMENTSOF(host_links), DIR,
                          { true, ip("192.168.50.1"), peers, ELEMENTSOF(peers) } };
    _cleanup_free_ char *text = setup_text(WEB_DOC, &in, 0, NULL);
    assert_string_equal(text,
                        "nft -f " DIR "/ruleset.nft\n"
                        "ip link add name vbr-web address 02:76:69:d9:bc:91 type bridge\n"
                        "ip link set dev vbr-web alias vireo-net:web\n"
                        "ip link add name vx8400000 type vxlan id 8400000 local 192.168.50.1 "
                        "dstport 4789 nolearning\n"
                        "ip link set dev vx8400000 alias vireo-net:web\n"
                        "bridge fdb append 00:00:00:00:00:00 dev vx8400000 dst 192.168.50.2\n"
                        "bridge fdb append 00:00:00:00:00:00 dev vx8400000 dst 192.168.50.3\n"
                        "ip link set dev vx8400000 master vbr-web\n"
                        "ip address replace 10.50.0.1/24 broadcast 10.50.0.255 dev vbr-web\n"
                        "ip link set dev vx8400000 up\n"
                        "ip link set dev vbr-web up\n"
                        "sysctl -w net.ipv4.ip_forward=1\n"
                        "dnsmasq --keep-in-foreground --conf-file=" DIR "/dnsmasq.conf\n");

    /* A one-host cluster: the segment, no FDB entry yet. */
    VoNetPlanInput alone = in;
    alone.cluster.n_peers = 0;
    _cleanup_free_ char *text1 = setup_text(WEB_DOC, &alone, 0, NULL);
    assert_null(strstr(text1, "fdb"));
    assert_non_null(strstr(text1, "type vxlan id 8400000 local 192.168.50.1"));

    /* No cluster address or no vxlan module: a clear error. */
    VoNetPlanInput nolocal = in;
    nolocal.cluster.has_local = false;
    _cleanup_free_ char *e1 = NULL, *e2 = NULL;
    assert_null(setup_text(WEB_DOC, &nolocal, -EINVAL, &e1));
    assert_non_null(strstr(e1, "needs this host's cluster address"));
    VoNetPlanInput novx = in;
    novx.caps.has_vxlan = false;
    assert_null(setup_text(WEB_DOC, &novx, -EOPNOTSUPP, &e2));
    assert_non_null(strstr(e2, "modprobe vxlan"));

    /* Teardown removes the VXLAN device it made and both nft tables. */
    VoHostLink made[] = { { "vbr-web", true, "vireo-net:web" },
                          { "vx8400000", false, "vireo-net:web" } };
    VoNetPlanInput up = in;
    up.links = made;
    up.n_links = ELEMENTSOF(made);
    VoNetSpec *s = good(WEB_DOC);
    VoNetPlan *p = NULL;
    assert_int_equal(vo_net_plan_teardown(s, &up, &p), 0);
    _cleanup_free_ char *down = vo_net_plan_render(p);
    vo_net_plan_free(p);
    assert_string_equal(down, "kill $(cat " DIR "/dnsmasq.pid)\n"
                              "ip link del dev vx8400000\n"
                              "ip link del dev vbr-web\n"
                              "nft 'add table inet vireo-web; delete table inet vireo-web; "
                              "add table bridge vireo-web; delete table bridge vireo-web'\n");
    /* A standalone nat network has no VXLAN port even with peers given. */
    p = NULL;
    VoNetSpec *plain = good("{\"name\":\"web\",\"type\":\"nat\",\"subnet\":\"10.50.0.0/24\"}");
    assert_int_equal(vo_net_plan_setup(plain, &in, &p, NULL), 0);
    _cleanup_free_ char *plain_text = vo_net_plan_render(p);
    assert_null(strstr(plain_text, "vxlan"));
    assert_null(strstr(plain_text, "fdb"));
    vo_net_plan_free(p);
    vo_net_spec_free(plain);
    vo_net_spec_free(s);
}

static char *fdb_text(const uint32_t *have, size_t nh, const uint32_t *want, size_t nw)
{
    VoNetSpec *s = good(WEB_DOC);
    VoNetPlan *p = NULL;
    assert_int_equal(vo_net_plan_fdb(s, have, nh, want, nw, ip("10.0.0.1"), &p), 0);
    char *text = vo_net_plan_render(p);
    vo_net_plan_free(p);
    vo_net_spec_free(s);
    return text;
}

static char *fdb_macs_text(const VoFdbEntry *have, size_t nh, const VoFdbEntry *want, size_t nw)
{
    VoNetSpec *s = good(WEB_DOC);
    VoNetPlan *p = NULL;
    assert_int_equal(vo_net_plan_fdb_macs(s, have, nh, want, nw, ip("10.0.0.1"), &p), 0);
    char *text = vo_net_plan_render(p);
    vo_net_plan_free(p);
    vo_net_spec_free(s);
    return text;
}

/* Per-MAC entries from IPAM: unicast to a VM goes to its host only. */
static void test_fdb_mac_changes(void **state)
{
    (void)state;
    uint32_t me = ip("10.0.0.1"), h2 = ip("10.0.0.2"), h3 = ip("10.0.0.3");
    /* New remote VMs: a replace each; this host's own VM and a malformed
     * MAC are skipped, a repeat once. */
    VoFdbEntry want1[] = { { "52:54:00:00:00:0A", h2 }, { "52:54:00:00:00:0b", me },
                           { "52:54:00:00:00:0c", h3 }, { "nonsense", h2 },
                           { "52:54:00:00:00:0a", h3 } };
    _cleanup_free_ char *t1 = fdb_macs_text(NULL, 0, want1, 5);
    assert_string_equal(t1, "bridge fdb replace 52:54:00:00:00:0a dev vx8400000 dst 10.0.0.2\n"
                            "bridge fdb replace 52:54:00:00:00:0c dev vx8400000 dst 10.0.0.3\n");
    /* As they are: nothing (case does not matter). */
    VoFdbEntry have2[] = { { "52:54:00:00:00:0a", h2 }, { "52:54:00:00:00:0C", h3 } };
    _cleanup_free_ char *t2 = fdb_macs_text(have2, 2, want1, 5);
    assert_string_equal(t2, "");
    /* A VM moved to h3, one gone, one now on this host (the bridge learns it). */
    VoFdbEntry want3[] = { { "52:54:00:00:00:0a", h3 }, { "52:54:00:00:00:0c", me } };
    _cleanup_free_ char *t3 = fdb_macs_text(have2, 2, want3, 2);
    assert_string_equal(t3, "bridge fdb del 52:54:00:00:00:0c dev vx8400000\n"
                            "bridge fdb replace 52:54:00:00:00:0a dev vx8400000 dst 10.0.0.3\n");
    /* Nothing wanted: every entry goes. */
    _cleanup_free_ char *t4 = fdb_macs_text(have2, 2, NULL, 0);
    assert_string_equal(t4, "bridge fdb del 52:54:00:00:00:0a dev vx8400000\n"
                            "bridge fdb del 52:54:00:00:00:0c dev vx8400000\n");
    /* Argv as run. */
    VoNetStep st = { .kind = VO_STEP_FDB_MAC, .dev = "vx8400000", .mac = "52:54:00:00:00:0a",
                     .addr = h2 };
    _cleanup_strv_ char **argv = NULL;
    assert_int_equal(vo_net_step_argv(&st, &argv), 0);
    assert_string_equal(argv[2], "replace");
    assert_string_equal(argv[3], "52:54:00:00:00:0a");
    assert_string_equal(argv[7], "10.0.0.2");
    /* Only cluster segments. */
    VoNetSpec *plain = good("{\"name\":\"n\",\"type\":\"nat\",\"subnet\":\"10.9.0.0/24\"}");
    VoNetPlan *p = NULL;
    assert_int_equal(vo_net_plan_fdb_macs(plain, NULL, 0, want1, 5, me, &p), -EINVAL);
    vo_net_spec_free(plain);
}

/* The DHCPRELEASE that makes a VM's old host's dnsmasq forget its lease
 * after a migration: BOOTREQUEST, ciaddr = the lease, chaddr = the MAC,
 * options: message type 7, server identifier (dnsmasq ignores a release
 * naming another server), end. */
static void test_dhcp_release_packet(void **state)
{
    (void)state;
    uint8_t b[VO_DHCP_RELEASE_SIZE];
    assert_int_equal(vo_dhcp_release_packet(b, "52:54:00:ab:CD:0f", ip("10.91.0.7"),
                                            ip("10.91.0.1"), 0x01020304u),
                     0);
    static const uint8_t head[] = { 1, 1, 6, 0, 1, 2, 3, 4 };
    assert_memory_equal(b, head, sizeof(head));
    static const uint8_t ciaddr[] = { 10, 91, 0, 7 }, zero[4] = { 0 };
    assert_memory_equal(b + 12, ciaddr, 4);
    assert_memory_equal(b + 16, zero, 4); /* yiaddr */
    static const uint8_t chaddr[] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f, 0 };
    assert_memory_equal(b + 28, chaddr, sizeof(chaddr));
    static const uint8_t opts[] = { 0x63, 0x82, 0x53, 0x63, 53, 1, 7, 54, 4, 10, 91, 0, 1, 255 };
    assert_memory_equal(b + 236, opts, sizeof(opts));
    for (size_t i = 236 + sizeof(opts); i < sizeof(b); i++)
        assert_int_equal(b[i], 0);
    /* Malformed MACs are refused. */
    assert_int_equal(vo_dhcp_release_packet(b, "52:54:00:ab:cd", 1, 1, 0), -EINVAL);
    assert_int_equal(vo_dhcp_release_packet(b, "52:54:00:ab:cd:0f:00", 1, 1, 0), -EINVAL);
    assert_int_equal(vo_dhcp_release_packet(b, "zz:54:00:ab:cd:0f", 1, 1, 0), -EINVAL);
    assert_int_equal(vo_dhcp_release_packet(b, NULL, 1, 1, 0), -EINVAL);
    char *error = NULL;
    assert_int_equal(vo_dhcp_release_send("vbr-x", "52:54:00:ab:cd:0f", "10.91.0.700",
                                          "10.91.0.1", &error),
                     -EINVAL);
    assert_non_null(error);
    free(error);
}

static void test_fdb_parse_macs(void **state)
{
    (void)state;
    const char *out =
        "[{\"mac\":\"00:00:00:00:00:00\",\"dst\":\"10.0.0.2\",\"flags\":[]},"
        "{\"mac\":\"52:54:00:AA:00:01\",\"dst\":\"10.0.0.3\",\"state\":\"permanent\"},"
        "{\"mac\":\"ba:3c:11:22:33:44\",\"flags\":[\"self\"],\"state\":\"permanent\"},"
        "{\"mac\":\"52:54:00:aa:00:02\",\"dst\":\"fe80::1\"}]";
    VoFdbEntry *e = NULL;
    size_t n = 0;
    assert_int_equal(vo_net_fdb_parse_macs(out, &e, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].mac, "52:54:00:aa:00:01");
    assert_int_equal(e[0].dst, ip("10.0.0.3"));
    free(e);
    assert_int_equal(vo_net_fdb_parse_macs("oops", &e, &n), -EINVAL);
}

static void test_fdb_changes(void **state)
{
    uint32_t h2 = ip("10.0.0.2"), h3 = ip("10.0.0.3"), h4 = ip("10.0.0.4"), me = ip("10.0.0.1");
    /* h3 joins. */
    uint32_t have1[] = { h2 }, want1[] = { me, h2, h3 };
    _cleanup_free_ char *t1 = fdb_text(have1, 1, want1, 3);
    assert_string_equal(t1, "bridge fdb append 00:00:00:00:00:00 dev vx8400000 dst 10.0.0.3\n");
    /* h2 leaves, h4 joins; a stale entry for this host itself goes too. */
    uint32_t have2[] = { h2, h3, me }, want2[] = { h3, h4 };
    _cleanup_free_ char *t2 = fdb_text(have2, 3, want2, 2);
    assert_string_equal(t2, "bridge fdb del 00:00:00:00:00:00 dev vx8400000 dst 10.0.0.2\n"
                            "bridge fdb del 00:00:00:00:00:00 dev vx8400000 dst 10.0.0.1\n"
                            "bridge fdb append 00:00:00:00:00:00 dev vx8400000 dst 10.0.0.4\n");
    /* Nothing changed: nothing to do (duplicates too). */
    uint32_t want3[] = { h3, h3, h2 };
    _cleanup_free_ char *t3 = fdb_text(have1, 1, want3, 3);
    assert_string_equal(t3, "bridge fdb append 00:00:00:00:00:00 dev vx8400000 dst 10.0.0.3\n");
    uint32_t have4[] = { h2, h3 };
    _cleanup_free_ char *t4 = fdb_text(have4, 2, want3, 3);
    assert_string_equal(t4, "");
    /* Every host gone: every entry goes. */
    _cleanup_free_ char *t5 = fdb_text(have4, 2, NULL, 0);
    assert_string_equal(t5, "bridge fdb del 00:00:00:00:00:00 dev vx8400000 dst 10.0.0.2\n"
                            "bridge fdb del 00:00:00:00:00:00 dev vx8400000 dst 10.0.0.3\n");
    /* Only cluster segments have an FDB to manage. */
    VoNetSpec *plain = good("{\"name\":\"n\",\"type\":\"nat\",\"subnet\":\"10.9.0.0/24\"}");
    VoNetPlan *p = NULL;
    assert_int_equal(vo_net_plan_fdb(plain, NULL, 0, NULL, 0, me, &p), -EINVAL);
    vo_net_spec_free(plain);

    /* What `bridge -j fdb show dev vxN` prints: only all-zeros entries count. */
    uint32_t *r = NULL;
    size_t n = 0;
    assert_int_equal(vo_net_fdb_parse_remotes(
                         "[{\"mac\":\"6e:9a:9b:72:2e:ce\",\"flags\":[],\"master\":\"br0\"},"
                         "{\"mac\":\"00:00:00:00:00:00\",\"dst\":\"10.9.9.2\",\"flags\":[\"self\"]},"
                         "{\"mac\":\"52:54:00:00:00:01\",\"dst\":\"10.9.9.7\"},"
                         "{\"mac\":\"00:00:00:00:00:00\",\"dst\":\"10.9.9.3\"}]",
                         &r, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(r[0], ip("10.9.9.2"));
    assert_int_equal(r[1], ip("10.9.9.3"));
    free(r);
    assert_int_equal(vo_net_fdb_parse_remotes("[]", &r, &n), 0);
    assert_int_equal(n, 0);
    assert_null(r);
    assert_int_equal(vo_net_fdb_parse_remotes("oops", &r, &n), -EINVAL);
}

static void test_vni_pick(void **state)
{
    uint32_t v1 = 0, v2 = 0, v3 = 0;
    assert_int_equal(vo_cluster_vni_pick("web", NULL, 0, &v1), 0);
    assert_true(v1 >= VO_CLUSTER_VNI_FIRST && v1 <= VO_CLUSTER_VNI_LAST);
    /* Deterministic: the same name tries the same VNI first. */
    assert_int_equal(vo_cluster_vni_pick("web", NULL, 0, &v2), 0);
    assert_int_equal(v1, v2);
    /* Taken (another network, or a claim that lost a race): the next one. */
    uint32_t used[] = { v1, v1 + 1 == VO_CLUSTER_VNI_LAST + 1 ? VO_CLUSTER_VNI_FIRST : v1 + 1 };
    assert_int_equal(vo_cluster_vni_pick("web", used, 2, &v3), 0);
    assert_true(v3 != used[0] && v3 != used[1]);
    assert_int_equal(v3, v1 + 2 > VO_CLUSTER_VNI_LAST ? v3 : v1 + 2);
    /* The range wraps around. */
    uint32_t last[] = { VO_CLUSTER_VNI_LAST };
    uint32_t w = 0;
    for (const char *names[] = { "a", "b", "c", "d", "e", "f", "g", NULL }, **n = names; *n; n++) {
        assert_int_equal(vo_cluster_vni_pick(*n, last, 1, &w), 0);
        assert_true(w >= VO_CLUSTER_VNI_FIRST && w != VO_CLUSTER_VNI_LAST);
    }
}

static void test_ipam_pick(void **state)
{
    VoCidr net;
    assert_int_equal(vo_cidr_parse_subnet("10.50.0.0/24", &net, NULL), 0);
    uint32_t a = 0;
    assert_int_equal(vo_ipam_pick(net, NULL, 0, &a), 0);
    assert_int_equal(a, ip("10.50.0.2")); /* .1 is the gateway */
    uint32_t used[] = { ip("10.50.0.3"), ip("10.50.0.2"), ip("10.50.0.5") };
    assert_int_equal(vo_ipam_pick(net, used, 3, &a), 0);
    assert_int_equal(a, ip("10.50.0.4"));
    /* A /29: .2 .. .5 handed out (.6 stays free), then none. */
    VoCidr small;
    assert_int_equal(vo_cidr_parse_subnet("10.60.0.0/29", &small, NULL), 0);
    uint32_t full[] = { ip("10.60.0.5"), ip("10.60.0.4"), ip("10.60.0.3"), ip("10.60.0.2") };
    assert_int_equal(vo_ipam_pick(small, full, 3, &a), 0);
    assert_int_equal(a, ip("10.60.0.2"));
    assert_int_equal(vo_ipam_pick(small, full, 4, &a), -ENOSPC);
    VoCidr tiny;
    assert_int_equal(vo_cidr_parse_subnet("10.70.0.0/30", &tiny, NULL), 0);
    assert_int_equal(vo_ipam_pick(tiny, NULL, 0, &a), -ERANGE);
}

static void test_dnsmasq(void **state)
{
    VoNetSpec *s = good(WEB_DOC);
    _cleanup_free_ char *conf = vo_net_dnsmasq_conf(s, DIR);
    assert_string_equal(conf,
                        "# dnsmasq for vireo network web: generated by vireod, do not edit\n"
                        "pid-file=" DIR "/dnsmasq.pid\n"
                        "except-interface=lo\n"
                        "interface=vbr-web\n"
                        "bind-dynamic\n"
                        "no-hosts\n"
                        "domain-needed\n"
                        "domain=web.vireo.internal\n"
                        "local=/web.vireo.internal/\n"
                        "dhcp-range=10.50.0.0,static,255.255.255.0,1h\n"
                        "dhcp-authoritative\n"
                        "no-ping\n"
                        "dhcp-leasefile=" DIR "/leases\n"
                        "dhcp-hostsfile=" DIR "/hosts\n"
                        "addn-hosts=" DIR "/cluster-hosts\n");
    _cleanup_free_ char *h = vo_net_cluster_hosts_line(s, "10.50.0.7", "b");
    assert_string_equal(h, "10.50.0.7 b.web.vireo.internal b\n");
    _cleanup_free_ char *d1 = vo_net_dhcp_host_line("52:54:00:aa:bb:cc", "10.50.0.7", "b");
    assert_string_equal(d1, "52:54:00:aa:bb:cc,10.50.0.7,b\n");
    _cleanup_free_ char *d2 = vo_net_dhcp_host_line("52:54:00:aa:bb:cc", NULL, "b");
    assert_string_equal(d2, "52:54:00:aa:bb:cc,b\n");
    vo_net_spec_free(s);
}

static void test_nft_bridge(void **state)
{
    VoNetSpec *s = good(WEB_DOC);
    _cleanup_free_ char *rules = vo_nft_ruleset(s);
    const char *bridge = strstr(rules, "add table bridge vireo-web\n");
    assert_non_null(bridge);
    assert_string_equal(bridge,
                        "add table bridge vireo-web\n"
                        "delete table bridge vireo-web\n"
                        "table bridge vireo-web {\n"
                        "\tchain forward {\n"
                        "\t\ttype filter hook forward priority 0; policy accept;\n"
                        "\t\toifname \"vx8400000\" arp daddr ip 10.50.0.1 drop\n"
                        "\t\tiifname \"vx8400000\" arp daddr ip 10.50.0.1 drop\n"
                        "\t\toifname \"vx8400000\" udp dport { 67, 68 } drop\n"
                        "\t\tiifname \"vx8400000\" udp dport { 67, 68 } drop\n"
                        "\t\tiifname \"vx8400000\" ether saddr 02:76:69:d9:bc:91 drop\n"
                        "\t}\n"
                        "\tchain input {\n"
                        "\t\ttype filter hook input priority 0; policy accept;\n"
                        "\t\tiifname \"vx8400000\" arp daddr ip 10.50.0.1 drop\n"
                        "\t\tiifname \"vx8400000\" udp dport { 67, 68 } drop\n"
                        "\t\tiifname \"vx8400000\" ether saddr 02:76:69:d9:bc:91 drop\n"
                        "\t}\n"
                        "\tchain output {\n"
                        "\t\ttype filter hook output priority 0; policy accept;\n"
                        "\t\toifname \"vx8400000\" ether saddr 02:76:69:d9:bc:91 drop\n"
                        "\t}\n"
                        "}\n");
    /* The inet table (masquerade through this host) comes first, unchanged. */
    assert_non_null(strstr(rules, "ip saddr 10.50.0.0/24 oifname != \"vbr-web\" masquerade"));
    /* The gateway MAC is the bridge's, the same on every host. */
    char mac[18];
    vo_net_bridge_mac("web", mac);
    assert_string_equal(mac, "02:76:69:d9:bc:91");
    VoNetSpec *plain = good("{\"name\":\"web\",\"type\":\"nat\",\"subnet\":\"10.50.0.0/24\"}");
    _cleanup_free_ char *plain_rules = vo_nft_ruleset(plain);
    assert_null(strstr(plain_rules, "bridge"));
    vo_net_spec_free(plain);
    vo_net_spec_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec),        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_fdb_changes), cmocka_unit_test(test_vni_pick),
        cmocka_unit_test(test_fdb_mac_changes), cmocka_unit_test(test_fdb_parse_macs),
        cmocka_unit_test(test_ipam_pick),   cmocka_unit_test(test_dnsmasq),
        cmocka_unit_test(test_nft_bridge),  cmocka_unit_test(test_dhcp_release_packet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
