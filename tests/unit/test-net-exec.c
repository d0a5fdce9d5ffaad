/* test-net-exec.c: the network executor: step argv against their rendering,
 * dnsmasq lease parsing, plan execution errors, and (as root, inside a
 * fresh network namespace) a real nat network and tap, set up and removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "network/net-exec.h"
#include "network/net-plan.h"
#include "network/net-spec.h"
#include "util/spawn.h"
#include "util/util.h"

static VoNetSpec *spec(const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    VoNetSpec *s = NULL;
    _cleanup_free_ char *err = NULL;
    int r = vo_net_spec_from_json(doc, &s, &err);
    json_decref(doc);
    if (r < 0)
        fail_msg("spec refused: %s: %s", text, err);
    return s;
}

static char *join(char **argv)
{
    char *out = vo_strdup("");
    for (size_t i = 0; argv[i]; i++) {
        char *n = vo_asprintf("%s%s%s", out, i ? " " : "", argv[i]);
        free(out);
        out = n;
    }
    return out;
}

/* join(argv) == render, but for the documented differences. */
static void check_step(const VoNetStep *st, bool *seen)
{
    _cleanup_free_ char *render = vo_net_step_render(st);
    _cleanup_strv_ char **argv = NULL;
    int r = vo_net_step_argv(st, &argv);
    seen[st->kind] = true;
    if (st->kind == VO_STEP_DNSMASQ_START || st->kind == VO_STEP_DNSMASQ_STOP) {
        assert_int_equal(r, -EOPNOTSUPP);
        return;
    }
    assert_int_equal(r, 0);
    _cleanup_free_ char *joined = join(argv);
    _cleanup_free_ char *expect = NULL;
    if (st->kind == VO_STEP_SYSCTL) {
        /* -q: sysctl echoes "key = value" otherwise. */
        assert_true(!strncmp(render, "sysctl -w ", 10));
        expect = vo_asprintf("sysctl -q -w %s", render + 10);
    } else if (st->kind == VO_STEP_NFT && !st->path) {
        /* The text is one argument; render shows it shell-quoted. */
        assert_int_equal(vo_strv_len(argv), 2);
        expect = vo_asprintf("nft '%s'", argv[1]);
        joined = (free(joined), vo_strdup(render));
    } else {
        expect = vo_strdup(render);
    }
    assert_string_equal(joined, expect);
}

static void check_plan(const VoNetPlan *p, bool *seen)
{
    for (size_t i = 0; i < p->n_steps; i++)
        check_step(&p->steps[i], seen);
}

static void test_argv_vs_render(void **state)
{
    bool seen[VO_STEP_LINK_DEL + 1] = { 0 };
    const char *specs[] = {
        "{\"name\":\"default\",\"type\":\"nat\",\"subnet\":\"10.100.0.0/24\"}",
        "{\"name\":\"lab\",\"type\":\"isolated\",\"subnet\":\"10.5.0.0/16\"}",
        "{\"name\":\"v10\",\"type\":\"vlan\",\"uplink\":\"eth0\",\"vlan_id\":10,"
        "\"subnet\":\"10.6.0.0/24\"}",
        "{\"name\":\"ov\",\"type\":\"vxlan\",\"vni\":42,\"remotes\":[\"192.0.2.2\","
        "\"192.0.2.3\"],\"local\":\"192.0.2.1\",\"port\":8472}",
        "{\"name\":\"ov2\",\"type\":\"vxlan\",\"vni\":7,\"remotes\":[\"192.0.2.9\"]}",
    };
    for (size_t i = 0; i < ELEMENTSOF(specs); i++) {
        VoNetSpec *s = spec(specs[i]);
        _cleanup_free_ char *alias = vo_net_owner_alias(s->name);
        char port[VO_IFNAME_SIZE] = "";
        if (s->type == VO_NET_VXLAN)
            vo_net_vxlan_ifname(s->vni, port);
        if (s->type == VO_NET_VLAN)
            assert_int_equal(vo_net_vlan_ifname(s->uplink, s->vlan_id, port, NULL), 0);
        /* Setup on an empty host (but the uplink), teardown with our links. */
        VoHostLink none[] = { { .name = "eth0" } };
        VoHostLink ours[] = { { .name = "eth0" },
                              { .name = s->bridge, .is_bridge = true, .alias = alias },
                              { .name = port, .alias = alias } };
        VoNetPlanInput in = { .caps = { true, true, true, true }, .links = none,
                              .n_links = 1, .dir = "/run/vireo/n" };
        _cleanup_net_plan_ VoNetPlan *up = NULL, *down = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(vo_net_plan_setup(s, &in, &up, &err), 0);
        check_plan(up, seen);
        in.links = ours;
        in.n_links = port[0] ? 3 : 2;
        assert_int_equal(vo_net_plan_teardown(s, &in, &down), 0);
        check_plan(down, seen);
        vo_net_spec_free(s);
    }
    /* A bridge without a fixed MAC, a vlan without a subnet. */
    VoNetStep br = { .kind = VO_STEP_LINK_ADD, .dev = "vbr-x", .link = VO_LINK_BRIDGE };
    check_step(&br, seen);
    VoNetStep vl = { .kind = VO_STEP_LINK_ADD, .dev = "eth0.5", .link = VO_LINK_VLAN,
                     .uplink = "eth0", .id = 5 };
    check_step(&vl, seen);
    for (int k = 0; k <= VO_STEP_LINK_DEL; k++)
        if (!seen[k])
            fail_msg("no step of kind %d was checked", k);

    /* Malformed steps are refused rather than run half-formed. */
    _cleanup_strv_ char **argv = NULL;
    VoNetStep nodev = { .kind = VO_STEP_LINK_UP };
    assert_int_equal(vo_net_step_argv(&nodev, &argv), -EINVAL);
    VoNetStep nouplink = { .kind = VO_STEP_LINK_ADD, .dev = "x", .link = VO_LINK_VLAN };
    assert_int_equal(vo_net_step_argv(&nouplink, &argv), -EINVAL);
    assert_null(argv);
}

/* ---- leases ---- */

static void test_leases(void **state)
{
    const char *text =
        "1700000100 52:54:00:AA:bb:01 10.100.0.23 web1 01:52:54:00:aa:bb:01\n"
        "1700000200 52:54:00:aa:bb:02 10.100.0.24 * *\n"
        "\n"
        "duid 00:01:00:01:2c:5f:11:22:52:54:00:00:00:01\n"
        "garbage\n"
        "12x 52:54:00:aa:bb:03 10.100.0.25 h *\n"         /* bad expiry */
        "1700000300 52:54:00:aa:bb 10.100.0.26 h *\n"     /* short MAC */
        "1700000300 52:54:00:aa:bb:zz 10.100.0.26 h *\n"  /* bad hex */
        "1700000300 52:54:00:aa:bb:04 10.100.0.256 h *\n" /* bad IP */
        "1700000300 52:54:00:aa:bb:05 10.100.0.27\n"      /* no hostname */
        "0 52:54:00:aa:bb:06 10.100.0.28 db\n"            /* no client id, infinite */
        "1700000050 52:54:00:aa:bb:01 10.100.0.99 old *\r\n"
        "1700000400 52:54:00:aa:bb:07 10.100.0.29 last *"; /* no final newline */
    VoLease *l = NULL;
    size_t n = 0;
    assert_int_equal(vo_leases_parse(text, &l, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(l[0].expires, 1700000100);
    assert_string_equal(l[0].mac, "52:54:00:aa:bb:01");
    assert_string_equal(l[0].ip, "10.100.0.23");
    assert_string_equal(l[0].hostname, "web1");
    assert_null(l[1].hostname);
    assert_int_equal(l[2].expires, 0);
    assert_string_equal(l[2].hostname, "db");
    assert_string_equal(l[3].hostname, "old");
    assert_string_equal(l[4].hostname, "last");

    const VoLease *f = vo_leases_find_mac(l, n, "52:54:00:AA:BB:02");
    assert_non_null(f);
    assert_string_equal(f->ip, "10.100.0.24");
    f = vo_leases_find_mac(l, n, "52:54:00:aa:BB:01"); /* the newer of two */
    assert_non_null(f);
    assert_string_equal(f->ip, "10.100.0.23");
    assert_string_equal(vo_leases_find_mac(l, n, "52:54:00:aa:bb:06")->ip, "10.100.0.28");
    assert_null(vo_leases_find_mac(l, n, "52:54:00:aa:bb:03"));
    assert_null(vo_leases_find_mac(l, n, "52:54:00:aa:bb:05"));
    assert_null(vo_leases_find_mac(l, n, NULL));
    vo_leases_free(l, n);

    assert_int_equal(vo_leases_parse("", &l, &n), 0);
    assert_int_equal(n, 0);
    assert_null(vo_leases_find_mac(l, n, "52:54:00:aa:bb:01"));
    vo_leases_free(l, n);
}

/* ---- execution without root: files, callbacks and failures ---- */

typedef struct {
    int calls;
    VoNetStepKind kinds[8];
    int ret;
} Calls;

static int fake_dnsmasq(const VoNetStep *st, void *userdata)
{
    Calls *c = userdata;
    if (c->calls < 8)
        c->kinds[c->calls] = st->kind;
    c->calls++;
    return c->ret;
}

static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/vireo-net-exec-XXXXXX";
    if (!mkdtemp(tmpl))
        fail_msg("mkdtemp: %m");
    return vo_strdup(tmpl);
}

static void test_execute(void **state)
{
    _cleanup_free_ char *dir = make_tmpdir();
    _cleanup_free_ char *nft_path = vo_asprintf("%s/sub/dir/ruleset.nft", dir);
    VoNetStep steps[] = {
        { .kind = VO_STEP_DNSMASQ_START, .path = "conf", .text = "x" },
        /* Not nft syntax: nft refuses it before touching the kernel. */
        { .kind = VO_STEP_NFT, .path = nft_path, .text = "this is not nftables\n" },
        { .kind = VO_STEP_DNSMASQ_STOP, .path = "pid" },
        { .kind = VO_STEP_LINK_DEL, .dev = "vo-nonexist0" },
    };
    VoNetPlan p = { .steps = steps, .n_steps = ELEMENTSOF(steps) };

    /* Setup: stops at the nft failure, after writing the file. */
    Calls c = { 0 };
    char *err = NULL;
    int r = vo_net_plan_execute(&p, fake_dnsmasq, &c, true, &err);
    assert_int_equal(r, -EIO);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.kinds[0], VO_STEP_DNSMASQ_START);
    assert_non_null(err);
    _cleanup_free_ char *want = vo_asprintf("`nft -f %s` failed: ", nft_path);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("error '%s' does not start with '%s'", err, want);
    assert_non_null(strstr(err, "rror")); /* nft's own message */
    free(err);
    _cleanup_free_ char *text = NULL;
    assert_int_equal(vo_read_file(nft_path, 4096, &text, NULL), 0);
    assert_string_equal(text, "this is not nftables\n");

    /* Teardown: keeps going past every failure, reports the first. */
    c = (Calls){ .ret = -ESRCH };
    err = NULL;
    r = vo_net_plan_execute(&p, fake_dnsmasq, &c, false, &err);
    assert_int_equal(r, -ESRCH);
    assert_int_equal(c.calls, 2);
    assert_int_equal(c.kinds[1], VO_STEP_DNSMASQ_STOP);
    assert_string_equal(err, "`dnsmasq --keep-in-foreground --conf-file=conf` failed: "
                             "No such process");
    free(err);

    /* The ip failure names the step and carries ip's message. */
    VoNetPlan one = { .steps = &steps[3], .n_steps = 1 };
    err = NULL;
    assert_int_equal(vo_net_plan_execute(&one, NULL, NULL, true, &err), -EIO);
    assert_non_null(strstr(err, "`ip link del dev vo-nonexist0` failed: "));
    assert_non_null(strstr(err, "vo-nonexist0\"")); /* Cannot find device "..." */
    free(err);

    /* No callback: dnsmasq steps cannot run. */
    VoNetPlan dm = { .steps = steps, .n_steps = 1 };
    err = NULL;
    assert_int_equal(vo_net_plan_execute(&dm, NULL, NULL, true, &err), -EOPNOTSUPP);
    assert_non_null(strstr(err, "dnsmasq"));
    free(err);

    VoNetPlan empty = { 0 };
    assert_int_equal(vo_net_plan_execute(&empty, NULL, NULL, true, NULL), 0);
    vo_rm_rf(dir);
}

static void test_tap_errors(void **state)
{
    int fd = -1;
    char *err = NULL;
    assert_int_equal(vo_tap_open("bad name", "br0", &fd, &err), -EINVAL);
    free(err);
    err = NULL;
    assert_int_equal(vo_tap_open("lo", "br0", &fd, &err), -EEXIST);
    assert_non_null(strstr(err, "lo"));
    free(err);
    err = NULL;
    assert_int_equal(vo_tap_open("vttestx", "vo-nobridge0", &fd, &err), -ENODEV);
    assert_non_null(strstr(err, "vo-nobridge0"));
    free(err);
    assert_int_equal(fd, -1);
}

/* ---- `ip -j` listings, with a fake `ip` first in PATH ---- */

/* A fake `ip` in a new directory put first in PATH: each run counts itself in
 * DIR/count and runs body (sh) with $n the run's number. Returns the
 * directory; restore_path() (also the tests' teardown, so that a failed test
 * leaves no fake behind) undoes it. */
static char *saved_path, *fake_dir;

static int restore_path(void **state)
{
    if (saved_path)
        setenv("PATH", saved_path, 1);
    if (fake_dir)
        vo_rm_rf(fake_dir);
    free(fake_dir);
    fake_dir = NULL;
    return 0;
}

static const char *fake_ip(const char *body)
{
    restore_path(NULL);
    fake_dir = make_tmpdir();
    _cleanup_free_ char *script = vo_asprintf(
        "#!/bin/sh\n"
        "n=$(cat '%s/count' 2>/dev/null || echo 0); n=$((n + 1)); echo $n > '%s/count'\n"
        "%s\n",
        fake_dir, fake_dir, body);
    _cleanup_free_ char *path = vo_asprintf("%s/ip", fake_dir);
    assert_int_equal(vo_write_file_atomic(path, script, strlen(script)), 0);
    assert_int_equal(chmod(path, 0755), 0);
    if (!saved_path)
        saved_path = vo_strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    _cleanup_free_ char *newpath = vo_asprintf("%s:%s", fake_dir, saved_path);
    setenv("PATH", newpath, 1);
    return fake_dir;
}

static int runs(const char *dir)
{
    _cleanup_free_ char *path = vo_asprintf("%s/count", dir), *text = NULL;
    return vo_read_file(path, 64, &text, NULL) < 0 ? 0 : atoi(text);
}

#define LINKS_JSON "[{\"ifname\":\"lo\"},{\"ifname\":\"vo-br0\",\"linkinfo\":{\"info_kind\":\"bridge\"}}]"
#define INTERRUPTED "Dump was interrupted and may be inconsistent."

static void probe_two_links(void)
{
    VoHostCaps caps;
    VoHostLink *links = NULL;
    size_t n = 0;
    char *err = NULL;
    int r = vo_net_probe(&caps, &links, &n, &err);
    if (r < 0)
        fail_msg("probe failed: %s", err);
    assert_int_equal(n, 2);
    assert_string_equal(links[1].name, "vo-br0");
    assert_true(links[1].is_bridge);
    vo_host_links_free(links, n);
}

/* What ip says on stderr is never parsed as part of its JSON. */
static void test_listing_stderr_apart(void **state)
{
    fake_ip("echo 'Warning: some noise' >&2\necho '" LINKS_JSON "'");
    probe_two_links();
    char *argv[] = { "ip", "-j", "link", "show", NULL };
    char *out = NULL, *err = NULL;
    assert_int_equal(vo_net_run_listing(argv, &out, &err), 0);
    assert_string_equal(out, LINKS_JSON "\n");
    free(out);
}

/* An interrupted dump (iproute2 prints what it got, maybe cut short, and
 * says so on stderr) is listed again. */
static void test_listing_retries_interrupted_dump(void **state)
{
    const char *dir = fake_ip("if [ $n -le 2 ]; then echo '[{\"ifname\":\"lo\"}'; "
                        "echo '" INTERRUPTED "' >&2; exit $((n - 1)); fi\n"
                        "echo '" LINKS_JSON "'");
    probe_two_links();
    assert_int_equal(runs(dir), 3);

    /* Always interrupted: a bounded number of runs, then an error. */
    dir = fake_ip("echo '" LINKS_JSON "'; echo '" INTERRUPTED "' >&2");
    char *argv[] = { "ip", "-j", "link", "show", NULL };
    char *out = NULL, *err = NULL;
    assert_int_equal(vo_net_run_listing(argv, &out, &err), -EAGAIN);
    assert_null(out);
    assert_non_null(strstr(err, "interrupted"));
    assert_int_equal(runs(dir), VO_NET_DUMP_ATTEMPTS);
    free(err);
}

/* A listing or a teardown step that fails is reported, with ip's words. */
static void test_failed_listing_and_teardown_reported(void **state)
{
    const char *dir = fake_ip("echo 'RTNETLINK answers: Operation not permitted' >&2; exit 2");
    VoHostCaps caps;
    VoHostLink *links = NULL;
    size_t n = 0;
    char *err = NULL;
    assert_int_equal(vo_net_probe(&caps, &links, &n, &err), -EIO);
    assert_non_null(strstr(err, "Operation not permitted"));
    free(err);
    err = NULL;
    VoNetStep steps[] = { { .kind = VO_STEP_LINK_DEL, .dev = "vo-br0" },
                          { .kind = VO_STEP_LINK_DEL, .dev = "vo-br1" } };
    VoNetPlan p = { .steps = steps, .n_steps = ELEMENTSOF(steps) };
    assert_int_equal(vo_net_plan_execute(&p, NULL, NULL, false, &err), -EIO);
    assert_non_null(strstr(err, "`ip link del dev vo-br0` failed: RTNETLINK answers: "
                                "Operation not permitted"));
    assert_int_equal(runs(dir), 3); /* the teardown went on past the failure */
    free(err);
}

/* ---- root: a real network in a private network namespace ---- */

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "netns check failed at line %d: %s: ", __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            _exit(1);                                                                      \
        }                                                                                  \
    } while (0)

/* The entry of `ip -j link show` for name (new reference), or NULL. */
static json_t *ip_link(const char *name)
{
    char *argv[] = { "ip", "-j", "link", "show", NULL };
    _cleanup_free_ char *out = NULL;
    if (vo_spawn_wait(argv, 10000, &out) < 0)
        return NULL;
    json_t *doc = json_loads(out, 0, NULL), *found = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(doc, i, e) {
        const char *n = json_string_value(json_object_get(e, "ifname"));
        if (n && !strcmp(n, name))
            found = json_incref(e);
    }
    json_decref(doc);
    return found;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int counting_dnsmasq(const VoNetStep *st, void *userdata)
{
    (*(int *)userdata)++;
    return 0;
}

static void plan_and_run(const VoNetSpec *s, const char *dir, bool up)
{
    VoHostCaps caps;
    VoHostLink *links = NULL;
    size_t n = 0;
    char *err = NULL;
    int r = vo_net_probe(&caps, &links, &n, &err);
    CHECK(r == 0, "probe: %s", err);
    CHECK(caps.has_bridge && caps.has_nftables, "caps bridge=%d nft=%d", caps.has_bridge,
          caps.has_nftables);
    VoNetPlanInput in = { .caps = caps, .links = links, .n_links = n, .dir = dir };
    VoNetPlan *p = NULL;
    if (up) {
        r = vo_net_plan_setup(s, &in, &p, &err);
        CHECK(r == 0, "plan: %s", err);
    } else {
        CHECK(vo_net_plan_teardown(s, &in, &p) == 0, "teardown plan");
    }
    int dnsmasq = 0;
    r = vo_net_plan_execute(p, counting_dnsmasq, &dnsmasq, up, &err);
    CHECK(r == 0, "execute: %s", err);
    CHECK(dnsmasq == 1, "dnsmasq callback ran %d times", dnsmasq);
    vo_net_plan_free(p);
    vo_host_links_free(links, n);
}

static void netns_child(const char *dir)
{
    if (unshare(CLONE_NEWNET) < 0)
        _exit(77);
    VoNetSpec *s = spec("{\"name\":\"vtest\",\"type\":\"nat\",\"subnet\":\"10.123.0.0/24\"}");
    plan_and_run(s, dir, true);

    json_t *br = ip_link(s->bridge);
    CHECK(br, "bridge %s missing", s->bridge);
    CHECK(!strcmp(jstr(br, "ifalias"), "vireo-net:vtest"), "alias '%s'", jstr(br, "ifalias"));
    CHECK(!strncmp(jstr(br, "address"), "02:76:69:", 9), "address '%s'", jstr(br, "address"));
    json_decref(br);
    _cleanup_free_ char *rules = NULL;
    _cleanup_free_ char *rules_path = vo_asprintf("%s/ruleset.nft", dir);
    CHECK(vo_read_file(rules_path, 1 << 20, &rules, NULL) == 0, "no %s", rules_path);
    char *nft_list[] = { "nft", "list", "tables", NULL };
    _cleanup_free_ char *tables = NULL;
    CHECK(vo_spawn_wait(nft_list, 10000, &tables) == 0, "nft list tables");
    CHECK(strstr(tables, "inet vireo-vtest"), "tables: %s", tables);

    /* Idempotent: a second setup sees its own bridge and re-applies the rest. */
    plan_and_run(s, dir, true);

    /* A tap on the bridge, gone with its fd. */
    int fd = -1;
    char *err = NULL;
    int r = vo_tap_open("vttest0n0", s->bridge, &fd, &err);
    CHECK(r == 0, "tap: %s", err);
    json_t *tap = ip_link("vttest0n0");
    CHECK(tap, "tap missing");
    CHECK(!strcmp(jstr(tap, "master"), s->bridge), "tap master '%s'", jstr(tap, "master"));
    json_t *flags = json_object_get(tap, "flags");
    bool is_up = false;
    size_t i;
    json_t *f;
    json_array_foreach(flags, i, f) is_up |= !strcmp(json_string_value(f), "UP");
    CHECK(is_up, "tap is not up");
    json_decref(tap);
    int fd2 = -1;
    r = vo_tap_open("vttest0n0", s->bridge, &fd2, &err);
    CHECK(r == -EEXIST, "second tap of the same name: %d", r);
    free(err);
    close(fd);
    bool gone = false;
    for (int k = 0; k < 100 && !gone; k++) {
        gone = if_nametoindex("vttest0n0") == 0;
        if (!gone)
            usleep(10000);
    }
    CHECK(gone, "tap still there after close");

    /* Attaching to a non-bridge fails and leaves no tap behind. */
    err = NULL;
    r = vo_tap_open("vttest0n1", "lo", &fd, &err);
    CHECK(r < 0 && err && strstr(err, "lo"), "tap on lo: %d %s", r, err ? err : "");
    CHECK(if_nametoindex("vttest0n1") == 0, "failed tap left behind");
    free(err);

    plan_and_run(s, dir, false);
    CHECK(if_nametoindex(s->bridge) == 0, "bridge still there after teardown");
    free(tables);
    tables = NULL;
    CHECK(vo_spawn_wait(nft_list, 10000, &tables) == 0, "nft list tables");
    CHECK(!strstr(tables, "vireo-vtest"), "table left: %s", tables);
    vo_net_spec_free(s);
    _exit(0);
}

static void test_netns_smoke(void **state)
{
    if (geteuid() != 0)
        skip();
    _cleanup_free_ char *dir = make_tmpdir();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        netns_child(dir);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    vo_rm_rf(dir);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argv_vs_render),
        cmocka_unit_test(test_leases),
        cmocka_unit_test(test_execute),
        cmocka_unit_test(test_tap_errors),
        cmocka_unit_test_teardown(test_listing_stderr_apart, restore_path),
        cmocka_unit_test_teardown(test_listing_retries_interrupted_dump, restore_path),
        cmocka_unit_test_teardown(test_failed_listing_and_teardown_reported, restore_path),
        cmocka_unit_test(test_netns_smoke),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
